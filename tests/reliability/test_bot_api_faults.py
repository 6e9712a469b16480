"""Fault 5: Bot API faults from the simulator, end to end, each ending in the documented outcome.

The real python-telegram-bot behind our TelegramChannel, the dispatcher and our aiohttp webhook,
against the Bot API simulator (docs/simulators.md). 429, 403 blocked, 500 and 502 are proven in
``tests/e2e/test_telegram_spine.py``; here: 400 "chat not found" (held, the address recorded
unreachable, later messages not tried but held, the coordinator told on their own chat), a
timeout after Telegram did deliver (sent again: the documented duplicate, at most one per row in
flight), a slow answerCallbackQuery that no longer holds the webhook's answer (the press is
answered in the background), and a webhook slower than Telegram's delivery timeout — slowed
(PostgreSQL) by a lock in the database — whose update comes again and again and is processed once.
"""

from __future__ import annotations

import contextlib
import logging
from datetime import timedelta

import asyncpg
from aiohttp import web

from bot.channels.telegram import TelegramChannel
from bot.web import make_app
from core import db as dbmod
from core.settings import Settings
from models.alerts import Alert
from models.messaging import ChatBinding, InboundEvent, Outbox, OutboxStatus, RecipientKind, Role, Unreachable
from services.alerts import DIGEST_WAIT, send_digests
from services.identity import create_invite
from services.outbox import Message, enqueue
from tests.conftest import _truncate_all, postgres_url_or_skip
from tests.e2e.harness import eventually, spine
from tests.e2e.test_telegram_spine import _queue_to, bind_inspector
from tests.reliability.procs import free_port

SECRET = "slow-webhook-secret"


@contextlib.asynccontextmanager
async def webhook_spine(settings):
    """The spine with our webhook served as ``Service.start`` serves it (aiohttp's TestServer
    would cancel a handler whose client hung up; the service's AppRunner lets it finish) and the
    simulator delivering updates to it."""
    async with spine(settings, mode="send-only") as s:
        runner = web.AppRunner(make_app(s.rt), access_log=None)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        channel = TelegramChannel(
            s.sim.token,
            api_url=s.sim.url,
            mode="webhook",
            webhook_secret=SECRET,
            on_event=s.rt.on_event,
            webhook_url=f"http://127.0.0.1:{port}/telegram/webhook",
        )
        s.rt.channels["telegram"] = s.dispatcher.channels["telegram"] = channel
        await channel.start()
        try:
            yield s
        finally:
            await channel.stop()
            await runner.cleanup()


async def bind_coordinator(s, name="王芳", departments=("SCJG",)):
    user = s.sim.create_user(name)
    code = await create_invite(Role.COORDINATOR, s.clock, departments=departments)
    s.sim.send_command(user, "start", code)
    await eventually(lambda: ChatBinding.filter(address=str(user.id), role=Role.COORDINATOR).exists())
    await s.deliver()
    await s.sim.wait_for_message(user)  # the welcome
    return user


async def test_chat_not_found_is_held_marked_and_the_coordinator_told(db):
    async with spine(db) as s:
        user = await bind_inspector(s)
        await s.sim.wait_for_message(user)
        coordinator = await bind_coordinator(s)
        insp = await ChatBinding.get(address=str(user.id), role=Role.INSPECTOR)
        s.sim.inject("chat_not_found", chat_id=user.id)
        await _queue_to(s, insp.inspector_id)
        await s.deliver()

        refused = [c for c in s.sim.calls_of("sendMessage") if str(c.params.get("chat_id")) == str(user.id)]
        assert (refused[-1].status, refused[-1].description) == (400, "Bad Request: chat not found")
        row = await Outbox.get(dedupe_key=f"t:{insp.inspector_id}:0")
        assert row.status == OutboxStatus.HELD and row.last_error == "chat_not_found" and row.attempts == 0
        assert await Unreachable.filter(channel="telegram", address=str(user.id), reason="chat_not_found").exists()
        assert (await ChatBinding.get(id=insp.id)).reachable is False
        assert (await Alert.get(kind="alert_unreachable")).context["reason"] == "chat_not_found"
        # the coordinator of the inspector's department is told, on their own chat, in the next digest
        s.clock.advance(DIGEST_WAIT)
        assert await send_digests(s.clock.now()) == 1
        await s.deliver()
        alert = await s.sim.wait_for_message(coordinator)
        assert "张伟" in alert.text and "无法联系" in alert.text and "找不到该聊天" in alert.text

        # later messages to that chat are held without a call, and without a new alert
        await enqueue(
            [
                Message(
                    dedupe_key="t:after",
                    recipient_kind=RecipientKind.INSPECTOR,
                    recipient_id=insp.inspector_id,
                    template="recusal_cancelled.j2",
                )
            ],
            s.clock.now(),
        )
        calls = len(s.sim.calls)
        await s.deliver()
        later = await Outbox.get(dedupe_key="t:after")
        assert later.status == OutboxStatus.HELD and later.last_error == "unreachable"
        assert len(s.sim.calls) == calls
        assert await Alert.filter(kind="alert_unreachable").count() == 1


async def test_a_timeout_after_telegram_delivered_is_sent_again_once(db):
    """A send whose answer never came, though Telegram carried it out: at least once, so the
    user gets it twice (the documented duplicate), and the row is sent, not sent a third time."""
    async with spine(db) as s:
        user = await bind_inspector(s)
        await s.sim.wait_for_message(user)
        insp = await ChatBinding.get(address=str(user.id), role=Role.INSPECTOR)
        impatient = TelegramChannel(s.sim.token, api_url=s.sim.url, mode="send-only", timeout=0.3)
        await impatient.start()
        s.dispatcher.channels["telegram"] = impatient
        try:
            s.sim.inject("timeout", method="sendMessage", chat_id=user.id, seconds=0.6, deliver=True)
            await _queue_to(s, insp.inspector_id)
            await s.deliver()
            row = await Outbox.get(dedupe_key=f"t:{insp.inspector_id}:0")
            assert row.status == OutboxStatus.PENDING and row.last_error == "timeout" and row.attempts == 1
            await eventually(lambda: len(s.sim.messages(user)) == 2)  # the held call was carried out
            s.clock.advance(timedelta(seconds=3))
            await s.deliver()
            row = await Outbox.get(id=row.id)
            assert row.status == OutboxStatus.SENT and row.attempts == 2
            await s.deliver()
            texts = [m.text for m in s.sim.messages(user)][1:]
            assert len(texts) == 2 and texts[0] == texts[1] and "乙" in texts[0]
        finally:
            await impatient.stop()


async def test_a_slow_answer_to_a_button_does_not_hold_the_webhook(db, caplog):
    """Our webhook answers a button press once it is committed, and answers the press itself
    (answerCallbackQuery: it only stops the client's spinner) in the background. Telegram holds
    that call longer than its own delivery timeout: our webhook's answer still arrives in time, so
    the update is delivered once (no "Read timeout expired", no second delivery), stored and
    handled once, its reply sent, and the press answered once, later."""
    async with webhook_spine(db) as s:
        user = await bind_inspector(s)
        await s.sim.wait_for_message(user)
        insp = await ChatBinding.get(address=str(user.id), role=Role.INSPECTOR)
        await enqueue(
            [
                Message(
                    dedupe_key="t:task",
                    recipient_kind=RecipientKind.INSPECTOR,
                    recipient_id=insp.inspector_id,
                    template="team_changed.j2",
                    context={
                        "no": 1,
                        "draw_ref": "P1/2026-12-01",
                        "plan": "测试计划",
                        "old": "甲",
                        "new": "乙",
                        "buttons": [[{"label": "btn_cancel", "data": "x:y"}]],
                    },
                )
            ],
            s.clock.now(),
        )
        await s.deliver()
        message = await s.sim.wait_for_message(user)

        caplog.set_level(logging.INFO, logger="bot.runtime")
        hook = s.sim.delivery.webhook
        delivered = hook.delivered
        s.sim.delivery.webhook_timeout = 0.3
        s.sim.inject("timeout", method="answerCallbackQuery", seconds=1.0, deliver=True)  # slow, then answered
        press = s.sim.press_button(user, message.message_id, data="x:y")
        await eventually(lambda: s.sim.pending_update_count == 0, timeout=5)

        assert hook.errors == [] and hook.delivered == delivered + 1  # answered in time, delivered once
        assert await InboundEvent.filter(external_id=str(press["update_id"])).count() == 1
        seen = [r.getMessage() for r in caplog.records if f"button {press['update_id']} ->" in r.getMessage()]
        assert len(seen) == 1 and not seen[0].endswith("-> duplicate")
        assert s.sim.callback_answers(user) == []  # the spinner's answer is still under way
        await s.deliver()
        replies = await Outbox.filter(dedupe_key__startswith=f"reply:telegram:{press['update_id']}:")
        assert len(replies) == 1 and replies[0].status == OutboxStatus.SENT
        assert len(s.sim.messages(user)) == 3  # welcome, the task, one reply to the press
        await eventually(lambda: len(s.sim.callback_answers(user)) == 1)


async def test_a_webhook_slowed_by_the_database_is_processed_once(tmp_path, caplog):
    """PostgreSQL: another session locks ``inbound_event`` against writes, so our webhook waits
    on its INSERT past Telegram's delivery timeout, again and again: several copies of the same
    update wait side by side. When the lock goes they all insert at once; one stores and
    answers the update, the others find it stored."""
    url = postgres_url_or_skip()
    settings = Settings(database_url=url, data_dir=tmp_path)
    await dbmod.init(settings)
    locker = None
    try:
        await _truncate_all()
        async with webhook_spine(settings) as s:
            caplog.set_level(logging.INFO, logger="bot.runtime")
            s.sim.delivery.webhook_timeout = 0.3
            locker = await asyncpg.connect(url.replace("postgres://", "postgresql://", 1), timeout=5)
            await locker.execute("BEGIN; LOCK TABLE inbound_event IN EXCLUSIVE MODE")
            stranger = s.sim.create_user("Eve")
            update = s.sim.send_text(stranger, "hello")
            await eventually(lambda: s.sim.delivery.webhook.errors.count("Read timeout expired") >= 3, timeout=10)
            await locker.execute("ROLLBACK")

            await eventually(lambda: s.sim.pending_update_count == 0, timeout=10)

            def seen() -> list[str]:  # one line per delivery, once it is answered
                return [r.getMessage() for r in caplog.records if f"text {update['update_id']} ->" in r.getMessage()]

            await eventually(lambda: len(seen()) >= 4, timeout=10)  # the 3 that timed out and the one accepted
            assert sum(not m.endswith("-> duplicate") for m in seen()) == 1, seen()
            assert await InboundEvent.filter(external_id=str(update["update_id"])).count() == 1
            await s.deliver()
            assert len(s.sim.messages(stranger)) == 1
    finally:
        if locker is not None:
            await locker.close()
        await dbmod.close()
