"""The public reference of an inspection: shown one way, read however a phone types it."""

from __future__ import annotations

import pytest

from domain.refs import Ref, inspection_ref, parse


def test_shown_as_draw_ref_slash_number():
    assert inspection_ref("P1/2026-12-01", 7) == "P1/2026-12-01/7"
    assert inspection_ref("P1/2026-12-01.2", 7) == "P1/2026-12-01.2/7"


@pytest.mark.parametrize(
    "typed",
    [
        "P1/2026-12-01/7",
        " P1/2026-12-01/7 ",
        "Ｐ１／２０２６－１２－０１／７",
        "P1/2026-12-01 7",
        "P1/2026-12-01#7",
        "P1/2026-12-01 第7号",
        "P1/2026-12-01 第 7 号",
    ],
)
def test_typed_forms(typed):
    assert parse(typed) == Ref("P1/2026-12-01", 7)


def test_second_draw_same_day_and_codes_with_dashes():
    assert parse("P1/2026-12-01.2/7") == Ref("P1/2026-12-01.2", 7)
    assert parse("food-2.a/2026-12-01/12") == Ref("food-2.a/2026-12-01", 12)


@pytest.mark.parametrize("typed", ["7", "#7", "第7号", "第 7 号", "７", "No.7"])
def test_bare_number_is_one_of_mine(typed):
    assert parse(typed) == Ref(None, 7)


@pytest.mark.parametrize(
    "typed",
    [
        "",
        "  ",
        "0",
        "P1/2026-12-01/0",
        "P1/2026-12-01",
        "P1/2026-12-01/",
        "P1/2026-12-01/1234567",
        "²",
        "abc",
        "P1/2026-12-01/7/8",
        "P1/26-12-01/7",
        "x" * 70,
        "P1/2026-12-01/-3",
        "1234567",
    ],
)
def test_not_a_reference(typed):
    assert parse(typed) is None
