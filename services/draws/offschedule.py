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
``expired``) and the requester is told the outcome.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from tortoise.transactions import in_transaction

from core.clock import Clock
from core.clock import local_minute as _local
from models.draws import Draw, OffScheduleRequest, OffScheduleStatus
from models.messaging import Channel, ChatBinding, RecipientKind, Role
from models.plans import Plan
from services import audit
from services.draws.announce import MAX_REASON, pending_firings
from services.draws.common import DrawError
from services.draws.write import DrawResult, OffSchedule, draw_plan, on_schedule
from services.outbox import Message, enqueue
from services.plan_views import plan_in_scope
from services.scope import Scope

DEFAULT_TTL = timedelta(hours=24)
REQUEST_TEMPLATE = "off_schedule_request.j2"  # to the other coordinators, with the buttons
OUTCOME_TEMPLATE = "off_schedule_outcome.j2"  # to the requester


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


def _binding_id(actor: str) -> int | None:
    kind, _, digits = actor.partition(":")
    return int(digits) if kind in ("coordinator", "admin") and digits.isdigit() else None


def _clean_reason(reason: str) -> str:
    # one line without control characters: it is shown in messages and on the public page
    reason = " ".join("".join(ch for ch in reason if ch.isprintable() or ch.isspace()).split())
    if not reason:
        raise DrawError("reason_required")
    if len(reason) > MAX_REASON:
        raise DrawError("reason_too_long", limit=MAX_REASON)
    return reason


async def _live_coordinator(binding_id: int | None, departments, conn) -> bool:
    b = await ChatBinding.get_or_none(id=binding_id, role=Role.COORDINATOR, revoked_at__isnull=True).using_db(conn)
    return b is not None and bool(set(b.departments or ()) & set(departments))


async def _confirmers(plan: Plan, requester_id: int, conn) -> list[ChatBinding]:
    """The live coordinators of the plan's departments other than the requester."""
    found = await ChatBinding.filter(role=Role.COORDINATOR, revoked_at__isnull=True).using_db(conn).order_by("id")
    wanted = set(plan.departments or ())
    return [b for b in found if b.id != requester_id and wanted & set(b.departments or ())]


async def request(
    scope: Scope, plan_id: int, reason: str, *, clock: Clock, zone: ZoneInfo, ttl: timedelta = DEFAULT_TTL
) -> Requested:
    """Ask the plan's other coordinators to confirm an off-schedule draw of it now. Refused when a
    draw now would be on schedule (confirm it in the preview instead), when a request for the plan
    is already waiting, or when there is no other coordinator to ask."""
    reason = _clean_reason(reason)
    requester_id = _binding_id(scope.actor)
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
            raise DrawError(
                "request_waiting", plan=plan.code, request=waiting.id, expires_at=_local(waiting.expires_at, zone)
            )
        confirmers = await _confirmers(plan, requester_id, conn)
        if not confirmers:
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
                "asked": [f"coordinator:{b.id}" for b in confirmers],
            },
            now,
            conn,
        )
        requester = await ChatBinding.get_or_none(id=requester_id).using_db(conn)
        context = {
            "request": row.id,
            "plan": {"code": plan.code, "name": plan.name},
            "reason": reason,
            "redraw_of": redraw_of or "",
            "pending": firing.draw_ref if firing is not None else "",
            "requester": requester.display_name if requester is not None else scope.actor,
            "requested_by": scope.actor,
            "expires_at": _local(row.expires_at, zone),
            "keyboard": ["off_schedule_decision", row.id],
        }
        await enqueue(
            [
                Message(
                    dedupe_key=f"ofs:{row.id}:ask:{b.id}",
                    recipient_kind=RecipientKind.PERSON,
                    recipient_id=b.id,
                    template=REQUEST_TEMPLATE,
                    context=context,
                    channel=Channel(b.channel),
                    locale=b.locale,
                    priority=-1,
                )
                for b in confirmers
            ],
            now,
            connection=conn,
        )
    return Requested(row.id, plan.code, reason, redraw_of or "", _local(row.expires_at, zone), len(confirmers))


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
    requester = await ChatBinding.get_or_none(id=row.requester_binding_id, revoked_at__isnull=True).using_db(conn)
    if requester is None:
        return
    await enqueue(
        [
            Message(
                dedupe_key=f"ofs:{row.id}:{outcome}",
                recipient_kind=RecipientKind.PERSON,
                recipient_id=requester.id,
                template=OUTCOME_TEMPLATE,
                context={"request": row.id, "plan": plan.code, "outcome": outcome, "reason": row.reason, **extra},
                channel=Channel(requester.channel),
                locale=requester.locale,
                priority=-1,
            )
        ],
        now,
        connection=conn,
    )


async def _claim(row_id: int, status: OffScheduleStatus, actor: str, now: datetime, conn, **data) -> bool:
    """Move a pending request to ``status``; False when it was no longer pending (one conditional
    UPDATE: of two presses at once, one claims it)."""
    n = await (
        OffScheduleRequest.filter(id=row_id, status=OffScheduleStatus.PENDING)
        .using_db(conn)
        .update(status=status, decided_by=actor, decided_at=now, **data)
    )
    return bool(n)


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


async def _close(row_id: int, status: OffScheduleStatus, actor: str, now: datetime, conn, **data) -> bool:
    """Move a pending request to ``status`` (False: it was no longer pending) and audit it."""
    if not await _claim(row_id, status, actor, now, conn, **data):
        return False
    await _record(row_id, status, actor, now, conn, **data)
    return True


async def _expire(row: OffScheduleRequest, now: datetime, zone: ZoneInfo) -> bool:
    async with in_transaction() as conn:
        if not await _close(row.id, OffScheduleStatus.EXPIRED, "system", now, conn):
            return False
        plan = await Plan.get(id=row.plan_id).using_db(conn)
        await _tell_requester(row, plan, "expired", now, conn, expires_at=_local(row.expires_at, zone))
    return True


async def decide(
    scope: Scope, request_id: int, confirm: bool, *, clock: Clock, zone: ZoneInfo, locale: str = "zh-CN"
) -> Decided:
    """Confirm (and draw) or decline a waiting request. Only a coordinator of the plan's
    departments other than the requester; a request already decided or expired is refused saying
    so, and nothing is done twice."""
    now = clock.now()
    row = await OffScheduleRequest.get_or_none(id=request_id).prefetch_related("plan")
    if row is None or not scope.covers(row.plan.departments):
        raise DrawError("request_not_found", request=request_id)
    if row.status is not OffScheduleStatus.PENDING:
        raise DrawError("request_decided", request=request_id, status=row.status.value, by=row.decided_by or "")
    if now >= row.expires_at:
        await _expire(row, now, zone)
        raise DrawError("request_decided", request=request_id, status="expired", by="")
    if scope.actor == row.requested_by:
        raise DrawError("confirmer_is_requester", confirmer=scope.actor)
    plan = row.plan
    if not confirm:
        async with in_transaction() as conn:
            if not await _close(row.id, OffScheduleStatus.DECLINED, scope.actor, now, conn):
                raise DrawError("request_decided", request=request_id, status="", by="")
            await _tell_requester(row, plan, "declined", now, conn, by=scope.actor)
        return Decided(row.id, plan.code, "declined")
    confirmer = _binding_id(scope.actor)
    off = OffSchedule(
        reason=row.reason, confirmed_by=confirmer if confirmer is not None else -1, requested_by=row.requested_by
    )
    off = OffSchedule(**{**off.__dict__, "redraw": row.redraw_of})
    try:
        async with in_transaction() as conn:
            # claimed first: of two coordinators pressing Confirm at once, one draws, the other
            # finds the request decided (PostgreSQL: the row's lock; SQLite: one writer)
            # (audited after the draw: an append holds PostgreSQL's audit lock to the commit)
            if not await _claim(row.id, OffScheduleStatus.CONFIRMED, scope.actor, now, conn):
                raise DrawError("request_decided", request=request_id, status="", by="")
            # the requester must still be a live coordinator of the plan: a binding revoked
            # since the request (or moved to other departments) cannot have its request confirmed
            # (the confirmer is checked by draw_plan, the same way)
            if not await _live_coordinator(row.requester_binding_id, plan.departments or (), conn):
                raise DrawError("requester_revoked", requester=row.requested_by)
            result = await draw_plan(plan.code, clock=clock, zone=zone, locale=locale, off_schedule=off)
            assert isinstance(result, DrawResult)
            await OffScheduleRequest.filter(id=row.id).using_db(conn).update(draw_ref=result.draw_ref)
            await _record(row.id, OffScheduleStatus.CONFIRMED, scope.actor, now, conn, draw_ref=result.draw_ref)
            await _tell_requester(row, plan, "confirmed", now, conn, by=scope.actor, draw_ref=result.draw_ref)
    except DrawError as exc:
        if exc.code == "request_decided":
            fresh = await OffScheduleRequest.get(id=row.id)
            raise DrawError(
                "request_decided", request=request_id, status=fresh.status.value, by=fresh.decided_by or ""
            ) from None
        if exc.code in ("confirmer_not_coordinator", "confirmer_is_requester"):
            raise  # this presser may not confirm; the request still waits for someone who may
        async with in_transaction() as conn:  # the draw was refused: the request ends, saying why
            if await _close(row.id, OffScheduleStatus.FAILED, scope.actor, now, conn, failure=exc.code[:64]):
                await _tell_requester(row, plan, "failed", now, conn, by=scope.actor, error=exc.code, params=exc.params)
        raise DrawError("draw_failed", error=exc.code, **exc.params) from None
    return Decided(row.id, plan.code, "confirmed", result)


async def expire_due(now: datetime, *, zone: ZoneInfo) -> int:
    """The sweep: every request nobody decided before its time ends as expired (the requester is
    told). Returns how many."""
    n = 0
    for row in await OffScheduleRequest.filter(status=OffScheduleStatus.PENDING, expires_at__lte=now).order_by("id"):
        n += await _expire(row, now, zone)
    return n
