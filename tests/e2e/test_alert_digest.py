"""Bulk alerts come as one digest per coordinator (services.alerts.send_digests), driven by the
scheduler's sweeps with a controllable clock and seen through the real PTB and the simulator:
every escalation is an alert row listed by /alerts, but a coordinator's chat gets one message
for the lot; a crash inside the digest's transaction sends nothing and loses nothing; a single
urgent alert still goes out at once."""

from __future__ import annotations

import contextlib
from datetime import timedelta

import pytest

from core import db as core_db
from models.alerts import Alert
from models.draws import Assignment
from models.messaging import Outbox
from scheduler import PlannedFire, Scheduler
from services import plans
from services.alerts import DIGEST_NAMED, DIGEST_WAIT, send_digests
from tests.builders import scheduled_draw
from tests.e2e.harness import spine
from tests.e2e.test_onsite_chat import bind_coordinator
from tests.services import draw_world as world


async def _draw(s, tmp_path) -> None:
    """A draw of every entity; the plan replaces an inspector who stays silent."""
    await world.build(n_entities=15, n_scjg=8, n_wsj=0)
    path = world.plan_file(tmp_path, "P1", a="1", b="1", c="1")
    path.write_text(path.read_text().replace("[response]\n", '[response]\non_silence = "replace"\n'))
    await plans.add_plan(path, s.clock)
    await scheduled_draw("P1", clock=s.clock, zone=world.ZONE)


async def _escalate_all(s) -> Scheduler:
    """Nobody answers: every assignment is reminded, then escalated by one sweep."""
    first = await Assignment.all().order_by("id").first()
    sched = Scheduler(s.rt)
    s.clock.set(first.deadline + timedelta(minutes=1))
    await sched.run_due()
    s.clock.set(first.deadline + (first.deadline - first.created_at) + timedelta(minutes=1))
    await sched.run_due()
    return sched


def _digests(chat) -> list:
    return [m for m in chat.new() if "预警汇总" in m.text]


async def test_bulk_escalations_come_as_one_digest_per_coordinator(db, tmp_path):
    async with spine(db, clock=world.clock()) as s:
        await _draw(s, tmp_path)
        one, two = await bind_coordinator(s), await bind_coordinator(s)
        sched = await _escalate_all(s)
        escalated = await Alert.filter(kind="no_response").count()
        assert escalated == 30  # every assignment of the draw
        total = await Alert.all().count()  # with the no-response recusals they triggered
        assert await Alert.filter(kind="recusal_recorded").count() >= 1
        await s.deliver()
        assert one.new() == [] and two.new() == []  # waiting for the digest, not one by one

        s.clock.advance(DIGEST_WAIT)
        await sched.run_due()
        await s.deliver()
        for chat in (one, two):
            got = chat.new()
            assert len(got) == 1, [m.text for m in got]
            text = got[0].text
            assert "预警汇总" in text and f"新增 {total} 条预警" in text and f"逾期未答复 {escalated} 条" in text
            assert (
                text.count("\n• ") == DIGEST_NAMED and f"另有 {total - DIGEST_NAMED} 条" in text and "/alerts" in text
            )
            first = await Alert.filter(kind="no_response").order_by("id").first()
            assert first.context["name"] in text and f"#{first.id}" not in text  # by reference, not row id
        assert not await Alert.filter(digest_pending=True).exists()

        listed = (await one.command("alerts"))[-1].text  # every alert is still listed
        assert f"共 {total} 条" in listed

        s.clock.advance(DIGEST_WAIT)
        await sched.run_due()  # nothing pending: nothing sent again
        await s.deliver()
        assert one.new() == [] and two.new() == []


_TRIGGER = {
    "sqlite": [
        "CREATE TRIGGER crash_digest BEFORE INSERT ON outbox WHEN NEW.template = 'alert_digest.j2' "
        "BEGIN SELECT RAISE(ABORT, 'crash in the digest'); END"
    ],
    "postgres": [
        "CREATE FUNCTION crash_digest() RETURNS trigger AS $$ BEGIN "
        "IF NEW.template = 'alert_digest.j2' THEN RAISE EXCEPTION 'crash in the digest'; END IF; "
        "RETURN NEW; END $$ LANGUAGE plpgsql",
        "CREATE TRIGGER crash_digest BEFORE INSERT ON outbox FOR EACH ROW EXECUTE FUNCTION crash_digest()",
    ],
}
_UNTRIGGER = {
    "sqlite": ["DROP TRIGGER IF EXISTS crash_digest"],
    "postgres": ["DROP TRIGGER IF EXISTS crash_digest ON outbox", "DROP FUNCTION IF EXISTS crash_digest()"],
}


@contextlib.asynccontextmanager
async def _crashing_digest():
    """The database refuses the digest's outbox rows: a failure inside the digest's transaction,
    after its alerts were claimed."""
    for statement in _TRIGGER[core_db.dialect()]:
        await core_db.conn().execute_script(statement)
    try:
        yield
    finally:
        for statement in _UNTRIGGER[core_db.dialect()]:
            await core_db.conn().execute_script(statement)


async def test_a_crash_mid_digest_sends_nothing_twice_and_loses_nothing(db, tmp_path):
    async with spine(db, clock=world.clock()) as s:
        await _draw(s, tmp_path)
        one = await bind_coordinator(s)
        await _escalate_all(s)
        pending = await Alert.filter(digest_pending=True).count()
        assert pending == await Alert.all().count() and pending >= 30
        s.clock.advance(DIGEST_WAIT)
        async with _crashing_digest():
            with pytest.raises(Exception, match="crash in the digest"):
                await send_digests(s.clock.now())
        # rolled back: still pending, nothing queued
        assert await Alert.filter(digest_pending=True).count() == pending
        assert not await Outbox.filter(template="alert_digest.j2").exists()

        assert await send_digests(s.clock.now()) == pending  # the next run tells them all
        assert await send_digests(s.clock.now()) == 0  # and only once
        assert await Outbox.filter(template="alert_digest.j2").count() == 1
        await s.deliver()
        assert len(_digests(one)) == 1


async def test_an_urgent_alert_is_still_immediate(db, tmp_path):
    async with spine(db, clock=world.clock()) as s:
        await _draw(s, tmp_path)
        one = await bind_coordinator(s)
        sched = await _escalate_all(s)
        now = s.clock.now()
        await sched.record_missed(PlannedFire("draw:P1:missed", "draw", "P1", now, now))  # no wait, no sweep
        await s.deliver()
        got = one.new()
        assert len(got) == 1 and "P1" in got[0].text and "预警汇总" not in got[0].text
        assert await Alert.filter(kind="scheduler_missed", digest_pending=False).count() == 1
