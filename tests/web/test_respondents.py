"""Respondents protected against differencing (issue 13 §3), through the public pages served by a
real aiohttp app on loopback, on SQLite and PostgreSQL.

The attack: read the public report, let one entity answer its survey by SMS, read it again; the
difference is that entity's answer. Survey figures are therefore published only for a month
that is over, only when they rest on at least 5 responses, and once published they never
change (``services.reports``: the public survey figures are frozen when first published).
Each test reads the page from a *fresh* app the second time, as a visitor reaching another
instance (or the same one after its 60-second cache) would.
"""

from __future__ import annotations

import asyncio
import itertools
import re
from datetime import UTC, datetime, timedelta

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.runtime import Runtime
from bot.web import make_app
from core.channel import EventKind, InboundEvent
from handlers.router import route
from models.draws import Inspection
from models.messaging import Channel
from models.surveys import Survey, SurveySample, SurveyStatus
from services import reports
from services.inbound import receive
from tests.web import world

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

DECEMBER_5 = datetime(2026, 12, 5, 4, 0, tzinfo=UTC)  # 12:00 in Shanghai, the month still open
JANUARY_3 = datetime(2027, 1, 3, 4, 0, tzinfo=UTC)  # December is over
MOBILE = "+8613700000077"
_ids = itertools.count(1)


async def view(settings, clock, path: str = "/reports/2026-12") -> str:
    """The page as a new visitor gets it from a freshly started app (no cached report)."""
    async with TestClient(TestServer(make_app(Runtime(settings=settings, clock=clock)))) as client:
        response = await client.get(path)
        body = await response.text()
        assert response.status == 200, body[:500]
        return body


def survey_part(html: str) -> str:
    """From the surveys' heading to the end of the page: every survey-derived figure."""
    start = html.index("<h2>检查回访</h2>")
    return html[start : html.index("</main>", start) if "</main>" in html[start:] else len(html)]


async def answered(n: int, *, first: int = 2, at: datetime = DECEMBER_5 - timedelta(days=2)) -> None:
    """``n`` more complete, clean answers (inspections ``first``…) to surveys sent in December."""
    sample = await SurveySample.first()
    for no in range(first, first + n):
        insp = await Inspection.get(draw_id=sample.draw_id, no=no)
        await Survey.create(
            inspection=insp,
            entity_id=insp.entity_id,
            sample=sample,
            code=f"C{no:03d}",
            channel=Channel.SMS,
            address=f"+86137000010{no:02d}",
            status=SurveyStatus.ANSWERED,
            answers={"credentials": True, "improper": False, "fairness": 5},
            created_at=at,
            sent_at=at,
            answered_at=at,
            completed_at=at,
        )


async def waiting(sent_at: datetime, *, no: int = 20) -> Survey:
    """A survey sent to :data:`MOBILE` and not answered yet."""
    sample = await SurveySample.first()
    insp = await Inspection.get(draw_id=sample.draw_id, no=no)
    return await Survey.create(
        inspection=insp,
        entity_id=insp.entity_id,
        sample=sample,
        code="W7QB",
        channel=Channel.SMS,
        address=MOBILE,
        status=SurveyStatus.SENT,
        answers={},
        created_at=sent_at,
        sent_at=sent_at,
    )


async def sms_answer(clock, text: str) -> str:
    """The entity answers by SMS, through the inbound log and the handler router."""
    event = InboundEvent(
        channel="sms", external_id=f"SM{next(_ids):032d}", sender=MOBILE, kind=EventKind.TEXT, text=text
    )
    return (await receive(event, route, clock)).outcome


async def test_differencing_the_live_month_reveals_nothing(db, tmp_path):
    """The attack of the issue: 5 answers, a view, one more answer (a complaint, fairness 1), a
    view a minute later. The month is not over, so neither view shows a survey figure, and the
    two pages are the same."""
    w = await world.build(tmp_path)
    await answered(4)  # with the world's complaint: 5 responses, 1 complaint
    await waiting(DECEMBER_5 - timedelta(days=1))
    w.clock.set(DECEMBER_5)
    before = await view(db, w.clock)
    assert await sms_answer(w.clock, "1 1 1") == "survey_answered"  # improper: yes; fairness 1
    assert await Survey.filter(status=SurveyStatus.ANSWERED).count() == 6
    w.clock.advance(61)
    after = await view(db, w.clock)
    assert survey_part(after) == survey_part(before)
    for html in (before, after):
        assert "投诉率" not in html and "平均公正分" not in html and "廉洁评分为" not in html
        assert "本月结束后公布" in html  # says why, through the template
    en = await view(db, w.clock, "/reports/2026-12?lang=en")
    assert "published after the month ends" in en and "Complaint rate" not in en
    # the coordinators' own view stays live and counts the new answer: the page could have moved
    personal = await reports.monthly_report(
        "2026-12", None, w.clock.now(), data_dir=db.data_dir, zone=world.ZONE, chart=False
    )
    assert (personal.surveys.responded, personal.surveys.complaints) == (6, 2)


async def test_a_closed_month_with_four_responses_shows_no_figures_not_even_after_a_late_fifth(db, tmp_path):
    w = await world.build(tmp_path)
    await answered(3)  # with the world's complaint: 4 responses
    await waiting(datetime(2026, 12, 30, 4, 0, tzinfo=UTC))
    w.clock.set(JANUARY_3)
    first = await view(db, w.clock)
    assert "投诉率" not in first and "不足 5 份" in first
    assert await sms_answer(w.clock, "1 2 5") == "survey_answered"  # the fifth answer, after the month
    w.clock.advance(3600)
    again = await view(db, w.clock)
    assert survey_part(again) == survey_part(first)
    assert "投诉率" not in again and "廉洁评分为" not in again


async def test_a_closed_months_figures_do_not_change_after_a_late_answer(db, tmp_path):
    w = await world.build(tmp_path)
    await answered(4)  # 5 responses, 1 complaint: 20.0 %
    await waiting(datetime(2026, 12, 30, 4, 0, tzinfo=UTC))
    w.clock.set(JANUARY_3)
    first = await view(db, w.clock)
    assert "投诉率" in first and "20.0%" in first and "（1 / 5）" in first
    assert await sms_answer(w.clock, "1 1 1") == "survey_answered"  # a complaint, in January
    w.clock.advance(timedelta(days=40))  # long after: still the same figures
    again = await view(db, w.clock)
    assert survey_part(again) == survey_part(first)
    assert "33.3%" not in again and "（2 / 6）" not in again
    # the English page shows the same frozen figures
    en = await view(db, w.clock, "/reports/2026-12?lang=en")
    assert "20.0%" in en and "(1 / 5)" in en
    # ... and the late answer is not lost: the coordinators' report counts it
    personal = await reports.monthly_report(
        "2026-12", None, w.clock.now(), data_dir=db.data_dir, zone=world.ZONE, chart=False
    )
    assert (personal.surveys.responded, personal.surveys.complaints) == (6, 2)


async def test_figures_are_published_once_across_instances(db, tmp_path):
    """Two instances publishing the same month at once keep one set of figures."""
    w = await world.build(tmp_path)
    await answered(4)
    w.clock.set(JANUARY_3)
    pages = await asyncio.gather(*(view(db, w.clock) for _ in range(3)))
    assert len({survey_part(p) for p in pages}) == 1
    assert re.search(r"投诉率</dt><dd>20\.0%", pages[0])
