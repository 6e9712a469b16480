"""An off-schedule draw from chat: one coordinator asks, with a typed reason; another confirms.

:func:`request` (``/draw PLAN <reason>``, or the preview's button and then the reason as a
message) records the request and sends every *other* live coordinator of the plan's departments
a message with Confirm / Decline buttons (outbox rows, in the same transaction). The first of
them to press Confirm releases the draw (:func:`decide`): ``services.draws.write.draw_plan`` with
an :class:`~services.draws.write.OffSchedule` naming the requester and the confirmer, so the draw
is marked, audited and alerted exactly as the CLI's ``--reason --confirmed-by``. A Decline, or
nobody deciding before ``expires_at`` (:func:`expire_due`, a sweep), cancels it. The requester
cannot confirm their own request; a second press finds the request decided and does nothing. A
request whose requester's coordinator binding was revoked before the confirmation ends ``failed``
(``requester_revoked``), nothing drawn; a revoked confirmer is refused and the request waits.
Each step is on the audit chain (``off_schedule.requested`` / ``confirmed`` / ``declined`` /
``expired``) and the requester is told the outcome. The rule itself (who may confirm, first press
wins, expiry) is :mod:`services.draws.two_person`'s; this module has what is asked and what a
confirmation does.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from tortoise.transactions import in_transaction

from core.clock import Clock
from core.clock import local_minute as _local
from domain.actors import binding_id
from models.draws import Draw, OffScheduleRequest, OffScheduleStatus
from models.plans import Plan
from services import audit, people
from services.draws.announce import MAX_REASON, pending_firings
from services.draws.common import DrawError
from services.draws.two_person import Rule, confirmers
from services.draws.write import DrawResult, OffSchedule, draw_plan, on_schedule
from services.plan_views import plan_in_scope
from services.scope import Scope

DEFAULT_TTL = timedelta(hours=24)
RULE = Rule(
    model=OffScheduleRequest,
    statuses=OffScheduleStatus,
    requester="requested_by",
    requester_binding="requester_binding_id",
    key="ofs",
    request_template="off_schedule_request.j2",
    outcome_template="off_schedule_outcome.j2",
    decided_code="request_decided",
    named=lambda row: {"plan": row.plan.code},
    failure_code="draw_failed",  # the draw's refusal, named
    expires="expires_at",
)


@dataclass(frozen=True)
class Requested:
    id: int
    plan_code: str
    reason: str
    redraw_of: str
    expires_at: str  # local
    asked: int  # coordinators asked to confirm

    def context(self) -> dict:
        return dict(self.__dict__)


def _clean_reason(reason: str) -> str:
    # one line without control characters: it is shown in messages and on the public page
    reason = " ".join("".join(ch for ch in reason if ch.isprintable() or ch.isspace()).split())
    if not reason:
        raise DrawError("reason_required")
    if len(reason) > MAX_REASON:
        raise DrawError("reason_too_long", limit=MAX_REASON)
    return reason


async def request(
    scope: Scope, plan_id: int, reason: str, *, clock: Clock, zone: ZoneInfo, ttl: timedelta = DEFAULT_TTL
) -> Requested:
    """Ask the plan's other coordinators to confirm an off-schedule draw of it now. Refused when a
    draw now would be on schedule (confirm it in the preview instead), when a request for the plan
    is already waiting, or when there is no other coordinator to ask."""
    reason = _clean_reason(reason)
    requester_id = binding_id(scope.actor)
    if requester_id is None:
        raise DrawError("plan_not_found", plan=str(plan_id))
    now = clock.now()
    async with in_transaction() as conn:
        plan = await Plan.filter(id=plan_id).using_db(conn).select_for_update().first()
        if plan is None or not scope.covers(plan.departments):
            raise DrawError("plan_not_found", plan=str(plan_id))
        firing = (await pending_firings([plan.id])).get(plan.id)
        if firing is not None and on_schedule(firing):
            raise DrawError("not_off_schedule", plan=plan.code, draw_ref=firing.draw_ref)
        waiting = (
            await OffScheduleRequest.filter(plan_id=plan.id, status=OffScheduleStatus.PENDING, expires_at__gt=now)
            .using_db(conn)
            .first()
        )
        if waiting is not None:
            raise DrawError("request_waiting", plan=plan.code, expires_at=_local(waiting.expires_at, zone))
        asked = await confirmers(plan.departments or (), requester_id, conn)
        if not asked:
            raise DrawError("no_other_coordinator", plan=plan.code)
        latest = await Draw.filter(plan_id=plan.id).using_db(conn).order_by("-drawn_at", "-id").first()
        today = now.astimezone(zone).date()
        redraw_of = latest.draw_ref if latest is not None and latest.drawn_at.astimezone(zone).date() == today else None
        if firing is not None:
            redraw_of = None  # the pending firing (announced late) is what is drawn
        row = await OffScheduleRequest.create(
            plan_id=plan.id,
            requested_by=scope.actor,
            requester_binding_id=requester_id,
            reason=reason,
            redraw_of=redraw_of,
            created_at=now,
            expires_at=now + ttl,
            using_db=conn,
        )
        await audit.append(
            scope.actor,
            "off_schedule.requested",
            f"off_schedule:{row.id}",
            {
                "plan": plan.code,
                "reason": reason,
                "redraw_of": redraw_of,
                "pending": firing.draw_ref if firing is not None else None,
                "expires_at": row.expires_at.isoformat(),
                "asked": [f"coordinator:{b.id}" for b in asked],
            },
            now,
            conn,
        )
        context = {
            "request": row.id,
            "plan": {"code": plan.code, "name": plan.name},
            "reason": reason,
            "redraw_of": redraw_of or "",
            "pending": firing.draw_ref if firing is not None else "",
            "requester": await people.who(scope.actor, conn),
            "expires_at": _local(row.expires_at, zone),
            "keyboard": ["off_schedule_decision", row.id],
        }
        await RULE.ask(row.id, asked, context, now, conn)
    return Requested(row.id, plan.code, reason, redraw_of or "", _local(row.expires_at, zone), len(asked))


async def request_for_code(
    scope: Scope, code: str, reason: str, *, clock: Clock, zone: ZoneInfo, ttl: timedelta = DEFAULT_TTL
) -> Requested:
    """``/draw PLAN <reason>``: :func:`request` for the plan of that code in the scope."""
    plan = await plan_in_scope(scope, code)
    return await request(scope, plan.id, reason, clock=clock, zone=zone, ttl=ttl)


@dataclass(frozen=True)
class Decided:
    request: int
    plan_code: str
    outcome: str  # "confirmed", "declined"
    result: DrawResult | None = None


async def _tell_requester(row: OffScheduleRequest, plan: Plan, outcome: str, now: datetime, conn, **extra) -> None:
    if "by" in extra:  # the decider, as the requester reads them
        extra["by"] = await people.who(extra["by"], conn)
    context = {"request": row.id, "plan": plan.code, "outcome": outcome, "reason": row.reason, **extra}
    await RULE.tell(row, outcome, context, now, conn)


async def _record(row_id: int, status: OffScheduleStatus, actor: str, now: datetime, conn, **data) -> None:
    row = await OffScheduleRequest.get(id=row_id).using_db(conn).prefetch_related("plan")
    await audit.append(
        actor,
        f"off_schedule.{status.value}",
        f"off_schedule:{row_id}",
        {"plan": row.plan.code, "requested_by": row.requested_by, "reason": row.reason, **data},
        now,
        conn,
    )


async def _expired(row: OffScheduleRequest, now: datetime, zone: ZoneInfo, conn) -> None:
    await _record(row.id, OffScheduleStatus.EXPIRED, "system", now, conn)
    plan = await Plan.get(id=row.plan_id).using_db(conn)
    await _tell_requester(row, plan, "expired", now, conn, expires_at=_local(row.expires_at, zone))


async def decide(
    scope: Scope, request_id: int, confirm: bool, *, clock: Clock, zone: ZoneInfo, locale: str = "zh-CN"
) -> Decided:
    """Confirm (and draw) or decline a waiting request. Only a coordinator of the plan's
    departments other than the requester; a request already decided or expired is refused saying
    so, and nothing is done twice."""
    now = clock.now()
    row = await OffScheduleRequest.get_or_none(id=request_id).prefetch_related("plan")
    if row is None or not scope.covers(row.plan.departments):
        raise DrawError("request_not_found")  # no number: outside the scope reads as missing
    plan, actor = row.plan, scope.actor

    async def declined(conn) -> None:
        await _record(row.id, OffScheduleStatus.DECLINED, actor, now, conn)
        await _tell_requester(row, plan, "declined", now, conn, by=actor)

    async def confirmed(conn) -> DrawResult:
        # (the confirmer is checked by draw_plan, as the requester is by the rule)
        confirmer = binding_id(actor)
        off = OffSchedule(
            reason=row.reason,
            confirmed_by=confirmer if confirmer is not None else -1,
            requested_by=row.requested_by,
            redraw=row.redraw_of,
        )
        result = await draw_plan(plan.code, clock=clock, zone=zone, locale=locale, off_schedule=off)
        assert isinstance(result, DrawResult)
        await OffScheduleRequest.filter(id=row.id).using_db(conn).update(draw_ref=result.draw_ref)
        # audited after the draw: an append holds PostgreSQL's audit lock to the commit
        await _record(row.id, OffScheduleStatus.CONFIRMED, actor, now, conn, draw_ref=result.draw_ref)
        await _tell_requester(row, plan, "confirmed", now, conn, by=actor, draw_ref=result.draw_ref)
        return result

    async def failed(conn, exc: DrawError) -> None:
        await _record(row.id, OffScheduleStatus.FAILED, actor, now, conn, failure=exc.code[:64])
        await _tell_requester(row, plan, "failed", now, conn, by=actor, error=exc.code, params=exc.params)

    result = await RULE.decide(
        row,
        actor,
        confirm,
        now,
        departments=plan.departments or (),
        confirmed=confirmed,
        declined=declined,
        failed=failed,
        expired=lambda conn: _expired(row, now, zone, conn),
    )
    return Decided(row.id, plan.code, "confirmed", result) if confirm else Decided(row.id, plan.code, "declined")


async def expire_due(now: datetime, *, zone: ZoneInfo) -> int:
    """The sweep: every request nobody decided before its time ends as expired (the requester is
    told). Returns how many."""
    n = 0
    for row in await RULE.due(now):
        n += await RULE.expire(row, now, lambda conn, row=row: _expired(row, now, zone, conn))
    return n
