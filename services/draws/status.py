"""Where a coordinator's draws stand, from chat: /status DRAW (assignments and inspections by
state), /pending (unanswered assignments near or past their deadline), /verify DRAW (the public
bundle re-derived, as an outside auditor would).

Scoped (services.scope): a draw outside the scope is refused exactly like a missing one.
"""

from __future__ import annotations

import asyncio
import tempfile
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from zoneinfo import ZoneInfo

from tortoise.functions import Count

from core import db, drand
from core.clock import Clock
from core.clock import local_minute as _local
from domain import bundle
from domain.sealing import draw_is_sealed
from models.draws import Assignment, AssignmentStatus, Draw, Firing, Inspection
from models.messaging import REACHED, Outbox, OutboxStatus
from services.draws.beacon import describe
from services.draws.common import DrawError
from services.draws.export import export
from services.draws.write import task_message_key, task_message_key_sql
from services.scope import PAGE_SIZE, Page, Scope, clamp, plan_ids

NEAR_DEADLINE = timedelta(hours=24)  # /pending: unanswered and due within this, or overdue


async def draw_in_scope(scope: Scope, draw_ref: str) -> Draw:
    row = await Draw.get_or_none(draw_ref=draw_ref).prefetch_related("plan")
    if row is None or not scope.covers(row.plan.departments):
        firing = await Firing.get_or_none(draw_ref=draw_ref).prefetch_related("plan")
        if firing is not None and scope.covers(firing.plan.departments):
            raise DrawError("not_drawn", draw_ref=draw_ref)
        raise DrawError("draw_not_found", draw_ref=draw_ref)
    return row


#: Where a task message stands in the outbox, as /status counts it: handed to the channel
#: (``REACHED``: Telegram took it; an SMS gateway took it or receipted it), still queued (these), or
#: not delivered (no chat bound to the inspector, the address unreachable, attempts exhausted).
_QUEUED = (OutboxStatus.PENDING.value, OutboxStatus.SENDING.value)
_DELIVERY_SQL = (
    'SELECT o.status, COUNT(*) FROM "assignment" a LEFT JOIN "outbox" o ON o.dedupe_key = '
    "{key} WHERE a.draw_id = ? GROUP BY o.status"
)


_OVERDUE_UNTOLD_SQL = (
    'SELECT COUNT(*) FROM "assignment" a WHERE a.draw_id = ? AND a.status = ? AND a.deadline < ? '
    'AND NOT EXISTS (SELECT 1 FROM "outbox" o WHERE o.dedupe_key = {key} AND o.status IN ({reached}))'
)


async def _overdue_untold(draw_id: int, now: datetime) -> int:
    """The draw's overdue unanswered tasks whose message never reached the inspector: not their silence."""
    conn = db.conn()
    statement = _OVERDUE_UNTOLD_SQL.format(key=task_message_key_sql("a.id"), reached=", ".join("?" * len(REACHED)))
    _, rows = await conn.execute_query(
        db.sql(statement, connection=conn), [draw_id, AssignmentStatus.SENT.value, now, *REACHED]
    )
    return int(rows[0][0])


async def _delivery(draw_id: int) -> dict[str, int]:
    """The draw's task messages by where they stand: ``delivered``, ``queued``, ``undelivered``."""
    conn = db.conn()
    key = task_message_key_sql("a.id")
    _, rows = await conn.execute_query(db.sql(_DELIVERY_SQL.format(key=key), connection=conn), [draw_id])
    out = {"delivered": 0, "queued": 0, "undelivered": 0}
    for state, n in rows:
        out["delivered" if state in REACHED else "queued" if state in _QUEUED else "undelivered"] += int(n)
    return out


async def draw_status(scope: Scope, draw_ref: str, now: datetime, zone: ZoneInfo) -> dict:
    """/status DRAW: the tasks by state (the lines add up to the total), where their messages
    stand (delivered, queued, undelivered: counted apart from the answers), inspections
    unstaffable and done."""
    d = await draw_in_scope(scope, draw_ref)
    by_asg = dict(
        await Assignment.filter(draw_id=d.id).group_by("status").annotate(n=Count("id")).values_list("status", "n")
    )
    by_insp = dict(
        await Inspection.filter(draw_id=d.id).group_by("status").annotate(n=Count("id")).values_list("status", "n")
    )
    a = {getattr(k, "value", k): v for k, v in by_asg.items()}
    i = {getattr(k, "value", k): v for k, v in by_insp.items()}
    overdue = await Assignment.filter(draw_id=d.id, status=AssignmentStatus.SENT, deadline__lt=now).count()
    return {
        "draw_ref": d.draw_ref,
        "plan": {"code": d.plan.code, "name": d.plan.name},
        "drawn_at": _local(d.drawn_at, zone),
        "flight": d.flight,
        "revealed": not draw_is_sealed(d, now),
        "inspections": sum(i.values()),
        "tasks": sum(a.values()),
        "pending": a.get("sent", 0),
        "overdue": overdue,
        "overdue_untold": await _overdue_untold(d.id, now) if overdue else 0,
        "accepted": a.get("accepted", 0),
        "finished": a.get("done", 0),
        "recused": a.get("recused", 0),
        "no_response": a.get("no_response", 0),
        "replaced": a.get("replaced", 0),
        "cancelled": a.get("cancelled", 0),
        "messages": await _delivery(d.id),
        "unstaffable": i.get("unstaffable", 0),
        "done": i.get("done", 0),
        "beacon": describe(d.beacon_source, zone),
        "beacon_string": d.beacon,
    }


async def pending_page(scope: Scope, page: int, now: datetime, zone: ZoneInfo) -> Page:
    """/pending: unanswered assignments past their deadline or due within a day, soonest first; each
    says whether its task message reached the inspector (one query for the page)."""
    q = Assignment.filter(
        status=AssignmentStatus.SENT, deadline__lte=now + NEAR_DEADLINE, draw__plan_id__in=await plan_ids(scope)
    )
    page, pages, offset = clamp(page, total := await q.count())
    rows = await (
        q.order_by("deadline", "id")
        .offset(offset)
        .limit(PAGE_SIZE)
        .prefetch_related("inspector", "inspection", "draw__plan")
    )
    keys = {task_message_key(a.id): a.id for a in rows}
    reached = set(
        await Outbox.filter(dedupe_key__in=list(keys), status__in=REACHED).values_list("dedupe_key", flat=True)
    )
    told = {keys[k] for k in reached}
    items = [
        {
            "assignment": a.id,
            "name": a.inspector.name,
            "cert_no": a.inspector.cert_no,
            "plan": a.draw.plan.name,
            "draw_ref": a.draw.draw_ref,
            "no": a.inspection.no,
            "deadline": _local(a.deadline, zone),
            "overdue": a.deadline <= now,
            "reminded": a.reminded_at is not None,
            "told": a.id in told,  # its task message reached the inspector (else: no chat, unreachable, queued)
        }
        for a in rows
    ]
    return Page(items, page, pages, total)


# --- verify a draw --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verified:
    draw_ref: str
    sealed: bool  # a flight draw before its reveal: nothing to verify yet
    lines: list[bundle.CheckLine]
    unreadable: str = ""  # a BundleError code

    @property
    def failed(self) -> int:
        return sum(not line.ok for line in self.lines)

    def context(self) -> dict:
        """Plain values for the reply (an outbox row's context is JSON)."""
        lines = [{"ok": x.ok, "what": x.what, "detail": x.detail, "params": dict(x.params)} for x in self.lines]
        return {
            "draw_ref": self.draw_ref,
            "sealed": self.sealed,
            "lines": lines,
            "failed": self.failed,
            "unreadable": self.unreadable,
        }


async def verify_draw(scope: Scope, draw_ref: str, *, clock: Clock) -> Verified:
    """/verify DRAW: export the public bundle to a temporary folder and re-derive it there,
    exactly as an outside auditor would (``inspectbot verify``)."""
    await draw_in_scope(scope, draw_ref)
    with tempfile.TemporaryDirectory(prefix="inspectbot-verify-") as tmp:
        try:
            exported = await export(draw_ref, Path(tmp), clock=clock)
        except DrawError as exc:
            raise DrawError("draw_failed", error=exc.code, **exc.params) from None
        if exported.sealed:
            return Verified(draw_ref, True, [])
        files = {name: (Path(tmp) / name).read_bytes() for name in exported.files}
    try:
        lines = await asyncio.to_thread(partial(bundle.verify, files, check_signature=drand.verify_signature))
    except bundle.BundleError as exc:
        return Verified(draw_ref, False, [], unreadable=exc.code)
    return Verified(draw_ref, False, lines)
