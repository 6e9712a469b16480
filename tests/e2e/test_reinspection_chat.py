"""The re-inspection (复查), through the real bot and the Bot API simulator: a 不合格 result is
published with a rectification order; at its deadline the re-inspection is assigned to the team
lead, who checks in by location like any inspector and does it in the same findings conversation
(over the items found 不合格 only, photos filed to the inspection); it is
reviewed like any result — not by its re-inspector — and its approval sets the order's outcome,
leaving the inspection's published result as it was."""

from __future__ import annotations

import io
import json
import zipfile
from datetime import UTC, datetime

import pytest
from tortoise.exceptions import IntegrityError

from models.draws import Inspection
from models.messaging import ChatBinding, Role
from models.onsite import CheckIn, Finding, Photo, Result
from models.publication import Publication, Rectification, RectificationStatus, Review, ReviewStatus
from scheduler import SWEEPS, Scheduler
from services import audit, credit, public
from services.archive import build_archive
from services.identity import create_invite
from simulators.telegram.media import make_png
from tests.e2e.harness import eventually, spine
from tests.e2e.test_onsite_chat import actions, bind_coordinator, last_with, lead_and_mate, site
from tests.e2e.test_review_chat import _record
from tests.services import draw_world as world


async def test_reinspection_in_the_findings_conversation_reviewed_then_rectified(db, tmp_path):
    async with spine(db, clock=world.clock()) as s:
        lead, _, chat, _ = await lead_and_mate(s, tmp_path)
        coordinator = await bind_coordinator(s)
        await chat.command("result")
        rid = (await Result.get(inspection_id=lead.inspection_id)).id
        chat.new()
        await _record(chat, rid, "冷藏柜温度 12℃，超标")  # item 1 合格, item 2 不合格
        insp = await Inspection.get(id=lead.inspection_id).prefetch_related("draw", "entity")
        ref = f"{insp.draw.draw_ref}/{insp.no}"
        assert "已审核通过" in (await coordinator.command("approve", ref))[-1].text
        order = await Rectification.get(inspection_id=insp.id)
        assert order.status == RectificationStatus.OPEN

        # the deadline: the scheduler's sweep assigns the re-inspection to the team lead
        s.clock.set(datetime(order.due_on.year, order.due_on.month, order.due_on.day, 2, 0, tzinfo=UTC))
        await SWEEPS["rectifications"](Scheduler(s.rt), s.clock.now())
        order = await Rectification.get(id=order.id)
        assert order.status == RectificationStatus.REINSPECTING and order.inspector_id == lead.inspector_id
        await s.deliver()
        assigned = last_with(chat.new(), f"fnd:recheck:{order.id}")
        assert "复查任务" in assigned.text and f"/recheck {ref}" in assigned.text
        listed = (await chat.command("tasks"))[-1].text
        assert f"/recheck {ref}" in listed and "复查（整改期限" in listed
        # a coordinator is no inspector: the polite refusal, not "not understood"
        for name, arg in (("tasks", ""), ("recheck", ref), ("checkin", "")):
            assert "只有检查人员可以使用此命令" in (await coordinator.command(name, arg))[-1].text, name

        # the re-inspector checks in as any inspector does: the seat's assignment is done, so the
        # re-inspection is the only thing under way and the location is filed to it, judged by distance
        target = site(insp.entity)
        near = (await chat.location(target[0] + 0.0004, target[1]))[-1]  # ~45 m away
        assert "已签到：【复查】" in near.text and ref in near.text and "超过" not in near.text
        here = await CheckIn.get(rectification_id=order.id)
        assert (here.assignment_id, here.inspection_id, here.inspector_id) == (None, insp.id, lead.inspector_id)
        assert 40 < here.distance_m < 50 and not here.flagged
        # /checkin with the reference names it; far away: flagged and the coordinators told, never refused
        assert ref in (await chat.command("checkin", ref))[-1].text
        far = (await chat.location(target[0] + 0.02, target[1]))[-1]  # ~2.2 km away
        assert "【复查】" in far.text and "超过 500 米" in far.text and "第 2 次签到" in far.text
        assert await CheckIn.filter(rectification_id=order.id, flagged=True).count() == 1
        await s.deliver()
        assert any("复查签到" in m.text and ref in m.text for m in coordinator.new())
        # a photo sent now, outside the findings conversation, goes to the re-inspection as well
        filed = (await chat.photo(make_png(16, 16, (30, 30, 200))))[-1]
        assert "照片已收到" in filed.text and ref in filed.text
        assert await Photo.filter(inspection_id=insp.id, inspector_id=lead.inspector_id).count() == 1

        # the same findings conversation, over the item found 不合格 only
        first = (await chat.press(assigned, f"fnd:recheck:{order.id}"))[-1]
        again = await Result.get(reinspection_id=order.id)
        assert again.inspection_id == insp.id and again.id != rid
        assert "【复查】" in first.text and "第 1/1 项" in first.text and "食品贮存条件检查" in first.text
        assert await Finding.filter(result_id=again.id).values_list("item_code", flat=True) == ["SCJG-SP-02"]
        # a photo sent in the re-inspection's conversation is filed to its inspection
        before = await Photo.filter(inspection_id=insp.id).count()
        filed = (await chat.photo(make_png(24, 24, (200, 30, 30))))[-1]
        assert "照片已收到" in filed.text and ref in filed.text
        assert await Photo.filter(inspection_id=insp.id, inspector_id=lead.inspector_id).count() == before + 1
        note = (await chat.press(first, f"fnd:pass:{again.id}:0"))[-1]
        summary = (await chat.say("冷藏柜已更换，温度 4℃"))[-1]
        assert "复查结果汇总" in summary.text and f"fnd:submit:{again.id}" in summary.callback_data
        assert note.text  # the note step was asked
        submitted = (await chat.press(summary, f"fnd:submit:{again.id}"))[-1]
        assert "复查结果已提交" in submitted.text and "待审核" in submitted.text
        assert f"/recheck {ref}" not in (await chat.command("tasks"))[-1].text  # the reviewer's turn now
        resumed = (await chat.command("recheck", ref))[-1]  # /recheck shows it now, unchanged
        assert "复查结果" in resumed.text and "已提交" in resumed.text
        review = await Review.get(result_id=again.id)
        assert review.status == ReviewStatus.PENDING
        await s.deliver()
        asked = coordinator.new()[-1].text
        assert "复查结果已提交" in asked and f"/approve {ref}" in asked

        # the original result stands while the re-inspection is under review
        uscc = insp.entity.uscc
        row = (await public.entity_page(uscc, s.clock.now())).inspections.rows[0]
        assert (row.result, row.follow_up) == ("problems", "reinspecting")
        assert (await Publication.get(inspection_id=insp.id)).result_id == rid

        # the re-inspector, also a coordinator from the same chat, may not review their own re-inspection
        code = await create_invite(Role.COORDINATOR, s.clock, departments=("SCJG",))
        s.sim.send_command(chat.user, "start", code)
        await eventually(lambda: ChatBinding.filter(address=str(chat.user.id), role=Role.COORDINATOR).exists())
        await chat.settle()
        chat.new()
        assert "不能审核本组" in (await chat.command("approve", ref))[-1].text
        assert (await Review.get(id=review.id)).status == ReviewStatus.PENDING

        decided = (await coordinator.command("approve", ref))[-1].text
        assert "复查结果已审核通过" in decided and "认定已整改" in decided
        assert (await Rectification.get(id=order.id)).status == RectificationStatus.RECTIFIED
        await s.deliver()
        assert any("复查结果已审核通过" in m.text and "认定已整改" in m.text for m in chat.new())
        pub = await Publication.get(inspection_id=insp.id)
        assert pub.result_id == rid and pub.referred_at is None  # not replaced by the re-inspection
        assert (await Result.get(id=rid)).status in ("submitted", "confirmed")
        row = (await public.entity_page(uscc, s.clock.now())).inspections.rows[0]
        assert (row.result, row.follow_up) == ("problems", "rectified")
        assert [i.outcome for i in row.items] == ["pass", "fail"]  # the published verdicts stand
        month = f"{pub.published_at.astimezone(world.ZONE):%Y-%m}"
        [record] = [r for r in await credit.published_records(month, world.ZONE) if r["uscc"] == insp.entity_key]
        assert (record["outcome"], record["follow_up"]) == ("发现问题", "已整改（复查合格）")
        done = await actions()
        assert done["rectification.rectified"] == 1 and done["result.published"] == 1
        assert done["review.approved"] == 2 and done["review.opened"] == 2
        assert done["checkin.recorded"] == 2
        assert (await audit.verify())[1] is None

        # the disclosure archive's process record holds the re-inspection's check-ins and photo
        _, data = await build_archive(ref, db.data_dir, s.clock.now())
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            checkins, photos, results = (json.loads(z.read(f"{n}.json")) for n in ("checkins", "photos", "findings"))
        assert [(c["reinspection"], c["flagged"]) for c in checkins] == [(order.id, False), (order.id, True)]
        assert {c["inspector"] for c in checkins} == {lead.inspector.name}
        assert len(photos) == before + 1
        assert [r["result"] for r in results if r["reinspection"] == order.id] == [again.id]

        # the database holds the rule: a check-in names an assignment or a re-inspection, exactly one
        row = {"inspection_id": insp.id, "inspector_id": lead.inspector_id, "latitude": 1.0, "longitude": 1.0}
        for both in ({}, {"assignment_id": lead.id, "rectification_id": order.id}):
            with pytest.raises(IntegrityError):
                await CheckIn.create(**row, **both, radius_m=500, at=s.clock.now())
        assert await CheckIn.all().count() == 2
