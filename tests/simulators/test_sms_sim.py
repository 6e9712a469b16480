"""The SMS simulator refuses what Twilio would refuse and answers, signs and calls back as Twilio does."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import subprocess
import sys
from email.utils import parsedate_to_datetime
from pathlib import Path
from urllib.parse import parse_qsl

import aiohttp
import pytest
from aiohttp import web

from domain.signatures import verify_twilio_signature
from simulators.sms import SmsSimulator, create_schema, segments

SID = "AC" + "1" * 32
TOKEN = "sim-token-0123456789"
FROM = "+15005550006"
PHONE = "+8613800000000"
SAMPLES = Path(__file__).resolve().parents[1] / "data" / "sms-samples"
SPEC = Path(__file__).resolve().parents[2] / "simulators" / "data" / "twilio-api-v2010-messages.openapi.json"


@pytest.fixture
async def sim():
    simulator = SmsSimulator(account_sid=SID, auth_token=TOKEN, numbers=(FROM,))
    await simulator.start()
    yield simulator
    await simulator.stop()


@pytest.fixture
async def receiver():
    """A bare webhook receiver recording what the simulator POSTs (URL, headers, form)."""
    got: list[tuple[str, dict, list[tuple[str, str]]]] = []

    async def record(request: web.Request) -> web.Response:
        got.append(
            (
                str(request.url),
                dict(request.headers),
                parse_qsl((await request.read()).decode(), keep_blank_values=True),
            )
        )
        return web.Response(text="<Response/>", content_type="text/xml")

    app = web.Application()
    app.router.add_post("/{tail:.*}", record)
    runner = web.AppRunner(app)
    await runner.setup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    await web.SockSite(runner, sock).start()
    yield f"http://127.0.0.1:{sock.getsockname()[1]}", got
    await runner.cleanup()


async def _create(sim: SmsSimulator, fields, *, auth=(SID, TOKEN), account=SID):
    url = f"{sim.url}/2010-04-01/Accounts/{account}/Messages.json"
    async with aiohttp.ClientSession() as session:
        async with session.post(
            url, data=fields, headers={"Authorization": aiohttp.encode_basic_auth(*auth)} if auth else None
        ) as resp:
            return resp.status, await resp.json(), resp.headers


def _ok(**extra) -> dict[str, str]:
    return {"To": PHONE, "From": FROM, "Body": "hello", **extra}


# --- refusals -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fields,status,code",
    [
        ({"From": FROM, "Body": "hi"}, 400, 21604),  # missing To
        (_ok(Bodi="typo"), 400, 20001),  # unknown field (stricter than Twilio, which ignores it)
        (_ok(To="13800000000"), 400, 21211),  # not E.164
        (_ok(To="+86138"), 400, 21211),  # too short to be a number
        (_ok(To="+1555"), 400, 21211),  # the oracle's 21211 sample
        (_ok(To=FROM), 400, 21211),  # To == From
        (_ok(To="+862161234567"), 400, 21614),  # a Shanghai landline
        ({"To": PHONE, "Body": "hi"}, 400, 21603),  # neither From nor MessagingServiceSid
        ({"To": PHONE, "From": FROM}, 400, 21602),  # no Body
        (_ok(Body="x" * 1601), 400, 21617),  # over 1600 characters
        (_ok(From="+15005550009"), 400, 21606),  # not one of our numbers
        (_ok(StatusCallback="http://bad_host.example/cb"), 400, 21609),  # underscore in host
        (_ok(StatusCallback="not a url"), 400, 21609),
        (_ok(StatusCallback="ftp://h.example/cb"), 400, 21609),
        (_ok(ValidityPeriod="soon"), 400, 400),  # integer
        (_ok(ValidityPeriod="36001"), 400, 400),  # 1..36000
        (_ok(ProvideFeedback="maybe"), 400, 400),  # boolean
        (_ok(MessagingServiceSid="MG123"), 400, 400),  # pattern ^MG[0-9a-fA-F]{32}$
        (_ok(RiskCheck="sometimes"), 400, 400),  # enum
        (_ok(SendAt="tomorrow"), 400, 400),  # date-time
    ],
)
async def test_requests_twilio_would_reject(sim, fields, status, code):
    got_status, body, _ = await _create(sim, fields)
    assert (got_status, body["code"], body["status"]) == (status, code, status)
    assert body["more_info"] == f"https://www.twilio.com/docs/errors/{code}"
    assert set(body) == set(json.loads((SAMPLES / "twilio-error-400-21211.json").read_text()))
    assert sim.messages == {}


@pytest.mark.parametrize(
    "auth,account",
    [
        (None, SID),
        ((SID, "wrong-token"), SID),
        (("AC" + "2" * 32, TOKEN), SID),
        ((SID, TOKEN), "AC" + "2" * 32),
    ],
)
async def test_bad_auth_is_401_20003(sim, auth, account):
    status, body, headers = await _create(sim, _ok(), auth=auth, account=account)
    assert (status, body["code"]) == (401, 20003)
    assert headers["WWW-Authenticate"].startswith("Basic")
    assert body == {**json.loads((SAMPLES / "twilio-error-401-20003.json").read_text())}


@pytest.mark.parametrize(
    "header",
    [
        "Basic !!!not-base64",
        "Bearer " + SID,
        "Basic",
        "Basic " + base64.b64encode(b"no-colon").decode(),
        "Basic " + base64.b64encode(b"\xff\xfe:x").decode(),
    ],
)
async def test_a_malformed_authorization_header_is_401_20003(sim, header):
    url = f"{sim.url}/2010-04-01/Accounts/{SID}/Messages.json"
    async with aiohttp.ClientSession() as session:
        async with session.post(url, data=_ok(), headers={"Authorization": header}) as resp:
            assert (resp.status, (await resp.json())["code"]) == (401, 20003)
    assert sim.messages == {}


async def test_unknown_paths_get_twilio_404(sim):
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{sim.url}/2010-04-01/Accounts/{SID}/Calls.json") as resp:
            assert resp.status == 404
            assert (await resp.json())["code"] == 20404


def test_the_schema_comes_from_the_oracle():
    props, required = create_schema()
    assert required == {"To"}
    assert {"To", "From", "Body", "StatusCallback", "MessagingServiceSid", "MediaUrl", "ValidityPeriod"} <= set(props)
    assert "enum" in props["RiskCheck"]  # $ref resolved
    oracle = Path("/work/shared/oracles/twilio-api-v2010-messages.openapi.json")
    if oracle.exists():
        assert SPEC.read_bytes() == oracle.read_bytes()


# --- the 201 and the message resource -----------------------------------------------------------


async def test_201_has_the_oracle_shape(sim):
    status, body, _ = await _create(sim, _ok(Body="Hello! 👍"))
    sample = json.loads((SAMPLES / "twilio-message-create-201.json").read_text())
    assert status == 201
    assert set(body) == set(sample)
    both = [k for k in sample if sample[k] is not None and body[k] is not None]
    assert {k: type(body[k]) for k in both} == {k: type(sample[k]) for k in both}
    assert len(both) >= 14
    assert body["status"] == "queued" and body["direction"] == "outbound-api" and body["api_version"] == "2010-04-01"
    assert body["sid"].startswith("SM") and len(body["sid"]) == 34
    assert body["uri"] == f"/2010-04-01/Accounts/{SID}/Messages/{body['sid']}.json"
    assert body["num_segments"] == "1" and body["num_media"] == "0"
    assert parsedate_to_datetime(body["date_created"]).utcoffset().total_seconds() == 0
    assert body["date_created"].endswith(" +0000")


async def test_messaging_service_starts_accepted_with_no_from(sim):
    status, body, _ = await _create(sim, {"To": PHONE, "MessagingServiceSid": "MG" + "a" * 32, "Body": "hi"})
    sample = json.loads((SAMPLES / "twilio-message-create-201-messaging-service.json").read_text())
    assert status == 201 and set(body) == set(sample)
    assert (body["status"], body["from"], body["messaging_service_sid"]) == ("accepted", None, "MG" + "a" * 32)


async def test_a_created_message_can_be_fetched(sim):
    _, body, _ = await _create(sim, _ok())
    async with aiohttp.ClientSession(headers={"Authorization": aiohttp.encode_basic_auth(SID, TOKEN)}) as session:
        async with session.get(f"{sim.url}{body['uri']}") as resp:
            assert resp.status == 200 and (await resp.json())["sid"] == body["sid"]
        async with session.get(f"{sim.url}/2010-04-01/Accounts/{SID}/Messages/SM{'0' * 32}.json") as resp:
            assert resp.status == 404


@pytest.mark.parametrize(
    "body,expected",
    [
        ("a" * 160, 1),
        ("a" * 161, 2),
        ("a" * 306, 2),
        ("a" * 307, 3),
        ("€" * 80, 1),
        ("€" * 81, 2),  # GSM-7 extension characters count twice
        ("你" * 70, 1),
        ("你" * 71, 2),
        ("你" * 134, 2),
        ("你" * 135, 3),
        ("👍" * 35, 1),
        ("👍" * 36, 2),  # UCS-2: an emoji is two code units
    ],
)
def test_segments(body, expected):
    assert segments(body) == expected


# --- callbacks and replies ----------------------------------------------------------------------


async def test_status_callbacks_are_signed_like_twilio(sim, receiver):
    base, got = receiver
    callback = base + "/sms/status?tenant=1"
    _, body, _ = await _create(sim, _ok(StatusCallback=callback))
    await sim.drain()
    assert [dict(form)["MessageStatus"] for _, _, form in got] == ["sent", "delivered"]  # never the first status
    for url, headers, form in got:
        assert url == callback
        assert verify_twilio_signature(callback, form, TOKEN, headers["X-Twilio-Signature"])
        assert not verify_twilio_signature(callback, form, "other", headers["X-Twilio-Signature"])
        fields = dict(form)
        assert fields["MessageSid"] == fields["SmsSid"] == body["sid"]
        assert (fields["AccountSid"], fields["To"], fields["From"], fields["ApiVersion"]) == (
            SID,
            PHONE,
            FROM,
            "2010-04-01",
        )
    assert len(dict(got[1][2])["RawDlrDoneDate"]) == 10
    assert sim.messages[body["sid"]]["status"] == "delivered"


@pytest.mark.parametrize(
    "state,statuses,code",
    [
        ("unreachable", ["sent", "undelivered"], "30003"),
        ("failed", ["failed"], "30008"),
    ],
)
async def test_undeliverable_phones(sim, receiver, state, statuses, code):
    base, got = receiver
    sim.set_state(PHONE, state)
    await _create(sim, _ok(StatusCallback=base + "/sms/status"))
    await sim.drain()
    assert [dict(f)["MessageStatus"] for _, _, f in got] == statuses
    assert dict(got[-1][2])["ErrorCode"] == code


async def test_a_phone_reply_is_a_signed_inbound_webhook(sim, receiver):
    base, got = receiver
    sim.inbound_url = base + "/sms/inbound"
    await _create(sim, _ok())
    reply = await sim.reply(PHONE, "Y N 4")
    assert reply.status == 200
    url, headers, form = got[0]
    fields = dict(form)
    assert verify_twilio_signature(sim.inbound_url, form, TOKEN, headers["X-Twilio-Signature"])
    assert (fields["From"], fields["To"], fields["Body"], fields["MessageSid"], fields["SmsStatus"]) == (
        PHONE,
        FROM,
        "Y N 4",
        reply.sid,
        "received",
    )
    assert fields["FromCountry"] == "CN" and fields["NumMedia"] == "0"
    expected_names = {
        name
        for name, _ in json.loads((SAMPLES.parent / "twilio-signature-vectors.json").read_text())["vectors"][6][
            "form_params"
        ]
    }
    assert set(fields) == expected_names - {"MessagingServiceSid"}
    assert sim.phone(PHONE).sent[0]["webhook_status"] == 200


async def test_unreachable_callback_url_is_recorded_not_raised(sim):
    await _create(sim, _ok(StatusCallback="http://127.0.0.1:9/cb"))
    await sim.drain()
    assert [w.status for w in sim.webhooks] == [0, 0]


# --- faults -------------------------------------------------------------------------------------


async def test_faults_apply_to_the_next_requests_in_order(sim):
    sim.inject("429", retry_after=2)
    sim.inject("500")
    status, body, headers = await _create(sim, _ok())
    assert (status, body["code"], headers["Retry-After"]) == (429, 20429, "2")
    assert body == json.loads((SAMPLES / "twilio-error-429-20429.json").read_text())
    status, body, _ = await _create(sim, _ok())
    assert (status, body["code"]) == (500, 20500)
    status, _, _ = await _create(sim, _ok())
    assert status == 201


async def test_unsubscribed_is_21610(sim):
    sim.set_state(PHONE, "unsubscribed")
    status, body, _ = await _create(sim, _ok())
    assert (status, body) == (400, json.loads((SAMPLES / "twilio-error-400-21610.json").read_text()))


async def test_timeout_fault_holds_the_request(sim):
    sim.inject("timeout")
    with pytest.raises(asyncio.TimeoutError):
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=0.2)) as session:
            await session.post(
                f"{sim.url}/2010-04-01/Accounts/{SID}/Messages.json",
                data=_ok(),
                headers={"Authorization": aiohttp.encode_basic_auth(SID, TOKEN)},
            )
    assert sim.messages == {}


def test_unknown_fault_and_state_are_refused():
    sim = SmsSimulator()
    with pytest.raises(ValueError):
        sim.inject("explode")
    with pytest.raises(ValueError):
        sim.set_state(PHONE, "asleep")
    with pytest.raises(ValueError):
        SmsSimulator(account_sid="nope")


# --- the /_sim JSON API -------------------------------------------------------------------------


async def test_sim_json_api(sim, receiver):
    base, got = receiver
    sim.inbound_url = base + "/sms/inbound"
    await _create(sim, _ok(Body="第一条"))
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{sim.url}/_sim/phones") as resp:
            assert (await resp.json())["phones"] == [{"number": PHONE, "state": "ok", "received": 1, "sent": 0}]
        async with session.get(f"{sim.url}/_sim/phones/{PHONE}") as resp:
            phone = await resp.json()
            assert [m["body"] for m in phone["received"]] == ["第一条"]
        async with session.post(f"{sim.url}/_sim/phones/{PHONE}/reply", json={"body": "TD"}) as resp:
            assert resp.status == 200 and (await resp.json())["status"] == 200
        async with session.post(f"{sim.url}/_sim/phones/{PHONE}/reply", json={}) as resp:
            assert resp.status == 400
        async with session.post(f"{sim.url}/_sim/phones/{PHONE}/state", json={"state": "unreachable"}) as resp:
            assert (await resp.json())["state"] == "unreachable"
        async with session.post(f"{sim.url}/_sim/faults", json={"fault": "500", "count": 2}) as resp:
            assert (await resp.json())["faults"] == ["500", "500"]
        async with session.post(f"{sim.url}/_sim/faults", json={"fault": "boom"}) as resp:
            assert resp.status == 400
        async with session.delete(f"{sim.url}/_sim/faults") as resp:
            assert (await resp.json())["faults"] == []
        async with session.get(f"{sim.url}/_sim/messages") as resp:
            assert [m["body"] for m in (await resp.json())["messages"]] == ["第一条"]
        async with session.get(f"{sim.url}/_sim/webhooks") as resp:
            assert [w["kind"] for w in (await resp.json())["webhooks"]] == ["inbound"]
    assert dict(got[0][2])["Body"] == "TD"


def test_standalone_module_serves(tmp_path):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    env = {"PATH": "/usr/bin:/bin", "SMS_AUTH_TOKEN": "from-env-token", "INSPECTBOT_DATA_DIR": str(tmp_path)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "simulators.sms", "--port", str(port)],
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        import time
        import urllib.request

        for _ in range(100):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_sim/phones", timeout=1) as resp:
                    assert json.loads(resp.read()) == {"phones": []}
                    break
            except OSError:
                time.sleep(0.05)
        else:
            pytest.fail("the simulator did not start")
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=5)
    assert "from-env-token" not in err
    assert "sms simulator on" in err
