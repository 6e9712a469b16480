"""The integrity survey as a feature: sampling, replies through the handler router, opt-out,
quiet hours, reminder and expiry, alerts, Telegram polls, delivery receipts and the anonymity
rules — on SQLite and PostgreSQL (the end-to-end paths through the simulators are in
tests/e2e/test_surveys_sms.py)."""

from __future__ import annotations

import itertools
import tomllib
from datetime import UTC, datetime, timedelta

import pytest
from tortoise.transactions import in_transaction

from bot.channels.sms_aliyun import report_event
from bot.channels.sms_twilio import status_event
from core.channel import EventKind, InboundEvent
from core.clock import FakeClock
from core.compose import compose
from core.render import render
from domain.plans import parse_plan
from domain.surveys import Candidate, sample
from handlers.router import route
from models.alerts import Alert
from models.messaging import InboundEvent as InboundRow
from models.messaging import Outbox, OutboxStatus, RecipientKind, WaitingReceipt
from models.surveys import Survey, SurveyOptOut, SurveySample, SurveyStatus
from services.assignments import open_for
from services.inbound import receive
from services.surveys.enter import enter_pool, sign_for
from services.surveys.integrity import integrity
from services.surveys.receipts import WAIT, apply_waiting, delivery_status, sweep_receipts
from services.surveys.replies import handle_poll_answer
from services.surveys.shared import SurveyError
from services.surveys.sweep import run_sweep
from tests.services import survey_world
from tests.services.survey_world import EVENING, MORNING

_ids = itertools.count(1)
MOBILE = survey_world.MOBILES[0]


def sms(sender: str, text: str) -> InboundEvent:
    return InboundEvent(
        channel="sms", external_id=f"SM{next(_ids):032d}", sender=sender, kind=EventKind.TEXT, text=text
    )


def tg(sender: str, kind: EventKind = EventKind.TEXT, **kw) -> InboundEvent:
    return InboundEvent(channel="telegram", external_id=str(next(_ids)), sender=sender, kind=kind, **kw)


async def say(clock: FakeClock, sender: str, text: str) -> str:
    """An SMS from ``sender`` through the inbound log and the handler router."""
    return (await receive(sms(sender, text), route, clock)).outcome


async def to(address: str) -> list[Outbox]:
    return await Outbox.filter(address=address).order_by("id")


async def templates_to(address: str) -> list[str]:
    return [o.template for o in await to(address)]


async def surveyed(w, clock: FakeClock, i: int = 0) -> Survey:
    assert await enter_pool(w.inspections[i].id, clock.now()) in ("survey_sent", "survey_scheduled")
    return await Survey.get(inspection_id=w.inspections[i].id)


# --- sampling ------------------------------------------------------------------------------------


async def test_sample_is_drawn_once_per_draw_with_a_recorded_seed_anyone_can_rederive(db):
    clock = FakeClock(MORNING)
    w = await survey_world.build("CCCCCCDE")
    outcomes = [await enter_pool(i.id, clock.now()) for i in w.inspections]
    smp = await SurveySample.get(draw_id=w.draw.id)
    assert len(smp.seed) == 32 and smp.pool == 8 and smp.shares == {"D": "1", "E": "1", "*": "1/3"}
    # all of D and E, a third (rounded up) of the six of class C
    assert outcomes.count("survey_sent") == 4 and outcomes.count("not_sampled") == 4
    assert {7, 8} <= set(smp.selected) and len(smp.selected) == 4
    again = sample([Candidate(f"{w.draw.draw_ref}/{i.no}", i.stratum) for i in w.inspections], smp.shares, smp.seed)
    assert sorted(int(c.key.rsplit("/", 1)[1]) for c in again) == smp.selected
    assert await enter_pool(w.inspections[7].id, clock.now()) == "already"
    assert await Survey.all().count() == 4 and await SurveySample.all().count() == 1
    assert "seed hidden" in repr(smp) and smp.seed.hex() not in repr(smp)


PLAN_WITH_SHARES = """
code = "P1"
name = "餐饮服务食品安全抽查"
departments = ["SCJG"]
items = ["SCJG-SP-01"]
ratios = { C = "0.1", D = "1", E = "1" }
team = { size = 2 }
schedule = { cron = "0 9 1 * *" }

[survey]
shares = { C = "1/2", "*" = "0" }   # half of class C, nobody else
"""


async def test_the_plan_file_says_what_share_is_surveyed(db):
    spec = parse_plan(tomllib.loads(PLAN_WITH_SHARES)).to_dict()
    clock = FakeClock(MORNING)
    w = await survey_world.build("CCCCDE", spec=spec)
    outcomes = [await enter_pool(i.id, clock.now()) for i in w.inspections]
    smp = await SurveySample.get(draw_id=w.draw.id)
    assert smp.shares == {"C": "1/2", "*": "0"}
    assert outcomes.count("survey_sent") == 2 and outcomes.count("not_sampled") == 4
    assert set(smp.selected) <= {1, 2, 3, 4}  # the two of class C; D and E are not surveyed by this plan


async def test_unknown_input_is_refused_clearly_or_quietly(db):
    clock = FakeClock(MORNING)
    with pytest.raises(SurveyError) as err:
        await enter_pool(999, MORNING)
    assert err.value.code == "survey_unknown_inspection" and await Survey.all().count() == 0
    w = await survey_world.build("D", mobiles=[None])  # neither a mobile nor a linked chat
    assert await enter_pool(w.inspections[0].id, clock.now()) == "undeliverable"
    assert (await Survey.get()).status == SurveyStatus.UNDELIVERABLE and await Outbox.all().count() == 0
    assert await say(clock, "+8613700000000", "1 2 5") == "survey_none_open"  # a stranger's SMS: no answer
    assert not await Outbox.filter(address="+8613700000000").exists()
    assert (await receive(tg("12345", text="1 2 5"), route, clock)).outcome == "unknown"
    assert (await Outbox.filter(address="12345").first()).template == "unknown_sender.j2"


# --- replies by SMS ------------------------------------------------------------------------------


async def test_survey_sms_then_a_full_answer_in_one_reply_or_one_answer_per_sms(db):
    clock = FakeClock(MORNING)
    w = await survey_world.build("DD")
    s = await surveyed(w, clock)
    assert s.status == SurveyStatus.SENT and s.sent_at == MORNING
    [invite] = await to(MOBILE)
    assert invite.template == "survey_sms.j2" and invite.channel.value == "sms" and invite.next_attempt_at == MORNING
    body = render("messages/survey_sms.j2", "zh-CN", **invite.context)
    assert body.startswith("【青岛市市场监督管理局】") and body.endswith("回复TD退订")
    assert "张伟、李娜" in body and "2026-12-03" in body and s.code not in body  # one open survey: no code needed
    assert await say(clock, MOBILE, "是，否，5 态度很好👍") == "survey_answered"
    s = await Survey.get(id=s.id)
    assert s.answers == {"credentials": True, "improper": False, "fairness": 5} and s.comment == "态度很好👍"
    assert s.answered_at == MORNING and s.completed_at == MORNING
    thanks = (await to(MOBILE))[-1]
    assert thanks.template == "survey_thanks.j2" and thanks.context["kind"] == "complete"
    # another firm answers one question per SMS
    second = survey_world.MOBILES[1]
    await surveyed(w, clock, 1)
    assert await say(clock, second, "1") == "survey_sent"
    assert await say(clock, second, "否") == "survey_sent"
    assert await say(clock, second, "４分") == "survey_answered"
    replies = (await to(second))[1:]
    assert [(o.template, o.context.get("question")) for o in replies] == [
        ("survey_next.j2", "improper"),
        ("survey_next.j2", "fairness"),
        ("survey_thanks.j2", None),
    ]
    assert (await Survey.get(inspection_id=w.inspections[1].id)).answers == {
        "credentials": True,
        "improper": False,
        "fairness": 4,
    }


async def test_a_garbled_reply_gets_one_clarification_and_after_two_more_the_survey_is_incomplete(db):
    clock = FakeClock(MORNING)
    w = await survey_world.build("D")
    await surveyed(w, clock)
    assert await say(clock, MOBILE, "好的") == "survey_sent"
    [clarify] = (await to(MOBILE))[1:]
    assert clarify.template == "survey_clarify.j2"
    assert (clarify.context["question"], clarify.context["reason"], clarify.context["attempt"]) == (
        "credentials",
        "expected_yes_no",
        1,
    )
    assert "请回复“是”或“否”" in render("messages/survey_clarify.j2", "zh-CN", **clarify.context)
    assert await say(clock, MOBILE, "是否") == "survey_sent"
    assert await say(clock, MOBILE, "？？") == "survey_incomplete"
    replies = (await to(MOBILE))[1:]
    assert [o.template for o in replies] == ["survey_clarify.j2", "survey_clarify.j2", "survey_thanks.j2"]
    assert replies[1].context["attempt"] == 2 and replies[2].context["kind"] == "incomplete"
    assert await say(clock, MOBILE, "？？") == "survey_incomplete"  # never asked again
    assert len(await to(MOBILE)) == 4


async def test_opt_out_is_confirmed_once_and_the_entity_is_never_surveyed_again(db):
    clock = FakeClock(MORNING)
    w = await survey_world.build("D")
    s = await surveyed(w, clock)
    assert await say(clock, MOBILE, "TD退订") == "survey_opted_out"
    assert (await Survey.get(id=s.id)).status == SurveyStatus.OPTED_OUT
    assert await SurveyOptOut.filter(entity_id=w.entities[0].id).exists()
    assert await SurveyOptOut.filter(mobile=MOBILE).exists()
    assert await templates_to(MOBILE) == ["survey_sms.j2", "survey_optout.j2"]
    confirmation = (await to(MOBILE))[-1]
    told = compose(confirmation.template, confirmation.context, "zh-CN", MOBILE, channel=confirmation.channel.value)
    assert "不会再收到此类短信" in told.text, told.text  # by SMS it says SMS
    assert await say(clock, MOBILE, "STOP") == "survey_opt_out_again"
    assert await say(clock, MOBILE, "1 2 5") == "survey_none_open"
    later = await survey_world.build("D", draw_ref="P1/2027-01-01", entities=w.entities)
    clock.advance(timedelta(days=30))
    assert await enter_pool(later.inspections[0].id, clock.now()) == "opted_out"
    assert await templates_to(MOBILE) == ["survey_sms.j2", "survey_optout.j2"]


# --- time ----------------------------------------------------------------------------------------


async def test_a_survey_due_in_quiet_hours_waits_for_eight_in_the_morning(db):
    clock = FakeClock(EVENING)  # 21:00 in Shanghai
    w = await survey_world.build("D")
    assert await enter_pool(w.inspections[0].id, clock.now()) == "survey_scheduled"
    s = await Survey.get()
    eight = datetime(2026, 12, 4, 0, 0, tzinfo=UTC)  # 08:00 in Shanghai
    [invite] = await to(MOBILE)
    assert s.status == SurveyStatus.PENDING and s.sent_at == eight and invite.next_attempt_at == eight
    await run_sweep(eight - timedelta(seconds=1))
    assert (await Survey.get()).status == SurveyStatus.PENDING
    await run_sweep(eight)
    assert (await Survey.get()).status == SurveyStatus.SENT
    # a reply written at 20:30 is answered at 08:00 too
    clock.set(datetime(2026, 12, 4, 12, 30, tzinfo=UTC))
    await say(clock, MOBILE, "1")
    assert (await to(MOBILE))[-1].next_attempt_at == datetime(2026, 12, 5, 0, 0, tzinfo=UTC)
    await say(clock, MOBILE, "TD")
    confirmation = (await to(MOBILE))[-1]
    assert confirmation.template == "survey_optout.j2"
    assert confirmation.next_attempt_at == datetime(2026, 12, 5, 0, 0, tzinfo=UTC)


def test_the_signature_comes_from_the_settings_or_the_plan():
    from core.settings import Settings

    assert sign_for(Settings(sms_sign_name="青岛市双随机办")) == "青岛市双随机办"
    assert sign_for(Settings()) is None  # the plan's first department
    assert sign_for(Settings(sms_provider="aliyun", sms_sign_name="青岛市双随机办")) == ""


async def test_one_reminder_after_48_hours_and_expiry_after_7_days(db):
    from bot.runtime import Runtime
    from scheduler import SWEEPS, Scheduler

    clock = FakeClock(MORNING)
    w = await survey_world.build("D")
    await surveyed(w, clock)
    await say(clock, MOBILE, "是")
    await run_sweep(MORNING + timedelta(hours=47, minutes=59))
    assert "survey_reminder.j2" not in await templates_to(MOBILE)
    assert SWEEPS["surveys"].service is run_sweep  # the scheduler's periodic sweep runs it
    await Scheduler(Runtime(settings=db, clock=clock)).run_due(MORNING + timedelta(hours=48))
    reminder = (await to(MOBILE))[-1]
    assert reminder.template == "survey_reminder.j2"
    assert [q["code"] for q in reminder.context["questions"]] == ["improper", "fairness"]
    assert "回复TD退订" in render("messages/survey_reminder.j2", "zh-CN", **reminder.context)
    await run_sweep(MORNING + timedelta(hours=60))
    assert (await templates_to(MOBILE)).count("survey_reminder.j2") == 1
    await run_sweep(MORNING + timedelta(days=7) - timedelta(seconds=1))
    assert (await Survey.get()).status == SurveyStatus.SENT
    await run_sweep(MORNING + timedelta(days=7))
    s = await Survey.get()
    assert s.status == SurveyStatus.EXPIRED and s.completed_at == MORNING + timedelta(days=7)
    assert s.answers == {"credentials": True}


async def test_a_late_reply_is_thanked_once_and_recorded_late(db):
    clock = FakeClock(MORNING)
    w = await survey_world.build("D")
    await surveyed(w, clock)
    clock.set(MORNING + timedelta(days=8))
    await run_sweep(clock.now())
    assert await say(clock, MOBILE, "1 2 5") == "survey_expired"
    s = await Survey.get()
    assert s.late and s.answers == {"credentials": True, "improper": False, "fairness": 5}
    assert s.answered_at == clock.now()
    assert (await to(MOBILE))[-1].context["kind"] == "late"
    await say(clock, MOBILE, "补充：检查很规范")
    assert (await Survey.get()).comment == "补充：检查很规范"
    assert (await templates_to(MOBILE)).count("survey_thanks.j2") == 1


# --- alerts --------------------------------------------------------------------------------------


async def test_improper_or_unfair_answers_alert_the_coordinators_and_never_the_inspectors(db):
    clock = FakeClock(MORNING)
    w = await survey_world.build("DD")
    await surveyed(w, clock, 0)
    await surveyed(w, clock, 1)
    await say(clock, survey_world.MOBILES[0], "1 1 5 他们让我们用指定的消毒公司")
    await say(clock, survey_world.MOBILES[1], "是 否 2")
    alerts = await Alert.filter(kind="survey_alert").order_by("id")
    assert [a.context["reasons"] for a in alerts] == [["improper"], ["unfair"]]
    assert alerts[0].context["answers"] == {"credentials": True, "improper": True, "fairness": 5}
    assert alerts[0].context["comment"] == "他们让我们用指定的消毒公司" and alerts[0].departments == ["SCJG"]
    to_coordinator = await Outbox.filter(template="survey_alert.j2").order_by("id")
    assert [(o.recipient_kind, o.recipient_id) for o in to_coordinator] == [
        (RecipientKind.PERSON, w.coordinator.id)
    ] * 2
    text = render("messages/survey_alert.j2", "zh-CN", **to_coordinator[0].context)
    assert "青岛测试0号餐饮有限公司" in text and "张伟、李娜" in text and "不当利益 是" in text
    inspector_rows = await Outbox.filter(recipient_kind=RecipientKind.INSPECTOR).count()
    inspector_chats = {c.address for c in w.inspector_chats}
    assert inspector_rows == 0 and not await Outbox.filter(address__in=list(inspector_chats)).exists()
    assert not await Outbox.filter(
        recipient_kind=RecipientKind.PERSON, recipient_id__in=[c.id for c in w.inspector_chats]
    ).exists()


# --- several surveys on one phone -----------------------------------------------------------------


async def test_several_open_surveys_ask_which_once_and_a_code_routes_the_reply(db):
    clock = FakeClock(MORNING)
    w = await survey_world.build("DD", mobiles=[MOBILE, MOBILE])  # one bookkeeper answers for two firms
    first = await surveyed(w, clock, 0)
    second = await surveyed(w, clock, 1)
    invites = [o for o in await to(MOBILE) if o.template == "survey_sms.j2"]
    assert [o.context["show_code"] for o in invites] == [False, True]
    assert await say(clock, MOBILE, "1 2 5") == "survey_which_inspection"
    assert await say(clock, MOBILE, "1 2 5") == "survey_which_inspection"
    which = [o for o in await to(MOBILE) if o.template == "survey_which.j2"]
    assert len(which) == 1 and sorted(s["code"] for s in which[0].context["surveys"]) == sorted(
        [first.code, second.code]
    )
    assert await say(clock, MOBILE, f"{second.code.lower()} 1 2 4") == "survey_answered"
    assert (await Survey.get(id=second.id)).answers["fairness"] == 4
    assert await say(clock, MOBILE, f"是 否 5 #{first.code}") == "survey_answered"
    assert (await Survey.get(id=first.id)).answers["fairness"] == 5


async def test_a_code_that_is_not_the_senders_is_refused_without_leaking_anything(db):
    clock = FakeClock(MORNING)
    w = await survey_world.build("DD")
    theirs = await surveyed(w, clock, 0)
    mine = await surveyed(w, clock, 1)
    other = survey_world.MOBILES[1]
    assert await say(clock, other, f"{theirs.code} 2 1 1") == "survey_unknown_code"
    refusal = (await to(other))[-1]
    assert refusal.template == "survey_unknown_code.j2"
    assert [s["code"] for s in refusal.context["surveys"]] == [mine.code]
    text = render("messages/survey_unknown_code.j2", "zh-CN", **refusal.context)
    assert "青岛测试0号" not in text and theirs.entity_id != mine.entity_id
    assert (await Survey.get(id=theirs.id)).answers == {} and (await Survey.get(id=mine.id)).answers == {}
    assert not await Alert.all().exists()


# --- Telegram polls --------------------------------------------------------------------------------


async def answer(clock, chat: str, poll_id: str, option: int | tuple = 0) -> str:
    options = option if isinstance(option, tuple) else (option,)
    event = tg(chat, EventKind.POLL_ANSWER, poll_id=poll_id, option_ids=options)
    return (await receive(event, route, clock)).outcome


async def answer_poll(clock, chat: str, survey: Survey, question: str, poll_id: str, option: int) -> str:
    """Record ``poll_id`` as the sent poll's id (what the dispatcher stores), then vote on it."""
    await _sent(f"survey:{survey.id}:poll:{question}", poll_id)
    return await answer(clock, chat, poll_id, option)


async def test_two_surveys_poll_one_chat_at_once_and_each_answer_goes_to_its_own_poll(db):
    clock = FakeClock(MORNING)
    w = await survey_world.build("D")
    await survey_world.link_chat(w.entities[0], "700")
    first = await surveyed(w, clock, 0)
    assert first.channel.value == "telegram" and first.poll_question == "credentials"
    again = await survey_world.build("D", draw_ref="P1/2026-12-02", entities=w.entities)  # a second visit
    assert await enter_pool(again.inspections[0].id, clock.now()) == "survey_sent"  # no waiting
    second = await Survey.get(inspection_id=again.inspections[0].id)
    assert second.status == SurveyStatus.SENT and second.poll_question == "credentials"
    polls = await to("700")
    assert [p.dedupe_key for p in polls] == [
        f"survey:{first.id}:poll:credentials",
        f"survey:{second.id}:poll:credentials",
    ]
    assert all(p.context["poll"]["options"] == ["survey_opt_yes", "survey_opt_no"] for p in polls)
    # interleaved: the second survey's poll first, then the first's, question by question
    assert await answer_poll(clock, "700", second, "credentials", "poll-b1", 0) == "survey_sent"
    assert await answer_poll(clock, "700", first, "credentials", "poll-a1", 0) == "survey_sent"
    assert await answer(clock, "700", "poll-a1", 1) == "survey_sent"  # a second vote on a poll changes nothing
    assert await answer_poll(clock, "700", first, "improper", "poll-a2", 1) == "survey_sent"
    assert await answer_poll(clock, "700", second, "improper", "poll-b2", 1) == "survey_sent"
    assert await answer(clock, "700", "poll-b2", ()) == "survey_poll_retracted"
    assert (await Outbox.get(dedupe_key=f"survey:{first.id}:poll:fairness")).context["poll"]["options"] == [
        f"survey_opt_{n}" for n in range(1, 6)
    ]
    assert await answer_poll(clock, "700", second, "fairness", "poll-b3", 4) == "survey_answered"  # 5 of 5
    assert await answer_poll(clock, "700", first, "fairness", "poll-a3", 1) == "survey_answered"  # 2 of 5
    done, other = await Survey.get(id=first.id), await Survey.get(id=second.id)
    assert done.answers == {"credentials": True, "improper": False, "fairness": 2}
    assert other.answers == {"credentials": True, "improper": False, "fairness": 5}
    assert done.polls == {
        "sent": ["credentials", "improper", "fairness"],
        "ids": {"poll-a1": "credentials", "poll-a2": "improper", "poll-a3": "fairness"},
    }
    assert other.polls["ids"] == {"poll-b1": "credentials", "poll-b2": "improper", "poll-b3": "fairness"}
    assert [a.key for a in await Alert.filter(kind="survey_alert")] == [f"survey:{first.id}:unfair"]
    thanks = [o.dedupe_key for o in await to("700") if o.template == "survey_thanks.j2"]
    assert len(thanks) == 2 and {k.split(":")[1] for k in thanks} == {str(first.id), str(second.id)}


async def two_polled_chats(clock: FakeClock) -> tuple[Survey, Survey]:
    """Two entities, each with a linked chat (700, 701) and a survey polling it."""
    w = await survey_world.build("DD")
    await survey_world.link_chat(w.entities[0], "700")
    await survey_world.link_chat(w.entities[1], "701")
    return await surveyed(w, clock, 0), await surveyed(w, clock, 1)


async def test_a_poll_answer_that_names_no_poll_we_sent_to_that_chat_is_ignored(db):
    clock = FakeClock(MORNING)
    mine, theirs = await two_polled_chats(clock)
    await _sent(f"survey:{mine.id}:poll:credentials", "poll-1")
    await _sent(f"survey:{theirs.id}:poll:credentials", "poll-2")
    # a survey message to the chat that is not a poll, with its message id
    await Outbox.create(
        dedupe_key=f"survey:{theirs.id}:r:x:0",
        channel="telegram",
        recipient_kind="entity",
        recipient_id=theirs.entity_id,
        address="701",
        template="survey_thanks.j2",
        context={},
        next_attempt_at=MORNING,
        status=OutboxStatus.SENT,
        provider_id="17",
    )
    before = await Outbox.all().count()
    # an id never sent; one sent to another chat; an empty one; a message id: nothing answered, nothing sent
    for chat, poll_id in (("700", "poll-404"), ("700", "poll-2"), ("701", "poll-1"), ("700", ""), ("701", "17")):
        assert await handle_poll_answer(chat, poll_id, [0], clock.now()) == "survey_poll_unknown"
    assert await Outbox.all().count() == before
    assert (await Survey.get(id=mine.id)).answers == {} and (await Survey.get(id=theirs.id)).answers == {}
    assert (await Survey.get(id=mine.id)).polls["ids"] == {}
    # the genuine answers still work afterwards
    assert await handle_poll_answer("700", "poll-1", [0], clock.now()) == "survey_sent"
    assert (await Survey.get(id=mine.id)).answers == {"credentials": True}


async def test_typed_answers_and_an_opt_out_work_in_a_polled_chat(db):
    clock = FakeClock(MORNING)
    w = await survey_world.build("D")
    await survey_world.link_chat(w.entities[0], "700")
    s = await surveyed(w, clock, 0)
    await _sent(f"survey:{s.id}:poll:credentials", "poll-a")
    assert (await receive(tg("700", text="是"), route, clock)).outcome == "survey_sent"
    assert (await to("700"))[-1].context["params"]["question"] == "improper"
    # a vote on the poll whose question was answered by text is known, and changes nothing
    assert await answer(clock, "700", "poll-a", 1) == "survey_sent"
    assert (await receive(tg("700", text="否 5"), route, clock)).outcome == "survey_answered"
    assert (await Survey.get(id=s.id)).answers == {"credentials": True, "improper": False, "fairness": 5}
    assert (await receive(tg("700", text="TD"), route, clock)).outcome == "survey_opted_out"
    confirmation = (await to("700"))[-1]
    assert confirmation.template == "survey_optout.j2" and "channel" not in confirmation.context
    # the renderer is told the row's channel (as the dispatcher does): a chat's confirmation says "messages"
    told = compose(confirmation.template, confirmation.context, "zh-CN", "700", channel=confirmation.channel.value)
    assert "不会再收到此类消息" in told.text, told.text


async def test_the_sweep_starts_a_telegram_survey_an_older_version_left_waiting(db):
    clock = FakeClock(MORNING)
    w = await survey_world.build("D")
    await survey_world.link_chat(w.entities[0], "700")
    s = await surveyed(w, clock, 0)
    # what the one-poll-at-a-time version stored for a survey waiting its turn
    await Survey.filter(id=s.id).update(status=SurveyStatus.PENDING, sent_at=None, poll_question=None, polls={})
    await Outbox.filter(address="700").delete()
    assert (await run_sweep(clock.now()))["started"] == 1
    started = await Survey.get(id=s.id)
    assert started.status == SurveyStatus.SENT and started.poll_question == "credentials"
    assert [o.dedupe_key for o in await to("700")] == [f"survey:{s.id}:poll:credentials"]
    assert (await run_sweep(clock.now()))["started"] == 0


def test_each_text_goes_to_the_handler_of_its_channel_and_role():
    import handlers.features  # noqa: F401  (registers the routes)
    from handlers import inspector
    from handlers import surveys as survey_handlers
    from handlers.router import _find
    from models.messaging import Role
    from services.inbound import Context

    def handler(event, roles):
        found = _find(Context(event=event, bindings=[], clock=FakeClock(), conn=None), set(roles))
        return found.handler if found is not None and found.allows(set(roles)) else None

    assert handler(tg("801", text="1 2 5"), {Role.INSPECTOR}) is inspector.text
    assert handler(tg("700", text="1 2 5"), {Role.ENTITY}) is survey_handlers.telegram_reply
    assert handler(sms(MOBILE, "1 2 5"), set()) is survey_handlers.sms_reply
    assert handler(tg("12345", text="1 2 5"), set()) is None


# --- delivery receipts -----------------------------------------------------------------------------


async def _sent(dedupe_key: str, sid: str) -> None:
    """What the dispatcher records once the gateway took the message."""
    await Outbox.filter(dedupe_key=dedupe_key).update(status=OutboxStatus.SENT, provider_id=sid)


def receipt(sid: str, status: str, error_code: str = "") -> InboundEvent:
    """A Twilio status callback, as its adapter reads it."""
    return status_event({"MessageSid": sid, "MessageStatus": status, "To": MOBILE, "ErrorCode": error_code})


async def outcomes(sid: str) -> dict[str, str]:
    rows = await InboundRow.filter(external_id__startswith=f"{sid}:").values_list("external_id", "outcome")
    return {key.split(":", 1)[1]: outcome for key, outcome in rows}


async def test_receipts_that_come_before_their_send_wait_and_are_applied_once_in_order(db):
    clock = FakeClock(MORNING)
    w = await survey_world.build("DDD")
    delivered, lost, _ = [await surveyed(w, clock, i) for i in range(3)]
    # the gateway answers SM1 and SM2 only after it posted their statuses: no row has those ids yet
    for event in (receipt("SM1", "sent"), receipt("SM1", "delivered"), receipt("SM2", "undelivered", "30003")):
        await receive(event, route, clock)
    clock.advance(timedelta(seconds=5))
    for event in (receipt("SM1", "undelivered", "30003"), receipt("SM1", "delivered")):  # late; and a retry
        await receive(event, route, clock)
    await receive(receipt("SMnone", "delivered"), route, clock)  # no send of ours will ever have it
    assert await outcomes("SM1") == {
        "sent": "delivery_sent",
        "delivered": "delivery_waiting",
        "undelivered": "delivery_waiting",
    }
    assert await WaitingReceipt.all().count() == 4  # the retry is the same event: stored once
    # the dispatcher records the ids, and applies what waits for them in the same transaction
    clock.advance(timedelta(seconds=5))
    async with in_transaction() as conn:
        for s, sid in ((delivered, "SM1"), (lost, "SM2")):
            await (
                Outbox.filter(dedupe_key=f"survey:{s.id}:invite")
                .using_db(conn)
                .update(status=OutboxStatus.SENT, provider_id=sid)
            )
        assert await apply_waiting([("sms", "SM1"), ("sms", "SM2")], clock.now(), conn) == 3
    row = await Outbox.get(provider_id="SM1")
    assert row.status == OutboxStatus.DELIVERED and row.delivered_at == MORNING  # when the receipt came
    assert await outcomes("SM1") == {
        "sent": "delivery_sent",
        "delivered": "delivered",
        "undelivered": "delivery_after_delivered",
    }
    assert (await Outbox.get(provider_id="SM2")).last_error == "undelivered:30003"
    assert (await Survey.get(id=lost.id)).status == SurveyStatus.UNDELIVERABLE
    assert (await Survey.get(id=delivered.id)).status == SurveyStatus.SENT
    async with in_transaction() as conn:  # recorded again (a resend after a lost lease): nothing waits any more
        assert await apply_waiting([("sms", "SM1")], clock.now(), conn) == 0
    # the sweep: a receipt still unmatched after WAIT is expired, logged and counted by its outcome
    assert await sweep_receipts(clock.now()) == {"applied": 0, "expired": 0}
    assert await sweep_receipts(clock.now() + WAIT) == {"applied": 0, "expired": 1}
    assert await outcomes("SMnone") == {"delivered": "delivery_expired"}
    assert not await WaitingReceipt.exists()


async def test_the_receipts_sweep_applies_a_receipt_whose_send_was_recorded_without_it(db):
    clock = FakeClock(MORNING)
    w = await survey_world.build("D")
    s = await surveyed(w, clock)
    # an Aliyun SmsReport (keyed biz_id:phone) this time: the same wait, whichever adapter
    report = report_event({"biz_id": "900^0", "phone_number": MOBILE.removeprefix("+86"), "success": True})
    assert (await receive(report, route, clock)).outcome == "delivery_waiting"
    await _sent(f"survey:{s.id}:invite", "900^0")  # recorded, but not through apply_waiting
    assert await sweep_receipts(clock.now()) == {"applied": 1, "expired": 0}
    assert (await Outbox.get(provider_id="900^0")).status == OutboxStatus.DELIVERED
    assert await outcomes("900^0") == {MOBILE.removeprefix("+86"): "delivered"}
    assert await sweep_receipts(clock.now() + WAIT) == {"applied": 0, "expired": 0}


async def test_a_receipt_that_finds_its_row_applies_the_ones_still_waiting_for_it_first(db):
    """Between the commit that records an id and the application of what waited for it (or the
    sweep's), a later receipt for that send may come: it applies the waiting ones first, in the
    order they came, so a late ``undelivered`` still does not overwrite an earlier ``delivered``."""
    clock = FakeClock(MORNING)
    w = await survey_world.build("D")
    s = await surveyed(w, clock)
    assert (await receive(receipt("SM1", "delivered"), route, clock)).outcome == "delivery_waiting"
    await _sent(f"survey:{s.id}:invite", "SM1")  # recorded; what waits for it not applied yet
    clock.advance(timedelta(seconds=5))
    assert (await receive(receipt("SM1", "undelivered", "30003"), route, clock)).outcome == "delivery_after_delivered"
    assert await outcomes("SM1") == {"delivered": "delivered", "undelivered": "delivery_after_delivered"}
    row = await Outbox.get(provider_id="SM1")
    assert row.status == OutboxStatus.DELIVERED and row.delivered_at == MORNING
    assert (await Survey.get(id=s.id)).status == SurveyStatus.SENT  # no fallback started
    assert not await WaitingReceipt.exists()
    assert await sweep_receipts(clock.now()) == {"applied": 0, "expired": 0}


async def test_poll_answers_that_come_before_their_poll_id_wait_and_are_applied_once(db):
    clock = FakeClock(MORNING)
    mine, theirs = await two_polled_chats(clock)

    async def outcome(event: InboundEvent) -> str:
        return (await InboundRow.get(channel="telegram", external_id=event.external_id)).outcome

    # the entity votes before the dispatcher has stored the poll's id; Telegram redelivers the update
    vote = tg("700", EventKind.POLL_ANSWER, poll_id="poll-1", option_ids=(0,))
    assert (await receive(vote, route, clock)).outcome == "survey_poll_waiting"
    assert (await receive(vote, route, clock)).duplicate
    # another chat naming that id: kept too, but the poll will not be theirs
    stranger = tg("701", EventKind.POLL_ANSWER, poll_id="poll-1", option_ids=(1,))
    assert (await receive(stranger, route, clock)).outcome == "survey_poll_waiting"
    assert await WaitingReceipt.all().count() == 2 and (await Survey.get(id=mine.id)).answers == {}
    # the dispatcher records the id and applies what waits for it, in the same transaction
    clock.advance(timedelta(seconds=5))
    async with in_transaction() as conn:
        await (
            Outbox.filter(dedupe_key=f"survey:{mine.id}:poll:credentials")
            .using_db(conn)
            .update(status=OutboxStatus.SENT, provider_id="poll-1")
        )
        assert await apply_waiting([("telegram", "poll-1")], clock.now(), conn) == 2
    s = await Survey.get(id=mine.id)
    assert s.answers == {"credentials": True} and s.polls["ids"] == {"poll-1": "credentials"}
    assert s.poll_question == "improper" and (await Survey.get(id=theirs.id)).answers == {}
    assert (await outcome(vote), await outcome(stranger)) == ("survey_sent", "survey_poll_unknown")
    assert f"survey:{mine.id}:poll:improper" in [o.dedupe_key for o in await to("700")]
    async with in_transaction() as conn:  # recorded again (a resend after a lost lease): nothing waits any more
        assert await apply_waiting([("telegram", "poll-1")], clock.now(), conn) == 0
    assert (await Survey.get(id=mine.id)).answers == {"credentials": True}
    # the sweep applies one whose id was recorded without apply_waiting, and expires one never recorded
    late = tg("700", EventKind.POLL_ANSWER, poll_id="poll-2", option_ids=(1,))
    lost = tg("700", EventKind.POLL_ANSWER, poll_id="poll-lost", option_ids=(0,))
    for event in (late, lost):
        assert (await receive(event, route, clock)).outcome == "survey_poll_waiting"
    await _sent(f"survey:{mine.id}:poll:improper", "poll-2")
    clock.advance(timedelta(seconds=5))
    assert await sweep_receipts(clock.now()) == {"applied": 1, "expired": 0}
    assert (await Survey.get(id=mine.id)).answers == {"credentials": True, "improper": False}
    assert await sweep_receipts(clock.now() + WAIT) == {"applied": 0, "expired": 1}
    assert (await outcome(late), await outcome(lost)) == ("survey_sent", "survey_poll_expired")
    assert not await WaitingReceipt.exists()
    # an answer to a recorded poll is applied at once, as before; one naming another chat's poll does not wait
    assert await answer(clock, "701", "poll-2", 0) == "survey_poll_unknown"
    assert not await WaitingReceipt.exists()


async def test_receipts_update_the_outbox_and_an_undelivered_survey_falls_back_or_is_undeliverable(db):
    clock = FakeClock(MORNING)
    w = await survey_world.build("DDDD")
    linked, lost, dead = [await surveyed(w, clock, i) for i in range(3)]
    for s, sid in ((linked, "SM1"), (lost, "SM2"), (dead, "SM3")):
        await _sent(f"survey:{s.id}:invite", sid)
    await survey_world.link_chat(w.entities[0], "700")  # linked after the SMS went out

    event = InboundEvent(
        channel="sms",
        external_id="SM1:undelivered",
        sender=MOBILE,
        kind=EventKind.DELIVERY,
        message_id="SM1",
        status="undelivered",
        error_code="30003",
    )
    assert (await receive(event, route, clock)).outcome == "survey_fallback_telegram"
    s = await Survey.get(id=linked.id)
    assert (s.channel.value, s.address, s.poll_question) == ("telegram", "700", "credentials")
    assert (await to("700"))[0].context["params"]["intro"] is True
    row = await Outbox.get(dedupe_key=f"survey:{linked.id}:invite")
    assert row.status == OutboxStatus.DEAD and row.last_error == "undelivered:30003"

    assert await delivery_status("SM2", "failed", "30008", clock.now()) == "survey_undeliverable"
    assert (await Survey.get(id=lost.id)).status == SurveyStatus.UNDELIVERABLE

    assert await delivery_status("SM3", "sent", "", clock.now()) == "delivery_sent"
    assert await delivery_status("SM3", "delivered", "", clock.now()) == "delivered"
    row = await Outbox.get(provider_id="SM3")
    assert row.status == OutboxStatus.DELIVERED and row.delivered_at == MORNING
    assert await delivery_status("SM3", "undelivered", "30003", clock.now()) == "delivery_after_delivered"
    assert (await Survey.get(id=dead.id)).status == SurveyStatus.SENT
    assert await delivery_status("SMnone", "delivered", "", clock.now()) == "delivery_unknown"
    # a gateway that refused the invitation outright sends no receipt: the sweep finds it
    refused = await surveyed(w, clock, 3)
    await Outbox.filter(dedupe_key=f"survey:{refused.id}:invite").update(
        status=OutboxStatus.DEAD, last_error="invalid_number"
    )
    assert (await run_sweep(clock.now()))["fallback"] == 1
    assert (await Survey.get(id=refused.id)).status == SurveyStatus.UNDELIVERABLE


# --- scores and who may see them -------------------------------------------------------------------


async def test_scores_need_five_responses_for_anyone_but_coordinators(db):
    clock = FakeClock(MORNING)
    w = await survey_world.build("DDDDD")
    for i in range(4):
        await surveyed(w, clock, i)
        await say(clock, survey_world.MOBILES[i], "1 1 5" if i == 0 else "1 2 5")
    window = timedelta(days=30)
    public = await integrity(["SCJG"], window, clock.now(), coordinator=False)
    assert public.rows == () and public.withheld == 2
    coord = await integrity(["SCJG"], window, clock.now())
    # one "improper" in four responses: 100 − 60 × 1/(4 + 3)
    assert [(r.name, r.score.n, r.score.improper, r.score.score) for r in coord.rows] == [
        ("张伟", 4, 1, 91.4),
        ("李娜", 4, 1, 91.4),
    ]
    assert coord.responses == 4 and coord.withheld == 0
    await surveyed(w, clock, 4)
    await say(clock, survey_world.MOBILES[4], "1 2 4")
    public = await integrity(["SCJG"], window, clock.now(), coordinator=False)
    assert {r.score.n for r in public.rows} == {5} and public.withheld == 0
    assert (await integrity(["WSJ"], window, clock.now())).rows == ()  # another department's inspectors
    clock.advance(timedelta(days=31))
    assert (await integrity(["SCJG"], window, clock.now())).rows == ()  # outside the window


async def test_integrity_is_for_coordinators_and_nothing_an_inspector_reaches_holds_answers(db):
    clock = FakeClock(MORNING)
    w = await survey_world.build("D")
    await surveyed(w, clock)
    await say(clock, MOBILE, "1 1 1 他收了红包")
    for person in w.inspectors:
        assert "红包" not in str(await open_for(person.id, clock.now(), survey_world.ZONE))
    chat = w.inspector_chats[0].address
    outcome = (await receive(tg(chat, EventKind.COMMAND, command="integrity"), route, clock)).outcome
    assert outcome == "integrity_refused"
    for row in await Outbox.filter(address__in=[c.address for c in w.inspector_chats]):
        assert "红包" not in str(row.context) and "answers" not in row.context
    # a coordinator asks
    outcome = (await receive(tg("900", EventKind.COMMAND, command="integrity", argument="30"), route, clock)).outcome
    assert outcome == "integrity"
    report = (await to("900"))[-1]
    text = render(f"messages/{report.template}", "zh-CN", **report.context)
    assert "近30天" in text and "张伟（青岛市市场监督管理局）" in text and report.context["withheld"] == 0
    bad = tg("900", EventKind.COMMAND, command="integrity", argument="abc")
    assert (await receive(bad, route, clock)).outcome == "usage"
