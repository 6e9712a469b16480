"""Review before publication, through the real bot and the Bot API simulator: a submitted result
waits (待公示) for a coordinator of the plan's department who was not on the team; returned with a
comment, the lead corrects it, the approved correction is reviewed again and published. The review
deadline reminds and escalates, the publication deadline warns and is missed, each once."""

from __future__ import annotations

from datetime import timedelta

from models.alerts import Alert
from models.draws import Inspection
from models.messaging import ChatBinding, Role
from models.onsite import Correction, Result
from models.publication import Publication, Review, ReviewStatus
from scheduler import SWEEPS, Scheduler
from services import audit, public
from services.alerts import DIGEST_WAIT
from services.identity import create_invite
from services.onsite import review as review_service
from tests.e2e.harness import eventually, spine
from tests.e2e.test_onsite_chat import actions, bind_coordinator, last_with, lead_and_mate
from tests.services import draw_world as world


async def _record(chat, rid: int, fail_note: str) -> None:
    """The lead records item 1 合格, item 2 不合格 with a note, and submits."""
    first = (await chat.command("result"))[-1]
    note1 = (await chat.press(first, f"fnd:pass:{rid}:0"))[-1]
    second = (await chat.press(note1, f"fnd:skip:{rid}:0"))[-1]
    await chat.press(second, f"fnd:fail:{rid}:1")
    summary = (await chat.say(fail_note))[-1]
    assert "检查结果已提交" in (await chat.press(summary, f"fnd:submit:{rid}"))[-1].text


async def test_review_return_resubmit_approve_and_deadlines(db, tmp_path):
    async with spine(db, clock=world.clock()) as s:
        lead, mate, chat, mate_chat = await lead_and_mate(s, tmp_path)
        coordinator = await bind_coordinator(s)
        await chat.command("result")
        rid = (await Result.get(inspection_id=lead.inspection_id)).id
        chat.new()
        await _record(chat, rid, "冷藏柜温度 12℃，超标")
        review = await Review.get(result_id=rid)
        assert review.status == ReviewStatus.PENDING
        insp = await Inspection.get(id=lead.inspection_id).prefetch_related("draw")
        ref = f"{insp.draw.draw_ref}/{insp.no}"  # the public reference names the review (issue 18)
        asked = coordinator.new()[-1].text
        assert "待审核" in asked and f"/approve {ref}" in asked and f"#{review.id}" not in asked
        pub = await Publication.get(inspection_id=lead.inspection_id)
        assert pub.published_at is None and pub.result_id is None
        uscc = lead.inspection.entity.uscc
        page = await public.entity_page(uscc, s.clock.now())
        assert [i.result for i in page.inspections.rows] == ["pending"]  # 待公示 until approved

        # a member of the team who is also a coordinator (the same chat) may not review
        code = await create_invite(Role.COORDINATOR, s.clock, departments=("SCJG",))
        s.sim.send_command(mate_chat.user, "start", code)
        await eventually(lambda: ChatBinding.filter(address=str(mate_chat.user.id), role=Role.COORDINATOR).exists())
        await mate_chat.settle()
        mate_chat.new()
        assert "不能审核本组" in (await mate_chat.command("approve", ref))[-1].text
        elsewhere = await bind_coordinator(s, "WSJ")
        assert "没有待审核的结果" in (await elsewhere.command("approve", ref))[-1].text
        empty = (await coordinator.command("return", ref))[-1].text
        assert "退回须写明意见" in empty and "/return 检查编号 意见" in empty  # an inspection, not a review number
        assert "用法" in (await coordinator.command("approve", "abc"))[-1].text
        assert "完整的检查编号" in (await coordinator.command("approve", str(insp.no)))[-1].text  # a bare number
        assert "没有找到检查" in (await coordinator.command("approve", f"{insp.draw.draw_ref}/999"))[-1].text
        assert (await Review.get(id=review.id)).status == ReviewStatus.PENDING

        # the review deadline: reminded halfway, escalated at the deadline, each once
        sched = Scheduler(s.rt)
        s.clock.set(review.remind_at + timedelta(minutes=1))
        await SWEEPS["reviews"](sched, s.clock.now())  # the scheduler's row calls the service
        assert await Alert.filter(kind="review_reminder").count() == 1
        assert await review_service.sweep_reviews(s.clock.now(), zone=world.ZONE) == 0
        await s.deliver()
        assert not any("审核提醒" in m.text for m in coordinator.new())  # a nudge: in the next digest
        s.clock.advance(DIGEST_WAIT)
        await SWEEPS["alert_digests"](sched, s.clock.now())
        await s.deliver()
        digest = coordinator.new()[-1].text
        assert "预警汇总" in digest and "审核提醒 1 条" in digest and f"审核提醒：{ref}" in digest
        s.clock.set(review.due_at + timedelta(minutes=1))
        assert await review_service.sweep_reviews(s.clock.now(), zone=world.ZONE) == 1
        overdue = await Alert.get(kind="review_overdue")
        assert overdue.departments == [] and overdue.context["review"] == review.id  # to the admins

        # returned with a comment: the lead is told, corrects, a coordinator approves the correction
        returned = (await coordinator.command("return", f"{insp.draw.draw_ref} {insp.no} 第2项缺少温度计照片，请复核"))[
            -1
        ]
        assert "已退回" in returned.text
        assert "已处理过" in (await coordinator.command("approve", ref))[-1].text
        told = chat.new()
        await s.deliver()
        told += chat.new()
        assert any("审核退回" in m.text and "缺少温度计照片" in m.text for m in told)
        shown = (await chat.command("result", ref))[-1]
        await chat.press(shown, f"fnd:fix:{rid}")
        draft = (await chat.say("按审核意见复核第2项"))[-1]
        new = await Result.get(supersedes_id=rid)
        item2 = (await chat.press(draft, f"fnd:edit:{new.id}:1"))[-1]
        note = (await chat.press(item2, f"fnd:pass:{new.id}:1"))[-1]
        summary = (await chat.press(note, f"fnd:skip:{new.id}:1"))[-1]
        await chat.press(summary, f"fnd:submit:{new.id}")
        corr = await Correction.get(original_id=rid)
        # approved by a coordinator who was on the team: not eligible to review, so a new review opens
        # (an eligible approver's approval would count as the review too: test_publication.py)
        await s.deliver()
        asked_mate = last_with(mate_chat.s.sim.messages(mate_chat.user), f"cor:ok:{corr.id}")
        decided = [m.text for m in await mate_chat.press(asked_mate, f"cor:ok:{corr.id}")]
        assert any("的更正" in t and "已批准" in t and "已公示" not in t for t in decided), decided
        await s.deliver()  # the other coordinator's correction card: edited to the outcome, no buttons left
        card = next(m for m in coordinator.s.sim.messages(coordinator.user) if m.text.startswith("【更正已批准】"))
        assert card.edited and card.callback_data == [] and "无需再处理" in card.text, card.text
        second = await Review.get(result_id=new.id)
        assert second.status == ReviewStatus.PENDING
        assert [i.result for i in (await public.entity_page(uscc, s.clock.now())).inspections.rows] == ["pending"]

        # the publication deadline passes unpublished: warned once, missed once
        pub = await Publication.get(inspection_id=lead.inspection_id)
        assert await review_service.sweep_publications(s.clock.now(), zone=world.ZONE) == 0  # weeks to go
        s.clock.set(s.clock.now().replace(year=pub.due_on.year, month=pub.due_on.month, day=pub.due_on.day))
        await SWEEPS["publications"](sched, s.clock.now())
        assert await Alert.filter(kind="publication_near").count() == 1
        assert await review_service.sweep_publications(s.clock.now(), zone=world.ZONE) == 0
        s.clock.advance(2 * 86400)
        assert await review_service.sweep_publications(s.clock.now(), zone=world.ZONE) == 1
        assert {a.kind for a in await Alert.filter(kind__startswith="publication")} == {
            "publication_near",
            "publication_missed",
        }

        await s.deliver()
        asked = last_with(coordinator.s.sim.messages(coordinator.user), f"rev:ok:{second.id}")
        approved = (await coordinator.press(asked, f"rev:ok:{second.id}"))[-1]  # the alert's button
        assert "已审核通过" in approved.text
        pub = await Publication.get(inspection_id=lead.inspection_id)
        assert pub.result_id == new.id and pub.published_at is not None and pub.on_time is False
        rows = (await public.entity_page(uscc, s.clock.now())).inspections.rows
        assert rows[0].result == "pass" and [i.outcome for i in rows[0].items] == ["pass", "pass"]
        done = await actions()
        assert done["review.opened"] == 2 and done["review.returned"] == 1 and done["review.approved"] == 1
        assert done["result.published"] == 1 and done["review.reminded"] == 1 and done["review.escalated"] == 1
        assert (await audit.verify())[1] is None


async def test_an_item_marked_serious_flags_the_case_for_referral(db, tmp_path):
    async with spine(db, clock=world.clock()) as s:
        lead, _, chat, _ = await lead_and_mate(s, tmp_path)
        coordinator = await bind_coordinator(s)
        first = (await chat.command("result"))[-1]
        rid = (await Result.get(inspection_id=lead.inspection_id)).id
        note1 = (await chat.press(first, f"fnd:pass:{rid}:0"))[-1]
        second = (await chat.press(note1, f"fnd:skip:{rid}:0"))[-1]
        await chat.press(second, f"fnd:serious:{rid}:1")  # 「严重不合格」
        summary = (await chat.say("使用过期原料加工食品"))[-1]
        assert "（严重）" in summary.text
        assert await Publication.filter(inspection_id=lead.inspection_id).count() == 0  # not yet submitted
        assert "检查结果已提交" in (await chat.press(summary, f"fnd:submit:{rid}"))[-1].text
        pub = await Publication.get(inspection_id=lead.inspection_id)
        assert pub.referred_at is not None and "使用过期原料" in pub.referral_reason
        alert = await Alert.get(kind="case_referral")
        assert alert.context["why"] == "serious" and alert.departments == ["SCJG"]
        done = await actions()
        assert done["finding.serious"] == 1 and done["case.referred"] == 1
        assert (await audit.verify())[1] is None

        # the other commands on the inspection's reference: their usage, refusals and answers in chat
        insp = await Inspection.get(id=lead.inspection_id).prefetch_related("draw")
        ref = f"{insp.draw.draw_ref}/{insp.no}"
        coordinator.new()
        assert "移送立案须写明理由" in (await coordinator.command("refer", ref))[-1].text
        assert "已标记过移送立案" in (await coordinator.command("refer", f"{ref} 再次移送"))[-1].text
        assert "用法：/uphold" in (await coordinator.command("uphold"))[-1].text
        assert "没有待处理的企业异议" in (await coordinator.command("uphold", ref))[-1].text
        assert "没有待处理的企业异议" in (await coordinator.command("dismiss", f"{ref} 理由"))[-1].text
        chat.new()
        assert "用法：/recheck" in (await chat.command("recheck", "abc"))[-1].text
        assert "没有找到指派给您的复查" in (await chat.command("recheck", f"{ref} 已整改"))[-1].text
        assert await actions() == done  # nothing more was done


async def test_a_typed_approve_takes_the_button_off_every_coordinators_review_card(db, tmp_path):
    """The 【待审核】 card goes to each coordinator of the plan with 「审核通过」. Once one of them
    types /approve, every card is edited to say who approved it, without the button (as a press
    replaces the message it is on); /return does the same for the next review."""
    async with spine(db, clock=world.clock()) as s:
        lead, _, chat, _ = await lead_and_mate(s, tmp_path)
        first, second = await bind_coordinator(s), await bind_coordinator(s)
        await chat.command("result")
        rid = (await Result.get(inspection_id=lead.inspection_id)).id
        await _record(chat, rid, "冷藏柜温度 12℃，超标")
        await s.deliver()
        review = await Review.get(result_id=rid)
        cards = [last_with(c.s.sim.messages(c.user), f"rev:ok:{review.id}") for c in (first, second)]
        insp = await Inspection.get(id=lead.inspection_id).prefetch_related("draw")
        ref = f"{insp.draw.draw_ref}/{insp.no}"

        assert "已审核通过" in (await first.command("approve", ref))[-1].text
        await s.deliver()
        for c, card in zip((first, second), cards, strict=True):
            now = next(m for m in c.s.sim.messages(c.user) if m.message_id == card.message_id)
            assert now.edited and now.callback_data == [], now.text  # the same message, no button left
            assert now.text.startswith("【已审核通过】") and ref in now.text and "协调员SCJG" in now.text, now.text
        assert (await Review.get(id=review.id)).status == ReviewStatus.APPROVED
