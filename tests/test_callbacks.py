import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.callbacks import MAX_BYTES, Callback
from domain.inputs import MAX_ID

part = st.from_regex(r"[A-Za-z0-9_\-]{1,12}", fullmatch=True)


@given(part, part, st.integers(min_value=0, max_value=MAX_ID), st.one_of(st.just(""), part))
def test_pack_parse_round_trip(prefix, action, id_, arg):
    cb = Callback(prefix, action, id_, arg)
    data = cb.pack()
    assert len(data.encode()) <= MAX_BYTES
    assert Callback.parse(data) == cb


@given(st.integers(min_value=MAX_ID + 1, max_value=10**30) | st.integers(max_value=-1))
def test_an_id_beyond_any_row_is_neither_packed_nor_parsed(id_):
    with pytest.raises(ValueError):
        Callback("asg", "show", id_).pack()
    assert Callback.parse(f"asg:show:{id_}") is None


@given(st.text(max_size=80))
def test_arbitrary_data_never_raises(data):
    parsed = Callback.parse(data)
    assert parsed is None or parsed.pack() == data


def test_malformed_data_is_refused():
    for bad in ["", "asg", "asg:accept", "asg:accept:x", "asg:accept:-1", "a:b:1:c:d", "asg:accept:１２", "x" * 65]:
        assert Callback.parse(bad) is None, bad


def test_too_long_data_cannot_be_packed():
    import pytest

    with pytest.raises(ValueError):
        Callback("a" * 24, "b" * 24, 10**17, "c" * 24).pack()


def test_families_pack_only_their_actions_within_telegrams_limit():
    from core.callbacks import ASSIGNMENT, FINDINGS

    assert ASSIGNMENT.data("accept", 12) == "asg:accept:12"
    assert FINDINGS.data("edit", 7, 3) == "fnd:edit:7:3"
    assert ASSIGNMENT.parse("asg:accept:12") == Callback("asg", "accept", 12)
    assert ASSIGNMENT.parse("asg:explode:12") is None and ASSIGNMENT.parse("fnd:open:12") is None
    with pytest.raises(ValueError, match="unknown action"):
        ASSIGNMENT.data("explode", 12)
    with pytest.raises(ValueError, match="1-24"):
        FINDINGS.data("edit", 7, "a" * 25)


def test_every_named_keyboard_builds_checked_buttons():
    from core.keyboards import KEYBOARDS, keyboard

    for name in KEYBOARDS:
        rows = keyboard(name, 123456789)
        assert rows and all(Callback.parse(b["data"]) is not None and b["label"] for row in rows for b in row), name
