"""What a coordinator sees and does from chat: plans, draws, assignments, recusals, alerts.

Everything is scoped: a coordinator sees the plans (and their draws, assignments, recusals)
of which at least one department is theirs (``ChatBinding.departments``), and the alerts
raised for those departments; an administrator sees everything. Something outside the scope
is reported exactly like something missing, so a refusal leaks nothing.

Queries return plain dicts (what the templates show); use cases run in one transaction each
(joining the inbound event's transaction when called from a handler) and take the clock.

Rejecting a recusal (:func:`reject_recusal`) reinstates the recusing inspector and cancels
the replacement's assignment. The recusal stays in the draw's published recusal log
(``recusals.tsv``, docs/draw-protocol.md §10): it happened and the replacement was drawn from
it, and the protocol has no line for an undone recusal. The rejection is recorded beside the
log, on the recusal row (``rejected_at``, ``rejected_by``, ``rejection_note``) and on the
audit chain; the exported bundle is unchanged and still verifies.

Known gap: after a rejection the team as it stands (the recusing inspector back on the seat)
differs from the team a verifier replays from the log (the replacement on it). A *later*
recusal on the same inspection is then derived from a team the published log does not show:
``verify`` can report its line as ✗, and the database refuses two cases outright (the
reinstated inspector recusing again: one recusal per assignment; the cancelled replacement
drawn again: one assignment per inspector and inspection). Closing it needs the protocol to
publish rejections (a line kind in ``recusals.tsv``) or the recusal path to refuse further
recusals on such an inspection.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from tortoise.expressions import F
from tortoise.functions import Count
from tortoise.transactions import in_transaction

from core import db
from core.clock import Clock
from core.clock import local_minute as _local
from domain import bundle
from domain.errors import ServiceError
from domain.plans import parse_plan
from domain.sealing import draw_is_sealed
from domain.surveys.sampling import DEFAULT_SHARES
from models.alerts import Alert
from models.directory import Conflict, ConflictSource
from models.draws import (
    HOLDING_SEAT,
    Assignment,
    AssignmentStatus,
    Draw,
    Firing,
    FiringStatus,
    Inspection,
    InspectionStatus,
    Recusal,
)
from models.messaging import ChatBinding, Outbox, RecipientKind, Role
from models.plans import Plan
from services import audit, draws
from services.outbox import Message, enqueue
from services.plans import fire_times, response_deadline, spec_of

PAGE_SIZE = 10
NEAR_DEADLINE = timedelta(hours=24)  # /pending: unanswered and due within this, or overdue
OPEN = (AssignmentStatus.SENT, AssignmentStatus.ACCEPTED)
DEFAULT_LOCALE = "zh-CN"


class CoordinationError(ServiceError):
    """Refused; ``code`` names a text (``coord_error`` in texts/coordinator.j2)."""


# --- scope and paging ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Scope:
    """Whose eyes: the departments a coordinator is scoped to, or everything (an admin)."""

    departments: frozenset[str]
    everything: bool = False
    actor: str = ""  # as the audit chain names them: "coordinator:<binding id>"

    @classmethod
    def of(cls, bindings: Iterable[ChatBinding]) -> Scope | None:
        """The scope of a chat's live bindings; None when none of them is a coordinator or admin."""
        bindings = list(bindings)
        admin = next((b for b in bindings if b.role == Role.ADMIN), None)
        if admin is not None:
            return cls(frozenset(), everything=True, actor=f"admin:{admin.id}")
        coordinator = next((b for b in bindings if b.role == Role.COORDINATOR), None)
        if coordinator is None:
            return None
        return cls(frozenset(coordinator.departments or ()), actor=f"coordinator:{coordinator.id}")

    def covers(self, departments: Iterable[str]) -> bool:
        return self.everything or bool(self.departments & set(departments or ()))


@dataclass(frozen=True)
class Page:
    """One page of a list (1-based); ``items`` are what the template shows."""

    items: list
    page: int
    pages: int
    total: int

    @property
    def first(self) -> int:
        """The list number of the page's first item."""
        return (self.page - 1) * PAGE_SIZE + 1


def _clamp(page: int, total: int) -> tuple[int, int, int]:
    """(page, pages, offset) with ``page`` brought into range: a stale page button still shows something."""
    pages = max(1, -(-total // PAGE_SIZE))
    page = min(max(1, page), pages)
    return page, pages, (page - 1) * PAGE_SIZE


def _page_of(rows: list, page: int) -> Page:
    page, pages, offset = _clamp(page, len(rows))
    return Page(rows[offset : offset + PAGE_SIZE], page, pages, len(rows))


async def _plans_in_scope(scope: Scope, conn=None) -> list[Plan]:
    """The plans a scope may see (plans are few: hundreds, not millions), by code."""
    q = Plan.all().order_by("code")
    if conn is not None:
        q = q.using_db(conn)
    return [p for p in await q if scope.covers(p.departments)]


async def _plan_ids(scope: Scope) -> list[int]:
    return [p.id for p in await _plans_in_scope(scope)]


async def sent_message_key(channel: str, address: str, message_id: str) -> str | None:
    """The outbox key of the bot message ``message_id`` in this chat (so a page button can
    edit that message in place); None when it is not ours or not known."""
    if not message_id:
        return None
    keys = await (
        Outbox.filter(channel=channel, address=address, provider_id=message_id)
        .order_by("id")
        .limit(1)
        .values_list("dedupe_key", flat=True)
    )
    return keys[0] if keys else None


# --- plans --------------------------------------------------------------------------------------


async def _pending(plan_ids: list[int]) -> dict[int, Firing]:
    """Each plan's earliest announced, not yet drawn firing."""
    out: dict[int, Firing] = {}
    for f in await Firing.filter(plan_id__in=plan_ids, status=FiringStatus.ANNOUNCED).order_by("fire_at", "id"):
        out.setdefault(f.plan_id, f)
    return out


async def plans_page(scope: Scope, page: int, now: datetime, zone: ZoneInfo) -> Page:
    """/plans: the scope's plans, by code, with their next fire and pending firing."""
    plans = await _plans_in_scope(scope)
    shown = _page_of(plans, page)
    pending = await _pending([p.id for p in shown.items])
    items = []
    for p in shown.items:
        spec = spec_of(p)
        nxt = fire_times(spec, now, zone, limit=1)
        firing = pending.get(p.id)
        items.append(
            {
                "id": p.id,
                "code": p.code,
                "name": p.name,
                "departments": list(p.departments),
                "flight": p.flight,
                "active": p.active,
                "next": _local(nxt[0], zone) if nxt else "",
                "pending": firing.draw_ref if firing else "",
            }
        )
    return Page(items, shown.page, shown.pages, shown.total)


async def _plan(scope: Scope, code: str, conn=None) -> Plan:
    q = Plan.filter(code=code)
    if conn is not None:
        q = q.using_db(conn)
    plan = await q.first()
    if plan is None or not scope.covers(plan.departments):
        raise CoordinationError("plan_not_found", plan=code)
    return plan


async def plan_code(scope: Scope, plan_id: int) -> str:
    """The code of a plan named by id (a button); refused like a missing one outside the scope."""
    plan = await Plan.get_or_none(id=plan_id)
    if plan is None or not scope.covers(plan.departments):
        raise CoordinationError("plan_not_found", plan=str(plan_id))
    return plan.code


async def plan_detail(scope: Scope, code: str, now: datetime, zone: ZoneInfo) -> dict:
    """/plan CODE: items, ratios, the integrity survey's shares, team, schedule, next fires, the
    pending firing's commitment and the latest draws."""
    plan = await _plan(scope, code)
    spec = spec_of(plan)
    names = dict(await _item_names(spec.items))
    firing = (await _pending([plan.id])).get(plan.id)
    recent = await Draw.filter(plan_id=plan.id).order_by("-drawn_at", "-id").limit(3).values("draw_ref", "drawn_at")
    return {
        "id": plan.id,
        "code": plan.code,
        "name": plan.name,
        "departments": list(plan.departments),
        "flight": plan.flight,
        "active": plan.active,
        "items": [{"code": c, "name": names.get(c, "")} for c in spec.items],
        "ratios": [{"stratum": s, "ratio": r} for s, r in spec.ratios],
        "survey_shares": [{"stratum": s, "share": v} for s, v in (spec.survey_shares or DEFAULT_SHARES.items())],
        "team": {"size": spec.team.size, "seats": [s or "*" for s in spec.team.seats]},
        "response": {"working_days": spec.response.working_days, "time": spec.response.time},
        "schedule": {
            "cron": spec.schedule.cron or "",
            "dates": list(spec.schedule.dates),
            "announce_days": spec.schedule.announce_days,
        },
        "next": [_local(t, zone) for t in fire_times(spec, now, zone, limit=3)],
        "pending": (
            {"draw_ref": firing.draw_ref, "fire_at": _local(firing.fire_at, zone), "commitment": firing.commitment}
            if firing
            else None
        ),
        "draws": [{"draw_ref": d["draw_ref"], "drawn_at": _local(d["drawn_at"], zone)} for d in recent],
    }


async def _item_names(codes: Iterable[str]) -> list[tuple[str, str]]:
    from models.directory import Item

    return await Item.filter(code__in=list(codes)).values_list("code", "name")


# --- draw: preview, then confirm ------------------------------------------------------------------


@dataclass(frozen=True)
class DrawPreview:
    plan_id: int
    plan_code: str
    plan_name: str
    preview: draws.Preview
    firing_id: int | None  # the pending firing the confirmation will draw
    fire_at: str  # its fire time (local), "" when none
    due: bool  # False: announced for later, the scheduler draws it then
    firings: int  # the plan's firings so far: a confirmation without a pending firing checks it

    def context(self) -> dict:
        p = self.preview
        return {
            "plan": {"code": self.plan_code, "name": self.plan_name},
            "draw_ref": p.draw_ref,
            "fire_at": self.fire_at,
            "due": self.due,
            "flight": p.flight,
            "pool": p.pool,
            "inspectors": p.inspectors,
            "team_size": p.team_size,
            "drawn": p.drawn,
            "strata": [{"stratum": s.stratum, "pool": s.pool, "ratio": s.ratio, "drawn": s.drawn} for s in p.strata],
        }


async def draw_preview(scope: Scope, code: str, *, clock: Clock, zone: ZoneInfo) -> DrawPreview:
    """/draw CODE: what a draw would select now, per risk class. Writes nothing."""
    plan = await _plan(scope, code)
    try:
        preview = await draws.preview(plan.code, clock=clock, zone=zone)
    except draws.DrawError as exc:
        raise CoordinationError("draw_failed", error=exc.code, **exc.params) from None
    firing = (await _pending([plan.id])).get(plan.id)
    return DrawPreview(
        plan_id=plan.id,
        plan_code=plan.code,
        plan_name=plan.name,
        preview=preview,
        firing_id=firing.id if firing else None,
        fire_at=_local(firing.fire_at, zone) if firing else "",
        due=firing is None or clock.now() >= firing.fire_at,
        firings=await Firing.filter(plan_id=plan.id).count(),
    )


@dataclass(frozen=True)
class Drawn:
    result: draws.DrawResult

    def context(self, zone: ZoneInfo) -> dict:
        r = self.result
        return {
            "draw_ref": r.draw_ref,
            "plan": r.plan_code,
            "commitment": r.commitment,
            "announced_now": r.announced_now,
            "pool": r.pool,
            "inspectors": r.inspectors,
            "inspections": r.inspections,
            "assignments": r.assignments,
            "unstaffable": r.unstaffable,
            "flight": r.flight,
            "reveal_at": _local(r.reveal_at, zone),
            "digest": r.inspections_digest,
            "strata": [{"stratum": s, "pool": c.pool, "ratio": c.ratio, "drawn": c.drawn} for s, c in r.strata.items()],
        }


async def draw_firing(
    scope: Scope, firing_id: int, *, clock: Clock, zone: ZoneInfo, locale: str = DEFAULT_LOCALE
) -> Drawn:
    """Confirm: draw the announced firing the preview showed. Drawing it twice is refused by
    the draw service (and by the database: ``draw_ref`` is unique), so a double tap draws once."""
    firing = await Firing.get_or_none(id=firing_id).prefetch_related("plan")
    if firing is None or not scope.covers(firing.plan.departments):
        raise CoordinationError("firing_not_found", firing=firing_id)
    async with in_transaction():
        try:
            result = await draws.draw(firing.draw_ref, clock=clock, zone=zone, locale=locale)
        except draws.DrawError as exc:
            raise CoordinationError("draw_failed", error=exc.code, **exc.params) from None
        await _audit_draw(scope, result, clock.now())
    return Drawn(result)


async def draw_now(
    scope: Scope, plan_id: int, firings_seen: int, *, clock: Clock, zone: ZoneInfo, locale: str = DEFAULT_LOCALE
) -> Drawn:
    """Confirm when no firing was pending: announce one now and draw it, as the CLI does (the
    commitment was therefore not published ahead; the reply says so).

    The plan row is locked and its firings counted: if any firing was announced since the
    preview (a double tap, another coordinator, the scheduler), nothing is drawn."""
    async with in_transaction() as conn:
        plan = await Plan.filter(id=plan_id).using_db(conn).select_for_update().first()
        if plan is None or not scope.covers(plan.departments):
            raise CoordinationError("plan_not_found", plan=str(plan_id))
        if await Firing.filter(plan_id=plan.id).using_db(conn).count() != firings_seen:
            latest = await Firing.filter(plan_id=plan.id).using_db(conn).order_by("-id").first()
            raise CoordinationError("changed_since_preview", plan=plan.code, draw_ref=latest.draw_ref if latest else "")
        try:
            result = await draws.draw_plan(plan.code, clock=clock, zone=zone, locale=locale)
        except draws.DrawError as exc:
            raise CoordinationError("draw_failed", error=exc.code, **exc.params) from None
        await _audit_draw(scope, result, clock.now())
    return Drawn(result)


async def _audit_draw(scope: Scope, result: draws.DrawResult, now: datetime) -> None:
    await audit.append(
        scope.actor,
        "draw.confirmed",
        f"draw:{result.draw_ref}",
        {
            "plan": result.plan_code,
            "announced_now": result.announced_now,
            "inspections": result.inspections,
            "assignments": result.assignments,
        },
        now,
    )


# --- a draw's state -----------------------------------------------------------------------------


async def _draw(scope: Scope, draw_ref: str) -> Draw:
    row = await Draw.get_or_none(draw_ref=draw_ref).prefetch_related("plan")
    if row is None or not scope.covers(row.plan.departments):
        firing = await Firing.get_or_none(draw_ref=draw_ref).prefetch_related("plan")
        if firing is not None and scope.covers(firing.plan.departments):
            raise CoordinationError("not_drawn", draw_ref=draw_ref)
        raise CoordinationError("draw_not_found", draw_ref=draw_ref)
    return row


async def draw_status(scope: Scope, draw_ref: str, now: datetime, zone: ZoneInfo) -> dict:
    """/status DRAW: assignments by state, inspections unstaffable and done."""
    d = await _draw(scope, draw_ref)
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
        "sent": sum(a.values()),
        "pending": a.get("sent", 0),
        "overdue": overdue,
        "accepted": a.get("accepted", 0),
        "recused": a.get("recused", 0) + a.get("no_response", 0) + a.get("replaced", 0),
        "cancelled": a.get("cancelled", 0),
        "unstaffable": i.get("unstaffable", 0),
        "done": i.get("done", 0),
    }


async def pending_page(scope: Scope, page: int, now: datetime, zone: ZoneInfo) -> Page:
    """/pending: unanswered assignments past their deadline or due within a day, soonest first."""
    q = Assignment.filter(
        status=AssignmentStatus.SENT, deadline__lte=now + NEAR_DEADLINE, draw__plan_id__in=await _plan_ids(scope)
    )
    page, pages, offset = _clamp(page, total := await q.count())
    rows = await (
        q.order_by("deadline", "id")
        .offset(offset)
        .limit(PAGE_SIZE)
        .prefetch_related("inspector", "inspection", "draw__plan")
    )
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
        }
        for a in rows
    ]
    return Page(items, page, pages, total)


# --- recusals: review and reject ------------------------------------------------------------------


async def _recusal_conflicts(recusals: list[Recusal], conn=None) -> dict[int, Conflict]:
    """The standing conflict each recusal created. ``services.draws.recuse`` writes exactly one
    RECUSAL-sourced conflict per recusal, for (recusing inspector, entity), in the same order;
    so per pair, the k-th recusal goes with the k-th such conflict."""
    if not recusals:
        return {}
    inspectors = sorted({r.recusing_id for r in recusals})
    entities = sorted({r.inspection.entity_id for r in recusals})
    rq = Recusal.filter(recusing_id__in=inspectors, inspection__entity_id__in=entities).order_by("id")
    cq = Conflict.filter(inspector_id__in=inspectors, entity_id__in=entities, source=ConflictSource.RECUSAL).order_by(
        "id"
    )
    if conn is not None:
        rq, cq = rq.using_db(conn), cq.using_db(conn)
    all_recusals = await rq.values_list("id", "recusing_id", "inspection__entity_id")
    by_pair: dict[tuple[int, int], list[Conflict]] = {}
    for c in await cq:
        by_pair.setdefault((c.inspector_id, c.entity_id), []).append(c)
    out: dict[int, Conflict] = {}
    seen: dict[tuple[int, int], int] = {}
    for rid, inspector_id, entity_id in all_recusals:
        pair = (inspector_id, entity_id)
        k = seen.get(pair, 0)
        seen[pair] = k + 1
        if k < len(by_pair.get(pair, ())):
            out[rid] = by_pair[pair][k]
    return out


async def _why_not_rejectable(r: Recusal, conn=None) -> str:
    """ "" when the recusal can be rejected now, else the reason (a text code)."""
    if r.rejected_at is not None:
        return "already_rejected"
    later = Recusal.filter(inspection_id=r.inspection_id, ordinal__gt=r.ordinal)
    asg = Assignment.filter(id=r.assignment_id)
    if conn is not None:
        later, asg = later.using_db(conn), asg.using_db(conn)
    if await later.exists():
        return "later_recusal"  # the team has moved on; undoing this one would not restore it
    recusing = await asg.first()
    if recusing is None or recusing.status != AssignmentStatus.RECUSED:
        return "changed"
    if r.inspection.status in (InspectionStatus.DONE, InspectionStatus.CANCELLED):
        return "inspection_closed"
    if r.replacement_assignment_id:
        q = Assignment.filter(id=r.replacement_assignment_id)
        if conn is not None:
            q = q.using_db(conn)
        replacement = await q.first()
        if replacement is None or replacement.status not in OPEN:
            return "replacement_not_open"
    return ""


def _recusal_item(r: Recusal, conflict: Conflict | None, zone: ZoneInfo, why_not: str) -> dict:
    return {
        "id": r.id,
        "at": _local(r.at, zone),
        "name": r.recusing.name,
        "cert_no": r.recusing.cert_no,
        "type": r.reason_type.value,
        "note": conflict.note if conflict else "",
        "plan": r.inspection.draw.plan.name,
        "draw_ref": r.inspection.draw.draw_ref,
        "no": r.inspection.no,
        "replacement": r.replacement.name if r.replacement else "",
        "unstaffable": r.unstaffable_reason,
        "rejected": r.rejected_at is not None,
        "rejected_at": _local(r.rejected_at, zone),
        "rejection_note": r.rejection_note,
        "rejectable": not why_not,
    }


async def recusals_page(scope: Scope, page: int, zone: ZoneInfo) -> Page:
    """/recusals: the newest first, with their type and note (a coordinator may read notes) and
    whether each can still be rejected."""
    q = Recusal.filter(inspection__draw__plan_id__in=await _plan_ids(scope))
    page, pages, offset = _clamp(page, total := await q.count())
    rows = await (
        q.order_by("-at", "-id")
        .offset(offset)
        .limit(PAGE_SIZE)
        .prefetch_related("recusing", "replacement", "inspection__draw__plan")
    )
    conflicts = await _recusal_conflicts(rows)
    items = [_recusal_item(r, conflicts.get(r.id), zone, await _why_not_rejectable(r)) for r in rows]
    return Page(items, page, pages, total)


async def _recusal(scope: Scope, recusal_id: int, conn=None) -> Recusal:
    q = Recusal.filter(id=recusal_id)
    if conn is not None:
        q = q.using_db(conn)
    r = await q.prefetch_related("recusing", "replacement", "inspection__draw__plan").first()
    if r is None or not scope.covers(r.inspection.draw.plan.departments):
        raise CoordinationError("recusal_not_found", recusal=recusal_id)
    return r


async def recusal_for_review(scope: Scope, recusal_id: int, zone: ZoneInfo) -> dict:
    """One recusal as the rejection's confirmation shows it; refused when it cannot be rejected."""
    r = await _recusal(scope, recusal_id)
    why_not = await _why_not_rejectable(r)
    if why_not:
        raise CoordinationError(why_not, recusal=recusal_id)
    return _recusal_item(r, (await _recusal_conflicts([r])).get(r.id), zone, why_not)


@dataclass(frozen=True)
class Rejected:
    recusal_id: int
    name: str  # the reinstated inspector
    replacement: str  # whose assignment was cancelled ("" when none had been found)
    draw_ref: str
    no: int
    told: list[str] = field(default_factory=list)  # the team members told


async def reject_recusal(scope: Scope, recusal_id: int, note: str, *, clock: Clock, zone: ZoneInfo) -> Rejected:
    """Reject a recusal, in one transaction: mark it rejected, withdraw the standing conflict it
    created, put the recusing inspector's assignment back to ``sent`` (a fresh response
    deadline) with a message, cancel the replacement's assignment with a message, tell the rest
    of the team, and append it all to the audit chain.

    Only the latest recusal of an inspection can be rejected, and only while the replacement's
    assignment is still open: otherwise the team has moved on and there is nothing to restore.
    The inspection is locked first, so a rejection and a recusal on one team run one after the
    other, and a second rejection (a double tap) finds it already rejected."""
    now = clock.now()
    async with in_transaction() as conn:
        r = await _recusal(scope, recusal_id, conn)
        await Inspection.filter(id=r.inspection_id).using_db(conn).select_for_update().first()
        r = await _recusal(scope, recusal_id, conn)  # as it is now, under the lock
        why_not = await _why_not_rejectable(r, conn)
        if why_not:
            raise CoordinationError(why_not, recusal=recusal_id)
        n = (
            await Recusal.filter(id=r.id, rejected_at=None)
            .using_db(conn)
            .update(rejected_at=now, rejected_by=scope.actor[:64], rejection_note=note)
        )
        if n != 1:
            raise CoordinationError("already_rejected", recusal=recusal_id)
        insp, draw_row = r.inspection, r.inspection.draw
        spec = parse_plan((await Firing.get(id=draw_row.firing_id).using_db(conn)).params)
        await (
            Assignment.filter(id=r.assignment_id, status=AssignmentStatus.RECUSED)
            .using_db(conn)
            .update(
                status=AssignmentStatus.SENT,
                responded_at=None,
                reminded_at=None,
                escalated_at=None,
                deadline=response_deadline(now, spec, zone),
            )
        )
        if r.replacement_assignment_id:
            await (
                Assignment.filter(id=r.replacement_assignment_id, status__in=list(OPEN))
                .using_db(conn)
                .update(status=AssignmentStatus.CANCELLED, responded_at=now)
            )
        conflict = (await _recusal_conflicts([r], conn)).get(r.id)
        if conflict is not None and conflict.withdrawn_at is None:
            await Conflict.filter(id=conflict.id).using_db(conn).update(withdrawn_at=now)
        await _restaff(insp, draw_row, spec.team.size, conn)
        where = {"draw": draw_row.draw_ref, "no": insp.no}
        await audit.append(
            scope.actor,
            "recusal.rejected",
            f"recusal:{r.id}",
            {**where, "ordinal": r.ordinal, "conflict_withdrawn": conflict.id if conflict else None},
            now,
            connection=conn,
        )
        await audit.append(
            scope.actor, "assignment.reinstated", f"assignment:{r.assignment_id}", where, now, connection=conn
        )
        if r.replacement_assignment_id:
            await audit.append(
                scope.actor,
                "assignment.cancelled",
                f"assignment:{r.replacement_assignment_id}",
                {**where, "reason": "recusal_rejected"},
                now,
                connection=conn,
            )
        told = await _tell_rejection(r, note, now, zone, conn)
    return Rejected(
        r.id, r.recusing.name, r.replacement.name if r.replacement else "", draw_row.draw_ref, insp.no, told
    )


async def _restaff(insp: Inspection, draw_row: Draw, size: int, conn) -> None:
    """An inspection flagged unstaffable by this recusal is staffed again once every seat is held."""
    if insp.status != InspectionStatus.UNSTAFFABLE:
        return
    held = await Assignment.filter(inspection_id=insp.id, status__in=list(HOLDING_SEAT)).using_db(conn).count()
    if held < size:
        return
    n = (
        await Inspection.filter(id=insp.id, status=InspectionStatus.UNSTAFFABLE)
        .using_db(conn)
        .update(status=InspectionStatus.STAFFED, unstaffable_reason="")
    )
    if n:
        await (
            Draw.filter(id=draw_row.id, unstaffable_count__gt=0)
            .using_db(conn)
            .update(unstaffable_count=F("unstaffable_count") - 1)
        )


async def _locales(inspector_ids: Iterable[int], conn) -> dict[int, str]:
    """Each inspector's chat locale (the default where they have no chat yet)."""
    rows = await (
        ChatBinding.filter(inspector_id__in=list(inspector_ids), role=Role.INSPECTOR, revoked_at=None)
        .using_db(conn)
        .values_list("inspector_id", "locale")
    )
    return dict(rows)


async def _tell_rejection(r: Recusal, note: str, now: datetime, zone: ZoneInfo, conn) -> list[str]:
    """The reinstated inspector (their assignment again, with its buttons), the replacement
    (cancelled), and the rest of the team (who is back). Returns the names of the team told."""
    from services import assignments

    insp, draw_row = r.inspection, r.inspection.draw
    team = await (
        Assignment.filter(inspection_id=insp.id, status__in=list(HOLDING_SEAT))
        .exclude(id=r.assignment_id)
        .using_db(conn)
        .prefetch_related("inspector")
    )
    people = [r.recusing_id] + ([r.replacement_id] if r.replacement_id else []) + [a.inspector_id for a in team]
    locales = await _locales(people, conn)
    asg = await assignments.owned(r.recusing_id, r.assignment_id, conn)
    view = await assignments.view(asg, now, zone, conn)
    where = {"no": insp.no, "draw_ref": draw_row.draw_ref, "plan": draw_row.plan.name}
    messages = [
        Message(
            dedupe_key=f"rejected:{r.id}:reinstated",
            recipient_kind=RecipientKind.INSPECTOR,
            recipient_id=r.recusing_id,
            template="recusal_rejected.j2",
            priority=-1,
            locale=locales.get(r.recusing_id, DEFAULT_LOCALE),
            # Accept only: the coordinator has just ruled on this conflict claim (and the protocol
            # has no line for a second recusal after a rejection; see the module's docstring).
            context={
                "task": view,
                "note": note,
                "keyboard": ["assignment_accept", asg.id],
            },
        )
    ]
    if r.replacement_assignment_id:
        messages.append(
            Message(
                dedupe_key=f"rejected:{r.id}:cancelled",
                recipient_kind=RecipientKind.INSPECTOR,
                recipient_id=r.replacement_id,
                template="replacement_cancelled.j2",
                priority=-1,
                locale=locales.get(r.replacement_id, DEFAULT_LOCALE),
                context={**where, "assignment": r.replacement_assignment_id, "back": r.recusing.name},
            )
        )
    messages += [
        Message(
            dedupe_key=f"rejected:{r.id}:team:{a.id}",
            recipient_kind=RecipientKind.INSPECTOR,
            recipient_id=a.inspector_id,
            template="team_reinstated.j2",
            locale=locales.get(a.inspector_id, DEFAULT_LOCALE),
            context={**where, "back": r.recusing.name, "off": r.replacement.name if r.replacement else ""},
        )
        for a in team
    ]
    await enqueue(messages, now, connection=conn)
    return [a.inspector.name for a in team]


# --- alerts -------------------------------------------------------------------------------------


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
    page, pages, offset = _clamp(page, total)
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


async def acknowledge_alert(scope: Scope, alert_id: int, now: datetime) -> str:
    """Acknowledge an alert (once; on the audit chain). Returns acknowledged / already_acknowledged."""
    async with in_transaction() as conn:
        alert = await Alert.get_or_none(id=alert_id).using_db(conn)
        if alert is None or not scope.covers(alert.departments):
            raise CoordinationError("alert_not_found", alert=alert_id)
        n = await Alert.filter(id=alert_id, acknowledged_at=None).using_db(conn).update(acknowledged_at=now)
        if n == 0:
            return "already_acknowledged"
        await audit.append(
            scope.actor, "alert.acknowledged", f"alert:{alert_id}", {"kind": alert.kind}, now, connection=conn
        )
    return "acknowledged"


# --- the monthly report ----------------------------------------------------------------------------


async def monthly_report(scope: Scope, month: str, now: datetime, *, data_dir: Path, zone: ZoneInfo, locale: str):
    """The monthly report (services.reports) of the scope's departments (an admin: all)."""
    from services import reports

    try:
        return await reports.monthly_report(
            month,
            None if scope.everything else sorted(scope.departments),
            now,
            data_dir=data_dir,
            zone=zone,
            locale=locale,
        )
    except reports.ReportError as exc:
        raise CoordinationError(f"report_{exc.code}", **{"month": month, **exc.params}) from None


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
    await _draw(scope, draw_ref)
    with tempfile.TemporaryDirectory(prefix="inspectbot-verify-") as tmp:
        try:
            exported = await draws.export(draw_ref, Path(tmp), clock=clock)
        except draws.DrawError as exc:
            raise CoordinationError("draw_failed", error=exc.code, **exc.params) from None
        if exported.sealed:
            return Verified(draw_ref, True, [])
        files = {name: (Path(tmp) / name).read_bytes() for name in exported.files}
    try:
        lines = await asyncio.to_thread(bundle.verify, files)
    except bundle.BundleError as exc:
        return Verified(draw_ref, False, [], unreadable=exc.code)
    return Verified(draw_ref, False, lines)
