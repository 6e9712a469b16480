"""Hostile requests at the Alibaba Cloud SMS push routes are refused and store nothing.

``/sms/aliyun/report/{token}`` (SmsReport, delivery receipts) and ``/sms/aliyun/up/{token}``
(SmsUp, replies) carry no signature: the secret is the path segment. Our real aiohttp app
(``bot.web.make_app``) with the Aliyun channel configured, the real inbound path behind it, on
SQLite and PostgreSQL. Each attack is sent, its status checked, and the ``inbound_event`` and
``outbox`` tables counted before and after (``test_webhook_attacks.stored``). A push is taken
whole or not at all: one bad item refuses the batch before anything of it is stored.
"""

from __future__ import annotations

import contextlib
import json

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from bot.channels.sms_aliyun import MAX_PUSH_BODY, PUSH_ACK, AliyunSmsChannel
from bot.runtime import Runtime
from bot.web import make_app
from core.clock import FakeClock
from models.messaging import InboundEvent
from tests.reliability.test_webhook_attacks import chunked, stored
from tests.services.survey_world import MORNING

TOKEN = "push-path-secret-7Hq2"
REPORT = {
    "phone_number": "13800000001",
    "send_time": "2026-12-03 10:00:00",
    "report_time": "2026-12-03 10:00:05",
    "success": True,
    "err_code": "DELIVERED",
    "err_msg": "用户接收成功",
    "sms_size": "1",
    "biz_id": "932702304080415357^0",
    "out_id": "",
}
UP = {
    "phone_number": "13800000001",
    "send_time": "2026-12-03 10:01:00",
    "content": "是 是 5",
    "sign_name": "青岛市场监管",
    "dest_code": "1234",
    "sequence_id": 1234567,
}


@contextlib.asynccontextmanager
async def aliyun_app(db):
    """Our app on a test server with the Aliyun channel (never sending: no gateway is needed); yields its base URL."""
    settings = db.with_(
        sms_provider="aliyun",
        sms_account_sid="LTAI-test",
        sms_auth_token="aliyun-secret",
        sms_api_url="http://127.0.0.1:9",
        sms_sign_name="青岛市场监管",
        sms_template_code="SMS_1",
        sms_push_token=TOKEN,
    )
    rt = Runtime(settings=settings, clock=FakeClock(MORNING))
    rt.channels = {"sms": AliyunSmsChannel(settings)}
    server = TestServer(make_app(rt))
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/")
    finally:
        await server.close()


def body(*items) -> bytes:
    return json.dumps(list(items), ensure_ascii=False).encode()


WRONG_TOKENS = [
    ("no token", ""),
    ("wrong", "guess"),
    ("prefix", TOKEN[:-1]),
    ("longer", TOKEN + "x"),
    ("other case", TOKEN.upper()),
    ("percent-encoded", TOKEN.replace("-", "%2D") + "%00"),
]

MALFORMED = [
    ("not json", b"not json", 400),
    ("not utf-8", b"\xff\xfe[\x00{\x00}\x00]\x00", 400),
    ("json object", b'{"phone_number": "13800000001"}', 400),
    ("json string", b'"push"', 400),
    ("array of numbers", b"[1, 2]", 400),
    ("array of arrays", b"[[]]", 400),
    ("null", b"null", 400),
    ("deeply nested", b"[" * 100_000 + b"]" * 100_000, 400),
    ("report: no biz_id", body({**REPORT, "biz_id": ""}), 400),
    ("report: no phone", body({k: v for k, v in REPORT.items() if k != "phone_number"}), 400),
    ("report: biz_id an object", body({**REPORT, "biz_id": {"$ne": None}}), 400),
    ("report: biz_id too long", body({**REPORT, "biz_id": "9" * 200}), 400),
    ("report: phone too long", body({**REPORT, "phone_number": "1" * 100}), 400),
    ("report: NUL in phone", body({**REPORT, "phone_number": "1380000\u00000001"}), 400),
    ("report: one good item, one bad", body(REPORT, {**REPORT, "biz_id": None}), 400),
    ("up: no content", body({k: v for k, v in UP.items() if k != "content"}), 400),
    ("up: no phone", body({**UP, "phone_number": ""}), 400),
    ("up: phone an array", body({**UP, "phone_number": ["13800000001"]}), 400),
    ("up: phone too long", body({**UP, "phone_number": "1" * 65}), 400),
    ("up: sequence_id too long", body({**UP, "sequence_id": "7" * 200}), 400),
    ("up: sequence_id an object", body({**UP, "sequence_id": {"a": 1}}), 400),
    ("up: content an object", body({**UP, "content": {"text": "是"}}), 400),
    ("up: one good item, one bad", body(UP, {**UP, "phone_number": None, "sequence_id": 5}), 400),
    ("oversized", b"[" + b" " * MAX_PUSH_BODY + b"]", 413),
]


@pytest.mark.parametrize("route", ["report", "up"])
@pytest.mark.parametrize("name, token", WRONG_TOKENS, ids=[t[0] for t in WRONG_TOKENS])
async def test_a_wrong_path_token_is_refused_and_stores_nothing(db, route, name, token):
    async with aiohttp.ClientSession() as http, aliyun_app(db) as base:
        before = await stored()
        item = REPORT if route == "report" else UP
        async with http.post(
            f"{base}/sms/aliyun/{route}/{token}", data=body(item), headers={"Content-Type": "application/json"}
        ) as r:
            assert r.status in (403, 404), (name, r.status)  # no token at all: no such route
            assert TOKEN not in await r.text()
        # oversized with a wrong token: refused for the token, before the body is read
        async with http.post(f"{base}/sms/aliyun/{route}/guess", data=b"[" + b" " * MAX_PUSH_BODY + b"]") as r:
            assert r.status == 403
        assert await stored() == before


# each body at each route, but an item meant for one route only at that route
PUSHES = [
    (route, name, data, status)
    for route in ("report", "up")
    for name, data, status in MALFORMED
    if not name.startswith(("report:", "up:")) or name.startswith(route + ":")
]


@pytest.mark.parametrize("route, name, data, status", PUSHES, ids=[f"{p[0]}: {p[1]}" for p in PUSHES])
async def test_a_malformed_push_is_refused_and_stores_nothing(db, route, name, data, status):
    async with aiohttp.ClientSession() as http, aliyun_app(db) as base:
        before = await stored()
        async with http.post(
            f"{base}/sms/aliyun/{route}/{TOKEN}", data=data, headers={"Content-Type": "application/json"}
        ) as r:
            assert r.status == status, (name, r.status, (await r.text())[:200])
        assert await stored() == before


async def test_a_chunked_oversized_push_is_413(db):
    async with aiohttp.ClientSession() as http, aliyun_app(db) as base:
        before = await stored()
        async with http.post(f"{base}/sms/aliyun/up/{TOKEN}", data=chunked(b"[" + b" " * MAX_PUSH_BODY + b"]")) as r:
            assert r.status == 413
        assert await stored() == before


async def test_a_good_push_is_stored_once_and_a_replay_changes_nothing(db):
    """The refusals above are not everything refused: the same routes take a genuine push, once."""
    async with aiohttp.ClientSession() as http, aliyun_app(db) as base:
        before = await stored()
        for _ in range(3):
            for route, item in (("report", REPORT), ("up", UP)):
                async with http.post(f"{base}/sms/aliyun/{route}/{TOKEN}", data=body(item)) as r:
                    assert r.status == 200 and await r.json() == PUSH_ACK
        after = await stored()
        assert after[0] == before[0] + 2
        assert sorted(await InboundEvent.all().values_list("external_id", flat=True)) == [
            f"{REPORT['biz_id']}:{REPORT['phone_number']}",
            f"up:{UP['sequence_id']}",
        ]
        # an SmsUp without a sequence_id is keyed by its content: repeated, still once
        no_seq = {k: v for k, v in UP.items() if k != "sequence_id"}
        for _ in range(2):
            async with http.post(f"{base}/sms/aliyun/up/{TOKEN}", data=body(no_seq)) as r:
                assert r.status == 200
        assert (await stored())[0] == after[0] + 1


async def test_a_nul_in_a_reply_is_dropped_not_the_reply(db):
    """PostgreSQL holds no NUL in text: the reply is stored without it (never a 503 the gateway
    would retry for ever, never lost)."""
    async with aiohttp.ClientSession() as http, aliyun_app(db) as base:
        async with http.post(f"{base}/sms/aliyun/up/{TOKEN}", data=body({**UP, "content": "是\u0000是 5"})) as r:
            assert r.status == 200
        [event] = await InboundEvent.all()
        assert event.payload["text"] == "是是 5"
