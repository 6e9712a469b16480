"""A WeCom fan-out killed with SIGKILL mid-way loses nothing (issue 16), on SQLite and PostgreSQL.

As the Telegram trial in test_kill9.py: the outbox holds messages (written with
``services.outbox.enqueue_many`` for the default chat channel, as a draw writes them) to inspectors
bound on WeCom only, so the dispatcher also routes every row to WeCom; a child process runs the
service (``bot.app.Service`` with the WecomChannel and the dispatcher's production loop, limits
off) against the WeCom simulator served by this process, and is killed once between a quarter and
a half of the messages reached the simulator. A second process sends the rest (and the dead one's
claimed rows, once their 15 s lease expired). Every message arrives at least once; those arriving
twice are exactly the ones accepted from rows still claimed at the kill, at most ``concurrency``.
"""

from __future__ import annotations

import os
import random
import re
from collections import Counter
from datetime import UTC, datetime

from tests.reliability.test_kill9 import SEED, ForkServer, until

MESSAGES = {"postgres": 3_000, "sqlite": 2_000}
MEMBERS = 400
LEASE_S = 15  # as test_kill9.py: a live dispatcher never outlasts its own lease under load
CONCURRENCY = 32
BATCH = 256
NUMBER = re.compile(r"/2026-12-01/(\d+)")  # the public reference QD-BENCH/2026-12-01/N


def delivered(sim) -> Counter:
    counts: Counter = Counter()
    for member in sim.members.values():
        for message in member.received:
            found = NUMBER.search(message.get("text", ""))
            if found:
                counts[int(found.group(1))] += 1
    return counts


async def by_status() -> dict[str, set[int]]:
    from models.messaging import Outbox

    out: dict[str, set[int]] = {}
    for status, key in await Outbox.filter(dedupe_key__startswith="k9w:").values_list("status", "dedupe_key"):
        out.setdefault(getattr(status, "value", status), set()).add(int(key.split(":")[1]))
    return out


async def test_kill9_during_a_wecom_fanout_loses_nothing(db, tmp_path):
    from benchmarks.bench_wecom_fanout import add_wecom_inspectors, context_for
    from core import db as dbmod
    from models.messaging import Channel, Outbox, OutboxStatus, RecipientKind
    from services.outbox import enqueue_many
    from simulators.wecom import WecomSimulator

    n = int(os.environ.get("INSPECTBOT_KILL_MESSAGES") or MESSAGES[db.dialect])
    sim = WecomSimulator(enforce_limits=False)
    pairs = await add_wecom_inspectors(MEMBERS)
    await enqueue_many(
        ((f"k9w:{i}", pairs[i % MEMBERS][0], dbmod.encode(context_for(i))) for i in range(n)),
        datetime.now(UTC),
        recipient_kind=RecipientKind.INSPECTOR,
        template="team_changed.j2",
    )
    server = ForkServer(tmp_path / "children.log")
    accepted = lambda: sum(len(m.received) for m in sim.members.values())  # noqa: E731
    try:
        await sim.start()
        await server.start()
        cmd = dict(
            op="dispatch_wecom",
            url=db.database_url,
            data_dir=str(tmp_path),
            sim=sim.url,
            lease=LEASE_S,
            concurrency=CONCURRENCY,
            batch=BATCH,
        )
        first = await server.spawn(**cmd)
        await server.wait("ready", first)
        kill_after = random.Random(f"{SEED}:wecom:{db.dialect}").randint(n // 4, n // 2)
        print(f"\n[{db.dialect}] INSPECTBOT_KILL_SEED={SEED}: the WeCom dispatcher dies after {kill_after} messages")

        async def enough() -> bool:
            return accepted() >= kill_after

        await until(enough, f"{kill_after} messages accepted", 300, server, first)
        assert server.kill(first)
        await server.wait("exit", first)

        async def quiet() -> bool:
            return not sim._runner.server.connections

        await until(quiet, "the simulator to close the dead dispatcher's connections", 30)
        at_kill = await by_status()
        before = delivered(sim)
        sent, claimed = at_kill.get("sent", set()), at_kill.get("sending", set())
        assert set(at_kill) <= {"sent", "sending", "pending"}, at_kill.keys()
        assert sent <= set(before), "a row was marked sent before WeCom accepted it"
        assert at_kill.get("pending"), "killed too late: nothing was left to send"
        in_flight = set(before) & claimed

        second = await server.spawn(**cmd)
        await server.wait("ready", second)

        async def all_sent() -> bool:
            return await Outbox.filter(dedupe_key__startswith="k9w:", status=OutboxStatus.SENT).count() == n

        await until(all_sent, "every row sent", 300, server, second, every=0.1)
        server.kill(second)
        await server.wait("exit", second)

        counts = delivered(sim)
        duplicates = {k for k, c in counts.items() if c > 1}
        assert set(counts) == set(range(n)), f"lost: {sorted(set(range(n)) - set(counts))[:20]}"
        assert max(counts.values()) == (2 if duplicates else 1)
        assert duplicates == in_flight and len(duplicates) <= CONCURRENCY
        assert sum(counts.values()) == accepted() == n + len(duplicates)
        assert set(await Outbox.filter(dedupe_key__startswith="k9w:").values_list("channel", flat=True)) == {
            Channel.WECOM
        }  # every row says where it went
        print(f"[{db.dialect}] {n} WeCom messages: {len(sent)} sent at the kill, {len(duplicates)} duplicates")
    finally:
        await server.close()
        await sim.stop()
