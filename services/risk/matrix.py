"""The vectorised classification: a whole directory's indicator matrix in, classes, scores and reasons out.

The same arithmetic as :mod:`domain.risk.score` (the reference, one entity at a time, stdlib only),
on numpy arrays: tests check both give the same class, score, rules and reasons. It lives here, not
in ``domain/`` (standard library only) nor ``core/`` (no use case there): classifying is this
feature's use case and numpy is one of its tools.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from domain.risk.model import RiskModel
from domain.risk.score import TOP_REASONS


@dataclass
class Classified:
    classes: np.ndarray  # int rank into model.classes, per entity
    banded: np.ndarray  # int rank of the score alone
    scores: np.ndarray  # float 0..100
    fired: list[tuple[str, np.ndarray]]  # (rule code, bool mask) in the order domain.risk.score lists them
    top: np.ndarray  # (n, TOP_REASONS) indicator index, -1 = none
    points: np.ndarray  # (n, TOP_REASONS) its contribution

    def class_names(self, model: RiskModel) -> np.ndarray:
        return np.asarray(model.classes)[self.classes]


def parameters(model: RiskModel) -> tuple[np.ndarray, ...]:
    low = np.array([i.low for i in model.indicators])
    span = np.array([i.high - i.low for i in model.indicators])
    down = np.array([i.direction == "down" for i in model.indicators])
    missing = np.array([i.missing for i in model.indicators])
    weights = np.array([i.weight for i in model.indicators])
    return low, span, down, missing, weights


def normalise(model: RiskModel, values: np.ndarray) -> np.ndarray:
    """Raw values (n × k, NaN = no value) on 0..1 with 1 the riskiest end, NaN → the indicator's ``missing``."""
    low, span, down, missing, _ = parameters(model)
    out = np.clip((values - low) / span, 0.0, 1.0)
    out = np.where(down, 1.0 - out, out)
    return np.where(np.isnan(values), missing, out)


def scores(model: RiskModel, normalised: np.ndarray) -> np.ndarray:
    weights = parameters(model)[4]
    total = normalised @ weights
    if model.link == "logistic":
        return 100.0 / (1.0 + np.exp(-(model.intercept + total)))
    return 100.0 * total / weights.sum()


def band(model: RiskModel, score: np.ndarray) -> np.ndarray:
    return np.searchsorted(np.asarray(model.bands), score, side="right") - 1


def holds(op: str, values: np.ndarray, threshold: float) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        found = {
            "<": values < threshold,
            "<=": values <= threshold,
            ">": values > threshold,
            ">=": values >= threshold,
            "==": values == threshold,
            "!=": values != threshold,
        }[op]
    return found & ~np.isnan(values)


@dataclass(frozen=True)
class Ruled:
    """What the model's rules do to each row, before its band is known: ``placed`` the class the
    first ``set`` rule that holds fixes (−1: none), ``floor`` the highest class an ``at_least`` rule
    raises it to (−1: none); ``fired`` (rule code, mask), set rules first, as domain.risk.score
    lists them. The class is max(placed if placed ≥ 0 else the band, floor)."""

    placed: np.ndarray
    floor: np.ndarray
    fired: list[tuple[str, np.ndarray]]


def apply_rules(
    model: RiskModel, values: np.ndarray, facts: Mapping[str, np.ndarray] | None = None, *, set_rules: bool = True
) -> Ruled:
    """The rules of ``model`` on ``values`` (n × k raw, ``model.codes`` order) and the ``facts`` they
    read (``last_inspection_problem``); ``set_rules=False`` leaves the ``set`` rules out. The one
    place the rules are read: classification, the bands of a learned version and the ceiling."""
    facts = facts or {}
    n = values.shape[0]
    column = {code: j for j, code in enumerate(model.codes)}

    def subject(name: str) -> np.ndarray:
        if name in column:
            return values[:, column[name]]
        return np.asarray(facts.get(name, np.full(n, np.nan)), dtype=float)

    fired: list[tuple[str, np.ndarray]] = []
    placed = np.full(n, -1)
    for rule in model.rules:
        if rule.set_class is not None and set_rules:
            hit = holds(rule.op, subject(rule.subject), rule.value) & (placed < 0)
            placed[hit] = model.rank(rule.set_class)
            fired.append((rule.code, hit))
    floor = np.full(n, -1)
    for rule in model.rules:
        if rule.at_least is not None:
            hit = holds(rule.op, subject(rule.subject), rule.value)
            floor = np.where(hit, np.maximum(floor, model.rank(rule.at_least)), floor)
            fired.append((rule.code, hit))
    return Ruled(placed, floor, fired)


def classify(model: RiskModel, values: np.ndarray, facts: Mapping[str, np.ndarray] | None = None) -> Classified:
    """Classify every row of ``values`` (n × k in ``model.codes`` order, NaN = no value)."""
    normalised = normalise(model, values)
    score = scores(model, normalised)
    banded = band(model, score)
    ruled = apply_rules(model, values, facts)
    classes = np.maximum(np.where(ruled.placed >= 0, ruled.placed, banded), ruled.floor)
    top, points = reasons(model, normalised)
    return Classified(classes, banded, score, ruled.fired, top, points)


def reasons(model: RiskModel, normalised: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The TOP_REASONS largest contributions per row, as :func:`domain.risk.score.reasons` orders them."""
    weights = parameters(model)[4]
    scale = 100.0 / weights.sum() if model.link == "linear" else 1.0
    parts = np.round(normalised * weights * scale, 4)
    k = min(TOP_REASONS, parts.shape[1])
    # ties by indicator code, as the reference: sort columns by code once, then a stable sort of −points
    by_code = np.argsort(np.asarray(model.codes), kind="stable")
    order = np.argsort(-parts[:, by_code], axis=1, kind="stable")[:, :k]
    top = by_code[order]
    points = np.take_along_axis(parts, top, axis=1)
    top = np.where(points > 0, top, -1)
    return top, points


def apply_overrides(
    ids: np.ndarray, classes: np.ndarray, overrides: Mapping[int, str]
) -> tuple[np.ndarray, np.ndarray]:
    """The final classes: ``classes`` (the model's, one per id of the sorted ``ids``) with each
    entity's override in force put in their place, after the rules; and the mask of the rows an
    override fixed. Overrides of entities not in ``ids`` (inactive) are ignored."""
    final = classes.copy()
    mask = np.zeros(len(ids), dtype=bool)
    if not overrides or not len(ids):
        return final, mask
    wanted = np.fromiter(overrides.keys(), dtype=np.int64, count=len(overrides))
    values = np.asarray(list(overrides.values()), dtype=classes.dtype if classes.dtype.kind == "U" else object)
    row = np.searchsorted(ids, wanted)
    found = (row < len(ids)) & (ids[np.minimum(row, len(ids) - 1)] == wanted)
    final[row[found]] = values[found]
    mask[row[found]] = True
    return final, mask
