"""Plan specs: every bad field is named by its path; good plans round-trip exactly."""

from __future__ import annotations

import copy
from datetime import UTC, date, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.plans import RISK_CLASSES, PlanError, parse_plan, parse_ratio

GOOD = {
    "code": "SCJG-2026-Q4",
    "name": "2026年第四季度食品经营者双随机抽查",
    "departments": ["SCJG"],
    "items": ["SCJG-SP-01", "SCJG-SP-02"],
    "targets": {"kinds": ["enterprise"], "divisions": ["3702"], "industries": ["餐饮"]},
    "ratios": {"A": "0.03", "B": "0.05", "C": "0.10", "D": "1", "E": "1"},
    "team": {"size": 2},
    "rotation": {"entity_days": 365, "inspector_days": 730},
    "response": {"working_days": 3, "time": "18:00"},
    "window": {"start_after_days": 1, "days": 30},
    "schedule": {"cron": "0 9 1 */3 *"},
}


def with_(**changes) -> dict:
    """GOOD with dotted paths replaced (a value of ... deletes the key)."""
    data = copy.deepcopy(GOOD)
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        node = data
        for p in parents:
            node = node.setdefault(p, {})
        if value is ...:
            node.pop(last, None)
        else:
            node[last] = value
    return data


def error_of(data) -> PlanError:
    with pytest.raises(PlanError) as info:
        parse_plan(data)
    return info.value


def test_good_plan_parses_with_defaults():
    spec = parse_plan(GOOD)
    assert spec.code == "SCJG-2026-Q4"
    assert spec.ratio_map == {"A": "0.03", "B": "0.05", "C": "0.10", "D": "1", "E": "1"}
    assert spec.team.size == 2 and spec.team.seats == (None, None)
    assert spec.rotation.exempt_classes == ("D", "E")
    assert spec.flight is False and not spec.joint
    assert spec.window.start_time == "09:00"


def test_missing_classes_get_ratio_zero_and_ints_are_exact():
    spec = parse_plan(with_(ratios={"D": 1, "E": "1"}))
    assert spec.ratio_map == {"A": "0", "B": "0", "C": "0", "D": "1", "E": "1"}


def test_joint_plan_gets_one_seat_per_department():
    spec = parse_plan(with_(departments=["SCJG", "WSJ"], team={"size": 3}))
    assert spec.joint
    assert spec.team.seats == ("SCJG", "WSJ", None)


def test_explicit_seats_any_department():
    spec = parse_plan(with_(departments=["SCJG", "WSJ"], team={"size": 2, "seats": ["WSJ", "SCJG"]}))
    assert spec.team.seats == ("WSJ", "SCJG")
    single = parse_plan(with_(team={"size": 2, "seats": ["SCJG", "*"]}))
    assert single.team.seats == ("SCJG", None)


def test_schedule_dates_are_normalised_and_sorted():
    spec = parse_plan(with_(schedule={"dates": ["2027-03-01 10:30", date(2026, 12, 1), datetime(2027, 1, 5, 8, 0)]}))
    assert spec.schedule.dates == ("2026-12-01T09:00", "2027-01-05T08:00", "2027-03-01T10:30")
    assert spec.schedule.cron is None


@pytest.mark.parametrize(
    "changes, path, code",
    [
        ({"ratios__F": "0.1"}, "ratios.F", "unknown_risk_class"),
        ({"ratios__C": 0.1}, "ratios.C", "float_ratio"),
        ({"ratios__B": "5%"}, "ratios.B", "bad_ratio"),
        ({"ratios__B": "1e-2"}, "ratios.B", "bad_ratio"),
        ({"ratios__B": "-0.1"}, "ratios.B", "bad_ratio"),
        ({"ratios__B": "1.5"}, "ratios.B", "ratio_range"),
        ({"ratios__B": True}, "ratios.B", "bad_ratio"),
        ({"ratios": {}}, "ratios", "empty"),
        ({"ratios": ["0.1"]}, "ratios", "not_table"),
        ({"code": ...}, "code", "missing"),
        ({"code": "P/1"}, "code", "bad_code"),
        ({"code": "export"}, "code", "reserved_code"),
        ({"code": 42}, "code", "not_string"),
        ({"name": "  "}, "name", "empty"),
        ({"departments": []}, "departments", "empty"),
        ({"departments": "SCJG"}, "departments", "not_list"),
        ({"items": ["A1", "A1"]}, "items[1]", "duplicate"),
        ({"items": ["A1", 7]}, "items[1]", "not_string"),
        ({"targets__kinds": ["enterprise", "shop"]}, "targets.kinds[1]", "unknown_kind"),
        ({"targets__divisions": ["37A2"]}, "targets.divisions[0]", "bad_division"),
        ({"targets__colour": "red"}, "targets.colour", "unknown_field"),
        ({"team__size": 1}, "team.size", "too_small"),
        ({"team__size": True}, "team.size", "not_int"),
        ({"team__size": ...}, "team.size", "missing"),
        ({"team__seats": ["SCJG"]}, "team.seats", "seats_count"),
        ({"team__seats": ["SCJG", "WSJ"]}, "team.seats[1]", "seat_department"),
        ({"rotation__entity_days": -1}, "rotation.entity_days", "too_small"),
        ({"rotation__exempt_classes": ["D", "X"]}, "rotation.exempt_classes[1]", "unknown_risk_class"),
        ({"flight": "yes"}, "flight", "not_bool"),
        ({"response__working_days": 0}, "response.working_days", "too_small"),
        ({"response__time": "25:00"}, "response.time", "bad_time"),
        ({"window__days": 0}, "window.days", "too_small"),
        ({"schedule": {"cron": "0 9 * * *", "dates": ["2026-12-01"]}}, "schedule", "schedule_one_of"),
        ({"schedule": {}}, "schedule", "schedule_one_of"),
        ({"schedule": {"cron": "0 9 *"}}, "schedule.cron", "bad_cron"),
        ({"schedule": {"dates": ["2026-13-01"]}}, "schedule.dates[0]", "bad_date"),
        ({"schedule": {"dates": ["tomorrow"]}}, "schedule.dates[0]", "bad_date"),
        ({"schedule": {"dates": [datetime(2026, 12, 1, tzinfo=UTC)]}}, "schedule.dates[0]", "date_offset"),
        ({"schedule": {"dates": ["2026-12-01", "2026-12-01T09:00"]}}, "schedule.dates[1]", "duplicate"),
        ({"schedule": {"dates": []}}, "schedule.dates", "empty"),
        ({"ratio": {"A": "0.1"}}, "ratio", "unknown_field"),
        ({"survey__shares__C": 0.5}, "survey.shares.C", "float_share"),
        ({"survey__shares__C": "half"}, "survey.shares.C", "bad_share"),
        ({"survey__shares__C": "1/0"}, "survey.shares.C", "bad_share"),
        ({"survey__shares__C": "-1/3"}, "survey.shares.C", "bad_share"),
        ({"survey__shares__C": "4/3"}, "survey.shares.C", "share_range"),
        ({"survey__shares__C": "1.5"}, "survey.shares.C", "share_range"),
        ({"survey__shares__C": False}, "survey.shares.C", "bad_share"),
        ({"survey__shares__F": "1"}, "survey.shares.F", "unknown_risk_class"),
        ({"survey__shares": {}}, "survey.shares", "empty"),
        ({"survey__shares": ["1/3"]}, "survey.shares", "not_table"),
        ({"survey__share": {"D": "1"}}, "survey.share", "unknown_field"),
        ({"survey": "all"}, "survey", "not_table"),
    ],
)
def test_each_bad_field_is_named(changes, path, code):
    err = error_of(with_(**changes))
    assert (err.path, err.code) == (path, code)
    assert path in str(err)


def test_joint_plan_team_too_small_and_missing_seat():
    err = error_of(with_(departments=["SCJG", "WSJ", "HBJ"], team={"size": 2}))
    assert (err.path, err.code, err.params["departments"]) == ("team.size", "joint_too_small", 3)
    err = error_of(with_(departments=["SCJG", "WSJ"], team={"size": 2, "seats": ["SCJG", "*"]}))
    assert (err.path, err.code, err.params["value"]) == ("team.seats", "joint_needs_seat", "WSJ")


def test_float_ratio_error_carries_the_value_to_quote():
    err = error_of(with_(ratios__C=0.1))
    assert err.params["value"] == "0.1"


def test_survey_shares_name_classes_then_the_others_and_default_to_none():
    assert parse_plan(GOOD).survey_shares == ()  # no [survey]: the default applies (services.surveys)
    spec = parse_plan(with_(survey={"shares": {"*": " 1/3 ", "E": 1, "C": "0.5"}}))
    assert spec.survey_shares == (("C", "0.5"), ("E", "1"), ("*", "1/3"))
    assert spec.to_dict()["survey"] == {"shares": {"C": "0.5", "E": "1", "*": "1/3"}}
    # without "*" the classes not named are not surveyed, as a class left out of ratios is not drawn
    assert parse_plan(with_(survey={"shares": {"D": "1"}})).survey_shares == (("D", "1"), ("*", "0"))
    assert "survey" not in parse_plan(GOOD).to_dict()  # plans without it keep their stored form


def test_root_must_be_a_table():
    assert error_of(None).code == "not_table"
    assert error_of(["x"]).path == ""


@given(st.integers(min_value=0, max_value=10**6), st.integers(min_value=0, max_value=6))
def test_ratio_strings_are_kept_exactly(n, places):
    text = f"0.{n:0{places + 1}d}" if places else "1"
    assert parse_ratio(text, "ratios.A") == text


plan_dicts = st.fixed_dictionaries(
    {
        "code": st.from_regex(r"[A-Z][A-Z0-9_-]{0,10}", fullmatch=True).filter(lambda c: c.lower() != "export"),
        "name": st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=20).filter(str.strip),
        "departments": st.lists(st.sampled_from(["SCJG", "WSJ", "HBJ"]), min_size=1, max_size=3, unique=True),
        "items": st.lists(st.from_regex(r"I[0-9]{1,3}", fullmatch=True), min_size=1, max_size=4, unique=True),
        "ratios": st.dictionaries(
            st.sampled_from(RISK_CLASSES), st.sampled_from(["0", "0.03", "0.05", "0.10", "0.125", "1"]), min_size=1
        ),
        "flight": st.booleans(),
        "schedule": st.one_of(
            st.just({"cron": "0 9 1 * *"}),
            st.lists(
                st.dates(min_value=date(2026, 1, 1), max_value=date(2030, 12, 31)), min_size=1, max_size=3, unique=True
            ).map(lambda ds: {"dates": ds}),
        ),
        "rotation": st.fixed_dictionaries(
            {
                "entity_days": st.integers(0, 1000),
                "inspector_days": st.integers(0, 1000),
                "exempt_classes": st.lists(st.sampled_from(RISK_CLASSES), unique=True),
            }
        ),
    },
    optional={
        "survey": st.fixed_dictionaries(
            {
                "shares": st.dictionaries(
                    st.sampled_from([*RISK_CLASSES, "*"]),
                    st.sampled_from(["0", "1", "1/3", "2/3", "0.25", "0.125"]),
                    min_size=1,
                )
            }
        )
    },
)


@given(plan_dicts, st.integers(min_value=0, max_value=3))
def test_normalised_plan_round_trips(data, extra_seats):
    data = {**data, "team": {"size": max(2, len(data["departments"])) + extra_seats}}
    spec = parse_plan(data)
    assert parse_plan(spec.to_dict()) == spec
    assert [c for c, _ in spec.ratios] == list(RISK_CLASSES)
    assert len(spec.team.seats) == spec.team.size
    for dept in spec.departments if spec.joint else ():
        assert dept in spec.team.seats
