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
from collections import Counter
from datetime import UTC, datetime

from tests.reliability.test_kill9 import (
    SEED,
    ForkServer,
    assert_once_but_the_in_flight,
    dispatch_the_rest,
    dispatch_until_killed,
    left_at_kill,
    numbered,
)

MESSAGES = {"postgres": 3_000, "sqlite": 2_000}
MEMBERS = 400
LEASE_S = 15  # as test_kill9.py: a live dispatcher never outlasts its own lease under load
CONCURRENCY = 32
BATCH = 256


def delivered(sim) -> Counter:
    return numbered(message.get("text", "") for member in sim.members.values() for message in member.received)


async def test_kill9_during_a_wecom_fanout_loses_nothing(db, tmp_path):
    from benchmarks.bench_wecom_fanout import add_wecom_inspectors, context_for
    from core import db as dbmod
    from models.messaging import Channel, Outbox, RecipientKind
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
        kill_after = random.Random(f"{SEED}:wecom:{db.dialect}").randint(n // 4, n // 2)
        print(f"\n[{db.dialect}] INSPECTBOT_KILL_SEED={SEED}: the WeCom dispatcher dies after {kill_after} messages")
        await dispatch_until_killed(server, cmd, kill_after, accepted)

        async def quiet() -> bool:
            return not sim._runner.server.connections

        at_kill, before = await left_at_kill("k9w:", quiet, lambda: delivered(sim))
        sent, claimed = at_kill.get("sent", set()), at_kill.get("sending", set())
        in_flight = set(before) & claimed

        await dispatch_the_rest(server, cmd, "k9w:", n)

        duplicates = assert_once_but_the_in_flight(delivered(sim), in_flight, n, accepted(), CONCURRENCY)
        assert set(await Outbox.filter(dedupe_key__startswith="k9w:").values_list("channel", flat=True)) == {
            Channel.WECOM
        }  # every row says where it went
        print(f"[{db.dialect}] {n} WeCom messages: {len(sent)} sent at the kill, {len(duplicates)} duplicates")
    finally:
        await server.close()
        await sim.stop()
