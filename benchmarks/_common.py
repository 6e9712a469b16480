"""Helpers the benchmark scripts share: child processes speaking JSON lines, free ports, the
machine's description, CPU time, resident memory and percentiles.

The scripts run as ``python benchmarks/<script>.py``, so this directory is on ``sys.path`` and
they import it as ``_common``.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import socket
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
#: The PostgreSQL server's admin URL for ``--db postgres`` (a fresh database is made there per run).
PG_ADMIN = os.environ.get("INSPECTBOT_BENCH_PG", "postgres://postgres@127.0.0.1:5432/postgres")


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def die_with_parent() -> None:
    """``preexec_fn`` for a benchmark's child processes: killed when the script dies, however it
    dies (``PR_SET_PDEATHSIG``), so an interrupted run leaves no server holding a port or a core."""
    try:
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)
    except Exception:  # not Linux: the script's own clean-up is all there is
        pass


class Child:
    """A child process of the running benchmark script (its ``_serve``, ``_load``, … roles),
    speaking JSON lines on stdout. ``script`` defaults to the script being run."""

    def __init__(self, *argv: str, script: str | None = None, env: dict | None = None, cwd=None) -> None:
        script = script or sys.modules["__main__"].__file__
        self.proc = subprocess.Popen(
            [sys.executable, script, *argv],
            stdout=subprocess.PIPE,
            text=True,
            cwd=cwd or ROOT,
            env=env,
            preexec_fn=die_with_parent,
        )

    def line(self) -> dict:
        text = self.proc.stdout.readline()
        if not text:
            raise RuntimeError(f"child {self.proc.args[2:]} ended: exit {self.proc.wait()}")
        return json.loads(text)

    def stop(self) -> dict:
        import signal

        self.proc.send_signal(signal.SIGTERM)
        out = self.line()
        self.proc.wait(timeout=30)
        return out


def run_role(args, roles: dict, orchestrate) -> int:
    """The script's entry: a child role (``args.role``, an async function of ``args``) or the orchestrator."""
    import asyncio

    if args.role in roles:
        asyncio.run(roles[args.role](args))
        return 0
    return orchestrate(args)


def run_load(plan, part: str, port: int, connections: int) -> dict:
    """One closed-loop run of the script's ``_load`` role over part ``part`` of the requests in ``plan``."""
    client = Child("_load", "--plan", str(plan), "--part", part, "--port", str(port), "--connections", str(connections))
    out = client.line()
    client.proc.wait(timeout=30)
    return out


def measure_hello(plan, port: int, connections: int) -> dict:
    """The hello-world peer (the script's ``_serve hello``): warm-up, then the timed part."""
    server = Child("_serve", "hello", "--port", str(port))
    server.line()
    run_load(plan, "warmup", port, connections)
    figures = run_load(plan, "timed", port, connections)
    figures.update(server.stop())
    return figures


def workspace(keep: str | None, prefix: str) -> tuple[Path, Path]:
    """The run's directory (``--keep DIR``, else a fresh temporary one) and its SQLite file,
    which starts empty (a kept directory's database, WAL and shared memory are removed)."""
    work = Path(keep) if keep else Path(tempfile.mkdtemp(prefix=prefix))
    work.mkdir(parents=True, exist_ok=True)
    path = work / "inspectbot.sqlite3"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return work, path


def emit(phase: str, figures: dict) -> None:
    print(json.dumps({"phase": phase, **figures}, ensure_ascii=False), flush=True)


def machine() -> dict:
    cpu = next(
        (line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
        platform.processor(),
    )
    mem = next((int(line.split()[1]) for line in open("/proc/meminfo") if line.startswith("MemTotal")), 0)
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "mem_gib": round(mem / 2**20, 1),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "load": [round(x, 2) for x in os.getloadavg()],
    }


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def rss_mb(pid: int) -> float:
    """Resident memory of process ``pid`` now (``VmRSS``), in MB; 0 when it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return 0.0


def pct(ordered: list[float], p: float) -> float:
    """The ``p`` quantile of sorted seconds, in milliseconds (0 when there are none)."""
    if not ordered:
        return 0.0
    return round(1000 * ordered[min(len(ordered) - 1, int(p * len(ordered)))], 2)


async def serve_measured(app, port: int, stop, profile: str | None = None) -> dict:
    """Serve ``app`` on ``port`` until ``stop`` is set: print ``{"ready": true}`` once listening,
    optionally cProfile the serving (dumped to ``profile``), and return the CPU the process spent
    meanwhile — user + system, system alone, context switches — and its peak memory."""
    import resource

    from aiohttp import web

    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, HOST, port).start()
    print(json.dumps({"ready": True}), flush=True)
    profiler = None
    if profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    before = resource.getrusage(resource.RUSAGE_SELF)
    await stop.wait()
    after = resource.getrusage(resource.RUSAGE_SELF)
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(profile)
    await runner.cleanup()
    user, system = after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime
    return {
        "server_cpu_s": round(user + system, 2),
        "server_sys_s": round(system, 2),
        "server_switches": after.ru_nvcsw - before.ru_nvcsw + after.ru_nivcsw - before.ru_nivcsw,
        "server_peak_mb": round(after.ru_maxrss / 1024),
    }


async def converse(url: str, conversations: list[list], connections: int, request) -> dict:
    """POST every conversation's messages to ``url`` over ``connections`` keep-alive connections,
    a conversation's next message only after the answer to its previous one (a person answers the
    question they were asked). ``request(message)`` gives ``(body, headers)``. Returns the figures:
    requests, seconds, rate, latency quantiles, statuses and the client's CPU."""
    import asyncio
    import time
    from collections import Counter

    import aiohttp

    queue: asyncio.Queue = asyncio.Queue()
    for i in range(len(conversations)):
        queue.put_nowait((i, 0))
    remaining = sum(len(c) for c in conversations)
    latencies: list[float] = []
    statuses: Counter = Counter()
    done = asyncio.Event()

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal remaining
        while (item := await queue.get()) is not None:
            i, k = item
            body, headers = request(conversations[i][k])
            t = time.perf_counter()
            async with session.post(url, data=body, headers=headers) as resp:
                await resp.read()
                statuses[resp.status] += 1
            latencies.append(time.perf_counter() - t)
            if k + 1 < len(conversations[i]):
                queue.put_nowait((i, k + 1))
            remaining -= 1
            if remaining == 0:
                done.set()

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections)) as session:
        cpu0, t0 = cpu_seconds(), time.perf_counter()
        workers = [asyncio.create_task(worker(session)) for _ in range(connections)]
        await done.wait()
        wall, cpu = time.perf_counter() - t0, cpu_seconds() - cpu0
        for _ in workers:
            queue.put_nowait(None)
        await asyncio.gather(*workers)
    latencies.sort()
    return {
        "requests": len(latencies),
        "seconds": round(wall, 3),
        "rps": round(len(latencies) / wall, 1),
        "p50_ms": pct(latencies, 0.50),
        "p90_ms": pct(latencies, 0.90),
        "p99_ms": pct(latencies, 0.99),
        "max_ms": round(1000 * latencies[-1], 2),
        "statuses": dict(statuses),
        "client_cpu_s": round(cpu, 2),
    }


# --- test data the fan-out benchmarks (and the tests that reuse them) write ----------------------


def context_for(i: int) -> dict:
    """The template context of fan-out message ``i`` (``team_changed.j2``, a recusal notice of
    about 60 characters; its number is in the text as ``QD-BENCH/2026-12-01/<i>``)."""
    return {
        "no": i,
        "draw_ref": "QD-BENCH/2026-12-01",
        "plan": "青岛市双随机抽查（基准）",
        "old": "甲某",
        "new": "乙某",
    }


async def bind_inspectors(
    count: int,
    channel: str,
    address: Callable[[int], str],
    *,
    cert_prefix: str,
    department: str = "SCJG",
    display: Callable[[int], str] = lambda n: f"检查员{n}",
    wecom_userid: Callable[[int], str] | None = None,
) -> list[tuple[int, int]]:
    """``count`` inspectors ``<cert_prefix><n:07d>`` (n = 0 … count-1) of ``department``'s first
    unit, each with a live chat binding on ``channel`` at ``address(n)``, written with bulk
    inserts; returns (inspector id, n) in order of n. The department SCJG and its unit are made
    first when missing (a fresh benchmark database has neither)."""
    from datetime import UTC, date, datetime

    from core import db  # lazy: the scripts put the project on sys.path before they call this

    now = datetime.now(UTC)
    c = db.conn()
    find = db.sql("SELECT id FROM department WHERE code = ?")
    if not await c.execute_query_dict(find, [department]):
        await db.bulk_insert(
            "department", ("code", "name", "level", "division_code"), [(department, "市场监督管理局", "city", "3702")]
        )
        dept = (await c.execute_query_dict(find, [department]))[0]["id"]
        await db.bulk_insert("unit", ("department_id", "name", "jurisdiction"), [(dept, "执法支队", "3702")])
    dept = (await c.execute_query_dict(find, [department]))[0]["id"]
    units = db.sql("SELECT id FROM unit WHERE department_id = ? ORDER BY id")
    unit = (await c.execute_query_dict(units, [dept]))[0]["id"]
    columns = ("cert_no", "name", "department_id", "unit_id", "qualifications", "expertise", "mobile")
    columns += ("cert_expiry", "status", "wecom_userid", "content_hash", "updated_at")
    await db.bulk_insert(
        "inspector",
        columns,
        [
            (f"{cert_prefix}{n:07d}", f"检查员{n}", dept, unit, ["SP"], "", None, date(2030, 1, 1), "active")
            + (wecom_userid(n) if wecom_userid else None, "", now)
            for n in range(count)
        ],
    )
    found = await c.execute_query_dict(
        db.sql("SELECT id, cert_no FROM inspector WHERE cert_no LIKE ? ORDER BY cert_no"), [f"{cert_prefix}%"]
    )
    pairs = [(r["id"], int(r["cert_no"][len(cert_prefix) :])) for r in found]
    columns = ("channel", "address", "role", "inspector_id", "departments", "display_name", "locale", "reachable")
    await db.bulk_insert(
        "chat_binding",
        (*columns, "created_at"),
        [(channel, address(n), "inspector", iid, [], display(n), "zh-CN", True, now) for iid, n in pairs],
    )
    return pairs


# -- the database --------------------------------------------------------------------------------
async def pg_admin(sql: str) -> str:
    """One statement on the PostgreSQL server's admin database (``SHOW …`` returns its value)."""
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN.replace("postgres://", "postgresql://", 1), timeout=5)
    try:
        if sql.startswith("SHOW"):
            return await conn.fetchval(sql)
        await conn.execute(sql)
        return ""
    finally:
        await conn.close()


async def open_database(kind: str, workdir: Path, sqlite_path: Path | None = None):
    """A fresh migrated database (``kind`` sqlite or postgres), connected; returns its settings,
    the PostgreSQL version (None if no server answers) and the PostgreSQL database to drop
    afterwards (``await pg_admin(f'DROP DATABASE IF EXISTS "{drop}" WITH (FORCE)')``)."""
    import uuid

    from core import db
    from core.settings import Settings

    pg_version = drop = None
    try:
        pg_version = await pg_admin("SHOW server_version")
    except Exception:
        if kind == "postgres":
            raise
    if kind == "postgres":
        drop = f"ib_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        await pg_admin(f'CREATE DATABASE "{drop}"')
        url = PG_ADMIN.rsplit("/", 1)[0] + f"/{drop}"
    else:
        url = f"sqlite://{sqlite_path or workdir / 'bench.sqlite3'}"
    settings = Settings(data_dir=workdir, database_url=url)
    await db.init(settings)
    await db.upgrade(settings)
    return settings, pg_version, drop
