"""Classify one entity: its score, its class by band, the rules that override it, and the reasons.

This is the reference: the whole directory is classified by a vectorised equivalent
(``services.risk.matrix``), and tests check the two agree. Pure, stdlib only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from domain.risk.model import RiskModel

TOP_REASONS = 3


@dataclass(frozen=True)
class Classification:
    risk_class: str
    score: float  # 0..100
    banded: str  # the class the score alone gives
    reasons: tuple[tuple[str, float], ...]  # (indicator, share of the score in points), largest first
    rules: tuple[str, ...]  # the codes of the rules that changed or confirmed the class


def raw_score(model: RiskModel, normalised: Mapping[str, float]) -> float:
    """The score (0..100) of normalised indicator values (every indicator of ``model`` present)."""
    total = sum(i.weight * normalised[i.code] for i in model.indicators)
    if model.link == "logistic":
        return 100.0 * _sigmoid(model.intercept + total)
    return 100.0 * total / sum(i.weight for i in model.indicators)


def _sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)


def band(model: RiskModel, score: float) -> str:
    """The class whose band holds ``score``: the last class whose lowest score is ≤ it."""
    found = model.classes[0]
    for cls, low in zip(model.classes, model.bands):
        if score >= low:
            found = cls
    return found


def apply_rules(model: RiskModel, banded: str, facts: Mapping[str, float | None]) -> tuple[str, tuple[str, ...]]:
    """The class after the qualitative rules, and the codes of the rules that fired.

    The first ``set`` rule that holds fixes the class; then every ``at_least`` rule that holds
    raises it to at least its class (a ``set`` to the worst class stays the worst).
    """
    cls, fired = banded, []
    for rule in model.rules:
        if rule.set_class is not None and rule.holds(facts.get(rule.subject)):
            cls = rule.set_class
            fired.append(rule.code)
            break
    for rule in model.rules:
        if rule.at_least is not None and rule.holds(facts.get(rule.subject)):
            fired.append(rule.code)
            if model.rank(rule.at_least) > model.rank(cls):
                cls = rule.at_least
    return cls, tuple(fired)


def classify(model: RiskModel, values: Mapping[str, float | None], facts: Mapping[str, float | None]) -> Classification:
    """Classify an entity from its latest indicator values (absent = missing) and derived facts."""
    normalised = {i.code: i.normalise(values.get(i.code)) for i in model.indicators}
    score = raw_score(model, normalised)
    banded = band(model, score)
    cls, fired = apply_rules(model, banded, {**values, **facts})
    return Classification(cls, score, banded, reasons(model, normalised), fired)


def reasons(model: RiskModel, normalised: Mapping[str, float]) -> tuple[tuple[str, float], ...]:
    """The indicators that contributed most (weight × normalised value, as points of a linear score)."""
    scale = 100.0 / sum(i.weight for i in model.indicators) if model.link == "linear" else 1.0
    parts = [(i.code, round(i.weight * normalised[i.code] * scale, 4)) for i in model.indicators]
    parts = [p for p in parts if p[1] > 0]
    parts.sort(key=lambda p: (-p[1], p[0]))
    return tuple(parts[:TOP_REASONS])
