"""A NUL character in an inbound message must not make the event unstorable.

PostgreSQL holds no U+0000 in ``text`` or ``jsonb``: an event carrying one could not be stored, and
the webhook answered 503 on every delivery — a poison message the sender retries for ever
(Telegram, in webhook mode, holds the bot's later updates behind it). Found by the reliability
fuzzing of issue 8; ``services.inbound.without_nul`` drops the NUL before the row is built (the
Aliyun push drops it at the channel too). Both databases.
"""

from __future__ import annotations

import aiohttp

from bot.channels.sms_twilio import INBOUND_PATH
from bot.runtime import Runtime
from core.channel import EventKind, InboundEvent
from core.clock import FakeClock
from models.messaging import InboundEvent as InboundRow
from tests.e2e.test_surveys_sms import gateway
from tests.reliability.test_webhook_attacks import reply_form, signed


async def test_a_nul_in_a_chat_message_is_stored(db):
    rt = Runtime(settings=db, clock=FakeClock())
    got = await rt.on_event(
        InboundEvent(channel="telegram", external_id="1", sender="55", kind=EventKind.TEXT, text="是\x00是 5")
    )
    assert not got.duplicate and await InboundRow.all().count() == 1
    row = await InboundRow.get()
    assert row.payload["text"] == "是是 5" and not row.outcome.startswith("failed")


async def test_a_nul_in_a_signed_sms_reply_is_stored(db):
    async with gateway(db) as g:
        url = g.settings.public_url + INBOUND_PATH
        form = reply_form(Body="是\x00是 5")
        async with aiohttp.ClientSession() as http:
            async with http.post(url, data=form, headers=signed(url, form)) as r:
                assert r.status == 200
        assert await InboundRow.all().count() == 1
        assert (await InboundRow.get()).payload["text"] == "是是 5"
