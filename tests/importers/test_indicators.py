"""Importing risk indicator values (SQLite and PostgreSQL): the directories' rules, with history."""

import datetime as dt
from datetime import date, datetime

import pytest

from core.render import render
from domain.risk.model import parse_model
from importers.indicators import import_indicators
from importers.run import import_file
from models.risk import IndicatorValue
from services.risk import versions
from tests.domain.test_risk import SMALL, WITH_HISTORY

from .files import ENTITY_HEADER, credit_code, entity, write_csv, write_xlsx, wrong_check

NOW = datetime(2026, 12, 1, 2, 0, tzinfo=dt.UTC)
TODAY = date(2026, 12, 1)
HEADER = ["统一社会信用代码", "指标", "指标值", "采集日期"]


async def world(tmp_path, n=3):
    result = await import_file(
        "entities", write_csv(tmp_path / "e.csv", ENTITY_HEADER, [entity(i) for i in range(n)]), now=NOW
    )
    assert result.ok
    await versions.propose(parse_model(SMALL), actor="test", now=NOW)


async def stored():
    rows = await IndicatorValue.all().values_list("entity__uscc", "indicator", "value", "observed_on")
    return sorted(rows, key=lambda r: (r[0], r[1], r[3]))


async def test_good_file_in_gb18030_is_stored_with_history(db, tmp_path) -> None:
    await world(tmp_path)
    rows = [
        [credit_code(0), "penalties", "2", "2026-10-31"],
        [credit_code(0), "penalties", "3", "2026/11/30"],
        [credit_code(1), "rating", "4.5", "2026年11月30日"],
        [credit_code(2), "bad_faith", "是", "20261130"],
    ]
    result = await import_indicators(write_csv(tmp_path / "i.csv", HEADER, rows, "gb18030"), now=NOW, today=TODAY)
    assert result.ok, result.errors
    assert (result.encoding, result.rows, result.inserted) == ("gb18030", 4, 4)
    assert await stored() == [
        (credit_code(0), "penalties", 2.0, date(2026, 10, 31)),
        (credit_code(0), "penalties", 3.0, date(2026, 11, 30)),
        (credit_code(1), "rating", 4.5, date(2026, 11, 30)),
        (credit_code(2), "bad_faith", 1.0, date(2026, 11, 30)),
    ]
    # the same date again replaces that observation only; a new date adds history
    again = [[credit_code(0), "penalties", "5", "2026-11-30"], [credit_code(0), "penalties", "1", "2026-12-01"]]
    second = await import_indicators(write_csv(tmp_path / "j.csv", HEADER, again), now=NOW, today=TODAY)
    assert second.ok
    assert [v for u, i, v, d in await stored() if i == "penalties"] == [2.0, 5.0, 1.0]
    assert "写入观测值 2 条" in render("cli/import_report.txt", locale="zh-CN", r=second)
    assert "2 observations written" in render("cli/import_report.txt", locale="en", r=second)


async def test_xlsx_and_english_headers(db, tmp_path) -> None:
    await world(tmp_path)
    path = write_xlsx(
        tmp_path / "i.xlsx",
        ["credit_code", "indicator", "value", "observed_on"],
        [[credit_code(1), "penalties", 7, "2026-11-01"]],
    )
    result = await import_indicators(path, now=NOW, today=TODAY)
    assert result.ok and result.inserted == 1
    assert await stored() == [(credit_code(1), "penalties", 7.0, date(2026, 11, 1))]


async def test_every_bad_value_is_reported_and_nothing_is_stored(db, tmp_path) -> None:
    await world(tmp_path)
    rows = [
        [credit_code(0), "penalties", "2", "2026-11-30"],  # good, but the file is refused
        [wrong_check(credit_code(1)), "penalties", "2", "2026-11-30"],
        [credit_code(99), "penalties", "2", "2026-11-30"],  # not in the directory
        [credit_code(1), "turnover", "2", "2026-11-30"],  # no such indicator
        [credit_code(1), "penalties", "two", "2026-11-30"],
        [credit_code(1), "penalties", "inf", "2026-11-30"],
        [credit_code(1), "rating", "1", "2027-01-01"],  # in the future
        [credit_code(1), "rating", "1", ""],
        [credit_code(0), "penalties", "9", "2026/11/30"],  # duplicate of row 2
    ]
    result = await import_indicators(write_csv(tmp_path / "i.csv", HEADER, rows), now=NOW, today=TODAY)
    assert not result.ok
    assert [(e.row, e.code) for e in result.errors] == [
        (3, "import_uscc_checksum"),
        (4, "import_entity_unknown"),
        (5, "import_indicator_unknown"),
        (6, "import_number"),
        (7, "import_number"),
        (8, "import_date_future"),
        (9, "import_required"),
        (10, "import_duplicate_observation"),
    ]
    assert await stored() == []
    for locale in ("zh-CN", "en"):
        assert "10" in render("cli/import_report.txt", locale=locale, r=result)


async def test_unknown_header_and_no_model(db, tmp_path) -> None:
    result = await import_indicators(
        write_csv(tmp_path / "i.csv", HEADER, [[credit_code(0), "x", "1", "2026-01-01"]]), now=NOW, today=TODAY
    )
    assert [p.code for p in result.problems] == ["import_no_risk_model"]
    await world(tmp_path)
    result = await import_indicators(write_csv(tmp_path / "j.csv", [*HEADER, "备注"], []), now=NOW, today=TODAY)
    assert [p.code for p in result.problems] == ["import_unknown_header"]


@pytest.mark.parametrize("name", ["penalties", "PENALTIES", "近三年处罚"])
async def test_an_indicator_by_code_or_name(db, tmp_path, name) -> None:
    await world(tmp_path)
    small = dict(
        SMALL, name="named", indicators=[dict(SMALL["indicators"][0], name="近三年处罚"), *SMALL["indicators"][1:]]
    )
    await versions.propose(parse_model(small), actor="test", now=NOW)
    result = await import_indicators(
        write_csv(tmp_path / "i.csv", HEADER, [[credit_code(0), name, "1", "2026-11-01"]]), now=NOW, today=TODAY
    )
    assert result.ok and await stored() == [(credit_code(0), "penalties", 1.0, date(2026, 11, 1))]


async def test_an_indicator_counted_from_results_cannot_be_imported(db, tmp_path) -> None:
    await world(tmp_path)
    await versions.propose(parse_model(WITH_HISTORY), actor="test", now=NOW)
    rows = [[credit_code(0), "penalties", "1", "2026-11-01"], [credit_code(1), "found", "0", "2026-11-01"]]
    result = await import_indicators(write_csv(tmp_path / "i.csv", HEADER, rows), now=NOW, today=TODAY)
    assert [(e.row, e.header, e.code) for e in result.errors] == [(3, "指标", "import_indicator_derived")]
    assert await stored() == []
    assert "由系统根据已公示的检查结果计算" in render("cli/import_report.txt", locale="zh-CN", r=result)
