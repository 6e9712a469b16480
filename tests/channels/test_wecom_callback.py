"""The WeCom callback on the service's web app: URL verification, and forged, wrongly signed,
wrong-corp, stale, replayed, malformed and oversized callbacks refused with nothing stored —
while a genuine one is stored before it is answered, and handled once."""

from __future__ import annotations

import time

import aiohttp

from bot.channels.wecom import CALLBACK_PATH
from core.wecom_crypto import WecomCrypto
from models.messaging import InboundEvent, Outbox
from simulators.wecom import DEV_AES_KEY, DEV_CORP_ID, DEV_TOKEN
from tests.e2e.wecom_harness import wecom_spine

PLAIN = (
    "<xml><ToUserName><![CDATA[{corp}]]></ToUserName><FromUserName><![CDATA[eve]]></FromUserName>"
    "<CreateTime>1800000000</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[/help]]></Content>"
    "<MsgId>{msg_id}</MsgId><AgentID>1000002</AgentID></xml>"
)


async def post(url: str, crypto: WecomCrypto, plain: str, *, timestamp: str | None = None, body: bytes | None = None):
    timestamp = timestamp or str(int(time.time()))
    encrypt, signature = crypto.seal(plain, timestamp, "123456")
    query = {"msg_signature": signature, "timestamp": timestamp, "nonce": "123456"}
    data = body if body is not None else f"<xml><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>".encode()
    async with aiohttp.ClientSession() as session:
        async with session.post(url + CALLBACK_PATH, params=query, data=data) as resp:
            return resp.status


async def test_url_verification(db):
    async with wecom_spine(db) as s:
        status, echo = await s.sim.verify_url("1616140317555161061")
        assert (status, echo) == (200, "1616140317555161061")
        async with aiohttp.ClientSession() as session:
            query = {"msg_signature": "0" * 40, "timestamp": "1", "nonce": "2", "echostr": "abc"}
            async with session.get(s.url + CALLBACK_PATH, params=query) as resp:
                assert resp.status == 403


async def test_forged_callbacks_are_refused_and_nothing_is_stored(db):
    async with wecom_spine(db) as s:
        genuine = WecomCrypto(DEV_TOKEN, DEV_AES_KEY, DEV_CORP_ID)
        other_token = WecomCrypto("guessed", DEV_AES_KEY, DEV_CORP_ID)
        other_key = WecomCrypto(DEV_TOKEN, "B" * 43, DEV_CORP_ID)
        other_corp = WecomCrypto(DEV_TOKEN, DEV_AES_KEY, "wwffffffffffffffff")
        plain = PLAIN.format(corp=DEV_CORP_ID, msg_id=1)
        assert await post(s.url, other_token, plain) == 403  # wrong signature
        assert await post(s.url, other_key, plain) == 403  # signed right, encrypted with another key
        assert await post(s.url, other_corp, plain) == 403  # another corp's CorpID inside
        assert await post(s.url, genuine, plain, timestamp=str(int(time.time()) - 3600)) == 403  # an old capture
        assert await post(s.url, genuine, plain, body=b"not xml") == 403
        assert await post(s.url, genuine, plain, body=b"x" * (70 << 10)) == 413
        doctype = '<!DOCTYPE x [<!ENTITY a "b">]><xml><Content>&a;</Content></xml>'
        assert await post(s.url, genuine, doctype) == 400  # signed, but entities are never parsed
        assert await post(s.url, genuine, "<xml><FromUserName>eve</FromUserName></xml>") == 400
        assert await post(s.url, genuine, PLAIN.format(corp="wwother", msg_id=1)) == 400  # not to us
        assert await post(s.url, genuine, plain.replace("eve", "e\x01ve")) in (400, 403)  # a control character
        huge = plain.replace("<MsgType>", "<Location_X>1e308</Location_X><MsgType>").replace("text", "location")
        assert await post(s.url, genuine, huge) == 400  # a coordinate no place has
        assert not await InboundEvent.exists() and not await Outbox.exists()
        assert await post(s.url, genuine, plain) == 200  # the genuine one
        assert await InboundEvent.filter(channel="wecom", sender="eve").count() == 1


async def test_retries_and_replays_are_handled_once(db):
    async with wecom_spine(db) as s:
        assert await s.sim.text("eve", "你好") == 200
        assert await InboundEvent.filter(sender="eve").count() == 1
        assert await s.sim.redeliver() == 403  # the same callback again: refused, nothing new
        # a retry that reaches another instance (which has not seen it) is a duplicate in the log
        s.channel._seen.clear()
        assert await s.sim.redeliver() == 200
        assert await InboundEvent.filter(sender="eve").count() == 1
        await s.deliver()
        assert len(s.sim.member("eve").texts()) == 1  # one answer


async def test_the_simulator_page_lets_a_person_act(db):
    async with wecom_spine(db) as s:
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{s.sim.url}/_sim/members/visitor/enter", allow_redirects=False) as resp:
                assert resp.status == 303  # a form post: back to the page
            async with session.post(f"{s.sim.url}/_sim/members/visitor/text", json={"text": "你好 <b>"}) as resp:
                assert (await resp.json())["status"] == 200
            await s.deliver()
            async with session.get(f"{s.sim.url}/") as resp:
                page = await resp.text()
        assert "<h2>visitor</h2>" in page and "你好 &lt;b&gt;" in page and "尚未登记" in page
        assert await InboundEvent.filter(sender="visitor").count() == 2
