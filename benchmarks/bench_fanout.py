"""Benchmark: messaging fan-out from the outbox through the real Telegram channel to the simulator.

    uv run python benchmarks/bench_fanout.py [--messages 10000] [--chats 2000] [--db sqlite|postgres]
        [--segment 2000] [--concurrency 32] [--throttled-messages 2000] [--throttled-chats 500]
        [--throttled-order grouped|round-robin] [--skip-unthrottled] [--skip-throttled]
        [--sim process|inline] [--profile FILE]

Two measurements in one run, against one Telegram Bot API simulator (``simulators/telegram``):

1. **Unthrottled** (simulator flood limits off, dispatcher limiter unlimited). ``--chats``
   inspectors with a Telegram chat binding are written with bulk inserts, and ``--messages``
   outbox rows (message i to chat i mod chats) with ``services.outbox.enqueue``. Then the real
   ``Dispatcher`` sends them through the real ``TelegramChannel``, and a raw python-telegram-bot
   ``Bot.send_message`` loop at the same ``--concurrency`` sends the same texts to the same chats
   (the floor), in alternating segments of ``--segment`` messages, so that load from other
   processes on a shared machine falls on both alike. Reported: each side's rate (messages/s of
   wall time) and CPU time of this process per message, and their ratios. Every outbox row must
   end ``sent``, and the simulator must have accepted exactly 2 x ``--messages``, each chat
   exactly its share.
2. **Throttled** (simulator flood limits on: 30/s overall, 1/s per chat, as Telegram; the
   dispatcher's default Telegram limiter). ``--throttled-messages`` rows to
   ``--throttled-chats`` chats, sent by the dispatcher's production loop (``run``). Reports the
   total time, the 429s the simulator answered (must be 0) and the busiest one-second window
   overall and in one chat, as the simulator measured them.

The simulator runs in a child process by default (``--sim process``), so it has its own core
and its cost is not charged to the client being measured; ``--sim inline`` runs it in this
process. Prints one JSON line per measurement and a summary line.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import platform
import pstats
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(1, str(ROOT / "benchmarks"))  # _common, also when a test imports this module

from _common import bind_inspectors, context_for, open_database, pg_admin  # noqa: E402

from core import db  # noqa: E402
from core.clock import SYSTEM  # noqa: E402

TEMPLATE = "team_changed.j2"
FIRST_USER = 300_000_001  # virtual user ids (= chat ids) of the simulator's users


def emit(kind: str, **figures) -> None:
    print(json.dumps({"phase": kind, **figures}, ensure_ascii=False), flush=True)


# -- the machine ---------------------------------------------------------------------------------


def machine(pg_version: str | None) -> dict:
    """What the figures were measured on."""
    import httpx
    import telegram

    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "unknown",
    )
    mem_kb = next(
        int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")
    )
    return {
        "nproc": os.cpu_count(),
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "cpu": cpu,
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "postgresql": pg_version,
        "python_telegram_bot": telegram.__version__,
        "httpx": httpx.__version__,
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
    }


# -- the simulator -------------------------------------------------------------------------------


def serve_simulator(users: int) -> None:
    """Child-process mode: a simulator with ``users`` users who pressed Start; prints its URL."""
    from simulators.telegram.flood import FloodLimits
    from simulators.telegram.simulator import TelegramSimulator

    async def main() -> None:
        sim = TelegramSimulator(flood=FloodLimits.off())
        for n in range(users):
            user = sim.create_user(f"检查员{n}", id=FIRST_USER + n)
            sim.send_command(user, "start")  # a user the bot may write to; nobody polls the update
        await sim.start()
        print(json.dumps({"url": sim.url, "token": sim.token}), flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


class Simulator:
    """The simulator, in a child process or in this one, driven only through its HTTP API."""

    def __init__(self, users: int, mode: str) -> None:
        self.users = users
        self.mode = mode
        self.url = ""
        self.token = ""
        self._proc: subprocess.Popen | None = None
        self._sim = None
        self._http = None

    async def start(self) -> None:
        import aiohttp

        if self.mode == "process":
            self._proc = subprocess.Popen(
                [sys.executable, str(Path(__file__).resolve()), "--serve-sim", str(self.users)],
                stdout=subprocess.PIPE,
                text=True,
                cwd=ROOT,
            )
            line = await asyncio.to_thread(self._proc.stdout.readline)
            if not line:
                raise RuntimeError("the simulator process did not start")
            info = json.loads(line)
        else:
            from simulators.telegram.flood import FloodLimits
            from simulators.telegram.simulator import TelegramSimulator

            self._sim = TelegramSimulator(flood=FloodLimits.off())
            for n in range(self.users):
                self._sim.send_command(self._sim.create_user(f"检查员{n}", id=FIRST_USER + n), "start")
            await self._sim.start()
            info = {"url": self._sim.url, "token": self._sim.token}
        self.url, self.token = info["url"], info["token"]
        self._http = aiohttp.ClientSession()

    async def stop(self) -> None:
        if self._http is not None:
            await self._http.close()
        if self._sim is not None:
            await self._sim.stop()
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(10)

    async def flood(self, **limits) -> dict:
        """Set flood limits (``reset_stats=True`` also clears the counters); returns the stats."""
        async with self._http.post(f"{self.url}/_sim/flood", json=limits) as r:
            return (await r.json())["stats"]

    async def stats(self) -> dict:
        async with self._http.get(f"{self.url}/_sim/flood") as r:
            return (await r.json())["stats"]

    async def received(self, chat_ids: list[int]) -> dict[int, int]:
        """How many bot messages each chat holds."""
        sem = asyncio.Semaphore(16)

        async def one(chat_id: int) -> tuple[int, int]:
            async with sem, self._http.get(f"{self.url}/_sim/users/{chat_id}/messages") as r:
                return chat_id, len((await r.json())["messages"])

        return dict(await asyncio.gather(*(one(c) for c in chat_ids)))


# -- the database: _common.open_database (SQLite, or a fresh PostgreSQL database) ---------------


async def add_inspectors(chats: int) -> list[tuple[int, int]]:
    """``chats`` inspectors, each bound to simulator chat FIRST_USER + n; returns (inspector id, chat id)."""
    pairs = await bind_inspectors(chats, "telegram", lambda n: str(FIRST_USER + n), cert_prefix="B")
    return [(iid, FIRST_USER + n) for iid, n in pairs]


async def enqueue_round(tag: str, targets: list[tuple[int, int]], n: int) -> list[tuple[int, int]]:
    """``n`` outbox rows, message i to ``targets[i % len]``, through the real enqueue."""
    from models.messaging import RecipientKind
    from services.outbox import Message, enqueue

    chosen = [targets[i % len(targets)] for i in range(n)]
    await enqueue(
        [
            Message(
                dedupe_key=f"bench:{tag}:{i}",
                recipient_kind=RecipientKind.INSPECTOR,
                recipient_id=iid,
                template=TEMPLATE,
                context=context_for(i),
            )
            for i, (iid, _) in enumerate(chosen)
        ],
        SYSTEM.now(),
    )
    return chosen


async def outbox_status(tag: str) -> dict[str, int]:
    p = db.placeholders(1)
    rows = await db.conn().execute_query_dict(
        f"SELECT status, COUNT(*) AS n FROM outbox WHERE dedupe_key LIKE {p} GROUP BY status", [f"bench:{tag}:%"]
    )
    return {r["status"]: r["n"] for r in rows}


# -- the two senders -----------------------------------------------------------------------------


class RawSender:
    """The floor: python-telegram-bot's ``Bot.send_message``, ``concurrency`` at a time, no database."""

    def __init__(self, sim: Simulator, concurrency: int, pool: int) -> None:
        from telegram import Bot
        from telegram.request import HTTPXRequest

        request = HTTPXRequest(
            connection_pool_size=pool, read_timeout=10, write_timeout=10, connect_timeout=10, pool_timeout=10
        )
        self.bot = Bot(sim.token, base_url=f"{sim.url}/bot", base_file_url=f"{sim.url}/file/bot", request=request)
        self.concurrency = concurrency
        self.errors = 0

    async def send(self, items: list[tuple[int, str]]) -> int:
        """Send (chat, text) pairs; returns how many."""
        queue: asyncio.Queue = asyncio.Queue()
        for item in items:
            queue.put_nowait(item)

        async def worker() -> None:
            while not queue.empty():
                chat, text = queue.get_nowait()
                try:
                    await self.bot.send_message(chat, text)
                except Exception:
                    self.errors += 1

        await asyncio.gather(*(worker() for _ in range(self.concurrency)))
        return len(items)


class DispatcherSender:
    """The real Dispatcher + TelegramChannel (limiter unlimited), sending due outbox rows."""

    def __init__(self, sim: Simulator, concurrency: int, pool: int) -> None:
        from bot.channels.telegram import TelegramChannel
        from bot.dispatcher import Dispatcher
        from core.ratelimit import RateLimiter

        self.channel = TelegramChannel(sim.token, api_url=sim.url, mode="send-only", pool_size=pool)
        self.dispatcher = Dispatcher(
            {"telegram": self.channel}, limits={"telegram": RateLimiter(None, None)}, concurrency=concurrency
        )

    async def send(self, at_least: int) -> int:
        """The dispatcher's pump (its production loop's step) for ``at_least`` rows (or until none is due)."""
        return await self.dispatcher.pump(at_least)


async def timed(coro, profile: cProfile.Profile | None = None) -> tuple[int, float, float]:
    """(result, wall seconds, CPU seconds of this process) of one awaited segment."""
    if profile is not None:
        profile.enable()
    wall, cpu = time.perf_counter(), time.process_time()
    result = await coro
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    if profile is not None:
        profile.disable()
    return result, wall, cpu


# -- the two measurements ------------------------------------------------------------------------


async def unthrottled(sim: Simulator, pairs: list[tuple[int, int]], args, profile) -> dict:
    """Both senders, ``--messages`` each, in alternating segments of ``--segment`` messages.

    The outbox holds all the rows from the start; the dispatcher takes its next segment's worth
    of cycles while the raw loop sends the same number of messages, so load from other
    processes on a shared machine falls on both alike."""
    from core.render import render

    await sim.flood(enabled=False, reset_stats=True)
    started = time.perf_counter()
    chosen = await enqueue_round("u", pairs, args.messages)
    enqueue_seconds = time.perf_counter() - started
    texts = [(chat, render(f"messages/{TEMPLATE}", "zh-CN", **context_for(i))) for i, (_, chat) in enumerate(chosen)]
    raw, disp = RawSender(sim, args.concurrency, args.pool), DispatcherSender(sim, args.concurrency, args.pool)
    await raw.bot.initialize()
    await disp.channel.start()
    totals = {"raw": [0, 0.0, 0.0], "dispatcher": [0, 0.0, 0.0]}
    segments = []
    done_raw = 0
    while totals["dispatcher"][0] < args.messages or done_raw < args.messages:
        order = ("dispatcher", "raw") if len(segments) % 2 == 0 else ("raw", "dispatcher")
        seg: dict = {"segment": len(segments) + 1}
        for who in order:
            if who == "dispatcher":
                n, wall, cpu = await timed(disp.send(args.segment), profile)
            else:
                want = texts[done_raw : done_raw + args.segment]
                n, wall, cpu = await timed(raw.send(want))
                done_raw += n
            if n:
                totals[who] = [totals[who][0] + n, totals[who][1] + wall, totals[who][2] + cpu]
                seg[who] = {"n": n, "rate": round(n / wall, 1), "cpu_ms_per_msg": round(1000 * cpu / n, 2)}
        if "raw" in seg and "dispatcher" in seg:
            seg["ratio"] = round(seg["dispatcher"]["rate"] / seg["raw"]["rate"], 3)
        emit("unthrottled-segment", **seg)
        segments.append(seg)
    await raw.bot.shutdown()
    await disp.channel.stop()
    stats = await sim.stats()
    expected: dict[int, int] = {}
    for chat, _ in texts:
        expected[chat] = expected.get(chat, 0) + 2
    received = await sim.received(sorted(expected))
    figures = {
        name: {
            "messages": n,
            "seconds": round(wall, 2),
            "rate": round(n / wall, 1),
            "cpu_ms_per_msg": round(1000 * cpu / n, 2),
        }
        for name, (n, wall, cpu) in totals.items()
    }
    ratios = [s["ratio"] for s in segments if "ratio" in s]
    checks = {
        "outbox": await outbox_status("u"),
        "every_row_sent": (await outbox_status("u")) == {"sent": args.messages},
        "simulator_accepted": stats["accepted"],
        "simulator_accepted_all": stats["accepted"] == 2 * args.messages,
        "chats_with_wrong_count": sum(1 for chat, want in expected.items() if received.get(chat) != want),
        "raw_errors": raw.errors,
        "dispatcher_failed": disp.dispatcher.failed,
    }
    summary = {
        "messages": args.messages,
        "chats": len(pairs),
        "concurrency": args.concurrency,
        "segment": args.segment,
        "enqueue_seconds": round(enqueue_seconds, 2),
        **figures,
        "ratio": round(figures["dispatcher"]["rate"] / figures["raw"]["rate"], 3),
        "segment_ratios_median": round(statistics.median(ratios), 3) if ratios else None,
        "cpu_ratio": round(figures["raw"]["cpu_ms_per_msg"] / figures["dispatcher"]["cpu_ms_per_msg"], 3),
        "checks": checks,
    }
    emit("unthrottled", **summary)
    return summary


async def throttled(sim: Simulator, pairs: list[tuple[int, int]], args) -> dict:
    """Flood limits on, the dispatcher's default limiter, its production loop."""
    from bot.channels.telegram import TelegramChannel
    from bot.dispatcher import Dispatcher

    targets = pairs[: args.throttled_chats]
    n = args.throttled_messages
    if args.throttled_order == "grouped":  # each chat's messages one after another, as a draw writes them
        per = -(-n // len(targets))
        targets = [t for t in targets for _ in range(per)][:n]
    tag = "t"
    await enqueue_round(tag, targets, n)
    await sim.flood(enabled=True, global_rate=30, global_burst=30, chat_rate=1, chat_burst=3, reset_stats=True)
    channel = TelegramChannel(sim.token, api_url=sim.url, mode="send-only", pool_size=args.pool)
    await channel.start()
    dispatcher = Dispatcher({"telegram": channel})  # default limits: Telegram 30/s, 1 s per chat
    started = time.perf_counter()
    task = asyncio.create_task(dispatcher.run())
    while (await outbox_status(tag)).get("sent", 0) < n:
        if task.done():
            raise RuntimeError("the dispatcher loop stopped")
        await asyncio.sleep(0.25)
    seconds = time.perf_counter() - started
    dispatcher.stop()
    await task
    await channel.stop()
    stats = await sim.stats()
    await sim.flood(enabled=False)
    p = db.placeholders(1)
    retried = (
        await db.conn().execute_query_dict(
            f"SELECT COUNT(*) AS n FROM outbox WHERE dedupe_key LIKE {p} AND last_error <> ''", [f"bench:{tag}:%"]
        )
    )[0]["n"]
    summary = {
        "messages": n,
        "chats": args.throttled_chats,
        "order": args.throttled_order,
        "seconds": round(seconds, 1),
        "rate": round(n / seconds, 1),
        "floor_seconds": round(n / 30, 1),
        "simulator_429s": stats["refused_429"],
        "accepted": stats["accepted"],
        "busiest_second_overall": stats["max_per_second"],
        "busiest_second_one_chat": stats["max_per_chat_second"],
        "rows_with_an_error": retried,
        "dispatcher_failed": dispatcher.failed,
    }
    emit("throttled", **summary)
    return summary


# -- main ----------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--messages", type=int, default=10_000, help="unthrottled messages per round (default 10000)")
    p.add_argument("--chats", type=int, default=2_000, help="bound inspector chats (default 2000)")
    p.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    p.add_argument(
        "--segment", type=int, default=2_000, help="unthrottled messages per alternating segment (default 2000)"
    )
    p.add_argument("--concurrency", type=int, default=32, help="sends in flight, both senders (default 32)")
    p.add_argument("--pool", type=int, default=64, help="HTTP connection pool of both senders (default 64)")
    p.add_argument("--throttled-messages", type=int, default=2_000)
    p.add_argument("--throttled-chats", type=int, default=500)
    p.add_argument("--throttled-order", choices=("grouped", "round-robin"), default="grouped")
    p.add_argument("--skip-unthrottled", action="store_true")
    p.add_argument("--skip-throttled", action="store_true")
    p.add_argument(
        "--sim",
        choices=("process", "inline"),
        default="process",
        help="run the simulator in a child process (default) or in this one",
    )
    p.add_argument("--profile", type=Path, help="cProfile the dispatcher's unthrottled runs into this file")
    p.add_argument("--serve-sim", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.throttled_chats > args.chats:
        p.error("--throttled-chats cannot exceed --chats")
    return args


async def main(args: argparse.Namespace) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="bench_fanout_"))
    sim = Simulator(args.chats, args.sim)
    drop = None
    profile = cProfile.Profile() if args.profile else None
    try:
        settings, pg_version, drop = await open_database(args.db, workdir)
        emit("setup", db=args.db, sim=args.sim, machine=machine(pg_version))
        started = time.perf_counter()
        pairs = await add_inspectors(args.chats)
        await sim.start()
        emit("fill", chats=len(pairs), seconds=round(time.perf_counter() - started, 2))
        result: dict = {"db": args.db}
        if not args.skip_unthrottled:
            result["unthrottled"] = await unthrottled(sim, pairs, args, profile)
        if not args.skip_throttled:
            result["throttled"] = await throttled(sim, pairs, args)
        emit("summary", **result)
        ok = True
        if "unthrottled" in result:
            c = result["unthrottled"]["checks"]
            ok &= c["every_row_sent"] and c["simulator_accepted_all"] and c["chats_with_wrong_count"] == 0
            ok &= c["raw_errors"] == 0 and c["dispatcher_failed"] == 0
        if "throttled" in result:
            ok &= result["throttled"]["simulator_429s"] == 0
        return 0 if ok else 1
    finally:
        await sim.stop()
        await db.close()
        if drop:
            await pg_admin(f'DROP DATABASE IF EXISTS "{drop}" WITH (FORCE)')
        shutil.rmtree(workdir, ignore_errors=True)
        if profile is not None:
            profile.dump_stats(args.profile)
            pstats.Stats(str(args.profile)).sort_stats("cumulative").print_stats(40)


if __name__ == "__main__":
    arguments = parse_args()
    if arguments.serve_sim is not None:
        serve_simulator(arguments.serve_sim)
    else:
        sys.exit(asyncio.run(main(arguments)))
