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
import random
from datetime import timedelta
from functools import partial

import asyncpg

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
from tests.conftest import _truncate_all
from tests.services import survey_world
from tests.services.survey_world import MOBILES, MORNING

_ids = itertools.count(1)


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


async def race(first: InboundEvent, second: InboundEvent, clock, party, url: str) -> list:
    """``first`` and ``second`` through ``receive`` in one group commit, the batch held between
    them while ``party()`` runs until some backend waits for a lock; then both finish. Returns
    the batch's results (exceptions included) after asserting that nobody failed or hung."""
    reached, go = asyncio.Event(), asyncio.Event()

    async def hold(conn) -> None:
        reached.set()
        await go.wait()

    batch = asyncio.gather(
        receive(first, route, clock),
        dbmod.group_commit(hold),
        receive(second, route, clock),
        return_exceptions=True,
    )
    await asyncio.wait_for(reached.wait(), 5)  # ``first`` handled, its batch not committed
    other = asyncio.create_task(party())
    assert await lock_waits(url) >= 1  # the party waits for a lock the batch holds
    go.set()
    results = await asyncio.wait_for(batch, 15)
    await asyncio.wait_for(other, 15)
    assert not any(isinstance(r, BaseException) for r in results), results
    return results


async def outcome(event: InboundEvent) -> str:
    return (await InboundRow.get(channel=event.channel, external_id=event.external_id)).outcome


async def test_a_reply_and_an_unmatched_receipt_in_one_batch_while_the_writer_records_a_waited_id(pg_db, caplog):
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

    reply = sms(MOBILES[0], "1")  # locks the entity's live surveys, `lost` among them
    unmatched = receipt("SMother", MOBILES[1], "delivered")  # the other survey's: no row has its id yet
    writer = OutcomeWriter(clock)

    async def record() -> None:
        await writer.write(SENT, ["SMlost", clock.now(), invite.id], sent=("sms", "SMlost"))

    results = await race(reply, unmatched, clock, record, pg_db.database_url)
    assert [r.outcome for r in results if r is not None] == ["survey_sent", "delivery_waiting"]
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


async def test_a_chat_message_and_an_unmatched_receipt_in_one_batch_while_the_writer_records_a_voted_poll(
    pg_db, caplog
):
    """The same cycle through a poll: the batch locks the chat's surveys (the entity types in its
    chat), the writer records the id of a poll the entity already voted on (the vote waits), and
    the batch's next event asks for the advisory lock. The vote is applied after the writer's
    commit, once the batch has committed; nothing fails."""
    caplog.set_level(logging.INFO)
    clock = FakeClock(MORNING)
    w = await survey_world.build("DD")
    await survey_world.link_chat(w.entities[0], "700")
    assert await enter_pool(w.inspections[0].id, clock.now()) == "survey_sent"
    assert await enter_pool(w.inspections[1].id, clock.now()) == "survey_sent"
    polled = await Survey.get(inspection_id=w.inspections[0].id)
    assert polled.channel.value == "telegram"
    poll = await Outbox.get(dedupe_key=f"survey:{polled.id}:poll:credentials")
    early = vote("700", "poll-1", 0)  # the entity voted before the poll's id was stored
    assert (await receive(early, route, clock)).outcome == "survey_poll_waiting"

    typed = InboundEvent(channel="telegram", external_id="8000001", sender="700", kind=EventKind.TEXT, text="你好")
    unmatched = receipt("SMother", MOBILES[1], "delivered")
    writer = OutcomeWriter(clock)

    async def record() -> None:
        await writer.write(SENT, ["poll-1", clock.now(), poll.id], sent=("telegram", "poll-1"))

    await race(typed, unmatched, clock, record, pg_db.database_url)
    assert "deadlock" not in caplog.text.lower()
    s = await Survey.get(id=polled.id)
    assert s.answers == {"credentials": True} and s.poll_question == "improper"
    assert await outcome(early) == "survey_sent"
    assert await outcome(unmatched) == "delivery_waiting"
    assert await WaitingReceipt.filter(provider_id="poll-1").count() == 0


async def test_a_second_receipt_for_a_send_whose_waiting_receipt_is_being_applied(pg_db, caplog):
    """The writer has committed the invitation's id and is applying the ``undelivered`` receipt
    that waited for it (survey, then row, then waiting receipt) while a batch holds the survey
    (the entity's SMS) and then gets another final status for that send. Both take the survey
    first, so the second waits for the batch instead of holding the row the batch wants; the
    batch applies the waiting receipt before its own (it came first), once."""
    caplog.set_level(logging.INFO)
    clock = FakeClock(MORNING)
    w = await survey_world.build("D")
    assert await enter_pool(w.inspections[0].id, clock.now()) == "survey_sent"
    lost = await Survey.get(inspection_id=w.inspections[0].id)
    invite = await Outbox.get(dedupe_key=f"survey:{lost.id}:invite")
    early = receipt("SMlost", MOBILES[0], "undelivered", "30003")
    assert (await receive(early, route, clock)).outcome == "delivery_waiting"

    reply = sms(MOBILES[0], "1")
    late = receipt("SMlost", MOBILES[0], "failed", "30008")  # its id is recorded by now
    writer = OutcomeWriter(clock)

    async def record() -> None:
        await writer.write(SENT, ["SMlost", clock.now(), invite.id], sent=("sms", "SMlost"))

    results = await race(reply, late, clock, record, pg_db.database_url)
    assert [r.outcome for r in results if r is not None] == ["survey_sent", "undelivered"]
    assert "deadlock" not in caplog.text.lower()
    assert await outcome(early) == "survey_undeliverable"  # applied once, by the batch, before `late`
    assert (await Survey.get(id=lost.id)).status == SurveyStatus.UNDELIVERABLE
    assert (await Outbox.get(id=invite.id)).last_error == "failed:30008"
    assert not await WaitingReceipt.exists()


async def test_the_sweep_applying_a_receipt_while_a_batch_holds_its_survey(pg_db, caplog):
    """The ``receipts`` sweep takes each id's locks in the same order as the batch's receipts:
    it waits for the survey, holding nothing the batch wants, and finds the receipt applied."""
    caplog.set_level(logging.INFO)
    clock = FakeClock(MORNING)
    w = await survey_world.build("D")
    assert await enter_pool(w.inspections[0].id, clock.now()) == "survey_sent"
    lost = await Survey.get(inspection_id=w.inspections[0].id)
    early = receipt("SMlost", MOBILES[0], "undelivered", "30003")
    assert (await receive(early, route, clock)).outcome == "delivery_waiting"
    await Outbox.filter(dedupe_key=f"survey:{lost.id}:invite").update(status=OutboxStatus.SENT, provider_id="SMlost")

    swept: dict = {}

    async def sweep() -> None:
        swept.update(await sweep_receipts(clock.now()))

    await race(sms(MOBILES[0], "1"), receipt("SMlost", MOBILES[0], "failed", "30008"), clock, sweep, pg_db.database_url)
    assert "deadlock" not in caplog.text.lower()
    assert swept == {"applied": 0, "expired": 0}  # the batch applied it first, once
    assert await outcome(early) == "survey_undeliverable"
    assert not await WaitingReceipt.exists()


async def test_an_event_broken_off_by_a_deadlock_in_its_batch_is_handled_again_after_that_batch(pg_db, caplog):
    """The second line. The events of one batch take their locks in the order they came, so two
    instances' batches can still lock two surveys in opposite orders; PostgreSQL breaks one
    event off (40P01). That event stored nothing; it is handled again in the next batch, after
    the commit of the one whose locks it met — never recorded ``failed``, never lost.

    The other instance's batch is a transaction of the test, holding the second survey and then
    asking for the first."""
    caplog.set_level(logging.INFO)
    clock = FakeClock(MORNING)
    w = await survey_world.build("DD")
    first_survey, second_survey = [await surveyed_sms(w, clock, i) for i in range(2)]
    other = await asyncpg.connect(pg_db.database_url.replace("postgres://", "postgresql://", 1))
    try:
        tx = other.transaction()
        await tx.start()
        await other.execute("SELECT id FROM survey WHERE id = $1 FOR UPDATE", second_survey.id)
        reached, go = asyncio.Event(), asyncio.Event()

        async def hold(conn) -> None:
            reached.set()
            await go.wait()

        first, second = sms(MOBILES[0], "1"), sms(MOBILES[1], "1")
        batch = asyncio.gather(receive(first, route, clock), dbmod.group_commit(hold), receive(second, route, clock))
        await asyncio.wait_for(reached.wait(), 5)  # the batch holds the first survey
        go.set()
        assert await lock_waits(pg_db.database_url) >= 1  # its second event waits for the other's survey

        async def other_side() -> None:
            await other.execute("SELECT id FROM survey WHERE id = $1 FOR UPDATE", first_survey.id)  # the cycle
            await tx.commit()

        closing = asyncio.create_task(other_side())
        results = await asyncio.wait_for(batch, 15)
        await asyncio.wait_for(closing, 15)
    finally:
        await other.close()
    assert [r.outcome for r in results if r is not None] == ["survey_sent", "survey_sent"]
    assert "40P01" in caplog.text and "handled again" in caplog.text
    assert await outcome(first) == await outcome(second) == "survey_sent"
    for s in (first_survey, second_survey):
        assert (await Survey.get(id=s.id)).answers == {"credentials": True}
    assert not await InboundRow.filter(outcome__startswith="failed").exists()


async def surveyed_sms(w, clock, i: int) -> Survey:
    assert await enter_pool(w.inspections[i].id, clock.now()) == "survey_sent"
    return await Survey.get(inspection_id=w.inspections[i].id)


STRESS_ROUNDS = 8


async def test_stress_receipts_replies_sends_and_sweeps_at_random_never_deadlock(pg_db, caplog):
    """The interleavings left to chance: eight SMS surveys; for each, its send recorded by the
    outcome writer, a final receipt (half of them ``undelivered``: a survey lock), a few replies
    from the entity (survey locks in inbound batches) and the ``receipts`` sweep, all started at
    random moments within a few milliseconds, so receipts come before and after their ids, in
    batches with replies and with one another. Seeded job order, eight rounds, ≈ 5 s. Every
    receipt is applied once, none waits at the end, nothing is broken off. Against the code
    before the lock order it met 40P01 in 1 of 8 runs (the timing is the scheduler's): the
    forced interleavings above are the reproduction; this looks for cycles they do not name."""
    caplog.set_level(logging.INFO)
    clock = FakeClock(MORNING)
    n = len(MOBILES)
    for round_ in range(STRESS_ROUNDS):
        rnd = random.Random(round_)
        await _truncate_all()
        w = await survey_world.build("D" * n)
        surveys = [await surveyed_sms(w, clock, i) for i in range(n)]
        invites = [await Outbox.get(dedupe_key=f"survey:{s.id}:invite") for s in surveys]
        statuses = [rnd.choice(("delivered", "undelivered")) for _ in range(n)]
        receipts = [receipt(f"SM{round_}x{i}", MOBILES[i], statuses[i], "30003") for i in range(n)]
        writer = OutcomeWriter(clock)

        async def later(work, start: float, spread: float, rnd=rnd):
            await asyncio.sleep(start + rnd.random() * spread)
            return await work()

        jobs = []  # (work, from, within): receipts first, then sends and replies, overlapping
        for i in range(n):
            sid = f"SM{round_}x{i}"
            record = partial(writer.write, SENT, [sid, clock.now(), invites[i].id], sent=("sms", sid))
            jobs.append((record, 0.004, 0.02))
            jobs.append((partial(receive, receipts[i], route, clock), 0.0, 0.012))
            for text in rnd.sample(["1", "是", "否", "5", "没有"], 3):
                jobs.append((partial(receive, sms(MOBILES[i], text), route, clock), 0.0, 0.024))
        jobs += [(partial(sweep_receipts, clock.now()), 0.01, 0.01) for _ in range(2)]
        rnd.shuffle(jobs)
        results = await asyncio.wait_for(asyncio.gather(*(later(*j) for j in jobs), return_exceptions=True), 30)
        assert not [r for r in results if isinstance(r, BaseException)], round_
        await sweep_receipts(clock.now())  # what a lost race left (none expected; never twice)
        for i in range(n):
            row = await Outbox.get(id=invites[i].id)
            want = OutboxStatus.DELIVERED if statuses[i] == "delivered" else OutboxStatus.DEAD
            assert row.status == want, (round_, i)
            assert await outcome(receipts[i]) in {"delivered", "survey_undeliverable", "undelivered"}, (round_, i)
        assert not await WaitingReceipt.exists()
        assert not await InboundRow.filter(outcome__startswith="failed").exists()
    assert "deadlock" not in caplog.text.lower()
    assert "40P01" not in caplog.text
