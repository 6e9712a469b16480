"""The WeCom adapter against the WeCom simulator: the access token (cached, renewed before expiry,
renewed once when an answer says it is stale — also in the middle of a fan-out), what each kind of
message becomes and that the simulator (which checks the documented fields and lengths) takes it,
and WeCom's errcodes mapped onto retryable / permanent / rate-limited."""

from __future__ import annotations

import asyncio
import random
import re
from collections import deque

import pytest

from bot.channels.wecom import (
    BUTTON_CHARS,
    REFRESH_BEFORE,
    TITLE_CHARS,
    WecomChannel,
    card_for,
    card_title,
    classify,
    split_text,
)
from core.callbacks import key
from core.channel import Button, Outgoing, SendError
from core.compose import compose
from core.settings import Settings
from simulators.telegram.media import make_png
from simulators.wecom import WecomSimulator, _card_problem
from tests.e2e.wecom_harness import wecom_settings


class Clock:
    def __init__(self) -> None:
        self.t = 1_800_000_000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
async def pair(tmp_path):
    clock = Clock()
    sim = WecomSimulator(members=("alice", "bob"), enforce_limits=False, now=clock)
    await sim.start()
    channel = WecomChannel(wecom_settings(Settings(data_dir=tmp_path), sim.url), now=clock, timeout=2.0)
    await channel.start()
    yield sim, channel, clock
    await channel.stop()
    await sim.stop()


async def test_token_is_cached_and_renewed_before_expiry(pair):
    sim, channel, clock = pair
    await channel.send(Outgoing("alice", "一"))
    await channel.send(Outgoing("alice", "二"))
    assert channel.token_fetches == 1 and sim.calls["gettoken"] == 1
    clock.t += 7200 - REFRESH_BEFORE + 1  # inside the renewal margin: renewed before WeCom refuses it
    await channel.send(Outgoing("alice", "三"))
    assert channel.token_fetches == 2 and sim.member("alice").texts() == ["一", "二", "三"]


async def test_token_expiring_mid_fan_out_is_renewed_once_and_nothing_is_lost(pair):
    sim, channel, _ = pair
    await channel.send(Outgoing("alice", "start"))
    sim.inject(42001)  # WeCom says the token expired (and it is: every later call with it is refused)
    sent = await asyncio.gather(*(channel.send(Outgoing("bob", f"m{i}")) for i in range(20)))
    assert all(sent) and sorted(sim.member("bob").texts()) == sorted(f"m{i}" for i in range(20))
    assert channel.token_fetches == 2  # one renewal for the whole fan-out
    sim.inject(40014)  # an invalid token: renewed too
    await channel.send(Outgoing("bob", "after"))
    assert sim.member("bob").texts()[-1] == "after" and channel.token_fetches == 3


@pytest.mark.parametrize(
    ("fault", "kind", "retryable", "retry_after"),
    [
        (-1, "server", True, None),
        (45009, "throttled", True, 60.0),
        (60020, "config", True, 300.0),
        (40056, "config", False, None),
        (81013, "chat_not_found", False, None),
        (60011, "blocked", False, None),
        (40058, "bad_request", False, None),
        ("disconnect", "connection", True, None),
    ],
)
async def test_errcodes_become_send_errors(pair, fault, kind, retryable, retry_after):
    sim, channel, _ = pair
    await channel.token()
    sim.inject(fault)
    with pytest.raises(SendError) as caught:
        await channel.send(Outgoing("alice", "x"))
    assert (caught.value.kind, caught.value.retryable, caught.value.retry_after) == (kind, retryable, retry_after)
    await channel.send(Outgoing("alice", "y"))  # the fault was for one call
    assert sim.member("alice").texts() == ["y"]


async def test_timeout_is_retryable(tmp_path):
    sim = WecomSimulator(enforce_limits=False, timeout_delay=5)
    await sim.start()
    channel = WecomChannel(wecom_settings(Settings(data_dir=tmp_path), sim.url), timeout=0.3)
    try:
        await channel.token()
        sim.inject("timeout")
        with pytest.raises(SendError) as caught:
            await channel.send(Outgoing("alice", "x"))
        assert caught.value.kind == "timeout" and caught.value.retryable
    finally:
        await channel.stop()
        await sim.stop()


async def test_a_member_outside_the_directory_is_permanent(pair):
    sim, channel, _ = pair
    with pytest.raises(SendError) as caught:
        await channel.send(Outgoing("mallory", "x"))
    assert caught.value.kind == "chat_not_found" and not caught.value.retryable
    sim.member("bob").state = "invalid"  # left the corp
    with pytest.raises(SendError):
        await channel.send(Outgoing("bob", "x"))


async def test_cards_respect_the_documented_layout(pair):
    sim, channel, _ = pair
    buttons = ((Button("接受任务", "asg:accept:1"), Button("申请回避（利益冲突）", "asg:recuse:1")),)
    task_id = await channel.send(Outgoing("alice", "第 12 号检查任务\n青岛某某有限公司\n2026-12-08 至 12-10", buttons))
    card = sim.member("alice").cards()[-1]["card"]
    assert card["task_id"] == task_id and card["main_title"]["title"] == "第 12 号检查任务"
    assert [b["key"] for b in card["button_list"]] == ["asg:accept:1", "asg:recuse:1"]
    assert len(card["button_list"][1]["text"]) <= 10
    # a long text: the whole text first, then the card; more than six buttons: a second card
    many = tuple((Button(f"任务 {i}", f"asg:show:{i}"),) for i in range(9))
    await channel.send(Outgoing("alice", "很长的标题" * 20 + "\n" + "正文" * 200, many))
    last = sim.member("alice").received[-3:]
    assert last[0]["msgtype"] == "text" and last[0]["text"].startswith("很长的标题")
    assert [len(m["card"]["button_list"]) for m in last[1:]] == [6, 3]


async def test_long_text_is_split_at_2048_bytes(pair):
    sim, channel, _ = pair
    text = "\n".join(f"第 {i} 行：" + "检" * 60 for i in range(60))
    await channel.send(Outgoing("alice", text))
    parts = sim.member("alice").texts()
    assert len(parts) > 1 and all(len(p.encode()) <= 2048 for p in parts)
    assert "\n".join(parts) == text


async def test_a_message_refused_half_way_sends_only_the_rest_when_tried_again(tmp_path):
    """Defect: a message of several calls (a long text's parts; a card's overflow text, the card
    and a second card of buttons) refused half-way — the member's 30 a minute spent (45009), WeCom
    busy — was tried again whole: the parts already accepted arrived twice, and a retry could hit
    the same limit again. Now a retry sends only what WeCom did not accept, the card under the
    task id of the first try."""
    sim = WecomSimulator(members=("alice",), per_member=((60.0, 2),))
    await sim.start()
    channel = WecomChannel(wecom_settings(Settings(data_dir=tmp_path), sim.url), timeout=2.0)
    try:
        text = "\n".join(f"第 {i} 行：" + "检" * 60 for i in range(40))  # four parts
        with pytest.raises(SendError) as caught:
            await channel.send(Outgoing("alice", text))
        assert caught.value.kind == "throttled" and len(sim.member("alice").texts()) == 2
        sim.per_member = ((60.0, 100),)  # a minute later
        await channel.send(Outgoing("alice", text))
        assert "\n".join(sim.member("alice").texts()) == text  # each part once, in order
        sim.per_member, sim.member("alice")._sends = ((60.0, 2),), deque()
        many = tuple((Button(f"任务 {i}", f"asg:show:{i}"),) for i in range(9))
        card = Outgoing("alice", "很长的标题" * 20, many)  # overflow text, a card of 6, a card of 3
        with pytest.raises(SendError):
            await channel.send(card)
        sim.per_member = ((60.0, 100),)
        task_id = await channel.send(card)
        got = sim.member("alice").received[-3:]
        assert [m["msgtype"] for m in got] == ["text", "template_card", "template_card"]
        assert [m["card"]["task_id"] for m in got[1:]] == [task_id, f"{task_id}-1"]
        assert len(sim.member("alice").received) == len(split_text(text)) + 3 and not channel._partial
    finally:
        await channel.stop()
        await sim.stop()


async def test_another_row_with_the_same_text_is_not_taken_for_a_retry(tmp_path):
    """The progress of a message refused half-way belongs to its outbox row (``Outgoing.key``):
    another row to the same member with the same text — a reminder sent twice — is sent whole, and
    the first row's retry still sends only its own rest."""
    sim = WecomSimulator(members=("alice",), per_member=((60.0, 2),))
    await sim.start()
    channel = WecomChannel(wecom_settings(Settings(data_dir=tmp_path), sim.url), timeout=2.0)
    try:
        text = "\n".join(f"第 {i} 行：" + "检" * 60 for i in range(40))
        parts = split_text(text)
        with pytest.raises(SendError):
            await channel.send(Outgoing("alice", text, key="reminder:1"))
        sim.per_member = ((60.0, 100),)
        await channel.send(Outgoing("alice", text, key="reminder:2"))  # another row: whole
        assert len(sim.member("alice").texts()) == 2 + len(parts)
        await channel.send(Outgoing("alice", text, key="reminder:1"))  # the first row's retry: its rest
        assert sim.member("alice").texts()[-(len(parts) - 2) :] == parts[2:]
        assert len(sim.member("alice").texts()) == 2 * len(parts) and not channel._partial
    finally:
        await channel.stop()
        await sim.stop()


def test_split_text_cuts_a_line_longer_than_a_part():
    parts = split_text("字" * 1000)
    assert all(len(p.encode()) <= 2048 for p in parts) and "".join(parts) == "字" * 1000


async def test_photo_goes_through_media_upload_and_can_be_fetched(pair):
    sim, channel, _ = pair
    png = make_png(20, 10)
    await channel.send(Outgoing("alice", "本月图表", photo=png, photo_name="chart.png"))
    got = sim.member("alice").received
    assert [m["msgtype"] for m in got] == ["text", "image"]
    assert await channel.fetch_file("wecom:" + got[-1]["media_id"]) == png
    with pytest.raises(SendError):
        await channel.fetch_file("wecom:no-such-media")
    sim.inject(42001)  # the token expires just as a photo is uploaded: renewed, uploaded again
    await channel.send(Outgoing("alice", photo=png))
    assert sim.member("alice").received[-1]["msgtype"] == "image" and channel.token_fetches == 2


async def test_an_edit_updates_the_pressed_card_or_is_sent_anew(pair):
    sim, channel, _ = pair
    task_id = await channel.send(Outgoing("alice", "任务", ((Button("接受", "a:1"), Button("回避", "r:1")),)))
    await channel.send(Outgoing("alice", "没有按过的卡片", edit_message_id=task_id))  # no press: no code
    assert sim.member("alice").received[-1]["msgtype"] == "text"
    # a press gives a response code; the edit then updates the card in place
    sim.response_codes["c0de"] = ("alice", task_id, clock_far(sim))
    await channel.remember_press(task_id, "alice", "c0de")
    await channel.send(Outgoing("alice", "已接受\n第 1 号", ((Button("回避", "r:1"),),), edit_message_id=task_id))
    update = sim.member("alice").received[-1]
    assert update["msgtype"] == "update" and [b["key"] for b in update["card"]["button_list"]] == ["r:1"]
    # the code is used: another edit of that card is sent anew, not refused
    await channel.send(Outgoing("alice", "再改一次", edit_message_id=task_id))
    assert sim.member("alice").received[-1]["text"] == "再改一次"


@pytest.mark.parametrize("fault", [45009, -1, "timeout"])
async def test_a_card_update_refused_for_now_keeps_its_response_code(pair, fault):
    """Defect: the press's code was taken (deleted) before ``update_template_card``; when WeCom
    answered 45009 (rate limit) or was busy, the retry found no code and sent the text as a new
    message — the pressed card kept its live buttons. The code is put back for the retry."""
    sim, channel, _ = pair
    sim.timeout_delay = 5.0  # longer than the channel's 2 s timeout
    task_id = await channel.send(Outgoing("alice", "任务", ((Button("接受", "a:1"), Button("回避", "r:1")),)))
    sim.response_codes["c0de"] = ("alice", task_id, clock_far(sim))
    await channel.remember_press(task_id, "alice", "c0de")
    sim.inject(fault)
    edit = Outgoing("alice", "已接受", edit_message_id=task_id)
    with pytest.raises(SendError) as caught:
        await channel.send(edit)
    assert caught.value.retryable
    assert await channel.send(edit) == task_id  # the retry
    got = sim.member("alice").received
    assert [m["msgtype"] for m in got] == ["template_card", "update", "text"]  # the button greyed, then the text
    assert got[1]["replace_name"] == "已接受" and got[1]["task_id"] == task_id


async def test_an_edit_after_the_response_code_expired_is_sent_anew(pair):
    """Held up: a reply to a press that waits past WeCom's 72 hours (an outage, retries) finds no
    code and arrives as a new message instead of an update WeCom would refuse."""
    sim, channel, clock = pair
    task_id = await channel.send(Outgoing("alice", "任务", ((Button("接受", "a:1"),),)))
    sim.response_codes["c0de"] = ("alice", task_id, clock.t + 72 * 3600)
    await channel.remember_press(task_id, "alice", "c0de")
    clock.t += 72 * 3600 + 1
    await channel.send(Outgoing("alice", "已接受", edit_message_id=task_id))
    assert [m["msgtype"] for m in sim.member("alice").received] == ["template_card", "text"]
    assert "/cgi-bin/message/update_template_card" not in sim.calls


async def test_an_edit_with_more_buttons_than_a_card_holds_loses_none(pair):
    """Defect: an answer to a press that had more than six buttons updated the card with the first
    six and dropped the rest (``send`` made further cards, the update did not)."""
    sim, channel, clock = pair
    task_id = await channel.send(Outgoing("alice", "列表", ((Button("下一页", "pg:1"),),)))
    sim.response_codes["c0de"] = ("alice", task_id, clock_far(sim))
    await channel.remember_press(task_id, "alice", "c0de")
    nine = tuple((Button(f"任务 {i}", f"asg:show:{i}"),) for i in range(9))
    assert await channel.send(Outgoing("alice", "第 2 页", nine, edit_message_id=task_id)) == task_id
    update, more = sim.member("alice").received[-2:]
    assert update["msgtype"] == "update" and more["msgtype"] == "template_card"
    keys = [b["key"] for m in (update, more) for b in m["card"]["button_list"]]
    assert keys == [f"asg:show:{i}" for i in range(9)]


async def test_an_edit_refused_after_its_update_does_not_send_the_card_anew(tmp_path):
    """Defect: when the card was updated but the text after it was refused (45009), the retry found
    the code used and sent the whole answer again as a new card with live buttons."""
    sim = WecomSimulator(members=("alice",), per_member=((60.0, 2),))
    await sim.start()
    channel = WecomChannel(wecom_settings(Settings(data_dir=tmp_path), sim.url), timeout=2.0)
    try:
        task_id = await channel.send(Outgoing("alice", "任务", ((Button("接受", "a:1"),),)))
        sim.response_codes["c0de"] = ("alice", task_id, sim.now() + 3600)
        await channel.remember_press(task_id, "alice", "c0de")
        long = "已接受\n" + "\n".join(f"第 {i} 行：" + "检" * 60 for i in range(20))  # two text parts
        edit = Outgoing("alice", long, edit_message_id=task_id)
        with pytest.raises(SendError):  # the update and the first part pass, the second is refused
            await channel.send(edit)
        sim.per_member = ((60.0, 100),)
        assert await channel.send(edit) == task_id
        got = [m["msgtype"] for m in sim.member("alice").received]
        assert got == ["template_card", "update", "text", "text"], got
        assert "\n".join(sim.member("alice").texts()[-2:]) == long
    finally:
        await channel.stop()
        await sim.stop()


async def test_an_answer_larger_than_any_of_wecoms_is_not_read_and_tried_again(pair):
    """Answers are read no further than 1 MiB (they are a few hundred bytes): past it the call is
    tried again later (a proxy's page, not WeCom), never read whole; a medium past 20 MiB is
    permanent (test_hostile_wecom: the photo fails)."""
    sim, channel, _ = pair
    sim.inject("huge")
    with pytest.raises(SendError) as caught:
        await channel.send(Outgoing("alice", "你好"))
    assert (caught.value.kind, caught.value.retryable) == ("bad_response", True)
    await channel.send(Outgoing("alice", "你好"))
    assert sim.member("alice").texts() == ["你好"]


def clock_far(sim: WecomSimulator) -> float:
    return sim.now() + 3600


async def test_polls_are_refused_before_any_request(pair):
    sim, channel, _ = pair
    from core.channel import Poll

    with pytest.raises(SendError) as caught:
        await channel.send(Outgoing("alice", poll=Poll("q", ("a", "b"))))
    assert caught.value.kind == "unsupported" and "/cgi-bin/message/send" not in sim.calls


async def test_simulator_enforces_the_per_member_limit():
    sim = WecomSimulator(per_member=((60.0, 3),))
    await sim.start()
    channel = WecomChannel(wecom_settings(Settings(), sim.url))
    try:
        for i in range(3):
            await channel.send(Outgoing("alice", f"{i}"))
        with pytest.raises(SendError) as caught:
            await channel.send(Outgoing("alice", "4"))
        assert caught.value.kind == "throttled" and caught.value.retryable and sim.limit_errors == 1
        await channel.send(Outgoing("bob", "another member is not limited"))
    finally:
        await channel.stop()
        await sim.stop()


def test_card_for_without_a_title_uses_the_first_button():
    card, overflow = card_for("", (Button("确认", "x:1"),), "t1")
    assert card["main_title"]["title"] == "确认" and overflow == ""


def test_unknown_errcode_is_retryable():
    error = classify(99999, "new")
    assert error.kind == "unknown" and error.retryable


def test_wecom_secrets_are_redacted_and_not_in_repr(tmp_path):
    from core.logs import settings_secrets

    settings = wecom_settings(Settings(data_dir=tmp_path), "http://127.0.0.1:1")
    found = settings_secrets(settings)
    assert {settings.wecom_secret, settings.wecom_token, settings.wecom_aes_key} <= set(found)
    for secret in (settings.wecom_secret, settings.wecom_token, settings.wecom_aes_key):
        assert secret not in repr(settings) and secret not in repr(WecomChannel(settings))


def test_settings_refuse_a_half_configured_wecom(tmp_path):
    from core.settings import SettingsError

    with pytest.raises(SettingsError):
        Settings(data_dir=tmp_path, wecom_corp_id="ww1", wecom_secret="s", wecom_agent_id=1)  # no callback keys
    with pytest.raises(SettingsError):
        Settings(data_dir=tmp_path, wecom_corp_id="ww1", wecom_agent_id=0)


# -- cards a person can tell apart (references sharing their prefix, as every plan's do) --

FIRMS = ("青岛伟浩食品有限公司", "青岛云杨建材股份有限公司", "青岛趋势超市有限公司", "青岛富罡超市有限公司")
PLAN = "食品经营者和生产企业双随机抽查"


def _task(no: int, firm: str) -> Outgoing:
    return compose(
        "assignment.j2",
        {
            "plan": {"name": PLAN},
            "draw_ref": "SCJG-FOOD/2026-12-02",
            "no": no,
            "entity": {"name": firm, "uscc": "91370211MAHLDTEWWG", "address": "山东省青岛市黄岛区大场镇广州路7号"},
            "items": ["食品经营者经营活动检查", "食品生产企业生产活动检查"],
            "window": {"start": "2026-12-02 10:00", "end": "2026-12-16 10:00"},
            "team": ["曹欢平", "孟洋静"],
            "deadline": "2026-12-07 18:00",
            "flight": False,
            "keyboard": ["assignment_offer", no],
        },
        "zh-CN",
        "alice",
    )


def _review(no: int, firm: str, locale: str = "zh-CN") -> Outgoing:
    context = {"plan": PLAN, "draw_ref": "SCJG-FOOD/2026-12-02", "no": no, "entity": firm, "due": "2026-12-07"}
    context["reinspection"] = False
    context["keyboard"] = ["review_decision", no]
    return compose("review_requested.j2", context, locale, "alice")


def _which(count: int, locale: str = "zh-CN") -> Outgoing:
    choices = [
        {
            "ref": f"SCJG-FOOD/2026-12-02/{no}",
            "entity": FIRMS[no % len(FIRMS)],
            "plan": PLAN,
            "assignment": no,
            "rectification": None,
        }
        for no in range(1, count + 1)
    ]
    buttons = [
        [key("btn_pick_inspection", f"chk:at:{c['assignment']}", ref=c["ref"], entity=c["entity"][:20])]
        for c in choices
    ]
    return compose("onsite_which.j2", {"purpose": "checkin", "choices": choices, "buttons": buttons}, locale, "alice")


def _flat(message: Outgoing) -> tuple[Button, ...]:
    return tuple(b for row in message.buttons for b in row)


def test_cards_of_inspections_sharing_a_prefix_have_titles_that_tell_them_apart():
    """Defect: the title was the first line cut at 36 characters, so every task card read
    「…（SCJG-FOOD/2…」 and every review card 「…（SCJG-FOOD/2026…」."""
    for make in (_task, _review):
        messages = [make(no, firm) for no, firm in zip((5, 10, 15, 1), FIRMS, strict=True)]
        titles = [card_for(m.text, _flat(m), "t")[0]["main_title"]["title"] for m in messages]
        assert len(set(titles)) == len(titles) and all(len(t) <= TITLE_CHARS for t in titles), titles
        for title, no in zip(titles, (5, 10, 15, 1), strict=True):
            assert re.search(f"-02/{no}[），]", title)  # the reference's end, not its common start
    reviews = [_review(no, firm) for no, firm in zip((5, 10), FIRMS[:2], strict=True)]
    firms = [card_for(m.text, _flat(m), "t")[0]["main_title"]["title"] for m in reviews]
    assert FIRMS[0] in firms[0] and FIRMS[1] in firms[1]  # the firm too, where the first line names it
    task = card_for(_task(5, FIRMS[0]).text, _flat(_task(5, FIRMS[0])), "t")[0]["main_title"]
    assert FIRMS[0] in task["desc"] and len(task["desc"]) <= 44  # the task's firm is its second line


def test_card_title_keeps_what_fits_and_cuts_in_the_middle():
    assert card_title("第 12 号检查任务") == "第 12 号检查任务"
    plain = card_title("很长的标题" * 20)
    assert len(plain) == TITLE_CHARS and plain.startswith("很长的标题") and plain.endswith("标题")
    early = card_title("短（SCJG-FOOD/2026-12-02/5）" + "后面的话" * 10)
    assert early.startswith("短（SCJG-FOOD/2026-12-02/5）") and len(early) == TITLE_CHARS
    english = card_title("[To review] A plan with a long name (SCJG-FOOD/2026-12-02/3, Qingdao Trend Supermarket Co.)")
    assert len(english) <= TITLE_CHARS and "-12-02/3, Qingdao" in english and english.endswith(")")


@pytest.mark.parametrize("locale", ["zh-CN", "en"])
def test_choice_buttons_sharing_a_prefix_are_numbered_and_listed(locale):
    """Defect: button texts were cut at 10 characters, so every "which inspection?" button read
    「SCJG-FOOD…」."""
    message = _which(6, locale)
    buttons = _flat(message)
    card, _ = card_for(message.text, buttons, "t")
    texts = [b["text"] for b in card["button_list"]]
    assert len(set(texts)) == len(texts) and all(1 <= len(t) <= BUTTON_CHARS for t in texts), texts
    assert not any(t.startswith("SCJG") for t in texts) and texts[0].startswith("①1 ")
    assert [b["key"] for b in card["button_list"]] == [b.data for b in buttons]  # the callback data as it was
    listed = card["horizontal_content_list"]
    assert [i["keyname"] for i in listed] == ["①", "②", "③", "④", "⑤", "⑥"]
    assert all(len(i["value"]) <= 30 for i in listed) and listed[1]["value"].endswith(FIRMS[2])
    assert len({i["value"] for i in listed}) == 6
    # labels that fit are left alone, without a list
    plain, _ = card_for("任务", (Button("接受", "a:1"), Button("申请回避（利益冲突）", "a:2")), "t")
    assert [b["text"] for b in plain["button_list"]] == ["接受", "申请回避（利益冲突）"]
    assert "horizontal_content_list" not in plain
    # one label too long is cut at its end: it still reads apart from the others
    verdicts = (Button("合格", "f:ok"), Button("不合格", "f:bad"), Button("‼️ 严重不合格（移送立案）", "f:serious"))
    one, _ = card_for("第 1 项", verdicts, "t")
    assert [b["text"] for b in one["button_list"]] == ["合格", "不合格", "‼️ 严重不合格（…"]
    assert "horizontal_content_list" not in one


async def test_choices_past_a_card_stay_apart_through_the_simulator(pair):
    sim, channel, _ = pair
    message = _which(9)
    await channel.send(message)
    cards = [m["card"] for m in sim.member("alice").cards()[-2:]]  # six and three: WeCom accepted both
    texts = [b["text"] for card in cards for b in card["button_list"]]
    assert len(texts) == 9 and len(set(texts)) == 9 and texts[6].startswith("⑦")
    assert [b["key"] for card in cards for b in card["button_list"]] == [b.data for b in _flat(message)]
    assert [len(card["horizontal_content_list"]) for card in cards] == [6, 3]
    assert "⑦ SCJG" in sim.member("alice").cards()[-1]["text"]  # the member reads the list
    titles = [_task(no, firm) for no, firm in zip((5, 10), FIRMS[:2], strict=True)]
    for task in titles:
        await channel.send(task)
    shown = [m["card"]["main_title"]["title"] for m in sim.member("alice").cards()[-2:]]
    assert shown[0] != shown[1]


def test_the_simulator_refuses_a_content_list_past_wecom_limits():
    card = {"card_type": "button_interaction", "task_id": "t", "main_title": {"title": "x"}}
    card["button_list"] = [{"text": "a", "style": 1, "key": "k"}]
    assert _card_problem({**card, "horizontal_content_list": [{"keyname": "①", "value": "v" * 30}]}) == ""
    for bad in (
        [{"keyname": "①", "value": "v"}] * 7,
        [{"keyname": "123456", "value": "v"}],
        [{"keyname": "①", "value": "v" * 31}],
        [{"keyname": "①", "value": "v", "type": 1, "url": "http://x"}],
    ):
        assert "horizontal_content_list" in _card_problem({**card, "horizontal_content_list": bad})
    assert "desc" in _card_problem({**card, "main_title": {"title": "x", "desc": "d" * 45}})


def test_cards_stay_within_wecom_limits_whatever_the_text():
    """Random first lines and labels (brackets, commas, references, long firms): every card
    card_for makes passes the simulator's check of WeCom's documented limits."""
    rng = random.Random(7)
    pieces = [
        "（",
        "）",
        "(",
        ")",
        "，",
        ", ",
        "SCJG-FOOD/2026-12-02/",
        "青岛伟浩食品有限公司",
        "【复查】",
        " ",
        "x",
        "检查",
    ]
    for _ in range(2000):
        line = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 25))).strip() or "x"
        labels = ["".join(rng.choice(pieces) for _ in range(rng.randint(1, 8))).strip() or "y" for _ in range(9)]
        buttons = tuple(Button(label, f"k:{i}") for i, label in enumerate(dict.fromkeys(labels)))
        card, _ = card_for(line + "\n第二行" * rng.randint(0, 3), buttons, "t")
        assert _card_problem(card) == "", (line, labels, card)
        texts = [b["text"] for b in card["button_list"]]
        assert len(set(texts)) == len(texts), (labels, texts)
