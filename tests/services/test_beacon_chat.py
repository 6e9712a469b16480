"""Brief 14d §3: the planned beacon in the coordinator's chat views, and beacon values typed in
chat (``/beacon DRAW_REF V…``) confirmed by a second coordinator's button — audited, once only,
the proposer's binding re-checked (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from core import drand
from core.keyboards import keyboard
from core.render import render
from domain import beacon as beacons
from models.audit import AuditRecord
from models.draws import BeaconEntry, BeaconEntryStatus, Firing
from models.messaging import Channel, ChatBinding, Outbox, Role
from services import audit, plan_views, plans
from services.draws import beacon_entry
from services.draws.announce import announce
from services.draws.beacon import BeaconConfig
from services.draws.common import DrawError
from services.draws.status import draw_status
from services.draws.write import draw
from services.scope import Scope
from tests.services import draw_world as world

ZONE = world.ZONE
SOURCES = ["福彩3D 2026340期开奖号码", "体彩排列5 26340期开奖号码"]


async def coordinator(address: str, name: str = "") -> Scope:
    b = await ChatBinding.create(
        channel=Channel.TELEGRAM, address=address, role=Role.COORDINATOR, departments=["SCJG"], display_name=name
    )
    scope = Scope.of([b])
    assert scope is not None
    return scope


async def refused(code: str, awaitable) -> DrawError:
    with pytest.raises(DrawError) as info:
        await awaitable
    assert info.value.code == code, info.value
    return info.value


async def announced_values(tmp_path):
    await world.build(n_entities=12, n_scjg=4, n_wsj=0)
    clock = world.clock()
    await plans.add_plan(world.plan_file(tmp_path, "P1"), clock)
    done = await announce("P1", clock.now() + timedelta(days=2), clock=clock, zone=ZONE, beacon_sources=SOURCES)
    return clock, done


def test_values_split_by_bar_or_new_line_else_by_spaces():
    assert beacon_entry.split_values("307 44190") == ["307", "44190"]
    assert beacon_entry.split_values("3 0 7 | 4 4 1 9 0") == ["3 0 7", "4 4 1 9 0"]
    assert beacon_entry.split_values("3 0 7\n4,4,1,9,0\n") == ["3 0 7", "4,4,1,9,0"]
    assert beacon_entry.split_values("  ") == []


async def test_values_typed_in_chat_are_confirmed_by_another_coordinators_button(db, tmp_path):
    clock, done = await announced_values(tmp_path)
    asker, other, third = await coordinator("900", "王芳"), await coordinator("901", "李娜"), await coordinator("902")
    # the plan view shows the named sources, not yet entered
    detail = await plan_views.plan_detail(asker, "P1", clock.now(), ZONE)
    assert detail["pending"]["beacon"] == {"kind": "values", "sources": SOURCES, "values": []}
    shown = render("messages/coord_plan.j2", "en", plan=detail)
    assert "Beacon: values of 1. 福彩3D 2026340期开奖号码; 2. 体彩排列5 26340期开奖号码 — not entered yet" in shown
    # refused before anything is asked
    await refused("beacon_values_count", beacon_entry.propose(asker, done.draw_ref, ["307"], clock=clock))
    await refused("beacon_value_malformed", beacon_entry.propose(asker, done.draw_ref, ["三", "1"], clock=clock))
    await refused("draw_ref_not_found", beacon_entry.propose(asker, "P1/1999-01-01", ["1", "2"], clock=clock))
    assert (
        await BeaconEntry.all().count() == 0 and await Outbox.filter(template="beacon_values_request.j2").count() == 0
    )
    # a typo proposed, then the right values: both wait
    typo = await beacon_entry.propose(asker, done.draw_ref, ["308", "44190"], clock=clock)
    right = await beacon_entry.propose(asker, done.draw_ref, beacon_entry.split_values("3 0 7|4 4 1 9 0"), clock=clock)
    assert right.asked == 2 and right.values == ["0.3.7", "0.1.4.4.9"]
    asks = await Outbox.filter(template="beacon_values_request.j2").order_by("id")
    assert sorted(a.recipient_id for a in asks if a.context["entry"] == right.id) == sorted(
        int(s.actor.split(":")[1]) for s in (other, third)
    )
    assert asks[0].context["keyboard"] == ["beacon_decision", typo.id]
    assert keyboard("beacon_decision", typo.id)[0][1]["data"] == f"bcn:no:{typo.id}"
    # the proposer cannot confirm; the typo is declined; two confirm the right values at once: one wins
    await refused("confirmer_is_requester", beacon_entry.decide(asker, right.id, True, clock=clock))
    assert (await beacon_entry.decide(other, typo.id, False, clock=clock)).outcome == "declined"
    outcomes = await asyncio.gather(
        *(beacon_entry.decide(s, right.id, True, clock=clock) for s in (other, third)), return_exceptions=True
    )
    won = [o for o in outcomes if not isinstance(o, BaseException)]
    assert len(won) == 1 and won[0].entered is not None and won[0].entered.beacon == "0.3.7/0.1.4.4.9/", outcomes
    [lost] = [o for o in outcomes if isinstance(o, BaseException)]
    assert isinstance(lost, DrawError) and lost.code == "beacon_entry_decided"
    firing = await Firing.get(draw_ref=done.draw_ref)
    assert firing.beacon_values["entered_by"] == asker.actor
    assert firing.beacon_values["confirmed_by"] in (other.actor, third.actor)
    # once only: values proposed now are refused at once
    await refused("beacon_values_entered", beacon_entry.propose(third, done.draw_ref, ["1", "2"], clock=clock))
    outcomes_told = await Outbox.filter(template="beacon_values_outcome.j2").order_by("id")
    assert [o.context["outcome"] for o in outcomes_told] == ["declined", "confirmed"]
    # the messages name the people (the one without a display name by number); the firing keeps the actors
    for locale in ("zh-CN", "en"):
        for ask in asks:
            shown = render(f"messages/{ask.template}", locale, **ask.context)
            assert "王芳" in shown and "coordinator:" not in shown, shown
        told = [render(f"messages/{o.template}", locale, **o.context) for o in outcomes_told]
        assert "李娜" in told[0] and all("coordinator:" not in t for t in told), told
        third_id = int(third.actor.split(":")[1])
        assert any(n in told[1] for n in ("李娜", f"协调员（#{third_id}）", f"coordinator #{third_id}")), told
    actions = [
        a for a in await AuditRecord.all().order_by("seq").values_list("action", flat=True) if a.startswith("beacon.")
    ]
    assert actions == [
        "beacon.values_proposed",
        "beacon.values_proposed",
        "beacon.values_declined",
        "beacon.values_entered",
    ]
    assert (await audit.verify())[1] is None
    detail = await plan_views.plan_detail(asker, "P1", clock.now(), ZONE)
    assert "福彩3D 2026340期开奖号码 = 0.3.7" in render("messages/coord_plan.j2", "en", plan=detail)
    # drawn with those values; /status shows them
    await Firing.filter(id=firing.id).update(announced_at=firing.fire_at - timedelta(days=2))
    clock.advance(timedelta(days=2, minutes=1))
    result = await draw(done.draw_ref, clock=clock, zone=ZONE)
    assert result.beacon == "0.3.7/0.1.4.4.9/"
    s = await draw_status(asker, done.draw_ref, clock.now(), ZONE)
    assert "信标：以下来源的数值 1. 福彩3D 2026340期开奖号码 = 0.3.7" in render(
        "messages/coord_status.j2", "zh-CN", s=s
    )


async def test_values_whose_proposer_was_revoked_cannot_be_confirmed(db, tmp_path):
    clock, done = await announced_values(tmp_path)
    asker, other = await coordinator("900"), await coordinator("901")
    proposed = await beacon_entry.propose(asker, done.draw_ref, ["307", "44190"], clock=clock)
    await ChatBinding.filter(id=int(asker.actor.split(":")[1])).update(revoked_at=clock.now())
    await refused("requester_revoked", beacon_entry.decide(other, proposed.id, True, clock=clock))
    row = await BeaconEntry.get(id=proposed.id)
    assert row.status is BeaconEntryStatus.FAILED and row.failure == "requester_revoked"
    assert (await Firing.get(draw_ref=done.draw_ref)).beacon_values is None
    assert await AuditRecord.filter(action="beacon.values_failed").count() == 1
    await refused("beacon_entry_decided", beacon_entry.decide(other, proposed.id, True, clock=clock))


async def test_a_revoked_confirmer_is_refused_and_a_firing_without_sources_takes_no_values(db, tmp_path):
    clock, done = await announced_values(tmp_path)
    asker, gone = await coordinator("900"), await coordinator("901")
    proposed = await beacon_entry.propose(asker, done.draw_ref, ["307", "44190"], clock=clock)
    await ChatBinding.filter(id=int(gone.actor.split(":")[1])).update(revoked_at=clock.now())
    await refused("confirmer_not_coordinator", beacon_entry.decide(gone, proposed.id, True, clock=clock))
    # another department's coordinator: the firing and the entry look missing
    b = await ChatBinding.create(channel=Channel.TELEGRAM, address="977", role=Role.COORDINATOR, departments=["WSJ"])
    outsider = Scope.of([b])
    assert outsider is not None
    await refused("draw_ref_not_found", beacon_entry.propose(outsider, done.draw_ref, ["307", "44190"], clock=clock))
    await refused("beacon_entry_not_found", beacon_entry.decide(outsider, proposed.id, True, clock=clock))
    assert (await BeaconEntry.get(id=proposed.id)).status is BeaconEntryStatus.PENDING
    plain = await announce("P1", clock.now() + timedelta(days=3), clock=clock, zone=ZONE)
    await refused("beacon_not_values", beacon_entry.propose(asker, plain.draw_ref, ["1", "2"], clock=clock))


async def test_the_plan_view_shows_the_drand_round_and_its_time(db, tmp_path):
    await world.build(n_entities=12, n_scjg=4, n_wsj=0)
    clock = world.clock()
    await plans.add_plan(world.plan_file(tmp_path, "P1"), clock)
    at = clock.now() + timedelta(days=2)
    await announce("P1", at, clock=clock, zone=ZONE, beacon=BeaconConfig("drand", beacons.QUICKNET))
    scope = await coordinator("900")
    detail = await plan_views.plan_detail(scope, "P1", clock.now(), ZONE)
    b = detail["pending"]["beacon"]
    n = beacons.round_at(beacons.QUICKNET, int(at.timestamp()))
    produced = datetime.fromtimestamp(beacons.round_time(beacons.QUICKNET, n), UTC).astimezone(ZONE)
    assert b == {
        "kind": "drand",
        "beacon_id": "quicknet",
        "round": n,
        "at": produced.strftime("%Y-%m-%d %H:%M:%S"),
        "test": False,
    }
    shown = render("messages/coord_plan.j2", "zh-CN", plan=detail)
    assert f"信标：drand quicknet 第 {n} 轮，产生于 {b['at']}" in shown and "测试链" not in shown
    # a test chain is flagged
    test_chain = drand.test_chain(1_700_000_000, secret_key=4242).chain
    later = await announce(
        "P1", at + timedelta(days=1), clock=clock, zone=ZONE, beacon=BeaconConfig("drand", test_chain)
    )
    [row] = await Firing.filter(draw_ref=later.draw_ref).values_list("beacon_plan", flat=True)
    from services.draws.beacon import describe

    assert describe(row, ZONE)["test"] is True
    assert "a TEST chain" in render(
        "messages/coord_plan.j2", "en", plan={**detail, "pending": {**detail["pending"], "beacon": describe(row, ZONE)}}
    )
