"""The real demo, walked in headless Chromium as its three roles would: shared by the browser
test (``tests/web/test_demo_browser.py``, which asserts on what is seen) and the tour's
screenshots (``docs/tour/make.py``, which saves them). Nothing here is mocked: the demo's own
story runs first (simulators, service, scheduler), then the browser visits the simulators' page
and the public pages it leaves running.
"""

from __future__ import annotations

import contextlib
import os
import re
from argparse import Namespace
from dataclasses import dataclass, field
from pathlib import Path

from bot.commands import verify
from bot.demo import Demo
from bot.demo_wecom import WecomDemo
from core.settings import Settings
from models.directory import Entity
from models.draws import Assignment, Draw
from models.messaging import Outbox, OutboxStatus
from models.surveys import Survey

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
DESKTOP = {"width": 1200, "height": 820}
PHONE = {"width": 390, "height": 844}


FONTS_CONF = """<?xml version="1.0"?>
<!DOCTYPE fontconfig SYSTEM "fonts.dtd">
<fontconfig>
  <include ignore_missing="yes">/etc/fonts/fonts.conf</include>
  <dir>{fonts}</dir>
  <cachedir>{cache}</cachedir>
</fontconfig>
"""


async def launch(pw, work: Path, executable: str = CHROMIUM):
    """Chromium that can draw Chinese on a machine without CJK fonts: fontconfig is pointed at
    the system's configuration plus the Noto Sans SC the project installs for its charts."""
    import pylopdf_fonts_zh_cn  # lazy: only the browser walks need its path

    work.mkdir(parents=True, exist_ok=True)
    conf = work / "fonts.conf"
    conf.write_text(FONTS_CONF.format(fonts=pylopdf_fonts_zh_cn.sans_path().parent, cache=work / "fontcache"))
    return await pw.chromium.launch(
        executable_path=executable, args=FLAGS, env={**os.environ, "FONTCONFIG_FILE": str(conf)}
    )


@dataclass
class Seen:
    """What the walk saw, for the test to judge (and the tour to caption)."""

    queued_after_story: int = 0
    coordinator_chat: str = ""
    inspector_name: str = ""
    inspector_chat: str = ""
    inspector_assignments: int = 0
    inspector_missing: list[int] = field(default_factory=list)  # inspection numbers not in the chat
    answered_after_story: bool = False  # /tasks typed on the simulators' page got its reply
    firm_name: str = ""
    firm_thread: str = ""
    plans_page: str = ""
    plans_overflow: bool = False
    draw_ref: str = ""
    draw_page: str = ""
    verify_code: int | None = None
    verify_output: str = ""
    report_url: str = ""
    report_page: str = ""
    chart_width: int = 0
    home_page: str = ""
    home_overflow: bool = False
    placeholder_fits: bool = False
    shots: list[Path] = field(default_factory=list)


@contextlib.asynccontextmanager
async def running_demo(data_dir: Path, out=lambda line: None, channel: str = "telegram"):
    """The interactive demo (its story told, its pages and simulators left up, every port
    chosen free), stopped on exit; ``channel="wecom"``: ``inspectbot demo --channel wecom``."""
    settings = Settings(
        data_dir=data_dir,
        locale="zh-CN",
        web_port=0,
        metrics_port=0,
        demo_telegram_port=0,
        demo_sms_port=0,
        demo_sim_port=0,
        demo_wecom_port=0,
    )
    demo = (WecomDemo if channel == "wecom" else Demo)(settings, headless=False, out=out)
    try:
        assert await demo.run() == 0
        yield demo
    finally:
        await demo.stop()


async def walk(demo: Demo, browser, shots: Path | None = None) -> Seen:
    """Visit each role's screens; with ``shots`` save a PNG of each into that folder."""
    seen = Seen()
    seen.queued_after_story = await Outbox.filter(status__in=[OutboxStatus.PENDING, OutboxStatus.SENDING]).count()
    context = await browser.new_context(locale="zh-CN", viewport=DESKTOP, accept_downloads=True)
    page = await context.new_page()
    page.set_default_timeout(15_000)

    async def shot(name: str) -> None:
        if shots is not None:
            path = shots / f"{name}.png"
            await page.screenshot(path=str(path))
            seen.shots.append(path)

    # -- the coordinator's chat and an inspector's, on the simulators' page ------------------------
    await page.goto(demo.sim_url)
    seen.coordinator_chat = await _open_chat(page, "王芳（协调员）")
    await shot("coordinator")

    lead = await _acted_inspector(demo)
    seen.inspector_name = lead.inspector.name
    seen.inspector_chat = await _open_chat(page, lead.inspector.name)
    # every task of this inspector reached the chat: its inspection's number is in it (a card,
    # or the card edited into the reply once accepted)
    refs = await Assignment.filter(inspector_id=lead.inspector_id).values_list(
        "inspection__draw__draw_ref", "inspection__no"
    )
    seen.inspector_assignments = len(refs)
    # the public reference (P1/2026-12-01/7) each chat text names an inspection by
    seen.inspector_missing = [n for ref, n in refs if f"{ref}/{n}" not in seen.inspector_chat]
    await shot("inspector")

    # after the story the demo keeps running: a command typed now is answered and delivered
    before = await page.locator("#tg-messages .msg.bot").count()
    await page.fill("#tg-text", "/tasks")
    await page.press("#tg-text", "Enter")
    for _ in range(40):  # polled from here: the page's CSP allows no evaluated script (wait_for_function)
        if await page.locator("#tg-messages .msg.bot").count() > before:
            seen.answered_after_story = True
            break
        await page.wait_for_timeout(500)

    # -- the firm that answered the survey by SMS -------------------------------------------------
    survey = await Survey.all().order_by("id").prefetch_related("entity").first()
    if survey is not None:
        seen.firm_name = survey.entity.name
        await page.locator("#phones button", has_text=survey.entity.name).first.click()
        await page.locator("#sms-messages").get_by_text("暗示请吃饭").first.wait_for()
        seen.firm_thread = await page.locator("#sms-messages").inner_text()
        await shot("firm")

    # -- the public pages -------------------------------------------------------------------------
    public = demo.settings.public_url
    draw = await Draw.all().order_by("-id").first()
    seen.draw_ref = draw.draw_ref
    await page.goto(f"{public}/draws/{draw.draw_ref}")
    seen.draw_page = await page.locator("main").inner_text()
    await shot("draw")
    async with page.expect_download() as info:
        await page.get_by_role("link", name="全部文件（zip）").click()
    download = await info.value
    saved = Path(demo.settings.data_dir) / download.suggested_filename
    await download.save_as(str(saved))
    seen.verify_code, seen.verify_output = await _verify(saved, demo.settings)

    await page.goto(f"{public}/")
    await page.get_by_role("link", name="月度报告").first.click()
    await page.wait_for_load_state()
    seen.report_url = page.url
    seen.report_page = await page.locator("main").inner_text()
    seen.chart_width = await page.locator("img.chart").evaluate("img => img.naturalWidth")
    await shot("report")

    await page.set_viewport_size(PHONE)
    await page.goto(f"{public}/plans")
    seen.plans_page = await page.locator("main").inner_text()
    seen.plans_overflow = await page.evaluate("document.documentElement.scrollWidth > window.innerWidth + 1")
    await shot("plans-phone")
    await page.goto(f"{public}/")
    seen.home_page = await page.locator("main").inner_text()
    seen.home_overflow = await page.evaluate("document.documentElement.scrollWidth > window.innerWidth + 1")
    seen.placeholder_fits = await page.locator("input[name=q]").evaluate(PLACEHOLDER_FITS)
    await context.close()
    return seen


@dataclass
class SeenOnWecom:
    """What the walk of ``inspectbot demo --channel wecom``'s simulators' page saw."""

    queued_after_story: int = 0
    members: dict[str, str] = field(default_factory=dict)  # userid -> name, as the page lists them
    page_text: str = ""  # the whole page (list, heading, chat, tools) with an inspector's chat open
    inspector_name: str = ""
    inspector_chat: str = ""
    inspector_cards: int = 0
    inspector_buttons: list[str] = field(default_factory=list)  # every card button's label
    pressed_cards: int = 0  # cards shown in their state after a press (已编辑)
    checked_in: bool = False  # the member's shared location is in the conversation
    coordinator_chat: str = ""
    coordinator_buttons: list[str] = field(default_factory=list)
    overflowing: list[str] = field(default_factory=list)  # messages wider than their bubble
    page_scrolls: bool = True  # the window scrolls (the compose box and tools pushed off-screen)
    shots: list[Path] = field(default_factory=list)


async def walk_wecom(demo: WecomDemo, browser, shots: Path | None = None) -> SeenOnWecom:
    """Visit the WeCom demo's simulators' page as the first inspection's lead and as the
    coordinator; with ``shots`` save the tour's pictures of their conversations."""
    seen = SeenOnWecom()
    seen.queued_after_story = await Outbox.filter(status__in=[OutboxStatus.PENDING, OutboxStatus.SENDING]).count()
    seen.members = {userid: m.name or userid for userid, m in demo.wecom.members.items()}
    context = await browser.new_context(locale="zh-CN", viewport=DESKTOP)
    page = await context.new_page()
    page.set_default_timeout(15_000)

    async def shot(name: str, message) -> None:
        """The screen with ``message`` (a locator) in the middle of the conversation."""
        await message.first.evaluate(CENTRED)
        if shots is not None:
            path = shots / f"{name}.png"
            await page.screenshot(path=str(path))
            seen.shots.append(path)

    await page.goto(demo.sim_url)
    lead = await _acted_inspector(demo)
    seen.inspector_name = lead.inspector.name
    seen.inspector_chat = await _open_chat(page, lead.inspector.name, "#members")
    seen.page_text = await page.locator("body").inner_text()
    seen.page_scrolls = await page.evaluate(PAGE_SCROLLS)
    cards = page.locator("#tg-messages .msg.card")
    seen.inspector_cards = await cards.count()
    seen.inspector_buttons = await cards.locator(".buttons button").all_inner_texts()
    seen.pressed_cards = await cards.filter(has_text="已编辑").count()
    seen.overflowing = await page.locator("#tg-messages .msg").evaluate_all(OVERFLOWING)
    messages = page.locator("#tg-messages .msg")
    # an assignment card still to answer (its buttons), and one after 接受 (its new text and buttons)
    await shot("wecom-inspector", cards.filter(has=page.get_by_role("button", name="接受", exact=True)))
    pressed = cards.filter(has_text="已编辑")  # updated after a press: 接受 if this member pressed it
    accepted = pressed.filter(has_text="接受")
    await shot("wecom-accepted", accepted if await accepted.count() else pressed)
    place = messages.filter(has_text="📍")
    seen.checked_in = await place.count() > 0
    await shot("wecom-checkin", messages.filter(has_text="已签到"))
    await shot("wecom-findings", cards.filter(has_text="提交检查结果").filter(has_text="不合格"))

    seen.coordinator_chat = await _open_chat(page, "王芳（协调员）", "#members")
    cards = page.locator("#tg-messages .msg.card")
    seen.coordinator_buttons = await cards.locator(".buttons button").all_inner_texts()
    seen.overflowing += await page.locator("#tg-messages .msg").evaluate_all(OVERFLOWING)
    await shot("wecom-coordinator", messages.filter(has_text="【待审核】").nth(1))
    await context.close()
    return seen


# the conversation scrolled (not the page) so that this message is in its middle
CENTRED = """m => {
  const box = m.closest(".messages");
  const offset = m.getBoundingClientRect().top - box.getBoundingClientRect().top;
  box.scrollTop += offset - (box.clientHeight - m.offsetHeight) / 2;
}"""

# the page is taller than the window: only the member list and the conversation should scroll
PAGE_SCROLLS = "document.documentElement.scrollHeight > window.innerHeight + 1"

# messages whose content is wider than their bubble (a line that does not wrap), by their first words
OVERFLOWING = """messages => messages
  .filter(m => m.scrollWidth > m.clientWidth + 1)
  .map(m => m.textContent.slice(0, 40))"""

# a button's callback data (asg:accept:7, rev:ok:1) where a person would read a label
RAW_CALLBACK = re.compile(r"\b[a-z]{2,8}:[a-z_]+(?::[\w-]+)?\b")


# the search box's placeholder, measured in the box's own font, fits its inner width
PLACEHOLDER_FITS = """input => {
  const style = getComputedStyle(input);
  const context = document.createElement("canvas").getContext("2d");
  context.font = style.font;
  const inner = input.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
  return context.measureText(input.placeholder).width <= inner;
}"""


async def _open_chat(page, name: str, listed: str = "#users") -> str:
    await page.locator(f"{listed} button", has_text=name).first.click()
    await page.locator("#tg-name", has_text=name).wait_for()
    await page.locator("#tg-messages .msg").first.wait_for()
    return await page.locator("#tg-messages").inner_text()


async def _acted_inspector(demo: Demo) -> Assignment:
    """The lead of the first inspection the script acted on (the one surveyed)."""
    survey = await Survey.all().order_by("id").first()
    entity_id = survey.entity_id if survey is not None else (await Entity.first()).id
    found = (
        await Assignment.filter(inspection__entity_id=entity_id, status__in=["accepted", "done"])
        .order_by("seat")
        .prefetch_related("inspector")
        .first()
    )
    return found or await Assignment.filter(status="accepted").prefetch_related("inspector").first()


async def _verify(path: Path, settings: Settings) -> tuple[int, str]:
    """``inspectbot verify <the downloaded zip>``, its exit code and what it printed."""
    buffer: list[str] = []
    with contextlib.redirect_stdout(_Lines(buffer)), contextlib.redirect_stderr(_Lines(buffer)):
        code = await verify.run(
            Namespace(directory=path, allow_test_chain=True, disclosure=None), settings
        )  # the demo's local test chain
    return code, "".join(buffer)


class _Lines:
    def __init__(self, into: list[str]) -> None:
        self.into = into

    def write(self, text: str) -> int:
        self.into.append(text)
        return len(text)

    def flush(self) -> None:
        pass


# what a zh-CN reader may meet in Latin letters: names of things, not English sentences
LATIN_ALLOWED = re.compile(
    r"^(SCJG|FOOD|SHA|inspectbot|verify|zip|json|tsv|draw|pool|inspectors|recusals|sealed|bundle|uv|run|"
    r"http|https|Telegram|Markdown|cron|beacon|drand|commitment|English|lang|png|PNG|TOML|md|docs|protocol|"
    r"public|pages|www|org|"
    r"audit|head|disclosure|chain|test)$"  # `inspectbot audit verify --head`, `--disclosure`, the drand test chain's id
)


def english_words(text: str) -> list[str]:
    """Latin words of four or more letters that are not names of things (URLs and codes aside)."""
    text = re.sub(r"https?://\S+", " ", text)
    text = re.sub(r"\b[0-9a-f]{16,}\b", " ", text)  # hex digests and cuts (ffff… for a class drawn whole)
    text = re.sub(r"[\w./-]*\d[\w./-]*", " ", text, flags=re.ASCII)  # digests, credit codes, draw names, dates
    text = re.sub(r"\w*_\w*", " ", text, flags=re.ASCII)  # identifiers (inspections_digest)
    text = re.sub(r"/\w+", " ", text, flags=re.ASCII)  # commands (/tasks) and paths
    words = re.findall(r"[A-Za-z]{4,}", text)
    return [w for w in words if not LATIN_ALLOWED.match(w)]


RAW_ID = re.compile(r"#\d+|任务\s*\d{3,}")  # an internal row id, not the public way to name an inspection
