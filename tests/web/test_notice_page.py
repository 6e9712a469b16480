"""The printable notice from the firm's result page: with its code a PDF, in Chinese; a wrong
code, or the code on another firm's page, is a clear 404; the page offers the form."""

from __future__ import annotations

import io

import pytest
from pypdf import PdfReader

from tests.web import world
from tests.web.test_pages import get, site  # noqa: F401 (the fixture)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


async def test_notice_pdf_with_its_code_and_refusals(site):  # noqa: F811
    client, w = site
    page = await get(client, f"/entities/{w.markup.uscc}")
    assert f'action="/entities/{w.markup.uscc}/notice"' in page and "告知书编号" in page
    assert "责令整改（期限" in page  # the standing rectification order
    response = await client.get(f"/entities/{w.markup.uscc}/notice?code={world.NOTICE_CODE.lower()}")
    assert response.status == 200 and response.content_type == "application/pdf"
    body = await response.read()
    text = "".join(p.extract_text() for p in PdfReader(io.BytesIO(body)).pages)
    assert "检查结果告知书" in text and world.NOTICE_CODE in text and "不合格" in text
    assert world.FINDING_NOTE not in text  # the inspector's note is not the firm's notice
    assert "没有找到这份告知书" in await get(client, f"/entities/{w.markup.uscc}/notice?code=GNOPE234", status=404)
    assert "没有找到这份告知书" in await get(client, f"/entities/{w.markup.uscc}/notice", status=404)
    other = f"/entities/{w.markup.uscc}".replace("03X", "05X")
    await get(client, f"{other}/notice?code={world.NOTICE_CODE}", status=404)
