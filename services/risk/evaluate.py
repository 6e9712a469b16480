"""Simulated monthly cycles on a generated world: classify → draw at the plan's ratios → inspect → learn.

Each cycle classifies the world with the current model (the ``last_inspection_problem`` rule and the
indicators counted from results included, from the simulated results of the cycles before), draws in each class the plan's ratio of its entities (a simple random sample per class,
as the draw's quotas do), finds a problem in an inspected entity with its hidden propensity, and
compares with a uniform random sample of the same size (the same inspection budget). Then it
learns from every result so far (``services.risk.learn``) and, as a coordinator reading the
comparison would, puts the learned version in force only when it ranks the newest results better
than the version in force (:func:`_proposal`). As the monthly sweep does (``services.risk.drift``),
each cycle measures the class mix against the mix the version in force gave at its first
classification (its approved mix): when a class's share moved beyond the model's ``mix_tolerance``
the alert would fire, and the simulation retrains and approves at once (bands giving the approved
mix again), whatever the comparison says; the cycle says so. Everything is in memory: the
arithmetic is the engine's own (``matrix``, ``learn``); the database adds nothing to the question.

Beside the engine each cycle runs two **references** that use the hidden truth
(``services.risk.ceiling``): an oracle ranking by each entity's posterior mean propensity under the
world's latent model, with the same number of entities per class as the engine's classification of
that cycle, the model's rules, the plan's ratios and the same draw; once with the ``set`` rules (the
ceiling: the best any ranking can do under the model's rules) and once without them. Each has its
own random stream, draws, outcomes and history, so the engine's figures are the same with or
without them; each is run ``ceiling.REPLICATES`` times over (independent draws and outcomes) and the
cycle reports the mean, so that the reference carries less of the draw's luck than one run would.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from core import charts
from domain.risk import drift
from domain.risk.model import RiskModel
from services.risk import ceiling, history, learn, matrix, world

DEFAULT_RATIOS = learn.DEFAULT_RATIOS
FIRST_DAY = 739_000  # day ordinals of the simulated months (any will do: only differences count)
MONTH = 30
NONE = history.Results.of([], [], [])
#: What ``inspectbot risk evaluate`` accepts: from a toy world to the Qingdao-scale directory, up to
#: five years of monthly cycles, numpy's seeds.
ENTITIES = (100, 2_000_000)
CYCLES = (1, 60)
SEEDS = (0, 2**32 - 1)


@dataclass(frozen=True)
class Cycle:
    cycle: int
    version: str
    inspections: int
    worst_inspections: int
    discovery_worst: float  # problem rate of the inspections in the two worst classes
    expected_worst: float  # their mean hidden propensity: the same without the luck of the draws
    discovery_all: float
    discovery_uniform: float  # a uniform random sample of the same size
    expected_uniform: float  # the base rate: what uniform sampling finds on average
    auc: float | None  # the model's ranking of the hidden propensity's outcomes over the world
    worst_share: float = 0.0  # share of the world in the two worst classes (at 100 %/50 %: the budget)
    drift: str = ""  # the mix drifted beyond the tolerance: "alerted", or "retrained" (put in force next cycle)
    ceiling_worst: float | None = None  # the oracle's expected D/E rate, with the model's set rules (a reference)
    ceiling_free_worst: float | None = None  # … without the set rules
    counts: tuple[int, ...] = ()  # entities per class of the engine's classification (what the oracles fill)


def draw(classes: np.ndarray, model: RiskModel, ratios: dict[str, float], rng: np.random.Generator) -> np.ndarray:
    """Indices drawn: in each class, round(ratio × its size) entities at random."""
    picked = []
    for rank, cls in enumerate(model.classes):
        members = np.flatnonzero(classes == rank)
        quota = min(len(members), int(round(float(ratios.get(cls, 0.0)) * len(members))))
        if quota:
            picked.append(rng.choice(members, size=quota, replace=False))
    return np.concatenate(picked) if picked else np.empty(0, dtype=int)


def simulate(
    model: RiskModel,
    *,
    entities: int,
    cycles: int,
    seed: int,
    ratios: dict[str, float] | None = None,
    base_rate: float = world.BASE_RATE,
    learning: bool = True,
    references: int = ceiling.REPLICATES,
) -> list[Cycle]:
    """``references``: how many independent runs of each oracle the ceilings average (0: none)."""
    ratios = ratios or DEFAULT_RATIOS
    truth = world.generate(model, entities, seed, base_rate)
    oracles: list[list[tuple[ceiling.Oracle, np.random.Generator]]] = []
    if references:  # the prior comes from another world of the same generator, never the one evaluated
        prior = ceiling.fit_prior(model, seed=ceiling.PRIOR_SEED + (seed == ceiling.PRIOR_SEED), base_rate=base_rate)
        oracles = [
            [
                (ceiling.Oracle(model, truth.values, prior, set_rules=rules), np.random.default_rng([seed, 15, n, run]))
                for run in range(references)
            ]
            for n, rules in enumerate((True, False))
        ]
    rng = np.random.default_rng(seed + 1)
    # learned versions keep the class mix the first model gives this world: the same inspection budget
    shares = tuple(np.bincount(matrix.classify(model, truth.values).classes, minlength=len(model.classes)) / entities)
    ids = np.arange(entities, dtype=np.int64)
    inspected: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (entity, day, problem) per cycle
    seen_x: list[np.ndarray] = []
    seen_y: list[np.ndarray] = []
    out: list[Cycle] = []
    current = model
    approved: dict[str, int] | None = None  # the mix of the version in force at its first classification
    for cycle in range(1, cycles + 1):
        day = FIRST_DAY + MONTH * cycle
        results = history.Results.of(*(np.concatenate(part) for part in zip(*inspected))) if inspected else NONE
        values = history.fill(current, truth.values.copy(), results, ids, day)
        got = matrix.classify(current, values, {"last_inspection_problem": history.last_problem(results, ids)})
        picked = draw(got.classes, current, ratios, rng)
        found = rng.random(len(picked)) < truth.propensity[picked]
        worst = got.classes[picked] >= len(current.classes) - 2
        uniform = rng.choice(entities, size=len(picked), replace=False)
        uniform_found = rng.random(len(uniform)) < truth.propensity[uniform]
        outcome = (rng.random(entities) < truth.propensity).astype(int)
        counts = dict(zip(current.classes, np.bincount(got.classes, minlength=len(current.classes)).tolist()))
        approved = approved or counts
        drifted = bool(drift.drifted(drift.compare(approved, counts, current.classes, current.mix_tolerance)))
        worst_share = float((got.classes >= len(current.classes) - 2).mean())
        reached = [
            float(
                np.mean([reference(o, tuple(counts.values()), current, ratios, truth.propensity, r) for o, r in runs])
            )
            for runs in oracles
        ]
        out.append(
            Cycle(
                cycle=cycle,
                version=current.name,
                inspections=len(picked),
                worst_inspections=int(worst.sum()),
                discovery_worst=float(found[worst].mean()) if worst.any() else 0.0,
                expected_worst=float(truth.propensity[picked][worst].mean()) if worst.any() else 0.0,
                discovery_all=float(found.mean()) if len(found) else 0.0,
                discovery_uniform=float(uniform_found.mean()) if len(uniform) else 0.0,
                expected_uniform=float(truth.propensity.mean()),
                auc=learn.measure(current, values, outcome).auc,
                worst_share=worst_share,
                drift="alerted" if drifted else "",
                ceiling_worst=reached[0] if reached else None,
                ceiling_free_worst=reached[1] if reached else None,
                counts=tuple(counts.values()),
            )
        )
        inspected.append((picked, np.full(len(picked), day), found.astype(int)))
        seen_x.append(values[picked])  # each example with its history before this cycle: no label leaks
        seen_y.append(found.astype(int))
        if learning and cycle < cycles:
            after = history.Results.of(*(np.concatenate(part) for part in zip(*inspected)))
            directory = history.fill(model, truth.values.copy(), after, ids, day + MONTH)
            facts = {"last_inspection_problem": history.last_problem(after, ids)}  # the bands are cut around the rules
            kept = current
            if drifted:
                total = sum(approved.values())
                mix = tuple(approved[c] / total for c in current.classes)
                current = _retrain(model, current, seen_x, seen_y, directory, facts, mix, cycle)
                if current is not kept:
                    out[-1] = replace(out[-1], drift="retrained")
            else:
                current = _proposal(model, current, seen_x, seen_y, directory, facts, shares, cycle)
            if current is not kept:
                approved = None
    return out


def reference(
    oracle: ceiling.Oracle,
    counts: tuple[int, ...],
    model: RiskModel,
    ratios: dict[str, float],
    propensity: np.ndarray,
    rng: np.random.Generator,
) -> float:
    """One cycle of an oracle with the engine's class ``counts`` of the cycle: classify, draw at the
    plan's ratios, inspect, record; its expected D/E rate (the mean hidden propensity of its D/E
    inspections, as ``Cycle.expected_worst`` for the engine)."""
    mine = oracle.classify(np.asarray(counts))
    picked = draw(mine, model, ratios, rng)
    found = (rng.random(len(picked)) < propensity[picked]).astype(int)
    oracle.record(picked, found)
    worst = mine[picked] >= len(model.classes) - 2
    return float(propensity[picked][worst].mean()) if worst.any() else 0.0


def _retrain(first, current, seen_x, seen_y, directory, facts, mix, cycle) -> RiskModel:
    """The drift alert's retrain, approved at once: a version learned on every result so far with
    bands that give the approved ``mix`` again (the version in force when nothing can be learned)."""
    y = np.concatenate(seen_y)
    if len(set(y.tolist())) < 2 or len(y) < learn.MIN_EXAMPLES:
        return current
    learned = learn.fit(first, np.concatenate(seen_x), y, name=f"{first.name}-mix{cycle}")
    return learn.with_bands(learned, directory, mix, facts)


def _proposal(first, current, seen_x, seen_y, directory, facts, shares, cycle) -> RiskModel:
    """What a coordinator following the comparison would put in force: a version learned on every
    result so far, if one learned without the newest cycle's results ranks those results better than
    the version in force does (``risk train`` shows the same comparison); else the version in force."""
    y = np.concatenate(seen_y)
    if len(set(y.tolist())) < 2 or len(y) < learn.MIN_EXAMPLES or len(seen_y) < 2:
        return current
    past_y = np.concatenate(seen_y[:-1])
    if len(set(past_y.tolist())) < 2 or len(set(seen_y[-1].tolist())) < 2:
        return current
    trial = learn.fit(first, np.concatenate(seen_x[:-1]), past_y, name="trial")
    if learn.measure(trial, seen_x[-1], seen_y[-1]).auc <= learn.measure(current, seen_x[-1], seen_y[-1]).auc:
        return current
    learned = learn.fit(first, np.concatenate(seen_x), y, name=f"{first.name}-sim{cycle}")
    return learn.with_bands(learned, directory, shares, facts)


def plot(cycles: list[Cycle], labels: dict[str, str], font: str | None) -> bytes:
    """A PNG of the discovery rate by cycle: D/E inspections (found, and expected: their mean hidden
    propensity), all inspections, uniform at equal budget; and the ceiling (dashed): the expected D/E
    rate of the oracle that knows the hidden model, under the model's rules, when the cycles carry it."""
    xs = [c.cycle for c in cycles]
    series = [
        (labels["worst"], [100 * c.discovery_worst for c in cycles], "o-"),
        (labels["expected"], [100 * c.expected_worst for c in cycles], "o:"),
    ]
    if all(c.ceiling_worst is not None for c in cycles):
        series.append((labels["ceiling"], [100 * (c.ceiling_worst or 0.0) for c in cycles], "k--"))
    series += [
        (labels["all"], [100 * c.discovery_all for c in cycles], "s-"),
        (labels["uniform"], [100 * c.discovery_uniform for c in cycles], "^--"),
    ]
    return charts.discovery_chart(xs, series, 61.0, labels, font)
