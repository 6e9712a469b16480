"""The simulators' web page: it renders in both locales, lists users and phones, and every action
taken through it reaches the simulators as a real client's would (no database needed)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import re
from pathlib import Path
from urllib.parse import parse_qsl

import aiohttp
import pytest
from aiohttp import web

from core.render import text
from domain.signatures import verify_twilio_signature
from simulators.sms import SmsSimulator
from simulators.telegram import TelegramSimulator
from simulators.telegram.flood import FloodLimits
from simulators.telegram.media import make_png
from simulators.telegram.spec import Upload
from simulators.web import ERROR_CODES, Place, phone_thread, send_samples, sim_page_app

SID = "AC" + "2" * 32
TOKEN = "page-test-token"
FROM = "+15005550006"
PHONE = "+8613800138000"
ENTITY = "青岛示例餐饮有限公司"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


@pytest.fixture
async def tg():
    # Driven in-process: its HTTP server is not needed here. Flood limits off: the stand-in bot
    # answers at once, and a fourth message within a second to one chat would get a 429.
    sim = TelegramSimulator(flood=FloodLimits.off())
    yield sim
    assert sim.self_check_failures == []


@pytest.fixture
async def sms():
    sim = SmsSimulator(account_sid=SID, auth_token=TOKEN, numbers=(FROM,))
    await sim.start()
    yield sim
    await sim.stop()


@pytest.fixture
def lookups():
    """The demo's hooks, with what they were asked."""
    asked: list[list[str]] = []

    async def places(user_id: int):
        return [Place(ENTITY, 36.0671, 120.3826)]

    async def phone_names(numbers):
        asked.append(list(numbers))
        return {PHONE: ENTITY}

    return {"places": places, "phone_names": phone_names, "asked": asked}


@pytest.fixture
async def client(aiohttp_client, tg, sms, lookups):
    return await aiohttp_client(sim_page_app(tg, sms, places=lookups["places"], phone_names=lookups["phone_names"]))


@pytest.fixture
async def receiver(aiohttp_server):
    """Stands in for our service's inbound-SMS webhook: records each signed form, answers 200."""
    got: list[tuple[str, dict[str, str], str]] = []

    async def inbound(request: web.Request) -> web.Response:
        form = dict(parse_qsl((await request.read()).decode(), keep_blank_values=True))
        got.append((str(request.url), form, request.headers.get("X-Twilio-Signature", "")))
        return web.Response(text="<Response/>", content_type="text/xml")

    app = web.Application()
    app.router.add_post("/sms/inbound", inbound)
    server = await aiohttp_server(app)
    return str(server.make_url("/sms/inbound")), got


async def bot_call(tg: TelegramSimulator, method: str, files: dict | None = None, **params) -> dict:
    """What our bot does, through the simulator's Bot API (validated as any real call)."""
    raw = {k: v if isinstance(v, str) else json.dumps(v, ensure_ascii=False) for k, v in params.items()}
    status, body = await tg.call(tg.token, method, raw, files or {})
    assert status == 200, body
    return body["result"]


async def send_sms(sms: SmsSimulator, to: str, body: str) -> None:
    """What our SMS adapter does: a create-message request to the gateway."""
    auth = "Basic " + base64.b64encode(f"{SID}:{TOKEN}".encode()).decode()
    async with aiohttp.ClientSession(headers={"Authorization": auth}) as session:
        async with session.post(
            f"{sms.url}/2010-04-01/Accounts/{SID}/Messages.json", data={"To": to, "From": FROM, "Body": body}
        ) as resp:
            assert resp.status == 201, await resp.text()


def started_user(tg: TelegramSimulator, name: str = "张伟", **kw):
    user = tg.create_user(name, **kw)
    tg.send_command(user, "start")
    return user


BUTTONS = {
    "inline_keyboard": [
        [{"text": "接受", "callback_data": "asg:accept:7"}, {"text": "申请回避", "callback_data": "asg:recuse:7"}]
    ]
}


# -- the page ----------------------------------------------------------------------------------


@pytest.mark.parametrize("query, locale", [("", "zh-CN"), ("?lang=en", "en"), ("?lang=xx", "zh-CN")])
async def test_page_renders_in_each_locale(client, query, locale):
    resp = await client.get(f"/sim/{query}")
    assert resp.status == 200
    html = await resp.text()
    assert f'<html lang="{locale}">' in html
    assert text("sim_title", locale) in html and text("sim_reply_placeholder", locale) in html
    nonce = re.search(r"script-src 'nonce-([^']+)'", resp.headers["Content-Security-Policy"]).group(1)
    assert f'<script nonce="{nonce}">' in html  # the page's own script is the only one allowed to run
    words = json.loads(
        re.search(r'<script type="application/json" id="words">(.*?)</script>', html, re.DOTALL).group(1)
    )
    assert set(words["errors"]) >= set(ERROR_CODES) | {"network"}  # a word for every error the API answers


async def test_page_shows_times_in_the_services_zone_not_the_browsers(aiohttp_client, tg, sms):
    # a headless browser runs in UTC: a message drawn at 10:00 in Qingdao must not read 02:00
    app = await aiohttp_client(sim_page_app(tg, sms, zone="Asia/Shanghai"))
    html = await (await app.get("/sim/")).text()
    assert '<html lang="zh-CN" data-zone="Asia/Shanghai">' in html
    assert "timeZone: zone" in html and "dataset.zone" in html


async def test_root_redirects_to_the_page(client):
    resp = await client.get("/?lang=en", allow_redirects=False)
    assert resp.status == 302 and resp.headers["Location"] == "/sim/?lang=en"


# -- lists -------------------------------------------------------------------------------------


async def test_state_lists_users_and_phones(client, tg, sms, lookups):
    bound = started_user(tg, "张伟", username="zhangwei")
    tg.create_user("李娜")
    await bot_call(tg, "sendMessage", chat_id=bound.id, text="您有一项新任务")
    await send_sms(sms, PHONE, "回访：请回复 1 2 5")

    state = await (await client.get("/sim/api/state")).json()
    assert [(u["name"], u["username"], u["started"], u["messages"]) for u in state["users"]] == [
        ("张伟", "zhangwei", True, 1),
        ("李娜", None, False, 0),
    ]
    assert state["phones"] == [{"number": PHONE, "name": ENTITY, "state": "ok", "received": 1, "sent": 0}]
    await client.get("/sim/api/state")
    assert lookups["asked"] == [[PHONE]]  # a number's name is asked for once


async def test_create_user_from_the_page(client, tg):
    resp = await client.post(
        "/sim/api/users", json={"first_name": " 王芳 ", "username": "@wangfang", "language_code": "zh-hans"}
    )
    assert resp.status == 200
    made = await resp.json()
    user = tg.user(made["id"])
    assert (user.first_name, user.username, user.language_code, user.started) == ("王芳", "wangfang", "zh-hans", False)
    refused = await client.post("/sim/api/users", json={"first_name": "  "})
    assert refused.status == 400 and (await refused.json())["error"] == "bad_input"
    assert len(tg.users) == 1


# -- one Telegram chat -------------------------------------------------------------------------


async def test_chat_shows_both_sides_in_order(client, tg):
    user = started_user(tg)
    await bot_call(
        tg, "sendMessage", chat_id=user.id, text="任务 <script>alert(1)</script> 见 /tasks", reply_markup=BUTTONS
    )
    tg.send_text(user, "收到")
    await bot_call(tg, "sendPoll", chat_id=user.id, question="是否出示证件？", options=[{"text": "是"}, {"text": "否"}])

    chat = await (await client.get(f"/sim/api/users/{user.id}")).json()
    shown = [(m["from_bot"], m.get("text"), "poll" in m) for m in chat["messages"]]
    assert shown == [
        (False, "/start", False),
        (True, "任务 <script>alert(1)</script> 见 /tasks", False),
        (False, "收到", False),
        (True, None, True),
    ]
    task = chat["messages"][1]
    assert task["buttons"] == [
        [{"text": "接受", "callback_data": "asg:accept:7"}, {"text": "申请回避", "callback_data": "asg:recuse:7"}]
    ]
    assert {"type": "bot_command", "offset": 31, "length": 6} in task["entities"]
    assert chat["messages"][3]["poll"]["options"] == [
        {"text": "是", "voter_count": 0},
        {"text": "否", "voter_count": 0},
    ]
    assert chat["has_places"] is True
    missing = await client.get("/sim/api/users/999")
    assert missing.status == 404 and (await missing.json())["error"] == "no_user"


async def test_pressing_a_button_reaches_the_simulator(client, tg):
    user = started_user(tg)
    sent = await bot_call(tg, "sendMessage", chat_id=user.id, text="新任务", reply_markup=BUTTONS)

    resp = await client.post(
        f"/sim/api/users/{user.id}/press", json={"message_id": sent["message_id"], "callback_data": "asg:recuse:7"}
    )
    assert resp.status == 200
    (update_id,) = (await resp.json())["updates"]
    update = tg.updates[-1]
    assert update["update_id"] == update_id
    assert update["callback_query"]["data"] == "asg:recuse:7"
    assert update["callback_query"]["from"]["id"] == user.id
    assert update["callback_query"]["message"]["message_id"] == sent["message_id"]

    forged = await client.post(
        f"/sim/api/users/{user.id}/press", json={"message_id": sent["message_id"], "callback_data": "asg:accept:8"}
    )
    assert forged.status == 400 and (await forged.json())["error"] == "refused"
    assert tg.updates[-1]["update_id"] == update_id  # nothing produced


async def test_callback_answers_reach_the_page(client, tg):
    user = started_user(tg)
    sent = await bot_call(tg, "sendMessage", chat_id=user.id, text="新任务", reply_markup=BUTTONS)
    await client.post(
        f"/sim/api/users/{user.id}/press", json={"message_id": sent["message_id"], "callback_data": "asg:accept:7"}
    )
    await bot_call(tg, "answerCallbackQuery", callback_query_id=tg.updates[-1]["callback_query"]["id"], text="已接受")
    chat = await (await client.get(f"/sim/api/users/{user.id}")).json()
    assert chat["callback_answers"] == [{"text": "已接受", "show_alert": False}]


async def test_sending_text_and_commands(client, tg):
    user = tg.create_user("新用户")
    start = await client.post(f"/sim/api/users/{user.id}/start", json={})
    assert start.status == 200 and tg.user(user.id).started

    resp = await client.post(f"/sim/api/users/{user.id}/text", json={"text": "/tasks"})
    assert resp.status == 200
    message = tg.updates[-1]["message"]
    assert message["text"] == "/tasks"
    assert message["entities"] == [{"type": "bot_command", "offset": 0, "length": 6}]

    for body in ({"text": "   "}, {"text": 5}, {}):
        refused = await client.post(f"/sim/api/users/{user.id}/text", json=body)
        assert refused.status == 400 and (await refused.json())["error"] == "bad_input"
    not_json = await client.post(
        f"/sim/api/users/{user.id}/text", data=b"text=hi", headers={"Content-Type": "application/json"}
    )
    assert not_json.status == 400
    assert tg.updates[-1]["message"]["text"] == "/tasks"


async def test_answering_a_poll(client, tg):
    user = started_user(tg)
    poll = await bot_call(
        tg,
        "sendPoll",
        chat_id=user.id,
        question="检查人员是否出示了证件？",
        options=[{"text": "是"}, {"text": "否"}, {"text": "不记得"}],
        is_anonymous=False,
    )

    resp = await client.post(
        f"/sim/api/users/{user.id}/poll", json={"message_id": poll["message_id"], "option_ids": [1]}
    )
    assert resp.status == 200
    answer = next(u["poll_answer"] for u in tg.updates if "poll_answer" in u)
    assert (answer["user"]["id"], answer["option_ids"]) == (user.id, [1])
    chat = await (await client.get(f"/sim/api/users/{user.id}")).json()
    shown = chat["messages"][-1]["poll"]
    assert shown["chosen"] == [1] and [o["voter_count"] for o in shown["options"]] == [0, 1, 0]

    two = await client.post(
        f"/sim/api/users/{user.id}/poll", json={"message_id": poll["message_id"], "option_ids": [0, 2]}
    )
    assert two.status == 400 and (await two.json())["error"] == "refused"  # one answer only
    bad = await client.post(
        f"/sim/api/users/{user.id}/poll", json={"message_id": poll["message_id"], "option_ids": "1"}
    )
    assert bad.status == 400 and (await bad.json())["error"] == "bad_input"


async def test_sharing_a_location(client, tg):
    user = started_user(tg)
    places = await (await client.get(f"/sim/api/users/{user.id}/places")).json()
    assert places == {"places": [{"label": ENTITY, "latitude": 36.0671, "longitude": 120.3826}]}

    resp = await client.post(f"/sim/api/users/{user.id}/location", json={"latitude": "36.0671", "longitude": 120.3826})
    assert resp.status == 200
    assert tg.updates[-1]["message"]["location"] == {"latitude": 36.0671, "longitude": 120.3826}
    for body, code in (
        ({"latitude": 91, "longitude": 0}, "refused"),
        ({"latitude": "north", "longitude": 0}, "bad_location"),
        ({"latitude": "nan", "longitude": 0}, "bad_location"),
        ({"longitude": 0}, "bad_location"),
    ):
        refused = await client.post(f"/sim/api/users/{user.id}/location", json=body)
        assert refused.status == 400 and (await refused.json())["error"] == code, body
    chat = await (await client.get(f"/sim/api/users/{user.id}")).json()
    assert chat["messages"][-1]["location"] == {"latitude": 36.0671, "longitude": 120.3826}


async def test_sending_photos(client, tg):
    user = started_user(tg)
    generated = await client.post(f"/sim/api/users/{user.id}/photo", json={"caption": "现场"})
    assert generated.status == 200
    assert tg.updates[-1]["message"]["caption"] == "现场" and tg.updates[-1]["message"]["photo"]

    picture = make_png(64, 48)
    form = aiohttp.FormData()
    form.add_field("photo", picture, filename="site.png", content_type="image/png")
    form.add_field("caption", "门头")
    uploaded = await client.post(f"/sim/api/users/{user.id}/photo", data=form)
    assert uploaded.status == 200
    sizes = tg.updates[-1]["message"]["photo"]
    assert (sizes[-1]["width"], sizes[-1]["height"]) == (64, 48)

    chat = await (await client.get(f"/sim/api/users/{user.id}")).json()
    url = chat["messages"][-1]["photo"]["url"]
    image = await client.get(f"/sim/{url}")
    assert image.status == 200 and image.content_type == "image/png" and await image.read() == picture

    not_image = aiohttp.FormData()
    not_image.add_field("photo", b"<html>hello</html>", filename="x.png", content_type="image/png")
    refused = await client.post(f"/sim/api/users/{user.id}/photo", data=not_image)
    assert refused.status == 400 and (await refused.json())["error"] == "not_an_image"
    empty = aiohttp.FormData(default_to_multipart=True)
    empty.add_field("caption", "没有图片")
    refused = await client.post(f"/sim/api/users/{user.id}/photo", data=empty)
    assert refused.status == 400 and (await refused.json())["error"] == "no_photo"


async def test_documents_download_instead_of_rendering(client, tg):
    user = started_user(tg)
    sent = await bot_call(
        tg,
        "sendDocument",
        chat_id=user.id,
        files={"document": Upload("report.html", "text/html", b"<script>alert(1)</script>")},
    )
    chat = await (await client.get(f"/sim/api/users/{user.id}")).json()
    doc = chat["messages"][-1]["document"]
    assert doc["name"] == "report.html" and sent["document"]["file_id"] in doc["url"]
    resp = await client.get(f"/sim/{doc['url']}")
    assert resp.status == 200
    assert resp.content_type == "application/octet-stream"
    assert resp.headers["Content-Disposition"].startswith("attachment")
    assert (await client.get("/sim/api/files/nope")).status == 404


# -- phones ------------------------------------------------------------------------------------


async def test_sms_reply_goes_to_the_inbound_webhook(client, sms, receiver):
    url, got = receiver
    sms.inbound_url = url
    await send_sms(sms, PHONE, "回访：请回复 1 2 5")

    resp = await client.post(f"/sim/api/phones/{PHONE}/reply", json={"body": "1 2 5"})
    assert resp.status == 200 and (await resp.json())["status"] == 200
    ((posted_to, form, signature),) = got
    assert (form["From"], form["To"], form["Body"]) == (PHONE, FROM, "1 2 5")
    assert verify_twilio_signature(posted_to, form, TOKEN, signature)

    phone = await (await client.get(f"/sim/api/phones/{PHONE}")).json()
    assert phone["name"] == ENTITY and phone["can_reply"] is True
    assert [(m["dir"], m["body"]) for m in phone["thread"]] == [("in", "回访：请回复 1 2 5"), ("out", "1 2 5")]
    assert phone["thread"][1]["webhook_status"] == 200


async def test_sms_thread_keeps_the_bots_answer_after_the_reply(aiohttp_client, aiohttp_server, tg, sms):
    """The bot answers while it handles the reply's webhook: the answer is shown after the reply."""

    async def inbound(request: web.Request) -> web.Response:
        form = dict(parse_qsl((await request.read()).decode()))
        await send_sms(sms, form["From"], "谢谢您的答复")
        return web.Response(text="<Response/>", content_type="text/xml")

    app = web.Application()
    app.router.add_post("/sms/inbound", inbound)
    sms.inbound_url = str((await aiohttp_server(app)).make_url("/sms/inbound"))
    client = await aiohttp_client(sim_page_app(tg, sms))
    await send_sms(sms, PHONE, "回访：请回复 1 2 5")
    assert (await client.post(f"/sim/api/phones/{PHONE}/reply", json={"body": "1"})).status == 200
    phone = await (await client.get(f"/sim/api/phones/{PHONE}")).json()
    assert [m["body"] for m in phone["thread"]] == ["回访：请回复 1 2 5", "1", "谢谢您的答复"]
    assert phone["name"] == ""  # no names hook


async def test_sms_refusals(client, sms):
    missing = await client.post("/sim/api/phones/+8613900000000/reply", json={"body": "1"})
    assert missing.status == 404 and (await missing.json())["error"] == "no_phone"
    await send_sms(sms, PHONE, "回访")
    no_target = await client.post(f"/sim/api/phones/{PHONE}/reply", json={"body": "1"})
    assert no_target.status == 409 and (await no_target.json())["error"] == "no_inbound"
    sms.inbound_url = "http://127.0.0.1:9/sms/inbound"
    for body in ({"body": ""}, {"body": ["1"]}):
        refused = await client.post(f"/sim/api/phones/{PHONE}/reply", json=body)
        assert refused.status == 400 and (await refused.json())["error"] == "bad_input"
    too_long = await client.post(f"/sim/api/phones/{PHONE}/reply", json={"body": "1" * 1601})
    assert too_long.status == 400 and (await too_long.json())["error"] == "too_long"
    assert sms.phone(PHONE).sent == []


async def test_phone_state_from_the_page(client, sms):
    await send_sms(sms, PHONE, "回访")
    resp = await client.post(f"/sim/api/phones/{PHONE}/state", json={"state": "unreachable"})
    assert resp.status == 200 and sms.phone(PHONE).state == "unreachable"
    refused = await client.post(f"/sim/api/phones/{PHONE}/state", json={"state": "on fire"})
    assert refused.status == 400 and sms.phone(PHONE).state == "unreachable"


def test_thread_without_sequence_numbers_orders_by_time_received_first():
    from simulators.sms import Phone

    phone = Phone(
        PHONE,
        received=[
            {"body": "b", "at": "Tue, 01 Dec 2026 01:00:05 +0000", "status": "delivered"},
            {"body": "a", "at": "Tue, 01 Dec 2026 01:00:00 +0000", "status": "delivered"},
        ],
        sent=[{"body": "r", "at": "Tue, 01 Dec 2026 01:00:05 +0000", "webhook_status": 200}],
    )
    assert [m["body"] for m in phone_thread(phone)] == ["a", "b", "r"]


@pytest.mark.parametrize("locale", ["zh-CN", "en"])
async def test_standalone_samples_pass_the_simulators_checks(tg, sms, locale):
    """``--sample`` sends through the simulators' own APIs: a task with buttons, a poll, an SMS."""
    user = tg.create_user("检查员1")
    await send_samples(tg, sms, TOKEN, locale)
    task, poll = tg.messages(user)
    assert task.text == text("sim_sample_task", locale) and task.callback_data == ["sample:accept", "sample:recuse"]
    assert poll.poll["question"] == text("sim_sample_poll", locale) and not poll.poll["is_anonymous"]
    assert [p.texts() for p in sms.phones.values()] == [[text("sim_sample_sms", locale)]]


# -- in a real browser -------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def browsing(url: str):
    """Chromium on ``url``: the page, and the list its script errors are gathered in."""
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = await browser.new_page()
        problems: list[str] = []
        page.on("pageerror", lambda exc: problems.append(str(exc)))
        page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
        await page.goto(url)
        yield page, problems
        await browser.close()


def _browser_or_skip():
    """Debian's Chromium driven by Playwright; in CI both must be there."""
    missing = None
    if not CHROMIUM.exists():
        missing = f"{CHROMIUM} is not installed (apt-get install chromium)"
    else:
        try:
            import playwright.async_api  # noqa: F401
        except ImportError:
            missing = "playwright is not installed (uv sync --dev)"
    if missing and os.environ.get("CI") == "true":
        pytest.fail(missing)
    if missing:
        pytest.skip(missing)


async def echo_bot(tg: TelegramSimulator) -> None:
    """A stand-in bot: answers every button press, and echoes every text."""
    offset = 0
    while True:
        for update in await bot_call(tg, "getUpdates", offset=offset, timeout=1):
            offset = update["update_id"] + 1
            if "callback_query" in update:
                query = update["callback_query"]
                await bot_call(tg, "answerCallbackQuery", callback_query_id=query["id"], text="OK")
                await bot_call(tg, "sendMessage", chat_id=query["from"]["id"], text=f"已收到：{query['data']}")
            elif "text" in update.get("message", {}):
                message = update["message"]
                await bot_call(tg, "sendMessage", chat_id=message["chat"]["id"], text=f"echo {message['text']}")


async def test_in_a_browser_a_person_taps_a_button_and_sees_the_reply(aiohttp_server, tg, sms, receiver):
    _browser_or_skip()
    from playwright.async_api import expect

    user = started_user(tg, "检查员甲")
    await bot_call(
        tg, "sendMessage", chat_id=user.id, text="任务 <script>window.__pwned = 1</script>", reply_markup=BUTTONS
    )
    await bot_call(
        tg,
        "sendPoll",
        chat_id=user.id,
        question="是否出示证件？",
        options=[{"text": "是"}, {"text": "否"}],
        is_anonymous=False,
    )
    sms.inbound_url = receiver[0]
    await send_sms(sms, PHONE, "回访：请回复 1 2 5")
    server = await aiohttp_server(sim_page_app(tg, sms))
    bot = asyncio.create_task(echo_bot(tg))
    try:
        async with browsing(str(server.make_url("/sim/"))) as (page, problems):
            await page.locator("#users button", has_text="检查员甲").click()
            task = page.locator(".msg.bot", has_text="任务")
            await expect(task.locator(".text")).to_have_text("任务 <script>window.__pwned = 1</script>")
            await task.get_by_role("button", name="申请回避").click()
            await expect(page.locator(".msg.bot .text", has_text="已收到：asg:recuse:7")).to_be_visible()
            await expect(page.locator("#toast")).to_have_text("OK")

            await page.fill("#tg-text", "/tasks")
            await page.press("#tg-text", "Enter")
            await expect(page.locator(".msg.bot .text", has_text="echo /tasks")).to_be_visible()

            await page.locator(".poll button.option", has_text="否").click()
            await expect(page.locator(".poll button.option.chosen")).to_contain_text("否")

            await page.locator("#phones button", has_text=PHONE).click()
            await page.fill("#sms-text", "1 2 5")
            await page.press("#sms-text", "Enter")
            await expect(page.locator("#sms .msg.mine")).to_contain_text(text("sim_to_bot_ok", "zh-CN"))
            assert await page.evaluate("window.__pwned") is None
    finally:
        bot.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await bot
    assert [f["Body"] for _, f, _ in receiver[1]] == ["1 2 5"]
    assert any(u.get("poll_answer", {}).get("option_ids") == [1] for u in tg.updates)
    assert problems == []
