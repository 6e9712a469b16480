"""Recusals (回避): an inspector's recusal and the replacement drawn for it, and a coordinator's
review of recusals (/recusals) and rejection of one.

:func:`recuse` is the one use case of a recusal, in one transaction: the recusal enters the
draw's published recusal log, a standing conflict is stored, the replacement is drawn with
``domain.draw.replacement`` and sent (or the inspection is marked unstaffable), and the audit
chain, the team and the coordinators are told.

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
recusals on such an inspection (:func:`services.assignments.ensure_recusable` refuses them
from an inspector).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from tortoise.expressions import F
from tortoise.transactions import in_transaction

from core import db
from core.clock import Clock
from core.clock import local_minute as _local
from domain import draw as engine
from domain.errors import ServiceError
from domain.plans import PlanSpec, parse_plan
from domain.refs import inspection_ref
from domain.sealing import draw_is_sealed
from models.directory import Conflict, ConflictSource, ConflictType, Entity, Inspector
from models.draws import (
    HOLDING_SEAT,
    Assignment,
    AssignmentStatus,
    Draw,
    Firing,
    FiringSecret,
    Inspection,
    InspectionStatus,
    Recusal,
)
from models.messaging import ChatBinding, RecipientKind, Role
from services import audit
from services.alerts import raise_alert
from services.assignments import OPEN, AssignmentError, ensure_recusable, owned, view
from services.draws.common import COUNTED_STATUSES, DrawError, fetch_rows, marks
from services.draws.stored import stored_inputs
from services.draws.write import assignment_message, base_context
from services.identity import inspectors_with_chat
from services.outbox import Message, enqueue
from services.plans import response_deadline
from services.scope import PAGE_SIZE, Page, Scope, clamp, plan_ids

RATE_WINDOW = timedelta(days=365)
DEFAULT_LOCALE = "zh-CN"


class RecusalError(ServiceError):
    """A coordinator's review refused; ``code`` names a text (``coord_error`` in texts/coordinator.j2)."""


@dataclass(frozen=True)
class Recused:
    replacement_name: str | None
    unstaffable_reason: str | None


@dataclass(frozen=True)
class RecusalResult:
    recusal_id: int
    inspection_id: int
    ordinal: int  # earlier recusals on the inspection (0 for the first), as in recusals.tsv
    replacement_assignment_id: int | None
    replacement_inspector_id: int | None
    unstaffable_reason: str | None


# --- an inspector recuses ------------------------------------------------------------------------


async def recuse(
    inspector_id: int,
    assignment_id: int,
    reason_type: ConflictType,
    note: str,
    *,
    clock: Clock,
    zone: ZoneInfo,
    locale: str,
    actor: str | None = None,
    digest: bool = False,
) -> Recused:
    """An inspector's recusal (回避), in one transaction: record it and draw the replacement
    (:func:`record_and_replace`), append it to the audit chain, tell the rest of the team who
    changed and the coordinators why (an alert; another when the inspection is left
    unstaffable or the inspector recuses far more often than their unit). Called inside a
    caller's transaction (the deadline sweep's), it joins it; ``digest``: those alerts come in
    bulk (the sweep's no-response recusals), so their chat message waits for the next digest
    (``services.alerts.send_digests``)."""
    now = clock.now()
    async with in_transaction() as conn:
        asg = await owned(inspector_id, assignment_id, conn)
        if asg.status not in OPEN:
            raise AssignmentError(
                "asg_not_open", ref=inspection_ref(asg.draw.draw_ref, asg.inspection.no), status=asg.status.value
            )
        await ensure_recusable(asg, conn)
        result = await record_and_replace(
            asg.id, reason_type, note, clock=clock, zone=zone, locale=locale, connection=conn
        )
        recusing = await Inspector.get(id=inspector_id).using_db(conn)
        replacement = (
            await Inspector.get(id=result.replacement_inspector_id).using_db(conn)
            if result.replacement_inspector_id
            else None
        )
        insp = asg.inspection
        await audit.append(
            actor or f"inspector:{inspector_id}",
            "assignment.recused",
            f"assignment:{asg.id}",
            {"draw": asg.draw.draw_ref, "no": insp.no, "type": reason_type.value, "ordinal": result.ordinal},
            now,
            connection=conn,
        )
        if replacement is not None:
            await audit.append(
                "system",
                "assignment.replaced",
                f"assignment:{result.replacement_assignment_id}",
                {"draw": asg.draw.draw_ref, "no": insp.no, "replaces": asg.id, "inspector": replacement.cert_no},
                now,
                connection=conn,
            )
        # the rest of the team
        others = await (
            Assignment.filter(inspection_id=insp.id, status__in=list(HOLDING_SEAT))
            .exclude(id=result.replacement_assignment_id or 0)
            .using_db(conn)
            .values_list("id", "inspector_id")
        )
        context = {
            "no": insp.no,
            "draw_ref": asg.draw.draw_ref,
            "plan": asg.draw.plan.name,
            "old": recusing.name,
            "new": replacement.name if replacement else None,
        }
        await enqueue(
            [
                Message(
                    dedupe_key=f"team:{result.recusal_id}:{other_asg}",
                    recipient_kind=RecipientKind.INSPECTOR,
                    recipient_id=other_inspector,
                    template="team_changed.j2",
                    context=context,
                    locale=locale,
                )
                for other_asg, other_inspector in others
            ],
            now,
            connection=conn,
        )
        # the coordinators: why (the reason stays with them, never on a public page)
        departments = set(asg.draw.plan.departments)
        await raise_alert(
            f"recusal:{result.recusal_id}",
            "recusal_recorded.j2",
            {
                **context,
                "type": reason_type.value,
                "note": note,
                "recusal": result.recusal_id,
                "cert_no": recusing.cert_no,
            },
            departments,
            now,
            connection=conn,
            digest=digest,
        )
        if result.unstaffable_reason:
            await audit.append(
                "system",
                "inspection.unstaffable",
                f"inspection:{insp.id}",
                {"draw": asg.draw.draw_ref, "no": insp.no, "reason": result.unstaffable_reason},
                now,
                connection=conn,
            )
            await raise_alert(
                f"unstaffable:{insp.id}:{result.ordinal}",
                "unstaffable.j2",
                {**context, "reason": result.unstaffable_reason},
                departments,
                now,
                connection=conn,
                digest=digest,
            )
        await flag_recusal_rate(recusing, departments, now, conn, digest=digest)
    return Recused(replacement.name if replacement else None, result.unstaffable_reason)


async def record_and_replace(
    assignment_id: int,
    reason_type: ConflictType | str,
    note: str = "",
    *,
    clock: Clock,
    zone: ZoneInfo,
    locale: str = "zh-CN",
    connection=None,
) -> RecusalResult:
    """The draw's side of a recusal: record it and draw its replacement, in the transaction of
    ``connection`` (:func:`recuse`'s), else in one of its own.

    The recusal enters the draw's recusal log (published, so the replacement can be
    re-derived), a standing conflict is stored (later draws exclude the pair), and the
    replacement drawn by ``domain.draw.replacement`` gets the assignment — or, with nobody
    eligible, the inspection is marked unstaffable with the reason. No audit row, no alert:
    those are :func:`recuse`'s.
    """
    reason_type = ConflictType(reason_type)
    now = clock.now()
    asg = await Assignment.get_or_none(id=assignment_id).prefetch_related("inspection", "inspector", "draw")
    if asg is None:
        raise DrawError("assignment_not_found", assignment=assignment_id)
    draw_row, inspection, recusing = asg.draw, asg.inspection, asg.inspector
    firing = await Firing.get(id=draw_row.firing_id)
    spec = parse_plan(firing.params)
    secret_row = await FiringSecret.get(firing_id=firing.id)
    inputs = await stored_inputs(draw_row, bytes(secret_row.secret), with_pool=False)
    async with db.transaction(connection) as conn:
        # Lock the inspection (PostgreSQL) so two recusals on one team are drawn one after the other.
        await Inspection.filter(id=inspection.id).using_db(conn).select_for_update().first()
        current = await Assignment.get(id=assignment_id).using_db(conn)
        if current.status not in (AssignmentStatus.SENT, AssignmentStatus.ACCEPTED):
            raise DrawError("assignment_not_open", assignment=assignment_id, status=current.status.value)
        team = await _current_team(inspection.id, inputs.team.size, conn)
        earlier = await Recusal.filter(inspection_id=inspection.id).using_db(conn).count()
        # every exclusion known now: standing conflicts with the entity (earlier recusals among
        # them) and this recusal itself
        excluded = await _entity_conflicts(inspection.entity_id, now, conn)
        excluded.add((recusing.cert_no, inspection.entity_key))
        drawn = engine.Inspection(
            no=inspection.no,
            entity=inspection.entity_key,
            stratum=inspection.stratum,
            rank=int(inspection.rank, 16),
            team=tuple(team),
            division=inspection.division,
        )
        choice = engine.replacement(
            inputs, bytes(secret_row.seed), drawn, earlier, team, recusing.cert_no, frozenset(excluded)
        )
        await (
            Assignment.filter(id=assignment_id).using_db(conn).update(status=AssignmentStatus.RECUSED, responded_at=now)
        )
        await Conflict.create(
            inspector_id=recusing.id,
            entity_id=inspection.entity_id,
            type=reason_type,
            source=ConflictSource.RECUSAL,
            note=note,
            using_db=conn,
        )
        new_asg = None
        if choice.inspector is not None:
            new_asg = await Assignment.create(
                draw_id=draw_row.id,
                inspection_id=inspection.id,
                inspector_id=await _inspector_id(choice.inspector, conn),
                seat=asg.seat,
                ordinal=earlier + 1,
                status=AssignmentStatus.SENT,
                deadline=response_deadline(now, spec, zone),
                created_at=now,
                using_db=conn,
            )
        else:
            await _mark_unstaffable(draw_row.id, inspection.id, choice.reason or "", conn)
        log_row = await Recusal.create(
            inspection_id=inspection.id,
            assignment_id=assignment_id,
            seat=choice.seat or asg.seat,
            ordinal=earlier,
            recusing_id=recusing.id,
            replacement_id=new_asg.inspector_id if new_asg else None,
            replacement_assignment_id=new_asg.id if new_asg else None,
            reason_type=reason_type,
            exclusions=list(choice.exclusions),
            unstaffable_reason="" if new_asg else (choice.reason or ""),
            at=now,
            using_db=conn,
        )
        if new_asg is not None:
            context = await _replacement_context(draw_row, spec, inspection, new_asg, zone, now, conn)
            await enqueue([assignment_message(new_asg.id, new_asg.inspector_id, context, locale)], now, connection=conn)
    return RecusalResult(
        recusal_id=log_row.id,
        inspection_id=inspection.id,
        ordinal=earlier,
        replacement_assignment_id=new_asg.id if new_asg else None,
        replacement_inspector_id=new_asg.inspector_id if new_asg else None,
        unstaffable_reason=None if new_asg else (choice.reason or ""),
    )


async def _mark_unstaffable(draw_id: int, inspection_id: int, reason: str, conn) -> None:
    """Flag the inspection (once: a second failed replacement on it changes no count)."""
    changed = await (
        Inspection.filter(id=inspection_id)
        .exclude(status=InspectionStatus.UNSTAFFABLE)
        .using_db(conn)
        .update(status=InspectionStatus.UNSTAFFABLE, unstaffable_reason=reason)
    )
    if changed:
        await Draw.filter(id=draw_id).using_db(conn).update(unstaffable_count=F("unstaffable_count") + 1)


async def _current_team(inspection_id: int, size: int, conn) -> list[str]:
    """The team as it stands, in seat order, a vacant seat as "" (as ``replacement`` wants it)."""
    rows = await fetch_rows(
        "SELECT a.seat, p.cert_no FROM assignment a JOIN inspector p ON p.id = a.inspector_id "
        f"WHERE a.inspection_id = ? AND a.status IN ({marks(len(COUNTED_STATUSES))})",
        [inspection_id, *COUNTED_STATUSES],
        conn,
    )
    team = [""] * size
    for seat, key in rows:
        team[seat - 1] = key
    return team


async def _entity_conflicts(entity_id: int, now: datetime, conn) -> set[tuple[str, str]]:
    rows = await fetch_rows(
        "SELECT p.cert_no, e.uscc FROM conflict c JOIN inspector p ON p.id = c.inspector_id "
        "JOIN entity e ON e.id = c.entity_id WHERE c.entity_id = ? AND c.withdrawn_at IS NULL "
        "AND (c.expires_at IS NULL OR c.expires_at > ?)",
        [entity_id, now],
        conn,
    )
    return {(k, e) for k, e in rows}


async def _inspector_id(key: str, conn) -> int:
    rows = await fetch_rows("SELECT id FROM inspector WHERE cert_no = ?", [key], conn)
    return rows[0][0]


async def _replacement_context(
    draw_row: Draw, spec: PlanSpec, inspection: Inspection, new_asg: Assignment, zone: ZoneInfo, now: datetime, conn
) -> dict:
    """The replacement's assignment message: like the draw's, naming the entity unless the
    flight draw is still sealed."""
    names = dict(
        await fetch_rows(f"SELECT code, name FROM item WHERE code IN ({marks(len(spec.items))})", spec.items, conn)
    )
    team = await (
        Assignment.filter(inspection_id=inspection.id, status__in=list(HOLDING_SEAT))
        .using_db(conn)
        .order_by("seat")
        .prefetch_related("inspector")
    )
    context = base_context(draw_row, spec, [names[c] for c in spec.items if c in names], new_asg.deadline, zone)
    context.update(no=inspection.no, seat=new_asg.seat, team=[a.inspector.name for a in team], replacement=True)
    if draw_is_sealed(draw_row, now):
        context["reveal_at"] = context["window"]["start"]
    else:
        entity = await Entity.get(id=inspection.entity_id).using_db(conn)
        context["entity"] = {"name": entity.name, "address": entity.address, "uscc": inspection.entity_key}
    return context


async def flag_recusal_rate(
    inspector: Inspector, departments: set[str], now: datetime, conn, *, digest: bool = False
) -> bool:
    """Conflict claims are not blindly trusted: an inspector who recuses far more often than
    their unit (at least 3 recusals in a year and a rate above max(3 × the unit's, the unit's
    + 30 points)) is flagged to the coordinators, once per inspector per month."""
    since = now - RATE_WINDOW
    mine = await Assignment.filter(inspector_id=inspector.id, created_at__gte=since).using_db(conn).count()
    my_recusals = await Recusal.filter(recusing_id=inspector.id, at__gte=since).using_db(conn).count()
    unit_asg = (
        await Assignment.filter(inspector__unit_id=inspector.unit_id, created_at__gte=since).using_db(conn).count()
    )
    unit_rec = await Recusal.filter(recusing__unit_id=inspector.unit_id, at__gte=since).using_db(conn).count()
    if my_recusals < 3 or mine == 0:
        return False
    rate = my_recusals / mine
    others_asg, others_rec = unit_asg - mine, unit_rec - my_recusals
    unit_rate = others_rec / others_asg if others_asg > 0 else 0.0
    if rate <= max(3 * unit_rate, unit_rate + 0.30):
        return False
    return await raise_alert(
        f"recusal_rate:{inspector.id}:{now:%Y-%m}",
        "recusal_rate.j2",
        {
            "name": inspector.name,
            "cert_no": inspector.cert_no,
            "recusals": my_recusals,
            "assignments": mine,
            "rate": round(rate * 100),
            "unit_rate": round(unit_rate * 100),
        },
        departments,
        now,
        connection=conn,
        digest=digest,
    )


# --- a coordinator's review and rejection --------------------------------------------------------


async def _recusal_conflicts(recusals: list[Recusal], conn=None) -> dict[int, Conflict]:
    """The standing conflict each recusal created. :func:`record_and_replace` writes exactly one
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
    q = Recusal.filter(inspection__draw__plan_id__in=await plan_ids(scope))
    page, pages, offset = clamp(page, total := await q.count())
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
        raise RecusalError("recusal_not_found")  # no number: outside the scope reads as missing
    return r


def _named(r: Recusal) -> dict:
    """How a chat text names a recusal: who recused from which inspection (its public reference),
    never the row id (only the latest recusal of an inspection can be rejected, so the two name it)."""
    return {"ref": inspection_ref(r.inspection.draw.draw_ref, r.inspection.no), "name": r.recusing.name}


async def recusal_for_review(scope: Scope, recusal_id: int, zone: ZoneInfo) -> dict:
    """One recusal as the rejection's confirmation shows it; refused when it cannot be rejected."""
    r = await _recusal(scope, recusal_id)
    why_not = await _why_not_rejectable(r)
    if why_not:
        raise RecusalError(why_not, **_named(r))
    return _recusal_item(r, (await _recusal_conflicts([r])).get(r.id), zone, why_not)


@dataclass(frozen=True)
class Rejected:
    recusal_id: int
    name: str  # the reinstated inspector
    replacement: str  # whose assignment was cancelled ("" when none had been found)
    draw_ref: str
    no: int
    told: list[str] = field(default_factory=list)  # the team members told (they have a chat)
    untold: list[str] = field(default_factory=list)  # those it concerns who have no chat: not told


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
            raise RecusalError(why_not, **_named(r))
        n = (
            await Recusal.filter(id=r.id, rejected_at=None)
            .using_db(conn)
            .update(rejected_at=now, rejected_by=scope.actor[:64], rejection_note=note)
        )
        if n != 1:
            raise RecusalError("already_rejected", **_named(r))
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
        told, untold = await _tell_rejection(r, note, now, zone, conn)
    return Rejected(
        r.id, r.recusing.name, r.replacement.name if r.replacement else "", draw_row.draw_ref, insp.no, told, untold
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


async def _tell_rejection(r: Recusal, note: str, now: datetime, zone: ZoneInfo, conn) -> tuple[list[str], list[str]]:
    """The reinstated inspector (their assignment again, with its buttons), the replacement
    (cancelled), and the rest of the team (who is back). Returns the names of the team told and
    the names of everyone concerned who has no chat (their messages wait; they were not told)."""
    insp, draw_row = r.inspection, r.inspection.draw
    team = await (
        Assignment.filter(inspection_id=insp.id, status__in=list(HOLDING_SEAT))
        .exclude(id=r.assignment_id)
        .using_db(conn)
        .prefetch_related("inspector")
    )
    people = [r.recusing_id] + ([r.replacement_id] if r.replacement_id else []) + [a.inspector_id for a in team]
    locales = await _locales(people, conn)
    asg = await owned(r.recusing_id, r.assignment_id, conn)
    task = await view(asg, now, zone, conn)
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
                "task": task,
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
    reachable = await inspectors_with_chat(people, conn)
    concerned = [(r.recusing_id, r.recusing.name)]
    concerned += [(r.replacement_id, r.replacement.name)] if r.replacement_id else []
    concerned += [(a.inspector_id, a.inspector.name) for a in team]
    told = [a.inspector.name for a in team if a.inspector_id in reachable]
    return told, [name for i, name in concerned if i not in reachable]
