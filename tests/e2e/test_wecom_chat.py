"""An inspector's and a coordinator's work over WeCom, through the real WecomChannel, the
service's callback route and the WeCom simulator: bound from the directory's userid (no invite),
the assignment card with its buttons, accept (the card updated), recuse with a drawn replacement,
check-in by location, a photo fetched with media/get, the result submitted; a coordinator's
command; a member the directory does not know."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from models.directory import Inspector
from models.draws import Assignment, AssignmentStatus, Recusal
from models.messaging import Channel, ChatBinding, InboundEvent, Outbox, Role
from models.onsite import CheckIn, Photo, PhotoStatus, Result
from models.publication import Publication, Rectification, RectificationStatus, Review, ReviewStatus
from scheduler import SWEEPS, Scheduler
from services import audit
from services.identity import bind_coordinator
from simulators.telegram.media import make_png
from tests.e2e.test_onsite_chat import on_site_now, setup, site
from tests.e2e.wecom_harness import Member, keys, task_id, text, wecom_spine, with_key
from tests.services import draw_world as world


async def member_for(s, assignment: Assignment, userid: str) -> Member:
    await Inspector.filter(id=assignment.inspector_id).update(wecom_userid=userid)
    m = Member(s, userid)
    await m.enter()  # opening the application binds them from the directory
    return m


async def test_inspector_workflow_and_coordinator_over_wecom(db, tmp_path):
    async with wecom_spine(db, clock=world.clock()) as s:
        await setup(s, tmp_path)
        lead = await (
            Assignment.filter(seat=1, inspection__stratum__in=["D", "E"])
            .order_by("id")
            .prefetch_related("inspector", "inspection__entity")
            .first()
        )
        mate = await Assignment.filter(inspection_id=lead.inspection_id, seat=2).prefetch_related("inspector").first()
        await s.deliver()  # nobody is bound yet: the cards wait for an address
        assert not s.sim.members

        chat = await member_for(s, lead, "lead.01")
        binding = await ChatBinding.get(channel=Channel.WECOM, address="lead.01")
        assert binding.role == Role.INSPECTOR and binding.inspector_id == lead.inspector_id
        card = with_key(chat.inbox, f"asg:accept:{lead.id}")
        assert keys(card) == [f"asg:accept:{lead.id}", f"asg:recuse:{lead.id}"]
        assert str(lead.inspection.no) in text(card) or lead.inspection.entity.name in str(chat.inbox)
        # the chat row was enqueued for telegram and went where the person is bound
        row = await Outbox.get(dedupe_key=f"asg:{lead.id}:sent")
        assert row.channel == Channel.WECOM and row.provider_id == card["card"]["task_id"]

        accepted = await chat.press(card, f"asg:accept:{lead.id}")
        assert (await Assignment.get(id=lead.id)).status == AssignmentStatus.ACCEPTED
        assert any(m["msgtype"] == "update" and m["task_id"] == card["card"]["task_id"] for m in accepted)
        assert any("已接受" in text(m) for m in accepted)
        again = await chat.press(card, f"asg:accept:{lead.id}")  # a double tap changes nothing
        assert (await Assignment.get(id=lead.id)).status == AssignmentStatus.ACCEPTED and again

        # the mate recuses: type → skip the note → confirm → a replacement is drawn
        mate_chat = await member_for(s, mate, "mate-02")
        mcard = with_key(mate_chat.inbox, f"asg:recuse:{mate.id}")
        step1 = with_key(await mate_chat.press(mcard, f"asg:recuse:{mate.id}"), f"rcs:type:{mate.id}:close_relative")
        step2 = (await mate_chat.press(step1, f"rcs:type:{mate.id}:close_relative"))[-1]
        step3 = with_key(await mate_chat.say("配偶在该公司任职"), f"rcs:confirm:{mate.id}")
        done = await mate_chat.press(step3, f"rcs:confirm:{mate.id}")
        assert any("替补" in text(m) for m in done), [text(m) for m in done]
        recusal = await Recusal.get(assignment_id=mate.id)
        assert recusal.replacement_id is not None and step2
        assert any(mate.inspector.name in text(m) for m in chat.new())  # the lead is told of the change

        # on site: check in by location, a photo, the result
        await on_site_now(s, lead)
        here = site(lead.inspection.entity)
        checked = await chat.location(*here)
        assert await CheckIn.filter(assignment_id=lead.id).exists(), [text(m) for m in checked]
        picture = make_png(40, 30, (10, 120, 200))
        got = await chat.photo(picture)
        assert any("照片已收到" in text(m) for m in got)
        photo = await Photo.get(inspection_id=lead.inspection_id)
        assert photo.file_id.startswith("wecom:")
        await SWEEPS["photos"](Scheduler(s.rt), s.clock.now())
        photo = await Photo.get(id=photo.id)
        digest = hashlib.sha256(picture).hexdigest()
        assert (photo.status, photo.sha256) == (PhotoStatus.STORED, digest)
        assert (db.data_dir / photo.path).read_bytes() == picture

        first = (await chat.command("result"))[-1]
        rid = (await Result.get(inspection_id=lead.inspection_id)).id
        note1 = with_key(await chat.press(first, f"fnd:pass:{rid}:0"), f"fnd:skip:{rid}:0")
        second = with_key(await chat.press(note1, f"fnd:skip:{rid}:0"), f"fnd:pass:{rid}:1")
        note2 = with_key(await chat.press(second, f"fnd:pass:{rid}:1"), f"fnd:skip:{rid}:1")
        summary = with_key(await chat.press(note2, f"fnd:skip:{rid}:1"), f"fnd:submit:{rid}")
        submitted = await chat.press(summary, f"fnd:submit:{rid}")
        assert any("检查结果已提交" in text(m) for m in submitted)
        assert (await Result.get(id=rid)).status.value == "submitted"

        # a coordinator bound by the administrator (no invite), asking for the status of a draw
        await bind_coordinator(Channel.WECOM, "coord.scjg", ("SCJG",), "协调员", s.clock)
        coord = Member(s, "coord.scjg")
        listed = await coord.command("alerts")
        assert listed and all(m["msgtype"] in ("text", "template_card") for m in listed)
        events = await InboundEvent.filter(channel="wecom", sender="coord.scjg").values_list("outcome", flat=True)
        assert events and all(o not in ("unknown", "not_understood") for o in events), events
        assert (await audit.verify())[1] is None


async def test_unknown_member_gets_a_polite_refusal_and_nothing_else(db, tmp_path):
    async with wecom_spine(db, clock=world.clock()) as s:
        await world.build(n_entities=2, n_scjg=2, n_wsj=0)
        stranger = Member(s, "stranger")
        for act in (stranger.enter(), stranger.say("你好"), stranger.command("tasks")):
            got = await act
            assert len(got) == 1 and "尚未登记" in text(got[0])
        assert not await ChatBinding.filter(address="stranger").exists()
        assert await InboundEvent.filter(sender="stranger").count() == 3


async def test_a_revoked_directory_binding_is_not_recreated(db, tmp_path):
    async with wecom_spine(db, clock=world.clock()) as s:
        w = await world.build(n_entities=2, n_scjg=2, n_wsj=0)
        inspector = w.inspectors["S01"]
        await Inspector.filter(id=inspector.id).update(wecom_userid="s01")
        member = Member(s, "s01")
        assert "/tasks" in text((await member.enter())[-1])  # bound from the directory: the help
        await ChatBinding.filter(address="s01").update(revoked_at=s.clock.now())
        got = await member.say("/tasks")
        assert len(got) == 1 and "尚未登记" in text(got[0])
        assert await ChatBinding.filter(address="s01").count() == 1


async def test_a_reinspection_over_wecom_same_conversation_same_review(db, tmp_path):
    """The re-inspection is channel-blind: the assignment card's 「开始复查」 button, the findings
    buttons and the coordinator's /approve work over WeCom exactly as over Telegram."""
    async with wecom_spine(db, clock=world.clock()) as s:
        await setup(s, tmp_path)
        lead = await (
            Assignment.filter(seat=1, inspection__stratum__in=["D", "E"])
            .order_by("id")
            .prefetch_related("inspector", "inspection__entity", "draw")
            .first()
        )
        chat = await member_for(s, lead, "lead.01")
        await chat.press(with_key(chat.inbox, f"asg:accept:{lead.id}"), f"asg:accept:{lead.id}")
        await on_site_now(s, lead)
        first = (await chat.command("result"))[-1]
        rid = (await Result.get(inspection_id=lead.inspection_id)).id
        note1 = with_key(await chat.press(first, f"fnd:pass:{rid}:0"), f"fnd:skip:{rid}:0")
        second = with_key(await chat.press(note1, f"fnd:skip:{rid}:0"), f"fnd:fail:{rid}:1")
        note2 = with_key(await chat.press(second, f"fnd:fail:{rid}:1"), f"fnd:skip:{rid}:1")
        summary = with_key(await chat.press(note2, f"fnd:skip:{rid}:1"), f"fnd:submit:{rid}")
        await chat.press(summary, f"fnd:submit:{rid}")
        await bind_coordinator(Channel.WECOM, "coord.scjg", ("SCJG",), "协调员", s.clock)
        coord = Member(s, "coord.scjg")
        ref = f"{lead.draw.draw_ref}/{lead.inspection.no}"
        assert any("已审核通过" in text(m) for m in await coord.command("approve", ref))

        order = await Rectification.get(inspection_id=lead.inspection_id)
        s.clock.set(datetime(order.due_on.year, order.due_on.month, order.due_on.day, 2, 0, tzinfo=UTC))
        await SWEEPS["rectifications"](Scheduler(s.rt), s.clock.now())
        await s.deliver()
        card = with_key(chat.new(), f"fnd:recheck:{order.id}")
        item = (await chat.press(card, f"fnd:recheck:{order.id}"))[-1]
        again = await Result.get(reinspection_id=order.id)
        assert "【复查】" in text(item) and keys(item)[0] == f"fnd:pass:{again.id}:0"
        note = with_key(await chat.press(item, f"fnd:fail:{again.id}:0"), f"fnd:skip:{again.id}:0")
        done = with_key(await chat.press(note, f"fnd:skip:{again.id}:0"), f"fnd:submit:{again.id}")
        assert any("复查结果已提交" in text(m) for m in await chat.press(done, f"fnd:submit:{again.id}"))
        decided = await coord.command("approve", ref)
        assert any("认定未整改" in text(m) for m in decided), [text(m) for m in decided]
        order = await Rectification.get(id=order.id)
        assert order.status == RectificationStatus.UNRECTIFIED and order.referred_at is not None
        assert (await Publication.get(inspection_id=lead.inspection_id)).result_id == rid
        assert (await audit.verify())[1] is None


async def test_what_to_tap_is_what_wecom_shows(db, tmp_path):
    """The check-in prompt and the help are rendered for the channel the message goes out on: on
    WeCom they name WeCom's ＋ and say where a photo without a caption goes, never Telegram's 📎 or
    a caption (WeCom's image messages have none); the same texts on Telegram keep Telegram's."""
    async with wecom_spine(db, clock=world.clock()) as s:
        await setup(s, tmp_path)
        asg = await Assignment.filter(seat=1).order_by("id").prefetch_related("inspection__entity").first()
        chat = await member_for(s, asg, "site.01")
        await chat.press(with_key(chat.inbox, f"asg:accept:{asg.id}"), f"asg:accept:{asg.id}")
        await on_site_now(s, asg)
        asked = text((await chat.command("checkin"))[-1])
        assert "输入框右侧的 ＋" in asked and "「位置」" in asked, asked
        assert "📎" not in asked and "回形针" not in asked, asked
        row = await Outbox.filter(template="checkin_ask.j2").order_by("-id").first()
        assert row.channel == Channel.WECOM and "channel" not in row.context  # the renderer is told, not the row
        helped = "\n".join(text(m) for m in await chat.command("help"))
        assert "/result" in helped and "最近签到" in helped and "说明以任务编号开头" not in helped, helped
        checked = await chat.location(*site(asg.inspection.entity))  # and the location it asked for works
        assert await CheckIn.filter(assignment_id=asg.id).exists(), [text(m) for m in checked]


async def test_a_decided_review_card_on_wecom(db, tmp_path):
    """Two coordinators on WeCom get the 【待审核】 card. The one who presses 「审核通过」 sees that
    card updated (the press gave a response code); the other's card cannot be updated without one
    (update_template_card needs it), so they are told by a message, and a press on their old card
    is answered "already decided": nothing is decided twice."""
    async with wecom_spine(db, clock=world.clock()) as s:
        await setup(s, tmp_path)
        await bind_coordinator(Channel.WECOM, "coord.a", ("SCJG",), "王芳", s.clock)
        await bind_coordinator(Channel.WECOM, "coord.b", ("SCJG",), "李明", s.clock)
        one, other = Member(s, "coord.a"), Member(s, "coord.b")
        asg = await Assignment.filter(seat=1).order_by("id").prefetch_related("inspection__entity").first()
        chat = await member_for(s, asg, "lead.07")
        await chat.press(with_key(chat.inbox, f"asg:accept:{asg.id}"), f"asg:accept:{asg.id}")
        await on_site_now(s, asg)
        first = (await chat.command("result"))[-1]
        rid = (await Result.get(inspection_id=asg.inspection_id)).id
        note1 = with_key(await chat.press(first, f"fnd:pass:{rid}:0"), f"fnd:skip:{rid}:0")
        second = with_key(await chat.press(note1, f"fnd:skip:{rid}:0"), f"fnd:pass:{rid}:1")
        note2 = with_key(await chat.press(second, f"fnd:pass:{rid}:1"), f"fnd:skip:{rid}:1")
        summary = with_key(await chat.press(note2, f"fnd:skip:{rid}:1"), f"fnd:submit:{rid}")
        await chat.press(summary, f"fnd:submit:{rid}")
        await s.deliver()
        review = await Review.get(result_id=rid)
        key = f"rev:ok:{review.id}"
        card_a, card_b = with_key(one.new(), key), with_key(other.new(), key)

        pressed = await one.press(card_a, key)
        assert (await Review.get(id=review.id)).status == ReviewStatus.APPROVED
        assert any(m["msgtype"] == "update" and m["task_id"] == task_id(card_a) for m in pressed), pressed
        told = other.new()
        assert any(text(m).startswith("【已审核通过】") and "王芳" in text(m) for m in told), [text(m) for m in told]
        assert not any(key in keys(m) for m in told)  # no new button to press
        late = await other.press(card_b, key)  # the old card's button is still there on WeCom
        assert any("已处理过" in text(m) for m in late), [text(m) for m in late]
        assert (await Review.get(id=review.id)).decided_by_id == (await ChatBinding.get(address="coord.a")).id
