"""Scheduler fires on ``scheduler_fire``: a fire's key claimed in the same transaction as its
work (so it runs once across instances), a missed fire recorded, the keys already fired.

A second instance sharing the PostgreSQL database blocks on the unique index until the first
commits, then finds the key taken and skips; if the first fails and rolls back, the key is free
again. (A unique row rather than an advisory lock: it also leaves a record of every fire.)
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime

from tortoise.transactions import in_transaction

from core import db
from models.scheduling import Fire

log = logging.getLogger("inspectbot.scheduler")

_INSERT_SQL = (
    "INSERT INTO scheduler_fire (key, kind, scheduled_for, fired_at, outcome, detail, instance) "
    "VALUES ({}) ON CONFLICT DO NOTHING RETURNING id"
)


async def run_once(
    key: str,
    kind: str,
    scheduled_for: datetime,
    work: Callable[[], Awaitable[str]],
    *,
    now: datetime,
    instance: str,
) -> str | None:
    """Run ``work`` under fire ``key`` unless another instance (or an earlier run) has it.
    Returns the outcome, or None if the key was taken."""
    async with in_transaction() as conn:
        rows = await conn.execute_query_dict(
            _INSERT_SQL.format(db.placeholders(7)), [key, kind, scheduled_for, now, "", "", instance]
        )
        if not rows:
            return None
        outcome = await work()
        q = db.placeholders(2).split(", ")
        await conn.execute_query(
            f"UPDATE scheduler_fire SET outcome={q[0]} WHERE id={q[1]}", [outcome[:64], rows[0]["id"]]
        )
    log.info("fire %s -> %s", key, outcome)
    return outcome


async def record_missed(key: str, kind: str, scheduled_for: datetime, *, now: datetime, instance: str) -> bool:
    """Record a fire found missed (never run late). True if this call recorded it."""
    rows = await db.conn().execute_query_dict(
        _INSERT_SQL.format(db.placeholders(7)),
        [key, kind, scheduled_for, now, "missed", "older than the grace period", instance],
    )
    if rows:
        log.warning("fire %s missed (due %s) and not run: older than the grace period", key, scheduled_for)
    return bool(rows)


async def fired(keys: Iterable[str]) -> set[str]:
    """Which of ``keys`` have a fire row (run, running elsewhere, or recorded missed)."""
    return set(await Fire.filter(key__in=list(keys)).values_list("key", flat=True))
