"""A result and its team: loading the findings, the result as a team member sees it
(never a survey, never another inspection), writing a step's outcome onto the result and its
findings (each change on the audit chain), and asking the other members to confirm."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from domain.onsite import Findings, Outcome, ResultStatus, Step, Verdict
from models.directory import Inspector, Item
from models.draws import HOLDING_SEAT, Assignment, AssignmentStatus, Inspection
from models.messaging import RecipientKind
from models.onsite import Correction, CorrectionStatus, Finding, Result
from models.publication import Rectification
from services import audit
from services.onsite.shared import CAN_WORK
from services.outbox import Message, enqueue

OPEN_CORRECTION = (CorrectionStatus.DRAFTING, CorrectionStatus.REQUESTED)


async def _team(inspection_id: int, conn) -> list[Assignment]:
    """The team as it stands, lead first: the member who took the lead over (``inspection.lead``,
    services.onsite.lead), else the lowest seat."""
    team = await (
        Assignment.filter(inspection_id=inspection_id, status__in=list(HOLDING_SEAT))
        .using_db(conn)
        .order_by("seat", "id")
        .prefetch_related("inspector")
    )
    lead = await Inspection.filter(id=inspection_id).using_db(conn).values_list("lead_id", flat=True)
    if lead and lead[0] is not None:
        team.sort(key=lambda a: a.inspector_id != lead[0])  # stable: the rest keep their seats' order
    return team


@dataclass(frozen=True)
class Reinspector:
    """The re-inspector of a re-inspection (复查) as the findings flow sees a team member: the whole
    "team" of a re-inspection result, its lead. Drawn afresh, they hold no seat of the inspection
    (``id``: no assignment)."""

    inspector_id: int
    inspector: Inspector
    id: int | None = None
    status: AssignmentStatus = AssignmentStatus.ACCEPTED


async def team_of(result: Result, conn) -> list[Any]:
    """Who works on ``result``, lead first: the inspection's team (:func:`_team`), or for a
    re-inspection result (``reinspection_id``) the re-inspector its rectification order was assigned
    to — so the findings, correction and review rules ("only the lead records", "a member may not
    review") hold for a re-inspection as they are."""
    if result.reinspection_id is None:
        return await _team(result.inspection_id, conn)
    row = await Rectification.filter(id=result.reinspection_id).using_db(conn).first()
    if row is None or row.inspector_id is None:
        return []
    inspector = await Inspector.get(id=row.inspector_id).using_db(conn)
    seat = await (
        Assignment.filter(inspection_id=result.inspection_id, inspector_id=row.inspector_id)
        .using_db(conn)
        .values_list("id", flat=True)
    )
    return [Reinspector(row.inspector_id, inspector, seat[0] if seat else None)]


def _member(team: list[Assignment], inspector_id: int) -> Assignment | None:
    return next((a for a in team if a.inspector_id == inspector_id and a.status in CAN_WORK), None)


def _is_lead(team: list[Assignment], inspector_id: int) -> bool:
    return bool(team) and team[0].inspector_id == inspector_id


async def _findings(result_id: int, conn) -> list[Finding]:
    return await Finding.filter(result_id=result_id).using_db(conn).order_by("position")


def _state(result: Result, rows: list[Finding]) -> Findings:
    return Findings(
        items=tuple(f.item_code for f in rows),
        verdicts=tuple(Verdict(f.verdict) if f.verdict else None for f in rows),
        notes=tuple(f.note for f in rows),
        cursor=result.cursor,
        step=Step(result.step),
        status=ResultStatus(result.status),
        correction=result.supersedes_id is not None,
    )


async def _view(result: Result, team: list[Assignment], actor_id: int, conn) -> dict:
    """The result as a member of the team sees it (never a survey, never another inspection)."""
    insp = (
        await Inspection.filter(id=result.inspection_id).using_db(conn).prefetch_related("entity", "draw__plan").first()
    )
    rows = await _findings(result.id, conn)
    names = dict(await Item.filter(code__in=[f.item_code for f in rows]).using_db(conn).values_list("code", "name"))
    items = [
        {
            "pos": f.position,
            "no": f.position + 1,
            "code": f.item_code,
            "name": names.get(f.item_code, f.item_code),
            "verdict": f.verdict.value if f.verdict else None,
            "note": f.note,
            "serious": f.serious,
        }
        for f in rows
    ]
    people = {a.inspector_id: a.inspector.name for a in team}
    me = _member(team, actor_id)
    corr = await Correction.filter(replacement_id=result.id).using_db(conn).first()
    open_corr = await (
        Correction.filter(original_id=result.id, status__in=list(OPEN_CORRECTION))
        .using_db(conn)
        .order_by("-id")
        .first()
    )
    return {
        "result": result.id,
        "inspection": insp.id,
        "assignment": me.id if me else None,
        "no": insp.no,
        "plan": insp.draw.plan.name,
        "draw_ref": insp.draw.draw_ref,
        "entity": insp.entity.name,
        "status": ResultStatus(result.status).value,
        "step": result.step,
        "cursor": result.cursor,
        "count": len(items),
        "items": items,
        "current": items[result.cursor] if result.cursor < len(items) else None,
        "lead": team[0].inspector.name if team else "",
        "is_lead": _is_lead(team, actor_id),
        "submitted_by": people.get(result.submitted_by_id, "") if result.submitted_by_id else "",
        "confirmed_by": people.get(result.confirmed_by_id, "") if result.confirmed_by_id else "",
        "supersedes": result.supersedes_id,
        "reinspection": result.reinspection_id is not None,  # a re-inspection (复查) of the rectified items
        "correction": ({"id": corr.id, "reason": corr.reason, "status": corr.status.value} if corr else None),
        "open_correction": (
            {"id": open_corr.id, "status": open_corr.status.value, "replacement": open_corr.replacement_id}
            if open_corr
            else None
        ),
    }


async def _write(
    result: Result, rows: list[Finding], old: Findings, out: Outcome, actor: int, now: datetime, conn
) -> None:
    """Store the new state: changed findings (each on the audit chain) and the result row."""
    new = out.state
    for f, (v0, n0, v1, n1) in zip(rows, zip(old.verdicts, old.notes, new.verdicts, new.notes)):
        if (v0, n0) == (v1, n1):
            continue
        await Finding.filter(id=f.id).using_db(conn).update(verdict=v1, note=n1)
        await audit.append(
            f"inspector:{actor}",
            "finding.recorded",
            f"result:{result.id}",
            {"item": f.item_code, "position": f.position, "verdict": v1.value if v1 else None, "note": n1},
            now,
            connection=conn,
        )
    changes: dict = {"status": new.status, "step": new.step.value, "cursor": new.cursor, "updated_at": now}
    if out.code == "submitted":
        changes.update(submitted_by_id=actor, submitted_at=now)
    if out.code == "confirmed":
        changes.update(confirmed_by_id=actor, confirmed_at=now)
    await Result.filter(id=result.id).using_db(conn).update(**changes)
    for key, value in changes.items():
        setattr(result, key, value)


async def _ask_to_confirm(
    result: Result, team: list[Assignment], lead_id: int, view: dict, now: datetime, locale: str, conn
) -> None:
    others = [a for a in team if a.inspector_id != lead_id]
    context = {
        **view,
        "is_lead": False,
        "keyboard": ["result_confirm", result.id],
    }
    await enqueue(
        [
            Message(
                dedupe_key=f"result:{result.id}:confirm:{a.inspector_id}",
                recipient_kind=RecipientKind.INSPECTOR,
                recipient_id=a.inspector_id,
                template="result_confirm.j2",
                context=context,
                locale=locale,
            )
            for a in others
        ],
        now,
        connection=conn,
    )
