"""A small world for the after-the-visit tests: a drawn plan over one item, results submitted
straight into the database (the chat flow has its own e2e tests), reviewers as bindings."""

from __future__ import annotations

from datetime import datetime

from core.db import transaction
from models.draws import Assignment, Inspection
from models.messaging import Channel, ChatBinding, Role
from models.onsite import Finding, Result
from services import plans
from services.onsite import review
from tests.builders import scheduled_draw
from tests.services import draw_world as world

ZONE = world.ZONE


async def inspections(tmp_path, n: int = 2, **plan) -> list[Inspection]:
    clock = world.clock()
    await world.build(n_entities=12, n_scjg=6, n_wsj=0)
    await plans.add_plan(world.plan_file(tmp_path, "P1", a="1", b="1", c="1", **plan), clock)
    await scheduled_draw("P1", clock=clock, zone=ZONE)
    return await Inspection.all().order_by("id").limit(n)


async def submitted(insp: Inspection, now: datetime, verdict: str = "fail") -> Result:
    """A result submitted by the team lead at ``now``, its review opened."""
    lead = await Assignment.filter(inspection_id=insp.id).order_by("seat").first()
    result = await Result.create(
        inspection=insp,
        status="submitted",
        step="summary",
        created_by_id=lead.inspector_id,
        submitted_by_id=lead.inspector_id,
        submitted_at=now,
        created_at=now,
        updated_at=now,
    )
    await Finding.create(result=result, position=0, item_code="SCJG-SP-01", verdict=verdict, note="私密备注")
    async with transaction() as conn:
        await review.open_review(result, now, zone=ZONE, conn=conn)
    return result


async def coordinator(address: str, departments=("SCJG",), inspector_id=None) -> ChatBinding:
    return await ChatBinding.create(
        channel=Channel.TELEGRAM,
        address=address,
        role=Role.COORDINATOR,
        departments=list(departments),
        inspector_id=inspector_id,
    )
