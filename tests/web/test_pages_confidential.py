"""Risk classes stay confidential on the public pages (protocol v2, docs/draw-protocol.md §15), seen
in a real headless Chromium: no page lists an entity beside its class, the bundle a visitor
downloads carries none, and yet it verifies. Counts per class (and, once revealed, each class's
cut) may show.

Same browser fixture and skips as ``test_pages_browser.py``.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

from domain import bundle
from models.directory import Entity
from tests.web import test_pages_browser as browser

browser_page = browser.browser_page  # the fixtures, shared
chromium_path = browser.chromium_path

CLASSES = {"A", "B", "C", "D", "E"}


async def _rows(page) -> list[list[str]]:
    """Every row of every table on the page, as the visitor reads its cells."""
    return await page.eval_on_selector_all(
        "main table tr", "rows => rows.map(r => Array.from(r.cells).map(c => c.innerText.trim()))"
    )


async def _no_class_beside_an_entity(page, codes: set[str], where: str) -> None:
    text = await page.locator("main").inner_text()
    for row in await _rows(page):
        if row and row[0] in CLASSES:  # the counts per class: a label, then numbers (the ratio as a percentage) only
            assert all(
                c in ("", "—") or c.removesuffix("%").replace(".", "").isdigit() or len(c) == 16 for c in row[1:]
            ), (where, row)
            continue
        assert not (CLASSES & set(row) and codes & set(row)), (where, row)
        assert not CLASSES & set(row), (where, row)  # no cell that is a class, anywhere else
    for code in codes:  # an entity's credit code is never followed by its class in running text
        for label in CLASSES:
            assert f"{code} {label}" not in text and f"{code}\t{label}" not in text, where


async def test_no_public_page_or_bundle_shows_an_entity_class(browser_page):
    page, base, w, _dialogs = browser_page
    entities = await Entity.all()
    codes = {e.uscc for e in entities}
    visited = ["/", "/plans", "/draws", f"/draws/{w.p1}", f"/draws/{w.f1}", "/entities?q=酒楼"]
    visited += [f"/entities/{e.uscc}" for e in entities[:12]]
    for lang in ("zh-CN", "en"):
        for path in visited:
            url = f"{base}{path}{'&' if '?' in path else '?'}lang={lang}"
            response = await page.goto(url)
            assert response is not None and response.ok, url
            await _no_class_beside_an_entity(page, codes, url)
    # the drawn entities' table of P1 has no class column, in either language
    await page.goto(f"{base}/draws/{w.p1}?lang=en")
    headers = await page.eval_on_selector_all("main table th", "ths => ths.map(t => t.innerText.trim())")
    assert "Credit code" in headers and headers.count("Risk class") == 1  # only the counts' table
    assert "Cut (rank)" in headers
    assert "confidential" in await page.locator("main").inner_text()

    # the bundle as a visitor downloads it: no class in draw.json or pool.tsv, and it verifies
    async with page.expect_download() as info:
        await page.get_by_role("link", name="All files (zip)").click()
    data = Path(await (await info.value).path()).read_bytes()
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        files = {name.rsplit("/", 1)[-1]: zf.read(name) for name in zf.namelist()}
    doc = json.loads(files["draw.json"])
    assert doc["protocol"] == "inspectbot/draw/v2"
    assert all("stratum" not in e for e in doc["inspections"])
    assert all(len(line.split(b"\t")[1]) == 64 for line in files["pool.tsv"].splitlines())
    checks = bundle.verify(files)
    assert checks and all(line.ok for line in checks)


async def test_a_confidential_draw_page_fits_a_phone(browser_page):
    """The v2 draw page (digests, beacon, the cuts column) at 390 px: nothing wider than the screen."""
    page, base, w, _dialogs = browser_page
    await page.set_viewport_size({"width": 390, "height": 844})
    for lang in ("zh-CN", "en"):
        await page.goto(f"{base}/draws/{w.p1}?lang={lang}")
        wide = await page.evaluate(
            "Array.from(document.querySelectorAll('main *')).filter(e => e.getBoundingClientRect().right > "
            "window.innerWidth + 1 && !e.closest('.scroll, pre')).map(e => e.tagName + '.' + e.className + ' ' + "
            "e.textContent.slice(0, 40))"
        )
        assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"), (lang, wide[:5])
        # the drawn entities' numbers stay on one line (not "1" over "0"), and a Chinese state is one
        # word (not 待 over 公 over 示); an English state may wrap between its words
        cells = "main td.num, main td.state" if lang == "zh-CN" else "main td.num"
        lines = await page.eval_on_selector_all(
            cells,
            "cells => cells.map(c => { const r = document.createRange(); r.selectNodeContents(c); "
            "return new Set(Array.from(r.getClientRects()).map(x => Math.round(x.top))).size; })",
        )
        assert lines and max(lines) == 1, (lang, max(lines))
