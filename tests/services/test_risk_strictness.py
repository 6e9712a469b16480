"""Inspector strictness in the coordinators' monthly report: risk-adjusted, with an interval, the
lenient flagged, nobody under 10 inspections, and nothing of it in the public report."""

from __future__ import annotations

from datetime import timedelta

from core.render import render
from domain.onsite import ResultStatus, Verdict
from models.directory import Inspector
from models.draws import Inspection
from models.onsite import Finding, Result
from services import plans, reports
from tests.builders import scheduled_draw
from tests.services import draw_world


async def test_strictness_in_the_coordinators_report_only(db, tmp_path) -> None:
    clock = draw_world.clock()
    await draw_world.build(n_entities=60, n_scjg=6, n_wsj=0)
    await plans.add_plan(draw_world.plan_file(tmp_path, "P1", a="1", b="1", c="1"), clock)
    await scheduled_draw("P1", clock=clock, zone=draw_world.ZONE)
    strict, lenient, rare = [await Inspector.get(cert_no=c) for c in ("S01", "S02", "S03")]
    now = clock.now()
    for n, inspection in enumerate(await Inspection.all().order_by("id")):
        lead = rare if n < 9 else (strict if n % 2 else lenient)
        problem = lead is strict and n % 4 != 3 or lead is rare
        result = await Result.create(
            inspection=inspection,
            status=ResultStatus.SUBMITTED,
            step="done",
            created_by=lead,
            submitted_by=lead,
            submitted_at=now + timedelta(minutes=n),
            created_at=now,
            updated_at=now,
        )
        verdict = Verdict.FAIL if problem else Verdict.PASS
        await Finding.create(result=result, position=0, item_code="SCJG-SP-01", verdict=verdict)
    month = now.astimezone(draw_world.ZONE).strftime("%Y-%m")
    later = now + timedelta(days=1)
    report = await reports.monthly_report(month, None, later, data_dir=db.data_dir, zone=draw_world.ZONE, chart=False)
    rows = {r["cert"]: r for r in report.strictness}
    assert set(rows) == {"S01", "S02"}  # S03 has 9 inspections: never scored
    assert rows["S02"]["far_below"] and not rows["S01"]["far_below"]
    assert rows["S02"]["adjusted"] == 0.0 and rows["S02"]["low"] <= rows["S02"]["adjusted"] <= rows["S02"]["high"]
    assert rows["S01"]["adjusted"] > rows["S02"]["high"]
    for locale, flag in (("zh-CN", "明显低于同行"), ("en", "far below peers")):
        text = render("messages/report.j2", locale, r=report.context())
        assert text.count(flag) == 1 and "S02" in text and "S03" not in text
    public = await reports.monthly_report(
        month, None, later, data_dir=db.data_dir, zone=draw_world.ZONE, chart=False, personal=False
    )
    assert public.strictness == [] and public.strictness_overall is None
