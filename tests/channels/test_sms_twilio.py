"""The Twilio SMS channel against the SMS simulator: sends, signed callbacks and replies, the guard, errors."""

from __future__ import annotations

import json
import logging
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode

import aiohttp
import pytest
from aiohttp import web

from bot.channels.sms_twilio import (
    INBOUND_PATH,
    STATUS_PATH,
    TwilioSmsChannel,
    TwilioWebhookGuard,
    classify_error,
    inbound_event,
    parse_retry_after,
    status_event,
    webhook_routes,
)
from core.channel import Button, EventKind, InboundEvent, Outgoing, Poll, SendError
from core.clock import FakeClock
from core.settings import Settings, SettingsError
from domain.signatures import twilio_signature
from simulators.sms import SmsSimulator

SID = "AC" + "c" * 32
TOKEN = "test_auth_token_0123456789abcdef"
FROM = "+15005550006"
PHONE = "+8613800000000"
OTHER = "+8613911112222"
SAMPLES = Path(__file__).resolve().parents[1] / "data" / "sms-samples"


@dataclass
class Bot:
    settings: Settings
    channel: TwilioSmsChannel
    events: list[InboundEvent]
    url: str
    fail: list[bool]


@pytest.fixture
async def sim():
    simulator = SmsSimulator(account_sid=SID, auth_token=TOKEN, numbers=(FROM,), timeout_delay=5)
    await simulator.start()
    yield simulator
    await simulator.stop()


@pytest.fixture
async def bot(sim):
    """Our side: the channel pointed at the simulator and the two webhooks on a loopback port."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    settings = Settings(sms_account_sid=SID, sms_auth_token=TOKEN, sms_api_url=sim.url, sms_from=FROM, public_url=url)
    events: list[InboundEvent] = []
    fail: list[bool] = []

    async def on_event(event: InboundEvent) -> None:
        if fail:
            raise RuntimeError("database down")
        events.append(event)

    app = web.Application()
    app.add_routes(webhook_routes(settings, on_event))
    runner = web.AppRunner(app)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    sim.inbound_url = url + INBOUND_PATH
    channel = TwilioSmsChannel(settings, timeout=0.5)
    await channel.start()
    yield Bot(settings, channel, events, url, fail)
    await channel.stop()
    await runner.cleanup()


async def _post(url: str, params: dict[str, str], signature: str | None, headers: dict | None = None) -> int:
    headers = dict(headers or {})
    if signature is not None:
        headers["X-Twilio-Signature"] = signature
    headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
    async with aiohttp.ClientSession() as session:
        async with session.post(url, data=urlencode(params), headers=headers) as resp:
            return resp.status


def _inbound_form(sid: str = "SM" + "a" * 32, body: str = "1 2 5") -> dict[str, str]:
    return {
        "MessageSid": sid,
        "SmsSid": sid,
        "AccountSid": SID,
        "From": PHONE,
        "To": FROM,
        "Body": body,
        "NumMedia": "0",
        "SmsStatus": "received",
        "ApiVersion": "2010-04-01",
    }


# --- sending ------------------------------------------------------------------------------------


async def test_send_returns_the_sid_of_the_201_and_the_phone_receives_it(sim, bot):
    sid = await bot.channel.send(Outgoing(address=PHONE, text="【检查通】您好，请回复 1 2 5"))
    assert sid.startswith("SM") and len(sid) == 34
    assert sim.phone(PHONE).texts() == ["【检查通】您好，请回复 1 2 5"]
    assert sim.messages[sid]["from"] == FROM


async def test_buttons_are_dropped_and_the_text_is_sent(sim, bot):
    await bot.channel.send(Outgoing(address=PHONE, text="是否同意", buttons=((Button("是", "y"),),)))
    assert sim.phone(PHONE).texts() == ["是否同意"]


async def test_messaging_service_is_sent_instead_of_from(sim, bot):
    settings = bot.settings.with_(sms_messaging_service_sid="MG" + "b" * 32)
    channel = TwilioSmsChannel(settings)
    try:
        sid = await channel.send(Outgoing(address=PHONE, text="hi"))
    finally:
        await channel.stop()
    assert sim.messages[sid]["messaging_service_sid"] == "MG" + "b" * 32
    assert sim.messages[sid]["from"] is None
    assert channel.form_for(Outgoing(address=PHONE, text="x")).keys() == {
        "To",
        "Body",
        "StatusCallback",
        "MessagingServiceSid",
    }


async def test_status_callbacks_arrive_signed_and_parse(sim, bot):
    sid = await bot.channel.send(Outgoing(address=PHONE, text="hello"))
    await sim.drain()
    assert [w.status for w in sim.webhooks] == [200, 200]
    assert all(w.url == bot.url + STATUS_PATH for w in sim.webhooks)
    assert [(e.kind, e.status, e.message_id, e.sender) for e in bot.events] == [
        (EventKind.DELIVERY, "sent", sid, PHONE),
        (EventKind.DELIVERY, "delivered", sid, PHONE),
    ]
    assert [e.external_id for e in bot.events] == [f"{sid}:sent", f"{sid}:delivered"]


async def test_unreachable_phone_gets_undelivered_with_error_code(sim, bot):
    sim.set_state(PHONE, "unreachable")
    sid = await bot.channel.send(Outgoing(address=PHONE, text="hello"))
    await sim.drain()
    assert [(e.status, e.error_code) for e in bot.events] == [("sent", ""), ("undelivered", "30003")]
    assert sim.messages[sid]["status"] == "undelivered" and sim.messages[sid]["error_code"] == 30003


async def test_an_inbound_reply_arrives_signed_and_becomes_a_text_event(sim, bot):
    await bot.channel.send(Outgoing(address=PHONE, text="请回复"))
    reply = await sim.reply(PHONE, "是，否，5 态度很好")
    assert reply.status == 200
    texts = [e for e in bot.events if e.kind == EventKind.TEXT]
    assert [(e.external_id, e.sender, e.text, e.channel) for e in texts] == [
        (reply.sid, PHONE, "是，否，5 态度很好", "sms")
    ]
    assert texts[0].raw["To"] == FROM


# --- the guard ----------------------------------------------------------------------------------


async def test_unsigned_or_forged_webhooks_get_403_and_nothing_is_handed_on(bot):
    url = bot.url + INBOUND_PATH
    form = _inbound_form()
    assert await _post(url, form, None) == 403
    assert await _post(url, form, "") == 403
    assert await _post(url, form, "Wwrnb4jURp9hDXrN+f8m2FBwqKk=") == 403  # a valid signature, other URL
    assert await _post(url, form, twilio_signature(url, form, "another-token")) == 403
    tampered = {**form, "Body": "1 1 1"}
    assert await _post(url, tampered, twilio_signature(url, form, TOKEN)) == 403
    assert await _post(bot.url + STATUS_PATH, form, twilio_signature(url, form, TOKEN)) == 403  # other path
    assert bot.events == []
    assert await _post(url, form, twilio_signature(url, form, TOKEN)) == 200
    assert len(bot.events) == 1


async def test_the_guard_checks_the_public_url_not_the_host_header(bot):
    """Behind a proxy the Host header differs; the signature is over the URL we published."""
    url = bot.url + INBOUND_PATH
    form = _inbound_form()
    internal = "http://inspectbot.internal:9000" + INBOUND_PATH
    headers = {"Host": "inspectbot.internal:9000"}
    assert await _post(url, form, twilio_signature(internal, form, TOKEN), headers) == 403
    assert await _post(url, form, twilio_signature(url, form, TOKEN), headers) == 200


async def test_the_query_string_is_part_of_the_signed_url(bot):
    url = bot.url + INBOUND_PATH + "?tenant=1"
    form = _inbound_form()
    assert await _post(url, form, twilio_signature(bot.url + INBOUND_PATH, form, TOKEN)) == 403
    assert await _post(url, form, twilio_signature(url, form, TOKEN)) == 200


async def test_a_replayed_webhook_is_refused_and_handed_on_once(sim, bot):
    url = bot.url + INBOUND_PATH
    form = _inbound_form()
    signature = twilio_signature(url, form, TOKEN)
    assert await _post(url, form, signature) == 200
    assert await _post(url, form, signature) == 403
    assert len(bot.events) == 1


async def test_a_webhook_that_failed_to_store_is_accepted_when_retried(bot):
    url = bot.url + INBOUND_PATH
    form = _inbound_form()
    signature = twilio_signature(url, form, TOKEN)
    bot.fail.append(True)
    assert await _post(url, form, signature) == 503
    bot.fail.clear()
    assert await _post(url, form, signature) == 200
    assert len(bot.events) == 1


async def test_a_signed_but_malformed_form_is_400(bot):
    url = bot.url + STATUS_PATH
    form = {"MessageSid": "SM" + "d" * 32}  # no MessageStatus
    assert await _post(url, form, twilio_signature(url, form, TOKEN)) == 400


async def test_oversized_body_is_413(bot):
    url = bot.url + INBOUND_PATH
    form = _inbound_form(body="x" * 70_000)
    assert await _post(url, form, twilio_signature(url, form, TOKEN)) == 413
    assert bot.events == []


async def test_sharedkey_signatures_are_not_accepted_without_a_configured_key(bot):
    url = bot.url + STATUS_PATH
    form = {"MessageSid": "SM" + "d" * 32, "MessageStatus": "delivered", "To": PHONE}
    headers = {"X-Twilio-Webhooks-Signature-Settings": "key=KS1,algorithm=HMAC_SHA256"}
    assert await _post(url, form, twilio_signature(url, form, TOKEN, "HMAC-SHA256"), headers) == 403


async def test_replay_across_instances_stores_the_event_once(db):
    """A second instance (empty guard memory) accepts the replay; the inbound table's unique key absorbs it."""
    from handlers.router import route
    from models.messaging import InboundEvent as InboundRow
    from services.inbound import receive

    clock = FakeClock()
    public = "https://bot.example.test"
    settings = Settings(sms_auth_token=TOKEN, public_url=public)
    results = []

    async def on_event(event: InboundEvent) -> None:
        results.append(await receive(event, route, clock))

    form = _inbound_form()
    signature = twilio_signature(public + INBOUND_PATH, form, TOKEN)
    for _instance in range(2):
        app = web.Application()
        app.add_routes(webhook_routes(settings, on_event))
        runner = web.AppRunner(app)
        await runner.setup()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        await web.SockSite(runner, sock).start()
        try:
            url = f"http://127.0.0.1:{sock.getsockname()[1]}{INBOUND_PATH}"
            assert await _post(url, form, signature) == 200
        finally:
            await runner.cleanup()
    assert [r.duplicate for r in results] == [False, True]
    assert await InboundRow.filter(channel="sms", external_id=form["MessageSid"]).count() == 1


# --- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fault,kind,retryable",
    [
        ("429", "throttled", True),
        ("500", "server", True),
        ("timeout", "timeout", True),
        ("disconnect", "connection", True),
        ("invalid_number", "invalid_number", False),
        ("landline", "invalid_number", False),
        ("unsubscribed", "unsubscribed", False),
    ],
)
async def test_each_fault_becomes_the_right_send_error(sim, bot, fault, kind, retryable):
    sim.inject(fault)
    with pytest.raises(SendError) as info:
        await bot.channel.send(Outgoing(address=PHONE, text="hello"))
    assert (info.value.kind, info.value.retryable) == (kind, retryable)
    sid = await bot.channel.send(Outgoing(address=PHONE, text="again"))  # the fault was for one send only
    assert sim.phone(PHONE).texts() == ["again"] and sim.messages[sid]["to"] == PHONE


async def test_429_honours_retry_after(sim, bot):
    sim.inject("429", retry_after=7)
    with pytest.raises(SendError) as info:
        await bot.channel.send(Outgoing(address=PHONE, text="hello"))
    assert info.value.retry_after == 7.0


async def test_invalid_and_unsubscribed_numbers_from_phone_state(sim, bot):
    sim.set_state(OTHER, "unsubscribed")
    with pytest.raises(SendError) as info:
        await bot.channel.send(Outgoing(address=OTHER, text="hello"))
    assert (info.value.kind, info.value.retryable) == ("unsubscribed", False)
    with pytest.raises(SendError) as info:
        await bot.channel.send(Outgoing(address="+86138", text="hello"))
    assert (info.value.kind, info.value.retryable) == ("invalid_number", False)


async def test_bad_credentials_are_a_permanent_auth_error(sim, bot):
    channel = TwilioSmsChannel(bot.settings.with_(sms_auth_token="wrong"))
    try:
        with pytest.raises(SendError) as info:
            await channel.send(Outgoing(address=PHONE, text="hello"))
    finally:
        await channel.stop()
    assert (info.value.kind, info.value.retryable) == ("auth", False)
    assert "20003" in info.value.detail


async def test_a_sender_not_ours_is_a_config_error(sim, bot):
    channel = TwilioSmsChannel(bot.settings.with_(sms_from="+15005550009"))
    try:
        with pytest.raises(SendError) as info:
            await channel.send(Outgoing(address=PHONE, text="hello"))
    finally:
        await channel.stop()
    assert (info.value.kind, info.value.retryable) == ("config", False)


async def test_connection_refused_is_retryable():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    channel = TwilioSmsChannel(
        Settings(sms_account_sid=SID, sms_auth_token=TOKEN, sms_from=FROM, sms_api_url=f"http://127.0.0.1:{port}")
    )
    try:
        with pytest.raises(SendError) as info:
            await channel.send(Outgoing(address=PHONE, text="hello"))
    finally:
        await channel.stop()
    assert (info.value.kind, info.value.retryable) == ("connection", True)


@pytest.mark.parametrize(
    "message",
    [
        Outgoing(address=PHONE, text="q", poll=Poll("q", ("a", "b"))),
        Outgoing(address=PHONE, text="p", photo=b"\xff\xd8"),
        Outgoing(address=PHONE, text="d", document=b"%PDF"),
        Outgoing(address=PHONE, text="e", edit_message_id="SM1"),
        Outgoing(address=PHONE, text="   "),
    ],
)
async def test_what_sms_cannot_carry_is_refused_before_sending(sim, bot, message):
    with pytest.raises(SendError) as info:
        await bot.channel.send(message)
    assert info.value.retryable is False
    assert sim.requests == 0


async def test_channel_needs_credentials():
    with pytest.raises(SettingsError):
        TwilioSmsChannel(Settings())


async def test_the_token_never_reaches_logs_or_reprs(sim, bot, caplog):
    caplog.set_level(logging.DEBUG)
    sim.inject("500")
    with pytest.raises(SendError) as info:
        await bot.channel.send(Outgoing(address=PHONE, text="hello"))
    await _post(bot.url + INBOUND_PATH, _inbound_form(), "forged")
    await bot.channel.send(Outgoing(address=PHONE, text="hello"))
    await sim.drain()
    guard = TwilioWebhookGuard(TOKEN, bot.url)
    shown = caplog.text + repr(bot.channel) + repr(guard) + repr(sim) + repr(bot.settings) + str(info.value)
    assert "sms webhook" in caplog.text  # the forged request was logged...
    assert TOKEN not in shown  # ...without the token


# --- pure parts ---------------------------------------------------------------------------------

NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


def _sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


@pytest.mark.parametrize(
    "status,body,retry_after,kind,retryable,wait",
    [
        (400, _sample("twilio-error-400-21211.json"), None, "invalid_number", False, None),
        (400, _sample("twilio-error-400-21610.json"), None, "unsubscribed", False, None),
        (401, _sample("twilio-error-401-20003.json"), None, "auth", False, None),
        (429, _sample("twilio-error-429-20429.json"), "3", "throttled", True, 3.0),
        (429, b"", None, "throttled", True, None),
        (403, b"<html>forbidden</html>", None, "auth", False, None),
        (400, b'{"code": 21614, "message": "x", "status": 400}', None, "invalid_number", False, None),
        (400, b'{"code": "21617", "status": 400}', None, "too_long", False, None),
        (400, b'{"code": 21606, "status": 400}', None, "config", False, None),
        (400, b'{"code": 99999, "status": 400}', None, "bad_request", False, None),
        (404, b'{"code": 20404, "status": 404}', None, "bad_request", False, None),
        (502, b"<html>bad gateway</html>", None, "server", True, None),
        (503, b"", "Sun, 22 Nov 2026 10:00:30 GMT", "server", True, 30.0),
        (
            400,
            b'{"type": "https://x", "title": "Bad", "status": 400, "code": 21211}',
            None,
            "invalid_number",
            False,
            None,
        ),  # RFC 9457 body
    ],
)
def test_classify_error(status, body, retry_after, kind, retryable, wait):
    error = classify_error(status, body, retry_after, NOW)
    assert (error.kind, error.retryable, error.retry_after) == (kind, retryable, wait)


def test_parse_retry_after():
    assert parse_retry_after("120", NOW) == 120.0
    assert parse_retry_after(" 1.5 ", NOW) == 1.5
    assert parse_retry_after("Sun, 22 Nov 2026 09:59:00 GMT", NOW) == 0.0
    for bad in (None, "", "soon", "-1", "nan", "inf"):
        assert parse_retry_after(bad, NOW) is None


def test_inbound_event_from_the_oracle_webhook_form():
    vectors = json.loads((SAMPLES.parent / "twilio-signature-vectors.json").read_text(encoding="utf-8"))["vectors"]
    form = dict(vectors[6]["form_params"])
    event = inbound_event(form)
    assert (event.channel, event.kind, event.external_id, event.sender, event.text) == (
        "sms",
        EventKind.TEXT,
        "SM" + "a" * 32,
        "+14155552671",
        "Hello from SMS + unicode: café 你好",
    )
    status = status_event(dict(vectors[8]["form_params"]))
    assert (status.kind, status.external_id, status.sender, status.status, status.error_code, status.message_id) == (
        EventKind.DELIVERY,
        "SM" + "d" * 32 + ":undelivered",
        "+14155550100",
        "undelivered",
        "30003",
        "SM" + "d" * 32,
    )


def test_malformed_forms_are_value_errors():
    with pytest.raises(ValueError):
        inbound_event({"Body": "hi", "From": PHONE})
    with pytest.raises(ValueError):
        inbound_event({"MessageSid": "SM1"})
    with pytest.raises(ValueError):
        status_event({"MessageSid": "SM1"})
    assert status_event({"SmsSid": "SM1", "SmsStatus": "sent"}).external_id == "SM1:sent"  # legacy names
