"""Learning new weights from inspection results, and measuring a model on held-out results.

The learner is scikit-learn's L2-regularised logistic regression on the indicators as the model
normalises them (0..1, 1 the riskiest end), wrapped so that a weight pointing against the
indicator's stated direction is set to 0 (a model a coordinator can read: every weight says "more
of this, more risk", and raising a risk-increasing indicator never lowers the class), and
calibrated by scikit-learn's ``CalibratedClassifierCV`` (Platt's sigmoid, fitted on 5-fold
out-of-fold scores, ``ensemble=False``). Platt scaling of a linear score is again a linear score,
so the result is one ``logistic`` model: score = 100 × σ(intercept + Σ wᵢnᵢ), a calibrated
probability in percent. docs/risk.md says why this and not a more flexible learner.

The bands of a learned version are set on the directory it will classify, at the score quantiles
that keep the model's class shares (``shares``), so the plan's ratios ask for the same inspection
budget as before; only who is in which class changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from domain.risk.model import RiskModel, parse_model
from services.risk import matrix

C = 1.0  # inverse L2 strength on 0..1 features; docs/risk.md
MIN_EXAMPLES = 50
DEFAULT_RATIOS = {"A": 0.03, "B": 0.05, "C": 0.1, "D": 0.5, "E": 1.0}


def fit(base: RiskModel, values: np.ndarray, labels: np.ndarray, *, name: str) -> RiskModel:
    """A logistic model learned from ``values`` (n × k raw, NaN = none) and 0/1 ``labels``; bands unset
    (``with_bands`` sets them on a directory)."""
    from sklearn.calibration import CalibratedClassifierCV  # lazy: scikit-learn only where it learns
    from threadpoolctl import threadpool_limits

    from services.risk.estimator import DirectedLogit  # lazy: it imports scikit-learn (docs/architecture.md, Start-up)

    X = matrix.normalise(base, values)
    y = np.asarray(labels, dtype=int)
    folds = int(min(5, np.bincount(y, minlength=2).min()))
    calibrated = CalibratedClassifierCV(DirectedLogit(C), method="sigmoid", cv=max(folds, 2), ensemble=False)
    with threadpool_limits(1):  # 39 columns: BLAS threads only contend (measured: docs/benchmarks.md)
        calibrated.fit(X, y)
    inner = calibrated.calibrated_classifiers_[0]
    est, platt = inner.estimator, inner.calibrators[0]
    # σ(−(a·f + b)) with f = w·x + c  →  logit = −a·w·x − (a·c + b)
    a, b = float(platt.a_), float(platt.b_)
    weights = np.clip(-a * est.coef_, 0.0, None)
    intercept = -(a * est.intercept_ + b)
    data = base.to_dict()
    data["name"], data["link"], data["intercept"] = name, "logistic", float(intercept)
    for ind, w in zip(data["indicators"], weights):
        ind["weight"] = round(float(w), 6)
    if not any(ind["weight"] > 0 for ind in data["indicators"]):
        data["indicators"][0]["weight"] = 1e-6  # a model needs one weight; this one says "nothing learned"
    data["bands"] = {c: float(n) for n, c in enumerate(base.classes)}  # placeholders, set by with_bands
    data.pop("extra", None)
    return parse_model(data)


def with_bands(
    model: RiskModel, directory: np.ndarray, shares: tuple[float, ...], facts: Mapping[str, np.ndarray] | None = None
) -> RiskModel:
    """``model`` with bands at the directory's scores that give each class its share *after* the
    rules, as :func:`services.risk.matrix.classify` applies them to ``directory`` with ``facts``.

    An entity a ``set`` rule places (newly registered → B, on the 严重失信 list → E) is counted in
    its class and left out of the cuts: bands set on every score would give the scores their
    shares, then the rules would move entities out (a learned version that ranks the newly
    registered high sends them back to B) and the worst classes — hence the inspection budget at the
    plan's ratios — would shrink (by about 13 % of the D/E inspections in the simulation,
    docs/risk.md). An ``at_least`` rule (a problem found last time → at least C) raises an entity
    after its band: the bands are cut from the worst class down, each class's cut counting the
    entities a rule already raises into it, so a rule filling C no longer empties A (the cut of C
    rises instead)."""
    scores = matrix.scores(model, matrix.normalise(model, directory))
    n, k = len(scores), len(model.classes)
    ruled = matrix.apply_rules(model, directory, facts)  # as matrix.classify applies them
    fixed, floor = ruled.placed >= 0, ruled.floor
    placed = np.bincount(np.maximum(ruled.placed, floor)[fixed], minlength=k).astype(float)
    wanted = np.clip(np.asarray(shares, dtype=float) * n - placed, 0.0, None)
    free, free_floor = scores[~fixed], floor[~fixed]
    cuts: list[float] = []
    if len(free) and wanted.sum() > 0:
        upper = np.inf  # the cut of the class above: free entities scoring below it are not yet placed
        for rank in range(k - 1, 0, -1):
            below = free < upper
            raised = int(((free_floor == rank) & below).sum())  # in this class whatever their band
            pool = free[below & (free_floor < rank)]  # in it only if their score reaches the cut
            need = wanted[rank] - raised
            if need <= 0 or not len(pool):
                cut = float(upper) if np.isfinite(upper) else 100.0
            else:
                cut = float(np.quantile(pool, float(np.clip(1.0 - need / len(pool), 0.0, 1.0))))
            cuts.append(cut)
            upper = min(upper, cut)
        cuts.reverse()
    else:
        cuts = [float(c) for c in (np.quantile(scores, np.cumsum(shares)[:-1]) if n else np.cumsum(shares)[:-1] * 100)]
    bands = [0.0]
    for cut in cuts:
        bands.append(max(float(cut), bands[-1] + 1e-9))
    bands = [min(b, 100.0 - 1e-9 * (len(bands) - i)) for i, b in enumerate(bands)]
    return replace(model, bands=tuple(bands))


@dataclass(frozen=True)
class Measures:
    auc: float | None
    brier: float | None
    calibration: list[tuple[float, float, int]]  # (mean predicted, observed rate, n) per decile
    discovery: float | None  # problem rate of the inspections the plan's ratios would make
    discovery_de: float | None  # … of those in the two worst classes

    def as_dict(self) -> dict[str, Any]:
        return {
            "auc": self.auc,
            "brier": self.brier,
            "calibration": self.calibration,
            "discovery": self.discovery,
            "discovery_worst": self.discovery_de,
        }


def measure(model: RiskModel, values: np.ndarray, labels: np.ndarray, facts=None, ratios=None) -> Measures:
    """How ``model`` ranks held-out results: AUC, Brier score and calibration by decile (a logistic
    model's score is a probability; a linear one's is read as score/100), and the expected problem
    rate of inspections made at the plan's ratios on the classes it gives (and of its two worst)."""
    from sklearn.metrics import brier_score_loss, roc_auc_score  # lazy: scikit-learn only where it measures

    ratios = ratios or DEFAULT_RATIOS
    y = np.asarray(labels, dtype=int)
    got = matrix.classify(model, values, facts)
    p = got.scores / 100.0
    both = len(set(y.tolist())) == 2
    auc = float(roc_auc_score(y, p)) if both else None
    brier = float(brier_score_loss(y, np.clip(p, 0, 1))) if len(y) else None
    calibration = []
    if len(y) >= 10:
        for part in np.array_split(np.argsort(p, kind="stable"), 10):
            calibration.append((round(float(p[part].mean()), 4), round(float(y[part].mean()), 4), int(len(part))))
    weight = np.array([float(ratios.get(c, 0.0)) for c in model.classes])[got.classes]
    discovery = float((weight * y).sum() / weight.sum()) if weight.sum() > 0 else None
    worst = got.classes >= len(model.classes) - 2
    discovery_de = float(y[worst].mean()) if worst.any() else None
    return Measures(auc, brier, calibration, discovery, discovery_de)
