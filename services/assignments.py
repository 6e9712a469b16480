"""What an inspector does with an assignment: see it, accept it, recuse from it.

Every function checks that the acting inspector owns the assignment; someone else's
assignment is reported exactly like a missing one, so nothing leaks. Every state change is
written to the audit chain and its messages to the outbox, in one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from tortoise.transactions import in_transaction

from bot.clock import Clock
from models.directory import ConflictType, Inspector
from models.draws import HOLDING_SEAT, Assignment, AssignmentStatus, Draw, Recusal
from models.messaging import RecipientKind
from services import audit
from services.alerts import raise_alert
from services.outbox import Message, enqueue

OPEN = (AssignmentStatus.SENT, AssignmentStatus.ACCEPTED)
RECUSAL_TYPES = tuple(t for t in ConflictType if t != ConflictType.NO_RESPONSE)
RATE_WINDOW = timedelta(days=365)


class AssignmentError(Exception):
    """Refused; ``code`` names a text in texts/assignments.j2."""

    def __init__(self, code: str, **params) -> None:
        super().__init__(code)
        self.code = code
        self.params = params


def _local(when: datetime, zone: ZoneInfo) -> str:
    return when.astimezone(zone).strftime("%Y-%m-%d %H:%M")


def _revealed(draw: Draw, now: datetime) -> bool:
    return not draw.flight or draw.revealed_at is not None or (draw.reveal_at is not None and now >= draw.reveal_at)


async def owned(inspector_id: int, assignment_id: int, conn=None) -> Assignment:
    q = Assignment.filter(id=assignment_id, inspector_id=inspector_id)
    if conn is not None:
        q = q.using_db(conn)
    asg = await q.prefetch_related("inspection__entity", "draw__plan").first()
    if asg is None:
        raise AssignmentError("asg_not_found", id=assignment_id)
    return asg


async def view(asg: Assignment, now: datetime, zone: ZoneInfo, conn=None) -> dict:
    """The assignment as its own inspector may see it (a flight target only once revealed)."""
    insp, draw = asg.inspection, asg.draw
    q = Assignment.filter(inspection_id=insp.id, status__in=list(HOLDING_SEAT))
    if conn is not None:
        q = q.using_db(conn)
    team = await q.order_by("seat").values_list("inspector__name", flat=True)
    out = {
        "assignment": asg.id, "no": insp.no, "draw_ref": draw.draw_ref,
        "plan": {"code": draw.plan.code, "name": draw.plan.name},
        "status": asg.status.value, "inspection_status": insp.status.value,
        "window": {"start": _local(draw.window_start, zone), "end": _local(draw.window_end, zone)},
        "deadline": _local(asg.deadline, zone), "team": list(team), "flight": draw.flight,
    }
    if _revealed(draw, now):
        e = insp.entity
        out["entity"] = {"name": e.name, "address": e.address, "uscc": e.uscc}
    return out


async def open_for(inspector_id: int, now: datetime, zone: ZoneInfo) -> list[dict]:
    rows = await (Assignment.filter(inspector_id=inspector_id, status__in=list(OPEN))
                  .order_by("deadline", "id").prefetch_related("inspection__entity", "draw__plan"))
    return [await view(a, now, zone) for a in rows]


async def accept(inspector_id: int, assignment_id: int, clock: Clock, zone: ZoneInfo, conn) -> tuple[str, dict]:
    """SENT → ACCEPTED. Returns (outcome, view): accepted / already_accepted; raises if it is
    no longer open (recused, replaced, cancelled: a stale button)."""
    now = clock.now()
    asg = await owned(inspector_id, assignment_id, conn)
    n = await Assignment.filter(id=asg.id, status=AssignmentStatus.SENT).using_db(conn).update(
        status=AssignmentStatus.ACCEPTED, responded_at=now)
    if n == 0:
        if asg.status == AssignmentStatus.ACCEPTED:
            return "already_accepted", await view(asg, now, zone, conn)
        raise AssignmentError("asg_not_open", id=asg.id, status=asg.status.value)
    asg.status = AssignmentStatus.ACCEPTED
    await audit.append(f"inspector:{inspector_id}", "assignment.accepted", f"assignment:{asg.id}",
                       {"draw": asg.draw.draw_ref, "no": asg.inspection.no}, now, connection=conn)
    return "accepted", await view(asg, now, zone, conn)


async def ensure_recusable(asg: Assignment, conn) -> None:
    """Refuse a recusal on a team where a coordinator rejected one: from then on the published
    recusal log no longer replays to the team as it stands, so changes go through the coordinator."""
    if asg.status not in OPEN:
        raise AssignmentError("asg_not_open", id=asg.id, status=asg.status.value)
    if await Recusal.filter(inspection_id=asg.inspection_id, rejected_at__not_isnull=True).using_db(conn).exists():
        raise AssignmentError("asg_recusal_locked", id=asg.id)


@dataclass(frozen=True)
class Recused:
    replacement_name: str | None
    unstaffable_reason: str | None


async def recuse(inspector_id: int, assignment_id: int, reason_type: ConflictType, note: str, *, clock: Clock,
                 zone: ZoneInfo, locale: str, actor: str | None = None) -> Recused:
    """Record the recusal and draw the replacement (services.draws.recuse), then tell the rest
    of the team who changed and the coordinators why — all in one transaction."""
    from services import draws

    now = clock.now()
    async with in_transaction() as conn:
        asg = await owned(inspector_id, assignment_id, conn)
        if asg.status not in OPEN:
            raise AssignmentError("asg_not_open", id=asg.id, status=asg.status.value)
        await ensure_recusable(asg, conn)
        result = await draws.recuse(asg.id, reason_type, note, clock=clock, zone=zone, locale=locale)
        recusing = await Inspector.get(id=inspector_id).using_db(conn)
        replacement = (await Inspector.get(id=result.replacement_inspector_id).using_db(conn)
                       if result.replacement_inspector_id else None)
        insp = asg.inspection
        await audit.append(actor or f"inspector:{inspector_id}", "assignment.recused", f"assignment:{asg.id}",
                           {"draw": asg.draw.draw_ref, "no": insp.no, "type": reason_type.value,
                            "ordinal": result.ordinal}, now, connection=conn)
        if replacement is not None:
            await audit.append("system", "assignment.replaced", f"assignment:{result.replacement_assignment_id}",
                               {"draw": asg.draw.draw_ref, "no": insp.no, "replaces": asg.id,
                                "inspector": replacement.cert_no}, now, connection=conn)
        # the rest of the team
        others = await (Assignment.filter(inspection_id=insp.id, status__in=list(HOLDING_SEAT))
                        .exclude(id=result.replacement_assignment_id or 0).using_db(conn).values_list("id", "inspector_id"))
        context = {"no": insp.no, "draw_ref": asg.draw.draw_ref, "plan": asg.draw.plan.name,
                   "old": recusing.name, "new": replacement.name if replacement else None}
        await enqueue([
            Message(dedupe_key=f"team:{result.recusal_id}:{other_asg}", recipient_kind=RecipientKind.INSPECTOR,
                    recipient_id=other_inspector, template="team_changed.j2", context=context, locale=locale)
            for other_asg, other_inspector in others
        ], now, connection=conn)
        # the coordinators: why (the reason stays with them, never on a public page)
        departments = set(asg.draw.plan.departments)
        await raise_alert(f"recusal:{result.recusal_id}", "recusal_recorded.j2",
                          {**context, "type": reason_type.value, "note": note, "recusal": result.recusal_id,
                           "cert_no": recusing.cert_no}, departments, now, connection=conn)
        if result.unstaffable_reason:
            await audit.append("system", "inspection.unstaffable", f"inspection:{insp.id}",
                               {"draw": asg.draw.draw_ref, "no": insp.no, "reason": result.unstaffable_reason},
                               now, connection=conn)
            await raise_alert(f"unstaffable:{insp.id}:{result.ordinal}", "unstaffable.j2",
                              {**context, "reason": result.unstaffable_reason}, departments, now, connection=conn)
        await flag_recusal_rate(recusing, departments, now, conn)
    return Recused(replacement.name if replacement else None, result.unstaffable_reason)


async def flag_recusal_rate(inspector: Inspector, departments: set[str], now: datetime, conn) -> bool:
    """Conflict claims are not blindly trusted: an inspector who recuses far more often than
    their unit (at least 3 recusals in a year and a rate above max(3 × the unit's, the unit's
    + 30 points)) is flagged to the coordinators, once per inspector per month."""
    since = now - RATE_WINDOW
    mine = await Assignment.filter(inspector_id=inspector.id, created_at__gte=since).using_db(conn).count()
    my_recusals = await Recusal.filter(recusing_id=inspector.id, at__gte=since).using_db(conn).count()
    unit_asg = await Assignment.filter(inspector__unit_id=inspector.unit_id, created_at__gte=since).using_db(conn).count()
    unit_rec = await Recusal.filter(recusing__unit_id=inspector.unit_id, at__gte=since).using_db(conn).count()
    if my_recusals < 3 or mine == 0:
        return False
    rate = my_recusals / mine
    others_asg, others_rec = unit_asg - mine, unit_rec - my_recusals
    unit_rate = others_rec / others_asg if others_asg > 0 else 0.0
    if rate <= max(3 * unit_rate, unit_rate + 0.30):
        return False
    return await raise_alert(
        f"recusal_rate:{inspector.id}:{now:%Y-%m}", "recusal_rate.j2",
        {"name": inspector.name, "cert_no": inspector.cert_no, "recusals": my_recusals, "assignments": mine,
         "rate": round(rate * 100), "unit_rate": round(unit_rate * 100)},
        departments, now, connection=conn)
