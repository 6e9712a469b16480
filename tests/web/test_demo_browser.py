"""The demo walked by its three roles in headless Chromium (Debian's chromium; no browser is
downloaded): the coordinator's and an inspector's chats and a surveyed firm's SMS thread on the
simulators' page, then the public pages. It fails on what a person would see go wrong: messages
still queued after the story says it is done, an inspector shown fewer task messages than tasks,
codes and ISO times on /plans or a page wider than a phone, English in the zh-CN pages, a verify
that fails on the zip the draw page offers, an empty monthly report, a command typed after the story
left unanswered, internal ids or English in the chats.

One demo run (about a minute and a half): the slowest test of the suite, and the only one that
shows the parts working together as a person meets them.
"""

from __future__ import annotations

import pytest

from tests.web.demo_tour import CHROMIUM, RAW_ID, english_words, launch, running_demo, walk
from tests.web.test_pages_browser import chromium_path  # noqa: F401  (the fixture: skips without chromium)


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
