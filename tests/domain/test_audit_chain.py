import hashlib
import json

from hypothesis import given
from hypothesis import strategies as st

from domain.audit import GENESIS, Entry, entry_hash, first_broken


def chain(n: int) -> list[Entry]:
    out, prev = [], GENESIS
    for i in range(1, n + 1):
        e = Entry(i, f"2026-12-01T00:00:{i:02d}.000000+00:00", "system", "x.done", f"a:{i}", {"n": i}, prev)
        e = Entry(**{**e.__dict__, "hash": entry_hash(e)})
        out.append(e)
        prev = e.hash
    return out


def test_hash_follows_the_documented_formula():
    e = chain(1)[0]
    body = json.dumps(
        {"seq": 1, "at": e.at, "actor": "system", "action": "x.done", "subject": "a:1", "data": {"n": 1}},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    ).encode()
    assert e.hash == hashlib.sha256(b"inspectbot/audit/v1\x00" + GENESIS.encode() + b"\x00" + body).hexdigest()


def test_intact_chain_passes():
    assert first_broken(chain(20)) is None


@given(st.integers(min_value=0, max_value=19), st.sampled_from(["alter", "delete", "rehash"]))
def test_any_tampering_is_found_at_the_right_record(i, how):
    entries = chain(20)
    if how == "alter":
        entries[i] = Entry(**{**entries[i].__dict__, "data": {"n": -1}})
        assert first_broken(entries).seq == i + 1
    elif how == "delete":
        del entries[i]
        broken = first_broken(entries)
        assert broken is not None and broken.seq == i + 1 or (i == 19 and broken is None)
    else:  # altered and re-hashed: the next record's link breaks
        forged = Entry(**{**entries[i].__dict__, "data": {"n": -1}, "hash": ""})
        entries[i] = Entry(**{**forged.__dict__, "hash": entry_hash(forged)})
        broken = first_broken(entries)
        assert (broken is None and i == 19) or (broken.seq == i + 2 and broken.reason == "link")
