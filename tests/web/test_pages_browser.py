"""The public pages in a real headless Chromium (Debian's ``chromium``, driven by Playwright;
no browser is ever downloaded): the search works, a bundle downloads and verifies, and markup in
an entity's name is shown as text and never runs.

Skips, saying why, when Chromium or the Playwright package is missing — except in CI
(``CI=true``), where ``.ci/run`` installs both and a missing one fails the test.
"""

from __future__ import annotations

import io
import os
import shutil
import zipfile
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer

from bot.runtime import Runtime
from bot.web import make_app
from domain import bundle
from tests.web import world

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


def _missing() -> str | None:
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        return f"Debian's chromium is not installed ({CHROMIUM}); `apt-get install -y chromium` (.ci/run does)"
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (`uv sync` installs it as a dev dependency)"
    return None


def chromium_or_skip(what: str = "") -> str:
    """Chromium's path; without it (or playwright) the test fails in CI, which installs both, and
    is skipped elsewhere with what is missing and how to install it (``what``: what the test has
    checked already, said in the skip's reason)."""
    reason = _missing()
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the browser test must run in CI: {reason}")
        pytest.skip(f"{what}{reason}")
    return CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")


@pytest.fixture
def chromium_path() -> str:
    return chromium_or_skip()


@pytest.fixture
async def browser_page(chromium_path, sqlite_db, tmp_path):
    from playwright.async_api import async_playwright

    w = await world.build(tmp_path)
    server = TestServer(make_app(Runtime(settings=sqlite_db, clock=w.clock)), host="127.0.0.1")
    await server.start_server()
    dialogs: list[str] = []
    try:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=chromium_path, args=FLAGS)
            try:
                context = await browser.new_context(accept_downloads=True, locale="zh-CN")
                page = await context.new_page()
                page.set_default_timeout(10_000)
                page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
                yield page, str(server.make_url("")).rstrip("/"), w, dialogs
            finally:
                await browser.close()
    finally:
        await server.close()


async def test_search_download_and_markup_as_text(browser_page):
    page, base, w, dialogs = browser_page

    # search by part of the name, from the home page's form
    await page.goto(base + "/")
    await page.fill("input[name=q]", "海鲜酒楼")
    await page.press("input[name=q]", "Enter")
    await page.wait_for_url("**/entities?q=*")
    hit = page.locator("main table a").first
    assert await hit.inner_text() == world.MARKUP  # the markup is text on the page…
    await hit.click()
    await page.wait_for_url(f"**/entities/{w.markup.uscc}")
    assert await page.locator("h1").inner_text() == world.MARKUP
    assert await page.locator("script").count() == 0  # …never an element
    assert "发现问题" in await page.locator("main").inner_text()
    assert dialogs == []  # alert(1) never ran

    # search by credit code: straight to the entity
    await page.goto(base + "/entities")
    await page.fill("input[name=q]", w.markup.uscc)
    await page.press("input[name=q]", "Enter")
    await page.wait_for_url(f"**/entities/{w.markup.uscc}")

    # download the draw's bundle and verify it
    await page.goto(f"{base}/draws/{w.p1}")
    async with page.expect_download() as info:
        await page.get_by_role("link", name="全部文件（zip）").click()
    download = await info.value
    data = Path(await download.path()).read_bytes()
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        files = {name.rsplit("/", 1)[-1]: zf.read(name) for name in zf.namelist()}
    assert {"draw.json", "pool.tsv", "inspectors.tsv", "recusals.tsv"} <= set(files)
    checks = bundle.verify(files)
    assert checks and all(line.ok for line in checks)
    assert download.suggested_filename.endswith(".zip")
