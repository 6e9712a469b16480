"""The pure rules of an override: its class, its reason, how far ahead it may run."""

from __future__ import annotations

from datetime import date

import pytest

from domain.risk.override import MAX_REASON, OverrideError, check, clean_reason, latest_until

CLASSES = ("A", "B", "C", "D", "E")


def test_latest_until_is_twelve_months_on_or_the_months_last_day() -> None:
    assert latest_until(date(2026, 12, 7)) == date(2027, 12, 7)
    assert latest_until(date(2028, 2, 29)) == date(2029, 2, 28)
    assert latest_until(date(2026, 1, 31)) == date(2027, 1, 31)


def test_check_accepts_a_class_of_the_model_until_a_day_within_the_limit() -> None:
    today = date(2026, 12, 7)
    assert check(" d ", CLASSES, today, today) == "D"
    assert check("A", CLASSES, date(2027, 12, 7), today) == "A"
    for cls, until, code in (
        ("F", today, "risk_override_class_unknown"),
        ("", today, "risk_override_class_unknown"),
        ("A", date(2026, 12, 6), "risk_override_until_past"),
        ("A", date(2027, 12, 8), "risk_override_until_too_far"),
    ):
        with pytest.raises(OverrideError) as caught:
            check(cls, CLASSES, until, today)
        assert caught.value.code == code


def test_the_reason_is_one_clean_line_of_limited_length() -> None:
    assert clean_reason("  立案\n调查\x00中 ") == "立案 调查中"
    assert len(clean_reason("x" * MAX_REASON)) == MAX_REASON
    for bad, code in (
        ("\n \t", "risk_override_reason_required"),
        ("x" * (MAX_REASON + 1), "risk_override_reason_too_long"),
    ):
        with pytest.raises(OverrideError) as caught:
            clean_reason(bad)
        assert caught.value.code == code
