"""Raise an alert: record it and message the coordinators responsible (or the admins).

One mechanism for every alert: the row (for ``/alerts``) and the outbox rows commit in the
caller's transaction; ``key`` makes raising the same alert twice a no-op."""

from __future__ import annotations

from datetime import datetime

from bot import db
from models.messaging import ChatBinding, Channel, RecipientKind, Role
from services.outbox import Message, enqueue


async def coordinators_for(departments: set[str]) -> list[ChatBinding]:
    """Coordinators scoped to any of ``departments``; the admins when there are none."""
    bindings = await ChatBinding.filter(revoked_at=None, role__in=[Role.COORDINATOR, Role.ADMIN]).order_by("id")
    targets = [b for b in bindings if b.role == Role.COORDINATOR and departments & set(b.departments)]
    return targets or [b for b in bindings if b.role == Role.ADMIN]


async def raise_alert(key: str, template: str, context: dict, departments: set[str] | list[str], now: datetime,
                      connection=None) -> bool:
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
    targets = await coordinators_for(set(departments))
    await enqueue(
        [
            Message(dedupe_key=f"alert:{rows[0]['id']}:{b.id}", recipient_kind=RecipientKind.PERSON,
                    recipient_id=b.id, template=template, context=context, channel=Channel(b.channel),
                    locale=b.locale, priority=-1)
            for b in targets
        ],
        now,
        connection=conn,
    )
    return True


async def alert_plan_coordinators(plan_code: str, template: str, context: dict, *, dedupe: str, now: datetime,
                                  connection=None) -> bool:
    from models.plans import Plan

    plan = await Plan.get_or_none(code=plan_code)
    departments = set(plan.departments) if plan else set()
    return await raise_alert(dedupe, template, context, departments, now, connection=connection)
