"""The monthly report: its figures, what the public sees of it, the chart, and its monthly send
(once across instances)."""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.runtime import Runtime
from core.compose import compose
from models.draws import Assignment, Inspection
from models.messaging import Channel, ChatBinding, Outbox, Role
from models.scheduling import Fire
from models.surveys import Survey, SurveySample, SurveyStatus
from services import reports
from tests.web import world

ZONE = world.ZONE
END_OF_MONTH = datetime(2026, 12, 31, 12, 0, tzinfo=UTC)


async def report(db, *, personal: bool, now: datetime = END_OF_MONTH, departments=None, chart=False):
    return await reports.monthly_report(
        "2026-12", departments, now, data_dir=db.data_dir, zone=ZONE, personal=personal, chart=chart
    )


async def test_figures_of_the_month(db, tmp_path):
    w = await world.build(tmp_path)
    r = await report(db, personal=True)
    assert (r.draws, r.inspections.drawn, r.inspections.done) == (2, 80, 1)  # P1 and F1: 40 entities each
    assert r.inspections.open == 79 and r.inspections.done_rate == pytest.approx(1 / 80)
    assert (r.coverage.entities, r.coverage.pool, r.coverage.rate) == (40, 40, 1.0)
    by_risk = {row.risk: row for row in r.risk}
    assert [row.risk for row in r.risk] == list("ABCDE")
    # the markup entity (no. 3 of the city: class D) has the one result, with a problem
    assert (by_risk["D"].drawn, by_risk["D"].results, by_risk["D"].problems, by_risk["D"].rate) == (16, 1, 1, 1.0)
    assert by_risk["A"].rate is None
    sent = await Assignment.all().count()
    assert (r.recusals.assignments, r.recusals.recused) == (sent, 1)
    assert r.recusals.reasons == {"close_relative": 1}
    # every deadline has passed by the 31st; all but the recusing inspector's were left unanswered
    assert (r.deadlines.due, r.deadlines.missed) == (sent, sent - 1)
    # … and none of their task messages went out (nothing dispatched here): never reached, not silent
    assert (r.deadlines.told, r.deadlines.unreached, r.deadlines.rate) == (0, sent - 1, None)
    assert (r.surveys.sent, r.surveys.responded, r.surveys.complaints) == (1, 1, 1)
    assert r.integrity.responses == 1 and r.integrity.shown and r.integrity.inspectors
    assert r.partial and w.p1  # 20:00 on the 31st: the month is not over yet


async def test_the_public_sees_nothing_personal(db, tmp_path):
    await world.build(tmp_path)
    r = await report(db, personal=False)
    assert r.recusals.reasons == {} and r.recusals.recused == 1
    assert not r.surveys.shown and r.surveys.sent == 0  # one survey: withheld, not even counted
    assert not r.integrity.shown and r.integrity.score is None and r.integrity.inspectors == []
    await _more_answered_surveys(4)
    r = await report(db, personal=False)
    # five responses, but the month is not over: still nothing (docs/surveys.md, "Respondents are protected")
    assert not r.surveys.shown and r.surveys.why == "open" and r.surveys.sent == 0
    assert not r.integrity.shown and r.integrity.why == "open" and r.integrity.score is None
    r = await report(db, personal=False, now=END_OF_MONTH + timedelta(days=1))
    assert r.surveys.shown and (r.surveys.sent, r.surveys.responded, r.surveys.complaints) == (5, 5, 1)
    assert r.integrity.shown and r.integrity.responses == 5 and r.integrity.score is not None
    assert r.integrity.inspectors == []  # never anyone's own score
    assert "cert" not in str(r.context())


async def _more_answered_surveys(n: int) -> None:
    sample = await SurveySample.first()
    now = world.START + timedelta(days=4)
    for no in range(2, 2 + n):
        insp = await Inspection.get(draw_id=sample.draw_id, no=no)
        await Survey.create(
            inspection=insp,
            entity_id=insp.entity_id,
            sample=sample,
            code=f"C{no:03d}",
            channel=Channel.SMS,
            address="",
            status=SurveyStatus.ANSWERED,
            answers={"credentials": True, "improper": False, "fairness": 5},
            created_at=now,
            sent_at=now,
            answered_at=now,
            completed_at=now,
        )


async def test_scope_bad_months_and_partial_months(db, tmp_path):
    await world.build(tmp_path)
    scoped = await report(db, personal=True, departments=["WSJ"])
    assert (scoped.draws, scoped.inspections.drawn, scoped.recusals.assignments) == (0, 0, 0)
    assert (await report(db, personal=True, departments=["SCJG"])).inspections.drawn == 80
    partial = await report(db, personal=True, now=world.START + timedelta(days=1))
    assert partial.partial and partial.deadlines.due == 0  # no deadline has passed yet
    with pytest.raises(reports.ReportError) as bad:
        await reports.monthly_report("2026-13", None, END_OF_MONTH, data_dir=db.data_dir, zone=ZONE)
    assert bad.value.code == "bad_month"
    with pytest.raises(reports.ReportError) as future:
        await reports.monthly_report("2027-02", None, END_OF_MONTH, data_dir=db.data_dir, zone=ZONE)
    assert future.value.code == "month_in_future"
    assert reports.month_bounds("2026-12", ZONE)[0] == datetime(2026, 11, 30, 16, 0, tzinfo=UTC)
    assert reports.shift_month("2026-12", 1) == "2027-01" and reports.shift_month("2026-01", -1) == "2025-12"


async def test_chart_is_a_png_made_once_per_content(db, tmp_path):
    await world.build(tmp_path)
    first = await report(db, personal=False, chart=True)
    path = Path(db.data_dir) / first.chart_path
    assert path.read_bytes().startswith(b"\x89PNG")
    made = path.stat().st_mtime_ns
    again = await report(db, personal=False, chart=True)
    assert again.chart_path == first.chart_path and path.stat().st_mtime_ns == made
    await Inspection.filter(no=7).update(status="done")  # what it plots changed: a new file, the old one gone
    changed = await report(db, personal=False, chart=True)
    assert changed.chart_path != first.chart_path and not path.exists()


async def _coordinators() -> tuple[ChatBinding, ChatBinding]:
    coord = await ChatBinding.create(
        channel=Channel.TELEGRAM, address="900", role=Role.COORDINATOR, departments=["SCJG"], locale="zh-CN"
    )
    admin = await ChatBinding.create(channel=Channel.TELEGRAM, address="901", role=Role.ADMIN, locale="en")
    return coord, admin


async def test_send_queues_the_report_and_its_chart_once(db, tmp_path):
    await world.build(tmp_path)
    coord, admin = await _coordinators()
    assert await reports.send_monthly_report("2026-12", END_OF_MONTH, data_dir=db.data_dir, zone=ZONE) == 2
    rows = await Outbox.filter(template__startswith="report").order_by("id")
    assert sorted((r.recipient_id, r.template) for r in rows) == [
        (coord.id, "report.j2"),
        (coord.id, "report_chart.j2"),
        (admin.id, "report.j2"),
        (admin.id, "report_chart.j2"),
    ]
    text = next(r for r in rows if r.recipient_id == coord.id and r.template == "report.j2")
    shown = compose("report.j2", text.context, "zh-CN", "900")
    assert "2026-12 月度报告" in shown.text and "近亲属关系 1" in shown.text and "检查员S0" in shown.text
    assert "【2026-12 月度报告】市场监督管理局" in shown.text and "SCJG" not in shown.text and len(shown.text) < 4096
    chart = next(r for r in rows if r.recipient_id == admin.id and r.template == "report_chart.j2")
    photo = compose("report_chart.j2", chart.context, "en", "901", data_dir=Path(db.data_dir))
    assert photo.photo.startswith(b"\x89PNG") and "2026-12" in photo.text
    await reports.send_monthly_report("2026-12", END_OF_MONTH, data_dir=db.data_dir, zone=ZONE)
    assert await Outbox.filter(template__startswith="report").count() == 4


async def test_sweep_sends_last_months_report_once_across_instances(db, tmp_path):
    from scheduler import SWEEPS, Scheduler

    w = await world.build(tmp_path)
    await _coordinators()
    first, second = (Scheduler(Runtime(settings=db, clock=w.clock)) for _ in range(2))
    sweep = SWEEPS["monthly_report"]
    before = datetime(2027, 1, 1, 8, 59, tzinfo=ZONE)
    await sweep(first, before)
    assert not await Fire.filter(kind="report").exists()
    on_time = datetime(2027, 1, 1, 9, 0, tzinfo=ZONE)
    await sweep(first, on_time)
    await sweep(second, on_time + timedelta(minutes=1))
    await sweep(first, on_time + timedelta(days=1))
    fires = await Fire.filter(kind="report").values_list("key", "outcome")
    assert fires == [("report:2026-12", "sent:2")]
    assert await Outbox.filter(template="report.j2").count() == 2
    late = datetime(2027, 2, 4, 9, 0, tzinfo=ZONE)  # after the 3rd: January's report is not sent late
    await sweep(second, late)
    assert await Fire.filter(kind="report").count() == 1


def test_cli_prints_the_report_and_refuses_a_bad_month(tmp_path, monkeypatch, capsys):
    import asyncio

    from bot.cli import main
    from core import db as dbmod
    from core.settings import Settings

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("INSPECTBOT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("INSPECTBOT_LOCALE", "en")
    monkeypatch.delenv("DATABASE_URL", raising=False)
    settings = Settings.from_env()

    async def seed():
        async with dbmod.opened(settings):
            await ChatBinding.create(channel=Channel.TELEGRAM, address="901", role=Role.ADMIN, locale="en")

    asyncio.run(seed())
    assert main(["report", "2026-13"]) == 2
    assert "is not a month" in capsys.readouterr().err
    assert main(["report", "2026-10", "--send"]) == 0
    out = capsys.readouterr().out
    assert "[Monthly report 2026-10] all departments" in out and "Queued to 1 coordinator or admin." in out
    chart = out.split("Chart: ", 1)[1].split("\n", 1)[0]
    assert Path(chart).read_bytes().startswith(b"\x89PNG")


async def test_english_report_message_counts_in_the_singular_when_it_is_one(db, tmp_path):
    await world.build(tmp_path)
    r = await report(db, personal=True)
    r = dataclasses.replace(r, draws=1)  # the world has two draws; one reads "1 draw"
    text = compose("report.j2", {"r": r.context()}, "en", "901").text
    assert text.startswith("[Monthly report 2026-12]")
    assert "1 draw, " in text and "1 draws" not in text
    assert "over 1 response" in text and "1 responses" not in text and "(1 complaint)" in text
    assert not re.search(r"\b1 (draws|entities|responses|inspections|complaints)\b", text)
    r = dataclasses.replace(r, draws=2)
    assert "2 draws, 80 entities drawn" in compose("report.j2", {"r": r.context()}, "en", "901").text
