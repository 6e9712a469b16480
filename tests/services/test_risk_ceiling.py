"""The evaluation's ceiling: an oracle that knows the generated world's hidden model (a reference that
uses the truth, never the engine), run beside the engine through the same simulation."""

from __future__ import annotations

import re

import numpy as np
import pytest

from bot.cli import main
from core.render import render
from services.risk import ceiling, evaluate, matrix, world
from tests.domain.test_risk import EXAMPLE


def test_the_posterior_mean_is_the_bayesian_update_of_the_prior() -> None:
    mean = np.array([-2.0, -2.0, -2.0, -2.0, 0.5])
    problems = np.array([0.0, 1.0, 0.0, 2.0, 1.0])
    inspections = np.array([0.0, 1.0, 1.0, 3.0, 4.0])
    sd = 1.47
    got = ceiling.posterior_mean(mean, sd, problems, inspections)
    z = np.linspace(-12.0, 12.0, 48_001)  # brute force: the integral on a fine grid
    p = 1.0 / (1.0 + np.exp(-(mean[:, None] + sd * z[None, :])))
    weight = np.exp(-(z**2) / 2)[None, :] * p ** problems[:, None] * (1 - p) ** (inspections - problems)[:, None]
    assert got == pytest.approx((weight * p).sum(1) / weight.sum(1), rel=1e-6)
    assert got[1] > got[0] > got[2]  # a problem found raises the estimate, a clean inspection lowers it
    assert got[0] > 1.0 / (1.0 + np.exp(2.0))  # no outcome: the logit-normal mean, above σ(mean)


def test_fill_gives_each_class_its_count_around_the_rules() -> None:
    rng = np.random.default_rng(7)
    n = 400
    score = rng.random(n)
    placed = np.full(n, -1)
    placed[rng.choice(n, 30, replace=False)] = 1  # newly registered → B, whatever their score
    placed[np.argsort(score)[:3]] = 4  # on the list → E, even the least risky
    floor = np.where(rng.random(n) < 0.05, 2, -1)  # a problem at the last inspection → at least C
    counts = np.array([120, 150, 80, 34, 16])
    got = ceiling.fill(score, placed, floor, counts)
    assert np.bincount(got, minlength=5).tolist() == counts.tolist()
    assert (got[placed >= 0] == np.maximum(placed, floor)[placed >= 0]).all()  # a set rule's class stays
    assert (got >= floor).all()
    plain = (placed < 0) & (floor < 0)  # the rest: classes follow the score
    order = np.argsort(score[plain])
    assert (np.diff(got[plain][order]) >= 0).all()


def test_the_oracle_keeps_the_set_rules_unless_asked_not_to() -> None:
    truth = world.generate(EXAMPLE, 3000, seed=2)
    prior = ceiling.fit_prior(EXAMPLE, entities=20_000)
    assert 1.3 < prior.sd < 1.6  # what the indicators miss of the logit (ν and part of r)
    counts = np.bincount(matrix.classify(EXAMPLE, truth.values).classes, minlength=5)
    fired = dict(matrix.classify(EXAMPLE, truth.values).fired)
    newly, listed = fired["newly_registered"], fired["serious_bad_faith"]
    assert newly.sum() > 100 and listed.any()
    ruled = ceiling.Oracle(EXAMPLE, truth.values, prior).classify(counts)
    free = ceiling.Oracle(EXAMPLE, truth.values, prior, set_rules=False).classify(counts)
    assert np.bincount(ruled, minlength=5).tolist() == counts.tolist() == np.bincount(free, minlength=5).tolist()
    assert (ruled[newly] == 1).all() and (ruled[listed] == 4).all()
    assert (free[newly] >= 3).any()  # without the rule the riskiest new firms go to D/E
    propensity = truth.propensity
    assert propensity[free >= 3].mean() > propensity[ruled >= 3].mean()


def test_the_ceiling_is_above_the_engine_and_the_set_rules_cost_it() -> None:
    # 10,000 entities: the engine's expected D/E rate moves ~0.7 points with the luck of its draw, the
    # oracle's (mean of 8 runs) ~0.3; the oracle leads by 1.5–2 points in cycle 1 and more after
    cycles = evaluate.simulate(EXAMPLE, entities=10_000, cycles=3, seed=4)
    for c in cycles:
        assert c.ceiling_worst is not None and c.ceiling_free_worst is not None
        assert c.ceiling_free_worst > c.ceiling_worst > c.expected_worst
    assert cycles[2].ceiling_worst > cycles[0].ceiling_worst + 0.01  # its own outcomes teach it
    alone = evaluate.simulate(EXAMPLE, entities=10_000, cycles=3, seed=4, references=0)
    assert all(c.ceiling_worst is None for c in alone)  # and the engine's figures do not depend on it:
    assert [(c.expected_worst, c.counts, c.version) for c in alone] == [
        (c.expected_worst, c.counts, c.version) for c in cycles
    ]


def test_the_cli_prints_and_plots_the_ceiling(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("INSPECTBOT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("INSPECTBOT_LOCALE", "en")
    monkeypatch.delenv("DATABASE_URL", raising=False)
    png = tmp_path / "eval.png"
    args = ["risk", "evaluate", "--cycles", "2", "--seed", "3", "--ceiling-without-rules", "--plot", str(png)]
    assert main(args) == 0
    out = capsys.readouterr().out
    cycles = evaluate.simulate(EXAMPLE, entities=2000, cycles=2, seed=3)  # deterministic for the seed
    assert "ceiling  (no set rules)" in out and "an oracle that knows the generated world's hidden model" in out
    for c in cycles:
        row = next(line for line in out.splitlines() if re.match(rf"\s+{c.cycle}\s", line))
        assert f"{100 * c.expected_worst:.1f} %   {100 * c.ceiling_worst:.1f} %" in row
        assert f"{100 * c.ceiling_free_worst:.1f} %" in row
    assert png.read_bytes().startswith(b"\x89PNG")
    shown = render(
        "cli/risk.txt",
        "zh-CN",
        what="evaluated",
        cycles=cycles,
        entities=2000,
        model="m",
        tolerance=0.1,
        without_rules=False,
    )
    assert "上限" in shown and f"{100 * cycles[0].ceiling_worst:.1f}%" in shown and "无设定规则" not in shown


@pytest.mark.parametrize(
    ("given", "says"),
    [
        (["--entities", "0"], "--entities must be a whole number from 100 to 2000000 (got 0)"),
        (["--entities", "99999999999"], "--entities must be a whole number from 100 to 2000000"),
        (["--cycles", "0"], "--cycles must be a whole number from 1 to 60 (got 0)"),
        (["--cycles", "100000"], "--cycles must be a whole number from 1 to 60"),
        (["--seed", "-1"], "--seed must be a whole number from 0 to 4294967295 (got -1)"),
        (["--plot", "/nonexistent-dir/eval.png"], "Cannot write the chart to /nonexistent-dir/eval.png"),
    ],
)
def test_the_cli_refuses_what_it_cannot_simulate_before_simulating(given, says, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("INSPECTBOT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("INSPECTBOT_LOCALE", "en")
    monkeypatch.delenv("DATABASE_URL", raising=False)
    assert main(["risk", "evaluate", *given]) == 2
    got = capsys.readouterr()
    assert says in got.err and got.out == "" and "Traceback" not in got.err
