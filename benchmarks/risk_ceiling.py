"""What each of the model's rules costs the ceiling: the oracle of ``services.risk.ceiling`` replayed
with the engine's class counts, with every ``set`` rule, without one of them, and without any.

    uv run python benchmarks/risk_ceiling.py [--entities N] [--cycles C] [--seeds 1,2,3] [--model FILE]

For each seed, ``inspectbot risk evaluate``'s simulation (``services.risk.evaluate.simulate``) runs
the engine and its two references; then the oracle is run again, with the class counts the engine's
classification had in each cycle, once per variant of the model's rules: all of them (the ceiling
the evaluation prints: the same random streams, so the same figures), each ``set`` rule left out in
turn, and none (the second reference). An oracle's draws, outcomes and history are its own, so the
engine's counts are all it takes from the engine. Each figure is the expected D/E rate (the mean
hidden propensity of the D/E inspections), the mean of ``ceiling.REPLICATES`` runs; the table gives
the mean over the seeds, by cycle, and the cycle-1 D/E rate of the engine and of the oracle
**expected over the draw** (each D/E entity weighted by its class's ratio: no luck at all).
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from domain.risk.model import RiskModel, parse_model  # noqa: E402
from services.risk import ceiling, evaluate, matrix, world  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "risk" / "shandong-a-e.toml"


def replay(model: RiskModel, truth, prior, counts, seed: int, variant: int, set_rules: bool = True) -> np.ndarray:
    """The oracle's expected D/E rate by cycle, mean of the replicates (``variant`` 0 with every
    rule and 1 without any use the evaluation's own random streams)."""
    runs = []
    for run in range(ceiling.REPLICATES):
        oracle = ceiling.Oracle(model, truth.values, prior, set_rules=set_rules)
        rng = np.random.default_rng([seed, 15, variant, run])
        ratios = evaluate.DEFAULT_RATIOS
        runs.append([evaluate.reference(oracle, c, model, ratios, truth.propensity, rng) for c in counts])
    return np.mean(runs, axis=0)


def over_the_draw(classes: np.ndarray, model: RiskModel, propensity: np.ndarray) -> float:
    weight = np.array([evaluate.DEFAULT_RATIOS.get(c, 0.0) for c in model.classes])[classes]
    weight = np.where(classes >= len(model.classes) - 2, weight, 0.0)
    return float((weight * propensity).sum() / weight.sum())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--entities", type=int, default=2_000)
    ap.add_argument("--cycles", type=int, default=3)
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--model", type=Path, default=EXAMPLE)
    args = ap.parse_args()
    model = parse_model(tomllib.loads(args.model.read_text(encoding="utf-8")))
    setters = [r.code for r in model.rules if r.set_class is not None]
    names = ["engine", "ceiling (every rule)"] + [f"  without {code}" for code in setters] + ["  without any set rule"]
    table: dict[str, list[np.ndarray]] = {name: [] for name in names}
    first: dict[str, list[float]] = {"engine": [], "oracle": []}
    for seed in (int(s) for s in args.seeds.split(",")):
        cycles = evaluate.simulate(model, entities=args.entities, cycles=args.cycles, seed=seed)
        truth = world.generate(model, args.entities, seed)
        prior = ceiling.fit_prior(model, seed=ceiling.PRIOR_SEED + (seed == ceiling.PRIOR_SEED))
        counts = [c.counts for c in cycles]
        table["engine"].append(np.array([c.expected_worst for c in cycles]))
        every = replay(model, truth, prior, counts, seed, 0)
        assert np.allclose(every, [c.ceiling_worst for c in cycles])  # the evaluation's own figures
        table["ceiling (every rule)"].append(every)
        for n, code in enumerate(setters):
            fewer = replace(model, rules=tuple(r for r in model.rules if r.code != code))
            table[f"  without {code}"].append(replay(fewer, truth, prior, counts, seed, 2 + n))
        table["  without any set rule"].append(replay(model, truth, prior, counts, seed, 1, set_rules=False))
        engine = matrix.classify(model, truth.values).classes
        first["engine"].append(over_the_draw(engine, model, truth.propensity))
        oracle = ceiling.Oracle(model, truth.values, prior).classify(np.asarray(counts[0]))
        first["oracle"].append(over_the_draw(oracle, model, truth.propensity))
        print(f"seed {seed}: " + "; ".join(f"{n.strip()} {fmt(v[-1])}" for n, v in table.items()), flush=True)
    print(f"\n{args.entities} entities, seeds {args.seeds}, expected D/E rate by cycle (mean over the seeds):")
    for name, rows in table.items():
        print(f"{name:<32} {fmt(np.mean(rows, axis=0))}")
    print(
        "cycle 1 expected over the draw: engine "
        f"{100 * np.mean(first['engine']):.1f} %, oracle {100 * np.mean(first['oracle']):.1f} %"
    )


def fmt(values: np.ndarray) -> str:
    return ", ".join(f"{100 * v:.1f}" for v in values) + " %"


if __name__ == "__main__":
    main()
