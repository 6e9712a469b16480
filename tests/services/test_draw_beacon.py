"""Issue 14 item 3: the beacon of a scheduled draw, planned at announce time and never replaced by
an empty one — a real quicknet round (from the drand simulator's recorded rounds), a local test
chain through the scheduler, values named in advance, and the policy when the beacon is missing
(SQLite and PostgreSQL; no network: the relay is the simulator on loopback)."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime, timedelta

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.runtime import Runtime
from bot.web import make_app
from core import drand
from core.clock import FakeClock
from domain import beacon as beacons
from domain import bundle
from models.alerts import Alert
from models.audit import AuditRecord
from models.draws import Draw, Firing
from models.messaging import Channel, ChatBinding, Role
from scheduler import Scheduler
from services import plans
from services.draws.announce import announce
from services.draws.beacon import BeaconConfig, enter_values
from services.draws.common import DrawError
from services.draws.export import export
from services.draws.write import draw
from simulators.drand import DrandSimulator
from tests.services import draw_world as world

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
ZONE = world.ZONE
ROUND = 1_000_000  # a real quicknet round: 2023-09-27 08:29:24 UTC
ROUND_TIME = datetime.fromtimestamp(beacons.round_time(beacons.QUICKNET, ROUND), UTC)
QUICKNET = BeaconConfig("drand", beacons.QUICKNET)
SOURCES = ["福彩3D 2026340期开奖号码", "体彩排列5 26340期开奖号码"]


async def refused(code: str, awaitable) -> DrawError:
    with pytest.raises(DrawError) as info:
        await awaitable
    assert info.value.code == code, info.value
    return info.value


async def setup(tmp_path, clock) -> None:
    await world.build(n_entities=12, n_scjg=4, n_wsj=0)
    await plans.add_plan(world.plan_file(tmp_path, "P1"), clock)


async def on_schedule(draw_ref: str) -> None:
    """Make the firing look announced the plan's lead time ahead (as the scheduler announces)."""
    firing = await Firing.get(draw_ref=draw_ref)
    await Firing.filter(id=firing.id).update(announced_at=firing.fire_at - timedelta(days=2))


async def verified(draw_ref: str, tmp_path, clock) -> list[bundle.CheckLine]:
    out = tmp_path / "bundle"
    exported = await export(draw_ref, out, clock=clock)
    files = {name: (out / name).read_bytes() for name in exported.files}
    return bundle.verify(files, check_signature=drand.verify_signature)


def failed(lines: list[bundle.CheckLine]) -> list[str]:
    return [line.what for line in lines if not line.ok]


async def test_a_real_quicknet_round_enters_the_seed_and_verifies_offline(db, tmp_path):
    clock = FakeClock(datetime(2023, 9, 20, tzinfo=UTC))
    await setup(tmp_path, clock)
    announced = await announce("P1", ROUND_TIME - timedelta(seconds=2), clock=clock, zone=ZONE, beacon=QUICKNET)
    assert announced.beacon_plan["round"] == ROUND  # fixed and published with the commitment
    await on_schedule(announced.draw_ref)
    clock.set(ROUND_TIME + timedelta(seconds=5))
    async with DrandSimulator() as sim:
        dead = "http://127.0.0.1:9"  # a relay that is down is skipped
        result = await draw(
            announced.draw_ref, clock=clock, zone=ZONE, beacon_fetch=drand.relay_fetcher([dead, sim.url])
        )
    assert result.beacon == f"drand/quicknet/{ROUND}/b22aad4794f7451896f7a371aa46106fd84d919f3f569acd5b2fddf1d1440af3"
    row = await Draw.get(draw_ref=announced.draw_ref)
    assert row.beacon == result.beacon and row.beacon_source["round"] == ROUND
    lines = await verified(announced.draw_ref, tmp_path, clock)
    assert failed(lines) == []
    whats = [line.what for line in lines]
    assert whats[whats.index("seed") + 1 : whats.index("seed") + 6] == [
        "beacon_chain_public",
        "beacon_round",
        "beacon_signature",
        "beacon_randomness",
        "beacon_string",
    ]
    doc = json.loads((tmp_path / "bundle" / "draw.json").read_bytes())
    assert doc["beacon_source"]["signature"] == row.beacon_source["signature"]


async def test_a_tampered_bundle_beacon_fails(db, tmp_path):
    clock = FakeClock(datetime(2023, 9, 20, tzinfo=UTC))
    await setup(tmp_path, clock)
    announced = await announce("P1", ROUND_TIME, clock=clock, zone=ZONE, beacon=QUICKNET)
    await on_schedule(announced.draw_ref)
    clock.set(ROUND_TIME + timedelta(seconds=5))
    async with DrandSimulator() as sim:
        await draw(announced.draw_ref, clock=clock, zone=ZONE, beacon_fetch=drand.relay_fetcher([sim.url]))
    await verified(announced.draw_ref, tmp_path, clock)
    path = tmp_path / "bundle" / "draw.json"
    doc = json.loads(path.read_bytes())
    files = {n: (tmp_path / "bundle" / n).read_bytes() for n in bundle.REQUIRED_FILES}
    # another real round, with its real signature: the draw time fixed round 1000000
    other = 657413
    sig = "b713718a38ae728dfd477991af2822e08d2f305e47718cef9f7848ce4050e7be41076862b98fad56e91a6b85b89cd97b"
    doc["beacon_source"] = {
        **doc["beacon_source"],
        "round": other,
        "signature": sig,
        "randomness": beacons.randomness(sig),
    }
    doc["beacon"] = beacons.drand_beacon(beacons.QUICKNET, other, beacons.randomness(sig))
    tampered = {**files, "draw.json": bundle.canonical_json(doc) + b"\n"}
    assert failed(bundle.verify(tampered, check_signature=drand.verify_signature))[:2] == ["seed", "beacon_round"]


async def test_the_draw_waits_for_its_round_and_never_takes_an_empty_beacon(db, tmp_path):
    clock = FakeClock(datetime(2023, 9, 20, tzinfo=UTC))
    await setup(tmp_path, clock)
    announced = await announce("P1", ROUND_TIME, clock=clock, zone=ZONE, beacon=QUICKNET)
    await on_schedule(announced.draw_ref)
    clock.set(ROUND_TIME + timedelta(seconds=5))
    async with DrandSimulator() as sim:
        fetch = drand.relay_fetcher([sim.url])
        sim.outage = True
        exc = await refused("beacon_unavailable", draw(announced.draw_ref, clock=clock, zone=ZONE, beacon_fetch=fetch))
        assert exc.params["round"] == ROUND
        sim.outage, sim.withhold = False, {ROUND}
        await refused("beacon_unavailable", draw(announced.draw_ref, clock=clock, zone=ZONE, beacon_fetch=fetch))
        await refused("beacon_unavailable", draw(announced.draw_ref, clock=clock, zone=ZONE))  # no relay at all
        await refused("beacon_planned", draw(announced.draw_ref, "my-own", clock=clock, zone=ZONE))
        assert await Draw.all().count() == 0

        async def lying(chain, number):  # a relay answering another round's signature
            return "b713718a38ae728dfd477991af2822e08d2f305e47718cef9f7848ce4050e7be41076862b98fad56e91a6b85b89cd97b"

        await refused("beacon_unavailable", draw(announced.draw_ref, clock=clock, zone=ZONE, beacon_fetch=lying))
        sim.withhold = set()
        await draw(announced.draw_ref, clock=clock, zone=ZONE, beacon_fetch=fetch)
    assert (await Draw.get(draw_ref=announced.draw_ref)).beacon_source["round"] == ROUND


# --------------------------------------------------------------------------- the scheduler


DEC_1_0900 = datetime(2026, 12, 1, 1, 0, tzinfo=UTC)  # the test plan fires at 09:00 on the 1st


async def test_scheduled_draw_on_a_test_chain_with_the_missing_beacon_policy(db, tmp_path):
    clock = FakeClock(datetime(2026, 11, 20, tzinfo=UTC))
    await setup(tmp_path, clock)
    sim = DrandSimulator(now=lambda: clock.now().timestamp())
    await sim.start()
    try:
        settings = db.with_(beacon="drand", drand_relays=(sim.url,), drand_chain=sim.chain_info_json())
        sched = Scheduler(Runtime(settings=settings, clock=clock), grace=timedelta(hours=6))
        clock.set(DEC_1_0900 - timedelta(days=1) + timedelta(minutes=1))
        await sched.run_due()
        firing = await Firing.get(plan__code="P1")
        assert firing.beacon_plan["chain"]["hash"] == sim.test.chain.hash
        assert firing.beacon_plan["round"] == beacons.round_at(sim.test.chain, int(DEC_1_0900.timestamp()))
        # draw time: the relays are down; the draw waits, and does not alert at once
        sim.outage = True
        clock.set(DEC_1_0900 + timedelta(minutes=1))
        assert "draw:P1:2026-12-01T09:00:00+08:00" not in await sched.run_due()
        assert await Draw.all().count() == 0 and await Alert.filter(kind="beacon_missing").count() == 0
        # past the wait: the plan's coordinators are alerted, once
        clock.set(DEC_1_0900 + timedelta(minutes=31))
        await sched.run_due()
        clock.set(DEC_1_0900 + timedelta(minutes=32))
        await sched.run_due()
        assert await Draw.all().count() == 0
        alert = await Alert.get(kind="beacon_missing")
        assert alert.context["draw_ref"] == firing.draw_ref and alert.context["kind"] == "drand"
        # the relay is back within the grace: drawn with the planned round
        sim.outage = False
        clock.set(DEC_1_0900 + timedelta(minutes=40))
        assert "draw:P1:2026-12-01T09:00:00+08:00" in await sched.run_due()
        row = await Draw.get(firing_id=firing.id)
        assert row.beacon_source["round"] == firing.beacon_plan["round"]
        lines = await verified(firing.draw_ref, tmp_path, clock)
        assert failed(lines) == [] and "beacon_chain_test" in [line.what for line in lines]
        # the public draw page marks the test chain, in both locales
        async with TestClient(TestServer(make_app(Runtime(settings=db, clock=clock)))) as client:
            zh = await (await client.get(f"/draws/{firing.draw_ref}")).text()
            en = await (await client.get(f"/draws/{firing.draw_ref}?lang=en")).text()
        assert "<strong>这是本地测试链，不是公共 drand 网络" in zh
        assert "<strong>This is a local test chain, not the public drand network" in en
    finally:
        await sim.stop()


async def test_a_missing_beacon_past_the_grace_is_reported_missed_never_drawn(db, tmp_path):
    clock = FakeClock(datetime(2026, 11, 20, tzinfo=UTC))
    await setup(tmp_path, clock)
    async with DrandSimulator(now=lambda: clock.now().timestamp()) as sim:
        settings = db.with_(beacon="drand", drand_relays=(sim.url,), drand_chain=sim.chain_info_json())
        sched = Scheduler(Runtime(settings=settings, clock=clock), grace=timedelta(hours=6))
        clock.set(DEC_1_0900 - timedelta(days=1) + timedelta(minutes=1))
        await sched.run_due()
        sim.outage = True
        clock.set(DEC_1_0900 + timedelta(minutes=1))
        await sched.run_due()
        clock.set(DEC_1_0900 + timedelta(hours=7))
        await sched.run_due()
        sim.outage = False
        clock.set(DEC_1_0900 + timedelta(hours=8))
        await sched.run_due()
    assert await Draw.all().count() == 0
    assert await Alert.filter(kind="scheduler_missed").count() >= 1


# --------------------------------------------------------------------------- values named in advance


async def coordinator(address: str) -> int:
    return (
        await ChatBinding.create(channel=Channel.TELEGRAM, address=address, role=Role.COORDINATOR, departments=["SCJG"])
    ).id


async def test_values_named_in_advance_typed_and_confirmed_then_verified(db, tmp_path):
    clock = world.clock()
    await setup(tmp_path, clock)
    second = await coordinator("c2")
    announced = await announce(
        "P1", clock.now() + timedelta(days=2), clock=clock, zone=ZONE, actor="cli", beacon_sources=SOURCES
    )
    assert announced.beacon_plan == {"kind": "values", "sources": SOURCES}
    await on_schedule(announced.draw_ref)
    clock.advance(timedelta(days=2, minutes=1))
    exc = await refused("beacon_unavailable", draw(announced.draw_ref, clock=clock, zone=ZONE))
    assert exc.params["sources"] == " | ".join(SOURCES)
    await refused(
        "beacon_values_count",
        enter_values(announced.draw_ref, ["307"], confirmed_by=second, entered_by="cli", clock=clock),
    )
    await refused(
        "confirmer_not_coordinator",
        enter_values(announced.draw_ref, ["307", "44190"], confirmed_by=second + 99, entered_by="cli", clock=clock),
    )
    await refused(
        "beacon_values_unconfirmed",
        enter_values(
            announced.draw_ref, ["307", "44190"], confirmed_by=second, entered_by=f"coordinator:{second}", clock=clock
        ),
    )
    await refused(
        "beacon_value_malformed",
        enter_values(announced.draw_ref, ["三零七", "44190"], confirmed_by=second, entered_by="cli", clock=clock),
    )
    entered = await enter_values(
        announced.draw_ref, ["3 0 7", "4,4,1,9,0"], confirmed_by=second, entered_by="cli", clock=clock
    )
    assert entered.beacon == "0.3.7/0.1.4.4.9/"
    await refused(
        "beacon_values_entered",
        enter_values(announced.draw_ref, ["1", "2"], confirmed_by=second, entered_by="cli", clock=clock),
    )
    assert await AuditRecord.filter(action="beacon.values_entered").count() == 1
    result = await draw(announced.draw_ref, clock=clock, zone=ZONE)
    assert result.beacon == "0.3.7/0.1.4.4.9/"
    lines = await verified(announced.draw_ref, tmp_path, clock)
    assert failed(lines) == [] and {"beacon_values", "beacon_values_confirmed"} <= {line.what for line in lines}
    # a value changed afterwards: the re-formed string no longer matches
    path = tmp_path / "bundle" / "draw.json"
    doc = json.loads(path.read_bytes())
    doc["beacon_source"]["values"][0] = "0.3.8"
    files = {n: (tmp_path / "bundle" / n).read_bytes() for n in bundle.REQUIRED_FILES}
    assert failed(bundle.verify({**files, "draw.json": bundle.canonical_json(doc) + b"\n"})) == ["beacon_values"]


async def test_an_old_bundle_without_a_planned_beacon_still_verifies(db, tmp_path):
    clock = world.clock()
    await setup(tmp_path, clock)
    announced = await announce("P1", clock.now() + timedelta(days=2), clock=clock, zone=ZONE)
    await on_schedule(announced.draw_ref)
    clock.advance(timedelta(days=2, minutes=1))
    await draw(announced.draw_ref, "lottery 12345", clock=clock, zone=ZONE)
    lines = await verified(announced.draw_ref, tmp_path, clock)
    assert failed(lines) == [] and "beacon_unplanned" in [line.what for line in lines]
    assert b"beacon_source" not in (tmp_path / "bundle" / "draw.json").read_bytes()


# --------------------------------------------------------------------------- public pages


async def test_pages_publish_the_planned_beacon_and_say_how_to_check_it(db, tmp_path):
    clock = FakeClock(datetime(2023, 9, 20, tzinfo=UTC))
    await setup(tmp_path, clock)
    drawn = await announce("P1", ROUND_TIME, clock=clock, zone=ZONE, beacon=QUICKNET)
    ahead = await announce("P1", ROUND_TIME + timedelta(days=1), clock=clock, zone=ZONE, beacon_sources=SOURCES)
    await on_schedule(drawn.draw_ref)
    clock.set(ROUND_TIME + timedelta(seconds=5))
    async with DrandSimulator() as sim:
        await draw(drawn.draw_ref, clock=clock, zone=ZONE, beacon_fetch=drand.relay_fetcher([sim.url]))
    rt = Runtime(settings=db, clock=clock)
    async with TestClient(TestServer(make_app(rt))) as client:

        async def get(path: str) -> str:
            response = await client.get(path)
            assert response.status == 200, path
            return await response.text()

        home = await get("/")
        assert ahead.commitment in home and "福彩3D 2026340期开奖号码" in home and "事先指定的公开数值" in home
        page = await get(f"/draws/{drawn.draw_ref}")
        assert f"drand quicknet 第 {ROUND} 轮" in page and "核对方法" in page and "测试链" not in page
        page_en = await get(f"/draws/{drawn.draw_ref}?lang=en")
        assert f"drand quicknet round {ROUND}" in page_en and "How to check" in page_en


# --------------------------------------------------------------------------- the command line


async def test_cli_announce_names_the_sources_and_beacon_enter_records_the_values_once(db, tmp_path, capsys):
    from bot.commands import draws as draws_cli
    from core import db as dbmod

    await setup(tmp_path, world.clock())
    second = await coordinator("c9")
    await dbmod.close()
    at = (datetime.now(UTC) + timedelta(days=3)).astimezone(ZONE).strftime("%Y-%m-%d %H:%M")
    ns = argparse.Namespace
    assert await draws_cli.announce(ns(plan="P1", at=at, beacon_source=SOURCES), db) == 0
    out = capsys.readouterr().out
    assert "信标：以下公开来源的结果" in out and "1. 福彩3D 2026340期开奖号码" in out
    draw_ref = out.split("已公示 ", 1)[1].split("（", 1)[0]
    enter = ns(action="enter", draw_ref=draw_ref, values=["307", "4 4 1 9 0"], confirmed_by=f"coordinator:{second}")
    assert await draws_cli.enter_beacon(enter, db) == 0
    entered = capsys.readouterr().out
    assert "信标字符串（RFC 3797）：307/0.1.4.4.9/" in entered
    assert f"由 协调员（#{second}） 确认" in entered and "coordinator:" not in entered  # no display name: its number
    assert await draws_cli.enter_beacon(enter, db) == 1  # once only
    assert "已经录入" in capsys.readouterr().err
    bad = ns(action="enter", draw_ref=draw_ref, values=["1"], confirmed_by="nobody")
    assert await draws_cli.enter_beacon(bad, db) == 1
    await dbmod.init(db)
