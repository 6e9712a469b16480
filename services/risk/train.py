"""``risk train``: learn a new version from the submitted inspection results and propose it.

The labelled examples are what review and follow-up have settled (docs/results.md, docs/risk.md):
each *published* result — the result of record a reviewer approved (``publication.result_id``) — is
one, labelled 1 when a problem was found (any item 不合格, or the inspection flagged for case
referral as a serious finding), dated the day it was submitted; and each decided re-inspection (复查)
is one — its re-inspection result, reviewed and approved, decided the rectification order — labelled
1 when the firm had not rectified, 0 when it had, dated the day the re-inspection result was
submitted. A re-inspection result is never a published result (it is not the first kind). A result
still under review (or returned, or withdrawn, or superseded) is not a label. Each example carries the
entity's indicator values as they were on its date (the newest observation on or before it), and the
indicators counted from results (``source = "results"``) as they stood before its day: its own
outcome, and any other published on that day, are never among its features. The newest quarter of the examples is held out; a candidate
learned on the rest and the version in force are both measured on it (AUC, calibration, and the
problem-discovery rate of the classes each gives at the plan's ratios). The version proposed is
then learned on every example, with bands that keep the class mix the version in force was approved
with (unless the file's ``[shares]`` are asked for), and the mix each version gives is stored in its
comparison; a coordinator approves or rejects it (``services.risk.versions.decide``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

import numpy as np

from core import db
from domain.risk import drift
from domain.risk.model import RiskModel
from services.plans import PlanNotFound, get_plan, spec_of
from services.risk import history, learn, matrix
from services.risk.classify import derived, entity_matrix
from services.risk.versions import RiskError, approved_run, in_force, propose

EXAMPLES_SQL = (
    history.PUBLISHED
    + """UNION ALL
SELECT i.entity_id, r.submitted_at, CASE WHEN rc.status = 'unrectified' THEN 1 ELSE 0 END AS problem
FROM rectification rc JOIN inspection i ON i.id = rc.inspection_id
JOIN result r ON r.reinspection_id = rc.id AND r.status IN ('submitted', 'confirmed')
JOIN review rv ON rv.result_id = r.id AND rv.status = 'approved'
WHERE rc.status IN ('rectified', 'unrectified') AND r.submitted_at IS NOT NULL
ORDER BY 2, 1
"""
)
HOLDOUT = 0.25
SHARES_FROM = ("approved", "file")  # a proposal's bands keep the approved mix, or give the file's [shares]
PAGE = 20_000  # entities per read of their indicator values


@dataclass(frozen=True)
class Examples:
    entity_ids: np.ndarray
    days: np.ndarray  # date ordinal of each result
    labels: np.ndarray  # 1 = a problem found


async def examples() -> Examples:
    _, rows = await db.conn().execute_query(EXAMPLES_SQL)
    ids = np.array([r[0] for r in rows], dtype=np.int64)
    days = np.array([db.moment(r[1]).date().toordinal() for r in rows], dtype=np.int64)  # type: ignore[union-attr]
    labels = np.array([int(r[2] > 0) for r in rows], dtype=np.int64)
    return Examples(ids, days, labels)


async def values_as_of(model: RiskModel, ids: np.ndarray, days: np.ndarray) -> np.ndarray:
    """Each example's indicator values as observed on or before its day (NaN = none yet)."""
    out = np.full((len(ids), len(model.codes)), np.nan)
    column = {code: j for j, code in enumerate(model.codes)}
    wanted = np.unique(ids)
    query = db.sql(
        'SELECT "entity_id", "indicator", "value", "observed_on" FROM "indicator_value" '
        'WHERE "entity_id" >= ? AND "entity_id" <= ? ORDER BY "entity_id", "indicator", "observed_on"'
    )
    for first in range(0, len(wanted), PAGE):  # paged by entity: a city's observations never all in memory
        page = wanted[first : first + PAGE]
        _, rows = await db.conn().execute_query(query, [int(page[0]), int(page[-1])])
        mine = (ids >= page[0]) & (ids <= page[-1])
        by_indicator: dict[str, list] = {}
        for r in rows:
            if r[1] in column:
                by_indicator.setdefault(r[1], []).append(r)
        query_keys = ids[mine] * 1_000_000 + days[mine]
        for code, found in by_indicator.items():
            keys = np.array([r[0] * 1_000_000 + _ordinal(r[3]) for r in found], dtype=np.int64)
            vals = np.array([r[2] for r in found], dtype=float)
            at = np.searchsorted(keys, query_keys, side="right") - 1
            ok = (at >= 0) & (keys[np.maximum(at, 0)] // 1_000_000 == ids[mine])
            block = out[mine]
            block[ok, column[code]] = vals[at[ok]]
            out[mine] = block
    return out


def _ordinal(value) -> int:
    return (date.fromisoformat(value) if isinstance(value, str) else value).toordinal()


@dataclass(frozen=True)
class Trained:
    version: str
    examples: int
    held_out: int
    current: dict
    candidate: dict
    class_mix: dict  # the mix each version gives (approved, now, proposed): ``domain.risk.drift.proposed_mix``


async def plan_ratios(code: str) -> dict[str, float]:
    """The sampling ratios of plan ``code``, to measure discovery rates at."""
    try:
        plan = await get_plan(code)
    except PlanNotFound:
        raise RiskError("risk_plan_unknown", plan=code) from None
    return {cls: float(Decimal(ratio)) for cls, ratio in spec_of(plan).ratios}


async def train(
    now: datetime,
    *,
    name: str,
    actor: str,
    ratios: dict[str, float] | None = None,
    holdout: float = HOLDOUT,
    shares_from: str = "approved",
    extra_metrics: dict | None = None,
) -> Trained:
    """Learn, measure against the version in force on held-out results, and propose ``name``.

    One rule for every proposal, by hand or by the monthly sweep: its bands keep the class mix of the
    version in force — the mix it was approved with (its first classification), or, before it has
    classified, the mix it gives the directory now — so the plan's ratios ask for the budget that was
    approved. Only ``shares_from="file"`` (the coordinator asks for it) cuts them to the version's
    ``[shares]`` instead (refused when it has none). The comparison stored with the proposal lists the
    mix each version gives and the inspections the ratios ask for under each (``metrics["class_mix"]``),
    so an approver sees any budget change. ``extra_metrics`` are stored with it (why it was proposed)."""
    if shares_from not in SHARES_FROM:
        raise RiskError("risk_shares_unknown", given=shares_from, allowed=list(SHARES_FROM))
    found = await in_force()
    if found is None:
        raise RiskError("risk_no_model")
    current_version, current = found
    if shares_from == "file" and not current.shares:
        raise RiskError("risk_shares_none", version=current_version)
    ex = await examples()
    n = len(ex.labels)
    if n < learn.MIN_EXAMPLES or len(set(ex.labels.tolist())) < 2:
        raise RiskError("risk_no_results", found=n, needed=learn.MIN_EXAMPLES)
    values = await values_as_of(current, ex.entity_ids, ex.days)
    if current.derived:  # counted from the results published before each example's day: never its own
        history.fill(current, values, await history.published(), ex.entity_ids, ex.days)
    cut = int(round(n * (1.0 - holdout)))
    train_y, test_y = ex.labels[:cut], ex.labels[cut:]
    ids, directory, _ = await entity_matrix(current)
    facts = await derived(current, ids, directory, now)  # the bands are set on the directory as it is classified
    counts_now = _counts(current, matrix.classify(current, directory, facts).classes)
    run = await approved_run(current_version)
    approved = {c: int(run.counts.get(c, 0)) for c in current.classes} if run else {}
    if shares_from == "file":
        shares = current.shares
    else:
        kept = approved if sum(approved.values()) else counts_now
        shares = tuple(kept[c] / max(sum(kept.values()), 1) for c in current.classes)
    ratios = ratios or learn.DEFAULT_RATIOS
    if len(set(train_y.tolist())) == 2 and len(test_y):
        candidate = learn.with_bands(learn.fit(current, values[:cut], train_y, name=name), directory, shares, facts)
        measured_candidate = learn.measure(candidate, values[cut:], test_y, ratios=ratios).as_dict()
    else:
        measured_candidate = {}
    measured_current = learn.measure(current, values[cut:], test_y, ratios=ratios).as_dict() if len(test_y) else {}
    final = learn.with_bands(learn.fit(current, values, ex.labels, name=name), directory, shares, facts)
    class_mix = {
        "shares_from": shares_from if shares_from == "file" or sum(approved.values()) else "now",
        **drift.proposed_mix(
            current.classes,
            approved,
            counts_now,
            _counts(final, matrix.classify(final, directory, facts).classes),
            ratios,
            current.mix_tolerance,
        ),
    }
    metrics = {
        "examples": n,
        "held_out": int(n - cut),
        "ratios": ratios,
        "current": {"version": current_version, **measured_current},
        "candidate": measured_candidate,
        "class_mix": class_mix,
        **(extra_metrics or {}),
    }
    await propose(final, actor=actor, now=now, metrics=metrics, based_on=current_version)
    return Trained(name, n, int(n - cut), metrics["current"], measured_candidate, class_mix)


def _counts(model: RiskModel, classes: np.ndarray) -> dict[str, int]:
    found = np.bincount(classes, minlength=len(model.classes))
    return {c: int(found[j]) for j, c in enumerate(model.classes)}
