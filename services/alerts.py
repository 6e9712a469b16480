"""Alerts: raise one (record it and message the coordinators responsible, or the admins), and a
coordinator's /alerts (a page of those raised for their departments) and acknowledgement.

One mechanism for every alert: the row (for ``/alerts``) and the outbox rows commit in the
caller's transaction; ``key`` makes raising the same alert twice a no-op."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from tortoise.transactions import in_transaction

from core import db
from core.clock import local_minute as _local
from domain.errors import ServiceError
from models.alerts import Alert
from models.messaging import Role
from models.plans import Plan
from services import audit
from services.outbox import enqueue_to_people
from services.scope import PAGE_SIZE, Page, Scope, clamp


class AlertError(ServiceError):
    """Refused; ``code`` names a text (``coord_error`` in texts/coordinator.j2)."""


@dataclass(frozen=True)
class Recipient:
    """A coordinator's (or admin's) chat an alert goes to."""

    id: int
    channel: str
    locale: str


_RECIPIENTS = (
    "SELECT id, role, departments, channel, locale FROM chat_binding "
    "WHERE revoked_at IS NULL AND role IN (?, ?) ORDER BY id"
)


async def coordinators_for(departments: set[str], connection=None) -> list[Recipient]:
    """Coordinators scoped to any of ``departments``; the admins when there are none. One raw
    query in the caller's transaction: alerts are raised on the reply paths."""
    conn = connection or db.conn()
    _, rows = await conn.execute_query(db.sql(_RECIPIENTS, connection=conn), [Role.COORDINATOR.value, Role.ADMIN.value])
    coordinators, admins = [], []
    for r in rows:
        recipient = Recipient(r[0], r[3], r[4])
        if r[1] == Role.COORDINATOR.value:
            if departments & set(db.decoded(r[2], [])):
                coordinators.append(recipient)
        else:
            admins.append(recipient)
    return coordinators or admins


async def raise_alert(
    key: str, template: str, context: dict, departments: set[str] | list[str], now: datetime, connection=None
) -> bool:
    """Record the alert and queue one message per responsible coordinator. False if it existed."""
    conn = connection or db.conn()
    kind = template.removesuffix(".j2")
    p = db.placeholders(5)
    rows = await conn.execute_query_dict(
        f"INSERT INTO alert (key, kind, departments, context, created_at) VALUES ({p}) "
        "ON CONFLICT DO NOTHING RETURNING id",
        [key[:200], kind, db.encode(sorted(departments)), db.encode(context), now],
    )
    if not rows:
        return False
    targets = await coordinators_for(set(departments), connection=conn)
    await enqueue_to_people(targets, f"alert:{rows[0]['id']}", template, context, now, connection=conn)
    return True


async def alert_plan_coordinators(
    plan_code: str, template: str, context: dict, *, dedupe: str, now: datetime, connection=None
) -> bool:
    plan = await Plan.get_or_none(code=plan_code)
    departments = set(plan.departments) if plan else set()
    return await raise_alert(dedupe, template, context, departments, now, connection=connection)


# --- a coordinator's /alerts ----------------------------------------------------------------------


def _overlap_sql(scope: Scope) -> tuple[str, list]:
    """A WHERE clause on ``alert.departments`` (a JSON list) meeting the scope's departments."""
    if scope.everything:
        return "1=1", []
    codes = sorted(scope.departments)
    if not codes:
        return "1=0", []
    if db.dialect() == "postgres":
        return "departments ?| $1::text[]", [codes]
    marks = ", ".join("?" * len(codes))
    return f"EXISTS (SELECT 1 FROM json_each(alert.departments) j WHERE j.value IN ({marks}))", codes


async def alerts_page(scope: Scope, page: int, zone: ZoneInfo) -> Page:
    """/alerts: alerts raised for the scope's departments, newest first (an admin sees all,
    including those raised for nobody in particular)."""
    where, params = _overlap_sql(scope)
    client = db.conn()
    total = (await client.execute_query_dict(f"SELECT COUNT(*) AS n FROM alert WHERE {where}", params))[0]["n"]
    page, pages, offset = clamp(page, total)
    ids = [
        r["id"]
        for r in await client.execute_query_dict(
            f"SELECT id FROM alert WHERE {where} ORDER BY created_at DESC, id DESC LIMIT {PAGE_SIZE} OFFSET {offset}",
            params,
        )
    ]
    rows = {a.id: a for a in await Alert.filter(id__in=ids)}
    items = [
        {
            "id": a.id,
            "kind": a.kind,
            "at": _local(a.created_at, zone),
            "context": a.context,
            "acknowledged": a.acknowledged_at is not None,
        }
        for a in (rows[i] for i in ids)
    ]
    return Page(items, page, pages, total)


async def acknowledge_alert(scope: Scope, alert_id: int, now: datetime, zone: ZoneInfo) -> tuple[str, dict]:
    """Acknowledge an alert (once; on the audit chain). Returns acknowledged / already_acknowledged
    and the alert as the list shows it (its time and what it is about: a chat text names an alert
    so, never by its row id)."""
    async with in_transaction() as conn:
        alert = await Alert.get_or_none(id=alert_id).using_db(conn)
        if alert is None or not scope.covers(alert.departments):
            raise AlertError("alert_not_found")  # no number: outside the scope reads as missing
        shown = {"kind": alert.kind, "at": _local(alert.created_at, zone), "context": alert.context}
        n = await Alert.filter(id=alert_id, acknowledged_at=None).using_db(conn).update(acknowledged_at=now)
        if n == 0:
            return "already_acknowledged", shown
        await audit.append(
            scope.actor, "alert.acknowledged", f"alert:{alert_id}", {"kind": alert.kind}, now, connection=conn
        )
    return "acknowledged", shown
