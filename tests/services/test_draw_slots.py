"""Issue 14, first slice: one commitment per slot, withdrawal, off-schedule draws (reason and a
second coordinator, marked everywhere), a re-run that finds the committed draw, two racing
redraws, and the warnings before a draw (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import pytest

from core.render import render
from domain import bundle
from domain.plans import PlanError, parse_plan
from models.alerts import Alert
from models.audit import AuditRecord
from models.draws import Draw, Firing, FiringStatus
from models.messaging import Channel, ChatBinding, Outbox, Role
from services import audit, plans, reports
from services.draws.announce import announce, withdraw
from services.draws.common import DrawError
from services.draws.confirm import draw_now
from services.draws.export import export
from services.draws.gather import Preview
from services.draws.write import OffSchedule, draw, draw_plan
from services.scope import Scope
from tests.builders import announced_ahead, scheduled_draw
from tests.services import draw_world as world

ZONE = world.ZONE


async def add(tmp_path, clock, code="P1", **kwargs):
    return await plans.add_plan(world.plan_file(tmp_path, code, **kwargs), clock)


async def coordinator(address: str, departments=("SCJG",)) -> int:
    b = await ChatBinding.create(
        channel=Channel.TELEGRAM, address=address, role=Role.COORDINATOR, departments=list(departments)
    )
    return b.id


async def setup(tmp_path, n_entities=40, **plan):
    await world.build(n_entities=n_entities)
    clock = world.clock()
    await add(tmp_path, clock, **plan)
    return clock


async def refused(code: str, awaitable) -> DrawError:
    with pytest.raises(DrawError) as info:
        await awaitable
    assert info.value.code == code, info.value
    return info.value


# --- one commitment per slot ------------------------------------------------------------------


async def test_announcing_a_slot_twice_is_refused_naming_its_commitment(db, tmp_path):
    clock = await setup(tmp_path, n_entities=4)
    at = clock.now() + timedelta(days=2)
    first = await announce("P1", at, clock=clock, zone=ZONE)
    exc = await refused("slot_taken", announce("P1", at, clock=clock, zone=ZONE))
    assert exc.params["draw_ref"] == first.draw_ref and exc.params["commitment"] == first.commitment
    assert await Firing.all().count() == 1


async def test_announcing_a_time_in_the_past_is_refused(db, tmp_path):
    clock = await setup(tmp_path, n_entities=4)
    await refused("at_in_past", announce("P1", clock.now() - timedelta(hours=1), clock=clock, zone=ZONE))
    assert await Firing.all().count() == 0


async def test_a_withdrawn_firing_is_audited_never_drawn_and_its_slot_never_reused(db, tmp_path):
    clock = await setup(tmp_path, n_entities=4)
    at = clock.now() + timedelta(days=2)
    announced = await announce("P1", at, clock=clock, zone=ZONE, actor="cli")
    await refused("reason_required", withdraw(announced.draw_ref, "  ", actor="cli", clock=clock))
    done = await withdraw(announced.draw_ref, "名录有误，改期", actor="cli", clock=clock)
    assert done.commitment == announced.commitment
    firing = await Firing.get(draw_ref=announced.draw_ref)
    assert firing.status is FiringStatus.WITHDRAWN and firing.withdrawn_reason == "名录有误，改期"
    actions = await AuditRecord.all().order_by("seq").values_list("action", flat=True)
    assert actions == ["plan.added", "firing.announced", "firing.withdrawn"]
    assert (await audit.verify())[1] is None
    await refused("not_withdrawable", withdraw(announced.draw_ref, "again", actor="cli", clock=clock))
    exc = await refused("slot_taken", announce("P1", at, clock=clock, zone=ZONE))
    assert exc.params["status"] == "withdrawn" and exc.params["reason"] == "名录有误，改期"
    clock.advance(timedelta(days=2))
    await refused("firing_withdrawn", draw(announced.draw_ref, clock=clock, zone=ZONE))


# --- a slot already drawn, and the re-run after a crash -----------------------------------------


async def test_draw_twice_is_refused_saying_what_exists(db, tmp_path):
    """Today `inspectbot draw PLAN` twice silently made PLAN/<day>.2: now the second is refused."""
    clock = await setup(tmp_path)
    first = await scheduled_draw("P1", clock=clock, zone=ZONE)
    clock.advance(timedelta(minutes=5))
    exc = await refused("slot_drawn", draw_plan("P1", clock=clock, zone=ZONE))
    assert exc.params["draw_ref"] == first.draw_ref and exc.params["drawn_at"] == "2026-12-01 10:00"
    assert await Firing.all().count() == 1 and await Draw.all().count() == 1


async def test_rerun_after_a_crash_that_had_committed_finds_the_draw(db, tmp_path):
    """The draw of the pending firing committed, the process died before saying so: the re-run
    finds that draw and announces nothing."""
    clock = await setup(tmp_path)
    announced = await announced_ahead("P1", None, clock=clock, zone=ZONE)
    await draw(announced.draw_ref, clock=clock, zone=ZONE)  # committed; "crash" before any output
    exc = await refused("slot_drawn", draw_plan("P1", clock=clock, zone=ZONE))
    assert exc.params["draw_ref"] == announced.draw_ref
    # even a re-run with the off-schedule flags does not redraw unless it names the draw
    second = await coordinator("901")
    off = OffSchedule("re-run", confirmed_by=second)
    await refused("slot_drawn", draw_plan("P1", clock=clock, zone=ZONE, off_schedule=off))
    # the next day, nothing announced: refused, naming the latest draw
    clock.advance(timedelta(days=1))
    exc = await refused("not_announced", draw_plan("P1", clock=clock, zone=ZONE))
    assert exc.params["draw_ref"] == announced.draw_ref
    assert await Firing.all().count() == 1 and await Draw.all().count() == 1


# --- off-schedule draws -------------------------------------------------------------------------


async def test_an_ad_hoc_draw_needs_a_reason_and_a_real_other_coordinator(db, tmp_path):
    clock = await setup(tmp_path)
    asker = await coordinator("900")
    other = await coordinator("901")
    stranger = await coordinator("902", departments=("WSJ",))
    await refused("not_announced", draw_plan("P1", clock=clock, zone=ZONE))
    for off, code in [
        (OffSchedule("原定批次遗漏", confirmed_by=99_999), "confirmer_not_coordinator"),
        (OffSchedule("原定批次遗漏", confirmed_by=stranger), "confirmer_not_coordinator"),
        (
            OffSchedule("原定批次遗漏", confirmed_by=asker, requested_by=f"coordinator:{asker}"),
            "confirmer_is_requester",
        ),
        (OffSchedule("   ", confirmed_by=other), "reason_required"),
        (OffSchedule("x" * 501, confirmed_by=other), "reason_too_long"),
        (OffSchedule("原定批次遗漏", confirmed_by=other, redraw="P1/2026-11-30"), "nothing_to_redraw"),
    ]:
        await refused(code, draw_plan("P1", clock=clock, zone=ZONE, off_schedule=off))
    assert await Firing.all().count() == 0 and await Draw.all().count() == 0  # nothing announced either

    off = OffSchedule("原定批次遗漏", confirmed_by=other, requested_by=f"coordinator:{asker}")
    result = await draw_plan("P1", "drand:7", clock=clock, zone=ZONE, off_schedule=off)
    marked = {
        "reason": "原定批次遗漏",
        "confirmed_by": f"coordinator:{other}",
        "requested_by": f"coordinator:{asker}",
        "redraw_of": None,
    }
    assert result.off_schedule == marked and result.announced_now
    row = await Draw.get(draw_ref=result.draw_ref)
    assert row.off_schedule == marked and row.redraw_of is None
    record = await AuditRecord.get(action="draw.off_schedule")
    assert record.subject == f"draw:{result.draw_ref}" and record.actor == f"coordinator:{asker}"
    alert = await Alert.get(kind="off_schedule_draw")
    assert alert.context["reason"] == "原定批次遗漏"
    assert await Outbox.filter(template="off_schedule_draw.j2").count() == 2  # SCJG's coordinators, not WSJ's

    files = await _bundle(result.draw_ref, tmp_path, clock)
    doc = json.loads(files["draw.json"])
    assert doc["off_schedule"] == marked
    lines = bundle.verify(files)
    assert all(line.ok for line in lines) and any(line.what == "off_schedule" for line in lines)
    # a bundle whose mark names the requester as the confirmer does not verify
    doc["off_schedule"]["confirmed_by"] = doc["off_schedule"]["requested_by"]
    forged = {**files, "draw.json": bundle.canonical_json(doc) + b"\n"}
    assert [line.what for line in bundle.verify(forged) if not line.ok] == ["off_schedule"]


async def _bundle(draw_ref: str, tmp_path, clock) -> dict[str, bytes]:
    out = tmp_path / draw_ref.replace("/", "_")
    await export(draw_ref, out, clock=clock)
    return {p.name: p.read_bytes() for p in out.iterdir()}


async def test_a_scheduled_draw_bundle_has_no_off_schedule_field(db, tmp_path):
    clock = await setup(tmp_path)
    result = await scheduled_draw("P1", clock=clock, zone=ZONE)
    assert result.off_schedule is None
    files = await _bundle(result.draw_ref, tmp_path, clock)
    assert "off_schedule" not in json.loads(files["draw.json"])
    assert all(line.ok for line in bundle.verify(files))


async def test_a_firing_announced_late_is_off_schedule(db, tmp_path):
    clock = await setup(tmp_path)
    late = await announce("P1", clock.now() + timedelta(hours=2), clock=clock, zone=ZONE)
    clock.advance(timedelta(hours=2))
    exc = await refused("off_schedule_required", draw(late.draw_ref, clock=clock, zone=ZONE))
    assert exc.params["lead_days"] == 1
    await refused("off_schedule_required", draw_plan("P1", clock=clock, zone=ZONE))
    other = await coordinator("901")
    result = await draw_plan("P1", clock=clock, zone=ZONE, off_schedule=OffSchedule("公示晚了", confirmed_by=other))
    assert result.draw_ref == late.draw_ref and result.off_schedule["reason"] == "公示晚了"


async def test_chat_draw_now_refuses_an_off_schedule_draw(db, tmp_path):
    clock = await setup(tmp_path)
    plan = await plans.get_plan("P1")
    scope = Scope(frozenset({"SCJG"}), actor="coordinator:1")
    exc = await refused("draw_failed", draw_now(scope, plan.id, 0, clock=clock, zone=ZONE))
    assert exc.params["error"] == "not_announced"
    assert await Firing.all().count() == 0


async def test_a_redraw_names_the_slots_draw_and_links_it(db, tmp_path):
    clock = await setup(tmp_path)
    first = await scheduled_draw("P1", clock=clock, zone=ZONE)
    other = await coordinator("901")
    clock.advance(timedelta(hours=1))
    off = OffSchedule("抽取后发现名录错误", confirmed_by=other, redraw="P1/wrong")
    exc = await refused("slot_drawn", draw_plan("P1", clock=clock, zone=ZONE, off_schedule=off))
    assert exc.params["draw_ref"] == first.draw_ref
    off = OffSchedule("抽取后发现名录错误", confirmed_by=other, redraw=first.draw_ref)
    again = await draw_plan("P1", clock=clock, zone=ZONE, off_schedule=off)
    assert again.draw_ref == "P1/2026-12-01.2" and again.off_schedule["redraw_of"] == first.draw_ref
    assert (await Draw.get(draw_ref=again.draw_ref)).redraw_of == first.draw_ref
    # the same redraw once more: the slot's draw is now the redraw
    exc = await refused("slot_drawn", draw_plan("P1", clock=clock, zone=ZONE, off_schedule=off))
    assert exc.params["draw_ref"] == again.draw_ref


async def test_two_coordinators_racing_to_redraw_one_slot_exactly_one_succeeds(db, tmp_path):
    clock = await setup(tmp_path)
    first = await scheduled_draw("P1", clock=clock, zone=ZONE)
    a, b = await coordinator("900"), await coordinator("901")
    clock.advance(timedelta(hours=1))
    offs = [
        OffSchedule("重抽甲", confirmed_by=b, requested_by=f"coordinator:{a}", redraw=first.draw_ref),
        OffSchedule("重抽乙", confirmed_by=a, requested_by=f"coordinator:{b}", redraw=first.draw_ref),
    ]
    outcomes = await asyncio.gather(
        *(draw_plan("P1", clock=clock, zone=ZONE, off_schedule=off) for off in offs), return_exceptions=True
    )
    won = [o for o in outcomes if not isinstance(o, BaseException)]
    lost = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(won) == 1 and len(lost) == 1, outcomes
    assert isinstance(lost[0], DrawError) and lost[0].code in ("slot_drawn", "slot_taken", "already_redrawn")
    assert await Draw.filter(redraw_of=first.draw_ref).count() == 1 and await Draw.all().count() == 2
    assert await Firing.filter(status=FiringStatus.ANNOUNCED).count() == 0  # the loser left nothing pending


# --- warnings before a draw goes out ------------------------------------------------------------


async def test_dry_run_and_draw_warn_about_unstaffable_inspections_with_reasons(db, tmp_path):
    await world.build(n_entities=10, n_scjg=1)  # one inspector, teams of two: nothing can be staffed
    clock = world.clock()
    await add(tmp_path, clock)
    preview = await draw_plan("P1", dry_run=True, clock=clock, zone=ZONE)
    assert isinstance(preview, Preview)
    (warning,) = [w for w in preview.warnings if w["code"] == "unstaffable"]
    assert warning["count"] == preview.drawn and warning["reasons"][0]["count"] == preview.drawn
    result = await scheduled_draw("P1", clock=clock, zone=ZONE)
    assert result.unstaffable == result.inspections > 0
    (warning,) = [w for w in result.warnings if w["code"] == "unstaffable"]
    assert warning["count"] == result.unstaffable
    # and the bundle's notes say so (today they were empty), and still verify
    notes = [json.loads(n) for n in result.notes]
    assert {"code": "unstaffable", "reason": warning["reasons"][0]["reason"], "count": result.unstaffable} in notes
    files = await _bundle(result.draw_ref, tmp_path, clock)
    assert all(line.ok for line in bundle.verify(files))


async def test_load_above_the_plans_maximum_is_warned(db, tmp_path):
    await world.build(n_entities=40)  # 24 inspections × 2 seats for 8 inspectors: 6 each
    clock = world.clock()
    path = world.plan_file(tmp_path, "P1")
    path.write_text(path.read_text(encoding="utf-8").replace("size = 2", "size = 2\nmax_per_inspector = 5"))
    await plans.add_plan(path, clock)
    preview = await draw_plan("P1", dry_run=True, clock=clock, zone=ZONE)
    assert {"code": "overloaded", "load": 6, "max": 5, "tasks": 48, "inspectors": 8} in preview.warnings
    result = await scheduled_draw("P1", clock=clock, zone=ZONE)
    assert {"code": "overloaded", "load": 6, "max": 5, "tasks": 48, "inspectors": 8} in result.warnings


@pytest.mark.parametrize("value, code", [(0, "too_small"), ("20", "not_int"), (True, "not_int"), (10**9, "too_large")])
def test_max_per_inspector_is_validated(value, code):
    raw = parse_plan(_minimal()).to_dict()
    raw["team"]["max_per_inspector"] = value
    with pytest.raises(PlanError) as info:
        parse_plan(raw)
    assert (info.value.path, info.value.code) == ("team.max_per_inspector", code)
    raw["team"]["max_per_inspector"] = 20
    assert parse_plan(raw).team.max_per_inspector == 20


def _minimal() -> dict:
    return {
        "code": "P1",
        "name": "n",
        "departments": ["SCJG"],
        "items": ["X"],
        "ratios": {"A": "0.1", "B": "0.1", "C": "0.1", "D": "1", "E": "1"},
        "team": {"size": 2},
        "schedule": {"cron": "0 9 1 * *"},
    }


# --- the monthly report -------------------------------------------------------------------------


async def test_monthly_report_counts_off_schedule_draws_per_department(db, tmp_path):
    clock = await setup(tmp_path)
    first = await scheduled_draw("P1", clock=clock, zone=ZONE)
    other = await coordinator("901")
    clock.advance(timedelta(hours=1))
    await draw_plan(
        "P1", clock=clock, zone=ZONE, off_schedule=OffSchedule("重抽", confirmed_by=other, redraw=first.draw_ref)
    )
    report = await reports.monthly_report("2026-12", None, clock.now(), data_dir=tmp_path, zone=ZONE, chart=False)
    assert report.off_schedule == [
        {"department": "SCJG", "name": "市场监督管理局", "draws": 2, "off_schedule": 1, "share": 0.5}
    ]
    text = render("messages/report.j2", "en", r=report.context())
    assert "Off-schedule draws (commitment not published ahead): 市场监督管理局 1/2 (50.0%)." in text
    assert "计划外抽取（承诺值未提前公布）：市场监督管理局 1/2（50.0%）" in render(
        "messages/report.j2", "zh-CN", r=report.context()
    )
    scoped = await reports.monthly_report("2026-12", ["WSJ"], clock.now(), data_dir=tmp_path, zone=ZONE, chart=False)
    assert scoped.off_schedule == []
