"""SMS delivery receipts: the outbox row records the outcome; an undelivered survey invitation
falls back to Telegram polls if the entity linked a chat, else the survey is undeliverable.

A receipt is never dropped. A gateway may post it before the dispatcher has stored the
provider's message id of the send it answers (Twilio's ``sid``, Aliyun's ``BizId``: the status
callback can overtake the 201); such a receipt is kept in ``waiting_receipt`` (its event is in
``inbound_event`` with the outcome ``delivery_waiting``) and applied by :func:`apply_waiting`,
which the dispatcher calls in the transaction that records the id (bot/dispatcher.py). On
PostgreSQL the two meet under one advisory lock (:data:`LOCK_KEY`): a receipt that finds no row
takes it exclusively and looks again; the dispatcher's outcome writer takes it shared before
recording ids, so one of them always sees the other's commit. The ``receipts`` sweep
(:func:`sweep_receipts`) applies what is left waiting for a row that has its id by now, and
expires a receipt still unmatched after :data:`WAIT` (logged, counted as ``delivery_expired``).

Duplicates and order: a receipt retried by the gateway is the same inbound event (its key) and
is applied once; statuses other than delivered/undelivered/failed change nothing; a later
undelivered/failed never overwrites ``delivered``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from datetime import datetime, timedelta, tzinfo

from core import db
from core.clock import utc as _utc
from core.db import transaction as _transaction
from domain.surveys import SHANGHAI
from models.messaging import Channel, Outbox, OutboxStatus, WaitingReceipt
from models.surveys import Survey, SurveyStatus
from services.surveys.enter import _start
from services.surveys.shared import OPEN, _telegram_binding

log = logging.getLogger(__name__)

_INVITE = re.compile(r"survey:(\d+):invite")
#: The statuses that change an outbox row; any other (queued, sent, …) is only recorded.
FINAL = frozenset({"delivered", "undelivered", "failed"})
#: The channels whose sends get receipts (WeCom and Telegram have none).
RECEIPT_CHANNELS = frozenset({Channel.SMS.value})
#: How long a receipt waits for its send's id before the sweep expires it.
WAIT = timedelta(days=3)
#: pg_advisory_xact_lock key: an unmatched receipt (exclusive) against recorded sends (shared).
LOCK_KEY = 7_346_012
SWEEP_BATCH = 500


async def delivery_status(
    provider_id: str,
    status: str,
    error_code: str,
    now: datetime,
    *,
    channel: str = "sms",
    zone: tzinfo = SHANGHAI,
    connection=None,
    ref: str = "",
) -> str:
    """A delivery receipt: record it on the outbox row (matched by the provider's message id);
    an undelivered survey invitation falls back to Telegram or makes the survey undeliverable.

    ``ref`` is the receipt's inbound event key: with it, a final status for an id no row has yet
    waits for that row (``delivery_waiting``); without it, such a receipt is ``delivery_unknown``."""
    now = _utc(now)
    if status not in FINAL:
        return f"delivery_{status}"[:64]
    async with _transaction(connection) as conn:
        row = await _row(channel, provider_id, conn)
        if row is None and ref:
            if db.dialect() == "postgres":  # a send recording this id now commits before we look again
                await conn.execute_query(f"SELECT pg_advisory_xact_lock({LOCK_KEY})")
                row = await _row(channel, provider_id, conn)
            if row is None:
                await _wait(channel, provider_id, ref, status, error_code, now, conn)
                return "delivery_waiting"
        if row is None:
            return "delivery_unknown"
        return await _apply(row, status, error_code, now, now, zone, conn)


async def _row(channel: str, provider_id: str, conn) -> Outbox | None:
    return await (
        Outbox.filter(channel=Channel(channel), provider_id=provider_id).using_db(conn).select_for_update().first()
    )


_WAIT = (
    "INSERT INTO waiting_receipt (channel, provider_id, event_key, status, error_code, received_at) "
    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
)


async def _wait(channel: str, provider_id: str, ref: str, status: str, error_code: str, now: datetime, conn) -> None:
    log.info("%s receipt %s: no send has id %s yet; it waits for it", channel, ref, provider_id)
    await conn.execute_query(db.sql(_WAIT, connection=conn), [channel, provider_id, ref, status, error_code[:32], now])


async def _apply(row: Outbox, status: str, error_code: str, at: datetime, now: datetime, zone: tzinfo, conn) -> str:
    """A final status, received ``at``, on its (locked) outbox row; ``now`` for what it starts."""
    if status == "delivered":
        if row.status != OutboxStatus.DELIVERED:
            await Outbox.filter(id=row.id).using_db(conn).update(status=OutboxStatus.DELIVERED, delivered_at=at)
        return "delivered"
    if row.status == OutboxStatus.DELIVERED:
        return "delivery_after_delivered"
    await (
        Outbox.filter(id=row.id)
        .using_db(conn)
        .update(status=OutboxStatus.DEAD, last_error=f"{status}:{error_code}"[:255])
    )
    invite = _INVITE.fullmatch(row.dedupe_key)
    if invite is None:
        return "undelivered"
    return await _undelivered(int(invite[1]), now, zone, conn)


async def lock_for_sends(conn) -> None:
    """Before recording provider ids (the dispatcher's outcome writer): waits for a receipt that
    found no row to commit its wait, so :func:`apply_waiting` then sees it (PostgreSQL only)."""
    if conn.capabilities.dialect == "postgres":
        await conn.execute_query(f"SELECT pg_advisory_xact_lock_shared({LOCK_KEY})")


async def apply_waiting(sent: Iterable[tuple[str, str]], now: datetime, conn, *, zone: tzinfo = SHANGHAI) -> int:
    """Apply the receipts waiting for the ``(channel, provider id)`` sends just recorded, in the
    order they arrived, each dated when it arrived; returns how many. One that fails is rolled
    back alone and keeps waiting (the sweep tries again); the sends are recorded regardless."""
    wanted: dict[str, set[str]] = {}
    for channel, provider_id in sent:
        if channel in RECEIPT_CHANNELS and provider_id:
            wanted.setdefault(channel, set()).add(provider_id)
    applied = 0
    for channel, ids in wanted.items():
        waiting = await (
            WaitingReceipt.filter(channel=Channel(channel), provider_id__in=sorted(ids))
            .using_db(conn)
            .order_by("id")
            .select_for_update()
        )
        for i, receipt in enumerate(waiting):
            await conn.execute_query(f"SAVEPOINT receipt_{i}")
            try:
                outcome = await _apply_waiting(receipt, _utc(now), zone, conn)
            except Exception:
                log.exception("%s receipt %s could not be applied; it keeps waiting", channel, receipt.event_key)
                await conn.execute_query(f"ROLLBACK TO SAVEPOINT receipt_{i}")
            else:
                applied += 1
                log.info("%s receipt %s applied once its send was recorded: %s", channel, receipt.event_key, outcome)
            await conn.execute_query(f"RELEASE SAVEPOINT receipt_{i}")
    return applied


async def _apply_waiting(receipt: WaitingReceipt, now: datetime, zone: tzinfo, conn) -> str:
    row = await _row(receipt.channel.value, receipt.provider_id, conn)
    if row is None:
        raise LookupError(f"no outbox row has {receipt.channel.value} id {receipt.provider_id}")
    outcome = await _apply(row, receipt.status, receipt.error_code, receipt.received_at, now, zone, conn)
    await _settle(receipt, outcome, conn)
    return outcome


async def _settle(receipt: WaitingReceipt, outcome: str, conn) -> None:
    """The receipt waits no more: its inbound event says what became of it."""
    await WaitingReceipt.filter(id=receipt.id).using_db(conn).delete()
    q = db.placeholders(3, connection=conn).split(", ")
    await conn.execute_query(
        f"UPDATE inbound_event SET outcome={q[0]} WHERE channel={q[1]} AND external_id={q[2]}",
        [outcome[:64], receipt.channel.value, receipt.event_key],
    )


async def sweep_receipts(now: datetime, *, zone: tzinfo = SHANGHAI, batch: int = SWEEP_BATCH) -> dict[str, int]:
    """The ``receipts`` sweep: apply the waiting receipts whose send has its id by now (one whose
    application failed, or that met its send in a way :func:`apply_waiting` missed), then expire
    those older than :data:`WAIT` (logged; their events get the outcome ``delivery_expired``)."""
    now = _utc(now)
    done = {"applied": 0, "expired": 0}
    matched = await db.conn().execute_query_dict(
        "SELECT DISTINCT w.channel, w.provider_id FROM waiting_receipt w JOIN outbox o "
        f"ON o.channel = w.channel AND o.provider_id = w.provider_id LIMIT {int(batch)}"
    )
    for r in matched:
        async with _transaction() as conn:
            done["applied"] += await apply_waiting([(r["channel"], r["provider_id"])], now, conn, zone=zone)
    old = await WaitingReceipt.filter(received_at__lt=now - WAIT).order_by("id").limit(batch)
    for receipt in old:
        async with _transaction() as conn:
            if await WaitingReceipt.filter(id=receipt.id).using_db(conn).select_for_update().exists():
                await _settle(receipt, "delivery_expired", conn)
                done["expired"] += 1
    if done["expired"]:
        log.warning("%d delivery receipt(s) matched no send within %s and were expired", done["expired"], WAIT)
    return done


async def _undelivered(survey_id: int, now: datetime, zone: tzinfo, conn) -> str:
    """The SMS invitation did not arrive: Telegram polls if the entity linked a chat, else give up."""
    row = await Survey.filter(id=survey_id).using_db(conn).select_for_update().first()
    if row is None or row.status not in OPEN or row.channel != Channel.SMS:
        return "undelivered"
    binding = await _telegram_binding(row.entity_id, conn)
    if binding is None:
        row.status, row.completed_at = SurveyStatus.UNDELIVERABLE, now
        await row.save(using_db=conn)
        return "survey_undeliverable"
    row.channel, row.address, row.locale = Channel.TELEGRAM, binding.address, binding.locale
    await _start(row, now, zone, conn)
    return "survey_fallback_telegram"
