"""Inbound events arriving together are committed together (group commit), each one on its own:
stored once, a handler bug failing its own event alone, a database failure refusing its own event."""

from __future__ import annotations

import asyncio
import sqlite3

from tortoise.exceptions import DBConnectionError, OperationalError

from core import db as dbmod
from core.channel import EventKind, InboundEvent
from core.clock import FakeClock
from handlers.router import route
from models.messaging import InboundEvent as InboundRow
from models.messaging import Outbox
from services.inbound import receive, transient
from services.outbox import reply


def sms(n: int, text: str = "你好", external_id: str | None = None) -> InboundEvent:
    return InboundEvent(
        channel="sms", external_id=external_id or f"SM{n:032d}", sender=f"+86138{n:08d}", kind=EventKind.TEXT, text=text
    )


async def test_concurrent_events_are_stored_once_each_in_one_commit(db):
    clock = FakeClock()
    group = dbmod.group()
    before = group.batches
    events = [sms(i) for i in range(20)] + [sms(i) for i in range(0, 20, 4)]  # five delivered twice at once
    results = await asyncio.gather(*(receive(e, route, clock) for e in events))
    assert sum(r.duplicate for r in results) == 5
    assert {r.outcome for r in results if not r.duplicate} == {"survey_none_open"}  # strangers: no survey
    assert await InboundRow.all().count() == 20
    assert await InboundRow.filter(processed_at=None).count() == 0
    assert group.batches - before == 1


async def test_a_poisoned_event_fails_alone_and_the_others_commit(db):
    clock = FakeClock()

    async def poisoned(ctx):
        if ctx.event.text == "poison":
            await reply(ctx.event, "help.j2", {"roles": []}, locale="zh-CN", now=clock.now(), connection=ctx.conn)
            raise RuntimeError("a handler bug")
        return await route(ctx)

    events = [sms(i, "poison" if i == 3 else "你好") for i in range(8)]
    results = await asyncio.gather(*(receive(e, poisoned, clock) for e in events))
    assert [r.outcome for r in results] == ["survey_none_open"] * 3 + ["failed:RuntimeError"] + ["survey_none_open"] * 4
    rows = {r.external_id: r for r in await InboundRow.all()}
    assert len(rows) == 8
    bad = rows[events[3].external_id]
    assert bad.outcome == "failed:RuntimeError" and bad.processed_at is None
    # its handler's reply rolled back with it; the sender is told once
    [apology] = await Outbox.filter(address=events[3].sender)
    assert apology.template == "internal_error.j2"
    assert all(rows[e.external_id].processed_at is not None for e in events if e is not events[3])
    # and the event is not handled again when redelivered
    assert (await receive(events[3], route, clock)).duplicate


async def test_a_database_failure_refuses_its_own_event_and_the_others_commit(db):
    clock = FakeClock()

    async def flaky(ctx):
        if ctx.event.text == "unlucky":
            raise DBConnectionError("connection refused")
        return await route(ctx)

    events = [sms(i, "unlucky" if i == 1 else "你好") for i in range(4)]
    outcomes = await asyncio.gather(*(receive(e, flaky, clock) for e in events), return_exceptions=True)
    assert isinstance(outcomes[1], DBConnectionError)  # the webhook answers 503: the provider retries
    assert [o.outcome for i, o in enumerate(outcomes) if i != 1] == ["survey_none_open"] * 3
    assert await InboundRow.filter(external_id=events[1].external_id).count() == 0
    assert await InboundRow.all().count() == 3
    retried = await receive(events[1], route, clock)
    assert not retried.duplicate and retried.outcome == "survey_none_open"


async def test_the_database_away_refuses_every_event_and_stores_none(sqlite_db):
    """SQLite's write lock held elsewhere past the busy timeout: every event of the batch is
    refused with the (transient) error — the webhooks answer 503 — and none is stored."""
    clock = FakeClock()
    await dbmod.conn().execute_script("PRAGMA busy_timeout=50")
    other = sqlite3.connect(sqlite_db.database_url.removeprefix("sqlite://"), isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        outcomes = await asyncio.gather(*(receive(sms(i), route, clock) for i in range(5)), return_exceptions=True)
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert all(isinstance(o, OperationalError) and transient(o) for o in outcomes), outcomes
    assert await InboundRow.all().count() == 0
    assert not (await receive(sms(0), route, clock)).duplicate  # stored when the provider retries


async def test_commands_and_buttons_get_a_transaction_of_their_own(db):
    """They may start long work (a draw, a report): never batched with other events."""
    clock = FakeClock()
    group = dbmod.group()
    before = (group.batches, group.items)
    command = InboundEvent(
        channel="telegram", external_id="7001", sender="77", kind=EventKind.COMMAND, command="help", text="/help"
    )
    assert (await receive(command, route, clock)).outcome == "unknown"
    assert (group.batches, group.items) == before
    assert await receive(sms(1), route, clock)
    assert group.items == before[1] + 1
    assert await InboundRow.all().count() == 2
