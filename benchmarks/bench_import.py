"""Import benchmark: the Qingdao-scale entity file, end to end, beside the floor.

    uv run python benchmarks/bench_import.py [--entities N] [--repeat R] [--seed S]

1. generates ``entities.csv`` (N rows, default 1,081,742; kept under benchmarks/out/ for reuse);
2. **import**: a fresh SQLite database migrated by our migrations, then ``import_file`` timed
   from opening the file to the commit (encoding detection, validation, hashing, spooling,
   writing), in a subprocess of its own so its peak memory (``ru_maxrss``) is the import's;
3. **floor**: the very rows the import wrote, read back into memory (not timed), then stdlib
   ``sqlite3`` ``executemany`` into the same table of another fresh migrated database, with the
   connection settings Tortoise uses, in one transaction;
4. steps 2–3 alternate R times: the minimum of each is reported, with every round's ratio, the
   CPU times (``time.process_time``, all threads) and the load average, because a shared
   machine makes wall-clock times noisy;
5. **re-import** of the same file into the imported database (every row unchanged).

Goals (issue 2): import ≤ 3 × floor, peak memory ≤ 1 GB.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core import db  # noqa: E402
from core.settings import Settings  # noqa: E402
from importers import city  # noqa: E402
from importers.write import TARGETS  # noqa: E402

OUT = ROOT / "benchmarks" / "out" / "import"
# The pragmas Tortoise's SQLite client sets on every connection (tortoise/backends/sqlite/client.py).
TORTOISE_PRAGMAS = ("journal_mode=WAL", "journal_size_limit=16384", "foreign_keys=ON")


# --- measurements, each run in its own process --------------------------------------------------


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


class PhaseTimer:
    """A progress "bar" that only notes how long each phase took."""

    phases: dict[str, float] = {}

    def __init__(self, phase: str, total) -> None:
        self.phase, self.start = phase, time.perf_counter()

    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        PhaseTimer.phases[self.phase] = time.perf_counter() - self.start


async def measure_import(csv_path: Path, db_path: Path, fresh: bool) -> dict:
    from importers.run import import_file

    if fresh:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db_path}{suffix}").unlink(missing_ok=True)
    settings = Settings(database_url=f"sqlite://{db_path}")
    async with db.opened(settings):
        start, cpu = time.perf_counter(), time.process_time()
        result = await import_file("entities", csv_path, now=datetime.now(UTC), progress=PhaseTimer)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    assert result.ok, (result.problems, result.errors[:5])
    return {
        "seconds": seconds,
        "cpu": cpu,
        "load": os.getloadavg()[0],
        "peak_mb": peak_mb(),
        "phases": PhaseTimer.phases,
        "rows": result.rows,
        "inserted": result.inserted,
        "updated": result.updated,
        "unchanged": result.unchanged,
    }


async def measure_floor(source: Path, db_path: Path) -> dict:
    columns = TARGETS["entities"].columns
    names = ", ".join(f'"{c}"' for c in columns)
    with sqlite3.connect(source) as read:
        rows = read.execute(f'SELECT {names} FROM "entity" ORDER BY "id"').fetchall()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db_path}{suffix}").unlink(missing_ok=True)
    async with db.opened(Settings(database_url=f"sqlite://{db_path}")):
        pass  # the same schema, from the same migrations
    conn = sqlite3.connect(db_path, isolation_level=None)
    for pragma in TORTOISE_PRAGMAS:
        conn.execute(f"PRAGMA {pragma}")
    sql = f'INSERT INTO "entity" ({names}) VALUES ({", ".join("?" * len(columns))})'
    start, cpu = time.perf_counter(), time.process_time()
    conn.execute("BEGIN")
    conn.executemany(sql, rows)
    conn.execute("COMMIT")
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    conn.close()
    return {"seconds": seconds, "cpu": cpu, "load": os.getloadavg()[0], "rows": len(rows), "peak_mb": peak_mb()}


def run_measurement(*args: str) -> dict:
    """Run one measurement in a fresh interpreter; it prints one JSON line."""
    out = subprocess.run(
        [sys.executable, __file__, "--measure", *args], check=True, capture_output=True, text=True, cwd=ROOT
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


# --- the report ------------------------------------------------------------------------------------


def machine() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        free = subprocess.run(["free", "-h"], capture_output=True, text=True).stdout.splitlines()[1].split()[1]
    except (OSError, IndexError):
        free = "unknown"
    return {
        "nproc": os.cpu_count(),
        "memory": free,
        "cpu": cpu,
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entities", type=int, default=city.QINGDAO_ENTITIES)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--measure", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.measure:
        kind, *paths = args.measure
        if kind == "import":
            found = asyncio.run(measure_import(Path(paths[0]), Path(paths[1]), fresh=True))
        elif kind == "reimport":
            found = asyncio.run(measure_import(Path(paths[0]), Path(paths[1]), fresh=False))
        else:
            found = asyncio.run(measure_floor(Path(paths[0]), Path(paths[1])))
        print(json.dumps(found))
        return 0

    OUT.mkdir(parents=True, exist_ok=True)
    csv_path = OUT / f"entities-{args.entities}-{args.seed}.csv"
    if not csv_path.exists():
        start = time.perf_counter()
        city.generate_entities(csv_path.with_suffix(".tmp"), args.entities, args.seed).rename(csv_path)
        print(f"generated {csv_path.name} in {time.perf_counter() - start:.1f} s", flush=True)
    imported, floor_db = OUT / "import.sqlite3", OUT / "floor.sqlite3"
    imports, floors = [], []
    for round_no in range(1, args.repeat + 1):
        imports.append(run_measurement("import", str(csv_path), str(imported)))
        floors.append(run_measurement("floor", str(imported), str(floor_db)))
        i, f = imports[-1], floors[-1]
        print(
            f"round {round_no}: import {i['seconds']:.1f} s (cpu {i['cpu']:.1f} s; validate "
            f"{i['phases'].get('validate', 0):.1f} s, write {i['phases'].get('write', 0):.1f} s), floor {f['seconds']:.1f} s "
            f"(cpu {f['cpu']:.1f} s), ratio {i['seconds'] / f['seconds']:.2f}, import peak {i['peak_mb']:.0f} MB, "
            f"load {i['load']:.1f}/{f['load']:.1f}",
            flush=True,
        )
    again = run_measurement("reimport", str(csv_path), str(imported))

    best_import = min(imports, key=lambda m: m["seconds"])
    best_floor = min(floors, key=lambda m: m["seconds"])
    ratio = best_import["seconds"] / best_floor["seconds"]
    peak = max(m["peak_mb"] for m in imports + [again])
    assert best_import["inserted"] == args.entities and again["unchanged"] == args.entities
    report = {
        "entities": args.entities,
        "file_mb": round(csv_path.stat().st_size / 2**20, 1),
        "repeat": args.repeat,
        "import_s": round(best_import["seconds"], 1),
        "import_validate_s": round(best_import["phases"].get("validate", 0), 1),
        "import_write_s": round(best_import["phases"].get("write", 0), 1),
        "floor_s": round(best_floor["seconds"], 1),
        "ratio": round(ratio, 2),
        "import_cpu_s": round(min(m["cpu"] for m in imports), 1),
        "floor_cpu_s": round(min(m["cpu"] for m in floors), 1),
        "cpu_ratio": round(min(m["cpu"] for m in imports) / min(m["cpu"] for m in floors), 2),
        "round_ratios": [round(i["seconds"] / f["seconds"], 2) for i, f in zip(imports, floors)],
        "reimport_s": round(again["seconds"], 1),
        "reimport_peak_mb": round(again["peak_mb"]),
        "import_peak_mb": round(max(m["peak_mb"] for m in imports)),
        "peak_mb": round(peak),
        "all_import_s": [round(m["seconds"], 1) for m in imports],
        "all_floor_s": [round(m["seconds"], 1) for m in floors],
        "goal_ratio_met": ratio <= 3,
        "goal_memory_met": peak <= 1024,
        "machine": machine(),
    }
    print(json.dumps(report, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
