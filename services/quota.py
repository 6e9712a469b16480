"""A channel's daily message quota, shared by every instance's dispatcher.

WeCom lets an application send at most (licensed accounts x 200) messages a day, counted in
person-times (docs/messaging.md). A dispatcher reserves a chunk of the day's quota in one
statement and spends it in memory (:class:`DailyQuota`), so the count costs one write per chunk,
not per message; what an instance had reserved when it died is not given back (the count errs
on the safe side). A day is a calendar day in China (UTC+8), when WeCom's counters start again."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from core import db
from services.alerts import raise_alert

CHINA = timedelta(hours=8)

_OPEN = (
    'INSERT INTO "channel_quota" ("channel", "day", "used", "last_grant") VALUES (?, ?, 0, 0) ON CONFLICT DO NOTHING'
)
# Every SET expression reads the row as it was: last_grant is what this statement added.
_GRANT = "CASE WHEN ? - used >= ? THEN ? WHEN ? - used > 0 THEN ? - used ELSE 0 END"
_RESERVE = (
    f'UPDATE "channel_quota" SET last_grant = {_GRANT}, used = used + {_GRANT} '
    'WHERE "channel"=? AND "day"=? RETURNING last_grant'
)


def china_day(now: datetime) -> str:
    return (now.astimezone(UTC) + CHINA).date().isoformat()


def next_day_starts(now: datetime) -> datetime:
    """The UTC instant the next China calendar day starts (when a held message is due again)."""
    local = now.astimezone(UTC) + CHINA
    return datetime(local.year, local.month, local.day, tzinfo=UTC) + timedelta(days=1) - CHINA


async def reserve(channel: str, day: str, wanted: int, daily: int) -> int:
    """Up to ``wanted`` more of ``channel``'s ``day``: how many the quota still had (0 when spent)."""
    conn = db.conn()
    await conn.execute_query(db.sql(_OPEN), [channel, day])
    grant = [daily, wanted, wanted, daily, daily]
    rows = await conn.execute_query_dict(db.sql(_RESERVE), [*grant, *grant, channel, day])
    return int(rows[0]["last_grant"]) if rows else 0


async def used(channel: str, day: str) -> int:
    rows = await db.conn().execute_query_dict(
        db.sql('SELECT used FROM "channel_quota" WHERE "channel"=? AND "day"=?'), [channel, day]
    )
    return int(rows[0]["used"]) if rows else 0


class DailyQuota:
    """One dispatcher's share of a channel's daily quota: reserved ``chunk`` at a time."""

    def __init__(self, channel: str, daily: int, chunk: int = 64) -> None:
        self.channel, self.daily, self.chunk = channel, daily, chunk
        self._day = ""
        self._left = 0
        self._lock = asyncio.Lock()

    async def take(self, now: datetime) -> bool:
        """One message's share of today's quota; False when the day's quota is spent."""
        day = china_day(now)
        if day != self._day:
            self._day, self._left = day, 0
        if self._left == 0:
            async with self._lock:
                if self._left == 0 and self._day == day:
                    self._left = await reserve(self.channel, day, self.chunk, self.daily)
        if self._left > 0 and self._day == day:
            self._left -= 1
            return True
        return False

    def give_back(self, now: datetime) -> None:
        """A message that was not sent after all: its share serves the next one (the same day)."""
        if china_day(now) == self._day:
            self._left += 1


async def alert_quota_spent(channel: str, daily: int, now: datetime) -> bool:
    """Tell the admins (once a day) that the day's quota is spent and the rest waits."""
    day = china_day(now)
    context = {"channel": channel, "quota": daily, "day": day}
    return await raise_alert(f"quota:{channel}:{day}", "alert_quota.j2", context, set(), now)
