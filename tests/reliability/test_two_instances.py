"""Fault 4: two service instances on one PostgreSQL database for a scheduled day.

Two real ``inspectbot serve`` processes (scheduler, dispatcher, webhooks) share one PostgreSQL
database, one Telegram Bot API simulator and one SMS gateway simulator. Both instances are the
webhook of both simulators through a fan-out front that hands every request to both at the same
moment, so each update and each SMS reaches two instances at once. The plans fire on the real
clock a few seconds after the start (cron with seconds): plan P1's draw (announced beforehand)
and plan P2's announcement, at the same second in both processes.

Asserted: both processes ran each fire's job and each fire ran once; every outbox message
reached the simulator exactly once (accepted calls per chat = outbox rows sent to that chat);
every inbound update and SMS, though delivered to both, is one ``inbound_event`` row handled by
one instance, its effects happened once (each assignment accepted once, never "already
accepted": one acceptance reply and one edit per press), and answerCallbackQuery succeeded once
per press (the second instance's answer is refused as already answered).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from datetime import datetime, timedelta

from bot.dispatcher import Dispatcher
from bot.runtime import Runtime
from core import db as dbmod
from core.clock import FakeClock, SystemClock
from core.settings import Settings
from models.draws import Assignment, AssignmentStatus, Draw, Firing
from models.messaging import ChatBinding, InboundEvent, Outbox, RecipientKind, Role
from models.scheduling import Fire
from scheduler import Scheduler
from services import plans
from services.identity import create_invite
from services.outbox import Message, enqueue
from simulators.sms import DEV_ACCOUNT_SID, DEV_AUTH_TOKEN, DEV_NUMBER, SmsSimulator
from simulators.telegram.flood import FloodLimits
from simulators.telegram.simulator import TelegramSimulator, counts_as_message
from tests.conftest import _truncate_all, postgres_url_or_skip
from tests.reliability.procs import FanOut, services, wait_for
from tests.services import draw_world as world

ZONE = world.ZONE
SECRET = "two-instances-webhook-secret"
# Seconds from now to the fires: the processes are up and the inspectors bound by then. Were a
# process late, it would still run the fires once, by its catch-up at start.
LEAD = 11.0
INSPECTORS = 6
PHONE = "+8613800138000"  # not an entity's: its SMS is stored and answers no survey


def plan_at(tmp_path, code: str, when: datetime):
    """A plan whose only fire near now is at ``when`` (local, whole seconds): cron with seconds."""
    path = world.plan_file(tmp_path, code, size=2, a="0.5", b="0.5", c="0.5")
    cron = f"{when.minute} {when.hour} {when.day} {when.month} * {when.second}"
    path.write_text(
        path.read_text(encoding="utf-8").replace('cron = "0 9 1 * *"', f'cron = "{cron}"'), encoding="utf-8"
    )
    return path


async def prepare(tmp_path, settings: Settings) -> datetime:
    """The directory, P1 announced a day before its draw, P2 due to be announced; returns the fire time."""
    await world.build(n_entities=10, n_scjg=INSPECTORS, n_wsj=0)
    fire = (datetime.now(ZONE) + timedelta(seconds=LEAD)).replace(microsecond=0)
    before = FakeClock(fire - timedelta(days=2))
    await plans.add_plan(plan_at(tmp_path, "P1", fire), before)
    before.set(fire - timedelta(days=1) + timedelta(seconds=1))
    ran = await Scheduler(Runtime(settings=settings, clock=before)).run_due()
    assert [k for k in ran if k.startswith(("announce:", "draw:"))] == [f"announce:P1:{fire.isoformat()}"]
    # P2 draws a day later, so its announcement is due at the same second as P1's draw
    await plans.add_plan(plan_at(tmp_path, "P2", fire + timedelta(days=1)), SystemClock())
    return fire


def envs(tg: TelegramSimulator, sms: SmsSimulator, front: FanOut, url: str) -> list[dict]:
    env = {
        "DATABASE_URL": url,
        "TELEGRAM_TOKEN": tg.token,
        "TELEGRAM_API_URL": tg.url,
        "TELEGRAM_MODE": "webhook",
        "TELEGRAM_WEBHOOK_SECRET": SECRET,
        "INSPECTBOT_PUBLIC_URL": front.url,
        "SMS_ACCOUNT_SID": DEV_ACCOUNT_SID,
        "SMS_AUTH_TOKEN": DEV_AUTH_TOKEN,
        "SMS_API_URL": sms.url,
        "SMS_FROM": DEV_NUMBER,
    }
    return [dict(env), dict(env)]


def count_is(query, n: int):
    """A predicate for :func:`wait_for`: the query counts ``n`` rows."""

    async def check() -> bool:
        return await query.count() == n

    return check


async def settled() -> bool:
    """Every message has been sent (none waits, none is claimed)."""
    return not await Outbox.filter(status__in=["pending", "sending"]).exists()


async def addresses_of_sent() -> Counter:
    """Outbox rows the dispatchers marked sent, per Telegram chat."""
    chat_of = dict(
        await ChatBinding.filter(channel="telegram", role=Role.INSPECTOR).values_list("inspector_id", "address")
    )
    rows = await Outbox.filter(channel="telegram", status="sent").values_list(
        "address", "recipient_kind", "recipient_id"
    )
    return Counter(address or chat_of[rid] for address, kind, rid in rows)


async def test_two_instances_on_one_postgresql_for_a_scheduled_day(tmp_path):
    url = postgres_url_or_skip()
    settings = Settings(database_url=url, data_dir=tmp_path)
    await dbmod.init(settings)
    tg = TelegramSimulator(flood=FloodLimits.off())
    sms = SmsSimulator(account_sid=DEV_ACCOUNT_SID, auth_token=DEV_AUTH_TOKEN, numbers=(DEV_NUMBER,))
    try:
        await _truncate_all()
        fire = await prepare(tmp_path, settings)
        await tg.start()
        await sms.start()
        async with contextlib.AsyncExitStack() as stack:
            front = await stack.enter_async_context(FanOut([]))
            sms.inbound_url = front.url + "/sms/inbound"
            procs = await stack.enter_async_context(services(tmp_path, envs(tg, sms, front, url)))
            front.backends = [p.url for p in procs]
            on_time = datetime.now(ZONE) < fire - timedelta(seconds=1)  # both up before the fires

            # Inbound: every inspector binds their chat (/start CODE reaches both instances).
            users = {}
            for cert in [f"S{i:02d}" for i in range(1, INSPECTORS + 1)]:
                user = tg.create_user(f"检查员{cert}")
                code = await create_invite(Role.INSPECTOR, SystemClock(), cert_no=cert)
                tg.send_command(user, "start", code)
                users[str(user.id)] = user
            await wait_for(count_is(ChatBinding.filter(channel="telegram"), INSPECTORS), 10, "every inspector bound")

            # The fires: the draw and the announcement, at the same second in both processes.
            await wait_for(lambda: Draw.filter(firing__plan__code="P1").exists(), LEAD + 10, "P1's draw")
            await wait_for(lambda: Firing.filter(plan__code="P2").exists(), 5, "P2's announcement")
            await wait_for(settled, 20, "every assignment sent")

            # Inbound: each inspector accepts each assignment by its button (both instances get each press).
            presses = Counter()
            for chat, user in users.items():
                for message in tg.messages(user):
                    for data in message.callback_data:
                        if data.startswith("asg:accept:"):
                            tg.press_button(user, message.message_id, data=data)
                            presses[chat] += 1
            assert sum(presses.values()) == await Assignment.all().count() > 0
            sms_reply = await sms.reply(PHONE, "你好")  # an SMS that answers no survey: to both, too
            assert sms_reply.status == 200

            await wait_for(
                count_is(InboundEvent.filter(channel="telegram"), len(tg.updates)), 10, "every update stored"
            )
            await wait_for(
                count_is(Assignment.filter(status=AssignmentStatus.ACCEPTED), sum(presses.values())),
                10,
                "every assignment accepted",
            )
            await wait_for(settled, 20, "every reply sent")
            await wait_for(lambda: tg.pending_update_count == 0, 5, "every update confirmed")
            assert all(p.alive for p in procs)

        # -- each fire ran once --------------------------------------------------------------
        stamp = fire.isoformat()
        fires = await Fire.filter(
            key__in=[f"draw:P1:{stamp}", f"announce:P2:{(fire + timedelta(days=1)).isoformat()}"]
        ).values_list("key", "outcome")
        assert sorted(o for _, o in fires) == ["announced", "drawn"]
        assert await Draw.all().count() == 1 and await Firing.filter(plan__code="P2").count() == 1
        logs = [p.log() for p in procs]
        if on_time:  # both processes' date jobs ran (APScheduler removes a date job once it has run it) ...
            assert all(f"Removed job draw:P1:{stamp}" in log for log in logs)
        # (a process that came up after the fire time runs it in its catch-up at start instead)
        # ... and only one of them drew
        assert sum(log.count(f"draw:P1:{stamp} -> drawn") for log in logs) == 1

        # -- each message reached the simulators exactly once ------------------------------------
        accepted = Counter(
            str(c.params.get("chat_id")) for c in tg.calls if c.status == 200 and counts_as_message(c.method)
        )
        assert accepted == await addresses_of_sent()
        assert sum(accepted.values()) >= INSPECTORS + 3 * sum(presses.values())  # welcomes, assignments, 2 per press

        # -- each inbound event was processed once --------------------------------------------
        for f in front.forwarded:
            assert f.statuses == [200, 200], f  # both instances got it, both answered 200
        telegram = [f for f in front.forwarded if f.path == "/telegram/webhook"]
        assert len(telegram) == len(tg.updates)
        events = await InboundEvent.filter(channel="telegram").values_list("external_id", "outcome")
        assert sorted(int(e) for e, _ in events) == [u["update_id"] for u in tg.updates]
        outcomes = Counter(o for _, o in events)
        assert outcomes["accepted"] == sum(presses.values()) and "already_accepted" not in outcomes
        assert not [o for o in outcomes if o.startswith("failed")]
        for chat, user in users.items():
            assert len(tg.callback_answers(user)) == presses[chat]  # one answer per press: the other was refused
            edits = [
                c
                for c in tg.calls
                if c.method == "editMessageText" and c.status == 200 and str(c.params["chat_id"]) == chat
            ]
            assert len(edits) == presses[chat]
        # the SMS: stored once, handled by one instance; the other saw a duplicate
        assert await InboundEvent.filter(channel="sms").values_list("external_id", flat=True) == [sms_reply.sid]
        handled = [
            line.rsplit("-> ", 1)[1].split('"')[0]
            for log in logs
            for line in log.splitlines()
            if f"inbound sms/text {sms_reply.sid}" in line
        ]
        assert sorted(handled) == ["duplicate", "survey_none_open"]
    finally:
        await tg.stop()
        await sms.stop()
        await dbmod.close()


async def test_dispatchers_claiming_at_the_same_instant_never_share_a_row(tmp_path):
    """What the scheduled day above relies on, forced to the race: four dispatchers claim from
    one PostgreSQL database at the same instant, each on its own connection, over and over.
    ``FOR UPDATE SKIP LOCKED`` makes every row go to exactly one of them."""
    url = postgres_url_or_skip()
    await dbmod.init(Settings(database_url=url, data_dir=tmp_path))
    try:
        await _truncate_all()
        now = SystemClock().now()
        await enqueue(
            [
                Message(
                    dedupe_key=f"race:{i}",
                    recipient_kind=RecipientKind.INSPECTOR,
                    recipient_id=i,
                    template="team_changed.j2",
                )
                for i in range(400)
            ],
            now,
        )
        dispatchers = [Dispatcher({}) for _ in range(4)]
        claimed: list[int] = []
        for _ in range(1000):  # 400 rows, 12 a round: far fewer rounds are needed
            batches = await asyncio.gather(*(d.claim(3) for d in dispatchers))
            if not any(batches):
                break
            claimed += [row.id for batch in batches for row in batch]
        assert len(claimed) == len(set(claimed)) == 400
    finally:
        await dbmod.close()
