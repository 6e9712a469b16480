"""Issue 13 §2, "blocked is not forever": one refused send must not mute a person for good.

The real python-telegram-bot behind our TelegramChannel (polling and webhook) against the Bot API
simulator, whose people block and unblock the bot (a 403 on every send meanwhile, and a
``my_chat_member`` update each time). Rules: docs/messaging.md, "Unreachable: held, not thrown
away"."""

from __future__ import annotations

from collections import Counter

from models.alerts import Alert
from models.draws import Assignment, AssignmentStatus
from models.messaging import ChatBinding, InboundEvent, Outbox, OutboxStatus, RecipientKind, Role, Unreachable
from services import plans
from services.alerts import DIGEST_WAIT, send_digests
from services.identity import create_invite
from services.outbox import Message, enqueue
from tests.builders import scheduled_draw
from tests.e2e.harness import eventually, spine
from tests.e2e.test_telegram_spine import _queue_to, bind_inspector
from tests.reliability.test_bot_api_faults import bind_coordinator, webhook_spine
from tests.services import draw_world as world


async def _digest(s) -> None:
    """The coordinators' next alert digest (services.alerts.send_digests), delivered."""
    s.clock.advance(DIGEST_WAIT)
    assert await send_digests(s.clock.now()) == 1
    await s.deliver()


async def marked(user) -> bool:
    return await Unreachable.filter(channel="telegram", address=str(user.id)).exists()


async def handled(user, n: int) -> bool:
    return await InboundEvent.filter(sender=str(user.id)).exclude(outcome="").count() == n


async def test_one_refused_send_then_the_persons_help_is_answered(db):
    """A single 403 marks the chat; the person then sends /help: they get the answer (and the
    message that was refused, still current, comes too) — the mark is gone."""
    async with spine(db) as s:
        user = await bind_inspector(s)
        await s.sim.wait_for_message(user)  # the welcome
        insp = await ChatBinding.get(address=str(user.id), role=Role.INSPECTOR)
        s.sim.inject("blocked", chat_id=user.id)  # one refusal, then Telegram accepts again
        await _queue_to(s, insp.inspector_id)
        await s.deliver()
        assert await marked(user)
        assert (await Outbox.get(dedupe_key=f"t:{insp.inspector_id}:0")).last_error == "blocked"

        s.sim.send_command(user, "help")
        await eventually(lambda: handled(user, 2))
        await s.deliver()
        texts = [(await s.sim.wait_for_message(user)).text for _ in range(2)]
        assert any("/tasks" in t and "/conflicts" in t for t in texts), texts  # the /help answer
        assert any("甲" in t and "乙" in t for t in texts), texts  # the held notice, released
        assert not await marked(user)
        assert (await ChatBinding.get(id=insp.id)).reachable is True
        assert (await Outbox.get(dedupe_key=f"t:{insp.inspector_id}:0")).status == OutboxStatus.SENT


async def test_unblocking_releases_the_open_task_and_drops_the_closed_one(db, tmp_path):
    """The inspector blocks the bot (my_chat_member: kicked) before their tasks go out: the cards
    are held. One task is cancelled meanwhile. They unblock (my_chat_member: member): the open
    task's card is sent, the cancelled one's is dropped with its reason, and so is the stale
    welcome (a reply to what they sent before)."""
    async with spine(db, clock=world.clock()) as s:
        await world.build(n_entities=12, n_scjg=6, n_wsj=0)
        await plans.add_plan(world.plan_file(tmp_path, "P1", a="0.5", b="0.5", c="0.5"), s.clock)
        await scheduled_draw("P1", clock=s.clock, zone=world.ZONE)
        per = Counter(await Assignment.all().values_list("inspector_id", flat=True))
        inspector_id = next(i for i, n in per.most_common() if n >= 2)
        closed_asg, *open_asgs = await Assignment.filter(inspector_id=inspector_id).order_by("id")
        cert = (await closed_asg.inspector).cert_no

        user = s.sim.create_user("检查员")
        s.sim.send_command(user, "start", await create_invite(Role.INSPECTOR, s.clock, cert_no=cert))
        await eventually(lambda: ChatBinding.filter(address=str(user.id)).exists())
        s.sim.block_bot(user)
        await eventually(lambda: marked(user))
        await s.deliver()
        cards = [f"asg:{a.id}:sent" for a in (closed_asg, *open_asgs)]
        assert [r.status for r in await Outbox.filter(dedupe_key__in=cards)] == [OutboxStatus.HELD] * len(cards)
        assert s.sim.messages(user) == []  # nothing was even tried: the chat is marked

        await Assignment.filter(id=closed_asg.id).update(status=AssignmentStatus.CANCELLED)
        s.sim.unblock_bot(user)
        await eventually(lambda: not_marked(user))
        await s.deliver()

        rows = {r.dedupe_key: r for r in await Outbox.filter(address=None, recipient_id=inspector_id)}
        assert (rows[cards[0]].status, rows[cards[0]].last_error) == (OutboxStatus.DEAD, "dropped:task_closed")
        assert [rows[k].status for k in cards[1:]] == [OutboxStatus.SENT] * len(open_asgs)
        welcome = await Outbox.get(address=str(user.id), template="welcome.j2")
        assert (welcome.status, welcome.last_error) == (OutboxStatus.DEAD, "dropped:stale_reply")
        got = [m.callback_data for m in s.sim.messages(user)]
        assert sorted(got) == sorted([f"asg:accept:{a.id}", f"asg:recuse:{a.id}"] for a in open_asgs)
        outcomes = await InboundEvent.filter(sender=str(user.id), kind="membership").values_list("outcome", flat=True)
        assert sorted(outcomes) == ["blocked", "unblocked"]


async def not_marked(user) -> bool:
    return not await marked(user)


async def test_the_coordinator_is_told_once_when_blocked_and_once_on_return(db):
    """Through the webhook (setWebhook's allowed_updates): the inspector blocks the bot, three
    messages are held, the coordinator hears of it once, by name; the inspector unblocks, the
    three go out and the coordinator hears once more. A second episode is told again."""
    async with webhook_spine(db) as s:
        user = await bind_inspector(s)
        await s.sim.wait_for_message(user)
        coordinator = await bind_coordinator(s)
        insp = await ChatBinding.get(address=str(user.id), role=Role.INSPECTOR)

        s.sim.block_bot(user)
        await eventually(lambda: marked(user))
        await _queue_to(s, insp.inspector_id, n=3)
        await s.deliver()
        await s.deliver()
        assert await Outbox.filter(recipient_kind=RecipientKind.INSPECTOR, status=OutboxStatus.HELD).count() == 3
        assert s.sim.messages(coordinator)[1:] == []  # after the welcome: nothing until the digest
        await _digest(s)
        told = s.sim.messages(coordinator)[1:]
        assert len(told) == 1 and "张伟" in told[0].text and "无法联系 1 条" in told[0].text

        s.sim.unblock_bot(user)
        await eventually(lambda: not_marked(user))
        await s.deliver()
        assert len(s.sim.messages(user)) == 1 + 3  # the welcome, then the three held notices
        await _digest(s)
        told = s.sim.messages(coordinator)[1:]
        assert len(told) == 2 and "张伟" in told[1].text and "已恢复" in told[1].text
        assert [a.kind for a in await Alert.all().order_by("id")] == ["alert_unreachable", "alert_reachable"]

        s.sim.block_bot(user)  # a new episode is a new alert
        await eventually(lambda: marked(user))
        await _digest(s)
        assert len(s.sim.messages(coordinator)) == 1 + 3


async def test_a_message_held_for_an_old_chat_goes_to_the_persons_new_chat(db):
    """An inspector whose old chat is blocked binds a new one: what was held for them is sent there."""
    async with spine(db) as s:
        user = await bind_inspector(s)
        await s.sim.wait_for_message(user)
        insp = await ChatBinding.get(address=str(user.id), role=Role.INSPECTOR)
        s.sim.block_bot(user)
        await eventually(lambda: marked(user))
        await enqueue(
            [
                Message(
                    dedupe_key="held-notice",
                    recipient_kind=RecipientKind.INSPECTOR,
                    recipient_id=insp.inspector_id,
                    template="recusal_cancelled.j2",
                )
            ],
            s.clock.now(),
        )
        await s.deliver()
        assert (await Outbox.get(dedupe_key="held-notice")).status == OutboxStatus.HELD

        other = s.sim.create_user("张伟")
        s.sim.send_command(other, "start", await create_invite(Role.INSPECTOR, s.clock, cert_no="37020001"))
        await eventually(lambda: ChatBinding.filter(address=str(other.id)).exists())
        await s.deliver()
        assert (await Outbox.get(dedupe_key="held-notice")).status == OutboxStatus.SENT
        assert len(s.sim.messages(other)) == 2  # the welcome and the held notice
        assert await marked(user)  # the old chat is still blocked
