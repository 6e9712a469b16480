"""Hostile requests at every webhook are refused with the right status and store nothing.

Telegram's ``/telegram/webhook`` (secret-token header) and Twilio's ``/sms/inbound`` and
``/sms/status`` (``X-Twilio-Signature``), served by our real aiohttp app, wired as the e2e tests
wire them (``tests.e2e.harness.spine``, ``tests.e2e.test_surveys_sms.gateway``). Each attack is
sent, its status checked, and the ``inbound_event`` and ``outbox`` tables counted before and after.
"""

from __future__ import annotations

import contextlib
import json

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from bot.channels.sms_twilio import INBOUND_PATH, MAX_WEBHOOK_BODY, STATUS_PATH
from bot.channels.telegram import TelegramChannel
from bot.web import MAX_BODY, make_app
from domain.signatures import twilio_signature
from models.messaging import InboundEvent, Outbox
from simulators.sms import DEV_ACCOUNT_SID, DEV_AUTH_TOKEN, DEV_NUMBER
from tests.e2e.harness import spine
from tests.e2e.test_surveys_sms import gateway

SECRET = "webhook-secret-for-attacks"
GOOD = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
PHONE = "+8613800000001"


async def stored() -> tuple[int, int]:
    """What the attacks must not change: (inbound events, outbox rows)."""
    return await InboundEvent.all().count(), await Outbox.all().count()


def chunked(body: bytes):
    """The body as a chunked upload (no Content-Length), so only a streaming limit can stop it."""

    async def gen():
        for i in range(0, len(body), 16 * 1024):
            yield body[i : i + 16 * 1024]

    return gen()


@contextlib.asynccontextmanager
async def telegram_webhook(db):
    """Our app on a test server with the Telegram channel in webhook mode; yields (url, an update)."""
    async with spine(db, mode="send-only") as s:
        s.rt.channels["telegram"] = TelegramChannel(
            s.sim.token,
            api_url=s.sim.url,
            mode="webhook",
            webhook_secret=SECRET,
            on_event=s.rt.on_event,
            webhook_url="http://unused",
        )
        server = TestServer(make_app(s.rt))
        await server.start_server()
        try:
            update = s.sim.send_text(s.sim.create_user("Eve"), "hello")
            yield str(server.make_url("/telegram/webhook")), update
        finally:
            await server.close()


TELEGRAM_ATTACKS = [
    # (name, headers, body maker, expected status)
    ("no secret", {}, lambda u: json.dumps(u).encode(), 403),
    ("empty secret", {"X-Telegram-Bot-Api-Secret-Token": ""}, lambda u: json.dumps(u).encode(), 403),
    ("wrong secret", {"X-Telegram-Bot-Api-Secret-Token": SECRET + "x"}, lambda u: json.dumps(u).encode(), 403),
    ("secret prefix", {"X-Telegram-Bot-Api-Secret-Token": SECRET[:-1]}, lambda u: json.dumps(u).encode(), 403),
    ("oversized, no secret", {}, lambda u: b"x" * (MAX_BODY + 1), 403),
    ("oversized", GOOD, lambda u: b"{" + b" " * MAX_BODY + b"}", 413),
    ("malformed json", GOOD, lambda u: b"{not json", 400),
    ("not utf-8", GOOD, lambda u: b"\xff\xfe{}", 400),
    ("json array", GOOD, lambda u: b"[1, 2]", 400),
    ("json string", GOOD, lambda u: b'"update"', 400),
    ("update_id not a number", GOOD, lambda u: json.dumps({**u, "update_id": "x"}).encode(), 400),
    ("message not an object", GOOD, lambda u: json.dumps({**u, "message": 5}).encode(), 400),
]


@pytest.mark.parametrize("name, headers, body, status", TELEGRAM_ATTACKS, ids=[a[0] for a in TELEGRAM_ATTACKS])
async def test_telegram_webhook_refuses_and_stores_nothing(db, name, headers, body, status):
    async with telegram_webhook(db) as (url, update):
        before = await stored()
        async with aiohttp.ClientSession() as http:
            async with http.post(url, data=body(update), headers={"Content-Type": "application/json", **headers}) as r:
                assert r.status == status, name
        assert await stored() == before


async def test_telegram_webhook_chunked_oversized_body_is_413(db):
    async with telegram_webhook(db) as (url, update):
        before = await stored()
        async with aiohttp.ClientSession() as http:
            async with http.post(url, data=chunked(b"{" + b" " * MAX_BODY + b"}"), headers=GOOD) as r:
                assert r.status == 413
            # the genuine update still goes through afterwards: the refusals broke nothing
            async with http.post(url, json=update, headers=GOOD) as r:
                assert r.status == 200
        assert (await stored())[0] == before[0] + 1


# --- Twilio ---------------------------------------------------------------------------------


def reply_form(sid: str = "SM" + "b" * 32, **extra) -> dict[str, str]:
    return {
        "MessageSid": sid,
        "AccountSid": DEV_ACCOUNT_SID,
        "From": PHONE,
        "To": DEV_NUMBER,
        "Body": "是 是 5",
        **extra,
    }


def status_form(sid: str = "SM" + "c" * 32, **extra) -> dict[str, str]:
    return {"MessageSid": sid, "AccountSid": DEV_ACCOUNT_SID, "MessageStatus": "delivered", "To": PHONE, **extra}


def signed(url: str, form: dict[str, str], token: str = DEV_AUTH_TOKEN) -> dict[str, str]:
    return {"X-Twilio-Signature": twilio_signature(url, form, token)}


def twilio_attacks(base: str) -> list[tuple[str, str, bytes | dict, dict, int]]:
    """(name, path, body, headers, expected status) for each attack on both routes."""
    inbound, status = base + INBOUND_PATH, base + STATUS_PATH
    form = reply_form()
    huge = reply_form(Body="x" * MAX_WEBHOOK_BODY)
    return [
        ("inbound: no signature", INBOUND_PATH, form, {}, 403),
        ("inbound: empty signature", INBOUND_PATH, form, {"X-Twilio-Signature": ""}, 403),
        ("inbound: wrong token", INBOUND_PATH, form, signed(inbound, form, "not-the-token"), 403),
        ("inbound: signed for the status URL", INBOUND_PATH, form, signed(status, form), 403),
        ("inbound: body changed after signing", INBOUND_PATH, {**form, "Body": "1 1 1"}, signed(inbound, form), 403),
        ("inbound: parameter added after signing", INBOUND_PATH, {**form, "X": "1"}, signed(inbound, form), 403),
        ("inbound: signature not base64", INBOUND_PATH, form, {"X-Twilio-Signature": "%%%"}, 403),
        (
            "inbound: SharedKey algorithm",
            INBOUND_PATH,
            form,
            {**signed(inbound, form), "X-Twilio-Webhooks-Signature-Settings": "key=k1,algorithm=HMAC_SHA256"},
            403,
        ),
        ("inbound: not utf-8", INBOUND_PATH, b"Body=\xff\xfe&From=%2B86", signed(inbound, {}), 403),
        ("inbound: json, unsigned", INBOUND_PATH, json.dumps(form).encode(), {"Content-Type": "application/json"}, 403),
        ("inbound: oversized, signed", INBOUND_PATH, huge, signed(inbound, huge), 413),
        ("inbound: oversized, unsigned", INBOUND_PATH, huge, {}, 413),
        (
            "inbound: signed, no MessageSid",
            INBOUND_PATH,
            {k: v for k, v in form.items() if k != "MessageSid"},
            signed(inbound, {k: v for k, v in form.items() if k != "MessageSid"}),
            400,
        ),
        (
            "inbound: signed, no From",
            INBOUND_PATH,
            {k: v for k, v in form.items() if k != "From"},
            signed(inbound, {k: v for k, v in form.items() if k != "From"}),
            400,
        ),
        ("inbound: signed, empty form", INBOUND_PATH, b"", signed(inbound, {}), 400),
        ("inbound: signed, not a form", INBOUND_PATH, b"garbage", signed(inbound, {"garbage": ""}), 400),
        *[
            (f"inbound: signed, {what}", INBOUND_PATH, bad, signed(inbound, bad), 400)
            for what, bad in (
                ("MessageSid of 200 characters", reply_form(sid="SM" + "d" * 198)),
                ("From of 100 characters", reply_form(From="+86" + "1" * 97)),
                ("From with a control character", reply_form(From="+8613\x1b900000000")),
            )
        ],
        ("status: no signature", STATUS_PATH, status_form(), {}, 403),
        ("status: wrong token", STATUS_PATH, status_form(), signed(status, status_form(), "nope"), 403),
        ("status: signed for the inbound URL", STATUS_PATH, status_form(), signed(inbound, status_form()), 403),
        (
            "status: signed, no MessageStatus",
            STATUS_PATH,
            {**status_form(), "MessageStatus": ""},
            signed(status, {**status_form(), "MessageStatus": ""}),
            400,
        ),
        (
            "status: signed, no MessageSid",
            STATUS_PATH,
            {"MessageStatus": "delivered"},
            signed(status, {"MessageStatus": "delivered"}),
            400,
        ),
        *[
            (f"status: signed, {what}", STATUS_PATH, bad, signed(status, bad), 400)
            for what, bad in (
                ("MessageSid of 200 characters", status_form(sid="SM" + "e" * 198)),
                ("MessageStatus of 100 characters", status_form(MessageStatus="d" * 100)),
                ("To with a NUL", status_form(To="+86139\x000000000")),
            )
        ],
        (
            "status: oversized",
            STATUS_PATH,
            {**status_form(), "Pad": "x" * MAX_WEBHOOK_BODY},
            signed(status, {**status_form(), "Pad": "x" * MAX_WEBHOOK_BODY}),
            413,
        ),
    ]


TWILIO_NAMES = [a[0] for a in twilio_attacks("http://x")]


@pytest.mark.parametrize("index", range(len(TWILIO_NAMES)), ids=TWILIO_NAMES)
async def test_twilio_webhooks_refuse_and_store_nothing(db, index):
    async with gateway(db) as g:
        name, path, body, headers, status = twilio_attacks(g.settings.public_url)[index]
        before = await stored()
        async with aiohttp.ClientSession() as http:
            async with http.post(g.settings.public_url + path, data=body, headers=headers) as r:
                assert r.status == status, name
        assert await stored() == before
        assert g.sim.webhooks == []  # nothing reached us by the simulator's route either


async def test_twilio_chunked_oversized_body_is_413(db):
    async with gateway(db) as g:
        before = await stored()
        body = b"Body=" + b"x" * MAX_WEBHOOK_BODY
        async with aiohttp.ClientSession() as http:
            async with http.post(
                g.settings.public_url + INBOUND_PATH,
                data=chunked(body),
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            ) as r:
                assert r.status == 413
        assert await stored() == before


@pytest.mark.parametrize("path, make", [(INBOUND_PATH, reply_form), (STATUS_PATH, status_form)])
async def test_a_replayed_signed_webhook_is_refused_and_changes_nothing(db, path, make):
    async with gateway(db) as g:
        url = g.settings.public_url + path
        form = make()
        async with aiohttp.ClientSession() as http:
            async with http.post(url, data=form, headers=signed(url, form)) as r:
                assert r.status == 200
            after_first = await stored()
            assert after_first[0] == 1
            for _ in range(3):
                async with http.post(url, data=form, headers=signed(url, form)) as r:
                    assert r.status == 403
        assert await stored() == after_first


async def test_a_replay_to_another_instance_is_absorbed_by_the_idempotency_key(db):
    """A second app (a fresh guard that has not seen the request) answers 200; the unique key stores nothing new."""
    async with gateway(db) as g:
        url = g.settings.public_url + INBOUND_PATH
        form = reply_form()
        second = TestServer(make_app(g.rt))
        await second.start_server()
        try:
            async with aiohttp.ClientSession() as http:
                async with http.post(url, data=form, headers=signed(url, form)) as r:
                    assert r.status == 200
                after_first = await stored()
                # the signature is over the public URL, so the other instance accepts it as genuine
                async with http.post(str(second.make_url(INBOUND_PATH)), data=form, headers=signed(url, form)) as r:
                    assert r.status == 200
            assert await stored() == after_first
        finally:
            await second.close()
