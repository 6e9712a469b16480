"""Append to and check the audit chain. Appends run inside the caller's transaction.

The chain alone cannot show that its newest records were deleted: its head is anchored outside
the table. :func:`checkpoint` records the head (``audit_checkpoint``) at every draw and once a
day (:func:`daily_checkpoint`, a sweep); :func:`sync_checkpoint_file` appends every checkpoint to
a file under the data directory; each draw carries the head in its row and its draw.json
(``audit_head``), and the public pages show it. :func:`verify_anchored` compares the table with
every anchor it is given or can find.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from pathlib import Path

from tortoise.transactions import in_transaction

from core import db
from domain.audit import (
    GENESIS,
    Break,
    ChainCheck,
    Checkpoint,
    Entry,
    FileState,
    Mismatch,
    checkpoint_line,
    compare,
    compare_file,
    entry_hash,
    file_chain,
    parse_checkpoint_lines,
)
from models.audit import AuditCheckpoint, AuditFileState, AuditRecord
from models.draws import Draw

CHECKPOINT_FILE = Path("audit") / "checkpoints.tsv"  # under the data directory, append-only
DISCLOSURE_EXPORTED = "disclosure.exported"  # the audit disclosure of a draw left the system

LOCK_KEY = 7_346_011  # pg_advisory_xact_lock key serialising appends across instances


async def append(actor: str, action: str, subject: str, data: dict, now: datetime, connection=None) -> Entry:
    """Add one record after the current last one.

    On PostgreSQL a transaction-scoped advisory lock serialises appenders (released at commit);
    SQLite has one writer. The unique ``prev_hash`` would refuse a fork even without the lock."""
    conn = connection or db.conn()
    if db.dialect() == "postgres":
        await conn.execute_query(f"SELECT pg_advisory_xact_lock({LOCK_KEY})")
    last = await conn.execute_query_dict("SELECT seq, hash FROM audit_record ORDER BY seq DESC LIMIT 1")
    seq, prev = (last[0]["seq"] + 1, last[0]["hash"]) if last else (1, GENESIS)
    at = now.astimezone(UTC).isoformat(timespec="microseconds")
    entry = Entry(seq, at, actor, action, subject, _plain(data), prev)
    entry = Entry(**{**entry.__dict__, "hash": entry_hash(entry)})
    await db.bulk_insert(
        "audit_record",
        ("seq", "at", "actor", "action", "subject", "data", "prev_hash", "hash"),
        [(entry.seq, entry.at, actor, action, subject, entry.data, prev, entry.hash)],
        connection=conn,
    )
    return entry


def _plain(data: dict) -> dict:
    """JSON round trip, so what is hashed is exactly what is stored and read back."""
    return json.loads(json.dumps(data, ensure_ascii=False, default=str))


async def verify(batch: int = 5000) -> tuple[int, Break | None]:
    """Walk the whole chain in batches; return (records that fit, first break or None)."""
    check, after = ChainCheck(), 0
    while True:
        rows = (
            await AuditRecord.filter(seq__gt=after)
            .order_by("seq")
            .limit(batch)
            .values("seq", "at", "actor", "action", "subject", "data", "prev_hash", "hash")
        )
        for r in rows:
            broken = check.feed(Entry(**r))
            if broken is not None:
                return check.count, broken
        if len(rows) < batch:
            return check.count, None
        after = rows[-1]["seq"]


# --- anchors ------------------------------------------------------------------------------------


async def head(connection=None) -> tuple[int, str]:
    """The chain's last ``(seq, hash)``; ``(0, GENESIS)`` while it is empty."""
    conn = connection or db.conn()
    last = await conn.execute_query_dict("SELECT seq, hash FROM audit_record ORDER BY seq DESC LIMIT 1")
    return (last[0]["seq"], last[0]["hash"]) if last else (0, GENESIS)


async def checkpoint(reason: str, now: datetime, connection=None) -> Checkpoint:
    """Record the chain's current head (in the caller's transaction)."""
    conn = connection or db.conn()
    seq, h = await head(conn)
    await AuditCheckpoint.create(seq=seq, head=h, at=now, reason=reason[:80], using_db=conn)
    return Checkpoint(seq, h, now.astimezone(UTC).isoformat(timespec="seconds"), reason[:80])


async def daily_checkpoint(now: datetime, *, zone: tzinfo, data_dir: Path) -> str | None:
    """The sweep: a checkpoint once a (local) day while the chain has records, then every
    checkpoint not yet in the file appended to it. Returns the new checkpoint's reason, if any."""
    made = None
    async with in_transaction() as conn:
        seq, _ = await head(conn)
        latest = await AuditCheckpoint.filter(reason="daily").using_db(conn).order_by("-at").first()
        today = now.astimezone(zone).date()
        if seq and (latest is None or latest.at.astimezone(zone).date() != today):
            made = (await checkpoint("daily", now, conn)).source
    await sync_checkpoint_file(data_dir)
    return made


def checkpoint_path(data_dir: Path) -> Path:
    return Path(data_dir) / CHECKPOINT_FILE


def read_checkpoint_file(data_dir: Path) -> list[Checkpoint]:
    path = checkpoint_path(data_dir)
    try:
        return parse_checkpoint_lines(path.read_text(encoding="utf-8"), "file")
    except FileNotFoundError:
        return []


async def sync_checkpoint_file(data_dir: Path) -> int:
    """Append to the checkpoint file every database checkpoint newer than its last line; return
    how many. The file is only ever appended to (one ``write`` per line, then fsync)."""
    path = checkpoint_path(data_dir)
    known = read_checkpoint_file(data_dir)
    after = max((c.seq for c in known), default=0)
    newer = await AuditCheckpoint.filter(seq__gt=after).order_by("seq", "id")
    if not newer:
        return 0
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        last = None
        for c in newer:
            if c.seq == last:
                continue
            last = c.seq
            at = c.at.astimezone(UTC).isoformat(timespec="seconds")
            os.write(fd, checkpoint_line(Checkpoint(c.seq, c.head, at, c.reason)).encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    # what the file now holds (another instance's lines included: still a prefix of what it will
    # hold), recorded so a deletion, truncation or edit of the file is itself detected
    chain = file_chain(path.read_bytes())
    if chain:
        await AuditFileState.create(lines=len(chain), hash=chain[-1], at=newer[-1].at)
    return len(newer)


async def file_mismatches(data_dir: Path) -> list[Mismatch]:
    """The checkpoint file against every state of it the database recorded (none recorded: none)."""
    states = [
        FileState(r["lines"], r["hash"], r["at"].astimezone(UTC).isoformat(timespec="seconds"))
        for r in await AuditFileState.all().values("lines", "hash", "at")
    ]
    if not states:
        return []
    try:
        data = checkpoint_path(data_dir).read_bytes()
    except FileNotFoundError:
        data = b""
    return compare_file(file_chain(data), states)


async def stored_checkpoints() -> list[Checkpoint]:
    """The anchors kept in the database: the checkpoint table and every draw's head."""
    out = [
        Checkpoint(c["seq"], c["head"], c["at"].astimezone(UTC).isoformat(timespec="seconds"), "db")
        for c in await AuditCheckpoint.all().order_by("seq").values("seq", "head", "at")
    ]
    for d in await Draw.filter(audit_seq__not_isnull=True).values("draw_ref", "audit_seq", "audit_head", "drawn_at"):
        at = d["drawn_at"].astimezone(UTC).isoformat(timespec="seconds")
        out.append(Checkpoint(d["audit_seq"], d["audit_head"], at, f"draw:{d['draw_ref']}"))
    return out


@dataclass(frozen=True)
class Report:
    """What ``audit verify`` found: the chain walked (``count`` records fit, the first ``broken``),
    the table's last record, and every anchor that disagrees."""

    count: int
    broken: Break | None
    last_seq: int
    head: str
    checkpoints: int  # distinct anchors compared
    mismatches: list[Mismatch] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.broken is None and not self.mismatches


async def verify_anchored(extra: Iterable[Checkpoint] = (), *, data_dir: Path | None = None) -> Report:
    """Walk the chain and compare it with every anchor: the database's checkpoints and draws,
    the checkpoint file under ``data_dir``, and ``extra`` (heads from the command line, a bundle)."""
    anchors = [*await stored_checkpoints(), *(read_checkpoint_file(data_dir) if data_dir else []), *extra]
    wanted = {c.seq for c in anchors}
    hashes: dict[int, str] = {}
    count, broken = await verify()
    last_seq, last_hash = await head()
    for chunk in range(0, len(wanted), 1000):
        for r in await AuditRecord.filter(seq__in=sorted(wanted)[chunk : chunk + 1000]).values("seq", "hash"):
            hashes[r["seq"]] = r["hash"]
    mismatches = compare(hashes, count, last_seq, anchors)
    if data_dir is not None:
        mismatches += await file_mismatches(data_dir)
    return Report(count, broken, last_seq, last_hash, len({(c.seq, c.head) for c in anchors}), mismatches)


async def disclosure_exported(actor: str, draw_ref: str, data: dict, now: datetime) -> Entry:
    """Record that a draw's audit disclosure (its classes and salt key) was exported: by whom,
    and ``data`` (e.g. the file's sha256 and where it went). One transaction of its own."""
    async with in_transaction() as conn:
        return await append(actor, DISCLOSURE_EXPORTED, f"draw:{draw_ref}", data, now, conn)
