"""What a reader of the public pages meets (issue 18): names and percentages on /plans, the
published documents as pages in the reader's language, the latest month with data, and search
results that say which firms were inspected. On SQLite and PostgreSQL."""

from __future__ import annotations

import re

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.runtime import Runtime
from bot.web import make_app
from core.render import percent
from tests.web import world
from tests.web.test_pages import get

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture
async def site(db, tmp_path):
    w = await world.build(tmp_path)
    async with TestClient(TestServer(make_app(Runtime(settings=db, clock=w.clock)))) as client:
        yield client, w


def main_text(html: str) -> str:
    return re.sub(r"<[^>]+>", " ", html.split("<main>", 1)[1].split("</main>", 1)[0])


async def test_plans_show_names_readable_times_and_percentages(site):
    client, w = site
    text = main_text(await get(client, "/plans"))
    assert "市场监督管理局" in text and "食品经营许可情况检查" in text  # names…
    assert "SCJG-SP-01" not in text and "SCJG、" not in text  # …not codes
    assert "100%" in text and "0.25" not in text  # ratios as percentages
    assert not re.search(r"\d{4}-\d{2}-\d{2}T\d", text)  # no ISO "T" in times
    zh = await get(client, "/plans")
    assert 'class="stack"' in zh and 'data-label="部门"' in zh  # cards on a phone, labelled


def test_percent_reads_like_a_person_writes_it():
    assert [percent(x) for x in ("0.03", "1", "1/3", "0.10", "0.025", "0")] == [
        "3%",
        "100%",
        "33.3%",
        "10%",
        "2.5%",
        "0%",
    ]
    assert percent("abc") == "abc"


async def test_published_docs_are_pages_in_the_readers_language(site):
    client, _ = site
    zh = await get(client, "/docs/draw-protocol.md")
    assert "<h1>" in zh and "中文概要" in zh and "draw-protocol.md?lang=en" in zh
    en = await get(client, "/docs/draw-protocol.md?lang=en")
    assert "The publicly verifiable draw" in en and "中文概要" not in en
    raw = await client.get("/docs/draw-protocol.md?raw=1")
    assert raw.headers["Content-Type"].startswith("text/markdown") and (await raw.text()).startswith("# ")
    assert "<h1>" in await get(client, "/docs/public-pages.md")
    await get(client, "/docs/architecture.md", 404)


async def test_reports_opens_the_latest_month_with_data(site):
    client, w = site
    month = w.clock.now().strftime("%Y-%m")
    assert f"{month} " in main_text(await get(client, "/reports")).replace("（", " ")


async def test_search_results_say_which_firms_were_inspected(site):
    client, w = site
    text = main_text(await get(client, "/entities?q=青岛测试"))
    assert "已被抽中检查 1 次" in text
    en = main_text(await get(client, "/entities?q=青岛测试&lang=en"))
    assert "drawn for inspection 1 time," in en


async def test_draw_page_shows_ratios_as_percentages(site):
    client, w = site
    for lang in ("", "?lang=en"):
        html = await get(client, f"/draws/{w.p1}{lang}")
        table = html.split("<table", 1)[1].split("</table>", 1)[0]
        cells = re.findall(r'<td class="num">([^<]*)</td>', table)
        assert any(c.endswith("%") for c in cells), cells  # 抽取比例 as "3%"…
        assert not any(re.fullmatch(r"0\.\d+", c) for c in cells), cells  # …never "0.03"


async def test_a_mistyped_address_gets_a_page_in_the_readers_language(site):
    client, _ = site
    for path in ("/nope", "/docs/nope.md", "/robots.txt"):
        r = await client.get(path)
        assert r.status == 404 and r.content_type == "text/html"
        assert "没有这个页面" in await r.text() and "404: Not Found" not in await r.text()
    en = await client.get("/nope?lang=en")
    assert en.status == 404 and "There is no such page" in await en.text()


async def test_an_announced_draw_ref_says_when_it_is_drawn_not_that_there_is_none(site):
    client, w = site
    r = await client.get(f"/draws/{w.p2}")
    text = main_text(await r.text())
    assert r.status == 404 and "已公布承诺值，将于 2026-12-04 10:00 抽取" in text and "没有编号为" not in text
    en = main_text(await (await client.get(f"/draws/{w.p2}?lang=en")).text())
    assert "is announced" in en and "2026-12-04 10:00" in en
    assert "没有编号为 NOPE 的抽取" in main_text(await get(client, "/draws/NOPE", 404))


async def test_a_page_past_the_last_says_so_and_links_back(site):
    client, _ = site
    text = main_text(await get(client, "/draws?page=50"))
    assert "第 50 页没有抽取" in text and "还没有进行过抽取" not in text
    assert "Page 50 has no plans" in main_text(await get(client, "/plans?page=50&lang=en"))
