"""WeCom fan-out: the real dispatcher and WecomChannel against the WeCom simulator.

1. **Unthrottled** (simulator limits off, dispatcher limiter unlimited): ``--messages`` outbox rows
   to ``--members`` inspectors bound on WeCom, sent by the dispatcher, against a bare aiohttp loop
   POSTing the same ``message/send`` requests (same texts, same concurrency, the token fetched
   once), in alternating segments so that load from elsewhere falls on both alike. Target: the
   dispatcher at ≥ 0.7× the bare loop. On SQLite a third sender takes its turns too, the
   **floor** (:class:`FloorSender`): the least work any sender can do and still keep the
   dispatcher's guarantee — claim by one statement, render, send through the same
   ``WecomChannel``, store each outcome by group commit before the worker takes another row —
   with nothing else (no lookups, limiter, quota, Tortoise). The floor over the bare loop is
   what a durable fan-out in one process can reach at best on the machine; the dispatcher over
   the floor is what our machinery costs beyond it.
2. **Throttled** (simulator limits on: 30 a minute and 1000 an hour per member, 10,000 a minute per
   app; the dispatcher's default WeCom pacing, 40/s and 4 s per member): ``--throttled-messages``
   rows to ``--throttled-members`` members. Target: every row sent, zero 45009s.

The simulator runs in a child process (``python -m simulators.wecom``) so it does not share this
process's CPU. Before the unthrottled segments the heap built so far is frozen out of later
garbage collections (``bot.app.freeze_heap``), as ``inspectbot serve`` does once started.
SQLite in a temporary directory (``--db sqlite``, the default) or a fresh PostgreSQL database
(``--db postgres``: on ``$INSPECTBOT_BENCH_PG``, dropped afterwards). Prints one JSON line per
phase.

    uv run python benchmarks/bench_wecom_fanout.py [--messages 3000] [--members 1000] [--db postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(1, str(ROOT / "benchmarks"))

from _common import bind_inspectors, context_for  # noqa: E402

TEMPLATE = "team_changed.j2"


async def add_wecom_inspectors(members: int, prefix: str = "u") -> list[tuple[int, str]]:
    """``members`` inspectors, each bound on WeCom as userid ``<prefix><n>``; (inspector id, userid)."""
    userid = lambda n: f"{prefix}{n}"  # noqa: E731
    pairs = await bind_inspectors(
        members, "wecom", userid, cert_prefix=f"W{prefix}", display=userid, wecom_userid=userid
    )
    return [(iid, userid(n)) for iid, n in pairs]


async def enqueue(tag: str, pairs: list[tuple[int, str]], n: int) -> list[tuple[int, str]]:
    from core import db
    from models.messaging import RecipientKind
    from services.outbox import enqueue_many

    chosen = [pairs[i % len(pairs)] for i in range(n)]
    await enqueue_many(
        ((f"{tag}:{i}", iid, db.encode(context_for(i))) for i, (iid, _) in enumerate(chosen)),
        datetime.now(UTC),
        recipient_kind=RecipientKind.INSPECTOR,
        template=TEMPLATE,
    )
    return chosen


class RawSender:
    """A bare aiohttp loop: the token once, then POST message/send with ``concurrency`` workers."""

    def __init__(self, url: str, concurrency: int, pool: int) -> None:
        from simulators.wecom import DEV_AGENT_ID, DEV_CORP_ID, DEV_SECRET

        self.url, self.concurrency = url, concurrency
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=pool))
        self.corp, self.secret, self.agent = DEV_CORP_ID, DEV_SECRET, DEV_AGENT_ID
        self.token = ""
        self.errors = 0

    async def start(self) -> None:
        async with self.session.get(
            f"{self.url}/cgi-bin/gettoken", params={"corpid": self.corp, "corpsecret": self.secret}
        ) as r:
            self.token = (await r.json())["access_token"]

    async def send(self, items: list[tuple[str, str]]) -> int:
        queue: asyncio.Queue = asyncio.Queue()
        for item in items:
            queue.put_nowait(item)

        async def worker() -> None:
            while not queue.empty():
                userid, text = queue.get_nowait()
                body = {"touser": userid, "msgtype": "text", "agentid": self.agent, "text": {"content": text}}
                async with self.session.post(
                    f"{self.url}/cgi-bin/message/send", params={"access_token": self.token}, json=body
                ) as r:
                    if (await r.json()).get("errcode"):
                        self.errors += 1

        await asyncio.gather(*(worker() for _ in range(self.concurrency)))
        return len(items)


class FloorSender:
    """The floor: a durable sender with nothing but what durability needs (SQLite only).

    Claims up to 256 due rows with one ``UPDATE … RETURNING`` (the dispatcher's order and lease),
    renders each with ``core.render``, sends it with the real ``WecomChannel``, and stores its
    outcome with the dispatcher's own ``SENT`` statement, by group commit on the loop's thread
    (one ``BEGIN IMMEDIATE`` / ``executemany`` / ``COMMIT`` for the outcomes that arrived while
    the last one ran). A worker takes its next row only once its outcome is committed — the
    dispatcher's duplicate bound. Not product code: a measure of the least such work costs."""

    CLAIM = (
        "UPDATE outbox SET status='sending', claimed_until=?, attempts=attempts+1 WHERE id IN "
        "(SELECT id FROM outbox WHERE status='pending' AND next_attempt_at <= ? "
        "ORDER BY priority, next_attempt_at, id LIMIT ?) RETURNING id, recipient_id, template, context, locale"
    )

    def __init__(self, channel, addresses: dict[int, str], concurrency: int) -> None:
        from bot.dispatcher import LEASE, SENT
        from core import db

        self.channel, self.addresses, self.concurrency = channel, addresses, concurrency
        self.lease, self.sent_sql = LEASE, SENT
        self.sqlite = db.conn()._connection._conn  # Tortoise's sqlite3 connection, used on this thread only
        self.outcomes: list[tuple] = []
        self.waiting: list[asyncio.Future] = []
        self.flushing = False

    def claim(self, limit: int) -> list[tuple]:
        now = datetime.now(UTC)
        c = self.sqlite
        c.execute("BEGIN IMMEDIATE")
        try:
            rows = c.execute(self.CLAIM, (now + self.lease, now, limit)).fetchall()
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise
        return [(r[0], r[1], r[2], json.loads(r[3]), r[4]) for r in rows]

    def flush(self) -> None:
        self.flushing = False
        rows, waiting = self.outcomes, self.waiting
        self.outcomes, self.waiting = [], []
        c = self.sqlite
        c.execute("BEGIN IMMEDIATE")
        try:
            c.executemany(self.sent_sql, rows)
            c.execute("COMMIT")
        except BaseException as exc:
            c.execute("ROLLBACK")
            for f in waiting:
                f.set_exception(exc)
            return
        for f in waiting:
            f.set_result(None)

    async def send(self, limit: int) -> int:
        from core.channel import Outgoing
        from core.render import render

        loop = asyncio.get_running_loop()
        queue = self.claim(min(256, limit))
        taken, done = len(queue), 0

        async def worker() -> None:
            nonlocal taken, done
            while True:
                if not queue:
                    more = self.claim(min(256, limit - taken)) if taken < limit else []
                    if not more:
                        return
                    taken += len(more)
                    queue.extend(more)
                row_id, recipient, template, context, locale = queue.pop(0)
                text = render(f"messages/{template}", locale, **context)
                msgid = await self.channel.send(Outgoing(address=self.addresses[recipient], text=text))
                stored = loop.create_future()
                self.outcomes.append((msgid, datetime.now(UTC), row_id))
                self.waiting.append(stored)
                if not self.flushing:
                    self.flushing = True
                    loop.call_soon(self.flush)
                await stored
                done += 1

        await asyncio.gather(*(worker() for _ in range(self.concurrency)))
        return done


async def timed(coro) -> tuple[int, float, float]:
    """(result, wall seconds, CPU seconds of this process) of one awaited segment."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = await coro
    return result, time.perf_counter() - wall, time.process_time() - cpu


async def run(args, sim_url: str) -> int:
    from _common import (  # lazy: the scripts' helpers (tests import this module)
        emit,
        open_database,
        pg_admin,
        workspace,
    )

    from bot.app import freeze_heap
    from bot.channels.wecom import WecomChannel
    from bot.dispatcher import Dispatcher, default_limits
    from core import db
    from core.ratelimit import RateLimiter
    from core.render import render
    from models.messaging import Outbox, OutboxStatus
    from tests.e2e.wecom_harness import wecom_settings

    work, path = workspace(args.keep, "bench-wecom-")
    settings, pg_version, drop = await open_database(args.db, work, path)
    settings = wecom_settings(settings, sim_url)
    emit("database", {"db": args.db, "postgresql": pg_version if args.db == "postgres" else None})
    ok = True
    http = aiohttp.ClientSession()
    try:
        if not args.skip_unthrottled:
            await http.post(f"{sim_url}/_sim/reset", json={"enforce_limits": False})
            pairs = await add_wecom_inspectors(args.members)
            floor_on = args.db == "sqlite" and not args.skip_floor
            # the dispatcher and the floor take their turns from one queue of identical rows
            chosen = await enqueue("u", pairs, args.messages * (2 if floor_on else 1))
            texts = [(u, render(f"messages/{TEMPLATE}", "zh-CN", **context_for(i))) for i, (_, u) in enumerate(chosen)]
            raw = RawSender(sim_url, args.concurrency, args.pool)
            await raw.start()
            channel = WecomChannel(settings, pool_size=args.pool)
            dispatcher = Dispatcher(
                {"wecom": channel}, limits={"wecom": RateLimiter(None, None)}, concurrency=args.concurrency
            )
            floor = FloorSender(channel, dict(pairs), args.concurrency) if floor_on else None
            freeze_heap()  # as `inspectbot serve` does once started (all senders share this process)
            senders = ["dispatcher", "raw"] + (["floor"] if floor else [])
            totals = {who: [0, 0.0, 0.0] for who in senders}
            done_raw, segment = 0, 0

            def turn(who: str):
                if who == "dispatcher":
                    return dispatcher.pump(args.segment)
                if who == "floor":
                    return floor.send(args.segment)
                return raw.send(texts[done_raw : done_raw + args.segment])

            while any(totals[who][0] < args.messages for who in senders):
                for who in senders[segment % len(senders) :] + senders[: segment % len(senders)]:
                    if totals[who][0] >= args.messages:
                        continue
                    n, wall, cpu = await timed(turn(who))
                    if who == "raw":
                        done_raw += n
                    totals[who][0] += n
                    totals[who][1] += wall
                    totals[who][2] += cpu
                segment += 1
            sent = await Outbox.filter(dedupe_key__startswith="u:", status=OutboxStatus.SENT).count()
            rate = {k: v[0] / v[1] if v[1] else 0.0 for k, v in totals.items()}
            ratio = rate["dispatcher"] / rate["raw"] if rate["raw"] else 0.0
            expected = args.messages * (2 if floor else 1)
            ok &= sent == expected and ratio >= 0.7 and raw.errors == 0
            cpu = {who: round(1000 * v[2] / max(v[0], 1), 3) for who, v in totals.items()}
            emit(
                "unthrottled",
                {
                    "messages": args.messages,
                    "members": args.members,
                    "concurrency": args.concurrency,
                    "dispatcher_per_s": round(rate["dispatcher"], 1),
                    "raw_aiohttp_per_s": round(rate["raw"], 1),
                    "ratio": round(ratio, 3),
                    "cpu_ms_per_msg_raw": cpu["raw"],
                    "cpu_ms_per_msg_dispatcher": cpu["dispatcher"],
                    **(
                        {
                            "floor_per_s": round(rate["floor"], 1),
                            "floor_over_raw": round(rate["floor"] / rate["raw"], 3),
                            "dispatcher_over_floor": round(rate["dispatcher"] / rate["floor"], 3),
                            "cpu_ms_per_msg_floor": cpu["floor"],
                        }
                        if floor
                        else {}
                    ),
                    "sent": sent,
                    "raw_errors": raw.errors,
                    "target": ">= 0.7",
                },
            )
            await channel.stop()
            await raw.session.close()
        if not args.skip_throttled:
            await http.post(f"{sim_url}/_sim/reset", json={"enforce_limits": True})
            pairs = await add_wecom_inspectors(args.throttled_members, prefix="t")
            await enqueue("t", pairs, args.throttled_messages)
            channel = WecomChannel(settings, pool_size=args.pool)
            dispatcher = Dispatcher({"wecom": channel}, limits=default_limits(), concurrency=args.concurrency)
            started = time.perf_counter()
            while True:
                sent = await Outbox.filter(dedupe_key__startswith="t:", status=OutboxStatus.SENT).count()
                if sent >= args.throttled_messages or time.perf_counter() - started > args.timeout:
                    break
                if await dispatcher.run_once() == 0:
                    await asyncio.sleep(0.05)
            wall = time.perf_counter() - started
            async with http.get(f"{sim_url}/_sim/stats") as r:
                stats = await r.json()
            failed = await Outbox.filter(dedupe_key__startswith="t:").exclude(status=OutboxStatus.SENT).count()
            ok &= sent == args.throttled_messages and stats["limit_errors"] == 0 and failed == 0
            emit(
                "throttled",
                {
                    "messages": args.throttled_messages,
                    "members": args.throttled_members,
                    "sent": sent,
                    "seconds": round(wall, 1),
                    "per_s": round(sent / wall, 1),
                    "limit_errors_45009": stats["limit_errors"],
                    "peak_per_second": stats["peak_per_second"],
                    "peak_per_minute": stats["peak_per_minute"],
                    "max_per_member_minute": stats["max_per_member_minute"],
                    "limits": "40/s (app: 10,000/min, 150,000/h), 30/min and 1000/h per member",
                },
            )
            await channel.stop()
    finally:
        await http.close()
        await db.close()
        if drop:
            await pg_admin(f'DROP DATABASE IF EXISTS "{drop}" WITH (FORCE)')
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--messages", type=int, default=3000)
    p.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    p.add_argument("--members", type=int, default=1000)
    p.add_argument("--segment", type=int, default=500)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--pool", type=int, default=64)
    p.add_argument("--throttled-messages", type=int, default=600)
    p.add_argument("--throttled-members", type=int, default=300)
    p.add_argument("--timeout", type=float, default=300)
    p.add_argument("--skip-unthrottled", action="store_true")
    p.add_argument("--skip-throttled", action="store_true")
    p.add_argument("--skip-floor", action="store_true", help="no floor sender (it runs on SQLite only)")
    p.add_argument("--keep", help="work in this directory and keep it")
    args = p.parse_args(argv)
    from _common import die_with_parent, emit, free_port, machine  # lazy: as in run()

    port = free_port()
    sim = subprocess.Popen(
        [sys.executable, "-m", "simulators.wecom", "--port", str(port), "--no-limits"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        preexec_fn=die_with_parent,
    )
    try:
        ready = json.loads(sim.stdout.readline())
        emit("machine", machine())
        return asyncio.run(run(args, ready["url"]))
    finally:
        sim.terminate()
        sim.wait(timeout=10)


if __name__ == "__main__":
    sys.exit(main())
