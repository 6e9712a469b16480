"""The risk model file and the classification of one entity, against hand-computed values."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.risk import history
from domain.risk.model import RiskModelError, parse_model
from domain.risk.score import classify

ROOT = Path(__file__).resolve().parents[2]

SMALL = {
    "name": "small",
    "classes": ["A", "B", "C", "D", "E"],
    "dimensions": [{"code": "ops", "name": "经营"}, {"code": "law", "name": "司法"}],
    "indicators": [
        {"code": "penalties", "dimension": "law", "direction": "up", "weight": 3, "low": 0, "high": 10},
        {"code": "rating", "dimension": "ops", "direction": "down", "weight": 1, "low": 1, "high": 5},
        {"code": "bad_faith", "dimension": "law", "weight": 0, "low": 0, "high": 1},
        {"code": "months", "dimension": "ops", "direction": "down", "weight": 0, "low": 0, "high": 120, "missing": 0},
    ],
    "bands": {"A": 0, "B": 20, "C": 40, "D": 60, "E": 80},
    "rules": [
        {"code": "serious", "when": ["bad_faith", ">=", 1], "set": "E"},
        {"code": "new", "when": ["months", "<", 12], "set": "B"},
        {"code": "last_problem", "when": ["last_inspection_problem", ">=", 1], "at_least": "C"},
    ],
}


def model(**changes):
    return parse_model({**SMALL, **changes})


#: SMALL with the two indicators counted from published results (problems up, clean inspections down).
PROBLEMS = {"code": "found", "dimension": "law", "source": "results", "count": "problems", "window_months": 12}
CLEAN = {"code": "clean", "dimension": "law", "source": "results", "count": "clean", "window_months": 12}
WITH_HISTORY = {
    **SMALL,
    "name": "history",
    "indicators": [
        *SMALL["indicators"],
        {**PROBLEMS, "direction": "up", "weight": 2, "low": 0, "high": 2},
        {**CLEAN, "direction": "down", "weight": 1, "low": 0, "high": 2},
    ],
}


def test_hand_computed_score_band_and_reasons() -> None:
    # penalties 5 of 0..10 → 0.5 × 3 = 1.5; rating 2 of 1..5 (down) → 1 − 0.25 = 0.75 × 1 = 0.75
    # score = 100 × (1.5 + 0.75) / (3 + 1 + 0 + 0) = 56.25 → band C (40 ≤ s < 60)
    got = classify(model(), {"penalties": 5, "rating": 2, "bad_faith": 0, "months": 60}, {})
    assert got.score == pytest.approx(56.25)
    assert (got.banded, got.risk_class, got.rules) == ("C", "C", ())
    assert got.reasons == (("penalties", 37.5), ("rating", 18.75))


def test_values_are_clipped_and_missing_is_average() -> None:
    # penalties 99 clips to 1.0 → 3; rating absent → missing 0.5 → 0.5: 100 × 3.5 / 4 = 87.5 → E
    got = classify(model(), {"penalties": 99, "months": 60}, {})
    assert (got.score, got.risk_class) == (pytest.approx(87.5), "E")
    got = classify(model(), {"penalties": -4, "rating": 9, "months": 60}, {})
    assert (got.score, got.risk_class) == (0.0, "A")


def test_serious_bad_faith_sets_the_worst_class() -> None:
    got = classify(model(), {"penalties": 0, "rating": 5, "bad_faith": 1, "months": 60}, {})
    assert (got.banded, got.risk_class, got.rules) == ("A", "E", ("serious",))


def test_newly_registered_sets_its_class_even_downwards() -> None:
    got = classify(model(), {"penalties": 10, "rating": 1, "months": 3}, {})
    assert (got.banded, got.risk_class, got.rules) == ("E", "B", ("new",))


def test_first_set_rule_wins() -> None:
    got = classify(model(), {"penalties": 0, "rating": 5, "bad_faith": 1, "months": 3}, {})
    assert (got.risk_class, got.rules) == ("E", ("serious",))


def test_problem_in_last_inspection_raises_to_at_least_c_never_lowers() -> None:
    low = classify(model(), {"penalties": 0, "rating": 5, "months": 60}, {"last_inspection_problem": 1})
    assert (low.banded, low.risk_class, low.rules) == ("A", "C", ("last_problem",))
    high = classify(model(), {"penalties": 10, "rating": 1, "months": 60}, {"last_inspection_problem": 1})
    assert (high.banded, high.risk_class) == ("E", "E")
    new = classify(model(), {"penalties": 0, "rating": 5, "months": 3}, {"last_inspection_problem": 1})
    assert (new.risk_class, new.rules) == ("C", ("new", "last_problem"))
    none = classify(model(), {"penalties": 0, "rating": 5, "months": 60}, {"last_inspection_problem": 0})
    assert (none.risk_class, none.rules) == ("A", ())


def test_a_rule_on_a_missing_value_does_not_fire() -> None:
    got = classify(model(), {"penalties": 0, "rating": 5}, {})
    assert got.rules == ()


def test_logistic_link_scores_a_probability() -> None:
    m = model(link="logistic", intercept=-2.0, bands={"A": 0, "B": 5, "C": 10, "D": 20, "E": 40})
    # σ(−2 + 3 × 1.0 + 1 × 0.5) = σ(1.5) = 0.8176 → 81.76 % → E
    got = classify(m, {"penalties": 10, "months": 60}, {})
    assert got.score == pytest.approx(81.7574, abs=1e-3)
    assert got.risk_class == "E"


@pytest.mark.parametrize(
    ("change", "path", "code"),
    [
        ({"classes": ["A"]}, "classes", "risk_model_classes"),
        ({"classes": ["A", "A"]}, "classes", "risk_model_duplicate"),
        ({"classes": ["A", "B", "C", "D", "F"]}, "classes[4]", "risk_model_bad_code"),
        ({"bands": {"A": 0, "B": 20, "C": 10, "D": 60, "E": 80}}, "bands.C", "risk_model_bands_order"),
        ({"bands": {"A": 5, "B": 20, "C": 40, "D": 60, "E": 80}}, "bands.A", "risk_model_first_band"),
        ({"bands": {"A": 0, "B": 20}}, "bands", "risk_model_every_class"),
        ({"link": "probit"}, "link", "risk_model_choice"),
        ({"colour": "red"}, "colour", "risk_model_unknown_key"),
        (
            {"rules": [{"code": "x", "when": ["nope", ">", 1], "set": "E"}]},
            "rules[0].when",
            "risk_model_unknown_subject",
        ),
        ({"rules": [{"code": "x", "when": ["penalties", "~", 1], "set": "E"}]}, "rules[0].when", "risk_model_choice"),
        (
            {"rules": [{"code": "x", "when": ["penalties", ">", 1], "set": "F"}]},
            "rules[0].set",
            "risk_model_unknown_class",
        ),
        ({"rules": [{"code": "x", "when": ["penalties", ">", 1]}]}, "rules[0]", "risk_model_rule_action"),
    ],
)
def test_bad_model_files_name_the_field(change, path, code) -> None:
    with pytest.raises(RiskModelError) as caught:
        model(**change)
    assert (caught.value.path, caught.value.code) == (path, code)


def test_bad_indicators_name_the_field() -> None:
    bad = [dict(SMALL["indicators"][0], weight=-1)]
    with pytest.raises(RiskModelError) as caught:
        model(indicators=bad, rules=[])
    assert (caught.value.path, caught.value.code) == ("indicators[0].weight", "risk_model_too_small")
    bad = [dict(SMALL["indicators"][0], low=5, high=5)]
    with pytest.raises(RiskModelError) as caught:
        model(indicators=bad, rules=[])
    assert caught.value.path == "indicators[0].high"
    bad = [dict(SMALL["indicators"][0], dimension="nowhere")]
    with pytest.raises(RiskModelError) as caught:
        model(indicators=bad, rules=[])
    assert caught.value.code == "risk_model_unknown_dimension"
    bad = [dict(SMALL["indicators"][0], weight=float("nan"))]
    with pytest.raises(RiskModelError):
        model(indicators=bad, rules=[])


def test_indicators_counted_from_results_are_configuration() -> None:
    m = parse_model(WITH_HISTORY)
    assert [(i.code, i.count, i.window_months, i.window_days) for i in m.derived] == [
        ("found", "problems", 12, 365),
        ("clean", "clean", 12, 365),
    ]
    assert parse_model(m.to_dict()) == m and "source" not in m.to_dict()["indicators"][0]
    # hand: penalties 5 → 1.5, rating 2 → 0.75, two problems found → 1.0 × 2, no clean one → 1.0 × 1
    # score = 100 × (1.5 + 0.75 + 2 + 1) / (3 + 1 + 2 + 1) = 75 → D; a reason like any indicator
    got = classify(m, {"penalties": 5, "rating": 2, "months": 60, "found": 2, "clean": 0}, {})
    assert (got.score, got.risk_class) == (pytest.approx(75.0), "D")
    assert got.reasons == (("found", 28.5714), ("penalties", 21.4286), ("clean", 14.2857))
    # two clean inspections instead: 100 × 2.25 / 7 = 32.14 → B
    got = classify(m, {"penalties": 5, "rating": 2, "months": 60, "found": 0, "clean": 2}, {})
    assert (got.score, got.risk_class) == (pytest.approx(32.142857), "B")


@pytest.mark.parametrize(
    ("change", "path", "code"),
    [
        ({"source": "hearsay"}, "indicators[4].source", "risk_model_choice"),
        ({"count": "visits"}, "indicators[4].count", "risk_model_choice"),
        ({"window_months": 0}, "indicators[4].window_months", "risk_model_window"),
        ({"window_months": 121}, "indicators[4].window_months", "risk_model_window"),
        ({"window_months": 1.5}, "indicators[4].window_months", "risk_model_window"),
        ({"window_months": True}, "indicators[4].window_months", "risk_model_window"),
        ({"source": "import"}, "indicators[4].source", "risk_model_results_only"),  # count without results
    ],
)
def test_bad_indicators_counted_from_results_name_the_field(change, path, code) -> None:
    bad = [*SMALL["indicators"], {**PROBLEMS, **change}]
    with pytest.raises(RiskModelError) as caught:
        model(indicators=bad)
    assert (caught.value.path, caught.value.code) == (path, code)


def test_results_are_counted_in_the_window_before_the_day() -> None:
    m = parse_model(WITH_HISTORY)
    found, clean = m.derived
    day = 739_000
    results = [(day - 400, True), (day - 365, True), (day - 30, False), (day - 1, True), (day, True), (day + 3, False)]
    # day − 400 is outside the 365-day window, day − 365 its first day; the day itself and later never count
    assert history.count(found, results, day) == 2.0
    assert history.count(clean, results, day) == 1.0
    # the next day: the day's problem comes in, the one of day − 365 goes out
    assert history.count(found, [r for r in results if r[0] != day - 365], day + 1) == 2.0
    assert history.count(found, results, day + 1) == 2.0
    assert history.count(found, [], day) == 0.0
    assert history.last_problem(results, day) == 1.0
    assert history.last_problem(results, day - 1) == 0.0
    assert history.last_problem(results, day - 400) is None


@pytest.mark.parametrize("name", ["shandong-a-e.toml", "national-a-d.toml"])
def test_the_shipped_examples_parse_and_round_trip(name) -> None:
    data = tomllib.loads((ROOT / "examples" / "risk" / name).read_text(encoding="utf-8"))
    parsed = parse_model(data)
    assert len(parsed.indicators) == 41 and len(parsed.dimensions) == 6
    assert [(i.code, i.count, i.direction) for i in parsed.derived] == [
        ("results_problems_24m", "problems", "up"),
        ("results_clean_24m", "clean", "down"),
    ]
    assert parsed.classes[0] == "A" and parsed.worst in ("D", "E")
    assert parse_model(parsed.to_dict()) == parsed
    assert classify(parsed, {"serious_bad_faith_list": 1, "registered_months": 3}, {}).risk_class == parsed.worst


EXAMPLE = parse_model(tomllib.loads((ROOT / "examples" / "risk" / "shandong-a-e.toml").read_text(encoding="utf-8")))
VALUES = st.dictionaries(
    st.sampled_from(EXAMPLE.codes), st.floats(min_value=-1000, max_value=1000, allow_nan=False), max_size=39
)


@given(
    values=VALUES,
    code=st.sampled_from(EXAMPLE.codes),
    step=st.floats(min_value=0, max_value=1000),
    problem=st.booleans(),
)
def test_raising_a_risk_increasing_indicator_never_lowers_the_class(values, code, step, problem) -> None:
    indicator = next(i for i in EXAMPLE.indicators if i.code == code)
    facts = {"last_inspection_problem": float(problem)}
    start = values.get(code, indicator.low if indicator.direction == "up" else indicator.high)
    values = {**values, code: start}
    before = classify(EXAMPLE, values, facts)
    raised = dict(values)
    raised[code] = start + step if indicator.direction == "up" else start - step
    after = classify(EXAMPLE, raised, facts)
    if code != "registered_months":  # the newly-registered rule lowers on purpose (a stated class)
        assert EXAMPLE.rank(after.risk_class) >= EXAMPLE.rank(before.risk_class)
    assert after.score >= before.score - 1e-9


@given(
    values=VALUES,
    found=st.integers(0, 5),
    clean=st.integers(0, 5),
    last=st.sampled_from([None, 0.0, 1.0]),
    problem=st.booleans(),
)
def test_a_new_published_result_moves_the_class_only_its_own_way(values, found, clean, last, problem) -> None:
    """A problem found never lowers the class; a clean inspection never raises it (its count, and the
    last-inspection fact it replaces, both move the right way)."""
    counted = {"results_problems_24m": float(found), "results_clean_24m": float(clean)}
    before = classify(EXAMPLE, {**values, **counted}, {"last_inspection_problem": last})
    key = "results_problems_24m" if problem else "results_clean_24m"
    after = classify(EXAMPLE, {**values, **counted, key: counted[key] + 1}, {"last_inspection_problem": float(problem)})
    if problem:
        assert EXAMPLE.rank(after.risk_class) >= EXAMPLE.rank(before.risk_class)
        assert after.score >= before.score - 1e-9
    else:
        assert EXAMPLE.rank(after.risk_class) <= EXAMPLE.rank(before.risk_class)
        assert after.score <= before.score + 1e-9


def test_strictness_adjusts_for_risk_and_flags_the_lenient() -> None:
    from domain.risk.strictness import strictness

    rows = []
    # peers: class A finds 10 %, class E finds 80 %
    for n in range(100):
        rows.append((f"peer{n % 5}", "A", n % 10 == 0))
        rows.append((f"peer{n % 5}", "E", n % 5 != 0))
    rows += [("a_only", "A", n == 0) for n in range(12)]  # 1/12 in A: as expected, low raw rate
    rows += [("lenient", "E", n < 2) for n in range(12)]  # 2/12 in E: far below peers
    rows += [("few", "E", False) for n in range(9)]  # under 10 inspections: never scored
    overall, found = strictness(rows)
    by = {s.inspector: s for s in found}
    assert "few" not in by
    assert by["a_only"].rate < 0.1 and not by["a_only"].far_below
    assert by["lenient"].far_below and by["lenient"].adjusted < by["a_only"].adjusted
    assert by["lenient"].low <= by["lenient"].adjusted <= by["lenient"].high
    # hand-computed: E rate = 0.8 in peers+lenient+few: (80 + 2) / (100 + 12 + 9)
    e_rate = 82 / 121
    assert by["lenient"].expected == pytest.approx(12 * e_rate, abs=1e-3)
    assert found[0].inspector == "lenient"
    assert strictness([]) == (None, [])


def test_every_refusal_of_a_model_file_has_its_own_text_in_both_languages() -> None:
    """A bad model file is explained in words (`inspectbot risk load`), not by its code and a dict."""
    import re

    from core.render import text

    source = (ROOT / "domain" / "risk" / "model.py").read_text(encoding="utf-8")
    codes = sorted(set(re.findall(r'"(risk_model_[a-z_]+)"', source)))
    assert len(codes) >= 20
    params = {"max_len": 128, "value": "x", "allowed": ["a"], "classes": ["A"], "low": 0, "high": 1, "max": 41}
    for locale in ("zh-CN", "en"):
        for code in codes:
            said = text(
                "risk_error",
                locale,
                error="risk_file_invalid",
                p={"path": "m.toml", "field": "f", "problem": code, "params": params},
            )
            assert code not in said and "{" not in said, (locale, code, said)
