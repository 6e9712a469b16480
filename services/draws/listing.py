"""What an operator lists from the command line: a draw's inspections with their teams
(``inspectbot draws show``). The lists of draws and of announced firings are the public ones
(``services.public.draws`` / ``announced``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from domain.sealing import draw_is_sealed
from models.draws import Assignment, Draw, Inspection
from services.draws.common import DrawError


@dataclass(frozen=True)
class Member:
    name: str
    seat: int
    status: str


@dataclass(frozen=True)
class InspectionRow:
    no: int
    entity: str
    uscc: str
    stratum: str
    status: str
    team: list[Member]


@dataclass(frozen=True)
class DrawAssignments:
    draw_ref: str
    plan_code: str
    plan_name: str
    drawn_at: datetime
    sealed: bool
    reveal_at: datetime | None
    inspections: list[InspectionRow]


async def assignments(draw_ref: str, now: datetime, *, force: bool = False) -> DrawAssignments:
    """The draw's inspections in order, each with its team (every assignment, recused ones too).
    A sealed flight draw shows no firm and no team unless ``force`` (as ``draw export``)."""
    d = await Draw.get_or_none(draw_ref=draw_ref).prefetch_related("plan")
    if d is None:
        raise DrawError("draw_ref_not_found", draw_ref=draw_ref)
    sealed = draw_is_sealed(d, now)
    rows: list[InspectionRow] = []
    if not sealed or force:
        teams: dict[int, list[Member]] = {}
        for a in (
            await Assignment.filter(draw_id=d.id)
            .order_by("inspection_id", "seat", "ordinal")
            .prefetch_related("inspector")
        ):
            teams.setdefault(a.inspection_id, []).append(
                Member(a.inspector.name, a.seat, getattr(a.status, "value", a.status))
            )
        for i in await Inspection.filter(draw_id=d.id).order_by("no").prefetch_related("entity"):
            rows.append(
                InspectionRow(
                    i.no,
                    i.entity.name,
                    i.entity_key,
                    i.stratum,
                    getattr(i.status, "value", i.status),
                    teams.get(i.id, []),
                )
            )
    return DrawAssignments(d.draw_ref, d.plan.code, d.plan.name, d.drawn_at, sealed and not force, d.reveal_at, rows)
