"""The integrity survey end to end: the real Twilio adapter and its signed webhooks served by our
aiohttp app, against the SMS gateway simulator; and the Telegram poll path through the Bot API
simulator and the real python-telegram-bot."""

from __future__ import annotations

import contextlib
import logging
import socket
from dataclasses import dataclass
from datetime import UTC, datetime

import aiohttp
from aiohttp import web
from telegram import Update

from bot.channels.sms_twilio import INBOUND_PATH, TwilioSmsChannel
from bot.channels.telegram import normalise
from bot.dispatcher import Dispatcher
from bot.runtime import Runtime
from bot.web import make_app
from core.clock import FakeClock
from core.ratelimit import RateLimiter
from core.settings import Settings
from domain.signatures import twilio_signature
from models.alerts import Alert
from models.messaging import ChatBinding, InboundEvent, Outbox, OutboxStatus, RecipientKind, Role, WaitingReceipt
from models.surveys import Survey, SurveyStatus
from services.identity import create_invite
from services.surveys.enter import enter_pool
from simulators.sms import DEV_ACCOUNT_SID, DEV_AUTH_TOKEN, DEV_NUMBER, SmsSimulator
from tests.e2e.harness import eventually, spine
from tests.services import survey_world
from tests.services.survey_world import EVENING, MOBILES, MORNING

PHONE = MOBILES[0]


@dataclass
class Gateway:
    sim: SmsSimulator
    rt: Runtime
    dispatcher: Dispatcher
    clock: FakeClock
    settings: Settings

    async def deliver(self) -> int:
        """Send what is due, then let the simulator's status callbacks arrive."""
        n = await self.dispatcher.drain()
        await self.sim.drain()
        return n

    def texts(self, phone: str = PHONE) -> list[str]:
        return self.sim.phone(phone).texts()


@contextlib.asynccontextmanager
async def gateway(db: Settings, start: datetime = MORNING, *, early_callbacks: bool = False):
    """Our web app (Twilio webhooks) on a real port, the Twilio adapter pointed at the simulator
    (``early_callbacks``: it posts a message's statuses before it answers the send)."""
    clock = FakeClock(start)
    sim = SmsSimulator(
        account_sid=DEV_ACCOUNT_SID, auth_token=DEV_AUTH_TOKEN, numbers=(DEV_NUMBER,), early_callbacks=early_callbacks
    )
    await sim.start()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    public = f"http://127.0.0.1:{sock.getsockname()[1]}"
    settings = db.with_(
        sms_account_sid=DEV_ACCOUNT_SID,
        sms_auth_token=DEV_AUTH_TOKEN,
        sms_api_url=sim.url,
        sms_from=DEV_NUMBER,
        public_url=public,
    )
    sim.inbound_url = public + INBOUND_PATH
    rt = Runtime(settings=settings, clock=clock)
    channel = TwilioSmsChannel(settings, clock=clock)
    rt.channels = {"sms": channel}
    rt.dispatcher = Dispatcher(
        rt.channels, clock=clock, limits={"sms": RateLimiter(None, None, now=lambda: clock.now().timestamp())}
    )
    runner = web.AppRunner(make_app(rt))
    await runner.setup()
    await web.SockSite(runner, sock).start()
    try:
        yield Gateway(sim, rt, rt.dispatcher, clock, settings)
    finally:
        await runner.cleanup()
        await channel.stop()
        await sim.stop()


async def survey_sent(g: Gateway, w, i: int = 0) -> Survey:
    await enter_pool(w.inspections[i].id, g.clock.now())
    await g.deliver()
    return await Survey.get(inspection_id=w.inspections[i].id)


async def test_survey_sms_and_a_full_answer_over_signed_webhooks(db):
    async with gateway(db) as g:
        w = await survey_world.build("D")
        s = await survey_sent(g, w)
        [text] = g.texts()
        assert text.startswith("【青岛市市场监督管理局】") and text.endswith("回复TD退订") and "张伟、李娜" in text
        invite = await Outbox.get(dedupe_key=f"survey:{s.id}:invite")
        assert invite.status == OutboxStatus.DELIVERED and invite.delivered_at == MORNING  # status callbacks
        reply = await g.sim.reply(PHONE, "是，否，５　很规范")
        assert reply.status == 200
        await g.deliver()
        assert "感谢您的回复" in g.texts()[-1]
        s = await Survey.get(id=s.id)
        assert s.status == SurveyStatus.ANSWERED and s.answers["fairness"] == 5 and s.comment == "很规范"
        assert all(h.status == 200 for h in g.sim.webhooks)


async def test_a_forged_or_replayed_webhook_is_refused_and_stores_nothing_a_genuine_one_alerts(db):
    async with gateway(db) as g:
        w = await survey_world.build("D")
        await survey_sent(g, w)
        events = await InboundEvent.all().count()
        url = g.settings.public_url + INBOUND_PATH
        form = {
            "MessageSid": "SM" + "a" * 32,
            "AccountSid": DEV_ACCOUNT_SID,
            "From": PHONE,
            "To": DEV_NUMBER,
            "Body": "1 1 1",
        }
        async with aiohttp.ClientSession() as http:

            async def post(signature: str | None) -> int:
                headers = {"X-Twilio-Signature": signature} if signature else {}
                async with http.post(url, data=form, headers=headers) as resp:
                    return resp.status

            forged = twilio_signature(url, form, "not-the-token")
            assert await post(None) == 403 and await post(forged) == 403
            assert await InboundEvent.all().count() == events and not await Alert.all().exists()
            good = twilio_signature(url, form, DEV_AUTH_TOKEN)
            assert await post(good) == 200
            assert await post(good) == 403  # the same signed request again
        assert await InboundEvent.all().count() == events + 1
        assert await Outbox.filter(template="survey_thanks.j2").count() == 1
        # the genuine reply said "improper = yes" and fairness 1: the coordinator hears, no inspector
        [alert] = await Alert.filter(kind="survey_alert")
        assert alert.context["reasons"] == ["improper", "unfair"]
        assert await Outbox.filter(template="survey_alert.j2", recipient_id=w.coordinator.id).count() == 1
        assert not await Outbox.filter(recipient_kind=RecipientKind.INSPECTOR).exists()
        assert not await Outbox.filter(
            recipient_id__in=[c.id for c in w.inspector_chats], recipient_kind=RecipientKind.PERSON
        ).exists()


async def test_one_answer_per_sms_then_garbled_replies_end_incomplete(db):
    async with gateway(db) as g:
        w = await survey_world.build("D")
        await survey_sent(g, w)
        for body in ("1", "好的", "嗯嗯", "？"):
            assert (await g.sim.reply(PHONE, body)).status == 200
            await g.deliver()
        texts = g.texts()[1:]
        assert "第2题" in texts[0] and "第2题" in texts[1] and "请回复“是”或“否”" in texts[1]
        assert "最后一次提示" in texts[2] and "本次回访到此结束" in texts[3] and len(texts) == 4
        s = await Survey.get()
        assert s.status == SurveyStatus.INCOMPLETE and s.answers == {"credentials": True}


async def test_opt_out_by_sms_is_confirmed_once_and_never_surveyed_again(db):
    async with gateway(db) as g:
        w = await survey_world.build("D")
        await survey_sent(g, w)
        for body in ("TD", "退订"):
            await g.sim.reply(PHONE, body)
            await g.deliver()
        assert len(g.texts()) == 2 and "您已退订" in g.texts()[1]
        later = await survey_world.build("D", draw_ref="P1/2027-01-01", entities=w.entities)
        assert await enter_pool(later.inspections[0].id, g.clock.now()) == "opted_out"
        await g.deliver()
        assert len(g.texts()) == 2


async def test_a_survey_due_at_nine_in_the_evening_goes_out_at_eight(db):
    async with gateway(db, start=EVENING) as g:
        w = await survey_world.build("D")
        await survey_sent(g, w)
        assert g.texts() == []
        g.clock.set(datetime(2026, 12, 3, 23, 59, tzinfo=UTC))  # 07:59
        await g.deliver()
        assert g.texts() == []
        g.clock.set(datetime(2026, 12, 4, 0, 0, tzinfo=UTC))  # 08:00
        await g.deliver()
        assert len(g.texts()) == 1 and g.sim.phone(PHONE).received[0]["status"] == "delivered"


async def test_an_undelivered_sms_falls_back_to_telegram_or_leaves_the_survey_undeliverable(db):
    async with gateway(db) as g:
        w = await survey_world.build("DD")
        for phone in MOBILES[:2]:
            g.sim.set_state(phone, "unreachable")
        for insp in w.inspections:
            assert await enter_pool(insp.id, g.clock.now()) == "survey_sent"
        await survey_world.link_chat(w.entities[0], "700")  # linked after its survey went by SMS
        await g.deliver()
        linked, lone = [await Survey.get(inspection_id=insp.id) for insp in w.inspections]
        assert (linked.channel.value, linked.address, linked.poll_question) == ("telegram", "700", "credentials")
        assert await Outbox.filter(address="700", channel="telegram").count() == 1  # the first poll, queued
        assert lone.status == SurveyStatus.UNDELIVERABLE
        row = await Outbox.get(dedupe_key=f"survey:{lone.id}:invite")
        assert row.status == OutboxStatus.DEAD and row.last_error == "undelivered:30003"


async def test_receipts_posted_before_the_send_is_answered_are_applied_when_the_sid_is_stored(db):
    """The gateway posts sent/delivered (or undelivered) before its 201: the receipts find no row
    with that sid yet, wait, and are applied when the dispatcher records the sid."""
    async with gateway(db, early_callbacks=True) as g:
        w = await survey_world.build("DD")
        g.sim.set_state(MOBILES[1], "unreachable")
        for insp in w.inspections:
            assert await enter_pool(insp.id, g.clock.now()) == "survey_sent"
        await g.deliver()
        reached, lost = [await Survey.get(inspection_id=insp.id) for insp in w.inspections]
        invite = await Outbox.get(dedupe_key=f"survey:{reached.id}:invite")
        assert invite.status == OutboxStatus.DELIVERED and invite.delivered_at == MORNING
        dead = await Outbox.get(dedupe_key=f"survey:{lost.id}:invite")
        assert dead.status == OutboxStatus.DEAD and dead.last_error == "undelivered:30003"
        assert lost.status == SurveyStatus.UNDELIVERABLE and reached.status == SurveyStatus.SENT
        receipts = dict(await InboundEvent.filter(kind="delivery").values_list("external_id", "outcome"))
        assert receipts == {
            f"{invite.provider_id}:sent": "delivery_sent",
            f"{invite.provider_id}:delivered": "delivered",  # was delivery_waiting until the sid was stored
            f"{dead.provider_id}:sent": "delivery_sent",
            f"{dead.provider_id}:undelivered": "survey_undeliverable",
        }
        assert not await WaitingReceipt.exists()
        statuses = [h for h in g.sim.webhooks if h.kind == "status"]
        assert len(statuses) == 4 and all(h.status == 200 for h in statuses)


async def entity_chat(s, entity):
    """A virtual user who binds a chat to ``entity`` with an invite code; returns the user and
    the welcome the bot sent."""
    user = s.sim.create_user("王老板")
    code = await create_invite(Role.ENTITY, s.clock, uscc=entity.uscc)
    s.sim.send_command(user, "start", code)
    await eventually(lambda: ChatBinding.filter(address=str(user.id), role=Role.ENTITY).exists())
    await s.deliver()
    return user, await s.sim.wait_for_message(user)


async def test_telegram_poll_survey_end_to_end(db):
    async with spine(db, clock=FakeClock(MORNING)) as s:
        w = await survey_world.build("D")
        user, welcome = await entity_chat(s, w.entities[0])
        assert "检查对象联系人" in welcome.text
        assert await enter_pool(w.inspections[0].id, s.clock.now()) == "survey_sent"
        for option, question in ((0, "improper"), (1, "fairness"), (4, None)):
            await s.deliver()
            poll = await s.sim.wait_for_message(user)
            assert "poll" in poll.data
            if question is None:
                assert len(poll.data["poll"]["options"]) == 5
            s.sim.answer_poll(user, poll.message_id, [option])
            await eventually(
                lambda: (
                    Survey.filter(poll_question=question).exists()
                    if question
                    else Survey.filter(status=SurveyStatus.ANSWERED).exists()
                )
            )
        first = s.sim.messages(user)[1].data["poll"]
        assert first["question"].startswith("【检查回访】") and [o["text"] for o in first["options"]] == ["是", "否"]
        await s.deliver()
        assert "感谢您的回复" in (await s.sim.wait_for_message(user)).text
        survey = await Survey.get()
        assert survey.answers == {"credentials": True, "improper": False, "fairness": 5}
        assert len(survey.polls["ids"]) == 3 and not await Alert.all().exists()


async def test_two_surveys_poll_one_chat_at_once_and_interleaved_answers_reach_their_own(db):
    """Each sent poll's id (sendPoll's result) is stored on its outbox row; a poll_answer carrying
    that id is applied to that survey's question, whatever the order the polls are answered in."""
    async with spine(db, clock=FakeClock(MORNING)) as s:
        w = await survey_world.build("D")
        again = await survey_world.build("D", draw_ref="P1/2026-12-02", entities=w.entities)  # a second visit
        user, _ = await entity_chat(s, w.entities[0])
        assert await enter_pool(w.inspections[0].id, s.clock.now()) == "survey_sent"
        assert await enter_pool(again.inspections[0].id, s.clock.now()) == "survey_sent"  # no waiting
        first = await Survey.get(inspection_id=w.inspections[0].id)
        second = await Survey.get(inspection_id=again.inspections[0].id)

        async def polls_out(n: int) -> dict[tuple[int, str], int]:
            """Deliver, then ``(survey id, question) → message id`` of the ``n`` new polls, checked
            against what the dispatcher stored: the poll's id, not the message's."""
            await s.deliver()
            out = {}
            for _ in range(n):
                msg = await s.sim.wait_for_message(user)
                row = await Outbox.get(channel="telegram", provider_id=msg.data["poll"]["id"])
                assert row.status == OutboxStatus.SENT and row.provider_id != str(msg.message_id)
                _, sid, _, question = row.dedupe_key.split(":")
                out[(int(sid), question)] = msg.message_id
            return out

        async def vote(message_id: int, option: int, answered: dict) -> None:
            s.sim.answer_poll(user, message_id, [option])
            await eventually(lambda: Survey.filter(id__in=[first.id, second.id], answers=answered).exists())

        polls = await polls_out(2)
        assert set(polls) == {(first.id, "credentials"), (second.id, "credentials")}
        await vote(polls[(second.id, "credentials")], 1, {"credentials": False})  # second's first
        await vote(polls[(first.id, "credentials")], 0, {"credentials": True})
        polls = await polls_out(2)
        assert set(polls) == {(first.id, "improper"), (second.id, "improper")}
        await vote(polls[(first.id, "improper")], 1, {"credentials": True, "improper": False})
        await vote(polls[(second.id, "improper")], 0, {"credentials": False, "improper": True})
        polls = await polls_out(2)
        assert set(polls) == {(first.id, "fairness"), (second.id, "fairness")}
        await vote(polls[(second.id, "fairness")], 2, {"credentials": False, "improper": True, "fairness": 3})
        await vote(polls[(first.id, "fairness")], 4, {"credentials": True, "improper": False, "fairness": 5})
        one, two = await Survey.get(id=first.id), await Survey.get(id=second.id)
        assert one.status == two.status == SurveyStatus.ANSWERED
        assert one.answers == {"credentials": True, "improper": False, "fairness": 5}
        assert two.answers == {"credentials": False, "improper": True, "fairness": 3}
        assert (
            set(one.polls["ids"].values()) == set(two.polls["ids"].values()) == {"credentials", "improper", "fairness"}
        )
        assert not set(one.polls["ids"]) & set(two.polls["ids"])
        # only the survey that reported something improper raised an alert
        assert [a.key for a in await Alert.filter(kind="survey_alert")] == [f"survey:{second.id}:improper"]


async def test_a_vote_that_comes_before_the_polls_id_is_stored_waits_and_is_applied_once(db, caplog):
    """The simulator holds sendPoll's answer until the bot has taken the entity's vote: the
    poll_answer names an id no outbox row has yet. It waits (``survey_poll_waiting``) and the
    dispatcher applies it in the transaction that records the id; Telegram delivering the same
    update again, or the entity voting again, changes nothing."""
    caplog.set_level(logging.INFO, logger="bot.runtime")
    async with spine(db, clock=FakeClock(MORNING)) as s:
        w = await survey_world.build("D")
        user, _ = await entity_chat(s, w.entities[0])
        assert await enter_pool(w.inspections[0].id, s.clock.now()) == "survey_sent"
        survey = await Survey.get()
        s.sim.vote_before_reply(user, [1])  # each poll voted on before sendPoll answers: 否, 否, 2 分
        await s.deliver()  # the three polls, one after another as each answer is applied
        s.sim.vote_normally(user)
        polls = [(await s.sim.wait_for_message(user)).data["poll"] for _ in range(3)]
        assert "感谢您的回复" in (await s.sim.wait_for_message(user)).text
        votes = [next(u for u in s.sim.queue.log if u.get("poll_answer", {}).get("poll_id") == p["id"]) for p in polls]
        for vote in votes:  # each came before its poll's id was stored
            waited = f"{vote['update_id']} -> survey_poll_waiting"
            assert any(waited in r.getMessage() for r in caplog.records), waited
            event = await InboundEvent.get(channel="telegram", external_id=str(vote["update_id"]))
            assert event.outcome in ("survey_sent", "survey_answered")
        rows = await Outbox.filter(dedupe_key__startswith=f"survey:{survey.id}:poll:").order_by("id")
        assert [(r.provider_id, r.status) for r in rows] == [(p["id"], OutboxStatus.SENT) for p in polls]
        assert not await WaitingReceipt.exists()
        done = await Survey.get(id=survey.id)
        assert done.status == SurveyStatus.ANSWERED
        assert done.answers == {"credentials": False, "improper": False, "fairness": 2}
        # the same update again (Telegram redelivers until confirmed): the same event, not applied again
        again = normalise(Update.de_json(votes[0], None))
        assert again is not None and (await s.rt.on_event(again)).duplicate
        # the entity votes again on the first poll: a second vote on a poll changes nothing
        revote = s.sim.answer_poll(user, row_message_id(s, user, polls[0]["id"]), [0])[0]["update_id"]
        await eventually(lambda: InboundEvent.filter(channel="telegram", external_id=str(revote)).exists())
        assert (await Survey.get(id=survey.id)).answers == done.answers
        assert await Outbox.filter(dedupe_key__startswith=f"survey:{survey.id}:").count() == len(rows) + 1


def row_message_id(s, user, poll_id: str) -> int:
    """The message id of the poll ``poll_id`` in this user's chat."""
    return next(m.message_id for m in s.sim.messages(user) if m.data.get("poll", {}).get("id") == poll_id)


async def test_entity_chat_help_comment_after_the_polls_and_thanks(db):
    """An entity's /help says what it can do; a comment after the polls is recorded and
    acknowledged; a "谢谢" is answered, not stored as a comment."""
    async with spine(db, clock=FakeClock(MORNING)) as s:
        w = await survey_world.build("D")
        user = s.sim.create_user("王老板")
        code = await create_invite(Role.ENTITY, s.clock, uscc=w.entities[0].uscc)
        s.sim.send_command(user, "start", code)
        await eventually(lambda: ChatBinding.filter(address=str(user.id), role=Role.ENTITY).exists())

        async def said(before: int) -> list[str]:
            async def handled() -> bool:
                mine = InboundEvent.filter(sender=str(user.id))
                return await mine.count() > before and not await mine.filter(outcome="").exists()

            await eventually(handled)
            await s.deliver()
            return [m.text for m in s.sim.messages(user)]

        n = await InboundEvent.filter(sender=str(user.id)).count()
        s.sim.send_command(user, "help")
        help_text = (await said(n))[-1]
        assert "TD" in help_text and "直接发送文字" in help_text and "/help" in help_text
        await enter_pool(w.inspections[0].id, s.clock.now())
        for option, question in ((0, "improper"), (1, "fairness"), (4, None)):
            await s.deliver()
            poll = next(m for m in reversed(s.sim.messages(user)) if "poll" in m.data)
            s.sim.answer_poll(user, poll.message_id, [option])
            await eventually(
                lambda: (
                    Survey.filter(poll_question=question).exists()
                    if question
                    else Survey.filter(status=SurveyStatus.ANSWERED).exists()
                )
            )
        await s.deliver()
        n = await InboundEvent.filter(sender=str(user.id)).count()
        s.sim.send_text(user, "补充：检查人员很规范，没有收任何东西")
        assert "已收到您的补充意见" in (await said(n))[-1]
        n += 1
        s.sim.send_text(user, "谢谢！")
        assert "不客气" in (await said(n))[-1]
        survey = await Survey.get()
        assert survey.comment == "补充：检查人员很规范，没有收任何东西"


async def test_a_first_sms_that_only_comments_is_kept(db):
    async with gateway(db) as g:
        w = await survey_world.build("D")
        await survey_sent(g, w)
        assert (await g.sim.reply(PHONE, "检查人员态度很好，很专业")).status == 200
        await g.deliver()
        assert "第1题" in g.texts()[-1] or "请回复" in g.texts()[-1]  # still asked for the answers
        s = await Survey.get()
        assert s.comment == "检查人员态度很好，很专业" and s.status == SurveyStatus.SENT
        assert (await g.sim.reply(PHONE, "是 否 5")).status == 200
        await g.deliver()
        s = await Survey.get()
        assert s.status == SurveyStatus.ANSWERED and s.comment == "检查人员态度很好，很专业"
