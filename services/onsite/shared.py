"""What the on-site use cases share: their refusal, their answers (a :class:`Choice` to ask
which inspection, an :class:`Acted` findings step), and which inspection is under way.

Which inspection: the inspector's *accepted* assignments whose window contains now (a flight
inspection only once revealed); for a check-in also the re-inspections (复查) assigned to them and
not yet decided (:func:`reinspections_under_way`). Several → the caller gets a :class:`Choice` and
asks."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from zoneinfo import ZoneInfo

from tortoise.models import Model

from domain.errors import ServiceError
from domain.plans import PlanSpec, parse_plan
from domain.refs import Ref, inspection_ref
from domain.sealing import draw_is_sealed
from models.directory import Entity
from models.draws import Assignment, AssignmentStatus, Draw, Firing, Inspection, InspectionStatus
from models.plans import Plan
from models.publication import Rectification, RectificationStatus

SHANGHAI = ZoneInfo("Asia/Shanghai")


CAN_WORK = (AssignmentStatus.ACCEPTED, AssignmentStatus.DONE)


class OnsiteError(ServiceError):
    """Refused; ``code`` names a case of messages/onsite_refused.j2."""


@dataclass(frozen=True)
class Choice:
    """Several inspections fit: ask which (each ``{"assignment", "no", "plan", "entity"}``)."""

    choices: list[dict]


@dataclass(frozen=True)
class Acted:
    code: str  # domain.onsite outcome code
    index: int | None  # the item it was about
    view: dict
    survey: str = ""  # services.surveys.enter.enter_pool's outcome on a first submission (never shown to inspectors)


# --- which inspection ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Reinspecting:
    """A re-inspection (复查) under way, as a check-in or a photo is filed to it: its rectification
    order and inspection; no assignment (``id``; a re-inspector drawn afresh holds no seat)."""

    rectification_id: int
    inspection_id: int
    inspection: Inspection
    draw: Draw
    id: None = None


async def reinspections_under_way(
    inspector_id: int, conn, *, inspection_id: int | None = None, rectification_id: int | None = None
) -> list[Reinspecting]:
    """The re-inspections assigned to the inspector and not yet decided (the order is
    ``reinspecting``: from the rectification deadline to the approval of its result), oldest first;
    only those of ``inspection_id`` / ``rectification_id`` when given."""
    rows = Rectification.filter(inspector_id=inspector_id, status=RectificationStatus.REINSPECTING)
    if inspection_id is not None:
        rows = rows.filter(inspection_id=inspection_id)
    if rectification_id is not None:
        rows = rows.filter(id=rectification_id)
    found = await rows.using_db(conn).order_by("id").prefetch_related("inspection__entity", "inspection__draw__plan")
    return [Reinspecting(r.id, r.inspection_id, r.inspection, r.inspection.draw) for r in found]


def _under_way(draw: Draw, now: datetime) -> bool:
    return draw.window_start <= now <= draw.window_end and not draw_is_sealed(draw, now)


def _choice(asg: Assignment | Reinspecting) -> dict:
    return {
        "assignment": asg.id,
        "rectification": asg.rectification_id if isinstance(asg, Reinspecting) else None,
        "no": asg.inspection.no,
        "draw_ref": asg.draw.draw_ref,
        "ref": inspection_ref(asg.draw.draw_ref, asg.inspection.no),
        "plan": asg.draw.plan.name,
        "entity": asg.inspection.entity.name,
    }


async def current(inspector_id: int, now: datetime, conn=None) -> list[Assignment]:
    """The inspector's accepted assignments under way now (window open, flight revealed)."""
    rows = await (
        Assignment.filter(inspector_id=inspector_id, status=AssignmentStatus.ACCEPTED)
        .using_db(conn)
        .order_by("id")
        .prefetch_related("draw__plan", "inspection__entity")
    )
    return [a for a in rows if _under_way(a.draw, now) and a.inspection.status != InspectionStatus.CANCELLED]


async def _pick_current(inspector_id: int, now: datetime, assignment_id: int | None, conn) -> Assignment | Choice:
    rows = await current(inspector_id, now, conn)
    if assignment_id is not None:
        found = next((a for a in rows if a.id == assignment_id), None)
        if found is None:
            raise OnsiteError("not_under_way")
        return found
    if not rows:
        raise OnsiteError("no_current_inspection")
    return rows[0] if len(rows) == 1 else Choice([_choice(a) for a in rows])


async def _departments(draw: Draw, conn) -> set[str]:
    plan = await Plan.filter(id=draw.plan_id).using_db(conn).first()
    return set(plan.departments) if plan else set()


async def plan_spec(draw: Draw, conn) -> PlanSpec:
    """The plan as it was when the draw's firing was announced (else as it is now)."""
    firing = await Firing.filter(id=draw.firing_id).using_db(conn).first()
    if firing is not None and firing.params:
        return parse_plan(firing.params)
    plan = await Plan.get(id=draw.plan_id).using_db(conn)
    return parse_plan(plan.spec)


async def inspection_context(insp: Inspection, conn, draw: Draw | None = None, entity: Entity | None = None) -> dict:
    """What a coordinator's message about an inspection names: its reference parts, plan and firm
    (``draw``, ``entity``: when the caller has them already)."""
    if draw is None:
        draw = await Draw.get(id=insp.draw_id).using_db(conn).prefetch_related("plan")
    if entity is None:
        entity = await Entity.get(id=insp.entity_id).using_db(conn)
    return {
        "inspection": insp.id,
        "no": insp.no,
        "draw_ref": draw.draw_ref,
        "plan": draw.plan.name,
        "entity": entity.name,
        "uscc": entity.uscc,
        "departments": list(draw.plan.departments),
    }


async def inspection_at(ref: Ref, conn=None) -> Inspection:
    """The inspection a public reference (``P1/2026-12-01/7``) names, for the commands that act on
    an inspection's review, objection or rectification. A bare number is refused with
    ``ref_needs_draw``: a coordinator has no inspections of their own to resolve it among."""
    if ref.draw_ref is None:
        raise OnsiteError("ref_needs_draw", ref=str(ref.no))
    insp = await Inspection.filter(draw__draw_ref=ref.draw_ref, no=ref.no).using_db(conn).first()
    if insp is None:
        raise OnsiteError("inspection_ref_not_found", ref=inspection_ref(ref.draw_ref, ref.no))
    return insp


async def pending_or_latest(model: type[Model], pending: Enum, ref: Ref, missing: str, conn=None) -> int:
    """The row of ``model`` (an inspection's reviews, its objections) a command means by the
    inspection's public reference: the oldest ``pending`` one (each command takes the next), else
    the latest (the service answers "already decided"). None at all: ``missing``."""
    insp = await inspection_at(ref, conn)
    rows = await model.filter(inspection_id=insp.id).using_db(conn).order_by("id").values_list("id", "status")
    if not rows:
        raise OnsiteError(missing, ref=inspection_ref(str(ref.draw_ref), ref.no))
    waiting = [r for r in rows if r[1] == pending]
    return int(waiting[0][0] if waiting else rows[-1][0])
