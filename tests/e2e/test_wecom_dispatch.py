"""The dispatcher over WeCom: errcodes injected mid fan-out (busy, rate limit, an expired token, an
IP not allowed) retried until every message is sent once; a member who left is held, not retried;
a person bound on WeCom and on Telegram is reached on the newest binding; WeCom's pacing keeps a
fan-out inside the simulator's per-member limit."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

from benchmarks.bench_wecom_fanout import add_wecom_inspectors, context_for
from bot.dispatcher import WECOM_PER_MEMBER, WECOM_RATE, default_limits
from core import db as dbmod
from core.compose import compose
from core.ratelimit import RateLimiter
from core.render import text
from models.alerts import Alert
from models.messaging import Channel, ChatBinding, Outbox, OutboxStatus, RecipientKind, Role, Unreachable
from services.outbox import enqueue_many
from tests.e2e.wecom_harness import wecom_spine


async def fan_out(s, members: int, messages: int, tag: str = "f") -> list:
    pairs = await add_wecom_inspectors(members)
    await enqueue_many(
        ((f"{tag}:{i}", pairs[i % members][0], dbmod.encode(context_for(i))) for i in range(messages)),
        s.clock.now(),
        recipient_kind=RecipientKind.INSPECTOR,
        template="team_changed.j2",
    )
    return pairs


def received(sim) -> Counter:
    return Counter(m["text"] for member in sim.members.values() for m in member.received)


async def drain_until_done(s, rounds: int = 20) -> None:
    for _ in range(rounds):
        await s.deliver()
        if not await Outbox.filter(status__in=[OutboxStatus.PENDING, OutboxStatus.SENDING]).exists():
            return
        s.clock.advance(3600)  # past any backoff


async def test_errcodes_mid_fan_out_are_retried_and_nothing_is_sent_twice(db):
    async with wecom_spine(db) as s:
        await fan_out(s, 20, 60)
        await s.channel.token()
        for fault in (-1, 45009, 42001, 60020, -1, 45009, "disconnect"):
            s.sim.inject(fault)
        await drain_until_done(s)
        rows = await Outbox.all().values_list("status", "channel", "attempts")
        assert {(st, ch) for st, ch, _ in rows} == {(OutboxStatus.SENT, Channel.WECOM)}
        assert sum(a - 1 for _, _, a in rows) == 6  # one more attempt per fault but 42001 (renewed in the call)
        counts = received(s.sim)
        assert len(counts) == 60 and set(counts.values()) == {1}
        assert s.channel.token_fetches == 2  # 42001: renewed once, the call made again


async def test_a_member_who_left_is_held_not_retried(db):
    async with wecom_spine(db) as s:
        (iid, userid), *_ = await fan_out(s, 3, 6)
        s.sim.member(userid).state = "invalid"
        await drain_until_done(s)
        mine = await Outbox.filter(recipient_id=iid).values_list("status", flat=True)
        assert set(mine) == {OutboxStatus.HELD}
        assert await Unreachable.filter(channel=Channel.WECOM, address=userid).exists()
        others = await Outbox.exclude(recipient_id=iid).values_list("status", flat=True)
        assert set(others) == {OutboxStatus.SENT}
        # the coordinators are told in WeCom's terms, whatever channel they read it on: no "bot never started"
        alert = await Alert.get(kind="alert_unreachable")
        assert alert.context["via"] == "wecom"
        for reader in ("telegram", "wecom"):
            told = compose("alert_unreachable.j2", alert.context, "zh-CN", "c", channel=reader).text
            assert "企业微信中没有这个账号" in told and "启动机器人" not in told and "本应用" in told, told
            listed = text("alert_summary", "zh-CN", kind="alert_unreachable", c=alert.context)
            assert "企业微信中没有这个账号" in listed, listed
        s.sim.member(userid).state = "ok"  # back: any event of theirs clears the mark
        assert await s.sim.text(userid, "/tasks") == 200
        back = await Alert.get(kind="alert_reachable")
        told = compose("alert_reachable.j2", back.context, "zh-CN", "c", channel="telegram").text
        assert "收到本应用的消息" in told, told


async def test_the_newest_chat_binding_wins(db):
    async with wecom_spine(db) as s:
        (iid, userid), *_ = await fan_out(s, 1, 1)
        await ChatBinding.create(channel=Channel.TELEGRAM, address="424242", role=Role.INSPECTOR, inspector_id=iid)
        await s.deliver()  # the newest binding is on Telegram, which this deployment does not run
        assert (await Outbox.get(dedupe_key="f:0")).last_error == "no_channel"
        await ChatBinding.filter(channel=Channel.TELEGRAM).update(revoked_at=s.clock.now())
        s.clock.advance(60)
        await s.deliver()
        row = await Outbox.get(dedupe_key="f:0")
        assert (row.status, row.channel) == (OutboxStatus.SENT, Channel.WECOM)


async def test_pacing_holds_the_member_limit(db):
    # the simulator's member limit scaled to 3 a second; the dispatcher's pacing to match (0.4 s apart)
    async with wecom_spine(db, enforce_limits=True, per_member=((1.0, 3),), limiter=RateLimiter(WECOM_RATE, 0.4)) as s:
        await fan_out(s, 2, 12)
        for _ in range(200):
            await s.deliver()
            if await Outbox.filter(status=OutboxStatus.SENT).count() == 12:
                break
            s.clock.advance(timedelta(seconds=1))
            await __import__("asyncio").sleep(0.05)
        assert await Outbox.filter(status=OutboxStatus.SENT).count() == 12
        assert s.sim.limit_errors == 0


def test_default_wecom_pacing_is_inside_the_published_limits():
    limiter = default_limits()["wecom"]
    assert limiter.rate == WECOM_RATE and limiter.per_address == WECOM_PER_MEMBER
    assert WECOM_RATE * 60 <= 10_000 and WECOM_RATE * 3600 <= 150_000  # per corp and API
    assert 60 / WECOM_PER_MEMBER * 2 <= 30 and 3600 / WECOM_PER_MEMBER <= 1000  # per member, two requests a message
