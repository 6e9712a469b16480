"""The notice to the firm: on publication an SMS through the outbox (signature, quiet hours,
opt-out), and a printable PDF in Chinese whose extracted text is checked; served from the
firm's result page with the notice code."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import pytest
from pypdf import PdfReader

from core.pdf import notice_pdf
from core.render import render
from models.directory import Entity, Item
from models.messaging import Channel
from models.publication import Notice, NoticeDelivery
from models.surveys import SurveyOptOut
from services.onsite import notice as notice_service
from services.onsite import review
from services.onsite.shared import OnsiteError
from tests.services.publication_world import coordinator, inspections, submitted

MOBILE = "+8613900000001"
BASIS = "《中华人民共和国食品安全法》第三十五条"


async def _outbox(key: str):
    from models.messaging import Outbox

    return await Outbox.filter(dedupe_key=key).first()


async def test_published_result_sends_a_notice_sms_and_prints_a_chinese_pdf(db, tmp_path):
    insp, quiet = await inspections(tmp_path)
    await Entity.filter(id=insp.entity_id).update(mobile=MOBILE)
    await Entity.filter(id=quiet.entity_id).update(mobile="+8613900000002")
    await Item.filter(code="SCJG-SP-01").update(legal_basis=BASIS)
    ended = datetime(2026, 12, 3, 2, 0, tzinfo=UTC)
    first = await submitted(insp, ended, "fail")
    second = await submitted(quiet, ended, "pass")
    reviewer = await coordinator("900")
    noon = datetime(2026, 12, 4, 4, 0, tzinfo=UTC)  # 12:00 in Beijing
    await review.decide_review(
        reviewer,
        (await review.Review.get(result_id=first.id)).id,
        True,
        now=noon,
        sign="青岛市市场监管局",
        base_url="https://sgs.example.cn/",
    )
    notice = await Notice.get(result_id=first.id)
    assert notice.delivery == NoticeDelivery.QUEUED and notice.code.startswith("G") and len(notice.code) == 8
    assert notice.rectify_by is not None and notice.objection_until > notice.issued_on
    row = await _outbox(f"notice:{notice.id}:sms")
    assert row.channel == Channel.SMS and row.address == MOBILE and row.next_attempt_at == noon
    entity = await Entity.get(id=insp.entity_id)
    sms = render("messages/notice_sms.j2", "zh-CN", **row.context)
    assert sms.startswith("【青岛市市场监管局】") and entity.name in sms and "发现问题" in sms
    assert "2026-12-03，" in sms and f"https://sgs.example.cn/entities/{entity.uscc}" in sms
    assert notice.code in sms and "回复TD退订" in sms and "私密备注" not in sms

    # approved at 23:00 in Beijing: the SMS waits for the end of quiet hours (08:00)
    late = datetime(2026, 12, 4, 15, 0, tzinfo=UTC)
    await review.decide_review(reviewer, (await review.Review.get(result_id=second.id)).id, True, now=late)
    quiet_notice = await Notice.get(result_id=second.id)
    held = await _outbox(f"notice:{quiet_notice.id}:sms")
    assert held.next_attempt_at == datetime(2026, 12, 5, 0, 0, tzinfo=UTC) and quiet_notice.rectify_by is None

    # the PDF: Chinese text, extracted back
    doc = await notice_service.notice_document(entity.uscc, notice.code.lower(), late)
    pdf = notice_pdf(doc)
    assert pdf.startswith(b"%PDF") and b"STSong-Light" in pdf and b"FontFile" not in pdf  # nothing embedded
    extracted = "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages).replace("\n", "")
    for expected in ("检查结果告知书", entity.name, "食品经营许可情况检查", "食品安全法", "不合格", notice.code):
        assert expected in extracted, expected
    assert notice.rectify_by.isoformat() in extracted and notice.objection_until.isoformat() in extracted
    assert "陈述、申辩" in extracted
    with pytest.raises(OnsiteError):
        await notice_service.notice_document(entity.uscc, "GXXXXXXX", late)
    other = await Entity.get(id=quiet.entity_id)
    with pytest.raises(OnsiteError):  # the right code with another firm's page
        await notice_service.notice_document(other.uscc, notice.code, late)


async def test_an_opted_out_firm_gets_no_sms_but_its_notice_exists(db, tmp_path):
    insp, _ = await inspections(tmp_path)
    await Entity.filter(id=insp.entity_id).update(mobile=MOBILE)
    await SurveyOptOut.create(mobile=MOBILE, channel=Channel.SMS, keyword="TD", at=datetime(2026, 12, 1, tzinfo=UTC))
    result = await submitted(insp, datetime(2026, 12, 3, 2, 0, tzinfo=UTC))
    reviewer = await coordinator("900")
    now = datetime(2026, 12, 4, 4, 0, tzinfo=UTC)
    await review.decide_review(reviewer, (await review.Review.get(result_id=result.id)).id, True, now=now)
    notice = await Notice.get(result_id=result.id)
    assert notice.delivery == NoticeDelivery.OPTED_OUT
    assert await _outbox(f"notice:{notice.id}:sms") is None
    # approving again changes nothing: one notice per result
    code, _ = await review.decide_review(
        reviewer, (await review.Review.get(result_id=result.id)).id, True, now=now + timedelta(hours=1)
    )
    assert code == "already_decided" and await Notice.filter(result_id=result.id).count() == 1


def test_a_hostile_or_huge_notice_still_prints():
    doc = {
        "code": "G7K3Q9M2",
        "entity": "<script>alert(1)</script>&" + "A" * 600,
        "uscc": "91370200000000003X",
        "address": "",
        "departments": ["青岛市市场监督管理局"] * 5,
        "plan": "计" * 300,
        "draw_ref": "SCJG-FOOD/2026-12-01",
        "date": "2026-12-03",
        "issued_on": "2026-12-04",
        "objection_until": "2026-12-11",
        "rectify_by": "",
        "outcome": "not_operating",
        "items": [{"no": i, "name": "项" * 200, "basis": "B" * 3000, "verdict": "na"} for i in range(1, 41)],
    }
    pdf = notice_pdf(doc)  # a legal basis taller than a page splits across pages instead of failing
    reader = PdfReader(io.BytesIO(pdf))
    text = "".join(p.extract_text() for p in reader.pages)
    assert len(reader.pages) > 3 and "<script>alert(1)</script>&" in text and "未发现开展本次抽查涉及的经营活动" in text
