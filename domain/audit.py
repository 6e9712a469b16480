"""The audit chain (全过程留痕): each record carries the hash of the one before it.

``hash_n = SHA-256( "inspectbot/audit/v1" || 0x00 || prev_hash_n || 0x00 || canonical(record_n) )``
where ``canonical`` is the record's fields as compact JSON with sorted keys (UTF-8), and the
first record's ``prev_hash`` is 64 zeros. Changing, inserting or deleting any record breaks
every hash after it; :func:`first_broken` names the first record that no longer fits.
Pure: stdlib only.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

GENESIS = "0" * 64
TAG = b"inspectbot/audit/v1"


@dataclass(frozen=True)
class Entry:
    seq: int
    at: str  # ISO 8601, UTC
    actor: str  # "inspector:37020001", "coordinator:12", "system", …
    action: str  # "assignment.accepted", "recusal.recorded", …
    subject: str  # "assignment:123"
    data: dict[str, Any]
    prev_hash: str
    hash: str = ""


def canonical(e: Entry) -> bytes:
    body = {"seq": e.seq, "at": e.at, "actor": e.actor, "action": e.action, "subject": e.subject, "data": e.data}
    return json.dumps(body, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()


def entry_hash(e: Entry) -> str:
    return hashlib.sha256(TAG + b"\x00" + e.prev_hash.encode() + b"\x00" + canonical(e)).hexdigest()


@dataclass(frozen=True)
class Break:
    seq: int
    reason: str  # "hash" (the record was altered), "link" (a record before it is missing or altered), "order"


class ChainCheck:
    """Feed records in ``seq`` order (in as many batches as you like); the first that does not
    fit is returned by :meth:`feed`."""

    def __init__(self) -> None:
        self.prev = GENESIS
        self.expected_seq = 1
        self.count = 0

    def feed(self, e: Entry) -> Break | None:
        if e.seq != self.expected_seq:
            return Break(self.expected_seq if e.seq > self.expected_seq else e.seq, "order")
        if e.prev_hash != self.prev:
            return Break(e.seq, "link")
        if entry_hash(e) != e.hash:
            return Break(e.seq, "hash")
        self.prev, self.expected_seq = e.hash, e.seq + 1
        self.count += 1
        return None


def first_broken(entries: Iterable[Entry]) -> Break | None:
    """Walk the chain in ``seq`` order from its first record; None if every record fits."""
    check = ChainCheck()
    for e in entries:
        broken = check.feed(e)
        if broken is not None:
            return broken
    return None
