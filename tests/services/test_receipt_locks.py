"""Lock order of the transactions around delivery receipts and poll answers, on PostgreSQL
(docs/messaging.md, "Lock order around receipts").

The interleavings are forced, not hoped for: a group commit of inbound events is held between
two of its events (a work of its own in the same batch, waiting on an ``asyncio.Event``) while
the dispatcher's outcome writer records the id a receipt waits for, and is let go only once a
backend is seen waiting for a lock (``pg_locks``). Every party is the production code: the
events go through ``services.inbound.receive`` and the handler router, the send is recorded by
``bot.dispatcher.OutcomeWriter``.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from datetime import timedelta

import asyncpg
import pytest

from bot.channels.sms_twilio import status_event
from bot.dispatcher import SENT, OutcomeWriter
from core import db as dbmod
from core.channel import EventKind, InboundEvent
from core.clock import FakeClock
from handlers.router import route
from models.messaging import InboundEvent as InboundRow
from models.messaging import Outbox, OutboxStatus, WaitingReceipt
from models.surveys import Survey, SurveyStatus
from services.inbound import receive
from services.surveys.enter import enter_pool
from services.surveys.receipts import sweep_receipts
from tests.services import survey_world
from tests.services.survey_world import MOBILES, MORNING

_ids = itertools.count(1)


@pytest.fixture
async def pg(db):
    if db.database_url.startswith("sqlite"):
        pytest.skip("lock order: PostgreSQL only (SQLite has one writer)")
    return db


def receipt(sid: str, to: str, status: str, error_code: str = "") -> InboundEvent:
    return status_event({"MessageSid": sid, "MessageStatus": status, "To": to, "ErrorCode": error_code})


def sms(sender: str, text: str) -> InboundEvent:
    return InboundEvent(
        channel="sms", external_id=f"SMtext{next(_ids):028d}", sender=sender, kind=EventKind.TEXT, text=text
    )


def vote(chat: str, poll_id: str, option: int) -> InboundEvent:
    return InboundEvent(
        channel="telegram",
        external_id=f"9{next(_ids):08d}",
        sender=chat,
        kind=EventKind.POLL_ANSWER,
        poll_id=poll_id,
        option_ids=(option,),
    )


async def lock_waits(url: str, timeout: float = 5.0) -> int:
    """Wait until some backend of this database waits for a lock (or ``timeout``); how many do."""
    conn = await asyncpg.connect(url.replace("postgres://", "postgresql://", 1))
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            n = await conn.fetchval(
                "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                "WHERE NOT l.granted AND a.datname = current_database()"
            )
            if n or loop.time() >= deadline:
                return n
            await asyncio.sleep(0.01)
    finally:
        await conn.close()


async def batch_held_between(
    first: InboundEvent, second: InboundEvent, clock, reached: asyncio.Event, go: asyncio.Event
):
    """``first`` and ``second`` in one group commit, the batch held between them (``reached``)
    until ``go``."""

    async def hold(conn) -> None:
        reached.set()
        await go.wait()

    return await asyncio.gather(
        receive(first, route, clock),
        dbmod.group_commit(hold),
        receive(second, route, clock),
        return_exceptions=True,
    )


async def outcome(event: InboundEvent) -> str:
    return (await InboundRow.get(channel=event.channel, external_id=event.external_id)).outcome


async def test_a_reply_and_an_unmatched_receipt_in_one_batch_while_the_writer_records_a_waited_id(pg, caplog):
    """The deadlock: a batch locks survey S (its entity's SMS reply), the writer records the id of
    S's invitation, for which an ``undelivered`` receipt waits, and then the batch's next event, a
    receipt for an id no send has yet, asks for the advisory lock the writer holds shared.
    Before the fix the writer applied the waiting receipt under that lock and waited for S:
    PostgreSQL broke the cycle after deadlock_timeout (40P01) and the receipt was left to the
    sweep. Now both commit, the receipt is applied when its id is recorded, nothing is lost."""
    caplog.set_level(logging.INFO)
    clock = FakeClock(MORNING)
    w = await survey_world.build("DD")
    surveys = []
    for i in range(2):
        assert await enter_pool(w.inspections[i].id, clock.now()) == "survey_sent"
        surveys.append(await Survey.get(inspection_id=w.inspections[i].id))
    lost, other = surveys
    invite = await Outbox.get(dedupe_key=f"survey:{lost.id}:invite")
    early = receipt("SMlost", MOBILES[0], "undelivered", "30003")  # came before the 201
    assert (await receive(early, route, clock)).outcome == "delivery_waiting"

    reached, go = asyncio.Event(), asyncio.Event()
    reply = sms(MOBILES[0], "1")  # locks the entity's live surveys, `lost` among them
    unmatched = receipt("SMother", MOBILES[1], "delivered")  # the other survey's: no row has its id yet
    batch = asyncio.create_task(batch_held_between(reply, unmatched, clock, reached, go))
    await asyncio.wait_for(reached.wait(), 5)  # the reply is handled, its batch not committed
    writer = OutcomeWriter(clock)
    write = asyncio.create_task(writer.write(SENT, ["SMlost", clock.now(), invite.id], sent=("sms", "SMlost")))
    assert await lock_waits(pg.database_url) >= 1  # the writer (or what it starts) waits for the batch's lock on S
    go.set()
    results = await asyncio.wait_for(batch, 15)
    await asyncio.wait_for(write, 15)

    assert [r.outcome for r in results if not isinstance(r, BaseException) and r is not None] == [
        "survey_sent",
        "delivery_waiting",
    ], results
    assert not any(isinstance(r, BaseException) for r in results), results
    assert "deadlock" not in caplog.text.lower()
    # the waiting receipt was applied once its id was recorded, not left to the sweep
    assert (await Survey.get(id=lost.id)).status == SurveyStatus.UNDELIVERABLE
    row = await Outbox.get(id=invite.id)
    assert (row.status, row.provider_id, row.last_error) == (OutboxStatus.DEAD, "SMlost", "undelivered:30003")
    assert await outcome(early) == "survey_undeliverable"
    assert await outcome(unmatched) == "delivery_waiting"
    assert await WaitingReceipt.filter(provider_id="SMlost").count() == 0
    # the unmatched one is applied when its own id is recorded; nothing is left over
    other_invite = await Outbox.get(dedupe_key=f"survey:{other.id}:invite")
    clock.advance(timedelta(seconds=1))
    await writer.write(SENT, ["SMother", clock.now(), other_invite.id], sent=("sms", "SMother"))
    assert (await Outbox.get(id=other_invite.id)).status == OutboxStatus.DELIVERED
    assert await outcome(unmatched) == "delivered"
    assert not await WaitingReceipt.exists()
    assert await sweep_receipts(clock.now()) == {"applied": 0, "expired": 0}
