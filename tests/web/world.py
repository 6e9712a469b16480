"""A small published world for the public-page tests, made with the real plan and draw services.

Three plans: P1 drawn (every entity of the test city, so the entity whose name is markup is
among them), F1 a flight plan drawn and still sealed, P2 announced for later. Planted in it,
things no page may ever show: mobile numbers, a conflict's and a recusal's note, a survey's
comment and answers, a finding's note, and the secrets of the sealed and the announced draws.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from core.clock import FakeClock
from models.directory import Conflict, ConflictSource, ConflictType, Entity, Inspector
from models.draws import Assignment, Draw, FiringSecret, Inspection, InspectionStatus
from models.messaging import Channel
from models.onsite import Finding, Result
from models.publication import Notice, NoticeDelivery, Publication, Rectification
from models.surveys import Survey, SurveySample, SurveyStatus
from services import plans
from services.draws.announce import announce
from services.recusals import record_and_replace
from tests.builders import scheduled_draw
from tests.services import draw_world

ZONE = draw_world.ZONE
START = draw_world.START  # 2026-12-01 10:00 in Shanghai
MARKUP = "<script>alert(1)</script>海鲜酒楼"
PHONE = "+8613912345678"
INSPECTOR_PHONE = "+8613787654321"
CONFLICT_NOTE = "PLANTED-CONFLICT-NOTE 他是我表哥"
RECUSAL_NOTE = "PLANTED-RECUSAL-NOTE 前同事"
SURVEY_COMMENT = "PLANTED-SURVEY-COMMENT 检查员很辛苦"
FINDING_NOTE = "PLANTED-FINDING-NOTE 冰箱温度超标"
NOTICE_CODE = "GTEST234"


@dataclass
class PublicWorld:
    clock: FakeClock
    p1: str  # draw_ref of the drawn plan
    f1: str  # draw_ref of the sealed flight draw
    p2: str  # draw_ref announced, not drawn
    markup: Entity
    secrets: dict[str, str]  # draw_ref -> hex secret (P2's and F1's must stay hidden)
    reveal_at: object


async def build(tmp_path: Path) -> PublicWorld:
    w = await draw_world.build(n_entities=40)
    clock = draw_world.clock()
    markup = w.entities[3]
    markup.name = MARKUP
    markup.mobile = PHONE
    await markup.save()
    await Entity.filter(id=w.entities[4].id).update(mobile=PHONE)
    await Inspector.filter(cert_no="S01").update(mobile=INSPECTOR_PHONE)
    await Conflict.create(
        inspector=w.inspectors["S08"],
        entity=w.entities[5],
        type=ConflictType.FINANCIAL_INTEREST,
        source=ConflictSource.DECLARED,
        note=CONFLICT_NOTE,
    )
    await plans.add_plan(draw_world.plan_file(tmp_path, "P1", a="1", b="1", c="1", name="餐饮食品安全抽查"), clock)
    await plans.add_plan(draw_world.plan_file(tmp_path, "F1", flight=True, a="1", b="1", c="1", name="飞行检查"), clock)
    await plans.add_plan(draw_world.plan_file(tmp_path, "P2", name="下月抽查"), clock)
    p1 = (await scheduled_draw("P1", clock=clock, zone=ZONE)).draw_ref
    f1 = await scheduled_draw("F1", clock=clock, zone=ZONE)
    p2 = (await announce("P2", START + timedelta(days=3), clock=clock, zone=ZONE)).draw_ref
    insp = await Inspection.get(draw__draw_ref=p1, entity_id=markup.id)
    asg = await Assignment.filter(inspection_id=insp.id).order_by("seat").first()
    await record_and_replace(asg.id, ConflictType.CLOSE_RELATIVE, RECUSAL_NOTE, clock=clock, zone=ZONE)
    await _result(insp, w.inspectors["S02"])
    await _survey(await Inspection.get(draw__draw_ref=p1, no=1))
    secrets = {ref: bytes((await FiringSecret.get(firing__draw_ref=ref)).secret).hex() for ref in (p1, f1.draw_ref, p2)}
    reveal_at = (await Draw.get(draw_ref=f1.draw_ref)).reveal_at
    return PublicWorld(clock, p1, f1.draw_ref, p2, markup, secrets, reveal_at)


async def _result(insp: Inspection, lead: Inspector) -> None:
    """A submitted result: the plan's one item 不合格, with a note that must stay private."""
    now = START + timedelta(days=2)
    result = await Result.create(
        inspection=insp,
        status="submitted",
        step="summary",
        created_by=lead,
        submitted_by=lead,
        submitted_at=now,
        created_at=now,
        updated_at=now,
    )
    await Finding.create(result=result, position=0, item_code="SCJG-SP-01", verdict="fail", note=FINDING_NOTE)
    day = now.date()  # reviewed and published: only a published result is shown
    await Publication.create(inspection=insp, ended_on=day, due_on=day, result=result, published_at=now, on_time=True)
    notice = await Notice.create(
        code=NOTICE_CODE,
        inspection=insp,
        result=result,
        issued_on=day,
        objection_until=day,
        rectify_by=day,
        delivery=NoticeDelivery.QUEUED,
        created_at=now,
    )
    await Rectification.create(notice=notice, inspection=insp, due_on=day)
    await Inspection.filter(id=insp.id).update(status=InspectionStatus.DONE)


async def _survey(insp: Inspection) -> None:
    """An answered survey (a complaint) whose answers and comment must stay private."""
    now = START + timedelta(days=3)
    sample = await SurveySample.create(
        draw_id=insp.draw_id, seed=b"\x01" * 32, shares={"*": "1"}, pool=1, selected=[insp.no], created_at=now
    )
    await Survey.create(
        inspection=insp,
        entity_id=insp.entity_id,
        sample=sample,
        code="K7QX",
        channel=Channel.SMS,
        address=PHONE,
        status=SurveyStatus.ANSWERED,
        answers={"credentials": False, "improper": True, "fairness": 1},
        comment=SURVEY_COMMENT,
        created_at=now,
        sent_at=now,
        answered_at=now,
        completed_at=now,
    )
