"""Append to and check the audit chain. Appends run inside the caller's transaction."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from core import db
from domain.audit import GENESIS, Break, ChainCheck, Entry, entry_hash
from models.audit import AuditRecord

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
