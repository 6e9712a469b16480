"""Fault 6: the database is unavailable (a real PostgreSQL server stopped, then started again).

The server is a private one (initdb into a temporary directory, its own port: the shared server
on 5432 is never touched). A real ``inspectbot serve`` process runs against it, with the Telegram
Bot API simulator delivering updates to its webhook and Twilio-signed SMS webhooks posted to it.
The server is stopped (``pg_ctl stop -m fast``, and ``-m immediate`` as a crash would) for
``INSPECTBOT_OUTAGE_SECONDS`` (default 3; the issue's 30 with
``INSPECTBOT_OUTAGE_SECONDS=30``). During the outage the process stays up, ``/healthz`` says
503, and every inbound webhook — Telegram with the right secret, Twilio correctly signed —
answers 503, so the sender keeps it and retries. Once the server is back the service recovers by
itself: the update Telegram kept retrying is stored once and answered, the SMS Twilio retries is
stored once, and the message that fell due during the outage is sent.
"""

from __future__ import annotations

import asyncio
import os
import time
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest

from bot.channels.sms_twilio import INBOUND_PATH
from core import db as dbmod
from core.settings import Settings
from domain.signatures import twilio_signature
from models.messaging import Channel, InboundEvent, Outbox, OutboxStatus, RecipientKind
from services.outbox import Message, enqueue
from simulators.sms import DEV_ACCOUNT_SID, DEV_AUTH_TOKEN, DEV_NUMBER, SmsSimulator
from simulators.telegram.flood import FloodLimits
from simulators.telegram.simulator import TelegramSimulator
from tests.reliability.procs import ServiceProcess, free_port, wait_for

OUTAGE = float(os.environ.get("INSPECTBOT_OUTAGE_SECONDS", "3"))
SECRET = "outage-webhook-secret"
PHONE = "+8613800138001"


def signed_sms(public: str, sid: str, body: str) -> tuple[dict, dict]:
    """An inbound-SMS webhook as Twilio posts it (and posts it again when we answer 503)."""
    form = {
        "MessageSid": sid,
        "SmsSid": sid,
        "AccountSid": DEV_ACCOUNT_SID,
        "From": PHONE,
        "To": DEV_NUMBER,
        "Body": body,
        "NumMedia": "0",
        "NumSegments": "1",
        "SmsStatus": "received",
        "ApiVersion": "2010-04-01",
    }
    return form, {"X-Twilio-Signature": twilio_signature(public + INBOUND_PATH, form, DEV_AUTH_TOKEN)}


async def post(url: str, **kw) -> int:
    async with aiohttp.ClientSession() as http:
        async with http.post(url, timeout=aiohttp.ClientTimeout(total=10), **kw) as r:
            await r.read()
            return r.status


@pytest.mark.parametrize("stop", ["fast", "immediate"])  # a clean shutdown; a crash (recovery from WAL at start)
async def test_the_service_survives_a_database_outage_and_recovers_by_itself(cluster, tmp_path, stop):
    url = await cluster.create_database("inspectbot")
    settings = Settings(database_url=url, data_dir=tmp_path)
    async with dbmod.opened(settings):  # migrated, as a deployment would be
        pass
    tg = TelegramSimulator(flood=FloodLimits.off(), webhook_retry_max=0.5)
    sms = SmsSimulator(account_sid=DEV_ACCOUNT_SID, auth_token=DEV_AUTH_TOKEN, numbers=(DEV_NUMBER,))
    port = free_port()
    public = f"http://127.0.0.1:{port}"
    service = ServiceProcess(
        "service",
        {
            "DATABASE_URL": url,
            "TELEGRAM_TOKEN": tg.token,
            "TELEGRAM_MODE": "webhook",
            "TELEGRAM_WEBHOOK_SECRET": SECRET,
            "INSPECTBOT_PUBLIC_URL": public,
            "SMS_ACCOUNT_SID": DEV_ACCOUNT_SID,
            "SMS_AUTH_TOKEN": DEV_AUTH_TOKEN,
            "SMS_FROM": DEV_NUMBER,
        },
        tmp_path,
        port=port,
    )
    await tg.start()
    await sms.start()
    service.env.update(TELEGRAM_API_URL=tg.url, SMS_API_URL=sms.url)
    try:
        await service.start()
        # Before: an update through the webhook is stored and answered.
        ann = tg.create_user("Ann")
        tg.send_text(ann, "你好")
        await tg.wait_for_message(ann, timeout=10)
        # A message that falls due during the outage.
        due = datetime.now(UTC) + timedelta(seconds=min(1.5, OUTAGE / 2))
        await dbmod.init(settings)
        try:
            await enqueue(
                [
                    Message(
                        dedupe_key="due-in-outage",
                        recipient_kind=RecipientKind.PERSON,
                        recipient_id=0,
                        template="team_changed.j2",
                        channel=Channel.TELEGRAM,
                        address=str(ann.id),
                        context={"no": 1, "draw_ref": "P1/2026-12-01", "plan": "测试计划", "old": "甲", "new": "乙"},
                    )
                ],
                due,
            )
        finally:
            await dbmod.close()

        cluster.stop(stop)
        started = time.monotonic()
        # During: alive, unhealthy, and every inbound webhook refused with 503 (nothing accepted).
        bob = tg.create_user("Bob")
        update = tg.send_text(bob, "数据库停了吗")  # the simulator delivers it to our webhook, and retries
        form, signature = signed_sms(public, "SM" + "0" * 31 + "1", "1 2 3")
        rounds = 0
        while rounds == 0 or time.monotonic() - started < OUTAGE:
            assert service.alive, service.log()[-3000:]
            assert await service.health() == 503
            assert (
                await post(
                    f"{public}/telegram/webhook", json=update, headers={"X-Telegram-Bot-Api-Secret-Token": SECRET}
                )
                == 503
            )
            assert await post(f"{public}{INBOUND_PATH}", data=form, headers=signature) == 503
            rounds += 1
            await asyncio.sleep(0.5)
        assert tg.pending_update_count == 1
        assert "Wrong response from the webhook: 503 Service Unavailable" in tg.delivery.webhook.errors
        assert len(tg.messages(ann)) == 1  # what fell due waits (only the answer to "你好" is there)
        assert service.alive

        cluster.start()

        # After: it recovers by itself.
        async def healthy() -> bool:
            return await service.health() == 200

        restarted = time.monotonic()
        await wait_for(healthy, 30, "/healthz to answer 200 again")
        healthy_after = time.monotonic() - restarted
        await wait_for(lambda: tg.pending_update_count == 0, 30, "Telegram's retried update to be accepted")
        print(
            f"outage {restarted - started:.1f} s; healthy {healthy_after:.2f} s and Telegram's update "
            f"accepted {time.monotonic() - restarted:.2f} s after the server was back"
        )
        reply = await tg.wait_for_message(bob, timeout=30)
        assert reply.text
        queued = await tg.wait_for_message(ann, timeout=30)  # the answer to "你好" was read before
        assert "乙" in queued.text
        assert await post(f"{public}{INBOUND_PATH}", data=form, headers=signature) == 200  # Twilio's retry
        assert service.alive

        await dbmod.init(settings)
        try:
            assert await InboundEvent.filter(channel="telegram", external_id=str(update["update_id"])).count() == 1
            assert await InboundEvent.filter(channel="sms", external_id=form["MessageSid"]).count() == 1
            row = await Outbox.get(dedupe_key="due-in-outage")
            assert row.status == OutboxStatus.SENT
        finally:
            await dbmod.close()
        assert len(tg.messages(bob)) == 1
        assert "dispatcher cycle failed" in service.log()  # it did try during the outage, and went on
    finally:
        await service.stop()
        await tg.stop()
        await sms.stop()


async def test_serve_started_while_the_database_is_down_waits_for_it(cluster, tmp_path):
    """A service (re)started before its database — after a power cut both come back, the database
    last — keeps trying, with a warning, instead of exiting; it is up as soon as the database is."""
    url = await cluster.create_database("late")
    async with dbmod.opened(Settings(database_url=url, data_dir=tmp_path)):
        pass
    sms = SmsSimulator(account_sid=DEV_ACCOUNT_SID, auth_token=DEV_AUTH_TOKEN, numbers=(DEV_NUMBER,))
    await sms.start()
    service = ServiceProcess(
        "late",
        {
            "DATABASE_URL": url,
            "SMS_ACCOUNT_SID": DEV_ACCOUNT_SID,
            "SMS_AUTH_TOKEN": DEV_AUTH_TOKEN,
            "SMS_FROM": DEV_NUMBER,
            "SMS_API_URL": sms.url,
        },
        tmp_path,
    )
    cluster.stop("fast")
    starting = asyncio.create_task(service.start(timeout=60))
    try:
        await wait_for(
            lambda: service.log().count("database unavailable at start") >= 2,
            20,
            "the service to report the database down twice",
        )
        assert service.alive and await service.health() == 0 and not starting.done()
        cluster.start()
        await starting  # /healthz answers 200: it started by itself
        assert service.alive
        assert "Traceback" not in service.log()
    finally:
        starting.cancel()
        await service.stop()
        await sms.stop()
