"""Benchmark: a Qingdao-scale draw on SQLite, end to end, beside its floor.

    uv run python benchmarks/bench_draw.py [--entities 1081742] [--inspectors 26520] [--repeat 3] [--keep DIR]

Phases, each in a fresh process so each peak-memory figure is its own:

1. ``fill``  — a migrated SQLite database filled directly with sqlite3 (fast, not what we
   measure): one department with a city unit, 10 district units and 100 town units, one item
   needing qualification SP, N entities (risk mix A 30 / B 40 / C 20 / D 7 / E 3 %) and M
   inspectors; the plan (ratios A 0.03, B 0.05, C 0.10, D 1, E 1; teams of 2) added through
   ``services.plans.add_plan``. The file is copied so the draw and the floor each get one.
2. ``draw``  — ``services.draws.write.draw_plan`` of the firing announced a day ahead (at fill
   time, untimed): read the pool and inspectors with raw SQL, ``run_draw``, write draw + inspections + assignments + outbox rows in one transaction.
   Timed end to end; then the output rows are dumped (untimed) for the floor.
3. ``floor`` — the issue's floor: stdlib sqlite3 with its defaults on a fresh copy: read
   ``(key, stratum)`` of the pool, SHA-256 of each key, insert the very rows the draw wrote
   (inspections, assignments, outbox, stored inputs) in one transaction. ``floor_same`` does
   the same on a connection set up as ours is (the pragmas Tortoise applies: foreign keys on,
   ``synchronous``; and the page cache the draw asks for its write).
4. ``verify`` — export the bundle and verify it (``domain.bundle``), timed against the draw's
   selection time (``run_draw`` on the same inputs).

Draw and floors alternate ``--repeat`` times (the machine may be shared; the best of each is
compared, and the CPU times beside). Prints one JSON line per phase and a summary; the headline
ratio is draw / ``floor``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import pickle
import platform
import random
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from hashlib import sha256
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ZONE = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
DISTRICTS = ["370202", "370203", "370211", "370212", "370213", "370214", "370215", "370281", "370283", "370285"]
RISK_MIX = "A" * 30 + "B" * 40 + "C" * 20 + "D" * 7 + "E" * 3
PLAN = """\
code = "QD-BENCH"
name = "青岛市双随机抽查（基准）"
departments = ["SCJG"]
items = ["SCJG-SP-01"]

[ratios]
A = "0.03"
B = "0.05"
C = "0.10"
D = "1"
E = "1"

[team]
size = 2

[rotation]
entity_days = 365
inspector_days = 730

[schedule]
cron = "0 9 1 * *"
"""


def cpu_seconds() -> float:
    """User + system CPU time of this process, all threads (less sensitive to a busy machine)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def emit(phase: str, **figures) -> None:
    print(json.dumps({"phase": phase, **figures, "peak_mb": round(peak_mb(), 1)}), flush=True)


class Clock:
    def now(self) -> datetime:
        return NOW


class DayBefore:
    """When the plan's firing is announced: a day ahead, so the timed draw is on schedule."""

    def now(self) -> datetime:
        return NOW - timedelta(days=1)


def settings_for(path: Path):
    from core.settings import Settings

    return Settings(data_dir=path.parent, database_url=f"sqlite://{path}")


# --- fill ---------------------------------------------------------------------------------------


def towns() -> list[str]:
    return [f"{d}{t:03d}" for d in DISTRICTS for t in range(1, 11)]


async def migrate(path: Path) -> None:
    from core import db

    async with db.opened(settings_for(path)):
        pass


async def add_plan(path: Path, plan_file: Path) -> None:
    from core import db
    from services import plans

    async with db.opened(settings_for(path), migrate=False):
        await plans.add_plan(plan_file, Clock())
        from services.draws.announce import announce  # lazy: benchmark phases load only what they time

        await announce("QD-BENCH", NOW, clock=DayBefore(), zone=ZONE)


def fill(path: Path, n_entities: int, n_inspectors: int, seed: int = 20261201) -> None:
    rnd = random.Random(seed)
    asyncio.run(migrate(path))
    con = sqlite3.connect(path)
    con.execute("PRAGMA journal_mode=WAL")
    now = NOW.isoformat(" ")
    with con:
        con.execute(
            "INSERT INTO department (id, code, name, level, division_code) "
            "VALUES (1, 'SCJG', '市场监督管理局', 'city', '370200')"
        )
        units = [(1, 1, "青岛市市场监管执法支队", "3702")]
        units += [(2 + i, 1, f"{d}市场监管局", d) for i, d in enumerate(DISTRICTS)]
        units += [(12 + i, 1, f"{t}市场监管所", t) for i, t in enumerate(towns())]
        con.executemany("INSERT INTO unit (id, department_id, name, jurisdiction) VALUES (?, ?, ?, ?)", units)
        con.execute(
            "INSERT INTO item (code, name, department_id, legal_basis, target_kinds, method, qualifications, "
            "content_hash) VALUES ('SCJG-SP-01', '食品经营许可情况检查', 1, '', '[\"enterprise\"]', '', '[\"SP\"]', '')"
        )
        all_towns = towns()

        def entities():
            for i in range(n_entities):
                town = all_towns[i % len(all_towns)]
                yield (
                    f"9137{i:013d}X",
                    f"青岛市测试{i}号有限公司",
                    "enterprise",
                    town,
                    f"青岛市测试路{i}号",
                    "餐饮",
                    RISK_MIX[rnd.randrange(100)],
                    None,
                    None,
                    None,
                    "active",
                    "",
                    now,
                )

        con.executemany(
            "INSERT INTO entity (uscc, name, kind, division_code, address, industry, risk_class, mobile, lat, lon, "
            "status, content_hash, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            entities(),
        )

        def inspectors():
            for i in range(n_inspectors):
                share = i % 10
                unit = 1 if share == 0 else (2 + i % 10 if share < 5 else 12 + i % 100)
                yield (f"QD{i:08d}", f"检查员{i}", 1, unit, '["SP"]', "", None, "2030-01-01", "active", "", now)

        con.executemany(
            "INSERT INTO inspector (cert_no, name, department_id, unit_id, qualifications, expertise, mobile, "
            "cert_expiry, status, content_hash, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            inspectors(),
        )
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    plan_file = path.parent / "plan.toml"
    plan_file.write_text(PLAN, encoding="utf-8")
    asyncio.run(add_plan(path, plan_file))


# --- draw ---------------------------------------------------------------------------------------

OUTPUT_TABLES = ("firing", "firing_secret", "draw", "draw_input", "inspection", "assignment", "outbox")


class Phases(logging.Handler):
    """Collects the draw service's debug timing of its phases."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.phases: dict[str, float] = {}

    def emit(self, record: logging.LogRecord) -> None:
        if record.msg == "%s: %s %.3fs":
            self.phases[record.args[1]] = round(record.args[2], 3)


async def run_draw_phase(path: Path, dump: Path) -> None:
    from core import db
    from services.draws import write

    phases = Phases()
    logger = logging.getLogger("services.draws")
    logger.setLevel(logging.DEBUG)
    logger.addHandler(phases)
    async with db.opened(settings_for(path), migrate=False):
        t0, c0 = time.perf_counter(), cpu_seconds()
        result = await write.draw_plan("QD-BENCH", "bench-beacon", clock=Clock(), zone=ZONE)
        elapsed, cpu = time.perf_counter() - t0, cpu_seconds() - c0
    emit(
        "draw",
        seconds=round(elapsed, 3),
        cpu_seconds=round(cpu, 3),
        draw_ref=result.draw_ref,
        pool=result.pool,
        inspectors=result.inspectors,
        inspections=result.inspections,
        assignments=result.assignments,
        unstaffable=result.unstaffable,
        phases=phases.phases,
    )
    # the rows it wrote, for the floor (untimed)
    con = sqlite3.connect(path)
    rows = {}
    for table in OUTPUT_TABLES:
        cur = con.execute(f'SELECT * FROM "{table}"')
        cols = [d[0] for d in cur.description]
        rows[table] = (cols, cur.fetchall())
    con.close()
    dump.write_bytes(pickle.dumps(rows))


# --- floor --------------------------------------------------------------------------------------


async def our_pragmas(path: Path) -> dict:
    """The pragmas of our own connection as Tortoise opens it (the database URL's included)."""
    from core import db

    async with db.opened(settings_for(path), migrate=False):
        return dict(db.conn().pragmas)


def run_floor_phase(path: Path, dump: Path, same: bool) -> None:
    rows = pickle.loads(dump.read_bytes())
    pragmas = {}
    if same:  # the connection as ours: Tortoise's pragmas, and the page cache the draw's write uses
        from services.draws.write import WRITE_CACHE_KIB

        pragmas = {**asyncio.run(our_pragmas(path)), "cache_size": -WRITE_CACHE_KIB}
    t0, c0 = time.perf_counter(), cpu_seconds()
    con = sqlite3.connect(path, isolation_level=None)
    for name, value in pragmas.items():
        con.execute(f"PRAGMA {name}={value}")
    pool = con.execute("SELECT uscc, risk_class FROM entity WHERE status = 'active' ORDER BY uscc").fetchall()
    hashed = [sha256(k.encode()).digest() for k, _ in pool]
    t_read = time.perf_counter() - t0
    con.execute("BEGIN")
    for table in OUTPUT_TABLES:  # parents first
        cols, data = rows[table]
        names = ", ".join(f'"{c}"' for c in cols)
        # the firing was announced at fill time: the draw updates it (status, seed), so does the floor
        verb = "INSERT OR REPLACE" if table in ("firing", "firing_secret") else "INSERT"
        con.executemany(f'{verb} INTO "{table}" ({names}) VALUES ({", ".join("?" * len(cols))})', data)
    con.execute("COMMIT")
    elapsed, cpu = time.perf_counter() - t0, cpu_seconds() - c0
    con.close()
    emit(
        "floor_same" if same else "floor",
        seconds=round(elapsed, 3),
        cpu_seconds=round(cpu, 3),
        read_and_hash=round(t_read, 3),
        pool=len(pool),
        hashed=len(hashed),
        rows={t: len(rows[t][1]) for t in rows},
        pragmas=pragmas,
    )


# --- verify ---------------------------------------------------------------------------------------


async def run_verify_phase(path: Path, out: Path) -> None:
    from core import db
    from domain import bundle
    from domain import draw as engine
    from models.draws import Draw, FiringSecret
    from services.draws import export, stored

    async with db.opened(settings_for(path), migrate=False):
        row = await Draw.get(plan__code="QD-BENCH")
        secret_row = await FiringSecret.get(firing_id=row.firing_id)
        secret = bytes(secret_row.secret)
        salt_key = bytes(secret_row.salt_key) if secret_row.salt_key is not None else None
        inputs = await stored.stored_inputs(row, secret, salt_key=salt_key)
        t0 = time.perf_counter()
        engine.run_draw(inputs)
        drawn = time.perf_counter() - t0
        t0 = time.perf_counter()  # the entity selection alone: pool bytes, digests, seed, ranks, quotas
        with engine.gc_paused():
            pool_bytes = engine.pool_tsv(inputs.pool)
            published = engine.published_pool_tsv(inputs.pool, salt_key)  # v2: the class commitments
            seed = engine.derive_seed(
                secret,
                inputs.beacon,
                engine.H(published),
                engine.H(engine.inspectors_tsv(inputs.inspectors)),
                inputs.draw_ref,
                inputs.protocol,
            )
            engine.select(seed, engine.parse_pool_tsv(pool_bytes), inputs.ratios)
        selection = time.perf_counter() - t0
        disclosure = bundle.audit_disclosure(inputs) if salt_key is not None else None
        del inputs, pool_bytes, published
        t0 = time.perf_counter()
        await export.export(row.draw_ref, out, clock=Clock())
        exported = time.perf_counter() - t0
    t0 = time.perf_counter()
    files = {p.name: p.read_bytes() for p in out.iterdir()}
    lines = bundle.verify(files)
    verified = time.perf_counter() - t0
    audited, audit_ok = None, None
    if disclosure is not None:  # v2: the oversight body's check, with every class
        t0 = time.perf_counter()
        audit_lines = bundle.verify(files, disclosure)
        audited, audit_ok = round(time.perf_counter() - t0, 3), all(line.ok for line in audit_lines)
    emit(
        "verify",
        run_draw_seconds=round(drawn, 3),
        selection_seconds=round(selection, 3),
        export_seconds=round(exported, 3),
        verify_seconds=round(verified, 3),
        ok=all(line.ok for line in lines),
        checks=len(lines),
        protocol=json.loads(files["draw.json"])["protocol"],
        audit_verify_seconds=audited,
        audit_ok=audit_ok,
        ratio_to_run_draw=round(verified / drawn, 2),
        ratio_to_selection=round(verified / selection, 2),
    )


# --- driver ---------------------------------------------------------------------------------------


def child(phase: str, *args: str) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--phase", phase, *args], check=True, capture_output=True, text=True, cwd=ROOT
    )
    sys.stderr.write(out.stderr)
    line = [x for x in out.stdout.splitlines() if x.startswith("{")][-1]
    print(line, flush=True)
    return json.loads(line)


def machine() -> dict:
    mem_kb = next(int(x.split()[1]) for x in open("/proc/meminfo") if x.startswith("MemTotal"))
    cpu = next((x.split(":", 1)[1].strip() for x in open("/proc/cpuinfo") if x.startswith("model name")), "?")
    return {
        "nproc": os.cpu_count(),
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "cpu": cpu,
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--entities", type=int, default=1_081_742)
    ap.add_argument("--inspectors", type=int, default=26_520)
    ap.add_argument("--keep", type=Path, help="work directory to keep (default: a temporary one)")
    ap.add_argument("--repeat", type=int, default=3, help="draw/floor pairs to run (the best of each counts)")
    ap.add_argument("--phase", choices=["fill", "draw", "floor", "floor_same", "verify"], help=argparse.SUPPRESS)
    ap.add_argument("paths", nargs="*", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.phase == "fill":
        t0 = time.perf_counter()
        fill(Path(args.paths[0]), args.entities, args.inspectors)
        emit("fill", seconds=round(time.perf_counter() - t0, 1))
        return 0
    if args.phase == "draw":
        asyncio.run(run_draw_phase(Path(args.paths[0]), Path(args.paths[1])))
        return 0
    if args.phase in ("floor", "floor_same"):
        run_floor_phase(Path(args.paths[0]), Path(args.paths[1]), same=args.phase == "floor_same")
        return 0
    if args.phase == "verify":
        asyncio.run(run_verify_phase(Path(args.paths[0]), Path(args.paths[1])))
        return 0

    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-draw-"))
    work.mkdir(parents=True, exist_ok=True)
    base, ours, floor_db = work / "base.sqlite3", work / "draw.sqlite3", work / "floor.sqlite3"
    dump = work / "rows.pickle"
    print(
        json.dumps(
            {
                "machine": machine(),
                "entities": args.entities,
                "inspectors": args.inspectors,
                "load_before": os.getloadavg()[0],
            }
        ),
        flush=True,
    )
    fresh(base)
    child("fill", str(base), "--entities", str(args.entities), "--inspectors", str(args.inspectors))
    draws_, floors, same = [], [], []
    for _ in range(args.repeat):  # alternate, so all see the same machine; report the best of each
        fresh(ours)
        shutil.copy(base, ours)
        draws_.append(child("draw", str(ours), str(dump)))
        for phase, out in (("floor", floors), ("floor_same", same)):
            fresh(floor_db)
            shutil.copy(base, floor_db)
            out.append(child(phase, str(floor_db), str(dump)))
    checked = child("verify", str(ours), str(work / "bundle"))

    def best(runs: list[dict], key: str = "seconds") -> float:
        return min(r[key] for r in runs)

    summary = {
        "draw_seconds": [d["seconds"] for d in draws_],
        "floor_seconds": [f["seconds"] for f in floors],
        "floor_same_seconds": [f["seconds"] for f in same],
        "ratio": round(best(draws_) / best(floors), 2),  # the issue's: against stdlib sqlite3's defaults
        "ratio_same": round(best(draws_) / best(same), 2),
        "cpu_ratio": round(best(draws_, "cpu_seconds") / best(floors, "cpu_seconds"), 2),
        "cpu_ratio_same": round(best(draws_, "cpu_seconds") / best(same, "cpu_seconds"), 2),
        "best_draw_phases": min(draws_, key=lambda d: d["seconds"])["phases"],
        "draw_peak_mb": max(d["peak_mb"] for d in draws_),
        "run_draw_seconds": checked["run_draw_seconds"],
        "selection_seconds": checked["selection_seconds"],
        "verify_seconds": checked["verify_seconds"],
        "verify_to_run_draw": checked["ratio_to_run_draw"],
        "verify_to_selection": checked["ratio_to_selection"],
        "verify_ok": checked["ok"],
        "load_after": os.getloadavg()[0],
    }
    print(json.dumps({"summary": summary}), flush=True)
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def fresh(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


if __name__ == "__main__":
    sys.exit(main())
