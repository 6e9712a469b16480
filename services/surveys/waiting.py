"""Inbound events that name a provider id no outbox row has yet: they wait in
``waiting_receipt`` until the dispatcher records that id, and are applied right after that
commit (services/surveys/receipts.py, :func:`~services.surveys.receipts.apply_recorded`).

Two kinds wait here: SMS delivery receipts (the gateway's status callback can overtake the
201 that carries the message id) and Telegram poll answers (an entity may vote before the
dispatcher has stored the poll's id; status :data:`POLL_ANSWER`). On PostgreSQL an event that
finds no row and the outcome writer that records ids meet under one advisory lock
(:data:`LOCK_KEY`): the event takes it exclusively (:func:`lock_unmatched`) and looks again, the
writer takes it shared (:func:`lock_for_sends`) before recording and holds it to its commit, so
either the event sees the id or its wait is committed before the writer looks for waits. The
writer locks nothing else under it but its own claimed rows (the lock order: docs/messaging.md,
"Lock order around receipts"). SQLite has one connection: no race.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta

from core import db

log = logging.getLogger(__name__)

#: How long an event waits for its send's id before the ``receipts`` sweep expires it.
WAIT = timedelta(days=3)
#: pg_advisory_xact_lock key: an unmatched event (exclusive) against recorded sends (shared).
LOCK_KEY = 7_346_012
#: The ``status`` of a waiting Telegram poll answer (a receipt's is its delivery status).
POLL_ANSWER = "poll_answer"

_HOLD = (
    "INSERT INTO waiting_receipt (channel, provider_id, event_key, status, error_code, address, options, "
    "received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
)


async def lock_unmatched(conn) -> bool:
    """An event found no row with its id: on PostgreSQL wait for a send recording ids now to
    commit (True: look again); on SQLite nothing can be under way (False)."""
    if conn.capabilities.dialect != "postgres":
        return False
    await conn.execute_query(f"SELECT pg_advisory_xact_lock({LOCK_KEY})")
    return True


async def lock_for_sends(conn) -> None:
    """Before recording provider ids (the dispatcher's outcome writer): waits for an event that
    found no row to commit its wait, so ``apply_recorded`` after the writer's commit sees it
    (PostgreSQL only). Under it the writer must wait for no lock another transaction may hold
    while asking for this one: it updates only its own claimed outbox rows."""
    if conn.capabilities.dialect == "postgres":
        await conn.execute_query(f"SELECT pg_advisory_xact_lock_shared({LOCK_KEY})")


async def hold(
    channel: str,
    provider_id: str,
    event_key: str,
    now: datetime,
    conn,
    *,
    status: str,
    error_code: str = "",
    address: str = "",
    options: Iterable[int] = (),
) -> None:
    """Keep the event (``event_key``: its inbound_event.external_id) until ``provider_id`` is
    recorded; the same event kept twice is stored once."""
    log.info("%s %s %s: no send has id %s yet; it waits for it", channel, status, event_key, provider_id)
    await conn.execute_query(
        db.sql(_HOLD, connection=conn),
        [channel, provider_id, event_key, status, error_code[:32], address, db.encode(list(options)), now],
    )
