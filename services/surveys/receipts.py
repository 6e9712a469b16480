"""SMS delivery receipts: the outbox row records the outcome; an undelivered survey invitation
falls back to Telegram polls if the entity linked a chat, else the survey is undeliverable."""

from __future__ import annotations

import re
from datetime import datetime, tzinfo

from core.clock import utc as _utc
from core.db import transaction as _transaction
from domain.surveys import SHANGHAI
from models.messaging import Channel, Outbox, OutboxStatus
from models.surveys import Survey, SurveyStatus
from services.surveys.enter import _start
from services.surveys.shared import OPEN, _telegram_binding

_INVITE = re.compile(r"survey:(\d+):invite")


async def delivery_status(
    provider_id: str,
    status: str,
    error_code: str,
    now: datetime,
    *,
    channel: str = "sms",
    zone: tzinfo = SHANGHAI,
    connection=None,
) -> str:
    """A delivery receipt: record it on the outbox row (matched by the provider's message id);
    an undelivered survey invitation falls back to Telegram or makes the survey undeliverable."""
    now = _utc(now)
    async with _transaction(connection) as conn:
        row = await (
            Outbox.filter(channel=Channel(channel), provider_id=provider_id).using_db(conn).select_for_update().first()
        )
        if row is None:
            return "delivery_unknown"
        if status == "delivered":
            if row.status != OutboxStatus.DELIVERED:
                await Outbox.filter(id=row.id).using_db(conn).update(status=OutboxStatus.DELIVERED, delivered_at=now)
            return "delivered"
        if status not in ("undelivered", "failed"):
            return f"delivery_{status}"[:64]
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
