"""Raise an alert: record it and message the coordinators responsible (or the admins).

One mechanism for every alert: the row (for ``/alerts``) and the outbox rows commit in the
caller's transaction; ``key`` makes raising the same alert twice a no-op."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from core import db
from models.messaging import Channel, RecipientKind, Role
from services.outbox import Message, enqueue


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
    await enqueue(
        [
            Message(
                dedupe_key=f"alert:{rows[0]['id']}:{b.id}",
                recipient_kind=RecipientKind.PERSON,
                recipient_id=b.id,
                template=template,
                context=context,
                channel=Channel(b.channel),
                locale=b.locale,
                priority=-1,
            )
            for b in targets
        ],
        now,
        connection=conn,
    )
    return True


async def alert_plan_coordinators(
    plan_code: str, template: str, context: dict, *, dedupe: str, now: datetime, connection=None
) -> bool:
    from models.plans import Plan

    plan = await Plan.get_or_none(code=plan_code)
    departments = set(plan.departments) if plan else set()
    return await raise_alert(dedupe, template, context, departments, now, connection=connection)
