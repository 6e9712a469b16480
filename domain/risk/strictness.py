"""Inspector strictness: each inspector's problem-found rate adjusted for the risk of what they inspected.

Indirect standardisation, as Chicago's food-inspection model reads its sanitarians: an inspection
of an entity in risk class c is *expected* to find a problem at the rate all inspectors (the
peers) found one in class c. For an inspector with observed problems O over n inspections and
expected E = Σ rate(cᵢ), the risk-adjusted rate is overall × O / E: an inspector sent mostly to
D/E entities is not "strict" for finding more, nor one sent to A/B entities lenient for finding
less. Under the null (the inspector finds problems like their peers), O has variance
V = Σ rate(cᵢ)(1 − rate(cᵢ)); the interval is overall × (O ± z·√V) / E, and an inspector is
flagged *far below peers* when O is more than z standard deviations below E. Nobody with fewer
than :data:`MIN_INSPECTIONS` inspections is scored at all. Pure, stdlib only.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

MIN_INSPECTIONS = 10
Z = 1.96


@dataclass(frozen=True)
class Strictness:
    inspector: str
    n: int
    observed: int  # inspections with a problem found
    expected: float
    rate: float  # observed / n
    adjusted: float  # overall × observed / expected
    low: float
    high: float
    z: float
    far_below: bool


def strictness(
    rows: Iterable[tuple[str, str, bool]], *, min_n: int = MIN_INSPECTIONS, z: float = Z
) -> tuple[float | None, list[Strictness]]:
    """``rows`` are (inspector, risk class, problem found); returns the peers' overall rate and one
    :class:`Strictness` per inspector with at least ``min_n`` inspections, lowest adjusted rate first."""
    rows = list(rows)
    if not rows:
        return None, []
    by_class: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    by_inspector: dict[str, list[tuple[str, bool]]] = defaultdict(list)
    for inspector, risk, problem in rows:
        by_class[risk][0] += 1
        by_class[risk][1] += int(problem)
        by_inspector[inspector].append((risk, problem))
    overall = sum(p for _, p in by_class.values()) / len(rows)
    rate = {c: p / n for c, (n, p) in by_class.items()}
    out = []
    for inspector, done in by_inspector.items():
        if len(done) < min_n:
            continue
        observed = sum(int(p) for _, p in done)
        expected = sum(rate[c] for c, _ in done)
        variance = sum(rate[c] * (1.0 - rate[c]) for c, _ in done)
        if expected <= 0:
            continue
        spread = z * math.sqrt(variance)
        score = (observed - expected) / math.sqrt(variance) if variance > 0 else 0.0
        out.append(
            Strictness(
                inspector=inspector,
                n=len(done),
                observed=observed,
                expected=round(expected, 4),
                rate=round(observed / len(done), 4),
                adjusted=round(overall * observed / expected, 4),
                low=round(max(0.0, overall * (observed - spread) / expected), 4),
                high=round(min(1.0, overall * (observed + spread) / expected), 4),
                z=round(score, 3),
                far_below=score < -z,
            )
        )
    out.sort(key=lambda s: (s.adjusted, s.inspector))
    return overall, out
