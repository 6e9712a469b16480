"""Check-in: the inspector's position on the inspection under way and its distance to the
entity; farther than the radius → flagged and the plan's coordinators alerted, never refused.
Appended to the audit chain as ``checkin.recorded``."""

from __future__ import annotations

from datetime import datetime

from core.clock import utc as _utc
from core.db import transaction as _transaction
from domain.onsite import checkin_flagged, haversine_m, valid_position
from models.directory import Inspector
from models.onsite import CheckIn
from services import audit
from services.alerts import raise_alert
from services.onsite.shared import Choice, OnsiteError, _choice, _departments, _pick_current


async def checkin(
    inspector_id: int,
    lat: float,
    lon: float,
    *,
    now: datetime,
    radius_m: int,
    assignment_id: int | None = None,
    conn=None,
) -> dict | Choice:
    """Record a check-in at (lat, lon) for the inspection under way (or ``assignment_id``).
    Returns what the inspector is told, or a :class:`Choice`."""
    if not valid_position(lat, lon):
        raise OnsiteError("bad_location")
    now = _utc(now)
    async with _transaction(conn) as c:
        asg = await _pick_current(inspector_id, now, assignment_id, c)
        if isinstance(asg, Choice):
            return asg
        insp, entity = asg.inspection, asg.inspection.entity
        distance = haversine_m(lat, lon, entity.lat, entity.lon) if valid_position(entity.lat, entity.lon) else None
        flagged = checkin_flagged(distance, radius_m)
        row = await CheckIn.create(
            assignment_id=asg.id,
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
            "count": await CheckIn.filter(assignment_id=asg.id).using_db(c).count(),
        }
        await audit.append(
            f"inspector:{inspector_id}",
            "checkin.recorded",
            f"inspection:{insp.id}",
            {
                "checkin": row.id,
                "assignment": asg.id,
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
