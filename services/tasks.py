"""An inspector's open tasks for /tasks: the re-inspections (复查) assigned to them at a
rectification deadline (services.onsite.followup), then their open assignments (services.assignments)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from services import assignments
from services.onsite import followup


async def open_tasks(inspector_id: int, now: datetime, zone: ZoneInfo, conn=None) -> list[dict]:
    """Re-inspections first (their deadline has come), then the open assignments soonest first."""
    return [
        *await followup.reinspections_for(inspector_id, conn),
        *await assignments.open_for(inspector_id, now, zone, conn),
    ]
