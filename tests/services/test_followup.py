"""Follow-up: a 不合格 result's rectification order with its deadline in working days, the
firm's reminder, the re-inspection assigned to the team lead at the deadline, its outcome —
rectified, or not and flagged for case referral — and the credit record's 后续处理."""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime

import pytest

from core.render import render
from domain import refs
from domain.refs import inspection_ref
from models.alerts import Alert
from models.audit import AuditRecord
from models.directory import Conflict, ConflictSource, ConflictType, Entity, Inspector
from models.draws import Assignment, Draw, Firing, Inspection
from models.messaging import Outbox
from models.onsite import CheckIn, Correction, Photo
from models.publication import Notice, Publication, Rectification, RectificationStatus, Review
from scheduler import SWEEPS
from services import audit, credit, public, tasks
from services.onsite import checkin, corrections, findings, followup, photos, review
from services.onsite.shared import Choice, OnsiteError
from tests.services.publication_world import ZONE, coordinator, inspections, submitted

NOON = datetime(2026, 12, 4, 4, 0, tzinfo=UTC)  # Friday 4 December 2026, 12:00 in Beijing


def at(day: date, hour_utc: int = 2) -> datetime:
    return datetime(day.year, day.month, day.day, hour_utc, 0, tzinfo=UTC)


async def test_rectification_reminder_reinspection_and_referral(db, tmp_path):
    bad, good = await inspections(tmp_path)
    for i, insp in enumerate((bad, good)):
        await Entity.filter(id=insp.entity_id).update(mobile=f"+861390000000{i}")
    reviewer = await coordinator("900")
    for insp in (bad, good):
        result = await submitted(insp, datetime(2026, 12, 3, 2, 0, tzinfo=UTC), "fail")
        await review.decide_review(reviewer, (await Review.get(result_id=result.id)).id, True, now=NOON)
    rows = {r.inspection_id: r for r in await Rectification.all()}
    first = rows[bad.id]
    assert first.status == RectificationStatus.OPEN and first.due_on == date(2026, 12, 25)  # 15 working days
    assert (await Notice.get(id=first.notice_id)).rectify_by == first.due_on

    # Monday 21 December: four working days left, nothing; Tuesday: three, the firms are reminded once
    assert await followup.sweep_rectifications(at(date(2026, 12, 21)), zone=ZONE) == 0
    assert await followup.sweep_rectifications(at(date(2026, 12, 22)), zone=ZONE, sign="青岛市市场监督管理局") == 2
    assert await followup.sweep_rectifications(at(date(2026, 12, 23)), zone=ZONE) == 0
    reminder = await Outbox.get(dedupe_key=f"rectification:{first.id}:reminder")
    assert reminder.template == "rectification_reminder.j2" and reminder.context["due_on"] == "2026-12-25"

    # the deadline: the re-inspection goes to the team lead
    assert SWEEPS["rectifications"].service is followup.sweep_rectifications  # the scheduler's row
    assert await followup.sweep_rectifications(at(date(2026, 12, 25)), zone=ZONE) == 2
    lead = await Assignment.filter(inspection_id=bad.id).order_by("seat").first()
    first = await Rectification.get(id=first.id)
    assert first.status == RectificationStatus.REINSPECTING and first.inspector_id == lead.inspector_id
    assigned = await Outbox.get(dedupe_key=f"rectification:{first.id}:assigned")
    assert assigned.recipient_id == lead.inspector_id and assigned.context["rectification"] == first.id

    # the re-inspector sees it in /tasks, first, with the command that opens it
    listed = await tasks.open_tasks(lead.inspector_id, at(date(2026, 12, 25)), ZONE)
    drawn_ref = inspection_ref((await Draw.get(id=bad.draw_id)).draw_ref, bad.no)
    assert listed[0]["reinspection"] and listed[0]["ref"] == drawn_ref and listed[0]["due_on"] == "2026-12-25"
    for locale, word in (("zh-CN", "复查（整改期限 2026-12-25）"), ("en", "re-inspection (rectification deadline")):
        shown = render("messages/tasks.j2", locale, items=listed, page=1, pages=1, total=len(listed), first=1)
        assert word in shown and f"/recheck {drawn_ref}" in shown and "#" not in shown

    # the chat names it by the inspection's public reference, never the internal id (issue 18)
    drawn = await Inspection.get(id=bad.id).prefetch_related("draw")
    ref = refs.parse(f"{drawn.draw.draw_ref}/{drawn.no}")
    assert ref is not None and await followup.rectification_on(lead.inspector_id, ref) == first.id
    assert await review.review_on(ref) == (await Review.filter(inspection_id=bad.id).order_by("-id").first()).id
    for who, typed, code in (
        (lead.inspector_id, str(drawn.no), "ref_needs_draw"),
        (lead.inspector_id, f"{drawn.draw.draw_ref}/999", "inspection_ref_not_found"),
        (None, f"{drawn.draw.draw_ref}/{drawn.no}", "recheck_not_found"),
    ):
        with pytest.raises(OnsiteError) as wrong:
            await followup.rectification_on(who, refs.parse(typed))  # type: ignore[arg-type]
        assert wrong.value.code == code

    # only the assigned re-inspector opens it; a re-inspection result covers the 不合格 item and
    # is not the inspection's result (the lead's /result still shows the published one)
    mate = await Assignment.filter(inspection_id=bad.id).order_by("-seat").first()
    day = at(date(2026, 12, 28))
    with pytest.raises(OnsiteError) as other:
        await findings.open_reinspection(mate.inspector_id, first.id, now=day)
    assert other.value.code == "recheck_not_found"
    outcome, view = await findings.open_reinspection(lead.inspector_id, first.id, now=day)
    assert outcome == "findings_started" and view["reinspection"] and view["is_lead"]
    assert [i["code"] for i in view["items"]] == ["SCJG-SP-01"]
    with pytest.raises(OnsiteError) as member:  # the original team's other member is not on the re-inspection
        await findings.act(mate.inspector_id, view["result"], "fail", index=0, now=day)
    assert member.value.code == "result_not_found"
    await findings.act(lead.inspector_id, view["result"], "fail", index=0, now=day)
    await findings.act(lead.inspector_id, view["result"], "note", text="冷柜仍未维修", now=day)
    done = await findings.act(lead.inspector_id, view["result"], "submit", now=day)
    assert (
        done.code == "submitted" and (await Rectification.get(id=first.id)).status == RectificationStatus.REINSPECTING
    )
    under_review = await Review.get(result_id=view["result"])
    assert await review.review_on(ref) == under_review.id  # the reference names the pending one
    # approved: not rectified → flagged for case referral; the published result is unchanged
    published = (await Publication.get(inspection_id=bad.id)).result_id
    code, shown = await review.decide_review(reviewer, under_review.id, True, now=day)
    assert (code, shown["outcome"]) == ("approved", "unrectified")
    again, _ = await review.decide_review(reviewer, under_review.id, True, now=day)
    assert again == "already_decided"
    assert (await Publication.get(inspection_id=bad.id)).result_id == published
    referral = await Alert.get(kind="case_referral")
    assert referral.context["why"] == "unrectified" and referral.departments == ["SCJG"]
    decided = await Rectification.get(id=first.id)
    assert decided.referred_at is not None and "冷柜仍未维修" in decided.note

    # an unreviewed re-inspection decides nothing: the good firm's is rectified only once approved
    second = rows[good.id]
    good_lead = await Assignment.filter(inspection_id=good.id).order_by("seat").first()
    _, view = await findings.open_reinspection(good_lead.inspector_id, second.id, now=day)
    await findings.act(good_lead.inspector_id, view["result"], "pass", index=0, now=day)
    await findings.act(good_lead.inspector_id, view["result"], "skip", index=0, now=day)
    await findings.act(good_lead.inspector_id, view["result"], "submit", now=day)
    assert (await Rectification.get(id=second.id)).status == RectificationStatus.REINSPECTING
    code, shown = await review.decide_review(reviewer, (await Review.get(result_id=view["result"])).id, True, now=day)
    assert (code, shown["outcome"]) == ("approved", "rectified")
    records = {r["uscc"]: r for r in await credit.published_records("2026-12", ZONE)}
    assert records[bad.entity_key]["follow_up"] == "移送立案"
    assert records[good.entity_key]["follow_up"] == "已整改（复查合格）"
    now = at(date(2026, 12, 28))
    assert (await public.entity_page(bad.entity_key, now)).inspections.rows[0].follow_up == "unrectified"
    assert (await public.entity_page(good.entity_key, now)).inspections.rows[0].follow_up == "rectified"
    assert (await audit.verify())[1] is None


async def test_a_corrected_result_published_again_supersedes_the_old_order(db, tmp_path):
    insp, _ = await inspections(tmp_path)
    reviewer = await coordinator("900")
    first = await submitted(insp, datetime(2026, 12, 3, 2, 0, tzinfo=UTC), "fail")
    await review.decide_review(reviewer, (await Review.get(result_id=first.id)).id, True, now=NOON)
    old = await Rectification.get(inspection_id=insp.id)
    assert old.status == RectificationStatus.OPEN
    # an upheld objection: the corrected result (合格 now) is reviewed and published again
    corrected = await submitted(insp, datetime(2026, 12, 7, 2, 0, tzinfo=UTC), "pass")
    await review.decide_review(reviewer, (await Review.get(result_id=corrected.id)).id, True, now=at(date(2026, 12, 8)))
    assert (await Rectification.get(id=old.id)).status == RectificationStatus.SUPERSEDED
    assert await Rectification.filter(inspection_id=insp.id).count() == 1  # 合格: no new order
    assert await followup.sweep_rectifications(at(date(2026, 12, 25)), zone=ZONE) == 0  # nothing to re-inspect
    [record] = await credit.published_records("2026-12", ZONE)
    assert (record["outcome"], record["follow_up"]) == ("未发现问题", "无")


async def test_a_reinspector_drawn_afresh_among_the_qualified_when_the_plan_says_so(db, tmp_path):
    insp, _ = await inspections(tmp_path)
    draw = await Draw.get(id=insp.draw_id)
    firing = await Firing.get(id=draw.firing_id)
    await Firing.filter(id=firing.id).update(params={**firing.params, "publication": {"reinspect": "draw"}})
    team = {a.inspector_id for a in await Assignment.filter(inspection_id=insp.id)}
    outsiders = await Inspector.filter(department__code="SCJG").exclude(id__in=list(team)).order_by("id")
    await Conflict.create(
        inspector=outsiders[0],
        entity_id=insp.entity_id,
        type=ConflictType.CLOSE_RELATIVE,
        source=ConflictSource.DECLARED,
    )
    reviewer = await coordinator("900")
    result = await submitted(insp, datetime(2026, 12, 3, 2, 0, tzinfo=UTC), "fail")
    await review.decide_review(reviewer, (await Review.get(result_id=result.id)).id, True, now=NOON)
    assert await followup.sweep_rectifications(at(date(2026, 12, 25)), zone=ZONE) == 1
    row = await Rectification.get(inspection_id=insp.id)
    assert row.inspector_id not in team and row.inspector_id != outsiders[0].id
    record = await AuditRecord.get(action="rectification.assigned")
    assert record.data["mode"] == "draw" and record.data["candidates"] == len(outsiders) - 1
    seed = bytes.fromhex(record.data["seed"])
    eligible = [p for p in outsiders[1:] if "SP" in p.qualifications]
    first = min(eligible, key=lambda p: hashlib.sha256(seed + p.cert_no.encode()).hexdigest())
    assert first.id == row.inspector_id  # re-derived from the audit record
    assigned = await Outbox.get(dedupe_key=f"rectification:{row.id}:assigned")
    assert assigned.recipient_id == row.inspector_id


async def test_a_serious_finding_is_referred_at_once(db, tmp_path):
    insp, _ = await inspections(tmp_path)
    result = await submitted(insp, datetime(2026, 12, 3, 2, 0, tzinfo=UTC), "fail")
    pending = await Review.get(result_id=result.id)
    other = await coordinator("901", departments=("WSJ",))
    with pytest.raises(OnsiteError) as missing:
        await followup.refer_serious(other, pending.inspection_id, "使用过期原料", now=NOON)
    assert missing.value.code == "review_not_found"
    reviewer = await coordinator("900")
    with pytest.raises(OnsiteError) as empty:
        await followup.refer_serious(reviewer, pending.inspection_id, "  ", now=NOON)
    assert empty.value.code == "refer_reason_empty"
    code, shown = await followup.refer_serious(reviewer, pending.inspection_id, "使用过期原料，涉嫌违法", now=NOON)
    assert code == "referred" and shown["no"] == insp.no
    again, _ = await followup.refer_serious(reviewer, pending.inspection_id, "再次", now=NOON)
    assert again == "already_referred"
    alert = await Alert.get(kind="case_referral")
    assert alert.context["why"] == "serious" and alert.departments == ["SCJG"]
    await review.decide_review(reviewer, pending.id, True, now=NOON)
    [record] = await credit.published_records("2026-12", ZONE)
    assert record["follow_up"] == "移送立案"
    assert "使用过期原料" not in str(record)  # the reason is for the coordinators only


async def test_a_returned_reinspection_is_corrected_and_its_approval_decides_the_order(db, tmp_path):
    insp, _ = await inspections(tmp_path)
    reviewer = await coordinator("900")
    result = await submitted(insp, datetime(2026, 12, 3, 2, 0, tzinfo=UTC), "fail")
    await review.decide_review(reviewer, (await Review.get(result_id=result.id)).id, True, now=NOON)
    assert await followup.sweep_rectifications(at(date(2026, 12, 25)), zone=ZONE) == 1
    order = await Rectification.get(inspection_id=insp.id)
    day = at(date(2026, 12, 28))
    _, view = await findings.open_reinspection(order.inspector_id, order.id, now=day)
    rid = view["result"]
    await findings.act(order.inspector_id, rid, "fail", index=0, now=day)
    await findings.act(order.inspector_id, rid, "skip", index=0, now=day)
    await findings.act(order.inspector_id, rid, "submit", now=day)
    # returned with a comment: the order is still under re-inspection (reminded first, as a re-inspection)
    pending = await Review.get(result_id=rid)
    assert await review.sweep_reviews(pending.remind_at, zone=ZONE) == 1
    reminded = await Alert.get(kind="review_reminder")
    assert reminded.context["reinspection"] and reminded.context["review"] == pending.id
    code, shown = await review.decide_review(reviewer, pending.id, False, "请附整改后照片并复核", now=day)
    assert code == "returned" and shown["reinspection"]
    assert (await Rectification.get(id=order.id)).status == RectificationStatus.REINSPECTING
    assert (await Review.get(result_id=result.id)).status.value == "approved"  # the inspection's own review stands

    # the re-inspector corrects it (the correction flow), a coordinator approves: that is the review too
    await corrections.begin_correction(order.inspector_id, rid, now=day)
    draft = await corrections.request_correction(order.inspector_id, rid, "复核后确认已整改", now=day)
    assert draft["reinspection"] and draft["supersedes"] == rid
    await findings.act(order.inspector_id, draft["result"], "edit", index=0, now=day)
    await findings.act(order.inspector_id, draft["result"], "pass", index=0, now=day)
    await findings.act(order.inspector_id, draft["result"], "skip", index=0, now=day)
    sent = await findings.act(order.inspector_id, draft["result"], "submit", now=day)
    assert sent.code == "sent_for_approval"
    corr = await Correction.get(replacement_id=draft["result"])
    code, shown = await corrections.decide_correction(reviewer, corr.id, True, now=day)
    assert code == "approved" and shown["reviewed"]
    assert (await Rectification.get(id=order.id)).status == RectificationStatus.RECTIFIED
    assert (await Publication.get(inspection_id=insp.id)).result_id == result.id
    assert (await audit.verify())[1] is None


async def test_a_reinspector_checks_in_on_the_reinspection_under_way(db, tmp_path):
    bad, good = await inspections(tmp_path)
    reviewer = await coordinator("900")
    for insp in (bad, good):
        result = await submitted(insp, datetime(2026, 12, 3, 2, 0, tzinfo=UTC), "fail")
        await review.decide_review(reviewer, (await Review.get(result_id=result.id)).id, True, now=NOON)
    assert await followup.sweep_rectifications(at(date(2026, 12, 25)), zone=ZONE) == 2
    orders = await Rectification.all().order_by("id")
    lead = await Assignment.filter(inspection_id=bad.id).order_by("seat").first()
    await Rectification.filter(id=orders[1].id).update(inspector_id=lead.inspector_id)  # both theirs
    now = at(date(2026, 12, 28))
    # two re-inspections under way and no inspection (their seat is done): which one?
    asked = await checkin.checkin(lead.inspector_id, 36.07, 120.38, now=now, radius_m=500)
    assert isinstance(asked, Choice)
    assert [(c["rectification"], c["assignment"]) for c in asked.choices] == [(o.id, None) for o in orders]
    done = await checkin.checkin(lead.inspector_id, 36.07, 120.38, now=now, radius_m=500, rectification_id=orders[1].id)
    assert done["reinspection"] and done["count"] == 1 and done["no"] == good.no
    row = await CheckIn.get(rectification_id=orders[1].id)
    assert (row.assignment_id, row.inspection_id, row.inspector_id) == (None, good.id, lead.inspector_id)
    record = await AuditRecord.get(action="checkin.recorded")
    assert record.data["rectification"] == orders[1].id and record.data["assignment"] is None
    # a photo with nothing to say which: the re-inspection last checked in to; named: that one
    assert (await photos.photo(lead.inspector_id, "f1", now=now))["no"] == good.no
    assert (await photos.photo(lead.inspector_id, "f2", now=now, rectification_id=orders[0].id))["no"] == bad.no
    assert (
        await Photo.filter(inspection_id=good.id).count() == 1 and await Photo.filter(inspection_id=bad.id).count() == 1
    )
    # another inspector's re-inspection, or one decided, is not under way: refused, nothing recorded
    other = await Inspector.exclude(id=lead.inspector_id).order_by("id").first()
    await Rectification.filter(id=orders[0].id).update(status=RectificationStatus.RECTIFIED)
    for who, order in ((other.id, orders[1]), (lead.inspector_id, orders[0])):
        with pytest.raises(OnsiteError) as refused:
            await checkin.checkin(who, 36.07, 120.38, now=now, radius_m=500, rectification_id=order.id)
        assert refused.value.code == "not_under_way"
    # the one left under way is taken without asking
    assert (await checkin.checkin(lead.inspector_id, 36.07, 120.38, now=now, radius_m=500))["count"] == 2
    assert await CheckIn.all().count() == 2
