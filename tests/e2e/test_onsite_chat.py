"""On site, through the real python-telegram-bot and the Bot API simulator: check-in near and
far, photos fetched and stored by SHA-256, the findings with a note, submission and
confirmation, a correction approved by a coordinator, stale/double taps, edits, out-of-order
text, and an inspector probing someone else's inspection."""

from __future__ import annotations

import hashlib
from collections import Counter

from models.alerts import Alert
from models.audit import AuditRecord
from models.directory import Entity, Item
from models.draws import Assignment, AssignmentStatus, Inspection, InspectionStatus
from models.messaging import ChatBinding, Role
from models.onsite import CheckIn, Correction, CorrectionStatus, Finding, Photo, PhotoStatus, Result
from models.surveys import Survey
from scheduler import SWEEPS, Scheduler
from services import audit, plans
from services.identity import create_invite
from simulators.telegram.media import make_png
from tests.builders import scheduled_draw
from tests.e2e.harness import eventually, spine
from tests.e2e.test_inspector_chat import Chat, bind
from tests.e2e.test_references_chat import public_ref
from tests.services import draw_world as world

ZONE = world.ZONE
BASE = (36.0600, 120.3800)  # entity i sits at BASE + (i × 0.01°, 0)


def site(entity: Entity) -> tuple[float, float]:
    return entity.lat, entity.lon


class OnSite(Chat):
    """A virtual inspector who can also share a location, send a photo and edit a message."""

    async def _do(self, action):
        before = await self._count()
        update = action()
        await self.settle(before)
        return update, self.new()

    async def location(self, lat, lon):
        return (await self._do(lambda: self.s.sim.share_location(self.user, lat, lon)))[1]

    async def photo(self, image):
        return (await self._do(lambda: self.s.sim.send_photo(self.user, image)))[1]

    async def text(self, text):
        update, msgs = await self._do(lambda: self.s.sim.send_text(self.user, text))
        return update["message"]["message_id"], msgs

    async def edit(self, message_id, text):
        return (await self._do(lambda: self.s.sim.edit_message(self.user, message_id, text)))[1]

    async def forge(self, data):
        """A callback query with data no button of ours carries (a modified client)."""
        chat = self.s.sim.world.chat_of(self.user)
        anchor = self.s.sim.messages(self.user)[-1]
        payload = {
            "id": "9" * 12,
            "from": chat.user.as_user(),
            "message": anchor.data,
            "chat_instance": chat.chat_instance,
            "data": data,
        }
        return (await self._do(lambda: self.s.sim.push_update("callback_query", payload)))[1]


def last_with(msgs, data):
    return next(m for m in reversed(msgs) if data in m.callback_data)


async def setup(s, tmp_path):
    """A draw over two items; every entity has coordinates; returns the world."""
    w = await world.build(n_entities=12, n_scjg=6, n_wsj=0)
    await Item.create(
        code="SCJG-SP-02",
        name="食品贮存条件检查",
        department=w.depts["SCJG"],
        qualifications=["SP"],
        target_kinds=["enterprise"],
    )
    for i, e in enumerate(w.entities):
        await Entity.filter(id=e.id).update(lat=BASE[0] + i * 0.01, lon=BASE[1])
    path = world.plan_file(tmp_path, "P1", items=("SCJG-SP-01", "SCJG-SP-02"), a="0.5", b="0.5", c="0.5")
    await plans.add_plan(path, s.clock)
    await scheduled_draw("P1", clock=s.clock, zone=ZONE)
    return w


async def join(s, cert: str) -> OnSite:
    chat = OnSite(s, await bind(s, cert))
    await chat.settle()
    return chat


async def accept(chat: OnSite, asg_id: int) -> None:
    card = last_with(chat.s.sim.messages(chat.user), f"asg:accept:{asg_id}")
    await chat.press(card, f"asg:accept:{asg_id}")
    assert (await Assignment.get(id=asg_id)).status == AssignmentStatus.ACCEPTED


async def on_site_now(s, asg: Assignment) -> None:
    draw = await asg.draw
    s.clock.set(draw.window_start + (draw.window_end - draw.window_start) / 10)


async def actions() -> Counter:
    return Counter(await AuditRecord.all().values_list("action", flat=True))


async def test_checkin_near_and_far_and_photos_stored_by_sha256(db, tmp_path):
    async with spine(db, clock=world.clock()) as s:
        await setup(s, tmp_path)
        # an inspector with two assignments: a check-in asks which one
        counts = Counter(await Assignment.all().values_list("inspector_id", flat=True))
        busy = next(i for i, n in counts.most_common() if n >= 2)
        a1, a2 = (
            await Assignment.filter(inspector_id=busy)
            .order_by("id")
            .limit(2)
            .prefetch_related("inspector", "inspection__entity")
        )
        chat = await join(s, a1.inspector.cert_no)
        await accept(chat, a1.id)
        await accept(chat, a2.id)
        target = site(a1.inspection.entity)

        early = await chat.location(*target)  # before the inspection window opens
        assert "没有正在进行的检查" in early[-1].text and not await CheckIn.exists()
        assert (
            "还没有开始" in (await chat.command("result", await public_ref(a1.id)))[-1].text
            and not await Result.exists()
        )

        await on_site_now(s, a1)
        early_draft = make_png(32, 32, (10, 90, 10))
        which = (await chat.photo(early_draft))[-1]  # two inspections under way, no check-in yet: which?
        assert "照片（1 张待归档）" in which.text and f"pho:at:{a2.id}" in which.callback_data
        filed = (await chat.press(which, f"pho:at:{a2.id}"))[-1]
        assert "照片已收到" in filed.text and await Photo.filter(inspection_id=a2.inspection_id).count() == 1
        asked = (await chat.command("checkin"))[-1].text
        assert "位置" in asked and "📎" in asked and "＋" not in asked  # Telegram's paperclip, not WeCom's ＋
        which = (await chat.location(target[0] + 0.0004, target[1]))[-1]  # ~45 m away
        assert {f"chk:at:{a1.id}", f"chk:at:{a2.id}"} <= set(which.callback_data)
        near = (await chat.press(which, f"chk:at:{a1.id}"))[-1]
        assert "已签到" in near.text and "米" in near.text and "超过" not in near.text
        row = await CheckIn.get(assignment_id=a1.id)
        assert 40 < row.distance_m < 50 and not row.flagged and row.radius_m == 500
        stale = (await chat.press(which, f"chk:at:{a2.id}"))[-1]  # the same question, answered already
        assert "已失效" in stale.text and await CheckIn.all().count() == 1

        which = (await chat.location(target[0] + 0.02, target[1]))[-1]  # ~2.2 km away
        far = (await chat.press(which, f"chk:at:{a1.id}"))[-1]
        assert "超过 500 米" in far.text and "第 2 次签到" in far.text
        flagged = await CheckIn.filter(assignment_id=a1.id, flagged=True).get()
        assert 2000 < flagged.distance_m < 2400  # recorded, flagged, not refused
        alert = await Alert.get(kind="checkin_flagged")
        assert alert.context["checkin"] == flagged.id and alert.departments == ["SCJG"]

        # photos: recorded at once on the inspection last checked in to, fetched by the sweep
        picture = make_png(64, 48, (200, 30, 30))
        got = (await chat.photo(picture))[-1]
        assert "照片已收到" in got.text and "共 1 张" in got.text
        again = (await chat.photo(picture))[-1]
        assert "共 2 张" in again.text
        rows = await Photo.filter(inspection_id=a1.inspection_id).order_by("id")
        assert [p.status for p in rows] == [PhotoStatus.PENDING] * 2 and all(p.path is None for p in rows)
        await SWEEPS["photos"](Scheduler(s.rt), s.clock.now())
        digest = hashlib.sha256(picture).hexdigest()
        for p in await Photo.filter(inspection_id=a1.inspection_id):
            assert (p.status, p.sha256, p.size) == (PhotoStatus.STORED, digest, len(picture))
            assert p.path == f"photos/{digest[:2]}/{digest}.png"
            assert (db.data_dir / p.path).read_bytes() == picture
        assert len(list((db.data_dir / "photos").rglob("*.png"))) == 2  # the same picture is stored once
        await SWEEPS["photos"](Scheduler(s.rt), s.clock.now())  # nothing pending: nothing happens
        # a fetch that fails: retried later on a server error, given up (and the inspector told) on a refusal
        await chat.photo(make_png(16, 16))
        lost = await Photo.filter(status=PhotoStatus.PENDING).get()
        s.sim.inject("server_error", method="getFile")
        await SWEEPS["photos"](Scheduler(s.rt), s.clock.now())
        lost = await Photo.get(id=lost.id)
        assert (lost.status, lost.attempts, lost.last_error) == (PhotoStatus.PENDING, 1, "server")
        s.clock.advance(120)
        s.sim.inject("chat_not_found", method="getFile")
        await SWEEPS["photos"](Scheduler(s.rt), s.clock.now())
        assert (await Photo.get(id=lost.id)).status == PhotoStatus.FAILED
        await s.deliver()
        assert any("未能取回存档" in m.text for m in chat.new())
        done = await actions()
        assert done["checkin.recorded"] == 2 and done["photo.received"] == 4 and done["photo.stored"] == 3
        assert done["photo.failed"] == 1
        assert (await audit.verify())[1] is None


async def lead_and_mate(s, tmp_path):
    await setup(s, tmp_path)
    lead = await (
        Assignment.filter(seat=1, inspection__stratum__in=["D", "E"])
        .order_by("id")
        .prefetch_related("inspector", "inspection__entity")
        .first()
    )
    mate = await Assignment.filter(inspection_id=lead.inspection_id, seat=2).prefetch_related("inspector").first()
    lead_chat, mate_chat = await join(s, lead.inspector.cert_no), await join(s, mate.inspector.cert_no)
    await accept(lead_chat, lead.id)
    await accept(mate_chat, mate.id)
    await on_site_now(s, lead)
    lead_chat.new(), mate_chat.new()
    return lead, mate, lead_chat, mate_chat


async def test_findings_submit_confirm_and_an_approved_correction(db, tmp_path):
    async with spine(db, clock=world.clock()) as s:
        lead, mate, chat, mate_chat = await lead_and_mate(s, tmp_path)
        first = (await chat.command("result"))[-1]
        result = await Result.get(inspection_id=lead.inspection_id)
        rid = result.id
        assert "第 1/2 项" in first.text and "食品经营许可情况检查" in first.text
        assert first.callback_data == [
            f"fnd:pass:{rid}:0",
            f"fnd:fail:{rid}:0",
            f"fnd:na:{rid}:0",
            f"fnd:serious:{rid}:0",
        ]
        note1 = (await chat.press(first, f"fnd:pass:{rid}:0"))[-1]
        assert "合格" in note1.text and f"fnd:skip:{rid}:0" in note1.callback_data
        double = (await chat.press(first, f"fnd:pass:{rid}:0"))[-1]  # a double tap
        assert "无需重复点击" in double.text
        second = (await chat.press(note1, f"fnd:skip:{rid}:0"))[-1]
        assert "第 2/2 项" in second.text and "食品贮存条件检查" in second.text
        # the member cannot record; the lead's draft stays as it is
        assert "由组长" in (await mate_chat.command("result"))[-1].text
        note2 = (await chat.press(second, f"fnd:fail:{rid}:1"))[-1]
        summary = (await chat.say("冷藏柜温度 12℃，超标"))[-1]
        assert "1. 食品经营许可情况检查：合格" in summary.text and "冷藏柜温度 12℃，超标" in summary.text
        assert f"fnd:submit:{rid}" in summary.callback_data
        stale = (await chat.press(first, f"fnd:fail:{rid}:0"))[-1]  # item 1's old message, another verdict
        assert "旧消息" in stale.text
        assert (await Finding.get(result_id=rid, position=0)).verdict.value == "pass"
        late_skip = (await chat.press(note2, f"fnd:skip:{rid}:1"))[-1]  # Skip after the note was sent
        assert "早已记录为「不合格」，未作改动" in late_skip.text
        assert (await Finding.get(result_id=rid, position=1)).note == "冷藏柜温度 12℃，超标"

        submitted = (await chat.press(summary, f"fnd:submit:{rid}"))[-1]
        assert "检查结果已提交" in submitted.text
        result = await Result.get(id=rid)
        assert result.status.value == "submitted" and result.submitted_by_id == lead.inspector_id
        assert (await Inspection.get(id=lead.inspection_id)).status == InspectionStatus.DONE
        assert {a.status for a in await Assignment.filter(inspection_id=lead.inspection_id)} == {AssignmentStatus.DONE}
        assert await Survey.filter(inspection_id=lead.inspection_id).exists()  # entered the survey pool
        again = (await chat.press(summary, f"fnd:submit:{rid}"))[-1]  # a second submit is refused
        assert (
            "不能再修改或重复提交" in again.text and await Result.filter(inspection_id=lead.inspection_id).count() == 1
        )
        assert not any("问卷" in m.text or "survey" in m.text.lower() for m in chat.new() + mate_chat.new())

        ask = last_with(mate_chat.s.sim.messages(mate_chat.user), f"fnd:confirm:{rid}")
        assert "冷藏柜温度" in ask.text
        assert "您已确认" in (await mate_chat.press(ask, f"fnd:confirm:{rid}"))[-1].text
        assert "已经确认过了" in (await mate_chat.press(ask, f"fnd:confirm:{rid}"))[-1].text
        lead_ref = await public_ref(lead.id)
        assert any("已确认" + lead_ref in m.text for m in chat.new())
        assert (await Result.get(id=rid)).confirmed_by_id == mate.inspector_id

        # a correction: reason → change item 2 → sent → a coordinator of SCJG approves
        coordinator = await bind_coordinator(s)
        shown = (await chat.command("result", await public_ref(lead.id)))[-1]
        assert "已确认" in shown.text and f"fnd:fix:{rid}" in shown.callback_data
        asked = (await chat.press(shown, f"fnd:fix:{rid}"))[-1]
        assert "更正理由" in asked.text
        draft = (await chat.say("第2项温度计读数有误，复核为合格"))[-1]
        new = await Result.get(supersedes_id=rid)
        assert "更正稿" in draft.text and f"fnd:edit:{new.id}:1" in draft.callback_data
        same = (await chat.press(draft, f"fnd:submit:{new.id}"))[-1]
        assert "完全相同" in same.text  # nothing changed yet: not sent
        item2 = (await chat.press(draft, f"fnd:edit:{new.id}:1"))[-1]
        note = (await chat.press(item2, f"fnd:pass:{new.id}:1"))[-1]
        summary2 = (await chat.press(note, f"fnd:skip:{new.id}:1"))[-1]
        sent = (await chat.press(summary2, f"fnd:submit:{new.id}"))[-1]
        assert "已提交协调员审批" in sent.text
        assert (await Result.get(id=rid)).status.value == "confirmed"  # still in force until approved

        corr = await Correction.get(original_id=rid)
        request = last_with(coordinator.new(), f"cor:ok:{corr.id}")
        elsewhere = await bind_coordinator(s, "WSJ")  # another department's coordinator may not decide it
        assert "没有找到这项更正" in (await elsewhere.forge(f"cor:ok:{corr.id}"))[-1].text
        assert (await Correction.get(id=corr.id)).status == CorrectionStatus.REQUESTED
        assert "第2项温度计读数有误" in request.text and "不合格 → 合格" in request.text
        pressed = await coordinator.press(request, f"cor:ok:{corr.id}")  # the answer, then the new review's card
        approved = next(m for m in pressed if "已批准" in m.text)
        assert "已批准" in approved.text and "已通知检查组" in approved.text and "未能通知" not in approved.text
        assert f"#{corr.id}" not in approved.text and "的更正" in approved.text  # the reference, not a row id
        await s.deliver()
        card = next(m for m in coordinator.s.sim.messages(coordinator.user) if m.message_id == request.message_id)
        assert card.edited and card.callback_data == [] and card.text.startswith("【更正已批准】")  # decided
        assert "已处理过" in (await coordinator.forge(f"cor:no:{corr.id}"))[-1].text  # a stale client's press
        old, replacement = await Result.get(id=rid), await Result.get(id=new.id)
        assert old.status.value == "superseded" and replacement.status.value == "submitted"
        assert (await Finding.get(result_id=rid, position=1)).verdict.value == "fail"  # the old result is kept
        assert (await Finding.get(result_id=new.id, position=1)).verdict.value == "pass"
        assert (await Correction.get(id=corr.id)).status == CorrectionStatus.APPROVED
        assert any("已获批准" in m.text for m in chat.new())
        assert last_with(mate_chat.s.sim.messages(mate_chat.user), f"fnd:confirm:{new.id}")
        stale_confirm = (await mate_chat.press(ask, f"fnd:confirm:{rid}"))[-1]  # the superseded result's button
        assert "不再有效" in stale_confirm.text and (await Result.get(id=rid)).status.value == "superseded"
        assert await Survey.filter(inspection_id=lead.inspection_id).count() == 1

        done = await actions()
        for action in (
            "result.drafted",
            "finding.recorded",
            "result.submitted",
            "result.confirmed",
            "correction.opened",
            "correction.requested",
            "correction.approved",
        ):
            assert done[action] >= 1, action
        assert (await audit.verify())[1] is None


async def bind_coordinator(s, department: str = "SCJG") -> OnSite:
    user = s.sim.create_user(f"协调员{department}")
    code = await create_invite(Role.COORDINATOR, s.clock, departments=(department,))
    s.sim.send_command(user, "start", code)
    await eventually(lambda: ChatBinding.filter(address=str(user.id)).exists())
    chat = OnSite(s, user)
    await chat.settle()
    chat.new()
    return chat


async def test_probing_edits_and_out_of_order_text(db, tmp_path):
    async with spine(db, clock=world.clock()) as s:
        lead, mate, chat, mate_chat = await lead_and_mate(s, tmp_path)
        first = (await chat.command("result"))[-1]
        rid = (await Result.get(inspection_id=lead.inspection_id)).id
        early = (await chat.say("这句话来得太早"))[-1]  # text while a verdict button is expected
        assert "请先点选结论按钮" in early.text and "第 1/2 项" in early.text
        note = (await chat.press(first, f"fnd:fail:{rid}:0"))[-1]
        message_id, replies = await chat.text("消防通道堵塞")
        assert "第 2/2 项" in replies[-1].text
        edited = (await chat.edit(message_id, "消防通道畅通"))[-1]  # an edit is never applied
        assert "修改了一条已发送的消息" in edited.text
        assert (await Finding.get(result_id=rid, position=0)).note == "消防通道堵塞"
        late = (await chat.press(note, f"fnd:skip:{rid}:0"))[-1]  # Skip after the note: already done
        assert "早已记录为「不合格」" in late.text and "第 2/2 项" in late.text

        # someone not on the team: /result with the lead's number, and a forged button
        outsider_asg = await (
            Assignment.exclude(inspection_id=lead.inspection_id)
            .exclude(inspector_id__in=[lead.inspector_id, mate.inspector_id])
            .prefetch_related("inspector")
            .first()
        )
        outsider = await join(s, outsider_asg.inspector.cert_no)
        outsider.new()
        probe = (await outsider.command("result", await public_ref(lead.id)))[-1]
        assert "没有找到" in probe.text and lead.inspection.entity.name not in probe.text
        forged = (await outsider.forge(f"fnd:pass:{rid}:1"))[-1]
        assert "没有找到这份检查结果" in forged.text
        assert (await Finding.get(result_id=rid, position=1)).verdict is None
        assert (await Result.get(id=rid)).cursor == 1
        # the team member may not press the lead's buttons either
        forged = (await mate_chat.forge(f"fnd:pass:{rid}:1"))[-1]
        assert "由组长录入" in forged.text and (await Finding.get(result_id=rid, position=1)).verdict is None
