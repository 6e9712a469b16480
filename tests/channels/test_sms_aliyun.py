"""The Aliyun SMS channel against a stub that checks signature and parameters; push parsing and routes."""

from __future__ import annotations

import json
import socket
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from bot.channels.sms_aliyun import (
    PUSH_ACK,
    AliyunSmsChannel,
    aliyun_phone,
    e164_from_aliyun,
    parse_push,
    parse_send_reply,
    push_routes,
    report_event,
    up_event,
)
from core.channel import EventKind, InboundEvent, Outgoing, Poll, SendError
from core.clock import FakeClock
from core.settings import Settings, SettingsError
from domain.signatures import verify_aliyun_signature
from simulators.sms_aliyun import AliyunSmsStub

KEY_ID = "LTAI-test-key"
SECRET = "aliyun-secret-0123456789"
SIGN = "检查通"
TEMPLATE = "SMS_000001"
PHONE = "+8613800000000"
PUSH_TOKEN = "push-path-secret-abc123"
SAMPLES = Path(__file__).resolve().parents[1] / "data" / "sms-samples"


@pytest.fixture
async def stub():
    s = AliyunSmsStub(
        access_key_id=KEY_ID, access_key_secret=SECRET, sign_names=(SIGN,), templates={TEMPLATE: ("content",)}
    )
    await s.start()
    yield s
    await s.stop()


def _settings(stub: AliyunSmsStub, **changes) -> Settings:
    base = Settings(
        sms_provider="aliyun",
        sms_account_sid=KEY_ID,
        sms_auth_token=SECRET,
        sms_api_url=stub.url,
        sms_sign_name=SIGN,
        sms_template_code=TEMPLATE,
        sms_push_token=PUSH_TOKEN,
    )
    return base.with_(**changes)


@pytest.fixture
async def channel(stub):
    ch = AliyunSmsChannel(_settings(stub))
    await ch.start()
    yield ch
    await ch.stop()


async def _send_error(channel: AliyunSmsChannel, address: str = PHONE) -> SendError:
    with pytest.raises(SendError) as info:
        await channel.send(Outgoing(address=address, text="您好"))
    return info.value


# --- SendSms ------------------------------------------------------------------------------------


async def test_send_returns_the_biz_id_and_the_text_goes_as_template_param(stub, channel):
    biz_id = await channel.send(Outgoing(address=PHONE, text="您好，请回复 1 2 5。回复TD退订"))
    assert biz_id.endswith("^0")
    [sent] = stub.sent
    assert (sent.biz_id, sent.phones, sent.sign_name, sent.template_code) == (biz_id, ["13800000000"], SIGN, TEMPLATE)
    assert sent.params == {"content": "您好，请回复 1 2 5。回复TD退订"}


def test_request_params_are_signed_and_complete():
    settings = Settings(sms_account_sid=KEY_ID, sms_auth_token=SECRET, sms_sign_name=SIGN, sms_template_code=TEMPLATE)
    channel = AliyunSmsChannel(settings)
    now = datetime(2026, 11, 22, 10, 0, 5, tzinfo=timezone(timedelta(hours=8)))
    params = channel.request_params(Outgoing(address=PHONE, text='引号"和&符号'), now, "nonce-1")
    assert params["Timestamp"] == "2026-11-22T02:00:05Z"
    assert (params["Action"], params["Version"], params["Format"], params["PhoneNumbers"]) == (
        "SendSms",
        "2017-05-25",
        "JSON",
        "13800000000",
    )
    assert json.loads(params["TemplateParam"]) == {"content": '引号"和&符号'}
    assert verify_aliyun_signature("POST", params, SECRET)
    assert not verify_aliyun_signature("POST", {**params, "PhoneNumbers": "13800000001"}, SECRET)


async def test_stub_refuses_a_bad_signature(stub):
    channel = AliyunSmsChannel(_settings(stub, sms_auth_token="not-the-secret"))
    try:
        error = await _send_error(channel)
    finally:
        await channel.stop()
    assert (error.kind, error.retryable) == ("auth", False)
    assert "SignatureDoesNotMatch" in error.detail and stub.sent == []


async def test_stub_refuses_an_unknown_access_key(stub):
    channel = AliyunSmsChannel(_settings(stub, sms_account_sid="LTAI-other"))
    try:
        error = await _send_error(channel)
    finally:
        await channel.stop()
    assert (error.kind, error.retryable) == ("auth", False)


async def test_a_stale_timestamp_is_a_config_error(stub):
    channel = AliyunSmsChannel(_settings(stub), clock=FakeClock(datetime(2020, 1, 1, tzinfo=UTC)))
    try:
        error = await _send_error(channel)
    finally:
        await channel.stop()
    assert (error.kind, error.retryable) == ("config", False) and "InvalidTimeStamp" in error.detail


async def test_stub_refuses_a_reused_nonce_and_missing_parameters(stub, channel):
    params = channel.request_params(Outgoing(address=PHONE, text="x"), datetime.now(UTC), "same-nonce")
    async with aiohttp.ClientSession() as session:
        async with session.post(stub.url + "/", data=params) as resp:
            assert resp.status == 200 and (await resp.json())["Code"] == "OK"
        async with session.post(stub.url + "/", data=params) as resp:
            assert resp.status == 400 and (await resp.json())["Code"] == "SignatureNonceUsed"
        for name in ("PhoneNumbers", "SignatureNonce", "Signature"):
            partial = {k: v for k, v in params.items() if k != name}
            async with session.post(stub.url + "/", data=partial) as resp:
                body = await resp.json()
                assert resp.status == 400 and body["Code"] in (f"Missing{name}", "SignatureDoesNotMatch")


@pytest.mark.parametrize(
    "change,code,kind",
    [
        ({"sms_sign_name": "别的签名"}, "isv.SMS_SIGNATURE_ILLEGAL", "config"),
        ({"sms_template_code": "SMS_999"}, "isv.SMS_TEMPLATE_ILLEGAL", "config"),
        ({"sms_template_param": "text"}, "isv.TEMPLATE_MISSING_PARAMETERS", "config"),
    ],
)
async def test_unapproved_signature_or_template_is_a_config_error(stub, change, code, kind):
    channel = AliyunSmsChannel(_settings(stub, **change))
    try:
        error = await _send_error(channel)
    finally:
        await channel.stop()
    assert (error.kind, error.retryable) == (kind, False) and code in error.detail


async def test_an_illegal_number_is_permanent(stub, channel):
    stub.illegal.add("13911112222")
    assert (await _send_error(channel, "+8613911112222")).kind == "invalid_number"
    assert (await _send_error(channel, "+86123")).kind == "invalid_number"


@pytest.mark.parametrize(
    "fault,kind,retryable,wait",
    [
        ("isv.BUSINESS_LIMIT_CONTROL", "throttled", True, 60.0),
        ("isv.DAY_LIMIT_CONTROL", "quota", True, 3600.0),
        ("isp.SYSTEM_ERROR", "server", True, None),
        ("InternalError", "server", True, None),
    ],
)
async def test_injected_faults(stub, channel, fault, kind, retryable, wait):
    stub.inject(fault)
    error = await _send_error(channel)
    assert (error.kind, error.retryable, error.retry_after) == (kind, retryable, wait)
    assert (await channel.send(Outgoing(address=PHONE, text="again"))).endswith("^0")


async def test_unsupported_messages_never_reach_the_gateway(stub, channel):
    for message in (Outgoing(address=PHONE, text="q", poll=Poll("q", ("a",))), Outgoing(address=PHONE, text=" ")):
        with pytest.raises(SendError):
            await channel.send(message)
    assert stub.requests == 0


def test_channel_needs_its_settings():
    with pytest.raises(SettingsError) as info:
        AliyunSmsChannel(Settings(sms_account_sid=KEY_ID, sms_auth_token=SECRET))
    assert "SMS_SIGN_NAME" in str(info.value) and SECRET not in str(info.value)
    assert SECRET not in repr(
        AliyunSmsChannel(
            Settings(sms_account_sid=KEY_ID, sms_auth_token=SECRET, sms_sign_name=SIGN, sms_template_code=TEMPLATE)
        )
    )


@pytest.mark.parametrize(
    "sample,status,expected",
    [
        ("aliyun-sendsms-response-ok.json", 200, "900619746936498440^0"),
        ("aliyun-sendsms-response-business-limit.json", 200, ("throttled", True, 60.0)),
        ("aliyun-sendsms-response-mobile-illegal.json", 200, ("invalid_number", False, None)),
    ],
)
def test_parse_send_reply_on_the_oracle_samples(sample, status, expected):
    body = (SAMPLES / sample).read_bytes()
    if isinstance(expected, str):
        assert parse_send_reply(status, body) == expected
    else:
        with pytest.raises(SendError) as info:
            parse_send_reply(status, body)
        assert (info.value.kind, info.value.retryable, info.value.retry_after) == expected


@pytest.mark.parametrize(
    "status,body,kind,retryable,wait",
    [
        (200, {"Code": "isv.BUSINESS_LIMIT_CONTROL", "Message": "触发小时级流控Permits:5"}, "throttled", True, 3600.0),
        (200, {"Code": "isv.BUSINESS_LIMIT_CONTROL", "Message": "触发天级流控Permits:10"}, "throttled", True, 86400.0),
        (200, {"Code": "isv.SMS_CONTENT_ILLEGAL"}, "content_rejected", False, None),
        (200, {"Code": "isv.SOMETHING_NEW"}, "bad_request", False, None),
        (200, {"Code": "isp.SOMETHING_NEW"}, "server", True, None),
        (400, {"Code": "Throttling.User"}, "throttled", True, None),
        (503, "<html>", "server", True, None),
        (200, {"Code": "OK"}, "bad_response", False, None),  # OK without a BizId
    ],
)
def test_parse_send_reply_errors(status, body, kind, retryable, wait):
    raw = body.encode() if isinstance(body, str) else json.dumps(body, ensure_ascii=False).encode()
    with pytest.raises(SendError) as info:
        parse_send_reply(status, raw)
    assert (info.value.kind, info.value.retryable, info.value.retry_after) == (kind, retryable, wait)


def test_phone_formats():
    assert aliyun_phone("+8613800000000") == "13800000000"
    assert aliyun_phone("+85291234567") == "85291234567"
    assert e164_from_aliyun("13800000000") == "+8613800000000"
    assert e164_from_aliyun("8613800000000") == "+8613800000000"
    assert e164_from_aliyun(13800000000) == "+8613800000000"
    assert e164_from_aliyun("1381111****") == "1381111****"  # masked in the samples: kept as received


# --- pushes -------------------------------------------------------------------------------------


def test_report_and_up_samples_parse():
    reports = [report_event(i) for i in parse_push((SAMPLES / "aliyun-smsreport-http-push.json").read_bytes())]
    assert [(e.kind, e.status, e.error_code, e.message_id) for e in reports] == [
        (EventKind.DELIVERY, "delivered", "", "900619746936498440^0"),
        (EventKind.DELIVERY, "undelivered", "MK:0001", "900619746936498440^0"),
    ]
    assert reports[0].external_id == "900619746936498440^0:1381111****"
    [up] = [up_event(i) for i in parse_push((SAMPLES / "aliyun-smsup-http-push.json").read_bytes())]
    assert (up.kind, up.text, up.external_id) == (EventKind.TEXT, "TD", "up:1234567890")


def test_up_sequence_id_as_number_or_missing():
    item = {"phone_number": "13800000000", "content": "1 2 5", "send_time": "2026-11-22 10:05:00"}
    assert up_event({**item, "sequence_id": 42}).external_id == "up:42"
    assert up_event({**item, "sequence_id": "42"}).external_id == "up:42"
    assert up_event(item).external_id == up_event(dict(item)).external_id  # stable without one
    assert up_event(item).sender == PHONE


@pytest.mark.parametrize("body", [b"{}", b"[1]", b"not json", b'[{"content": "x"}]'])
def test_malformed_pushes_are_value_errors(body):
    with pytest.raises(ValueError):
        [up_event(i) for i in parse_push(body)]


@pytest.fixture
async def pushes(stub):
    events: list[InboundEvent] = []

    async def on_event(event: InboundEvent) -> None:
        events.append(event)

    app = web.Application()
    app.add_routes(push_routes(_settings(stub), on_event))
    runner = web.AppRunner(app)
    await runner.setup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    await web.SockSite(runner, sock).start()
    yield f"http://127.0.0.1:{sock.getsockname()[1]}", events
    await runner.cleanup()


async def test_receipts_and_replies_pushed_by_the_stub_become_events(stub, channel, pushes):
    base, events = pushes
    stub.undeliverable.add("13911112222")
    ok_id = await channel.send(Outgoing(address=PHONE, text="a"))
    bad_id = await channel.send(Outgoing(address="+8613911112222", text="b"))
    assert await stub.push_reports(f"{base}/sms/aliyun/report/{PUSH_TOKEN}") == 200
    assert await stub.push_up(f"{base}/sms/aliyun/up/{PUSH_TOKEN}", "13800000000", "TD", sequence_id=7) == 200
    assert [(e.kind, e.message_id, e.sender, e.status) for e in events] == [
        (EventKind.DELIVERY, ok_id, PHONE, "delivered"),
        (EventKind.DELIVERY, bad_id, "+8613911112222", "undelivered"),
        (EventKind.TEXT, "", PHONE, ""),
    ]
    assert events[-1].text == "TD" and events[-1].external_id == "up:7"


async def test_push_with_a_wrong_path_token_is_403(stub, pushes):
    base, events = pushes
    assert await stub.push_up(f"{base}/sms/aliyun/up/guess", "13800000000", "TD") == 403
    assert events == []


async def test_push_answer_is_the_documented_ack(pushes):
    base, _ = pushes
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{base}/sms/aliyun/up/{PUSH_TOKEN}", json=[]) as resp:
            assert await resp.json() == PUSH_ACK == json.loads((SAMPLES / "aliyun-push-ack.json").read_text())
        async with session.post(f"{base}/sms/aliyun/up/{PUSH_TOKEN}", data=b"nope") as resp:
            assert resp.status == 400


def test_push_routes_need_a_token():
    with pytest.raises(SettingsError):
        push_routes(Settings(), lambda e: None)


def test_the_provider_setting_picks_the_channel_and_routes():
    from bot.channels.sms import sms_channel, sms_routes
    from bot.channels.sms_twilio import TwilioSmsChannel

    aliyun = Settings(
        sms_provider="aliyun",
        sms_account_sid=KEY_ID,
        sms_auth_token=SECRET,
        sms_sign_name=SIGN,
        sms_template_code=TEMPLATE,
        sms_push_token=PUSH_TOKEN,
    )
    assert isinstance(sms_channel(aliyun), AliyunSmsChannel)
    assert {r.path for r in sms_routes(aliyun, lambda e: None)} == {
        "/sms/aliyun/report/{token}",
        "/sms/aliyun/up/{token}",
    }
    twilio = Settings(sms_account_sid="AC" + "0" * 32, sms_auth_token=SECRET)
    assert isinstance(sms_channel(twilio), TwilioSmsChannel)
    assert {r.path for r in sms_routes(twilio, lambda e: None)} == {"/sms/inbound", "/sms/status"}
    with pytest.raises(SettingsError):
        Settings(sms_provider="carrier-pigeon")
