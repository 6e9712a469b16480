"""Objections as a firm's phone types them (hostile2): the code in full-width forms, lower case,
in groups, after an ideographic space; two objections in one text; a code one character too long;
control characters in the reason; a notice PDF for names no font or encoder expected."""

from __future__ import annotations

import io

import pytest
from pypdf import PdfReader

from core.pdf import notice_pdf
from domain.onsite import clean_reason, notice_code_text, parse_objection, parse_objections


@pytest.mark.parametrize(
    "text",
    [
        "异议 ＧＴＥＳＴ２３４ 理由",  # full-width letters and digits
        "异议　GTEST234　理由",  # the ideographic space
        "异议 gtest234 理由",
        "异议 GTEST 234 理由",  # copied from paper in groups
        "异议 GTEST-234 理由",
        "　异议：ｇｔｅｓｔ２３４，理由",
        "ＯＢＪＥＣＴＩＯＮ GTEST234 理由",
    ],
)
def test_a_code_typed_on_a_phone_is_read(text):
    assert parse_objection(text) == ("GTEST234", "理由")


@pytest.mark.parametrize(
    "text",
    [
        "异议 GTEST2345 理由",
        "异议 GTEST23 理由",
        "异议 G0O1I234 理由",
        "ＧＴＥＳＴ２３４ 理由",
        "你好\n异议 GTEST234 理由",
    ],
)
def test_what_is_not_exactly_a_code_is_not_an_objection(text):
    # a code one character too long was read as the code and "5 理由": an objection to another notice
    assert parse_objection(text) is None and parse_objections(text) == []


def test_two_objections_in_one_text_are_two():
    text = "异议 GTEST234 理由一\n第二行\n异议 ｇｔｅｓｔ２３５ 理由二"
    assert parse_objections(text) == [("GTEST234", "理由一\n第二行"), ("GTEST235", "理由二")]


@pytest.mark.parametrize(
    ("typed", "stored"),
    [(" ｇｔｅｓｔ－２３４ ", "GTEST234"), ("gtest 234", "GTEST234"), ("GTEST\u3000234", "GTEST234")],
)
def test_a_typed_code_is_read_as_stored(typed, stored):
    assert notice_code_text(typed) == stored


@pytest.mark.parametrize(
    ("raw", "kept"),
    [
        ("a\x00b", "ab"),  # PostgreSQL refuses NUL in text: the objection was a 500
        ("\x01\x07a\x1b[31mb\x7f", "a[31mb"),
        ("一\r\n二\r三\t四", "一\n二\n三 四"),
        ("a\ud800b", "ab"),
        ("<script>alert(1)</script>", "<script>alert(1)</script>"),  # kept as typed: escaped where shown
    ],
)
def test_a_reason_keeps_what_can_be_stored_and_shown(raw, kept):
    assert clean_reason(raw) == kept


DOC = {
    "code": "GTEST234",
    "uscc": "91370200000000003X",
    "address": "",
    "departments": ["青岛市市场监督管理局"],
    "plan": "餐饮抽查",
    "draw_ref": "P1/2026-12-01",
    "date": "2026-12-01",
    "issued_on": "2026-12-03",
    "objection_until": "2026-12-17",
    "rectify_by": "",
    "outcome": "problems",
    "items": [{"no": 1, "name": "冷柜", "basis": "食品安全法", "verdict": "fail"}],
}


@pytest.mark.parametrize(
    ("name", "pages", "shown"),
    [
        ("海鲜\ud800酒楼", 1, "海鲜酒楼"),  # a lone surrogate: the PDF failed to draw (UnicodeEncodeError)
        ("海鲜\x00酒\x1b楼", 1, "海鲜酒楼"),
        ("海鲜😀酒楼𠀀", 1, "海鲜😀酒楼𠀀"),  # outside the CJK font: kept in the text layer
        ("长" * 5000, 2, "长" * 40),  # 5,000 characters: flows over pages
    ],
)
def test_a_notice_for_any_firm_name_is_drawn(name, pages, shown):
    pdf = PdfReader(io.BytesIO(notice_pdf({**DOC, "entity": name})))
    assert len(pdf.pages) >= pages
    assert shown in "".join(p.extract_text() for p in pdf.pages).replace("\n", "")
