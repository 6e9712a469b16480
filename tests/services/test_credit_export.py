"""``inspectbot results export --month``: only the month's published results, in the publicity
system's fields, as CSV (UTF-8 with BOM) and JSON, checked field by field."""

from __future__ import annotations

import argparse
import csv
import io
import json
from datetime import UTC, date, datetime

from bot.commands import results as results_cli
from core import db as dbmod
from models.directory import Entity
from models.draws import Assignment, Inspection
from models.onsite import Finding, Result
from models.publication import Publication
from services import plans
from tests.builders import scheduled_draw
from tests.services import draw_world as world

ZONE = world.ZONE
HEADER = ["统一社会信用代码", "企业名称", "检查实施机关", "抽查计划/任务", "检查日期", "检查结果", "后续处理"]


async def _result(insp: Inspection, verdict: str, published_at: datetime | None) -> None:
    lead = await Assignment.filter(inspection_id=insp.id).order_by("seat").first()
    at = datetime(2026, 12, 3, 2, 0, tzinfo=UTC)
    result = await Result.create(
        inspection=insp,
        status="submitted",
        step="summary",
        created_by_id=lead.inspector_id,
        submitted_by_id=lead.inspector_id,
        submitted_at=at,
        created_at=at,
        updated_at=at,
    )
    await Finding.create(result=result, position=0, item_code="SCJG-SP-01", verdict=verdict, note="私密备注")
    await Publication.create(
        inspection=insp,
        ended_on=date(2026, 12, 3),
        due_on=date(2026, 12, 31),
        result=result if published_at else None,
        published_at=published_at,
        on_time=True if published_at else None,
    )


async def test_export_has_only_the_months_published_results_field_by_field(db, tmp_path, capsys):
    clock = world.clock()
    w = await world.build(n_entities=12, n_scjg=6, n_wsj=0)
    await plans.add_plan(world.plan_file(tmp_path, "P1", a="1", b="1", c="1", name="餐饮食品安全抽查"), clock)
    draw = await scheduled_draw("P1", clock=clock, zone=ZONE)
    fail, ok, na, unpublished, november = await Inspection.all().order_by("no").limit(5)
    await Entity.filter(id=fail.entity_id).update(name="=HYPERLINK(1)饭店")  # a formula must stay text
    await _result(fail, "fail", datetime(2026, 12, 10, 2, 0, tzinfo=UTC))
    await _result(ok, "pass", datetime(2026, 12, 31, 16, 0, tzinfo=UTC))  # 00:00 on 1 January in Beijing
    await _result(na, "na", datetime(2026, 12, 1, 0, 0, tzinfo=UTC))
    await _result(unpublished, "pass", None)
    await _result(november, "pass", datetime(2026, 11, 30, 15, 59, tzinfo=UTC))  # 23:59 on 30 November
    dept = w.depts["SCJG"].name
    na_name = (await Entity.get(id=na.entity_id)).name
    await dbmod.close()
    out = tmp_path / "out"
    args = argparse.Namespace(month="2026-12", out=out)
    assert await results_cli.run_export(args, db, clock) == 0
    assert "2 条" in capsys.readouterr().out
    raw = (out / "results-2026-12.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf") and b"\r\n" in raw
    rows = list(csv.reader(io.StringIO(raw[3:].decode("utf-8"))))
    assert rows[0] == HEADER
    assert len(rows) == 3
    first, second = rows[1], rows[2]  # by publication time: na (1 Dec) then fail (10 Dec)
    assert first == [
        na.entity_key,
        na_name,
        dept,
        f"餐饮食品安全抽查（{draw.draw_ref}）",
        "2026-12-03",
        "未发现开展本次抽查涉及的经营活动",
        "无",
    ]
    assert second == [
        fail.entity_key,
        "'=HYPERLINK(1)饭店",
        dept,
        f"餐饮食品安全抽查（{draw.draw_ref}）",
        "2026-12-03",
        "发现问题",
        "责令整改",
    ]
    assert "私密备注" not in raw.decode("utf-8")
    doc = json.loads((out / "results-2026-12.json").read_text(encoding="utf-8"))
    assert doc["month"] == "2026-12" and doc["fields"] == HEADER
    assert [r["统一社会信用代码"] for r in doc["records"]] == [na.entity_key, fail.entity_key]
    assert doc["records"][1]["企业名称"] == "=HYPERLINK(1)饭店"  # JSON is data, not a spreadsheet
    assert doc["records"][1]["检查结果"] == "发现问题" and doc["records"][0]["后续处理"] == "无"
    # November has the one published at 23:59 local; a bad month is refused
    assert await results_cli.run_export(argparse.Namespace(month="2026-11", out=out), db, clock) == 0
    nov = json.loads((out / "results-2026-11.json").read_text(encoding="utf-8"))
    assert [r["统一社会信用代码"] for r in nov["records"]] == [november.entity_key]
    assert await results_cli.run_export(argparse.Namespace(month="2026-13", out=out), db, clock) == 2
    assert "不是有效的月份" in capsys.readouterr().err
