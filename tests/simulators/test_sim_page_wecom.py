"""The simulators' web page with the WeCom simulator (``inspectbot demo --channel wecom``): it lists
the members, shows each one's conversation with the application as it shows a Telegram chat —
texts, template cards with their buttons and their state after a press, images, and what the
member sent (text, locations, images) — and what a person does there reaches our real
WecomChannel as WeCom's encrypted callback. The application's side is the real WecomChannel
sending through the simulator's API (which checks every request)."""

from __future__ import annotations

import asyncio
import json
import re

import aiohttp
import pytest
from aiohttp import web

from bot.channels.wecom import WecomChannel
from core.channel import Button, EventKind, InboundEvent, Outgoing
from core.render import text
from core.settings import Settings
from simulators.sms import SmsSimulator
from simulators.telegram.media import make_png
from simulators.web import sim_page_app
from simulators.wecom import WecomSimulator
from tests.e2e.wecom_harness import wecom_settings
from tests.simulators.test_sim_page import _browser_or_skip, browsing

SID = "AC" + "3" * 32
STORY_TIME = 1_796_176_800  # 2026-12-02 10:00 in Shanghai: a demo's clock, not the machine's


@pytest.fixture
async def world(tmp_path, aiohttp_server, aiohttp_client):
    """The WeCom simulator, our WecomChannel serving its callback route (events recorded), the
    SMS simulator, and a client of the page built with the WeCom simulator and no Telegram one."""
    sim = WecomSimulator(members=("wxalice",), enforce_limits=False, wall=lambda: STORY_TIME)
    await sim.start()
    events: list[InboundEvent] = []

    async def on_event(event: InboundEvent) -> None:  # stored, as the service's is, before the 200
        events.append(event)
        if event.kind == EventKind.BUTTON:  # the application answers a press by updating the card, later
            reply = Outgoing(event.sender, "已接受", edit_message_id=event.message_id)
            replies.append(asyncio.get_running_loop().create_task(channel.send(reply)))

    replies: list[asyncio.Task] = []

    channel = WecomChannel(wecom_settings(Settings(data_dir=tmp_path), sim.url), on_event=on_event, timeout=5.0)
    await channel.start()
    app = web.Application()
    app.add_routes(channel.routes())
    service = await aiohttp_server(app)
    sim.callback_url = str(service.make_url("/wecom/callback"))
    sms = SmsSimulator(account_sid=SID, auth_token="t", numbers=("+15005550006",))
    await sms.start()
    client = await aiohttp_client(sim_page_app(None, sms, wecom=sim, zone="Asia/Shanghai"))
    yield sim, channel, client, events
    await asyncio.gather(*replies)
    await channel.stop()
    await sms.stop()
    await sim.stop()


async def _settled(sim: WecomSimulator, userid: str = "wxalice") -> None:
    """Until the application's answer to a press (an update of the card, then its text) is in."""
    for _ in range(200):
        if sum(1 for m in sim.member(userid).received if m["msgtype"] == "update") and sim.member(userid).texts():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the card was not updated")


async def _chat(client, userid: str = "wxalice") -> dict:
    resp = await client.get(f"/sim/api/wecom/{userid}")
    assert resp.status == 200, await resp.text()
    return await resp.json()


@pytest.mark.parametrize("locale", ["zh-CN", "en"])
async def test_page_lists_wecom_members_in_each_locale(world, locale):
    sim, channel, client, _ = world
    await channel.send(Outgoing("wxalice", "你好"))
    html = await (await client.get(f"/sim/?lang={locale}")).text()
    assert text("sim_members_heading", locale) in html and text("sim_enter_app", locale) in html
    words = json.loads(re.search(r'<script type="application/json" id="words">(.*?)</script>', html, re.S).group(1))
    assert words["wecom"] == text("sim_wecom", locale)
    state = await (await client.get("/sim/api/state")).json()
    assert state["telegram"] is False and state["users"] == []  # no Telegram simulator in a WeCom demo
    assert state["members"] == [
        {"id": "wxalice", "name": "wxalice", "username": None, "started": True, "blocked": False, "messages": 1}
    ]


async def test_a_card_its_press_and_its_new_state(world):
    sim, channel, client, events = world
    buttons = (Button("接受", "asg:accept:7"), Button("申请回避", "asg:recuse:7"))
    task_id = await channel.send(Outgoing("wxalice", "新任务\n青岛示例餐饮有限公司", buttons=(buttons,)))
    [card] = (await _chat(client))["messages"]
    assert card["from_bot"] and card["id"] == task_id and card["text"] == "新任务\n青岛示例餐饮有限公司"
    assert card["buttons"] == [
        [{"text": "接受", "callback_data": "asg:accept:7"}, {"text": "申请回避", "callback_data": "asg:recuse:7"}]
    ]
    assert card["card"]  # drawn as a card (its title in bold), not as a text
    assert not card["edited"] and card["date"] == STORY_TIME  # stamped with the simulator's clock (a demo's story)

    # the person taps 接受 on the page: our channel gets the button event of that card
    resp = await client.post(
        "/sim/api/wecom/wxalice/press", json={"message_id": task_id, "callback_data": "asg:accept:7"}
    )
    assert (await resp.json()) == {"status": 200}
    assert [(e.kind, e.data, e.message_id) for e in events] == [(EventKind.BUTTON, "asg:accept:7", task_id)]

    # the application answers the press by updating the card (the fixture's on_event): the page shows its new state
    await _settled(sim)
    card, said = (await _chat(client))["messages"]  # the greyed button cannot say it all: the text follows
    assert card["edited"] and card["text"] == "新任务\n青岛示例餐饮有限公司"
    assert card["buttons"] == [[{"text": "已接受"}]]  # greyed out: nothing to press any more
    assert said["text"] == "已接受" and said["from_bot"]


async def test_what_the_member_sends_reaches_the_channel_and_shows_in_order(world):
    sim, channel, client, events = world
    await channel.send(Outgoing("wxalice", "请签到", photo=make_png(8, 8)))  # the caption goes first, then the image
    assert (await (await client.post("/sim/api/wecom/wxalice/text", json={"text": "/tasks"})).json())["status"] == 200
    resp = await client.post("/sim/api/wecom/wxalice/location", json={"latitude": "36.0671", "longitude": 120.3826})
    assert resp.status == 200
    assert (await client.post("/sim/api/wecom/wxalice/photo", json={})).status == 200  # a generated picture
    assert (await client.post("/sim/api/wecom/wxalice/start", json={})).status == 200  # opens the application
    assert [e.kind for e in events] == [EventKind.COMMAND, EventKind.LOCATION, EventKind.PHOTO, EventKind.COMMAND]
    assert (events[0].command, events[3].command) == ("tasks", "start")

    shown = (await _chat(client))["messages"]
    assert [m["from_bot"] for m in shown] == [True, True, False, False, False]  # opening the app is no message
    caption, image, typed, place, photo = shown
    assert caption["text"] == "请签到" and "photo" in image
    assert typed["text"] == "/tasks"
    assert place["location"] == {"latitude": 36.0671, "longitude": 120.3826}
    for picture in (image, photo):
        resp = await client.get("/sim/" + picture["photo"]["url"])
        assert resp.status == 200 and resp.content_type == "image/png"
        assert resp.headers["Content-Security-Policy"] == "default-src 'none'; sandbox"
    assert events[2].file_id.endswith(photo["photo"]["url"].rsplit("/", 1)[1])  # the very image the member sent


async def test_refusals_say_why(world):
    sim, _, client, _ = world
    resp = await client.get("/sim/api/wecom/nobody")
    assert resp.status == 404 and (await resp.json())["error"] == "no_user"
    resp = await client.post("/sim/api/wecom/wxalice/location", json={"latitude": "north", "longitude": 1})
    assert resp.status == 400 and (await resp.json())["error"] == "bad_location"
    form = aiohttp.FormData()
    form.add_field("photo", b"GIF89a not a picture WeCom takes", filename="a.gif")
    resp = await client.post("/sim/api/wecom/wxalice/photo", data=form)
    # in the page's words (WeCom's own rule, in the page's language), not an English detail
    assert resp.status == 400 and await resp.json() == {"error": "not_wecom_image", "detail": ""}
    assert (await client.get("/sim/api/users/1")).status == 404  # no Telegram simulator here
    assert (await client.get("/sim/api/wecom-media/nothing")).status == 404
    sim.callback_url = ""
    resp = await client.post("/sim/api/wecom/wxalice/text", json={"text": "hi"})
    assert resp.status == 409 and (await resp.json())["error"] == "no_inbound"
    assert sim.member("wxalice").sent == []  # nothing reached the simulator from a refused action


async def test_in_a_browser_a_member_taps_a_card_button_and_sees_its_new_state(world, aiohttp_server):
    _browser_or_skip()
    from playwright.async_api import expect

    sim, channel, client, events = world
    buttons = (Button("接受", "asg:accept:7"), Button("申请回避", "asg:recuse:7"))
    await channel.send(Outgoing("wxalice", "新任务<img src=x onerror=__pwned=1>", buttons=(buttons,)))
    server = await aiohttp_server(client.server.app)  # the same page application, on a port of its own
    async with browsing(str(server.make_url("/sim/?lang=en"))) as (page, problems):
        await expect(page.locator("#tg-users")).to_be_hidden()  # no Telegram simulator in this demo
        await page.locator("#members button", has_text="wxalice").click()
        await expect(page.locator("#tg-meta")).to_have_text(text("sim_wecom_account", "en").replace("{n}", "wxalice"))
        card = page.locator(".msg.bot", has_text="新任务")
        await expect(card.locator(".title")).to_have_text("新任务<img src=x onerror=__pwned=1>")  # text, not markup
        await card.get_by_role("button", name="接受").click()
        await expect(card.get_by_role("button", name="已接受")).to_be_disabled()  # the card's new state
        await page.fill("#tg-text", "/tasks")
        await page.press("#tg-text", "Enter")
        await expect(page.locator(".msg.mine .text", has_text="/tasks")).to_be_visible()
        assert await page.evaluate("window.__pwned") is None
    assert [e.kind for e in events] == [EventKind.BUTTON, EventKind.COMMAND]
    assert problems == []
