"""The demo walked by its three roles in headless Chromium (Debian's chromium; no browser is
downloaded): the coordinator's and an inspector's chats and a surveyed firm's SMS thread on the
simulators' page, then the public pages. It fails on what a person would see go wrong: messages
still queued after the story says it is done, an inspector shown fewer task messages than tasks,
codes and ISO times on /plans or a page wider than a phone, English in the zh-CN pages, a verify
that fails on the zip the draw page offers, an empty monthly report, a command typed after the story
left unanswered, internal ids or English in the chats.

One demo run (about a minute and a half): the slowest test of the suite, and the only one that
shows the parts working together as a person meets them.

The WeCom demo (``inspectbot demo --channel wecom``) runs once too — the suite's only run of it —
and its simulators' page is walked as the lead inspector and the coordinator: cards with their
buttons' labels (never their callback data), cards in their state after a press, the check-in,
no English on the zh-CN page, no text wider than its bubble. Its story is checked even without
Chromium (the page part then skips). Most of its minute is the WeCom rate limiter's waits, not CPU.
"""

from __future__ import annotations

import pytest

from tests.web.demo_tour import (
    CHROMIUM,
    RAW_CALLBACK,
    RAW_ID,
    english_words,
    launch,
    running_demo,
    walk,
    walk_wecom,
)
from tests.web.test_pages_browser import chromium_or_skip, chromium_path  # noqa: F401  (the fixture: skips without chromium)


@pytest.fixture
async def seen(chromium_path, tmp_path):  # noqa: F811
    from playwright.async_api import async_playwright

    async with running_demo(tmp_path / "data") as demo, async_playwright() as pw:
        browser = await launch(pw, tmp_path / "browser", chromium_path or CHROMIUM)
        try:
            yield await walk(demo, browser)
        finally:
            await browser.close()


async def test_three_roles_walk_the_demo(seen):
    # the story's last line is true: nothing left queued, every task reached its inspector
    assert seen.queued_after_story == 0
    assert seen.inspector_assignments > 1 and seen.inspector_missing == [], seen.inspector_chat
    assert seen.answered_after_story  # the interactive demo keeps delivering after its story

    # the firm's side: the survey arrived by SMS and the scripted complaint is in the thread
    assert seen.firm_name and "暗示请吃饭" in seen.firm_thread

    # public: names, readable times and percentages on /plans, and a page that fits a phone
    assert "370200SCJG" not in seen.plans_page and "市场监督管理局" in seen.plans_page
    assert "2026-12-02T" not in seen.plans_page and "%" in seen.plans_page
    assert not seen.plans_overflow
    assert not seen.home_overflow and seen.placeholder_fits  # the search box's hint is not cut off

    # the draw page's instructions are true: verify on the very zip it offers passes
    assert seen.verify_code == 0, seen.verify_output
    assert "全部" in seen.verify_output and "核验通过" in seen.verify_output
    assert ".zip" in seen.draw_page

    # 月度报告 opens the month the demo happened in, with its chart
    assert "2026-12" in seen.report_page and seen.chart_width > 0

    # the zh-CN flow is in Chinese
    pages = (
        ("/", seen.home_page),
        ("/plans", seen.plans_page),
        ("draw page", seen.draw_page),
        ("report", seen.report_page),
    )
    for where, text in pages:
        assert english_words(text) == [], (where, english_words(text))

    # the chats: no internal row ids, no English
    leaks = [
        (who, found)
        for who, chat in (("coordinator", seen.coordinator_chat), ("inspector", seen.inspector_chat))
        for found in [*RAW_ID.findall(chat), *english_words(chat)]
    ]
    assert leaks == [], leaks[:8]


async def test_the_wecom_demo_told_and_walked(tmp_path):
    lines: list[str] = []
    async with running_demo(tmp_path / "data", out=lines.append, channel="wecom") as demo:
        story = "\n".join(lines)
        for step in ("【城市】", "【抽取】", "【聊天】", "【回避】", "【递补】", "【复查】", "【完成】"):
            assert step in story, story
        # WeCom inspectors are bound from the directory when they open the application: no invite link
        chat = next(line for line in lines if line.startswith("【聊天】"))
        assert "通讯录" in chat and "企业微信应用" in chat and "通过邀请链接" not in chat, chat
        sent = sum(len(m.received) for m in demo.wecom.members.values())
        assert sent > 10 and "coordinator" in demo.wecom.members

        # the story is checked above on any machine; walking its page needs the browser
        chromium = chromium_or_skip("the WeCom story was checked, its page cannot be walked here: ")
        from playwright.async_api import async_playwright

        async with async_playwright() as pw:
            browser = await launch(pw, tmp_path / "browser", chromium)
            try:
                seen = await walk_wecom(demo, browser)
            finally:
                await browser.close()

    assert seen.queued_after_story == 0
    # the inspector's conversation: task cards with their buttons, the accepted one in its new state
    assert seen.inspector_cards > 1 and seen.pressed_cards >= 1, seen.inspector_chat
    assert {"接受", "申请回避（利益冲突）", "提交检查结果"} <= set(seen.inspector_buttons), seen.inspector_buttons
    assert seen.checked_in and "已签到" in seen.inspector_chat
    assert "【复查】" in seen.inspector_chat and "不合格" in seen.inspector_chat
    # the coordinator's: the results to review, as cards with the button that approves
    assert "【待审核】" in seen.coordinator_chat and "审核通过" in seen.coordinator_buttons

    # labels, not callback data; no internal ids; nothing wider than its bubble
    for who, shown in (("page", seen.page_text), ("coordinator", seen.coordinator_chat)):
        assert RAW_CALLBACK.findall(shown) == [], (who, RAW_CALLBACK.findall(shown)[:8])
        assert RAW_ID.findall(shown) == [], (who, RAW_ID.findall(shown)[:8])
    assert seen.overflowing == []
    assert not seen.page_scrolls  # the two-line header leaves the text box and its tools on screen
    # the zh-CN page is in Chinese (the members' WeCom userids are account names, not words)
    page = seen.page_text
    for userid in seen.members:
        page = page.replace(userid, " ")
    assert english_words(page) == [] and english_words(seen.coordinator_chat) == []
