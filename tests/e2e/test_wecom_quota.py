"""WeCom's daily quota (licensed accounts x 200 messages a day) counted by the dispatcher: the
messages over it wait for the next day (China time), none is lost or sent twice, the admins are
told once a day, and two dispatchers (two instances) share one count."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.dispatcher import Dispatcher
from core.ratelimit import RateLimiter
from models.alerts import Alert
from models.messaging import Outbox, OutboxStatus
from services.quota import china_day, next_day_starts, used
from tests.e2e.test_wecom_dispatch import fan_out, received
from tests.e2e.wecom_harness import wecom_spine


def dispatcher(s, daily: int) -> Dispatcher:
    return Dispatcher(
        s.rt.channels, clock=s.clock, limits={"wecom": RateLimiter(None, None)}, quotas={"wecom": daily}, concurrency=8
    )


async def test_messages_over_the_daily_quota_wait_for_the_next_day(db):
    async with wecom_spine(db) as s:
        s.clock.set(datetime(2026, 12, 7, 15, 30, tzinfo=UTC))  # 23:30 in China
        await fan_out(s, 10, 60)
        first, second = dispatcher(s, 25), dispatcher(s, 25)  # two instances, one quota
        await first.drain()
        await second.drain()
        day = china_day(s.clock.now())
        assert len(received(s.sim)) == 25 and await used("wecom", day) == 25
        waiting = await Outbox.exclude(status=OutboxStatus.SENT).values_list("status", "last_error", "attempts")
        assert len(waiting) == 35 and set(waiting) == {(OutboxStatus.PENDING, "quota", 0)}  # no attempt used
        due = await Outbox.exclude(status=OutboxStatus.SENT).values_list("next_attempt_at", flat=True)
        assert set(due) == {next_day_starts(s.clock.now())} == {datetime(2026, 12, 7, 16, 0, tzinfo=UTC)}
        alerts = await Alert.filter(kind="alert_quota").values_list("key", "context")
        assert alerts == [(f"quota:wecom:{day}", {"channel": "wecom", "quota": 25, "day": "2026-12-07"})]

        s.clock.set(datetime(2026, 12, 7, 16, 0, 1, tzinfo=UTC))  # a new day in China
        await second.drain()
        await first.drain()
        assert len(received(s.sim)) == 50
        s.clock.advance(timedelta(days=1))
        await first.drain()
        counts = received(s.sim)
        assert len(counts) == 60 and set(counts.values()) == {1}  # every message once
        assert await Outbox.exclude(status=OutboxStatus.SENT).count() == 0
        assert await Alert.filter(kind="alert_quota").count() == 2  # the first two days ran out


async def test_a_failed_send_gives_its_share_back(db):
    async with wecom_spine(db) as s:
        await fan_out(s, 3, 3)
        s.sim.inject(60020)  # an IP not allowed: refused before counting
        d = dispatcher(s, 3)
        await d.drain()
        s.clock.advance(3600)
        await d.drain()
        assert len(received(s.sim)) == 3
        assert await Outbox.exclude(status=OutboxStatus.SENT).count() == 0
        assert not await Alert.filter(kind="alert_quota").exists()
