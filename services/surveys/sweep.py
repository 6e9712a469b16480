"""What time does to surveys (the scheduler's ``surveys`` sweep calls :func:`run_sweep`):
reminders after 48 h in allowed hours, expiry after 7 days (``tick``), dead first messages."""

from __future__ import annotations

from datetime import datetime, tzinfo

from tortoise.expressions import Q
from tortoise.transactions import in_transaction

from core import db
from core.clock import utc as _utc
from domain.surveys import SHANGHAI, is_quiet, tick
from models.messaging import Channel
from models.surveys import Survey, SurveyStatus
from services.surveys.enter import _start
from services.surveys.receipts import _undelivered
from services.surveys.shared import OPEN, _apply, state_of

SWEEP_BATCH = 500


async def _dead_invites(limit: int) -> list[int]:
    """Open SMS surveys whose invitation the dispatcher gave up on (a permanent send error)."""
    sql = (
        "SELECT s.id FROM survey s JOIN outbox o ON o.dedupe_key = ('survey:' || CAST(s.id AS TEXT) || ':invite') "
        f"WHERE s.channel = 'sms' AND s.status IN ('pending', 'sent') AND o.status = 'dead' "
        f"ORDER BY s.id LIMIT {int(limit)}"
    )
    return [r["id"] for r in await db.conn().execute_query_dict(sql)]


async def _tick_one(survey_id: int, now: datetime, zone: tzinfo) -> bool:
    async with in_transaction() as conn:
        row = await Survey.filter(id=survey_id, status__in=list(OPEN)).using_db(conn).select_for_update().first()
        if row is None or row.sent_at is None:
            return False
        state = state_of(row)
        new, actions = tick(state, now, zone)
        if new == state and not actions:
            return False
        await _apply(row, new, actions, now, zone, conn, "tick")
        return True


async def run_sweep(now: datetime, *, zone: tzinfo = SHANGHAI, batch: int = SWEEP_BATCH) -> dict[str, int]:
    """Everything time does to surveys; idempotent (it reads the state it changes)."""
    now = _utc(now)
    done = {"sent": 0, "fallback": 0, "started": 0, "ticked": 0}
    done["sent"] = await Survey.filter(status=SurveyStatus.PENDING, sent_at__lte=now).update(status=SurveyStatus.SENT)
    for sid in await _dead_invites(batch):
        async with in_transaction() as conn:
            done["fallback"] += (await _undelivered(sid, now, zone, conn)) != "undelivered"
    # Telegram surveys an older version left waiting for another survey's polls: start them
    waiting = await (
        Survey.filter(channel=Channel.TELEGRAM, status=SurveyStatus.PENDING, sent_at=None)
        .order_by("id")
        .limit(batch)
        .values_list("id", flat=True)
    )
    for sid in waiting:
        async with in_transaction() as conn:
            row = await (
                Survey.filter(id=sid, status=SurveyStatus.PENDING, sent_at=None)
                .using_db(conn)
                .select_for_update()
                .first()
            )
            if row is not None:
                await _start(row, now, zone, conn)
                done["started"] += 1
    due = Q(expires_at__lte=now)
    if not is_quiet(now, zone):
        due |= Q(reminded_at=None, reminder_at__lte=now)
    ids = await (
        Survey.filter(due, status__in=list(OPEN), sent_at__not_isnull=True)
        .order_by("id")
        .limit(batch)
        .values_list("id", flat=True)
    )
    for sid in ids:
        done["ticked"] += await _tick_one(sid, now, zone)
    return done
