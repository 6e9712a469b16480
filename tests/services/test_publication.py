"""The publication deadline in Chinese working days (across the 2026 Spring Festival and its two
make-up Saturdays), its warning and miss alerts, the review's reviewer rules, and the monthly
report's share published on time per department."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from core.render import render
from models.alerts import Alert
from models.draws import Assignment
from models.onsite import Correction, CorrectionStatus, Finding, Result
from models.publication import Publication, ReviewStatus
from services import audit, plans, reports
from services.onsite import corrections, review
from services.onsite.shared import OnsiteError
from tests.services import draw_world as world
from tests.services.publication_world import coordinator, inspections, submitted

ZONE = world.ZONE
ENDED = datetime(2026, 2, 6, 3, 0, tzinfo=UTC)  # Friday 6 February 2026, 11:00 in Beijing


def test_working_days_skip_the_spring_festival_and_count_make_up_saturdays():
    # 9-13 Feb (5), Sat 14 Feb a make-up working day (6), 15-23 Feb the holiday, 24-27 Feb (10),
    # Sat 28 Feb a make-up working day (11), 2-6 Mar (16), 9-12 Mar (20)
    assert plans.add_working_days(date(2026, 2, 6), 20) == date(2026, 3, 12)
    assert plans.add_working_days(date(2026, 2, 13), 1) == date(2026, 2, 14)  # a Saturday, but worked
    assert plans.add_working_days(date(2026, 2, 14), 1) == date(2026, 2, 24)  # the festival skipped
    assert review.working_days_between(date(2026, 2, 13), date(2026, 2, 24)) == 2
    assert review.working_days_between(date(2026, 3, 9), date(2026, 3, 12)) == 3
    assert review.working_days_between(date(2026, 3, 12), date(2026, 3, 9)) == 0


@pytest.fixture
async def two(db, tmp_path):
    return await inspections(tmp_path)


async def test_deadline_warned_and_missed_by_working_days_then_the_monthly_share(two):
    late, timely = two
    await submitted(late, ENDED)
    await submitted(timely, ENDED)
    pub = await Publication.get(inspection_id=late.id)
    assert (pub.ended_on, pub.due_on) == (date(2026, 2, 6), date(2026, 3, 12))  # not 6 March: 20 weekdays
    # Friday 6 March: six calendar days but four working days to go: no warning yet
    assert await review.sweep_publications(datetime(2026, 3, 6, 2, 0, tzinfo=UTC), zone=ZONE) == 0
    # Monday 9 March: three working days to go: warned, once per inspection
    assert await review.sweep_publications(datetime(2026, 3, 9, 2, 0, tzinfo=UTC), zone=ZONE) == 2
    assert await review.sweep_publications(datetime(2026, 3, 10, 2, 0, tzinfo=UTC), zone=ZONE) == 0
    near = await Alert.filter(kind="publication_near").order_by("id")
    assert [a.context["left"] for a in near] == [3, 3] and near[0].departments == ["SCJG"]
    # the reviewer approves one on its last day, the other is missed
    reviewer = await coordinator("900")
    pending = await review.Review.get(inspection_id=timely.id)
    code, shown = await review.decide_review(reviewer, pending.id, True, now=datetime(2026, 3, 12, 8, 0, tzinfo=UTC))
    assert code == "approved" and shown["no"] == timely.no
    assert await review.sweep_publications(datetime(2026, 3, 13, 1, 0, tzinfo=UTC), zone=ZONE) == 1
    missed = await Alert.get(kind="publication_missed")
    assert missed.context["inspection"] == late.id
    assert (await Publication.get(inspection_id=timely.id)).on_time is True
    r = await reports.monthly_report(
        "2026-03", ["SCJG"], datetime(2026, 4, 1, tzinfo=UTC), data_dir=None, zone=ZONE, chart=False
    )
    assert r.published == [{"department": "SCJG", "name": "市场监督管理局", "due": 2, "on_time": 1, "share": 0.5}]
    # the department by its name, not its code
    assert "按期公示（期限在本月）：市场监督管理局 1/2" in render("messages/report.j2", "zh-CN", r=r.context())
    # the public report counts only published results; the coordinators' counts every submitted one
    after = datetime(2027, 1, 2, tzinfo=UTC)
    public = await reports.monthly_report("2026-12", None, after, data_dir=None, zone=ZONE, chart=False, personal=False)
    internal = await reports.monthly_report("2026-12", None, after, data_dir=None, zone=ZONE, chart=False)
    assert sum(r.results for r in public.risk) == 1 and sum(r.results for r in internal.risk) == 2
    assert (await audit.verify())[1] is None


async def test_who_may_review(two):
    insp, _ = two
    result = await submitted(insp, ENDED)
    pending = await review.Review.get(result_id=result.id)
    now = datetime(2026, 2, 9, 2, 0, tzinfo=UTC)
    member = await Assignment.filter(inspection_id=insp.id).order_by("seat").first()
    on_team = await coordinator("901", inspector_id=member.inspector_id)
    with pytest.raises(OnsiteError) as refused:
        await review.decide_review(on_team, pending.id, True, now=now)
    assert refused.value.code == "review_own_team"
    other_dept = await coordinator("902", departments=("WSJ",))
    with pytest.raises(OnsiteError) as missing:
        await review.decide_review(other_dept, pending.id, True, now=now)
    assert missing.value.code == "review_not_found"
    reviewer = await coordinator("903")
    with pytest.raises(OnsiteError) as empty:
        await review.decide_review(reviewer, pending.id, False, "   ", now=now)
    assert empty.value.code == "review_comment_empty"
    code, _ = await review.decide_review(reviewer, pending.id, False, "请补充照片", now=now)
    assert code == "returned"
    again, shown = await review.decide_review(reviewer, pending.id, True, now=now)
    assert again == "already_decided" and shown["status"] == ReviewStatus.RETURNED.value
    pub = await Publication.get(inspection_id=insp.id)
    assert pub.published_at is None  # a returned result is not published


async def _returned_and_corrected(insp, reviewer, now):
    """A result returned by ``reviewer``, and the lead's correction of it waiting for approval."""
    result = await submitted(insp, ENDED)
    pending = await review.Review.get(result_id=result.id)
    assert (await review.decide_review(reviewer, pending.id, False, "第1项请复核", now=now))[0] == "returned"
    lead = await Assignment.filter(inspection_id=insp.id).order_by("seat").first()
    fixed = await Result.create(
        inspection=insp,
        status="pending",
        step="summary",
        created_by_id=lead.inspector_id,
        created_at=now,
        updated_at=now,
    )
    await Finding.create(result=fixed, position=0, item_code="SCJG-SP-01", verdict="pass", note="已复核")
    corr = await Correction.create(
        original=result,
        replacement=fixed,
        reason="按审核意见复核",
        status=CorrectionStatus.REQUESTED,
        requested_by_id=lead.inspector_id,
        opened_at=now,
        requested_at=now,
    )
    return fixed, corr


async def test_approving_the_correction_of_a_returned_result_is_the_review_when_eligible(two):
    insp, other = two
    now = datetime(2026, 2, 9, 2, 0, tzinfo=UTC)
    reviewer = await coordinator("903")
    fixed, corr = await _returned_and_corrected(insp, reviewer, now)
    code, shown = await corrections.decide_correction(reviewer, corr.id, True, now=now, zone=ZONE)
    assert code == "approved" and shown["reviewed"] is True  # one coordinator step, not two
    assert (await review.Review.get(result_id=fixed.id)).status == ReviewStatus.APPROVED
    assert await Alert.filter(kind="review_requested").count() == 1  # the first review only: nobody asked again
    pub = await Publication.get(inspection_id=insp.id)
    assert pub.result_id == fixed.id and pub.published_at is not None
    # a team member who is also a coordinator may approve the correction, but it is not a review
    member = await Assignment.filter(inspection_id=other.id).order_by("seat").first()
    on_team = await coordinator("904", inspector_id=member.inspector_id)
    fixed2, corr2 = await _returned_and_corrected(other, reviewer, now)
    code, shown = await corrections.decide_correction(on_team, corr2.id, True, now=now, zone=ZONE)
    assert code == "approved" and shown["reviewed"] is False
    assert (await review.Review.get(result_id=fixed2.id)).status == ReviewStatus.PENDING
    assert (await Publication.get(inspection_id=other.id)).published_at is None
