"""Recusal (回避): logged, a standing conflict stored, the replacement drawn and sent — or the
inspection marked unstaffable when nobody eligible is left."""

from __future__ import annotations

from datetime import timedelta

import pytest

from models.directory import Conflict, ConflictSource, ConflictType
from models.draws import Assignment, AssignmentStatus, Draw, Inspection, InspectionStatus, Recusal
from models.messaging import Outbox
from services import plans
from services.draws.common import DrawError
from services.recusals import record_and_replace
from tests.builders import scheduled_draw
from tests.services import draw_world as world

ZONE = world.ZONE


async def drawn(tmp_path, *, code="P1", **plan_kwargs):
    clock = world.clock()
    await plans.add_plan(world.plan_file(tmp_path, code, **plan_kwargs), clock)
    result = await scheduled_draw(code, clock=clock, zone=ZONE)
    return result, clock


async def first_assignment(draw_ref: str) -> Assignment:
    return await Assignment.filter(draw__draw_ref=draw_ref).order_by("id").first().prefetch_related("inspection")


async def seat_holders(inspection_id: int) -> list[str]:
    rows = await (
        Assignment.filter(inspection_id=inspection_id, status__in=[AssignmentStatus.SENT, AssignmentStatus.ACCEPTED])
        .order_by("seat")
        .prefetch_related("inspector")
    )
    return [a.inspector.cert_no for a in rows]


async def test_recusal_draws_and_sends_a_replacement(db, tmp_path):
    await world.build(n_entities=10, n_scjg=6, risks="D")
    result, clock = await drawn(tmp_path)
    first = (
        await Assignment.filter(draw__draw_ref=result.draw_ref)
        .order_by("id")
        .first()
        .prefetch_related("inspector", "inspection")
    )
    team_before = await seat_holders(first.inspection_id)
    outbox_before = await Outbox.all().count()

    done = await record_and_replace(first.id, ConflictType.FORMER_EMPLOYMENT, "曾在该公司任职", clock=clock, zone=ZONE)

    assert done.unstaffable_reason is None and done.ordinal == 0
    recused = await Assignment.get(id=first.id)
    assert recused.status is AssignmentStatus.RECUSED and recused.responded_at == clock.now()
    new = await Assignment.get(id=done.replacement_assignment_id).prefetch_related("inspector")
    assert (new.seat, new.ordinal, new.status) == (first.seat, 1, AssignmentStatus.SENT)
    assert new.inspector.cert_no not in team_before
    team_after = await seat_holders(first.inspection_id)
    assert len(team_after) == 2 and len(set(team_after)) == 2 and first.inspector.cert_no not in team_after
    log = await Recusal.get(id=done.recusal_id)
    assert (log.ordinal, log.seat, log.recusing_id, log.replacement_id) == (
        0,
        first.seat,
        first.inspector_id,
        new.inspector_id,
    )
    assert log.reason_type is ConflictType.FORMER_EMPLOYMENT
    conflict = await Conflict.get(inspector_id=first.inspector_id, entity_id=first.inspection.entity_id)
    assert conflict.source is ConflictSource.RECUSAL and conflict.note == "曾在该公司任职"
    assert await Outbox.all().count() == outbox_before + 1
    message = await Outbox.get(dedupe_key=f"asg:{new.id}:sent")
    assert message.recipient_id == new.inspector_id and message.context["replacement"] is True
    assert message.context["entity"]["uscc"] == first.inspection.entity_key


async def test_recusing_twice_is_refused_and_ordinals_count_up(db, tmp_path):
    await world.build(n_entities=4, n_scjg=8, risks="D")
    result, clock = await drawn(tmp_path)
    first = await Assignment.filter(draw__draw_ref=result.draw_ref).order_by("id").first()
    done = await record_and_replace(first.id, "close_relative", clock=clock, zone=ZONE)
    with pytest.raises(DrawError) as info:
        await record_and_replace(first.id, "close_relative", clock=clock, zone=ZONE)
    assert info.value.code == "assignment_not_open"
    again = await record_and_replace(done.replacement_assignment_id, "other", clock=clock, zone=ZONE)
    assert again.ordinal == 1
    recusing = set(await Recusal.filter(inspection_id=first.inspection_id).values_list("recusing_id", flat=True))
    assert (await Assignment.get(id=again.replacement_assignment_id)).inspector_id not in recusing


async def test_no_eligible_replacement_marks_the_inspection_unstaffable(db, tmp_path):
    await world.build(n_entities=3, n_scjg=2, risks="D")
    result, clock = await drawn(tmp_path)
    first = await Assignment.filter(draw__draw_ref=result.draw_ref).order_by("id").first()
    outbox_before = await Outbox.all().count()
    done = await record_and_replace(first.id, ConflictType.FINANCIAL_INTEREST, clock=clock, zone=ZONE)
    assert done.replacement_assignment_id is None and done.unstaffable_reason
    inspection = await Inspection.get(id=first.inspection_id)
    assert inspection.status is InspectionStatus.UNSTAFFABLE
    assert inspection.unstaffable_reason == done.unstaffable_reason
    log = await Recusal.get(id=done.recusal_id)
    assert log.replacement_id is None and log.unstaffable_reason == done.unstaffable_reason
    assert (await Draw.get(draw_ref=result.draw_ref)).unstaffable_count == 1
    assert await Outbox.all().count() == outbox_before


async def test_unknown_assignment(db):
    with pytest.raises(DrawError) as info:
        await record_and_replace(999, "other", clock=world.clock(), zone=ZONE)
    assert info.value.code == "assignment_not_found"


async def test_a_recusal_keeps_the_pair_apart_in_later_draws(db, tmp_path):
    await world.build(n_entities=2, n_scjg=3, risks="D")
    result, clock = await drawn(tmp_path)
    first = await first_assignment(result.draw_ref)
    await record_and_replace(first.id, "personal_relationship", clock=clock, zone=ZONE)
    for _ in range(3):
        clock.advance(timedelta(minutes=1))  # one commitment per slot: each later draw its own time
        later = await scheduled_draw("P1", clock=clock, zone=ZONE)
        placed = await Assignment.filter(
            draw__draw_ref=later.draw_ref, inspection__entity_id=first.inspection.entity_id
        ).values_list("inspector_id", flat=True)
        assert len(placed) == 2 and first.inspector_id not in placed


async def test_flight_replacement_message_still_hides_the_entity(db, tmp_path):
    await world.build(n_entities=3, n_scjg=5, risks="D")
    result, clock = await drawn(tmp_path, code="F1", flight=True)
    first = await Assignment.filter(draw__draw_ref=result.draw_ref).order_by("id").first()
    done = await record_and_replace(first.id, "other", clock=clock, zone=ZONE)
    message = await Outbox.get(dedupe_key=f"asg:{done.replacement_assignment_id}:sent")
    assert "entity" not in message.context and message.context["flight"] is True


async def test_flight_replacement_after_the_reveal_names_the_entity(db, tmp_path):
    await world.build(n_entities=3, n_scjg=5, risks="D")
    result, clock = await drawn(tmp_path, code="F1", flight=True)
    clock.set(result.reveal_at)
    first = await first_assignment(result.draw_ref)
    done = await record_and_replace(first.id, "other", clock=clock, zone=ZONE)
    message = await Outbox.get(dedupe_key=f"asg:{done.replacement_assignment_id}:sent")
    assert message.context["entity"]["uscc"] == first.inspection.entity_key
