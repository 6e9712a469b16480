"""Indicators counted from an entity's own published inspection results. Pure, stdlib only.

The hidden part of an entity's risk that no imported indicator shows is stable over time, and each
inspection's outcome is a draw of it: problems found before say more problems are likely, clean
inspections the opposite. A ``source = "results"`` indicator (``domain.risk.model``) counts the
entity's published results that found a problem (``count = "problems"``) or none (``"clean"``)
on the ``window_months`` before a day, that day excluded: a training example is taken on its
inspection's day, so its own outcome is never among its features. This is the reference;
``services.risk.history`` computes the same for a whole directory with numpy.
"""

from __future__ import annotations

from collections.abc import Iterable

from domain.risk.model import Indicator


def count(indicator: Indicator, results: Iterable[tuple[int, bool]], day: int) -> float:
    """How many of ``results`` ((day ordinal, problem found), one entity's) ``indicator`` counts on ``day``:
    those of its kind dated in ``[day − window, day)``."""
    first = day - indicator.window_days
    want = indicator.count == "problems"
    return float(sum(1 for when, problem in results if first <= when < day and bool(problem) == want))


def last_problem(results: Iterable[tuple[int, bool]], day: int) -> float | None:
    """1.0 if the latest of ``results`` (in time order) before ``day`` found a problem, 0.0 if it did
    not, None if there is none."""
    last = None
    for when, problem in results:
        if when < day:
            last = float(bool(problem))
    return last
