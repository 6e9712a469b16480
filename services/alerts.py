"""Alerts: raise one (record it and message the coordinators responsible, or the admins), and a
coordinator's /alerts (a page of those raised for their departments) and acknowledgement.

One mechanism for every alert: the row (for ``/alerts``) and the outbox rows commit in the
caller's transaction; ``key`` makes raising the same alert twice a no-op.

Bulk alerts (those one sweep can raise by the hundred: no-response escalations and the recusals
they trigger) are raised with ``digest=True``: the row is recorded the same way but marked
``digest_pending`` instead of queueing a message, and the ``alert_digests`` sweep
(:func:`send_digests`) later sends each responsible coordinator one message summing them up.
It claims the pending rows and writes the digest's outbox rows in one transaction, so a crash
either sends nothing and loses nothing (all rolled back, still pending) or both committed."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from tortoise.transactions import in_transaction

from core import db
from core.clock import local_minute as _local
from domain.errors import ServiceError
from models.alerts import Alert
from models.messaging import Role
from models.plans import Plan
from services import audit
from services.outbox import enqueue, enqueue_to_people, to_person
from services.scope import PAGE_SIZE, Page, Scope, clamp, overlap_sql


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
    key: str,
    template: str,
    context: dict,
    departments: set[str] | list[str],
    now: datetime,
    connection=None,
    *,
    digest: bool = False,
) -> bool:
    """Record the alert and queue one message per responsible coordinator (with ``digest``:
    leave it for the next digest, :func:`send_digests`). False if it existed."""
    conn = connection or db.conn()
    kind = template.removesuffix(".j2")
    p = db.placeholders(6, connection=conn)
    rows = await conn.execute_query_dict(
        f"INSERT INTO alert (key, kind, departments, context, created_at, digest_pending) VALUES ({p}) "
        "ON CONFLICT DO NOTHING RETURNING id",
        [key[:200], kind, db.encode(sorted(departments)), db.encode(context), now, digest],
    )
    if not rows:
        return False
    if digest:
        return True
    targets = await coordinators_for(set(departments), connection=conn)
    await enqueue_to_people(targets, f"alert:{rows[0]['id']}", template, context, now, connection=conn)
    return True


async def alert_plan_coordinators(
    plan_code: str, template: str, context: dict, *, dedupe: str, now: datetime, connection=None
) -> bool:
    plan = await Plan.get_or_none(code=plan_code)
    departments = set(plan.departments) if plan else set()
    return await raise_alert(dedupe, template, context, departments, now, connection=connection)


# --- digests of bulk alerts -----------------------------------------------------------------------

#: A digest goes out once the oldest alert waiting for it is this old: a burst (one sweep's
#: escalations, a few sweeps in a row) becomes one message per coordinator every few minutes.
DIGEST_WAIT = timedelta(minutes=2)
#: Alerts named one by one in a digest; the rest are counted (all are listed by /alerts).
DIGEST_NAMED = 10
#: Alerts claimed by one run (a run's transaction stays short; the rest go in the next run's).
DIGEST_BATCH = 5000

_CLAIM = (
    "UPDATE alert SET digest_pending = ? WHERE digest_pending = ? AND id IN "
    "(SELECT id FROM alert WHERE digest_pending = ? ORDER BY id LIMIT ?) "
    "RETURNING id, kind, departments, context"
)


async def send_digests(now: datetime, *, wait: timedelta = DIGEST_WAIT) -> int:
    """The ``alert_digests`` sweep: once the oldest pending digest alert is ``wait`` old, claim
    every pending one and queue each responsible coordinator (as :func:`coordinators_for`
    finds them for the alert's departments) one ``alert_digest`` message: the count per kind,
    the first :data:`DIGEST_NAMED` as ``/alerts`` names them, and a pointer to ``/alerts``.

    Claim and outbox rows commit together; each alert is claimed by exactly one run (the
    conditional UPDATE: a second instance finds the rows no longer pending), so the digest's
    key (its first alert and the recipient) is new, and the outbox's dedupe leaves a replay
    alone. Returns the number of alerts told."""
    oldest = (
        await Alert.filter(digest_pending=True).order_by("created_at").limit(1).values_list("created_at", flat=True)
    )
    if not oldest or now - oldest[0] < wait:
        return 0
    async with in_transaction() as conn:
        rows = await conn.execute_query_dict(db.sql(_CLAIM, connection=conn), [False, True, True, DIGEST_BATCH])
        rows.sort(key=lambda r: r["id"])
        targets: dict[frozenset[str], list[Recipient]] = {}
        per_recipient: dict[int, tuple[Recipient, list[dict]]] = {}
        for r in rows:
            departments = frozenset(db.decoded(r["departments"], []))
            if departments not in targets:
                targets[departments] = await coordinators_for(set(departments), connection=conn)
            alert = {"id": r["id"], "kind": r["kind"], "context": db.decoded(r["context"], {})}
            for recipient in targets[departments]:
                per_recipient.setdefault(recipient.id, (recipient, []))[1].append(alert)
        messages = [
            to_person(
                recipient, f"alert-digest:{alerts[0]['id']}:{recipient.id}", "alert_digest.j2", digest_context(alerts)
            )
            for recipient, alerts in per_recipient.values()
        ]
        await enqueue(messages, now, connection=conn)
    return len(rows)


def digest_context(alerts: list[dict]) -> dict:
    """What a digest says (no row ids: alerts are named as ``/alerts`` names them)."""
    counts = Counter(a["kind"] for a in alerts)
    return {
        "total": len(alerts),
        "kinds": [[kind, n] for kind, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))],
        "items": [{"kind": a["kind"], "context": a["context"]} for a in alerts[:DIGEST_NAMED]],
        "more": max(0, len(alerts) - DIGEST_NAMED),
    }


# --- a coordinator's /alerts ----------------------------------------------------------------------


async def alerts_page(scope: Scope, page: int, zone: ZoneInfo) -> Page:
    """/alerts: alerts raised for the scope's departments, newest first (an admin sees all,
    including those raised for nobody in particular)."""
    where, params = overlap_sql(scope, "alert")
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
