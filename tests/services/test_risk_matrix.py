"""The vectorised classification agrees with the reference (domain.risk.score), entity by entity."""

from __future__ import annotations

import math

import numpy as np
import pytest

from domain.risk import history as reference
from domain.risk.model import parse_model
from domain.risk.score import classify
from services.risk import history, matrix
from tests.domain.test_risk import EXAMPLE, SMALL, WITH_HISTORY


@pytest.mark.parametrize("link", ["linear", "logistic"])
@pytest.mark.parametrize("which", ["small", "example"])
def test_matrix_matches_the_reference(which, link) -> None:
    model = parse_model(SMALL) if which == "small" else EXAMPLE
    if link == "logistic":
        model = parse_model({**model.to_dict(), "link": "logistic", "intercept": -3.0})
    rng = np.random.default_rng(7)
    n, k = 400, len(model.codes)
    lows = np.array([i.low for i in model.indicators])
    highs = np.array([i.high for i in model.indicators])
    values = rng.uniform(lows - 0.2 * (highs - lows), highs + 0.2 * (highs - lows), size=(n, k))
    values = np.round(values)  # whole numbers: the rules' thresholds are hit exactly sometimes
    values[rng.random((n, k)) < 0.15] = np.nan
    problem = rng.choice([0.0, 1.0, np.nan], size=n)
    got = matrix.classify(model, values, {"last_inspection_problem": problem})
    names = got.class_names(model)
    for r in range(n):
        row = {c: float(values[r, j]) for j, c in enumerate(model.codes) if not math.isnan(values[r, j])}
        facts = {} if math.isnan(problem[r]) else {"last_inspection_problem": float(problem[r])}
        want = classify(model, row, facts)
        assert names[r] == want.risk_class
        assert model.classes[got.banded[r]] == want.banded
        assert got.scores[r] == pytest.approx(want.score, abs=1e-9)
        fired = tuple(code for code, mask in got.fired if mask[r])
        assert fired == want.rules
        reasons = tuple((model.codes[j], float(p)) for j, p in zip(got.top[r], got.points[r]) if j >= 0)
        assert reasons == want.reasons


def test_counts_from_results_match_the_reference() -> None:
    """services.risk.history (a whole directory at once) agrees with domain.risk.history (one entity)."""
    model = parse_model(WITH_HISTORY)
    rng = np.random.default_rng(11)
    n, day = 500, 739_000
    entity = rng.integers(1, 60, n)
    days = day - rng.integers(-5, 420, n)  # some after the day, some before the window
    problem = rng.random(n) < 0.4
    results = history.Results.of(entity, days, problem)
    ids = np.arange(0, 65)  # 0 and 60–64: never inspected
    for when in (day, day - 200):
        values = history.fill(model, np.full((len(ids), len(model.codes)), np.nan), results, ids, when)
        last = history.last_problem(
            history.Results.of(entity[days < when], days[days < when], problem[days < when]), ids
        )
        for r, e in enumerate(ids):
            mine = [(int(d), bool(p)) for x, d, p in zip(results.entity_ids, results.days, results.problems) if x == e]
            for j, ind in enumerate(model.indicators):
                if ind.derived:
                    assert values[r, j] == reference.count(ind, mine, when)
                else:
                    assert np.isnan(values[r, j])
            want = reference.last_problem(mine, when)
            assert (np.isnan(last[r]) and want is None) or last[r] == want
    # per example: each row its own day (a training example's), its own result never counted
    examples = history.fill(model, np.zeros((n, len(model.codes))), results, entity, days)
    found = model.codes.index("found")
    for r in range(n):
        mine = [(int(d), bool(p)) for x, d, p in zip(entity, days, problem) if x == entity[r]]
        assert examples[r, found] == reference.count(model.indicators[found], mine, int(days[r]))


def test_overrides_replace_the_models_class_of_their_entities_only() -> None:
    ids = np.array([3, 7, 9, 12], dtype=np.int64)
    classes = np.array(["E", "C", "B", "A"])
    final, mask = matrix.apply_overrides(ids, classes, {7: "A", 12: "D", 99: "E"})  # 99: not active
    assert final.tolist() == ["E", "A", "B", "D"] and mask.tolist() == [False, True, False, True]
    assert classes.tolist() == ["E", "C", "B", "A"]  # the model's classes are kept as they were
    same, none = matrix.apply_overrides(ids, classes, {})
    assert same.tolist() == classes.tolist() and not none.any()
