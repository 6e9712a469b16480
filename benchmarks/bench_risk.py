"""Risk engine benchmark: classify a directory end to end beside a numpy + sqlite3 floor; train on 200,000 results.

    uv run python benchmarks/bench_risk.py [--entities N] [--repeat R] [--train N]

1. builds (once, kept under benchmarks/out/risk/) a migrated SQLite database with N active entities
   (default 1,081,742: Qingdao) and one observation of each of the example model's 39 imported indicators
   per entity (``services.risk.world``), and approves ``examples/risk/shandong-a-e.toml``;
2. **classify**: ``services.risk.classify.classify_directory`` in a process of its own, read to
   write: every entity's latest values, the facts, the vectorised classification with reasons, the
   assessments replaced, the changed classes written to ``entity``, the run recorded;
3. **floor**: stdlib ``sqlite3`` reading the same indicator rows, numpy building the matrix, one
   matrix product and the banding, and ``executemany`` writing every entity's class back;
4. steps 2–3 alternate R times, every entity's class reset to C before each (not timed): the
   minimum of each is reported, with the CPU times and the load average (a shared machine);
5. **train**: ``services.risk.learn.fit`` (calibrated, direction-constrained logistic regression)
   on ``--train`` results (default 200,000) drawn from the generated world;
6. **history**: the indicators counted from published results (``services.risk.history``) for every
   entity from ``--train`` synthetic published results (the benchmark database has none, so step 2
   reads an empty result set: this is the compute those results add).

Goals (issue 15): classify ≤ 3 × floor; training on 200,000 results < 1 minute.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sqlite3
import subprocess
import sys
import time
import tomllib
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core import db  # noqa: E402
from core.settings import Settings  # noqa: E402
from domain.risk.model import parse_model  # noqa: E402
from services.risk import classify, history, learn, matrix, versions, world  # noqa: E402

OUT = ROOT / "benchmarks" / "out" / "risk"
MODEL_FILE = ROOT / "examples" / "risk" / "shandong-a-e.toml"
QINGDAO = 1_081_742
CHUNK = 100_000
TORTOISE_PRAGMAS = ("journal_mode=WAL", "journal_size_limit=16384", "foreign_keys=ON")
NOW = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)


def model():
    return parse_model(tomllib.loads(MODEL_FILE.read_text(encoding="utf-8")))


def build(path: Path, entities: int) -> None:
    if path.exists():
        return
    tmp = path.with_suffix(".building")
    tmp.unlink(missing_ok=True)

    async def migrate():
        async with db.opened(Settings(database_url=f"sqlite://{tmp}")):
            m = model()
            await versions.propose(m, actor="bench", now=NOW)
            await versions.decide(m.name, approve=True, actor="bench", now=NOW)

    asyncio.run(migrate())
    m = model()
    conn = sqlite3.connect(tmp)
    day = date(2026, 11, 30).isoformat()
    stamp = NOW.isoformat(" ")
    with conn:
        for start in range(0, entities, CHUNK):
            n = min(CHUNK, entities - start)
            conn.executemany(
                'INSERT INTO entity ("id", uscc, name, kind, division_code, address, industry, risk_class, '
                "status, content_hash, updated_at) VALUES (?, ?, ?, 'enterprise', '370202', '', '', 'C', 'active', '', ?)",
                [(start + i + 1, f"B{start + i:017d}", f"企业{start + i}", stamp) for i in range(n)],
            )
            truth = world.generate(m, n, seed=start)
            ids = np.arange(start + 1, start + n + 1)
            conn.executemany(
                'INSERT INTO indicator_value (entity_id, indicator, "value", observed_on) VALUES (?, ?, ?, ?)',
                (
                    (int(ids[i]), ind.code, float(truth.values[i, j]), day)
                    for i in range(n)
                    for j, ind in enumerate(m.indicators)
                    if not ind.derived  # counted from published results by the engine, never imported
                ),
            )
            print(f"  built {start + n:,} entities", file=sys.stderr)
    conn.close()
    tmp.rename(path)


def reset(path: Path) -> None:
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("UPDATE entity SET risk_class = 'C'")
        conn.execute("DELETE FROM risk_assessment")
    conn.close()


def run_classify(path: Path) -> dict:
    async def go():
        async with db.opened(Settings(database_url=f"sqlite://{path}"), migrate=False):
            t0, c0 = time.perf_counter(), time.process_time()
            summary = await classify.classify_directory(NOW, force=True, reason="bench")
            return {"seconds": time.perf_counter() - t0, "cpu": time.process_time() - c0, "entities": summary.entities}

    return asyncio.run(go())


def run_floor(path: Path) -> dict:
    m = model()
    column = {c: j for j, c in enumerate(m.codes)}
    t0, c0 = time.perf_counter(), time.process_time()
    conn = sqlite3.connect(path)
    for pragma in TORTOISE_PRAGMAS:
        conn.execute(f"PRAGMA {pragma}")
    ids = np.array([r[0] for r in conn.execute("SELECT id FROM entity WHERE status = 'active' ORDER BY id")])
    values = np.full((len(ids), len(m.codes)), np.nan)
    cursor = conn.execute('SELECT entity_id, indicator, "value" FROM indicator_value')
    while rows := cursor.fetchmany(500_000):  # streamed, as ours pages: 40 million rows never in memory at once
        ent = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        col = np.fromiter((column[r[1]] for r in rows), dtype=np.int64, count=len(rows))
        val = np.fromiter((r[2] for r in rows), dtype=float, count=len(rows))
        values[np.searchsorted(ids, ent), col] = val
    values[:, [j for j, ind in enumerate(m.indicators) if ind.derived]] = 0.0  # no published result here
    scores = matrix.scores(m, matrix.normalise(m, values))  # one matrix product
    classes = np.asarray(m.classes)[np.searchsorted(np.asarray(m.bands), scores, side="right") - 1]
    with conn:
        conn.executemany("UPDATE entity SET risk_class = ? WHERE id = ?", zip(classes.tolist(), ids.tolist()))
    conn.close()
    return {"seconds": time.perf_counter() - t0, "cpu": time.process_time() - c0, "entities": len(ids)}


def run_history(n: int, entities: int) -> dict:
    """The entity-level part the indicators counted from results add to a classification: ``n``
    published results over ``entities`` entities, counted for each indicator and the last-problem fact."""
    m = model()
    rng = np.random.default_rng(13)
    results = history.Results.of(
        rng.integers(1, entities + 1, n), rng.integers(0, 730, n) + NOW.date().toordinal() - 730, rng.random(n) < 0.3
    )
    ids = np.arange(1, entities + 1, dtype=np.int64)
    values = np.zeros((entities, len(m.codes)))
    t0, c0 = time.perf_counter(), time.process_time()
    history.fill(m, values, results, ids, NOW.date().toordinal() + 1)
    history.last_problem(results, ids)
    return {"seconds": time.perf_counter() - t0, "cpu": time.process_time() - c0, "results": n, "entities": entities}


def run_train(n: int) -> dict:
    m = model()
    truth = world.generate(m, n, seed=11)
    y = (np.random.default_rng(11).random(n) < truth.propensity).astype(int)
    t0, c0 = time.perf_counter(), time.process_time()
    learned = learn.fit(m, truth.values, y, name="bench")
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    auc = learn.measure(learned, truth.values, y).auc
    return {"seconds": seconds, "cpu": cpu, "results": n, "auc": auc}


def child(role: str, *args: str) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, f"--role={role}", *args], capture_output=True, text=True, check=True, cwd=ROOT
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entities", type=int, default=QINGDAO)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--train", type=int, default=200_000)
    parser.add_argument("--role", default="")
    parser.add_argument("--db", default="")
    args = parser.parse_args()
    if args.role == "classify":
        print(json.dumps(run_classify(Path(args.db))))
        return
    if args.role == "floor":
        print(json.dumps(run_floor(Path(args.db))))
        return
    if args.role == "train":
        print(json.dumps(run_train(args.train)))
        return
    if args.role == "history":
        print(json.dumps(run_history(args.train, args.entities)))
        return
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"risk-{args.entities}.sqlite3"
    t0 = time.perf_counter()
    build(path, args.entities)
    print(f"database ready ({time.perf_counter() - t0:.0f} s): {path}", file=sys.stderr)
    rounds = []
    for _ in range(args.repeat):
        reset(path)
        ours = child("classify", f"--db={path}")
        reset(path)
        floor = child("floor", f"--db={path}")
        rounds.append(
            {"classify": ours, "floor": floor, "ratio": ours["seconds"] / floor["seconds"], "load": os.getloadavg()}
        )
        print(json.dumps(rounds[-1]), file=sys.stderr)
    train = child("train", f"--train={args.train}")
    counted = child("history", f"--train={args.train}", f"--entities={args.entities}")
    result = {
        "entities": args.entities,
        "indicators": sum(not i.derived for i in model().indicators),
        "derived_indicators": len(model().derived),
        "classify_min": min(r["classify"]["seconds"] for r in rounds),
        "floor_min": min(r["floor"]["seconds"] for r in rounds),
        "rounds": rounds,
        "train": train,
        "history": counted,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load_end": os.getloadavg()},
    }
    result["ratio_of_minimums"] = result["classify_min"] / result["floor_min"]
    (ROOT / "benchmarks" / "results").mkdir(exist_ok=True)
    (ROOT / "benchmarks" / "results" / "risk.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "rounds"}, indent=2))


if __name__ == "__main__":
    main()
