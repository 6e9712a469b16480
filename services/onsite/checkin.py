"""Check-in: the inspector's position on the inspection under way and its distance to the
entity; farther than the radius → flagged and the plan's coordinators alerted, never refused.
Appended to the audit chain as ``checkin.recorded``.

A re-inspector checks in the same way on their re-inspection (复查) under way: the check-in row
names the rectification order instead of an assignment (a re-inspector drawn afresh holds no seat),
judged against the same entity and radius. Under way means assigned and not yet decided — there is
no inspection window to keep for a re-inspection (it starts at the rectification deadline)."""

from __future__ import annotations

from datetime import datetime

from core.clock import utc as _utc
from core.db import transaction as _transaction
from domain.onsite import checkin_flagged, haversine_m, valid_position
from domain.refs import Ref
from models.directory import Inspector
from models.draws import Assignment, Inspection
from models.onsite import CheckIn
from services import audit
from services.alerts import raise_alert
from services.onsite.shared import (
    Choice,
    OnsiteError,
    Reinspecting,
    _choice,
    _departments,
    current,
    reinspections_under_way,
)


async def checkin(
    inspector_id: int,
    lat: float,
    lon: float,
    *,
    now: datetime,
    radius_m: int,
    assignment_id: int | None = None,
    rectification_id: int | None = None,
    conn=None,
) -> dict | Choice:
    """Record a check-in at (lat, lon) for the inspection or re-inspection under way (or the one
    named: ``assignment_id``, ``rectification_id``). Returns what the inspector is told, or a
    :class:`Choice`."""
    if not valid_position(lat, lon):
        raise OnsiteError("bad_location")
    now = _utc(now)
    async with _transaction(conn) as c:
        asg = await _target(inspector_id, now, assignment_id, rectification_id, c)
        if isinstance(asg, Choice):
            return asg
        # the row names the re-inspection's order, or the assignment (the database wants exactly one)
        own = {"rectification_id": asg.rectification_id} if isinstance(asg, Reinspecting) else {"assignment_id": asg.id}
        insp, entity = asg.inspection, asg.inspection.entity
        distance = haversine_m(lat, lon, entity.lat, entity.lon) if valid_position(entity.lat, entity.lon) else None
        flagged = checkin_flagged(distance, radius_m)
        row = await CheckIn.create(
            **own,
            inspection_id=insp.id,
            inspector_id=inspector_id,
            latitude=lat,
            longitude=lon,
            distance_m=distance,
            radius_m=radius_m,
            flagged=flagged,
            at=now,
            using_db=c,
        )
        shown = {
            **_choice(asg),
            "checkin": row.id,
            "distance": None if distance is None else round(distance),
            "radius": radius_m,
            "flagged": flagged,
            "reinspection": "rectification_id" in own,
            "count": await CheckIn.filter(**own).using_db(c).count(),
        }
        await audit.append(
            f"inspector:{inspector_id}",
            "checkin.recorded",
            f"inspection:{insp.id}",
            {
                "checkin": row.id,
                "assignment": asg.id,
                "rectification": own.get("rectification_id"),
                "lat": lat,
                "lon": lon,
                "distance_m": shown["distance"],
                "radius_m": radius_m,
                "flagged": flagged,
            },
            now,
            connection=c,
        )
        if flagged:
            inspector = await Inspector.get(id=inspector_id).using_db(c)
            await raise_alert(
                f"checkin:{row.id}",
                "checkin_flagged.j2",
                {**shown, "inspector": inspector.name, "cert_no": inspector.cert_no, "draw_ref": asg.draw.draw_ref},
                await _departments(asg.draw, c),
                now,
                connection=c,
            )
        return shown


async def _target(
    inspector_id: int, now: datetime, assignment_id: int | None, rectification_id: int | None, conn
) -> Assignment | Reinspecting | Choice:
    """The named assignment or re-inspection, if under way (else ``not_under_way``); unnamed, the
    only one under way, else a :class:`Choice` among them (re-inspections after inspections)."""
    if rectification_id is not None:
        found = await reinspections_under_way(inspector_id, conn, rectification_id=rectification_id)
        if not found:
            raise OnsiteError("not_under_way")
        return found[0]
    rows: list[Assignment | Reinspecting] = list(await current(inspector_id, now, conn))
    if assignment_id is not None:
        named = next((a for a in rows if a.id == assignment_id), None)
        if named is None:
            raise OnsiteError("not_under_way")
        return named
    rows += await reinspections_under_way(inspector_id, conn)
    if not rows:
        raise OnsiteError("no_current_inspection")
    return rows[0] if len(rows) == 1 else Choice([_choice(a) for a in rows])


async def reinspection_named(inspector_id: int | None, ref: Ref, conn=None) -> int | None:
    """The re-inspection under way of the inspector on the inspection ``ref`` names (its
    rectification order), for ``/checkin <ref>``; None when there is none (the reference is then
    resolved as an assignment)."""
    if inspector_id is None or ref.draw_ref is None:
        return None
    insp = await Inspection.filter(draw__draw_ref=ref.draw_ref, no=ref.no).using_db(conn).first()
    if insp is None:
        return None
    found = await reinspections_under_way(inspector_id, conn, inspection_id=insp.id)
    return found[0].rectification_id if found else None
