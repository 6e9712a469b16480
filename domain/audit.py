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


# --- anchors: the chain's head kept outside the table it protects ----------------------------------

#: The acts that shape a draw, each appended by the service that performs it, whatever the
#: interface (CLI, chat, scheduler). docs/reliability.md lists them with their data.
DRAW_ACTIONS: tuple[str, ...] = (
    "plan.added",
    "plan.changed",
    "plan.retired",
    "firing.announced",
    "firing.withdrawn",
    "draw.drawn",
    "draw.off_schedule",
    "off_schedule.requested",
    "off_schedule.confirmed",
    "off_schedule.declined",
    "off_schedule.expired",
    "off_schedule.failed",
    "disclosure.exported",
    "directory.imported",
    "invite.created",
    "invite.redeemed",
    "binding.revoked",
)


@dataclass(frozen=True)
class Checkpoint:
    """The chain's head as someone saw it: record ``seq`` had hash ``head`` at ``at``."""

    seq: int
    head: str
    at: str = ""  # ISO 8601 UTC; "" when not known (a head typed on the command line)
    source: str = ""  # "db", "file", "draw:<ref>", "bundle", "argument"


@dataclass(frozen=True)
class Mismatch:
    """A checkpoint the table no longer agrees with. ``kind``: "truncated" (the log ends before the
    checkpoint's record: ``last_seq`` < ``checkpoint.seq``) or "rewritten" (the record at that seq
    now has hash ``found``), or "unverified" (the chain breaks before the checkpoint's record)."""

    checkpoint: Checkpoint
    kind: str
    last_seq: int
    found: str = ""


HEX = frozenset("0123456789abcdef")


def parse_head(text: str) -> Checkpoint | None:
    """``SEQ:HASH`` (as the public pages and draw.json show it) as a checkpoint, or None."""
    seq, _, head = text.strip().partition(":")
    head = head.strip().lower()
    if not (seq.isascii() and seq.isdigit() and 0 < len(seq) < 19) or len(head) != 64 or not set(head) <= HEX:
        return None
    if int(seq) == 0:  # the empty chain anchors nothing
        return None
    return Checkpoint(int(seq), head, "", "argument")


def checkpoint_line(c: Checkpoint) -> str:
    """One line of the checkpoint file: ``seq<TAB>head<TAB>at<TAB>reason``, newline-terminated."""
    return f"{c.seq}\t{c.head}\t{c.at}\t{c.source}\n"


def parse_checkpoint_lines(text: str, source: str = "file") -> list[Checkpoint]:
    """The checkpoint file's lines; a line that does not parse (a torn last write) is skipped."""
    out = []
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) < 3:
            continue
        found = parse_head(f"{parts[0]}:{parts[1]}")
        if found is not None:
            out.append(Checkpoint(found.seq, found.head, parts[2], source))
    return out


FILE_GENESIS = "0" * 64


def file_chain(data: bytes) -> list[str]:
    """The hash chain over the checkpoint file's complete lines: element ``i`` is
    ``hex(H(element[i-1] || line_i))`` (``line_i`` with its newline; before the first, 64 zeros).
    A torn last line (no newline) is not counted."""
    out, prev = [], FILE_GENESIS
    for line in data.splitlines(keepends=True):
        if not line.endswith(b"\n"):
            break
        prev = hashlib.sha256(prev.encode() + line).hexdigest()
        out.append(prev)
    return out


@dataclass(frozen=True)
class FileState:
    """The checkpoint file as recorded right after an append: ``lines`` complete lines whose chain
    ends in ``hash`` (``at``: ISO 8601 UTC)."""

    lines: int
    hash: str
    at: str = ""


def compare_file(chain: list[str], states: Iterable[FileState]) -> list[Mismatch]:
    """Each recorded state of the checkpoint file against the file now (its :func:`file_chain`):
    "file_truncated" when the file has fewer lines than were recorded (deleted: none), or
    "file_rewritten" when its first ``lines`` lines no longer hash to the recorded chain."""
    out = []
    for st in sorted(states, key=lambda s: (s.lines, s.at)):
        c = Checkpoint(st.lines, st.hash, st.at, "file")
        if st.lines > len(chain):
            out.append(Mismatch(c, "file_truncated", len(chain)))
        elif st.lines and chain[st.lines - 1] != st.hash:
            out.append(Mismatch(c, "file_rewritten", len(chain), chain[st.lines - 1]))
    return out


def compare(
    hashes: dict[int, str], verified_to: int, last_seq: int, checkpoints: Iterable[Checkpoint]
) -> list[Mismatch]:
    """Each checkpoint against the table: ``hashes`` maps a seq to the hash the table holds there
    (at least for every checkpoint's seq present), ``verified_to`` is the last seq whose chain
    verified from the start, ``last_seq`` the table's last seq. Returns the disagreements, oldest
    checkpoint first; one per anchor (seq, head, source), so each place that disagrees is named."""
    out, seen = [], set()
    for c in sorted(checkpoints, key=lambda c: (c.seq, c.at, c.source)):
        if (c.seq, c.head, c.source) in seen:
            continue
        seen.add((c.seq, c.head, c.source))
        if c.seq > last_seq:
            out.append(Mismatch(c, "truncated", last_seq))
        elif hashes.get(c.seq) != c.head:
            out.append(Mismatch(c, "rewritten", last_seq, hashes.get(c.seq, "")))
        elif c.seq > verified_to:
            out.append(Mismatch(c, "unverified", last_seq, hashes.get(c.seq, "")))
    return out
