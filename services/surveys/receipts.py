"""SMS delivery receipts: the outbox row records the outcome; an undelivered survey invitation
falls back to Telegram polls if the entity linked a chat, else the survey is undeliverable.

A receipt is never dropped. A gateway may post it before the dispatcher has stored the
provider's message id of the send it answers (Twilio's ``sid``, Aliyun's ``BizId``: the status
callback can overtake the 201); such a receipt is kept in ``waiting_receipt`` (its event is in
``inbound_event`` with the outcome ``delivery_waiting``) and applied by :func:`apply_recorded`
as soon as the dispatcher's transaction that records the id has committed (bot/dispatcher.py).
On PostgreSQL the two meet under one advisory lock (:data:`LOCK_KEY`): a receipt that finds no
row takes it exclusively and looks again; the dispatcher's outcome writer takes it shared before
recording ids and holds it to its commit, so either the receipt sees the id or its wait is
committed before the writer's and :func:`apply_recorded` finds it. The ``receipts`` sweep
(:func:`sweep_receipts`) applies what is left waiting for a row that has its id by now, and
expires a receipt still unmatched after :data:`WAIT` (logged, counted as ``delivery_expired``).

Lock order (PostgreSQL; docs/messaging.md, "Lock order around receipts"): the survey of an
invitation, then its outbox row, then the receipts waiting for that row's id, then what is
written (outbox rows, alerts, inbound events). The writer holding the advisory lock takes no
lock but its own claimed outbox rows: it never waits for a survey, so an inbound batch that
holds one while one of its events waits for the advisory lock cannot close a cycle with it.

Telegram poll answers that come before their poll's id is stored wait the same way, in the same
table, and are applied by the same calls (services/surveys/waiting.py, services/surveys/replies.py).

Duplicates and order: a receipt retried by the gateway is the same inbound event (its key) and
is applied once; statuses other than delivered/undelivered/failed change nothing; a later
undelivered/failed never overwrites ``delivered``; a receipt that finds its row applies the
receipts still waiting for it first (they came first).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from datetime import datetime, tzinfo

from core import db
from core.clock import utc as _utc
from core.db import transaction as _transaction
from domain.surveys import SHANGHAI
from models.messaging import Channel, Outbox, OutboxStatus, WaitingReceipt
from models.surveys import Survey, SurveyStatus
from services.surveys import replies
from services.surveys.enter import _start
from services.surveys.shared import OPEN, _telegram_binding
from services.surveys.waiting import LOCK_KEY, POLL_ANSWER, WAIT, hold, lock_for_sends, lock_unmatched

log = logging.getLogger(__name__)

_INVITE = re.compile(r"survey:(\d+):invite")
#: The statuses that change an outbox row; any other (queued, sent, …) is only recorded.
FINAL = frozenset({"delivered", "undelivered", "failed"})
#: The channels whose sends get receipts (WeCom and Telegram have none).
RECEIPT_CHANNELS = frozenset({Channel.SMS.value})
SWEEP_BATCH = 500
__all__ = [
    "LOCK_KEY",
    "WAIT",
    "apply_recorded",
    "apply_waiting",
    "awaited",
    "delivery_status",
    "lock_for_sends",
    "sweep_receipts",
]


def awaited(channel: str, dedupe_key: str) -> bool:
    """Whether an inbound event may name this send's provider id before it is recorded: an SMS
    (its delivery receipts) or a Telegram survey poll (its answers). The dispatcher records such
    an id under :func:`lock_for_sends` and then calls :func:`apply_recorded`."""
    return channel in RECEIPT_CHANNELS or (channel == Channel.TELEGRAM.value and replies.is_poll_key(dedupe_key))


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
            if await lock_unmatched(conn):  # a send recording this id now commits before we look again
                row = await _row(channel, provider_id, conn)
            if row is None:
                await hold(channel, provider_id, ref, now, conn, status=status, error_code=error_code)
                return "delivery_waiting"
        if row is None:
            return "delivery_unknown"
        earlier = WaitingReceipt.filter(channel=Channel(channel), provider_id=provider_id).using_db(conn)
        if await earlier.exists() and await apply_waiting([(channel, provider_id)], now, conn, zone=zone):
            await row.refresh_from_db(using_db=conn)  # as they left it (locked: nobody else changed it)
        return await _apply(row, status, error_code, now, now, zone, conn)


async def _row(channel: str, provider_id: str, conn) -> Outbox | None:
    """The outbox row with this provider id, locked; a survey invitation's survey is locked first
    (the lock order, see the module's doc)."""
    q = Outbox.filter(channel=Channel(channel), provider_id=provider_id).using_db(conn)
    keys = await q.values_list("dedupe_key", flat=True)
    if not keys:
        return None
    for key in keys:
        invite = _INVITE.fullmatch(key)
        if invite is not None:
            await Survey.filter(id=int(invite[1])).using_db(conn).select_for_update().first()
    return await q.select_for_update().first()


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


async def apply_waiting(sent: Iterable[tuple[str, str]], now: datetime, conn, *, zone: tzinfo = SHANGHAI) -> int:
    """Apply, in the caller's transaction, the receipts and poll answers waiting for the
    ``(channel, provider id)`` sends (recorded, committed or in this transaction), in the order
    they arrived, each dated when it arrived; returns how many. One that fails is rolled back
    alone and keeps waiting (the sweep tries again).

    Take one id per transaction where it can wait for locks (:func:`apply_recorded`, the sweep):
    each id's locks (its survey, its row, its waiting receipts) are then taken in the one order."""
    applied = 0
    for channel, ids in _by_channel(sent).items():
        if channel in RECEIPT_CHANNELS:  # the lock order: the survey and the row before the receipts
            for provider_id in sorted(ids):
                await _row(channel, provider_id, conn)
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


def _by_channel(sent: Iterable[tuple[str, str]]) -> dict[str, set[str]]:
    """``(channel, provider id)`` pairs as channel -> ids, without empty ids."""
    wanted: dict[str, set[str]] = {}
    for channel, provider_id in sent:
        if provider_id:
            wanted.setdefault(channel, set()).add(provider_id)
    return wanted


async def _apply_waiting(receipt: WaitingReceipt, now: datetime, zone: tzinfo, conn) -> str:
    if receipt.status == POLL_ANSWER:  # whatever it finds (an answer to a poll in another chat: unknown) is final
        outcome = await replies.apply_poll_answer(
            receipt.address,
            receipt.provider_id,
            list(receipt.options),
            receipt.received_at,
            zone,
            conn,
            ref=f"{receipt.channel.value}:{receipt.event_key}",  # as handlers/surveys.py names the event
        )
        await _settle(receipt, outcome, conn)
        return outcome
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


async def apply_recorded(sent: Iterable[tuple[str, str]], now: datetime, *, zone: tzinfo = SHANGHAI) -> int:
    """After the dispatcher's transaction that recorded these ``(channel, provider id)`` sends
    has committed: apply what waits for them, each id in a transaction of its own (no other lock
    held, so it may wait for a survey without closing a cycle); returns how many. Never raises: a
    failure is logged and what it could not apply keeps waiting for the ``receipts`` sweep."""
    wanted = _by_channel(sent)
    pairs: list[tuple[str, str]] = []
    try:
        for channel, ids in sorted(wanted.items()):
            found = await WaitingReceipt.filter(channel=Channel(channel), provider_id__in=sorted(ids)).values_list(
                "provider_id", flat=True
            )
            pairs += [(channel, provider_id) for provider_id in sorted(set(found))]
    except Exception:
        log.exception(
            "the receipts waiting for %d recorded send(s) were not looked up; the sweep applies them",
            sum(map(len, wanted.values())),
        )
        return 0
    return await _apply_each(pairs, _utc(now), zone)


async def _apply_each(pairs: Iterable[tuple[str, str]], now: datetime, zone: tzinfo) -> int:
    """:func:`apply_waiting` for each ``(channel, provider id)`` in a transaction of its own."""
    applied = 0
    for channel, provider_id in pairs:
        try:
            async with _transaction() as conn:
                applied += await apply_waiting([(channel, provider_id)], now, conn, zone=zone)
        except Exception:
            log.exception("%s receipts waiting for %s could not be applied; they keep waiting", channel, provider_id)
    return applied


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
    done["applied"] += await _apply_each([(r["channel"], r["provider_id"]) for r in matched], now, zone)
    old = await WaitingReceipt.filter(received_at__lt=now - WAIT).order_by("id").limit(batch)
    for receipt in old:
        async with _transaction() as conn:
            if await WaitingReceipt.filter(id=receipt.id).using_db(conn).select_for_update().exists():
                expired = "survey_poll_expired" if receipt.status == POLL_ANSWER else "delivery_expired"
                await _settle(receipt, expired, conn)
                done["expired"] += 1
    if done["expired"]:
        log.warning(
            "%d delivery receipt(s) / poll answer(s) matched no send within %s and were expired", done["expired"], WAIT
        )
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
