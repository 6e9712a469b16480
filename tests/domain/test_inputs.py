"""What a person types on a phone, read by domain.inputs: full-width forms fold to ASCII (and
nothing else does), a huge number is unreadable rather than an overflow, and an echo of
unreadable input stays short enough for one chat message."""

from __future__ import annotations

import pytest

from domain import inputs
from domain.beacon import BeaconError, parse_value


@pytest.mark.parametrize(
    ("reader", "typed", "read"),
    [
        (lambda t: inputs.number(t, typed=True), "１２", 12),
        (lambda t: inputs.number(t, typed=True), "\u3000７\u3000", 7),
        (inputs.number, "１２", None),  # a button's data is machine-made: read strictly
        (inputs.number, "1" + "0" * 400, None),  # 10^400: not a row id, never int() of it
        (inputs.number, "9223372036854775808", None),  # past int64 (PostgreSQL would raise)
        (inputs.number, "²", None),
        (inputs.number, "①", None),
        (inputs.month, "２０２６-１２", (2026, 12)),
        (inputs.month, "２０２６－１２", (2026, 12)),  # a full-width hyphen-minus too
        (inputs.month, "9" * 4000, None),
        (lambda t: inputs.word(t, inputs.CODE_MAX), "Ｐ１", "P1"),
        (lambda t: inputs.word(t, inputs.CODE_MAX), "字" * 4000, None),
        (inputs.uscc, "９１３７０２００ＭＡ３ＣＸＬ０Ｘ１Ｑ", "91370200MA3CXL0X1Q"),
        (inputs.uscc, "91370200ma3cxl0x1q", "91370200MA3CXL0X1Q"),
        (inputs.uscc, "青岛市某某食品有限公司第一分公司（崂山区）", None),  # a long name is not a code
        (inputs.uscc, "9" * 19, None),
        (inputs.half_width, "（崂山区）Ａ²", "(崂山区)A²"),  # ² is not a full-width form: kept
    ],
)
def test_what_a_phone_types(reader, typed, read):
    assert reader(typed) == read


def test_an_echo_is_short():
    assert inputs.echo("2026-13") == "2026-13"
    long = inputs.echo("9" * 4000)
    assert len(long) == inputs.ECHO_MAX and long.endswith("…")


@pytest.mark.parametrize(("typed", "numbers"), [("３ ０ ７", (3, 0, 7)), ("０３，１７，２２", (3, 17, 22))])
def test_beacon_values_in_full_width(typed, numbers):
    assert parse_value(typed) == numbers


def test_a_huge_beacon_value_is_refused_and_echoed_short():
    with pytest.raises(BeaconError) as caught:
        parse_value("1" + "0" * 400)
    assert caught.value.code == "beacon_value_malformed" and len(caught.value.params["value"]) <= 60


@pytest.mark.parametrize(
    ("typed", "read"),
    [
        ("/tasks", ("tasks", "")),
        ("／ＴＡＳＫＳ", ("tasks", "")),
        ("  /risk　青岛 食品 ", ("risk", "青岛 食品")),
        ("/risk\n食品", ("risk", "食品")),
        ("/ tasks", ("", "tasks")),
        ("/", ("", "")),
        ("tasks", None),
        ("你好 /tasks", None),
        ("", None),
    ],
)
def test_a_command_typed_as_text(typed, read):
    assert inputs.command(typed) == read
