"""The Telegram simulator against the real python-telegram-bot 22.8, and against the oracles.

Every test starts its own simulator on a free loopback port. The fixture fails a test whose
run made the simulator produce a result outside the Bot API spec (``self_check_failures``).
"""

from __future__ import annotations

import asyncio
import json
import warnings
from datetime import timedelta
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.error import BadRequest, Conflict, Forbidden, InvalidToken, NetworkError, RetryAfter, TimedOut
from telegram.ext import (
    ApplicationBuilder,
    CallbackQueryHandler,
    CommandHandler,
    MessageHandler,
    PollAnswerHandler,
    filters,
)
from telegram.request import HTTPXRequest

from simulators.telegram import FloodLimits, SimulatorError, TelegramSimulator
from simulators.telegram.media import make_png
from simulators.telegram.spec import BotApiSpec

ORACLES = Path(__file__).resolve().parent / "data" / "telegram-updates"  # a copy of shared/oracles/telegram-updates
SHARED_ORACLES = Path(__file__).resolve().parents[3] / "shared" / "oracles" / "telegram-updates"


@pytest.fixture
async def sim():
    async with TelegramSimulator(flood=FloodLimits.off(), webhook_timeout=0.3, webhook_retry_max=0.2) as s:
        yield s
    assert s.self_check_failures == []


@pytest.fixture
async def bot(sim):
    async with Bot(sim.token, base_url=sim.base_url, base_file_url=sim.base_file_url) as b:
        yield b


def started(sim: TelegramSimulator, name: str = "Alice", **kw):
    """A user who has pressed Start (so the bot may write to them)."""
    user = sim.create_user(name, **kw)
    sim.send_command(user, "start")
    return user


async def raw_call(sim, method, *, token=None, json_body=None, data=None, params=None):
    """A Bot API call without python-telegram-bot: (HTTP status, parsed body)."""
    url = f"{sim.base_url}{token or sim.token}/{method}"
    async with aiohttp.ClientSession() as session:
        async with session.post(url, json=json_body, data=data, params=params) as response:
            return response.status, json.loads(await response.text())


def retry_seconds(exc: RetryAfter) -> float:
    with warnings.catch_warnings():  # PTB warns that retry_after will become a timedelta
        warnings.simplefilter("ignore")
        value = exc.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else value


# -- Bot calls and what the user sees -------------------------------------------------------


async def test_bot_calls_reach_the_virtual_user(sim, bot):
    alice = started(sim)
    keyboard = InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton("Accept", callback_data="asg:accept:7"),
                InlineKeyboardButton("Recuse", callback_data="asg:recuse:7"),
            ]
        ]
    )
    sent = await bot.send_message(alice.id, "<b>Assignment</b> 7", parse_mode="HTML", reply_markup=keyboard)

    seen = await sim.wait_for_message(alice, timeout=2)
    assert (seen.message_id, seen.text) == (sent.message_id, "Assignment 7")
    assert seen.data["entities"] == [{"offset": 0, "length": 10, "type": "bold"}]
    assert seen.callback_data == ["asg:accept:7", "asg:recuse:7"]

    sim.press_button(alice, sent.message_id, data="asg:recuse:7")
    updates = await bot.get_updates(timeout=1)
    query = updates[-1].callback_query
    assert (query.data, query.message.message_id, query.from_user.id) == ("asg:recuse:7", sent.message_id, alice.id)
    assert await bot.answer_callback_query(query.id, text="Recusal noted")
    assert sim.callback_answers(alice)[0]["text"] == "Recusal noted"
    with pytest.raises(BadRequest, match="Query is too old"):
        await bot.answer_callback_query(query.id)

    await bot.edit_message_text("Assignment 7: recused", chat_id=alice.id, message_id=sent.message_id)
    now = sim.message(alice, sent.message_id)
    assert now.text == "Assignment 7: recused" and now.edited and now.buttons == []
    await bot.edit_message_reply_markup(alice.id, sent.message_id, reply_markup=keyboard)
    with pytest.raises(BadRequest, match="Message is not modified"):
        await bot.edit_message_reply_markup(alice.id, sent.message_id, reply_markup=keyboard)

    poll = await bot.send_poll(alice.id, "Did the inspectors show credentials?", ["Yes", "No"], is_anonymous=False)
    assert (await sim.wait_for_message(alice)).poll["question"] == "Did the inspectors show credentials?"
    # sendPoll's result carries the poll's id, and the poll_answer names that same id
    assert poll.poll.id and poll.poll.id != str(poll.message_id)
    answered = sim.answer_poll(alice, poll.message_id, [0])
    assert [u["poll_answer"]["poll_id"] for u in answered if "poll_answer" in u] == [poll.poll.id]
    stopped = await bot.stop_poll(alice.id, poll.message_id)
    assert stopped.is_closed and stopped.options[0].voter_count == 1
    with pytest.raises(SimulatorError, match="closed"):
        sim.answer_poll(alice, poll.message_id, [1])

    picture = make_png(120, 90)
    photo = await bot.send_photo(alice.id, picture, caption="site plan")
    assert sim.messages(alice)[-1].photo[-1]["width"] == 120
    file = await bot.get_file(photo.photo[-1].file_id)
    assert bytes(await file.download_as_bytearray()) == picture

    doc = await bot.send_document(alice.id, b"findings", filename="report.txt")
    assert sim.messages(alice)[-1].document["file_name"] == "report.txt"
    assert await bot.delete_message(alice.id, doc.message_id)
    assert doc.message_id not in [m.message_id for m in sim.messages(alice)]
    assert await bot.set_my_commands([("start", "Start"), ("help", "Help")])
    assert [c.command for c in await bot.get_my_commands()] == ["start", "help"]


async def test_anonymous_polls_send_no_poll_answer(sim, bot):
    alice = started(sim)
    poll = await bot.send_poll(alice.id, "Lunch?", ["Pizza", "Salad"])  # anonymous by default
    kinds = [next(k for k in u if k != "update_id") for u in sim.answer_poll(alice, poll.message_id, [1])]
    assert kinds == ["poll"]


async def test_buttons_not_on_the_message_cannot_be_pressed(sim, bot):
    alice = started(sim)
    first = await bot.send_message(
        alice.id, "one", reply_markup=InlineKeyboardMarkup([[InlineKeyboardButton("A", callback_data="a")]])
    )
    second = await bot.send_message(alice.id, "two")
    with pytest.raises(SimulatorError):
        sim.press_button(alice, second.message_id, data="a")
    with pytest.raises(SimulatorError):
        sim.press_button(alice, first.message_id, data="b")
    assert sim.press_button(alice, first.message_id, text="A")["callback_query"]["data"] == "a"


# -- an Application in polling mode ---------------------------------------------------------


async def test_application_polling_receives_every_kind_of_user_action(sim):
    received: asyncio.Queue = asyncio.Queue()

    async def remember(update: Update, context) -> None:
        await received.put((update, list(context.args or [])))

    app = ApplicationBuilder().token(sim.token).base_url(sim.base_url).base_file_url(sim.base_file_url).build()
    app.add_handler(CommandHandler("start", remember))
    app.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND, remember))
    app.add_handler(MessageHandler(filters.LOCATION | filters.PHOTO, remember))
    app.add_handler(CallbackQueryHandler(remember))
    app.add_handler(PollAnswerHandler(remember))
    alice = sim.create_user("Alice", username="alice", language_code="zh-hans")

    async def next_update():
        return await asyncio.wait_for(received.get(), 5)

    async with app:
        await app.start()
        await app.updater.start_polling(poll_interval=0, timeout=5)
        try:
            sim.send_command(alice, "start", "INV-12345")
            update, args = await next_update()
            assert update.message.text == "/start INV-12345" and args == ["INV-12345"]
            assert update.effective_user.language_code == "zh-hans"

            sim.send_text(alice, "你好")
            assert (await next_update())[0].message.text == "你好"

            sent = await app.bot.send_message(
                alice.id,
                "Accept?",
                reply_markup=InlineKeyboardMarkup([[InlineKeyboardButton("Yes", callback_data="yes")]]),
            )
            sim.press_button(alice, sent.message_id, data="yes")
            assert (await next_update())[0].callback_query.data == "yes"

            sim.share_location(alice, 36.0671, 120.3826)
            assert (await next_update())[0].message.location.latitude == pytest.approx(36.0671)

            sim.send_photo(alice, caption="on site")
            photo_update = (await next_update())[0]
            assert photo_update.message.caption == "on site"
            largest = photo_update.message.photo[-1]
            data = await (await app.bot.get_file(largest.file_id)).download_as_bytearray()
            assert data.startswith(b"\x89PNG")

            poll = await app.bot.send_poll(alice.id, "OK?", ["yes", "no"], is_anonymous=False)
            sim.answer_poll(alice, poll.message_id, [1])
            answer = (await next_update())[0].poll_answer
            assert (answer.option_ids, answer.user.id) == ((1,), alice.id)
        finally:
            await app.updater.stop()
            await app.stop()
    ids = [u["update_id"] for u in sim.updates]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)


async def test_get_updates_offset_allowed_updates_and_conflict(sim, bot):
    alice = started(sim)
    first = (await bot.get_updates())[0].update_id
    sim.send_text(alice, "two")
    assert [u.update_id for u in await bot.get_updates()] == [first, first + 1]
    assert [u.update_id for u in await bot.get_updates(offset=first + 1)] == [first + 1]
    assert await bot.get_updates(offset=first + 2) == ()

    await bot.get_updates(offset=first + 2, allowed_updates=["callback_query"])
    sim.send_text(alice, "filtered out")
    assert sim.pending_update_count == 0
    await bot.get_updates(allowed_updates=[])

    waiting = asyncio.create_task(bot.get_updates(timeout=5))
    await eventually(lambda: sim.delivery.waiting_polls == 1)
    assert await raw_call(sim, "getUpdates") == (200, {"ok": True, "result": []})  # a second bot instance
    with pytest.raises(Conflict, match="terminated by other getUpdates request"):
        await waiting


# -- webhook mode ---------------------------------------------------------------------------


@pytest.fixture
async def receiver(aiohttp_server):
    """An aiohttp webhook endpoint that records requests. ``script`` holds answers to give first
    (a status, or "slow": answer after the simulator's 0.3 s timeout); after that it answers 200
    once ``gate`` is open (it starts open)."""
    seen: list[tuple[dict, dict]] = []
    script: list = []
    gate = asyncio.Event()
    gate.set()

    async def hook(request: web.Request) -> web.Response:
        body = await request.json()
        seen.append((dict(request.headers), body))
        action = script.pop(0) if script else None
        if action == "slow":
            await asyncio.sleep(0.6)
            return web.Response()
        if action is None:
            await gate.wait()
            return web.Response()
        return web.Response(status=action)

    app = web.Application()
    app.router.add_post("/telegram", hook)
    server = await aiohttp_server(app)
    return server.make_url("/telegram"), seen, script, gate


async def eventually(condition, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def test_webhook_posts_updates_with_the_secret_header(sim, bot, receiver):
    url, seen, _, _ = receiver
    alice = started(sim)
    assert await bot.set_webhook(str(url), secret_token="s3cr3t-Token_1")
    await eventually(lambda: len(seen) == 1)
    sim.send_text(alice, "hello")
    await eventually(lambda: len(seen) == 2)
    headers, body = seen[1]
    assert headers["X-Telegram-Bot-Api-Secret-Token"] == "s3cr3t-Token_1"
    assert headers["Content-Type"].startswith("application/json")
    assert Update.de_json(body, bot).message.text == "hello"
    with pytest.raises(Conflict, match="webhook is active"):
        await bot.get_updates()
    info = await bot.get_webhook_info()
    assert (info.url, info.pending_update_count) == (str(url), 0)
    assert await bot.delete_webhook()
    sim.send_text(alice, "after")
    assert (await bot.get_updates())[0].message.text == "after"


async def test_webhook_retries_a_failing_then_slow_receiver(sim, bot, receiver):
    url, seen, script, gate = receiver
    alice = started(sim)
    sim.queue.drop_pending()
    script.extend([500, "slow"])
    gate.clear()  # the third attempt is held until the test opens the gate
    await bot.set_webhook(str(url))
    update = sim.send_text(alice, "once")
    await eventually(lambda: len(seen) == 3)
    info = await bot.get_webhook_info()
    assert info.pending_update_count == 1
    assert info.last_error_message == "Read timeout expired"
    assert sim.delivery.webhook.errors[:2] == [
        "Wrong response from the webhook: 500 Internal Server Error",
        "Read timeout expired",
    ]
    gate.set()
    await eventually(lambda: sim.pending_update_count == 0)
    assert {b["update_id"] for _, b in seen} == {update["update_id"]}  # the same update, sent again


# -- validation -------------------------------------------------------------------------------


async def test_unknown_method_and_token(sim, bot):
    assert await raw_call(sim, "sendMessagee") == (404, {"ok": False, "error_code": 404, "description": "Not Found"})
    assert (await raw_call(sim, "getme"))[0] == 200  # method names are case-insensitive
    assert await raw_call(sim, "getMe", token="7000000001:wrong") == (
        401,
        {"ok": False, "error_code": 401, "description": "Unauthorized"},
    )
    assert (await raw_call(sim, "getMe", token="not-a-token"))[0] == 404
    with pytest.raises(InvalidToken):
        async with Bot("7000000001:AAAwrongwrongwrong", base_url=sim.base_url):
            pass


@pytest.mark.parametrize(
    ("params", "description"),
    [
        ({"text": "x"}, "Bad Request: chat_id is empty"),
        ({"chat_id": 1}, "Bad Request: message text is empty"),
        ({"chat_id": 1, "text": "x", "txt": "y"}, 'Bad Request: unknown parameter "txt" for method sendMessage'),
        (
            {"chat_id": 1, "text": "x", "message_thread_id": "seven"},
            'Bad Request: parameter "message_thread_id" must be an Integer',
        ),
        (
            {"chat_id": 1, "text": "x", "disable_notification": "yes"},
            'Bad Request: parameter "disable_notification" must be a Boolean',
        ),
        (
            {"chat_id": 1, "text": "x", "reply_markup": "{not json"},
            "Bad Request: can't parse reply keyboard markup JSON object",
        ),
        (
            {
                "chat_id": 1,
                "text": "x",
                "reply_markup": json.dumps({"inline_keyboard": [[{"text": "A", "callback": "a"}]]}),
            },
            'Bad Request: can\'t parse reply keyboard markup: field "inline_keyboard" of InlineKeyboardMarkup[0][0]: '
            'unknown field "callback" in InlineKeyboardButton',
        ),
        (
            {"chat_id": 1, "text": "x", "reply_markup": json.dumps({"inline_keyboard": [[{"text": "A"}]]})},
            "Bad Request: can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard",
        ),
        (
            {"chat_id": 1, "text": "<b>x</i>", "parse_mode": "HTML"},
            'Bad Request: can\'t parse entities: Unmatched end tag at byte offset 4, expected "</b>", found "</i>"',
        ),
        ({"chat_id": 1, "text": "x", "parse_mode": "Shout"}, "Bad Request: unsupported parse_mode"),
    ],
)
async def test_bad_requests_are_refused_like_the_real_server(sim, params, description):
    started(sim, id=1)
    form = {k: str(v) for k, v in params.items()}
    assert await raw_call(sim, "sendMessage", data=form) == (
        400,
        {"ok": False, "error_code": 400, "description": description},
    )


async def test_json_form_query_and_multipart_bodies_are_all_accepted(sim):
    alice = started(sim)
    markup = {"inline_keyboard": [[{"text": "A", "callback_data": "a"}]]}
    as_json = await raw_call(
        sim,
        "sendMessage",
        json_body={"chat_id": alice.id, "text": "j", "reply_markup": markup, "disable_notification": True},
    )
    as_form = await raw_call(
        sim, "sendMessage", data={"chat_id": str(alice.id), "text": "f", "reply_markup": json.dumps(markup)}
    )
    as_query = await raw_call(sim, "sendMessage", params={"chat_id": str(alice.id), "text": "q"})
    form = aiohttp.FormData()
    form.add_field("chat_id", str(alice.id))
    form.add_field("photo", make_png(40, 30), filename="p.png", content_type="image/png")
    as_multipart = await raw_call(sim, "sendPhoto", data=form)
    assert [r[0] for r in (as_json, as_form, as_query, as_multipart)] == [200, 200, 200, 200]
    assert as_json[1]["result"]["reply_markup"] == as_form[1]["result"]["reply_markup"] == markup
    not_a_picture = aiohttp.FormData()
    not_a_picture.add_field("chat_id", str(alice.id))
    not_a_picture.add_field("photo", b"plain text", filename="p.png")
    assert (await raw_call(sim, "sendPhoto", data=not_a_picture))[1][
        "description"
    ] == "Bad Request: IMAGE_PROCESS_FAILED"


async def test_callback_data_longer_than_64_bytes_is_refused(sim, bot):
    alice = started(sim)
    ok = InlineKeyboardMarkup([[InlineKeyboardButton("ok", callback_data="x" * 64)]])
    await bot.send_message(alice.id, "fits", reply_markup=ok)
    too_long = InlineKeyboardMarkup([[InlineKeyboardButton("no", callback_data="x" * 65)]])
    with pytest.raises(BadRequest, match="(?i)button_data_invalid"):
        await bot.send_message(alice.id, "too long", reply_markup=too_long)
    with pytest.raises(BadRequest, match="(?i)button_data_invalid"):  # 22 three-byte characters = 66 bytes
        await bot.send_message(
            alice.id,
            "too long",
            reply_markup=InlineKeyboardMarkup([[InlineKeyboardButton("no", callback_data="检" * 22)]]),
        )
    assert [m.text for m in sim.messages(alice)] == ["fits"]


async def test_unknown_chat_and_blocked_user(sim, bot):
    stranger = sim.create_user("Never pressed Start")
    with pytest.raises(BadRequest, match="Chat not found"):
        await bot.send_message(stranger.id, "hi")
    with pytest.raises(BadRequest, match="Chat not found"):
        await bot.send_message(999, "hi")
    alice = started(sim)
    update = sim.block_bot(alice)
    assert update["my_chat_member"]["new_chat_member"]["status"] == "kicked"
    with pytest.raises(Forbidden, match="bot was blocked by the user"):
        await bot.send_message(alice.id, "hi")
    assert await raw_call(sim, "sendMessage", data={"chat_id": str(alice.id), "text": "x"}) == (
        403,
        {"ok": False, "error_code": 403, "description": "Forbidden: bot was blocked by the user"},
    )
    with pytest.raises(SimulatorError):
        sim.send_text(alice, "I blocked you")
    sim.unblock_bot(alice)
    assert (await bot.send_message(alice.id, "welcome back")).text == "welcome back"


# -- flood limits ---------------------------------------------------------------------------


async def test_flood_limits_answer_429_with_retry_after():
    now = [100.0]
    async with TelegramSimulator(flood_clock=lambda: now[0]) as sim:  # default limits: 30/s, 1/s per chat
        async with Bot(sim.token, base_url=sim.base_url) as bot:
            users = [started(sim, f"U{i}") for i in range(40)]
            results = await asyncio.gather(*(bot.send_message(u.id, "draw") for u in users), return_exceptions=True)
            refused = [r for r in results if isinstance(r, Exception)]
            assert len(refused) == 10 and all(isinstance(r, RetryAfter) and retry_seconds(r) >= 1 for r in refused)
            status, body = await raw_call(sim, "sendMessage", data={"chat_id": str(users[0].id), "text": "x"})
            assert status == 429 and body == {
                "ok": False,
                "error_code": 429,
                "description": "Too Many Requests: retry after 1",
                "parameters": {"retry_after": 1},
            }

            now[0] += 60  # all buckets full again
            one = users[0]
            answers = [await raw_call(sim, "sendMessage", data={"chat_id": str(one.id), "text": "x"}) for _ in range(4)]
            assert [a[0] for a in answers] == [200, 200, 200, 429]  # a burst of 3, then 1 per second
            now[0] += 1
            assert (await raw_call(sim, "sendMessage", data={"chat_id": str(one.id), "text": "x"}))[0] == 200
            assert sim.flood_stats()["refused_429"] == 12


# -- fault injection -------------------------------------------------------------------------


async def test_injected_faults(sim, bot):
    alice, bob = started(sim, "Alice"), started(sim, "Bob")
    sim.inject("blocked", method="sendMessage")
    with pytest.raises(Forbidden):
        await bot.send_message(alice.id, "1")
    sim.inject("chat_not_found", chat_id=alice.id, times=2)
    await bot.send_message(bob.id, "bob is fine")
    for _ in range(2):
        with pytest.raises(BadRequest, match="Chat not found"):
            await bot.send_message(alice.id, "2")
    sim.inject("flood", retry_after=7)
    with pytest.raises(RetryAfter) as flood:
        await bot.send_message(alice.id, "3")
    assert retry_seconds(flood.value) == 7
    sim.inject("bad_gateway")
    with pytest.raises(NetworkError) as gateway:
        await bot.send_message(alice.id, "4")
    assert not isinstance(gateway.value, BadRequest)
    sim.inject("server_error", method="sendPhoto")
    with pytest.raises(NetworkError):
        await bot.send_photo(alice.id, make_png(10, 10))
    assert [m.text for m in sim.messages(alice)] == []
    assert (await bot.send_message(alice.id, "5")).text == "5"


async def test_a_timed_out_call_can_still_deliver(sim):
    alice = started(sim)
    impatient = Bot(sim.token, base_url=sim.base_url, request=HTTPXRequest(read_timeout=0.1))
    async with impatient:
        sim.inject("timeout", method="sendMessage", seconds=0.4, deliver=True)
        with pytest.raises(TimedOut):
            await impatient.send_message(alice.id, "sent twice?")
        assert (await sim.wait_for_message(alice, timeout=2)).text == "sent twice?"


# -- the control API ----------------------------------------------------------------------


async def test_control_api_drives_users_and_reads_their_messages(sim, bot):
    async with aiohttp.ClientSession(base_url=sim.url) as http:
        async with http.post("/_sim/users", json={"first_name": "Wang", "language_code": "zh-hans"}) as r:
            user = await r.json()
        async with http.post(f"/_sim/users/{user['id']}/command", json={"command": "start", "argument": "C0DE"}) as r:
            assert (await r.json())["update"]["message"]["text"] == "/start C0DE"
        waiting = asyncio.create_task(http.get(f"/_sim/users/{user['id']}/messages?wait=3"))
        await bot.send_message(user["id"], "您好")
        async with await waiting as r:
            assert (await r.json())["message"]["text"] == "您好"
        async with http.post(f"/_sim/users/{user['id']}/press", json={"message_id": 1, "callback_data": "x"}) as r:
            assert r.status == 400 and "error" in await r.json()
        async with http.post("/_sim/faults", json={"kind": "blocked", "chat_id": user["id"]}) as r:
            assert (await r.json())["kind"] == "blocked"
    with pytest.raises(Forbidden):
        await bot.send_message(user["id"], "x")


# -- oracles --------------------------------------------------------------------------------


def key_shape(value):
    """The keys (and value types) of a JSON value, without the values."""
    if isinstance(value, dict):
        return {k: key_shape(v) for k, v in value.items() if k not in ("date", "update_id")}
    if isinstance(value, list):
        return [key_shape(value[0])] if value else []
    return type(value).__name__


@pytest.mark.skipif(not SHARED_ORACLES.is_dir(), reason="shared/oracles is not beside this checkout")
def test_the_sample_copy_matches_the_oracles():
    for path in SHARED_ORACLES.iterdir():
        assert (ORACLES / path.name).read_bytes() == path.read_bytes(), path.name


def test_oracle_updates_parse_with_ptb_and_fit_the_spec():
    spec = BotApiSpec.load()
    samples = sorted(ORACLES.glob("update-*.json"))
    assert len(samples) >= 7
    for path in samples:
        data = json.loads(path.read_text(encoding="utf-8"))
        assert Update.de_json(data, None).update_id == data["update_id"], path.name
        assert spec.problem("Update", data) is None, path.name
    envelope = json.loads((ORACLES / "response-getUpdates-ok.json").read_text(encoding="utf-8"))
    assert spec.problem("Array of Update", envelope["result"]) is None


async def test_generated_updates_have_the_oracles_shape(sim, bot):
    def sample(name):
        return json.loads((ORACLES / name).read_text(encoding="utf-8"))

    alice = sim.create_user("Alice", last_name="Example", username="alice_example", language_code="en")
    generated = {"update-message-text-command.json": sim.send_command(alice, "start")}
    unicode_text = sample("update-message-text-unicode-entities.json")["message"]["text"]
    generated["update-message-text-unicode-entities.json"] = sim.send_text(alice, unicode_text)
    generated["update-message-location.json"] = sim.share_location(alice, 52.520008, 13.404954, 12.5)
    generated["update-message-photo.json"] = sim.send_photo(
        alice, width=1280, height=960, caption="Meter reading #meter7"
    )
    question = await bot.send_message(
        alice.id,
        "Do you agree?",
        reply_markup=InlineKeyboardMarkup(
            [
                [
                    InlineKeyboardButton("Yes", callback_data="vote:yes"),
                    InlineKeyboardButton("No", callback_data="vote:no"),
                ]
            ]
        ),
    )
    generated["update-callback-query.json"] = sim.press_button(alice, question.message_id, data="vote:yes")
    poll = await bot.send_poll(alice.id, "Lunch?", ["Pizza", "Salad"], is_anonymous=False)
    answer, state = sim.answer_poll(alice, poll.message_id, [1])
    generated["update-poll-answer.json"] = answer
    generated["update-poll.json"] = state

    for name, update in generated.items():
        expected = sample(name)
        assert key_shape(update) == key_shape(expected), name
        assert Update.de_json(update, bot) is not None
    for name, field in [
        ("update-message-text-unicode-entities.json", "entities"),
        ("update-message-photo.json", "caption_entities"),
    ]:
        assert generated[name]["message"][field] == sample(name)["message"][field], name
    photo_sizes = [(p["width"], p["height"]) for p in generated["update-message-photo.json"]["message"]["photo"]]
    assert photo_sizes == [(p["width"], p["height"]) for p in sample("update-message-photo.json")["message"]["photo"]]
