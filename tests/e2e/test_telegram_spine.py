"""The messaging spine end to end: the real python-telegram-bot against the Bot API simulator,
our channel, the inbound log, the handler router, the outbox and the dispatcher."""

from __future__ import annotations

from datetime import timedelta

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from bot.channels.telegram import TelegramChannel
from bot.web import make_app
from models.alerts import Alert
from models.messaging import ChatBinding, InboundEvent, Outbox, OutboxStatus, RecipientKind, Role, Unreachable
from services.identity import create_invite
from services.outbox import Message, enqueue
from tests import builders
from tests.e2e.harness import eventually, spine


async def bind_inspector(s, cert="37020001", name="张伟"):
    await builders.inspector(cert, name)
    user = s.sim.create_user(name)
    code = await create_invite(Role.INSPECTOR, s.clock, cert_no=cert)
    s.sim.send_command(user, "start", code)
    await eventually(lambda: ChatBinding.filter(address=str(user.id)).exists())
    await s.deliver()
    return user


async def test_polling_start_binds_and_welcomes(db):
    async with spine(db) as s:
        user = await bind_inspector(s)
        welcome = await s.sim.wait_for_message(user)
        assert "张伟" in welcome.text and "/tasks" in welcome.text


async def test_unknown_user_is_refused_and_learns_nothing(db):
    async with spine(db) as s:
        await builders.inspector()
        stranger = s.sim.create_user("Mallory")
        s.sim.send_command(stranger, "tasks")
        await eventually(lambda: InboundEvent.filter(sender=str(stranger.id)).exists())
        await s.deliver()
        refusal = await s.sim.wait_for_message(stranger)
        assert "邀请链接" in refusal.text
        assert "张伟" not in refusal.text and "37020001" not in refusal.text
        assert await InboundEvent.get(sender=str(stranger.id)).values_list("outcome", flat=True) == "unknown"


async def test_webhook_checks_secret_stores_once_and_answers_503_when_it_cannot_store(db):
    async with spine(db, mode="send-only") as s:
        channel = TelegramChannel(
            s.sim.token,
            api_url=s.sim.url,
            mode="webhook",
            webhook_secret="s3cret-token",
            on_event=s.rt.on_event,
            webhook_url="http://unused",
        )
        s.rt.channels["telegram"] = channel
        server = TestServer(make_app(s.rt))
        await server.start_server()
        try:
            stranger = s.sim.create_user("Eve")
            update = s.sim.send_text(stranger, "hello")
            url = str(server.make_url("/telegram/webhook"))
            async with aiohttp.ClientSession() as http:
                for headers in ({}, {"X-Telegram-Bot-Api-Secret-Token": "wrong"}):
                    async with http.post(url, json=update, headers=headers) as r:
                        assert r.status == 403
                assert await InboundEvent.all().count() == 0
                good = {"X-Telegram-Bot-Api-Secret-Token": "s3cret-token"}
                async with http.post(url, data=b"{not json", headers=good) as r:
                    assert r.status == 400
                for _ in range(2):  # Telegram redelivers: processed once
                    async with http.post(url, json=update, headers=good) as r:
                        assert r.status == 200
                assert await InboundEvent.all().count() == 1
                assert await Outbox.filter(address=str(stranger.id)).count() == 1
                # the database refuses: 503, so Telegram keeps the update and retries
                await Outbox.all().delete()
                from core import db as dbmod

                await dbmod.close()
                later = s.sim.send_text(stranger, "again")
                async with http.post(url, json=later, headers=good) as r:
                    assert r.status == 503
                await dbmod.init(db)
                assert await InboundEvent.filter(external_id=str(later["update_id"])).count() == 0
        finally:
            await server.close()


async def _queue_to(s, inspector_id: int, n: int = 1):
    await enqueue(
        [
            Message(
                dedupe_key=f"t:{inspector_id}:{i}",
                recipient_kind=RecipientKind.INSPECTOR,
                recipient_id=inspector_id,
                template="team_changed.j2",
                context={"no": i, "draw_ref": "P1/2026-12-01", "plan": "测试计划", "old": "甲", "new": "乙"},
            )
            for i in range(n)
        ],
        s.clock.now(),
    )


async def test_blocked_user_is_held_marked_and_coordinator_alerted(db):
    async with spine(db) as s:
        user = await bind_inspector(s)
        await s.sim.wait_for_message(user)
        insp = await ChatBinding.get(address=str(user.id))
        await builders.department("SCJG")
        s.sim.inject("blocked", chat_id=user.id)
        await _queue_to(s, insp.inspector_id)
        await s.deliver()
        row = await Outbox.get(dedupe_key=f"t:{insp.inspector_id}:0")
        assert row.status == OutboxStatus.HELD and row.last_error == "blocked"  # held, not thrown away
        assert await Unreachable.filter(address=str(user.id)).exists()
        assert (await Alert.get(kind="alert_unreachable")).context["reason"] == "blocked"
        # later messages to the same chat are not tried again
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
        calls = len(s.sim.calls_of("sendMessage"))
        await s.deliver()
        assert (await Outbox.get(dedupe_key="t:after")).status == OutboxStatus.HELD
        assert len(s.sim.calls_of("sendMessage")) == calls


@pytest.mark.parametrize("fault, kind", [("flood", "throttled"), ("bad_gateway", "server"), ("server_error", "server")])
async def test_retryable_errors_back_off_and_then_deliver(db, fault, kind):
    async with spine(db) as s:
        user = await bind_inspector(s)
        await s.sim.wait_for_message(user)
        insp = await ChatBinding.get(address=str(user.id))
        s.sim.inject(fault, chat_id=user.id, retry_after=7)
        await _queue_to(s, insp.inspector_id)
        await s.deliver()
        row = await Outbox.get(dedupe_key=f"t:{insp.inspector_id}:0")
        assert row.status == OutboxStatus.PENDING and row.last_error == kind and row.attempts == 1
        wait = (row.next_attempt_at - s.clock.now()).total_seconds()
        assert wait >= (7 if fault == "flood" else 2)
        await s.deliver()  # not due yet: nothing sent
        assert (await Outbox.get(id=row.id)).status == OutboxStatus.PENDING
        s.clock.advance(timedelta(seconds=wait + 1))
        await s.deliver()
        assert (await Outbox.get(id=row.id)).status == OutboxStatus.SENT
        assert "乙" in (await s.sim.wait_for_message(user)).text


async def test_timeout_is_retried(db):
    async with spine(db) as s:
        user = await bind_inspector(s)
        await s.sim.wait_for_message(user)
        insp = await ChatBinding.get(address=str(user.id))
        s.sim.inject("timeout", chat_id=user.id, seconds=5)
        await _queue_to(s, insp.inspector_id)
        await s.deliver()
        row = await Outbox.get(dedupe_key=f"t:{insp.inspector_id}:0")
        assert row.status == OutboxStatus.PENDING and row.last_error in ("timeout", "server")


async def test_dispatcher_killed_mid_batch_loses_nothing(db):
    async with spine(db) as s:
        user = await bind_inspector(s)
        await s.sim.wait_for_message(user)
        insp = await ChatBinding.get(address=str(user.id))
        await _queue_to(s, insp.inspector_id, n=5)
        claimed = await s.dispatcher.claim(3)  # claimed, then the process "dies" before sending
        assert len(claimed) == 3
        await s.deliver()  # a second dispatcher: only the unclaimed two are due
        assert await Outbox.filter(status=OutboxStatus.SENT, dedupe_key__startswith="t:").count() == 2
        s.clock.advance(timedelta(minutes=3))  # the dead claimer's lease expires
        await s.deliver()
        assert await Outbox.filter(status=OutboxStatus.SENT, dedupe_key__startswith="t:").count() == 5
        texts = [m.text for m in s.sim.messages(user)][1:]
        assert len(texts) == 5


async def test_messages_wait_for_an_address_and_go_when_the_person_binds(db):
    async with spine(db) as s:
        inspector = await builders.inspector("37020009", "李娜")
        await _queue_to(s, inspector.id)
        await s.deliver()
        assert (await Outbox.get(dedupe_key=f"t:{inspector.id}:0")).status == OutboxStatus.NO_ADDRESS
        user = s.sim.create_user("李娜")
        code = await create_invite(Role.INSPECTOR, s.clock, cert_no="37020009")
        s.sim.send_command(user, "start", code)
        await eventually(lambda: ChatBinding.filter(address=str(user.id)).exists())
        await s.deliver()
        texts = [m.text for m in s.sim.messages(user)]
        assert any("乙" in t for t in texts) and any("李娜" in t for t in texts)


async def test_webhook_mode_end_to_end(db):
    """setWebhook with a secret; the simulator pushes updates to our aiohttp app."""
    async with spine(db, mode="send-only") as s:
        server = TestServer(make_app(s.rt))
        await server.start_server()
        channel = TelegramChannel(
            s.sim.token,
            api_url=s.sim.url,
            mode="webhook",
            webhook_secret="hook-secret-1",
            on_event=s.rt.on_event,
            webhook_url=str(server.make_url("/telegram/webhook")),
        )
        s.rt.channels["telegram"] = channel
        s.dispatcher.channels["telegram"] = channel
        await channel.start()
        try:
            user = await bind_inspector(s)
            assert "张伟" in (await s.sim.wait_for_message(user)).text
            assert s.sim.webhook_url == str(server.make_url("/telegram/webhook"))
        finally:
            await channel.stop()
            await server.close()
