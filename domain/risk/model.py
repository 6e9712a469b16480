"""The credit-risk indicator model as configuration: parse and validate it. Pure, stdlib only.

A model file (TOML, read by ``services.risk``; ``examples/risk/``) becomes a dict; :func:`parse_model`
turns it into a frozen :class:`RiskModel` or raises :class:`RiskModelError` naming the offending
field by its path (``indicators[3].weight``) with a code; the words are in the templates.

The model has:

- ``classes``: best to worst (``["A", "B", "C", "D"]`` nationally, ``A``–``E`` in Shandong);
- ``dimensions`` and ``indicators``: each indicator belongs to a dimension, has a ``direction``
  (``up``: a higher value means more risk; ``down``: less risk), a ``weight`` ≥ 0 and the range
  ``low``..``high`` its value is normalised over (clipped to 0..1, flipped for ``down``), and the
  normalised value used when an entity has no value (``missing``, default 0.5: unknown is average);
- ``link``: ``linear`` (score = 100 × Σ wᵢnᵢ / Σ wᵢ, the hand-set scorecard) or ``logistic``
  (score = 100 × σ(intercept + Σ wᵢnᵢ), a probability in percent: what ``risk train`` writes);
- ``bands``: the lowest score of each class (the first class starts at 0);
- ``rules``: qualitative overrides, tried in order after the score: a rule whose condition holds
  ``set``s the class (the first such rule wins) or raises it to ``at_least`` a class. A condition
  names an indicator or a fact the engine derives (:data:`FACTS`), an operator and a number;
- ``mix_tolerance`` (default 0.10): how far, relative to its share when the version was approved,
  a class's share of the directory may move before the monthly sweep alerts the coordinators and
  proposes a retrain (``services.risk.drift``): the mix at the plan's ratios *is* the budget.

Weights are never negative, so raising a risk-increasing indicator never lowers the class
(tests/domain/test_risk.py checks it as a property).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

#: Facts the engine derives from its own records, usable in rules like indicators.
FACTS = ("last_inspection_problem",)  # 1 if the entity's last published (reviewed) result found a problem
OPERATORS = ("<", "<=", ">", ">=", "==", "!=")
LINKS = ("linear", "logistic")
DIRECTIONS = ("up", "down")
SOURCES = ("import", "results")  # imported values, or counted from the entity's published results
COUNTS = ("problems", "clean")  # what a "results" indicator counts
MAX_WINDOW_MONTHS = 120
MAX_INDICATORS = 200
MIX_TOLERANCE = 0.10  # default: a class's share may move ±10 % (relative) before the sweep alerts

_CODE = re.compile(r"[a-z][a-z0-9_]{0,47}")
_CLASS = re.compile(r"[A-E]")  # the classes the directory and the plans' ratios know


class RiskModelError(ValueError):
    """A model file is not acceptable: ``path`` names the field, ``code`` the text, ``params`` its values."""

    def __init__(self, path: str, code: str, **params: Any) -> None:
        super().__init__(f"{path}: {code} {params}" if params else f"{path}: {code}")
        self.path = path
        self.code = code
        self.params = params


@dataclass(frozen=True)
class Indicator:
    code: str
    name: str
    dimension: str
    direction: str
    weight: float
    low: float
    high: float
    missing: float = 0.5
    source: str = "import"
    count: str = ""  # for source "results": "problems" or "clean"
    window_months: int = 0  # for source "results": how far back results count

    @property
    def derived(self) -> bool:
        """Counted by the engine from published results, never imported."""
        return self.source == "results"

    @property
    def window_days(self) -> int:
        return round(self.window_months * 365.25 / 12)

    def normalise(self, value: float | None) -> float:
        """The value on 0..1, 1 the riskiest end; ``missing`` when there is none."""
        if value is None:
            return self.missing
        share = (value - self.low) / (self.high - self.low)
        share = 0.0 if share < 0.0 else 1.0 if share > 1.0 else share
        return 1.0 - share if self.direction == "down" else share


@dataclass(frozen=True)
class Rule:
    code: str
    name: str
    subject: str  # an indicator code or a fact
    op: str
    value: float
    set_class: str | None = None
    at_least: str | None = None

    def holds(self, value: float | None) -> bool:
        if value is None:
            return False
        v, t = value, self.value
        return {"<": v < t, "<=": v <= t, ">": v > t, ">=": v >= t, "==": v == t, "!=": v != t}[self.op]


@dataclass(frozen=True)
class RiskModel:
    name: str
    classes: tuple[str, ...]
    dimensions: tuple[tuple[str, str], ...]  # (code, name)
    indicators: tuple[Indicator, ...]
    bands: tuple[float, ...]  # lowest score of each class, bands[0] == 0
    rules: tuple[Rule, ...] = ()
    link: str = "linear"
    intercept: float = 0.0
    shares: tuple[float, ...] = ()  # target class shares when a trained version sets its bands
    extra: Mapping[str, Any] = field(default_factory=dict)  # what training recorded (metrics, …)
    mix_tolerance: float = MIX_TOLERANCE  # relative move of a class's share that alerts (services.risk.drift)

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(i.code for i in self.indicators)

    @property
    def derived(self) -> tuple[Indicator, ...]:
        """The indicators counted from published results (``source = "results"``)."""
        return tuple(i for i in self.indicators if i.derived)

    @property
    def worst(self) -> str:
        return self.classes[-1]

    def rank(self, risk_class: str) -> int:
        return self.classes.index(risk_class)

    def to_dict(self) -> dict[str, Any]:
        """The model as a dict :func:`parse_model` reads back (stored with each model version)."""
        out: dict[str, Any] = {
            "name": self.name,
            "classes": list(self.classes),
            "link": self.link,
            "dimensions": [{"code": c, "name": n} for c, n in self.dimensions],
            "indicators": [_indicator_dict(i) for i in self.indicators],
            "bands": dict(zip(self.classes, self.bands)),
            "rules": [_rule_dict(r) for r in self.rules],
        }
        if self.link == "logistic":
            out["intercept"] = self.intercept
        if self.shares:
            out["shares"] = dict(zip(self.classes, self.shares))
        if self.extra:
            out["extra"] = dict(self.extra)
        out["mix_tolerance"] = self.mix_tolerance
        return out


def _indicator_dict(i: Indicator) -> dict[str, Any]:
    out: dict[str, Any] = {
        "code": i.code,
        "name": i.name,
        "dimension": i.dimension,
        "direction": i.direction,
        "weight": i.weight,
        "low": i.low,
        "high": i.high,
        "missing": i.missing,
    }
    if i.derived:
        out |= {"source": i.source, "count": i.count, "window_months": i.window_months}
    return out


def _rule_dict(rule: Rule) -> dict[str, Any]:
    out: dict[str, Any] = {"code": rule.code, "name": rule.name, "when": [rule.subject, rule.op, rule.value]}
    if rule.set_class:
        out["set"] = rule.set_class
    if rule.at_least:
        out["at_least"] = rule.at_least
    return out


def _number(value: Any, path: str, *, low: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise RiskModelError(path, "risk_model_not_number")
    if low is not None and value < low:
        raise RiskModelError(path, "risk_model_too_small", low=low)
    return float(value)


def _text(value: Any, path: str, *, pattern: re.Pattern[str] | None = None, max_len: int = 128) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > max_len:
        raise RiskModelError(path, "risk_model_bad_text", max_len=max_len)
    if pattern is not None and not pattern.fullmatch(value):
        raise RiskModelError(path, "risk_model_bad_code", value=value)
    return value.strip()


def _list(data: Mapping[str, Any], key: str) -> list[Any]:
    value = data.get(key, [])
    if not isinstance(value, list):
        raise RiskModelError(key, "risk_model_not_list")
    return value


def _table(value: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise RiskModelError(path, "risk_model_not_table")
    return value


def parse_model(data: Mapping[str, Any]) -> RiskModel:
    """A :class:`RiskModel` from a model file's dict, or :class:`RiskModelError` for the first problem."""
    data = _table(data, "")
    known = {
        "name",
        "classes",
        "link",
        "intercept",
        "dimensions",
        "indicators",
        "bands",
        "rules",
        "shares",
        "extra",
        "mix_tolerance",
    }
    for key in data:
        if key not in known:
            raise RiskModelError(str(key), "risk_model_unknown_key")
    name = _text(data.get("name"), "name")
    classes_raw = data.get("classes")
    if not isinstance(classes_raw, list) or not 2 <= len(classes_raw) <= 5:
        raise RiskModelError("classes", "risk_model_classes")
    classes = tuple(_text(c, f"classes[{n}]", pattern=_CLASS) for n, c in enumerate(classes_raw))
    if len(set(classes)) != len(classes):
        raise RiskModelError("classes", "risk_model_duplicate")
    link = data.get("link", "linear")
    if link not in LINKS:
        raise RiskModelError("link", "risk_model_choice", allowed=list(LINKS))
    intercept = _number(data.get("intercept", 0.0), "intercept")

    dimensions: list[tuple[str, str]] = []
    for n, raw in enumerate(_list(data, "dimensions")):
        path = f"dimensions[{n}]"
        row = _table(raw, path)
        code = _text(row.get("code"), f"{path}.code", pattern=_CODE)
        if code in dict(dimensions):
            raise RiskModelError(f"{path}.code", "risk_model_duplicate")
        dimensions.append((code, _text(row.get("name", code), f"{path}.name")))
    if not dimensions:
        raise RiskModelError("dimensions", "risk_model_empty")

    indicators = _indicators(_list(data, "indicators"), {c for c, _ in dimensions})
    bands = _bands(data.get("bands"), classes, link)
    codes = {i.code for i in indicators}
    rules = tuple(_rule(raw, n, codes, classes) for n, raw in enumerate(_list(data, "rules")))
    shares: tuple[float, ...] = ()
    if "shares" in data:
        table = _table(data["shares"], "shares")
        if set(table) != set(classes):
            raise RiskModelError("shares", "risk_model_every_class", classes=list(classes))
        shares = tuple(_number(table[c], f"shares.{c}", low=0.0) for c in classes)
        if abs(sum(shares) - 1.0) > 1e-6:
            raise RiskModelError("shares", "risk_model_shares_sum")
    extra = _table(data.get("extra", {}), "extra")
    tolerance = _number(data.get("mix_tolerance", MIX_TOLERANCE), "mix_tolerance", low=0.0)
    return RiskModel(
        name, classes, tuple(dimensions), indicators, bands, rules, link, intercept, shares, dict(extra), tolerance
    )


def _indicators(rows: list[Any], dimensions: set[str]) -> tuple[Indicator, ...]:
    if not rows:
        raise RiskModelError("indicators", "risk_model_empty")
    if len(rows) > MAX_INDICATORS:
        raise RiskModelError("indicators", "risk_model_too_many", max=MAX_INDICATORS)
    found: dict[str, Indicator] = {}
    for n, raw in enumerate(rows):
        path = f"indicators[{n}]"
        row = _table(raw, path)
        code = _text(row.get("code"), f"{path}.code", pattern=_CODE)
        if code in found or code in FACTS:
            raise RiskModelError(f"{path}.code", "risk_model_duplicate")
        dimension = row.get("dimension")
        if dimension not in dimensions:
            raise RiskModelError(f"{path}.dimension", "risk_model_unknown_dimension", value=str(dimension))
        direction = row.get("direction", "up")
        if direction not in DIRECTIONS:
            raise RiskModelError(f"{path}.direction", "risk_model_choice", allowed=list(DIRECTIONS))
        low = _number(row.get("low", 0.0), f"{path}.low")
        high = _number(row.get("high", 1.0), f"{path}.high")
        if high <= low:
            raise RiskModelError(f"{path}.high", "risk_model_range", low=low)
        missing = _number(row.get("missing", 0.5), f"{path}.missing", low=0.0)
        if missing > 1.0:
            raise RiskModelError(f"{path}.missing", "risk_model_too_large", high=1.0)
        source = row.get("source", "import")
        if source not in SOURCES:
            raise RiskModelError(f"{path}.source", "risk_model_choice", allowed=list(SOURCES))
        count, window = "", 0
        if source == "results":
            if row.get("count") not in COUNTS:
                raise RiskModelError(f"{path}.count", "risk_model_choice", allowed=list(COUNTS))
            count = str(row["count"])
            window_raw = row.get("window_months")
            if isinstance(window_raw, bool) or not isinstance(window_raw, int) or window_raw < 1:
                raise RiskModelError(f"{path}.window_months", "risk_model_window", high=MAX_WINDOW_MONTHS)
            if window_raw > MAX_WINDOW_MONTHS:
                raise RiskModelError(f"{path}.window_months", "risk_model_window", high=MAX_WINDOW_MONTHS)
            window = window_raw
        elif "count" in row or "window_months" in row:
            raise RiskModelError(f"{path}.source", "risk_model_results_only")
        found[code] = Indicator(
            code=code,
            name=_text(row.get("name", code), f"{path}.name"),
            dimension=str(dimension),
            direction=str(direction),
            weight=_number(row.get("weight", 1.0), f"{path}.weight", low=0.0),
            low=low,
            high=high,
            missing=missing,
            source=str(source),
            count=str(count),
            window_months=window,
        )
    if not any(i.weight > 0 for i in found.values()):
        raise RiskModelError("indicators", "risk_model_no_weight")
    return tuple(found.values())


def _bands(raw: Any, classes: tuple[str, ...], link: str) -> tuple[float, ...]:
    table = _table(raw, "bands")
    if set(table) != set(classes):
        raise RiskModelError("bands", "risk_model_every_class", classes=list(classes))
    bands = tuple(_number(table[c], f"bands.{c}", low=0.0) for c in classes)
    if bands[0] != 0.0:
        raise RiskModelError(f"bands.{classes[0]}", "risk_model_first_band")
    for n in range(1, len(bands)):
        if bands[n] <= bands[n - 1]:
            raise RiskModelError(f"bands.{classes[n]}", "risk_model_bands_order")
    if bands[-1] > 100.0:
        raise RiskModelError(f"bands.{classes[-1]}", "risk_model_too_large", high=100.0)
    return bands


def _rule(raw: Any, n: int, indicators: set[str], classes: tuple[str, ...]) -> Rule:
    path = f"rules[{n}]"
    row = _table(raw, path)
    code = _text(row.get("code"), f"{path}.code", pattern=_CODE)
    when = row.get("when")
    if not isinstance(when, list) or len(when) != 3:
        raise RiskModelError(f"{path}.when", "risk_model_when")
    subject, op, value = when
    if subject not in indicators and subject not in FACTS:
        raise RiskModelError(f"{path}.when", "risk_model_unknown_subject", value=str(subject))
    if op not in OPERATORS:
        raise RiskModelError(f"{path}.when", "risk_model_choice", allowed=list(OPERATORS))
    threshold = _number(value, f"{path}.when")
    set_class, at_least = row.get("set"), row.get("at_least")
    if (set_class is None) == (at_least is None):
        raise RiskModelError(path, "risk_model_rule_action")
    for key, cls in (("set", set_class), ("at_least", at_least)):
        if cls is not None and cls not in classes:
            raise RiskModelError(f"{path}.{key}", "risk_model_unknown_class", value=str(cls))
    return Rule(code, _text(row.get("name", code), f"{path}.name"), subject, op, threshold, set_class, at_least)
