"""The dispatcher's batched database work, end to end against the Bot API simulator: one batch
holding every kind of row gets each its documented outcome, and a busy chat is postponed
without using an attempt."""

from __future__ import annotations

from datetime import timedelta

from core.ratelimit import RateLimiter
from models.messaging import Channel, ChatBinding, Outbox, OutboxStatus, RecipientKind, Role, Unreachable
from services.outbox import Message, enqueue
from tests import builders
from tests.e2e.harness import spine


def notice(key: str, inspector_id: int, new: str = "乙", **extra) -> Message:
    return Message(
        dedupe_key=key,
        recipient_kind=RecipientKind.INSPECTOR,
        recipient_id=inspector_id,
        template="team_changed.j2",
        context={"no": 1, "draw_ref": "P1/2026-12-01", "plan": "测试计划", "old": "甲", "new": new, **extra},
    )


async def bound(s, cert: str, name: str, chats: int = 1):
    """An inspector with ``chats`` live Telegram bindings (the newest last), each a started user."""
    inspector = await builders.inspector(cert, name)
    users = []
    for n in range(chats):
        user = s.sim.create_user(f"{name}{n}")
        s.sim.send_command(user, "start")  # may be written to; nobody polls in send-only mode
        await ChatBinding.create(
            channel=Channel.TELEGRAM, address=str(user.id), role=Role.INSPECTOR, inspector=inspector, display_name=name
        )
        users.append(user)
    return inspector, users


async def test_one_batch_gives_every_kind_of_row_its_outcome(db):
    async with spine(db, mode="send-only") as s:
        a, (alice,) = await bound(s, "37020001", "张伟")
        await enqueue([notice("first", a.id)], s.clock.now())
        await s.deliver()
        assert (await Outbox.get(dedupe_key="first")).status == OutboxStatus.SENT

        unbound = await builders.inspector("37020002", "李娜")
        moved, (old_chat, new_chat) = await bound(s, "37020003", "王芳", chats=2)
        gone, (gone_chat,) = await bound(s, "37020004", "赵磊")
        await Unreachable.create(
            channel=Channel.TELEGRAM, address=str(gone_chat.id), reason="blocked", at=s.clock.now()
        )
        stranger = s.sim.create_user("Eve")
        s.sim.send_command(stranger, "start")
        await enqueue(
            [
                notice("to-alice", a.id),
                notice("edit", a.id, new="丙", edit_of="first"),
                notice("unbound", unbound.id),
                notice("moved", moved.id),
                notice("gone", gone.id),
                Message(
                    dedupe_key="reply",
                    recipient_kind=RecipientKind.PERSON,
                    recipient_id=0,
                    template="unknown_sender.j2",
                    address=str(stranger.id),
                ),
                Message(
                    dedupe_key="sms",
                    recipient_kind=RecipientKind.INSPECTOR,
                    recipient_id=a.id,
                    template="team_changed.j2",
                    channel=Channel.SMS,
                    context=notice("x", 0).context,
                ),
            ],
            s.clock.now(),
        )
        assert await s.dispatcher.run_once() == 7  # one batch

        rows = {r.dedupe_key: r for r in await Outbox.all()}
        assert {k: rows[k].status for k in rows} == {
            "first": OutboxStatus.SENT,
            "to-alice": OutboxStatus.SENT,
            "edit": OutboxStatus.SENT,
            "unbound": OutboxStatus.NO_ADDRESS,
            "moved": OutboxStatus.SENT,
            "gone": OutboxStatus.HELD,  # waits for the chat to be reachable again (issue 13 §2)
            "reply": OutboxStatus.SENT,
            "sms": OutboxStatus.PENDING,
        }
        assert rows["unbound"].attempts == 0  # waiting for an address uses no attempt
        assert rows["gone"].last_error == "unreachable" and rows["gone"].attempts == 0  # held uses none either
        assert rows["sms"].last_error == "no_channel" and rows["sms"].next_attempt_at > s.clock.now()
        assert rows["edit"].provider_id == rows["first"].provider_id  # edited in place, not sent anew
        texts = [m.text for m in s.sim.messages(alice)]
        assert len(texts) == 2 and "丙" in texts[0] and "乙" in texts[1]
        assert s.sim.messages(old_chat) == [] and len(s.sim.messages(new_chat)) == 1  # the newest binding
        assert s.sim.messages(gone_chat) == [] and len(s.sim.messages(stranger)) == 1


async def test_a_busy_chat_is_postponed_without_using_an_attempt(db):
    async with spine(db, mode="send-only") as s:
        limiter = RateLimiter(None, 1.0, now=lambda: s.clock.now().timestamp())
        s.dispatcher.limits["telegram"] = limiter
        a, (alice,) = await bound(s, "37020001", "张伟")
        await enqueue([notice(f"n{i}", a.id, new=f"乙{i}") for i in range(3)], s.clock.now())

        await s.dispatcher.run_once()
        rows = await Outbox.all().order_by("id")
        assert [r.status for r in rows] == [OutboxStatus.SENT, OutboxStatus.PENDING, OutboxStatus.PENDING]
        assert [r.attempts for r in rows] == [1, 0, 0]
        assert all(r.next_attempt_at >= s.clock.now() + timedelta(seconds=1) for r in rows[1:])
        assert await s.dispatcher.run_once() == 0  # not due yet

        for _ in range(2):
            s.clock.advance(timedelta(seconds=1))
            await s.dispatcher.run_once()
        rows = await Outbox.all().order_by("id")
        assert [r.status for r in rows] == [OutboxStatus.SENT] * 3
        assert [r.attempts for r in rows] == [1, 1, 1]
        texts = [m.text for m in s.sim.messages(alice)]
        assert len(texts) == 3 and all(f"乙{i}" in t for i, t in enumerate(texts))
