"""What an inspector does with an assignment: see it, accept it (recusing from it is
services.recusals, which checks it here first: :func:`owned`, :func:`ensure_recusable`).

Every function checks that the acting inspector owns the assignment; someone else's
assignment is reported exactly like a missing one, so nothing leaks. Every state change is
written to the audit chain and its messages to the outbox, in one transaction.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from core import db
from core.clock import Clock
from core.clock import local_minute as _local
from domain.errors import ServiceError
from domain.refs import Ref, inspection_ref
from domain.sealing import draw_is_sealed
from models.directory import ConflictType
from models.draws import HOLDING_SEAT, AssignmentStatus, InspectionStatus, Recusal
from services import audit

OPEN = (AssignmentStatus.SENT, AssignmentStatus.ACCEPTED)
RECUSAL_TYPES = tuple(t for t in ConflictType if t != ConflictType.NO_RESPONSE)
RATE_WINDOW = timedelta(days=365)


class AssignmentError(ServiceError):
    """Refused; ``code`` names a text in texts/assignments.j2."""


# --- an assignment as its inspector sees it: plain rows from raw SQL (this runs for every button) --


@dataclass(frozen=True)
class PlanRow:
    code: str
    name: str
    departments: list


@dataclass(frozen=True)
class DrawRow:
    id: int
    draw_ref: str
    flight: bool
    window_start: datetime
    window_end: datetime
    reveal_at: datetime | None
    revealed_at: datetime | None
    plan: PlanRow


@dataclass(frozen=True)
class EntityRow:
    name: str
    address: str
    uscc: str


@dataclass(frozen=True)
class InspectionRow:
    id: int
    no: int
    status: InspectionStatus
    entity: EntityRow


@dataclass
class Owned:
    """An assignment with its inspection, entity, draw and plan, read in one query (:func:`owned`)."""

    id: int
    status: AssignmentStatus
    deadline: datetime
    inspection_id: int
    inspection: InspectionRow
    draw: DrawRow


_OWNED_SQL = (
    "SELECT a.id, a.status, a.deadline, a.inspection_id, i.no, i.status, e.name, e.address, e.uscc, "
    "d.id, d.draw_ref, d.flight, d.window_start, d.window_end, d.reveal_at, d.revealed_at, "
    "p.code, p.name, p.departments "
    'FROM "assignment" a JOIN "inspection" i ON i.id = a.inspection_id JOIN "entity" e ON e.id = i.entity_id '
    'JOIN "draw" d ON d.id = a.draw_id JOIN "plan" p ON p.id = d.plan_id '
)
_ONE_SQL = _OWNED_SQL + "WHERE a.id = ? AND a.inspector_id = ?"
_OPEN_SQL = _OWNED_SQL + "WHERE a.inspector_id = ? AND a.status IN (?, ?) ORDER BY a.deadline, a.id"
_TEAM_SQL = (
    'SELECT a.inspection_id, ins.name FROM "assignment" a JOIN "inspector" ins ON ins.id = a.inspector_id '
    "WHERE a.status IN ({}) AND a.inspection_id IN ({}) ORDER BY a.inspection_id, a.seat"
)


def _owned_row(r) -> Owned:
    departments = json.loads(r[18]) if isinstance(r[18], (str, bytes)) else (r[18] or [])
    plan = PlanRow(code=r[16], name=r[17], departments=departments)
    draw = DrawRow(
        id=r[9],
        draw_ref=r[10],
        flight=bool(r[11]),
        window_start=db.moment(r[12]),
        window_end=db.moment(r[13]),
        reveal_at=db.moment(r[14]),
        revealed_at=db.moment(r[15]),
        plan=plan,
    )
    insp = InspectionRow(
        id=r[3], no=r[4], status=InspectionStatus(r[5]), entity=EntityRow(name=r[6], address=r[7], uscc=r[8])
    )
    return Owned(
        id=r[0], status=AssignmentStatus(r[1]), deadline=db.moment(r[2]), inspection_id=r[3], inspection=insp, draw=draw
    )


async def owned(inspector_id: int, assignment_id: int, conn=None) -> Owned:
    conn = conn or db.conn()
    _, rows = await conn.execute_query(db.sql(_ONE_SQL, connection=conn), [assignment_id, inspector_id])
    if not rows:
        raise AssignmentError("asg_not_found", ref="")
    return _owned_row(rows[0])


_FIND_SQL = (
    'SELECT a.id, a.status, d.draw_ref, i.no FROM "assignment" a JOIN "inspection" i ON i.id = a.inspection_id '
    'JOIN "draw" d ON d.id = a.draw_id WHERE a.inspector_id = ? AND i.no = ?'
)


async def find(inspector_id: int | None, ref: Ref, conn=None) -> int:
    """The inspector's own assignment on the inspection ``ref`` names (the public reference,
    ``P1/2026-12-01/7``; a bare number is one of the inspector's own inspections with that number).
    An open assignment wins over a closed one, then the newest. Someone else's inspection is
    reported like a missing one; a bare number two of the inspector's draws share is refused with
    the full references to choose from."""
    conn = conn or db.conn()
    shown = inspection_ref(ref.draw_ref, ref.no) if ref.draw_ref else str(ref.no)
    if inspector_id is None:
        raise AssignmentError("asg_not_found", ref=shown)
    sql, args = _FIND_SQL, [inspector_id, ref.no]
    if ref.draw_ref is not None:
        sql, args = sql + " AND d.draw_ref = ?", [*args, ref.draw_ref]
    _, rows = await conn.execute_query(db.sql(sql, connection=conn), args)
    if not rows:
        raise AssignmentError("asg_not_found", ref=shown)
    draws = sorted({r[2] for r in rows})
    if len(draws) > 1:
        open_ = {s.value for s in OPEN}
        live = sorted({r[2] for r in rows if r[1] in open_})
        if len(live) != 1:
            raise AssignmentError("ref_ambiguous", ref=shown, refs=[inspection_ref(d, ref.no) for d in (live or draws)])
        rows = [r for r in rows if r[2] == live[0]]
    best = sorted(rows, key=lambda r: (r[1] in {s.value for s in OPEN}, r[0]))[-1]
    return int(best[0])


async def _teams(inspection_ids: list[int], conn) -> dict[int, list[str]]:
    """Each inspection's team (the names holding a seat, by seat), in one query."""
    teams: dict[int, list[str]] = {i: [] for i in inspection_ids}
    if not inspection_ids:
        return teams
    held = [s.value for s in HOLDING_SEAT]
    sql = db.sql(_TEAM_SQL.format(", ".join("?" * len(held)), ", ".join("?" * len(inspection_ids))), connection=conn)
    _, rows = await conn.execute_query(sql, [*held, *inspection_ids])
    for inspection_id, name in rows:
        teams[inspection_id].append(name)
    return teams


def _view(asg: Owned, team: list[str], now: datetime, zone: ZoneInfo) -> dict:
    insp, draw = asg.inspection, asg.draw
    out = {
        "assignment": asg.id,  # for button data only: never shown
        "no": insp.no,
        "draw_ref": draw.draw_ref,
        "ref": inspection_ref(draw.draw_ref, insp.no),
        "plan": {"code": draw.plan.code, "name": draw.plan.name},
        "status": asg.status.value,
        "inspection_status": insp.status.value,
        "window": {"start": _local(draw.window_start, zone), "end": _local(draw.window_end, zone)},
        "deadline": _local(asg.deadline, zone),
        "team": team,
        "flight": draw.flight,
    }
    if not draw_is_sealed(draw, now):
        e = insp.entity
        out["entity"] = {"name": e.name, "address": e.address, "uscc": e.uscc}
    return out


async def view(asg: Owned, now: datetime, zone: ZoneInfo, conn=None) -> dict:
    """The assignment as its own inspector may see it (a flight target only once revealed)."""
    conn = conn or db.conn()
    team = (await _teams([asg.inspection_id], conn))[asg.inspection_id]
    return _view(asg, team, now, zone)


async def open_for(inspector_id: int, now: datetime, zone: ZoneInfo, conn=None) -> list[dict]:
    """The inspector's open assignments (soonest deadline first) as :func:`view` shows each: two
    queries, whatever their number."""
    conn = conn or db.conn()
    _, rows = await conn.execute_query(db.sql(_OPEN_SQL, connection=conn), [inspector_id, *(s.value for s in OPEN)])
    mine = [_owned_row(r) for r in rows]
    teams = await _teams(sorted({a.inspection_id for a in mine}), conn)
    return [_view(a, teams[a.inspection_id], now, zone) for a in mine]


_ACCEPT_SQL = 'UPDATE "assignment" SET status = ?, responded_at = ? WHERE id = ? AND status = ?'


async def accept(inspector_id: int, assignment_id: int, clock: Clock, zone: ZoneInfo, conn) -> tuple[str, dict]:
    """SENT → ACCEPTED. Returns (outcome, view): accepted / already_accepted; raises if it is
    no longer open (recused, replaced, cancelled: a stale button)."""
    now = clock.now()
    asg = await owned(inspector_id, assignment_id, conn)
    n, _ = await conn.execute_query(
        db.sql(_ACCEPT_SQL, connection=conn),
        [AssignmentStatus.ACCEPTED.value, db.encode(now), asg.id, AssignmentStatus.SENT.value],
    )
    if n == 0:
        if asg.status == AssignmentStatus.ACCEPTED:
            return "already_accepted", await view(asg, now, zone, conn)
        raise AssignmentError(
            "asg_not_open", ref=inspection_ref(asg.draw.draw_ref, asg.inspection.no), status=asg.status.value
        )
    asg.status = AssignmentStatus.ACCEPTED
    await audit.append(
        f"inspector:{inspector_id}",
        "assignment.accepted",
        f"assignment:{asg.id}",
        {"draw": asg.draw.draw_ref, "no": asg.inspection.no},
        now,
        connection=conn,
    )
    return "accepted", await view(asg, now, zone, conn)


async def ensure_recusable(asg: Owned, conn) -> None:
    """Refuse a recusal on a team where a coordinator rejected one: from then on the published
    recusal log no longer replays to the team as it stands, so changes go through the coordinator."""
    ref = inspection_ref(asg.draw.draw_ref, asg.inspection.no)
    if asg.status not in OPEN:
        raise AssignmentError("asg_not_open", ref=ref, status=asg.status.value)
    if await Recusal.filter(inspection_id=asg.inspection_id, rejected_at__not_isnull=True).using_db(conn).exists():
        raise AssignmentError("asg_recusal_locked", ref=ref)
