"""Which learner for the risk engine? A held-out comparison on the generated world, where the truth is known.

    uv run python benchmarks/compare_risk_learners.py [--entities N] [--seeds 1,2,3] [--json OUT]

For each seed, a training world and a separate test world of ``--entities`` entities
(``services.risk.world``, the example A–E model's 39 indicators). Two training sets:

- **biased**: what the engine really learns from — three cycles of the plan's ratios (A 3 %, B 5 %,
  C 10 %, D 50 %, E 100 %) drawn on the hand-set example's classes, inspected with the hidden
  propensity (a few thousand results, mostly D/E);
- **full**: every entity of the training world inspected once (an upper bound on what results
  can teach).

Learners (all monotone in every indicator's stated direction):

- ``logit``: the engine's learner (``services.risk.learn.fit``: L2 logistic, direction-constrained,
  Platt-calibrated);
- ``binned``: logistic regression on monotone ramp features (each indicator cut at its sextiles,
  one 0..1 ramp per segment, a segment whose weight comes out negative refitted at zero, so each
  indicator's contribution is a non-decreasing piecewise-linear curve: additive, hence explainable);
- ``hgb``: scikit-learn's ``HistGradientBoostingClassifier`` with ``monotonic_cst`` = +1 on every
  normalised indicator, sigmoid-calibrated (``CalibratedClassifierCV``, 3 folds).

Reference rankings on the test world: the hand-set example, the true propensity, the latent risk r,
and ``E[r | indicators]`` estimated by gradient boosting regressed on r itself (no label noise, a
ceiling for *any* learner on these indicators).

Measured on one outcome per test entity: AUC, Brier score, expected calibration error (10 bins),
and with the true propensity: the expected problem rate of the inspections the plan's ratios make on
the classes a ranking gives (class shares = the hand-set example's), and of its D/E inspections.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import tomllib
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sklearn.calibration import CalibratedClassifierCV  # noqa: E402
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.metrics import brier_score_loss, roc_auc_score  # noqa: E402

from domain.risk.model import parse_model  # noqa: E402
from services.risk import evaluate, learn, matrix, world  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "risk" / "shandong-a-e.toml"
RATIOS = learn.DEFAULT_RATIOS


def ramps(X: np.ndarray, knots: list[np.ndarray]) -> np.ndarray:
    cols = []
    for j, k in enumerate(knots):
        for a, b in zip(k[:-1], k[1:]):
            cols.append(np.clip((X[:, j] - a) / (b - a), 0.0, 1.0))
    return np.column_stack(cols)


def fit_binned(X: np.ndarray, y: np.ndarray):
    knots = []
    for j in range(X.shape[1]):
        q = np.unique(np.quantile(X[:, j], np.linspace(0, 1, 7)))
        knots.append(q if len(q) >= 2 else np.array([0.0, 1.0]))
    R = ramps(X, knots)
    keep = np.ones(R.shape[1], dtype=bool)
    for _ in range(20):
        lr = LogisticRegression(C=learn.C, max_iter=2000).fit(R[:, keep], y)
        if (lr.coef_[0] >= 0).all():
            break
        coef = np.zeros(R.shape[1])
        coef[keep] = lr.coef_[0]
        keep &= coef > 0
    return lambda Z: lr.predict_proba(ramps(Z, knots)[:, keep])[:, 1]


def fit_hgb(X: np.ndarray, y: np.ndarray):
    hgb = HistGradientBoostingClassifier(
        monotonic_cst=[1] * X.shape[1], max_iter=200, learning_rate=0.05, l2_regularization=1.0, random_state=0
    )
    cal = CalibratedClassifierCV(hgb, method="sigmoid", cv=3).fit(X, y)
    return lambda Z: cal.predict_proba(Z)[:, 1]


def fit_logit(model, values: np.ndarray, y: np.ndarray):
    learned = learn.fit(model, values, y, name="cmp")
    return lambda Z: matrix.scores(learned, Z) / 100.0


def classes_of(score: np.ndarray, shares: np.ndarray) -> np.ndarray:
    """Class ranks giving each class its share of the entities, by score (ties broken by order)."""
    order = np.argsort(score, kind="stable")
    cuts = np.round(np.cumsum(shares)[:-1] * len(score)).astype(int)
    ranks = np.empty(len(score), dtype=int)
    ranks[order] = np.searchsorted(cuts, np.arange(len(score)), side="right")
    return ranks


def discovery(score: np.ndarray, propensity: np.ndarray, shares: np.ndarray, classes: tuple[str, ...]):
    ranks = classes_of(score, shares)
    weight = np.array([RATIOS.get(c, 0.0) for c in classes])[ranks]
    worst = ranks >= len(classes) - 2
    return float((weight * propensity).sum() / weight.sum()), float(propensity[worst].mean())


def ece(p: np.ndarray, y: np.ndarray) -> float:
    bins = np.array_split(np.argsort(p, kind="stable"), 10)
    return float(sum(len(b) * abs(p[b].mean() - y[b].mean()) for b in bins) / len(p))


def biased_sample(model, truth, seed: int, cycles: int = 3):
    rng = np.random.default_rng(seed + 100)
    got = matrix.classify(model, truth.values)
    xs, ys = [], []
    for _ in range(cycles):
        picked = evaluate.draw(got.classes, model, RATIOS, rng)
        xs.append(truth.values[picked])
        ys.append((rng.random(len(picked)) < truth.propensity[picked]).astype(int))
    return np.concatenate(xs), np.concatenate(ys)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--entities", type=int, default=20_000)
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    model = parse_model(tomllib.loads(EXAMPLE.read_text(encoding="utf-8")))
    rows = []
    for seed in (int(s) for s in args.seeds.split(",")):
        train, test = world.generate(model, args.entities, seed), world.generate(model, args.entities, seed + 1000)
        shares = np.bincount(matrix.classify(model, test.values).classes, minlength=len(model.classes)) / args.entities
        y_test = (np.random.default_rng(seed + 2000).random(args.entities) < test.propensity).astype(int)
        Xt = matrix.normalise(model, test.values)
        rankings: dict[str, np.ndarray] = {
            "hand-set example": matrix.classify(model, test.values).scores / 100.0,
            "true propensity": test.propensity,
            "latent risk r": test.latent,
        }
        ceiling = HistGradientBoostingRegressor(monotonic_cst=[1] * Xt.shape[1], max_iter=300, random_state=0)
        ceiling.fit(matrix.normalise(model, train.values), train.latent)
        rankings["E[r | indicators] (ceiling)"] = ceiling.predict(Xt)
        full_y = (np.random.default_rng(seed + 3000).random(args.entities) < train.propensity).astype(int)
        sets = {"biased": biased_sample(model, train, seed), "full": (train.values, full_y)}
        timings = {}
        for set_name, (values, y) in sets.items():
            X = matrix.normalise(model, values)
            for name, fitter, fit_args in (
                ("logit", fit_logit, (model, values, y)),
                ("binned", fit_binned, (X, y)),
                ("hgb", fit_hgb, (X, y)),
            ):
                start = time.perf_counter()
                predict = fitter(*fit_args)
                timings[f"{name} {set_name}"] = time.perf_counter() - start
                rankings[f"{name} on {set_name} ({len(y)})"] = predict(Xt)
        for name, score in rankings.items():
            probability = name.startswith(("logit", "binned", "hgb", "hand-set", "true"))
            disc, disc_de = discovery(score, test.propensity, shares, model.classes)
            rows.append(
                {
                    "seed": seed,
                    "ranking": name,
                    "auc": round(float(roc_auc_score(y_test, score)), 4),
                    "brier": round(float(brier_score_loss(y_test, np.clip(score, 0, 1))), 4) if probability else None,
                    "ece": round(ece(score, y_test), 4) if probability else None,
                    "discovery": round(disc, 4),
                    "discovery_de": round(disc_de, 4),
                    "fit_s": round(timings.get(name.split(" (")[0].replace(" on ", " "), 0.0), 2),
                }
            )
        print(f"seed {seed} done", file=sys.stderr)
    by: dict[str, list[dict]] = {}
    for row in rows:
        by.setdefault(row["ranking"].split(" (")[0] if "on " in row["ranking"] else row["ranking"], []).append(row)
    print(f"{'ranking':34} {'AUC':>6} {'Brier':>6} {'ECE':>6} {'disc':>6} {'D/E':>6} {'fit s':>6}")
    for name, rs in by.items():
        cells = []
        for key in ("auc", "brier", "ece", "discovery", "discovery_de", "fit_s"):
            vals = [r[key] for r in rs if r[key] is not None]
            cells.append(f"{np.mean(vals):6.3f}" if vals else "     -")
        print(f"{name:34} " + " ".join(cells))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
