"""The published inspection results the engine learns from at the entity level, and what it counts.

A published result is the result of record a reviewer approved (``publication.result_id``, with
``published_at`` set); one still under review, returned or withdrawn counts for nothing here. A
result found a problem when any item is 不合格 or the inspection was flagged for case referral — the
same label training uses (``services.risk.train``). From these the engine derives the fact
``last_inspection_problem`` (the latest published result's outcome, for the ``at_least`` rule) and
the values of the model's ``source = "results"`` indicators (``domain.risk.history`` is the
one-entity reference; this computes them for many entities at once).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core import db
from domain.risk.model import RiskModel

#: Every published result: the entity, when it was submitted, 1 if it found a problem (training's label too).
PUBLISHED = """
SELECT i.entity_id, r.submitted_at,
       CASE WHEN p.referred_at IS NOT NULL
              OR (SELECT COUNT(*) FROM finding f WHERE f.result_id = r.id AND f.verdict = 'fail') > 0
            THEN 1 ELSE 0 END AS problem
FROM publication p JOIN result r ON r.id = p.result_id JOIN inspection i ON i.id = p.inspection_id
WHERE p.published_at IS NOT NULL AND r.submitted_at IS NOT NULL
"""
PUBLISHED_SQL = PUBLISHED + "ORDER BY i.entity_id, r.submitted_at, r.id"
_DAYS = 1_000_000  # key = entity id × _DAYS + day ordinal (ordinals stay below 800,000)


@dataclass(frozen=True)
class Results:
    """Published results sorted by entity, then time: the entity, the day (ordinal), 1 = a problem."""

    entity_ids: np.ndarray
    days: np.ndarray
    problems: np.ndarray

    @classmethod
    def of(cls, entity_ids, days, problems) -> Results:
        e = np.asarray(entity_ids, dtype=np.int64)
        d = np.asarray(days, dtype=np.int64)
        order = np.lexsort((d, e))  # stable: results of one day keep their order
        return cls(e[order], d[order], np.asarray(problems, dtype=np.int64)[order])


async def published(connection=None) -> Results:
    """Every published result, by entity and time."""
    _, rows = await (connection or db.conn()).execute_query(PUBLISHED_SQL)
    return Results(
        np.array([r[0] for r in rows], dtype=np.int64),
        np.array([db.moment(r[1]).date().toordinal() for r in rows], dtype=np.int64),  # type: ignore[union-attr]
        np.array([int(r[2] > 0) for r in rows], dtype=np.int64),
    )


def counts(results: Results, ids: np.ndarray, days: np.ndarray, window_days: int, problems: bool) -> np.ndarray:
    """For each (ids[n], days[n]): that entity's results with a problem (``problems``) or without, dated
    in ``[day − window_days, day)``."""
    key = results.entity_ids * _DAYS + results.days
    kind = results.problems if problems else 1 - results.problems
    cumulative = np.concatenate([[0], np.cumsum(kind)])
    ids = np.asarray(ids, dtype=np.int64)
    days = np.asarray(days, dtype=np.int64)
    upto = np.searchsorted(key, ids * _DAYS + days, side="left")
    since = np.searchsorted(key, ids * _DAYS + days - window_days, side="left")
    return (cumulative[upto] - cumulative[since]).astype(float)


def fill(model: RiskModel, values: np.ndarray, results: Results, ids: np.ndarray, days) -> np.ndarray:
    """``values`` (n × k in ``model.codes`` order) with the ``source = "results"`` columns counted for
    each row's entity on its day (a scalar day for a classification, one per row for examples)."""
    days = np.broadcast_to(np.asarray(days, dtype=np.int64), (len(ids),))
    for j, ind in enumerate(model.indicators):
        if ind.derived:
            values[:, j] = counts(results, ids, days, ind.window_days, ind.count == "problems")
    return values


def last_problem(results: Results, ids: np.ndarray) -> np.ndarray:
    """1.0 where the entity's latest published result found a problem, 0.0 where not, NaN if none."""
    out = np.full(len(ids), np.nan)
    if not len(results.entity_ids):
        return out
    last = np.ones(len(results.entity_ids), dtype=bool)
    last[:-1] = results.entity_ids[:-1] != results.entity_ids[1:]
    entity, problem = results.entity_ids[last], results.problems[last]
    ids = np.asarray(ids, dtype=np.int64)
    at = np.searchsorted(entity, ids)
    hit = (at < len(entity)) & (entity[np.minimum(at, len(entity) - 1)] == ids)
    out[hit] = problem[at[hit]].astype(float)
    return out
