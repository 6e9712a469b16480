"""The scheduler and the risk classes: classified before each announce, monthly, and never changed
under an announced draw (the draw uses the classes in force at its announcement)."""

from __future__ import annotations

from datetime import date, timedelta
from zoneinfo import ZoneInfo

from domain.risk.model import parse_model
from models.directory import Entity
from models.draws import Draw, Inspection
from models.risk import RiskRun
from services.risk import overrides, versions
from tests.domain.test_risk import SMALL
from tests.test_scheduler import DEC_1_0900, at, plan_keys, setup


async def test_classes_are_set_at_announce_and_kept_until_the_draw(db, tmp_path):
    announce_at = DEC_1_0900 - timedelta(days=1) + timedelta(minutes=1)
    clock = at(announce_at)
    sched = await setup(db, tmp_path, clock)
    await versions.propose(parse_model(SMALL), actor="cli", now=announce_at)
    await versions.decide("small", approve=True, actor="cli", now=announce_at)
    target = await Entity.all().order_by("id").first()
    await versions.store_values([(target.id, "months", 60, announce_at.date())])  # 50 → C
    assert plan_keys(await sched.run_due()) == ["announce:P1:2026-12-01T09:00:00+08:00"]
    assert [r.reason for r in await RiskRun.all()] == ["announce"]  # the monthly one waits for the draw
    assert (await Entity.get(id=target.id)).risk_class.value == "C"
    # new values arrive, a new month begins: the announced draw still gets the classes of its announcement
    await versions.store_values([(target.id, "penalties", 10, announce_at.date())])  # → E
    clock.set(DEC_1_0900 - timedelta(hours=8))
    assert "risk:2026-12" not in await sched.run_due()
    assert (await Entity.get(id=target.id)).risk_class.value == "C"
    clock.set(DEC_1_0900 + timedelta(minutes=1))
    ran = await sched.run_due()
    assert plan_keys(ran) == ["draw:P1:2026-12-01T09:00:00+08:00"] and "risk:2026-12" in ran
    draw = await Draw.get()
    drawn = await Inspection.filter(draw_id=draw.id, entity_id=target.id).values_list("stratum", flat=True)
    assert drawn in ([], ["C"])  # if drawn at all, in the class in force at the announcement
    assert (await Entity.get(id=target.id)).risk_class.value == "E"  # reclassified after the draw
    assert "risk:2026-12" not in await sched.run_due()  # once a month


async def test_an_override_approved_after_an_announcement_waits_for_its_draw(db, tmp_path):
    """An override never changes a class between an announcement and its draw: approved meanwhile, it
    applies at the first classification after the draw (the monthly one here)."""
    announce_at = DEC_1_0900 - timedelta(days=1) + timedelta(minutes=1)
    clock = at(announce_at)
    sched = await setup(db, tmp_path, clock)
    zone = ZoneInfo("Asia/Shanghai")
    await versions.propose(parse_model(SMALL), actor="cli", now=announce_at)
    await versions.decide("small", approve=True, actor="cli", now=announce_at)
    target = await Entity.all().order_by("id").first()
    await versions.store_values([(target.id, "months", 60, announce_at.date())])  # 50 → C
    assert plan_keys(await sched.run_due()) == ["announce:P1:2026-12-01T09:00:00+08:00"]
    assert (await Entity.get(id=target.id)).risk_class.value == "C"
    proposed = await overrides.propose(
        target.uscc, "E", "立案调查中", date(2027, 3, 31), actor="alice", departments=None, now=announce_at, zone=zone
    )
    await overrides.decide(proposed.id, True, actor="bob", departments=None, now=announce_at, zone=zone)
    clock.set(DEC_1_0900 - timedelta(hours=8))  # a new month: the monthly classification waits for the draw
    assert "risk:2026-12" not in await sched.run_due()
    assert (await Entity.get(id=target.id)).risk_class.value == "C"
    clock.set(DEC_1_0900 + timedelta(minutes=1))
    ran = await sched.run_due()
    assert plan_keys(ran) == ["draw:P1:2026-12-01T09:00:00+08:00"] and "risk:2026-12" in ran
    drawn = await Inspection.filter(draw_id=(await Draw.get()).id, entity_id=target.id).values_list(
        "stratum", flat=True
    )
    assert drawn in ([], ["C"])  # if drawn at all, in the class of the announcement, not the override's
    assert (await Entity.get(id=target.id)).risk_class.value == "E"  # the override, after the draw
