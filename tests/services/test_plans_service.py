"""Plan files (TOML and YAML) loaded into the database, and the plan calendars."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from core.render import text
from domain.plans import PlanError
from models.plans import Plan
from services import plans
from tests.services import draw_world as world

YAML_PLAN = """\
code: Y1
name: 联合抽查
departments: [SCJG, WSJ]
items: [SCJG-SP-01, WSJ-YL-01]
ratios:
  A: "0.03"
  B: "0.05"
  C: "0.10"
  D: "1"
  E: 1
team:
  size: 2
schedule:
  dates: [2026-12-10, "2027-01-05 08:30"]
"""


def test_yaml_plan_loads(tmp_path):
    path = tmp_path / "joint.yaml"
    path.write_text(YAML_PLAN, encoding="utf-8")
    spec = plans.load_plan_file(path)
    assert spec.departments == ("SCJG", "WSJ") and spec.team.seats == ("SCJG", "WSJ")
    assert spec.ratio_map["E"] == "1"
    assert spec.schedule.dates == ("2026-12-10T09:00", "2027-01-05T08:30")


def good_toml(tmp_path) -> str:
    return world.plan_file(tmp_path, "P1").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    "name, edit, path, code",
    [
        ("float.yaml", lambda t: YAML_PLAN.replace('C: "0.10"', "C: 0.1"), "ratios.C", "float_ratio"),
        ("class.yaml", lambda t: YAML_PLAN.replace('C: "0.10"', 'F: "0.10"'), "ratios.F", "unknown_risk_class"),
        ("syntax.yaml", lambda t: YAML_PLAN + "  - [unclosed\n", "", "bad_syntax"),
        ("float.toml", lambda t: t.replace('C = "0.5"', "C = 0.1"), "ratios.C", "float_ratio"),
        ("size.toml", lambda t: t.replace("size = 2", "size = 1"), "team.size", "too_small"),
        ("syntax.toml", lambda t: "code = \n", "", "bad_syntax"),
        ("cron.toml", lambda t: t.replace("0 9 1 * *", "0 25 1 * *"), "schedule.cron", "bad_cron"),
        ("plan.json", lambda t: "{}", "", "unknown_format"),
    ],
)
def test_bad_plan_files_name_the_field(tmp_path, name, edit, path, code):
    file = tmp_path / name
    file.write_text(edit(good_toml(tmp_path)), encoding="utf-8")
    with pytest.raises(PlanError) as info:
        plans.load_plan_file(file)
    assert (info.value.path, info.value.code) == (path, code)


def test_syntax_error_says_where(tmp_path):
    file = tmp_path / "bad.toml"
    file.write_text('code = "P1"\nname = \n', encoding="utf-8")
    with pytest.raises(PlanError) as info:
        plans.load_plan_file(file)
    assert info.value.params["line"] == 2 and info.value.params["problem"] == "invalid_value"
    assert "line 2" in text("plan_error", "en", path="", error="bad_syntax", **info.value.params)
    assert "第 2 行" in text("plan_error", "zh-CN", path="", error="bad_syntax", **info.value.params)


def test_missing_file_is_a_plan_error(tmp_path):
    with pytest.raises(PlanError) as info:
        plans.load_plan_file(tmp_path / "nope.toml")
    assert info.value.code == "unreadable"


async def test_add_plan_stores_and_updates(db, tmp_path):
    await world.build(n_entities=4)
    clock = world.clock()
    added = await plans.add_plan(world.plan_file(tmp_path, "P1"), clock)
    assert added.created and added.plan.code == "P1"
    again = await plans.add_plan(world.plan_file(tmp_path, "P1", name="改名后的计划"), clock)
    assert not again.created
    stored = await Plan.get(code="P1")
    assert stored.name == "改名后的计划" and await Plan.all().count() == 1
    assert plans.spec_of(stored) == again.spec
    assert [p.code for p in await plans.list_plans()] == ["P1"]


@pytest.mark.parametrize(
    "kwargs, path, code",
    [
        (dict(departments=("SCJG", "NOPE"), size=2), "departments[1]", "unknown_department"),
        (dict(items=("SCJG-SP-01", "NOPE-01")), "items[1]", "unknown_item"),
        (dict(items=("WSJ-YL-01",)), "items[0]", "item_department"),
    ],
)
async def test_plan_checked_against_directory_writes_nothing(db, tmp_path, kwargs, path, code):
    await world.build(n_entities=2)
    with pytest.raises(PlanError) as info:
        await plans.add_plan(world.plan_file(tmp_path, "P9", **kwargs), world.clock())
    assert (info.value.path, info.value.code) == (path, code)
    assert await Plan.all().count() == 0


async def test_get_unknown_plan(db):
    with pytest.raises(plans.PlanNotFound):
        await plans.get_plan("NOPE")


def test_fire_times_cron_and_dates(tmp_path):
    spec = plans.load_plan_file(world.plan_file(tmp_path))  # cron "0 9 1 * *"
    times = plans.fire_times(spec, world.START, world.ZONE, limit=2)
    assert [t.isoformat() for t in times] == ["2027-01-01T09:00:00+08:00", "2027-02-01T09:00:00+08:00"]
    path = tmp_path / "d.yaml"
    path.write_text(YAML_PLAN, encoding="utf-8")
    dated = plans.load_plan_file(path)
    assert [t.isoformat() for t in plans.fire_times(dated, world.START, world.ZONE)] == [
        "2026-12-10T09:00:00+08:00",
        "2027-01-05T08:30:00+08:00",
    ]


def test_working_days_follow_the_holiday_calendar():
    # 2026-09-30 (Wed) + 1 working day: 1–7 October is the National Day holiday.
    assert plans.add_working_days(date(2026, 9, 30), 1) == date(2026, 10, 8)
    # An ordinary week: Friday + 1 working day = Monday.
    assert plans.add_working_days(date(2026, 11, 27), 1) == date(2026, 11, 30)


def test_working_days_beyond_the_calendar_fall_back_to_weekdays():
    assert plans.add_working_days(date(2031, 1, 3), 1) == date(2031, 1, 6)  # Friday → Monday


def test_deadline_and_window_in_local_time(tmp_path):
    spec = plans.load_plan_file(world.plan_file(tmp_path))
    drawn = datetime(2026, 12, 4, 2, 0, tzinfo=world.ZONE)  # a Friday
    assert plans.response_deadline(drawn, spec, world.ZONE).isoformat() == "2026-12-09T18:00:00+08:00"
    start, end = plans.inspection_window(drawn, spec, world.ZONE)
    assert start.isoformat() == "2026-12-05T09:00:00+08:00" and (end - start).days == 30


@pytest.mark.parametrize("locale", ["zh-CN", "en"])
def test_every_example_renders_in_every_locale(locale):
    from tests.services.test_plans_examples import EXAMPLES

    for path in EXAMPLES:
        spec = plans.load_plan_file(path)
        shown = text("plan_detail", locale, plan=spec.to_dict(), upcoming=["2027-01-01 09:00"])
        assert spec.code in shown and spec.name in shown and spec.departments[0] in shown
        listed = text("plan_list", locale, plans=[{**spec.to_dict(), "next": ""}])
        assert spec.code in listed
