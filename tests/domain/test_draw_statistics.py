"""The draw looks random: chi-square tests over 1,000 draws with fixed seeds (deterministic).

Critical values come from the Wilson–Hilferty approximation of the chi-square quantile,
k·(1 − 2/(9k) + z·√(2/(9k)))³ with z the standard normal quantile (statistics.NormalDist);
at 44 df it is within 0.1 of the exact quantiles (checked below), and its error shrinks as the
degrees of freedom grow (999 for the entity test). Both tails are tested at α = 0.001 each: a draw that is
too even (round-robin, say) is as suspicious as one that favours some entities.
"""

from __future__ import annotations

from collections import Counter
from hashlib import sha256
from itertools import combinations
from statistics import NormalDist

from domain.draw import DrawInputs, InspectorLine, PoolLine, TeamSpec, UnitInfo, run_draw

DRAWS = 1000
ENTITIES = 1000
RATIO = "0.1"
P = 0.1
INSPECTORS = 10
FIXED = "ZZ-ALWAYS"  # one class-E entity drawn every time, whose team we watch


def chi2_quantile(q: float, k: int) -> float:
    z = NormalDist().inv_cdf(q)
    return k * (1 - 2 / (9 * k) + z * (2 / (9 * k)) ** 0.5) ** 3


def _draws():
    pool = [PoolLine(f"E{i:04d}", "A") for i in range(ENTITIES)] + [PoolLine(FIXED, "E")]
    divisions = {p.key: "370202001" for p in pool}
    inspectors = [InspectorLine(f"I{i:02d}", "U", ()) for i in range(INSPECTORS)]
    for d in range(DRAWS):
        inputs = DrawInputs(
            draw_ref=f"STAT/{d}",
            secret=sha256(b"stat-secret").digest(),
            beacon="",
            pool=pool,
            ratios={"A": RATIO, "E": "1"},
            inspectors=inspectors,
            units={"U": UnitInfo("D", "3702")},
            divisions=divisions,
            team=TeamSpec(2),
        )
        yield run_draw(inputs)


def test_entities_and_teams_are_drawn_uniformly():
    selected: Counter = Counter()
    teams: Counter = Counter()
    for outcome in _draws():
        for ins in outcome.inspections:
            if ins.entity == FIXED:
                teams[frozenset(ins.team)] += 1
            else:
                selected[ins.entity] += 1
    assert sum(selected.values()) == DRAWS * ENTITIES * P

    # Per-entity selection counts. Each draw picks a uniform 100-subset of the 1,000, so a count
    # has variance D·p·(1−p) and the counts are negatively correlated (fixed total): the sum
    # Σ (O−E)² / (D·p·(1−p)) · (N−1)/N follows chi-square with N−1 degrees of freedom.
    expected = DRAWS * P
    stat = sum((selected[f"E{i:04d}"] - expected) ** 2 for i in range(ENTITIES))
    stat *= (ENTITIES - 1) / (ENTITIES * DRAWS * P * (1 - P))
    df = ENTITIES - 1
    assert chi2_quantile(0.001, df) < stat < chi2_quantile(0.999, df), stat

    # Who inspects the watched entity: its team is the pair of cards its inspection number
    # selects in a freshly shuffled round, so each of the 45 pairs is equally likely and the
    # 1,000 draws are independent: Pearson's statistic follows chi-square with 44 df.
    pairs = [frozenset(p) for p in combinations([f"I{i:02d}" for i in range(INSPECTORS)], 2)]
    assert set(teams) <= set(pairs) and sum(teams.values()) == DRAWS
    expected = DRAWS / len(pairs)
    stat = sum((teams[p] - expected) ** 2 / expected for p in pairs)
    df = len(pairs) - 1
    assert chi2_quantile(0.001, df) < stat < chi2_quantile(0.999, df), stat


def test_the_critical_values_match_the_tables():
    # exact quantiles of chi-square(44): 20.576 (0.001) and 78.750 (0.999)
    assert abs(chi2_quantile(0.001, 44) - 20.576) < 0.1
    assert abs(chi2_quantile(0.999, 44) - 78.750) < 0.1
