"""Concurrent signed Twilio webhooks through our real app: answered only once stored (group commit),
each stored once, and all refused with 503 while the database cannot take them."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sqlite3
from urllib.parse import parse_qsl, urlencode

import aiohttp
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.channels.sms_twilio import INBOUND_PATH, TwilioSmsChannel, form_pairs
from bot.runtime import Runtime
from bot.web import make_app
from core import db as dbmod
from core.clock import FakeClock
from core.settings import Settings
from domain.signatures import twilio_signature
from models.messaging import InboundEvent, Outbox

SID = "AC" + "1" * 32
TOKEN = "concurrency_test_token_0123456789"


def _form(n: int) -> dict[str, str]:
    sid = f"SM{n:032d}"
    return {
        "MessageSid": sid,
        "SmsSid": sid,
        "AccountSid": SID,
        "From": f"+86139{n:08d}",
        "To": "+15005550006",
        "Body": "你好",
        "NumMedia": "0",
        "SmsStatus": "received",
        "ApiVersion": "2010-04-01",
    }


@contextlib.asynccontextmanager
async def _app(db: Settings):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    public = f"http://127.0.0.1:{sock.getsockname()[1]}"
    settings = db.with_(
        sms_account_sid=SID,
        sms_auth_token=TOKEN,
        sms_from="+15005550006",
        public_url=public,
        sms_api_url="http://127.0.0.1:9",
    )
    clock = FakeClock()
    channel = TwilioSmsChannel(settings, clock=clock)
    runner = web.AppRunner(make_app(Runtime(settings=settings, clock=clock, channels={"sms": channel})))
    await runner.setup()
    await web.SockSite(runner, sock).start()
    try:
        yield public + INBOUND_PATH
    finally:
        await runner.cleanup()
        await channel.stop()


async def _post_all(url: str, forms: list[dict[str, str]]) -> list[int]:
    async with aiohttp.ClientSession() as http:

        async def post(form):
            headers = {
                "X-Twilio-Signature": twilio_signature(url, form, TOKEN),
                "Content-Type": "application/x-www-form-urlencoded",
            }
            async with http.post(url, data=urlencode(form), headers=headers) as r:
                return r.status

        return list(await asyncio.gather(*(post(f) for f in forms)))


async def test_concurrent_webhooks_are_each_stored_once_before_their_answer(db):
    async with _app(db) as url:
        forms = [_form(i) for i in range(24)] + [_form(5), _form(17)]  # two delivered twice at the same time
        statuses = await _post_all(url, forms)
        assert statuses[:24] == [200] * 24
        assert set(statuses[24:]) <= {200, 403}  # 200 while both in flight; 403 once the first was remembered
        assert await InboundEvent.all().count() == 24
        assert await InboundEvent.filter(processed_at=None).count() == 0
        assert await Outbox.all().count() == 0  # strangers with no survey get no SMS
        assert await _post_all(url, [_form(5)]) == [403]  # a later replay: refused without the database


async def test_concurrent_webhooks_get_503_while_the_database_is_locked(sqlite_db):
    async with _app(sqlite_db) as url:
        await dbmod.conn().execute_script("PRAGMA busy_timeout=50")
        other = sqlite3.connect(sqlite_db.database_url.removeprefix("sqlite://"), isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            assert await _post_all(url, [_form(i) for i in range(6)]) == [503] * 6
        finally:
            other.execute("ROLLBACK")
            other.close()
        assert await InboundEvent.all().count() == 0
        assert await _post_all(url, [_form(i) for i in range(6)]) == [200] * 6  # Twilio's retries are taken
        assert await InboundEvent.all().count() == 6


# --- the form parser the guard uses -------------------------------------------------------------

_FORM_CHARS = st.sampled_from(list("ab=&+%20%2B%3D%26%E4%BD%A0%zz%4%;é你 \t")) | st.characters()


@settings(max_examples=400, deadline=None)
@given(st.lists(_FORM_CHARS, max_size=60).map("".join))
def test_form_pairs_reads_a_form_as_parse_qsl_does(text):
    assert form_pairs(text) == tuple(parse_qsl(text, keep_blank_values=True))


def test_form_pairs_reads_a_twilio_form():
    form = _form(7) | {"Body": "是 否 5 态度很好 & 100% =)"}
    assert dict(form_pairs(urlencode(form))) == form
