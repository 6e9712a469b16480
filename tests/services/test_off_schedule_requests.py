"""Issue 14 item 2, the chat path's service: a request for an off-schedule draw, confirmed by the
first other coordinator, declined, or lapsing (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from core.render import render, text
from models.audit import AuditRecord
from models.draws import Draw, OffScheduleRequest, OffScheduleStatus
from models.messaging import Channel, ChatBinding, Outbox, Role
from services import audit, plans
from services.draws import offschedule
from services.draws.common import DrawError
from services.scope import Scope
from tests.builders import announced_ahead
from tests.services import draw_world as world

ZONE = world.ZONE


async def coordinator(address: str, departments=("SCJG",), name: str = "") -> Scope:
    b = await ChatBinding.create(
        channel=Channel.TELEGRAM,
        address=address,
        role=Role.COORDINATOR,
        departments=list(departments),
        display_name=name,
    )
    scope = Scope.of([b])
    assert scope is not None
    return scope


async def setup(tmp_path):
    await world.build(n_entities=20)
    clock = world.clock()
    plan = (await plans.add_plan(world.plan_file(tmp_path, "P1"), clock)).plan
    return clock, plan


async def refused(code: str, awaitable) -> DrawError:
    with pytest.raises(DrawError) as info:
        await awaitable
    assert info.value.code == code, info.value
    return info.value


async def test_request_goes_to_the_other_coordinators_only_and_is_refused_when_it_cannot_be(db, tmp_path):
    clock, plan = await setup(tmp_path)
    asker = await coordinator("900")
    await refused("no_other_coordinator", offschedule.request(asker, plan.id, "补抽", clock=clock, zone=ZONE))
    other, _ = await coordinator("901"), await coordinator("902", ("WSJ",))
    await refused("reason_required", offschedule.request(asker, plan.id, " \n ", clock=clock, zone=ZONE))
    await refused("reason_too_long", offschedule.request(asker, plan.id, "长" * 501, clock=clock, zone=ZONE))
    stranger = await coordinator("903", ("WSJ",))
    await refused("plan_not_found", offschedule.request(stranger, plan.id, "补抽", clock=clock, zone=ZONE))
    done = await offschedule.request(asker, plan.id, "补抽\n第二行\x00\x07", clock=clock, zone=ZONE)
    assert done.reason == "补抽 第二行" and done.asked == 1
    asked = await Outbox.filter(template="off_schedule_request.j2")
    assert [m.recipient_id for m in asked] == [int(other.actor.split(":")[1])]
    assert asked[0].context["keyboard"] == ["off_schedule_decision", done.id]
    await refused("request_waiting", offschedule.request(asker, plan.id, "again", clock=clock, zone=ZONE))
    # on schedule: nothing to ask for
    await OffScheduleRequest.filter(id=done.id).update(status=OffScheduleStatus.DECLINED)
    announced = await announced_ahead("P1", None, clock=clock, zone=ZONE)
    exc = await refused("not_off_schedule", offschedule.request(asker, plan.id, "补抽", clock=clock, zone=ZONE))
    assert exc.params["draw_ref"] == announced.draw_ref


async def test_two_confirmers_racing_release_one_draw(db, tmp_path):
    clock, plan = await setup(tmp_path)
    asker, b, c = await coordinator("900"), await coordinator("901"), await coordinator("902")
    done = await offschedule.request(asker, plan.id, "补抽", clock=clock, zone=ZONE)
    await refused("confirmer_is_requester", offschedule.decide(asker, done.id, True, clock=clock, zone=ZONE))
    outcomes = await asyncio.gather(
        *(offschedule.decide(s, done.id, True, clock=clock, zone=ZONE) for s in (b, c)), return_exceptions=True
    )
    won = [o for o in outcomes if not isinstance(o, BaseException)]
    lost = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(won) == 1 and len(lost) == 1, outcomes
    assert isinstance(lost[0], DrawError) and lost[0].code == "request_decided"
    [drawn] = await Draw.all()
    assert drawn.off_schedule["requested_by"] == asker.actor
    assert drawn.off_schedule["confirmed_by"] in (b.actor, c.actor)
    row = await OffScheduleRequest.get(id=done.id)
    assert row.status is OffScheduleStatus.CONFIRMED and row.draw_ref == drawn.draw_ref
    assert row.decided_by == drawn.off_schedule["confirmed_by"]
    [told] = await Outbox.filter(template="off_schedule_outcome.j2")
    assert told.recipient_id == int(asker.actor.split(":")[1]) and told.context["outcome"] == "confirmed"
    await refused("request_decided", offschedule.decide(b, done.id, False, clock=clock, zone=ZONE))
    assert (await audit.verify())[1] is None
    assert await AuditRecord.filter(action="off_schedule.confirmed").count() == 1


async def test_decline_and_lapse_cancel_and_say_so(db, tmp_path):
    clock, plan = await setup(tmp_path)
    asker, other = await coordinator("900"), await coordinator("901")
    first = await offschedule.request(asker, plan.id, "补抽", clock=clock, zone=ZONE)
    declined = await offschedule.decide(other, first.id, False, clock=clock, zone=ZONE)
    assert declined.outcome == "declined" and declined.result is None
    second = await offschedule.request(asker, plan.id, "再补抽", clock=clock, zone=ZONE, ttl=timedelta(hours=2))
    clock.advance(timedelta(hours=1))
    assert await offschedule.expire_due(clock.now(), zone=ZONE) == 0
    clock.advance(timedelta(hours=1))
    assert await offschedule.expire_due(clock.now(), zone=ZONE) == 1
    assert await offschedule.expire_due(clock.now(), zone=ZONE) == 0
    exc = await refused("request_decided", offschedule.decide(other, second.id, True, clock=clock, zone=ZONE))
    assert exc.params["status"] == "expired"
    # a press after the time but before the sweep: lapses then and there
    third = await offschedule.request(asker, plan.id, "三补", clock=clock, zone=ZONE, ttl=timedelta(hours=1))
    clock.advance(timedelta(hours=1))
    await refused("request_decided", offschedule.decide(other, third.id, True, clock=clock, zone=ZONE))
    statuses = await OffScheduleRequest.all().order_by("id").values_list("status", flat=True)
    assert [getattr(s, "value", s) for s in statuses] == ["declined", "expired", "expired"]
    assert await Draw.all().count() == 0
    outcomes = await Outbox.filter(template="off_schedule_outcome.j2").order_by("id").values_list("context", flat=True)
    assert [o["outcome"] for o in outcomes] == ["declined", "expired", "expired"]
    actions = (
        await AuditRecord.filter(action__startswith="off_schedule.").order_by("seq").values_list("action", flat=True)
    )
    assert actions == [
        "off_schedule.requested",
        "off_schedule.declined",
        "off_schedule.requested",
        "off_schedule.expired",
        "off_schedule.requested",
        "off_schedule.expired",
    ]


async def test_a_confirmed_draw_refused_by_the_draw_ends_the_request_failed(db, tmp_path):
    """The slot changed after the request (a draw announced ahead and drawn meanwhile)."""
    clock, plan = await setup(tmp_path)
    asker, other = await coordinator("900"), await coordinator("901")
    done = await offschedule.request(asker, plan.id, "补抽", clock=clock, zone=ZONE)
    from tests.builders import scheduled_draw

    await scheduled_draw("P1", clock=clock, zone=ZONE)
    exc = await refused("draw_failed", offschedule.decide(other, done.id, True, clock=clock, zone=ZONE))
    assert exc.params["error"] == "slot_drawn"
    row = await OffScheduleRequest.get(id=done.id)
    assert row.status is OffScheduleStatus.FAILED and row.failure == "slot_drawn"
    assert await Draw.all().count() == 1


async def revoke(scope: Scope, clock) -> None:
    """The binding behind ``scope`` revoked (as an administrator does), after the scope was built."""
    n = await ChatBinding.filter(id=int(scope.actor.split(":")[1])).update(revoked_at=clock.now())
    assert n == 1


async def test_a_request_whose_requester_was_revoked_cannot_be_confirmed(db, tmp_path):
    """Brief 14d §4: the requester's binding revoked between the request and the press: nothing is
    drawn, the request ends failed (audited), and a second press finds it decided."""
    clock, plan = await setup(tmp_path)
    asker, other = await coordinator("900"), await coordinator("901")
    done = await offschedule.request(asker, plan.id, "补抽", clock=clock, zone=ZONE)
    await revoke(asker, clock)
    exc = await refused("draw_failed", offschedule.decide(other, done.id, True, clock=clock, zone=ZONE))
    assert exc.params["error"] == "requester_revoked"
    assert exc.params["requester"] == {"kind": "coordinator", "id": int(asker.actor.split(":")[1]), "name": ""}
    assert "coordinator:" not in text("draw_error", error="requester_revoked", requester=exc.params["requester"])
    assert await Draw.all().count() == 0
    row = await OffScheduleRequest.get(id=done.id)
    assert row.status is OffScheduleStatus.FAILED and row.failure == "requester_revoked"
    await refused("request_decided", offschedule.decide(other, done.id, True, clock=clock, zone=ZONE))
    failed = await AuditRecord.get(action="off_schedule.failed")
    assert failed.actor == other.actor and failed.data["failure"] == "requester_revoked"
    assert (await audit.verify())[1] is None
    # the revoked requester is not told (no live binding); nobody was sent an outcome
    assert await Outbox.filter(template="off_schedule_outcome.j2").count() == 0


async def test_a_confirmer_revoked_after_the_request_cannot_confirm_and_the_request_waits(db, tmp_path):
    clock, plan = await setup(tmp_path)
    asker, gone, stays = await coordinator("900"), await coordinator("901"), await coordinator("902")
    done = await offschedule.request(asker, plan.id, "补抽", clock=clock, zone=ZONE)
    await revoke(gone, clock)
    await refused("confirmer_not_coordinator", offschedule.decide(gone, done.id, True, clock=clock, zone=ZONE))
    assert await Draw.all().count() == 0
    assert (await OffScheduleRequest.get(id=done.id)).status is OffScheduleStatus.PENDING
    decided = await offschedule.decide(stays, done.id, True, clock=clock, zone=ZONE)
    assert decided.outcome == "confirmed" and decided.result is not None
    [drawn] = await Draw.all()
    assert drawn.off_schedule["confirmed_by"] == stays.actor


def rendered(row: Outbox, locale: str) -> str:
    return render(f"messages/{row.template}", locale, **row.context)


async def test_messages_name_the_people_and_the_records_keep_the_actors(db, tmp_path):
    """The request, the outcome and the alert of the draw say who asked and who confirmed by name;
    the request row, the draw (draw.json's flag) and the audit chain keep ``coordinator:<id>``."""
    clock, plan = await setup(tmp_path)
    asker = await coordinator("900", name="王芳")
    other = await coordinator("901", name="李娜")
    done = await offschedule.request(asker, plan.id, "补抽", clock=clock, zone=ZONE)
    await offschedule.decide(other, done.id, True, clock=clock, zone=ZONE)
    by_template = {row.template: row for row in await Outbox.all().order_by("id")}
    expected = {
        "off_schedule_request.j2": ["王芳"],
        "off_schedule_outcome.j2": ["李娜"],
        "off_schedule_draw.j2": ["王芳", "李娜"],
    }
    for template, names in expected.items():
        for locale in ("zh-CN", "en"):
            shown = rendered(by_template[template], locale)
            assert all(n in shown for n in names) and "coordinator:" not in shown, (template, locale, shown)
    row = await OffScheduleRequest.get(id=done.id)
    assert (row.requested_by, row.decided_by) == (asker.actor, other.actor)
    [drawn] = await Draw.all()
    assert (drawn.off_schedule["requested_by"], drawn.off_schedule["confirmed_by"]) == (asker.actor, other.actor)
    confirmed = await AuditRecord.get(action="off_schedule.confirmed")
    assert confirmed.actor == other.actor and confirmed.data["requested_by"] == asker.actor
    # a second press is told who decided it, by name
    exc = await refused("request_decided", offschedule.decide(other, done.id, False, clock=clock, zone=ZONE))
    assert exc.params["by"]["name"] == "李娜"
