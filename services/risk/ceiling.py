"""The ceiling of the evaluation: what a ranking that knows the generated world's hidden model reaches.

A **reference**, never the engine: it uses what only the simulation knows (``services.risk.world``'s
latent model and each entity's hidden propensity, through a prior fitted on them). The engine never
sees any of it. ``services.risk.evaluate`` runs it beside the engine, through the same machinery,
so that each cycle says how far the engine is from the best any ranking can do on that world.

The oracle ranks every entity by its **posterior mean propensity** given

- its indicator values: the prior on the propensity's logit is normal, its mean a linear
  regression of the true logit on the normalised imported indicators and its standard deviation
  that regression's residual one (about 1.47 on the example model: the invisible part ν and the
  part of the latent risk the indicators miss). The regression is fitted on a **separate**
  ``PRIOR_ENTITIES``-entity world from the same generator (seed ``PRIOR_SEED``), not on the world
  evaluated;
- its own outcomes so far (k problems in n inspections): the exact Bayesian update of that prior by
  the binomial likelihood, integrated by Gauss–Hermite quadrature (``NODES`` nodes).

It then classifies as a version of the model would: the model's ``set`` rules place the entities
they hold for (an entity a rule places stays in that class: newly registered → B, on the 严重失信
list → E) — unless the oracle is asked to go without them (``set_rules=False``, a second
reference) — then bands on its ranking, then the ``at_least`` rules (on its own history: its last
outcome). The bands are cut so that each class has the number of entities the engine's
classification has in the same cycle (:func:`fill`): the same budget at the plan's ratios. The
draw, the outcomes and the history are its own (a parallel simulation, deterministic for the seed).
Pure numpy, no database.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from domain.risk.model import RiskModel
from services.risk import matrix, world

PRIOR_ENTITIES = 40_000
PRIOR_SEED = 15_000_001  # the prior's world; never a seed the evaluation is run with (see fit_prior)
NODES = 40
REPLICATES = 8  # independent runs of each oracle that the evaluation averages (the draw's luck, divided by √8)
_Z, _W = np.polynomial.hermite_e.hermegauss(NODES)  # nodes and weights for ∫ f(z) φ(z) dz (∝)


@dataclass(frozen=True)
class Prior:
    """The oracle's prior: logit p ~ N(intercept + x·beta, sd²), x the normalised imported indicators."""

    columns: tuple[int, ...]  # the imported indicators' columns (model.codes order); those counted from results are not
    coefficients: np.ndarray  # intercept first
    sd: float

    def mean(self, model: RiskModel, values: np.ndarray) -> np.ndarray:
        x = matrix.normalise(model, values)[:, list(self.columns)]
        mean: np.ndarray = self.coefficients[0] + x @ self.coefficients[1:]
        return mean


def fit_prior(
    model: RiskModel,
    *,
    entities: int = PRIOR_ENTITIES,
    seed: int = PRIOR_SEED,
    base_rate: float = world.BASE_RATE,
) -> Prior:
    """Least squares of the true logit on ``model``'s normalised imported indicators, on a generated
    world of ``entities`` (seed ``seed``, the same generator and base rate as the world evaluated)."""
    big = world.generate(model, entities, seed, base_rate)
    columns = tuple(j for j, ind in enumerate(model.indicators) if not ind.derived)
    x = matrix.normalise(model, big.values)[:, list(columns)]
    design = np.column_stack([np.ones(len(x)), x])
    logit = np.log(big.propensity / (1.0 - big.propensity))
    coefficients, *_ = np.linalg.lstsq(design, logit, rcond=None)
    residual = logit - design @ coefficients
    return Prior(columns=columns, coefficients=coefficients, sd=float(residual.std()))


def posterior_mean(mean: np.ndarray, sd: float, problems: np.ndarray, inspections: np.ndarray) -> np.ndarray:
    """E[p | k problems in n inspections] for logit p ~ N(mean, sd²), per entity (Gauss–Hermite)."""
    p = 1.0 / (1.0 + np.exp(-(mean[:, None] + sd * _Z[None, :])))
    likelihood = p ** problems[:, None] * (1.0 - p) ** (inspections - problems)[:, None] * _W[None, :]
    posterior: np.ndarray = (likelihood * p).sum(axis=1) / likelihood.sum(axis=1)
    return posterior


def fill(score: np.ndarray, placed: np.ndarray, floor: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Class ranks (0 = best) for ``score`` (higher = riskier) giving class c ``counts[c]`` entities.

    ``placed`` is the class a ``set`` rule fixes (−1: none), ``floor`` the class an ``at_least`` rule
    raises to (−1: none); as in ``matrix.classify`` an entity's class is max(placed or band, floor).
    The bands are cut from the worst class down: class ≥ c gets the riskiest entities the rules do
    not already put there, as many as its cumulative count asks. When the rules alone put more in a
    class than it should hold, the bands cannot undo that (nested bands); the counts then differ."""
    n, k = len(score), len(counts)
    position = np.empty(n, dtype=int)
    position[np.argsort(-score, kind="stable")] = np.arange(n)
    free = placed < 0
    fixed = np.where(free, floor, np.maximum(placed, floor))
    band = np.zeros(n, dtype=int)
    cut = 0  # band ≥ c for the free entities at a position < cut (cuts only grow as c falls: nested)
    for c in range(k - 1, 0, -1):
        wanted = int(counts[c:].sum()) - int((fixed >= c).sum())
        candidates = np.sort(position[free & (floor < c)])
        wanted = min(max(wanted, 0), len(candidates))
        cut = max(cut, int(candidates[wanted - 1]) + 1 if wanted else 0)
        band += free & (position < cut)
    return np.where(free, np.maximum(band, floor), fixed)


class Oracle:
    """One oracle's state through the simulated cycles: its own inspections and outcomes."""

    def __init__(self, model: RiskModel, values: np.ndarray, prior: Prior, *, set_rules: bool = True) -> None:
        self.model = model
        self.values = values
        self.prior = prior
        self.mean = prior.mean(model, values)
        self.set_rules = set_rules
        n = len(values)
        self.problems = np.zeros(n)
        self.inspections = np.zeros(n)
        self.last = np.full(n, np.nan)  # its last outcome (1 problem, 0 clean), NaN: never inspected

    def propensity(self) -> np.ndarray:
        """Each entity's posterior mean propensity, given its indicators and its outcomes so far."""
        return posterior_mean(self.mean, self.prior.sd, self.problems, self.inspections)

    def classify(self, counts: np.ndarray) -> np.ndarray:
        """Class ranks with ``counts`` entities per class (the engine's classification of the cycle)."""
        facts = {"last_inspection_problem": self.last}
        ruled = matrix.apply_rules(self.model, self.values, facts, set_rules=self.set_rules)
        return fill(self.propensity(), ruled.placed, ruled.floor, counts)

    def record(self, picked: np.ndarray, found: np.ndarray) -> None:
        """The outcomes of this cycle's inspections (each entity is drawn at most once a cycle)."""
        self.inspections[picked] += 1
        self.problems[picked] += found
        self.last[picked] = found
