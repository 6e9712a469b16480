"""Importing files into a real database (SQLite and PostgreSQL): all or nothing, upsert by key."""

import datetime as dt
from datetime import datetime

import pytest
from tortoise.exceptions import IntegrityError

from core.render import render
from importers.run import MAX_REPORTED, import_file
from models.directory import Department, Entity, EntityStatus, Inspector, InspectorStatus, Item, Unit

from .files import (
    DEPARTMENT_HEADER,
    DEPARTMENTS,
    ENTITY_HEADER,
    ENTITY_HEADER_EN,
    INSPECTOR_HEADER,
    ITEM_HEADER,
    ITEMS,
    credit_code,
    entity,
    inspector,
    write_csv,
    write_xlsx,
    wrong_check,
)

NOW = datetime(2026, 12, 1, 2, 0, tzinfo=dt.UTC)
LATER = datetime(2027, 1, 1, 2, 0, tzinfo=dt.UTC)


async def imp(kind, path, **kw):
    return await import_file(kind, path, now=kw.pop("now", NOW), **kw)


async def snapshot():
    """Everything the entity table holds, to show that a refused file changed nothing."""
    return (
        await Entity.all()
        .order_by("uscc")
        .values_list(
            "uscc",
            "name",
            "kind",
            "division_code",
            "address",
            "risk_class",
            "mobile",
            "lat",
            "lon",
            "status",
            "content_hash",
        )
    )


def report(result, locale="zh-CN"):
    return render("cli/import_report.txt", locale=locale, r=result)


async def seeded(tmp_path):
    """A database holding entities 1–3, and its snapshot."""
    result = await imp("entities", write_csv(tmp_path / "first.csv", ENTITY_HEADER, [entity(i) for i in (1, 2, 3)]))
    assert result.ok and result.inserted == 3
    return await snapshot()


# --- the bad inputs of the issue: each refused, precisely, with nothing written ---------------------


BAD_CELLS = [
    # (row changes, column header, value shown, reason code)
    (
        {"统一社会信用代码": wrong_check(credit_code(5))},
        "统一社会信用代码",
        wrong_check(credit_code(5)),
        "import_uscc_checksum",
    ),
    ({"信用风险等级": "F"}, "信用风险等级", "F", "import_risk_class"),
    ({"联系电话": "12345"}, "联系电话", "12345", "import_phone_invalid"),
]


@pytest.mark.parametrize("changes, header, value, code", BAD_CELLS, ids=["check-char", "risk-F", "phone-5-digits"])
async def test_one_bad_value_refuses_the_whole_file(db, tmp_path, changes, header, value, code):
    before = await seeded(tmp_path)
    rows = [entity(1, 名称="改了名字的公司"), entity(4), entity(5, **changes), entity(6)]
    result = await imp("entities", write_csv(tmp_path / "bad.csv", ENTITY_HEADER, rows))
    assert not result.ok
    assert [(e.row, e.header, e.value, e.code) for e in result.errors] == [(4, header, value, code)]
    assert await snapshot() == before  # nothing written: no insert, no update, no inactive marking
    text = report(result)
    assert f'第 4 行 {result.errors[0].column_letter} 列「{header}」值 "{value}"' in text
    assert "没有写入任何数据" in text


async def test_same_key_twice_names_both_rows(db, tmp_path):
    before = await seeded(tmp_path)
    rows = [entity(7), entity(8), entity(7, 名称="另一家")]
    result = await imp("entities", write_csv(tmp_path / "dup.csv", ENTITY_HEADER, rows))
    assert [(e.row, e.header, e.value, e.code, e.params) for e in result.errors] == [
        (4, "统一社会信用代码", credit_code(7), "import_duplicate_key", {"first_row": 2})
    ]
    assert await snapshot() == before
    assert "与第 2 行重复" in report(result)


FILE_PROBLEMS = [
    # (id, how to make the file, problem code, what the zh-CN message must say)
    (
        "undecodable",
        lambda p: p.write_bytes("统一社会信用代码,名称\n青岛\n".encode("gbk") + b"\xff\xff\n"),
        "import_undecodable",
        "第 3 行附近有无法解码的字节",
    ),
    ("empty", lambda p: p.write_bytes(b""), "import_file_empty", "文件是空的"),
    ("header-only", lambda p: write_csv(p, ENTITY_HEADER, []), "import_no_data_rows", "没有数据行"),
    (
        "missing-column",
        lambda p: write_csv(p, ENTITY_HEADER[:6] + ENTITY_HEADER[7:], [["x"] * 9]),
        "import_missing_column",
        "缺少必需的列「信用风险等级」",
    ),
    (
        "unknown-header",
        lambda p: write_csv(p, ENTITY_HEADER + ["备注"], [list(entity(9).values()) + ["x"]]),
        "import_unknown_header",
        "第 K 列的表头「备注」无法识别",
    ),
]


@pytest.mark.parametrize("make, code, message", [f[1:] for f in FILE_PROBLEMS], ids=[f[0] for f in FILE_PROBLEMS])
async def test_unusable_files_are_refused_whole(db, tmp_path, make, code, message):
    before = await seeded(tmp_path)
    path = tmp_path / "bad.csv"
    make(path)
    result = await imp("entities", path)
    assert [p.code for p in result.problems] == [code]
    assert await snapshot() == before
    assert message in report(result) and "没有写入任何数据" in report(result)
    assert "Nothing was written" in report(result, "en")


async def test_file_problem_messages_name_the_culprit(db, tmp_path):
    path = write_csv(tmp_path / "h.csv", ["统一社会信用代码", "名称", "颜色", "主体类型", "行政区划代码"], [["x"] * 5])
    text = report(await imp("entities", path))
    assert "第 C 列的表头「颜色」无法识别" in text
    assert "缺少必需的列「信用风险等级」" in text


async def test_only_the_first_errors_are_listed_then_a_count(db, tmp_path):
    rows = [entity(i, 信用风险等级="F") for i in range(1, MAX_REPORTED + 13)]
    result = await imp("entities", write_csv(tmp_path / "many.csv", ENTITY_HEADER, rows))
    assert result.error_count == MAX_REPORTED + 12 and len(result.errors) == MAX_REPORTED
    assert "另有 12 处错误未列出" in report(result)
    assert await Entity.all().count() == 0


async def test_names_with_markup_and_full_width_quotes_are_stored_exactly(db, tmp_path):
    names = ['<script>alert("x")</script>青岛有限公司', "青岛“海风”＆‘浪花’餐饮有限公司", "A & B <b>'公司'</b>"]
    rows = [entity(i, 名称=name) for i, name in enumerate(names, start=1)]
    assert (await imp("entities", write_csv(tmp_path / "m.csv", ENTITY_HEADER, rows))).ok
    assert await Entity.all().order_by("uscc").values_list("name", flat=True) == names


# --- re-import ------------------------------------------------------------------------------------


async def test_reimport_reports_inserted_updated_unchanged_and_marks_missing_inactive(db, tmp_path):
    await seeded(tmp_path)
    newer = [entity(1), entity(2, 信用风险等级="D", 联系电话="13900000002"), entity(4)]  # 3 is gone
    result = await imp("entities", write_csv(tmp_path / "newer.csv", ENTITY_HEADER, newer), now=LATER)
    assert (result.inserted, result.updated, result.unchanged, result.marked_missing) == (1, 1, 1, 1)
    rows = {e.uscc: e for e in await Entity.all()}
    assert len(rows) == 4  # never deleted
    assert rows[credit_code(3)].status is EntityStatus.INACTIVE
    assert rows[credit_code(2)].risk_class.value == "D" and rows[credit_code(2)].mobile == "+8613900000002"
    assert rows[credit_code(2)].updated_at == LATER and rows[credit_code(1)].updated_at == NOW

    again = await imp("entities", write_csv(tmp_path / "again.csv", ENTITY_HEADER, newer))
    assert (again.inserted, again.updated, again.unchanged, again.marked_missing) == (0, 0, 3, 0)

    back = await imp("entities", write_csv(tmp_path / "back.csv", ENTITY_HEADER, newer + [entity(3)]))
    assert (back.inserted, back.updated, back.unchanged) == (0, 1, 3)
    assert (await Entity.get(uscc=credit_code(3))).status is EntityStatus.ACTIVE


async def test_partial_export_leaves_missing_rows_alone(db, tmp_path):
    await seeded(tmp_path)
    result = await imp("entities", write_csv(tmp_path / "p.csv", ENTITY_HEADER, [entity(4)]), partial=True)
    assert (result.inserted, result.marked_missing, result.missing_kept) == (1, 0, 3)
    assert await Entity.filter(status=EntityStatus.ACTIVE).count() == 4


# --- encodings, workbooks, English headers -------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["gbk", "utf-8-sig"])
async def test_gbk_and_bom_files_import(db, tmp_path, encoding):
    rows = [entity(1, 名称="青岛市南区老字号饭店", 住所="山东省青岛市市南区中山路1号")]
    result = await imp("entities", write_csv(tmp_path / "e.csv", ENTITY_HEADER, rows, encoding))
    assert result.ok and result.inserted == 1
    saved = await Entity.get(uscc=credit_code(1))
    assert (saved.name, saved.address) == ("青岛市南区老字号饭店", "山东省青岛市市南区中山路1号")


async def test_xlsx_import(db, tmp_path):
    rows = [
        [credit_code(1), "青岛工作簿有限公司", "企业", 370202001, "", "制造业", "C", 13812345678, 36.07, 120.38],
        [None] * 10,
        [credit_code(2), "青岛第二有限公司", "enterprise", 370203, "", "", "a", None, None, None],
    ]
    result = await imp("entities", write_xlsx(tmp_path / "e.xlsx", ENTITY_HEADER, rows))
    assert result.ok and result.encoding == "xlsx" and result.inserted == 2
    first = await Entity.get(uscc=credit_code(1))
    assert (first.division_code, first.mobile, first.lat) == ("370202001", "+8613812345678", 36.07)


async def test_xlsx_errors_use_the_sheet_row_numbers(db, tmp_path):
    rows = [
        [credit_code(1), "甲", "企业", 370202, "", "", "A"],
        [None] * 7,
        [credit_code(2), "乙", "企业", 370202, "", "", "F"],
    ]
    result = await imp("entities", write_xlsx(tmp_path / "e.xlsx", ENTITY_HEADER[:7], rows))
    assert [(e.row, e.column_letter, e.value) for e in result.errors] == [(4, "G", "F")]


async def test_english_headers(db, tmp_path):
    rows = [dict(zip(ENTITY_HEADER_EN, entity(1).values()))]
    result = await imp("entities", write_csv(tmp_path / "en.csv", ENTITY_HEADER_EN, rows))
    assert result.ok and result.inserted == 1
    assert (await Entity.get(uscc=credit_code(1))).kind.value == "enterprise"


# --- departments, items, inspectors --------------------------------------------------------------------


async def import_departments_and_items(tmp_path):
    assert (await imp("departments", write_csv(tmp_path / "d.csv", DEPARTMENT_HEADER, DEPARTMENTS))).ok
    assert (await imp("items", write_csv(tmp_path / "i.csv", ITEM_HEADER, ITEMS))).ok


async def test_items_name_their_department_by_name_or_code(db, tmp_path):
    await import_departments_and_items(tmp_path)
    items = {i.code: i for i in await Item.all().prefetch_related("department")}
    assert items["SCJG-001"].department.code == "370200SCJG"
    assert items["YJGL-001"].department.code == "370200YJGL"
    assert items["YJGL-001"].target_kinds == ["enterprise", "institution"]
    assert items["YJGL-001"].qualifications == ["EM-AQ", "EM-WH"]
    assert (await Department.get(code="370200SCJG")).level.value == "city"


async def test_items_with_an_unknown_department_are_refused(db, tmp_path):
    assert (await imp("departments", write_csv(tmp_path / "d.csv", DEPARTMENT_HEADER, DEPARTMENTS))).ok
    rows = ITEMS + [["X-1", "某事项", "不存在的局", "", "", "", ""]]
    result = await imp("items", write_csv(tmp_path / "i.csv", ITEM_HEADER, rows))
    assert [(e.row, e.header, e.value, e.code) for e in result.errors] == [
        (4, "部门", "不存在的局", "import_department_unknown")
    ]
    assert await Item.all().count() == 0


async def test_reimported_departments_and_items_count_unchanged(db, tmp_path):
    await import_departments_and_items(tmp_path)
    again = await imp("items", write_csv(tmp_path / "i2.csv", ITEM_HEADER, ITEMS[:1]))
    assert (again.unchanged, again.missing_kept) == (1, 1)
    assert await Item.all().count() == 2


async def test_inspectors_create_their_units(db, tmp_path):
    await import_departments_and_items(tmp_path)
    rows = [
        inspector(1),
        inspector(
            2, 执法单位="青岛市市场监督管理局市南分局", 单位行政区划代码="370202", 状态="休假", 证件有效期="2025/6/30"
        ),
        inspector(
            3, 部门="370200YJGL", 执法单位="青岛市应急管理局执法支队", 执法资质="EM-AQ", 手机号="", 证件有效期=""
        ),
    ]
    result = await imp("inspectors", write_csv(tmp_path / "p.csv", INSPECTOR_HEADER, rows))
    assert result.ok and (result.inserted, result.units_created) == (3, 3)
    units = dict(await Unit.all().values_list("name", "jurisdiction"))
    assert units == {
        "青岛市市场监督管理局执法支队": "3702",
        "青岛市市场监督管理局市南分局": "370202",
        "青岛市应急管理局执法支队": "3702",
    }
    second = await Inspector.get(cert_no="370200000002").prefetch_related("unit", "department")
    assert (second.unit.name, second.department.code, second.status) == (
        "青岛市市场监督管理局市南分局",
        "370200SCJG",
        InspectorStatus.ON_LEAVE,
    )
    assert second.cert_expiry == dt.date(2025, 6, 30) and second.qualifications == ["SC-SP", "SC-TS"]
    assert second.mobile == "+8613900000002"


async def test_inspectors_missing_from_a_full_export_are_retired(db, tmp_path):
    await import_departments_and_items(tmp_path)
    assert (await imp("inspectors", write_csv(tmp_path / "p1.csv", INSPECTOR_HEADER, [inspector(1), inspector(2)]))).ok
    result = await imp("inspectors", write_csv(tmp_path / "p2.csv", INSPECTOR_HEADER, [inspector(1)]))
    assert (result.unchanged, result.marked_missing) == (1, 1)
    assert (await Inspector.get(cert_no="370200000002")).status is InspectorStatus.RETIRED
    back = await imp("inspectors", write_csv(tmp_path / "p3.csv", INSPECTOR_HEADER, [inspector(1), inspector(2)]))
    assert (back.updated, back.unchanged) == (1, 1)
    assert (await Inspector.get(cert_no="370200000002")).status is InspectorStatus.ACTIVE


async def test_one_unit_cannot_have_two_jurisdictions_in_a_file(db, tmp_path):
    await import_departments_and_items(tmp_path)
    rows = [inspector(1), inspector(2, 单位行政区划代码="370202")]
    result = await imp("inspectors", write_csv(tmp_path / "p.csv", INSPECTOR_HEADER, rows))
    assert [(e.row, e.header, e.code) for e in result.errors] == [(3, "单位行政区划代码", "import_unit_conflict")]
    assert await Unit.all().count() == 0 and await Inspector.all().count() == 0


async def test_inspector_landline_is_refused(db, tmp_path):
    await import_departments_and_items(tmp_path)
    result = await imp(
        "inspectors", write_csv(tmp_path / "p.csv", INSPECTOR_HEADER, [inspector(1, 手机号="0532-88886666")])
    )
    assert [(e.row, e.header, e.code) for e in result.errors] == [(2, "手机号", "import_phone_not_mobile")]


async def test_values_under_no_header_are_not_dropped_silently(db, tmp_path):
    rows = [list(entity(1).values()) + ["", "多出来的值"], list(entity(2).values())]
    result = await imp("entities", write_csv(tmp_path / "x.csv", ENTITY_HEADER + [""], rows))
    assert [(e.row, e.column_letter, e.value, e.code) for e in result.errors] == [
        (2, "L", "多出来的值", "import_value_without_header")
    ]
    assert await Entity.all().count() == 0


async def test_progress_is_reported_per_phase(sqlite_db, tmp_path):
    seen = []

    class Bar:
        def __init__(self, phase, total):
            self.phase, self.total, self.done = phase, total, 0
            seen.append(self)

        def update(self, n):
            self.done += n

        def close(self):
            pass

    rows = [entity(i) for i in range(1, 2502)]
    result = await imp("entities", write_csv(tmp_path / "p.csv", ENTITY_HEADER, rows), progress=Bar)
    assert result.ok
    assert [(b.phase, b.total, b.done) for b in seen] == [("validate", 2501, 2501), ("write", 2501, 2501)]


# --- credit-risk classes: imported until a risk model is in force, then computed ------------------------


async def test_with_a_risk_model_in_force_the_class_column_is_refused_and_classes_are_kept(db, tmp_path):
    from domain.risk.model import parse_model
    from models.risk import RiskAssessment
    from services.risk import classify, versions
    from tests.domain.test_risk import SMALL

    before = await seeded(tmp_path)  # no model in force: the file's classes (B) are the classes
    assert {r[5] for r in before} == {"B"}
    await versions.propose(parse_model(SMALL), actor="cli", now=NOW)
    await versions.decide("small", approve=True, actor="cli", now=NOW)
    await classify.classify_directory(NOW)  # no indicator values: 100 × 0.5 × 4 / 4 = 50 → C for all
    assert set(await Entity.all().values_list("risk_class", flat=True)) == {"C"}
    classified = await snapshot()
    # a class in the file is refused, row by row, column by column, and nothing is written
    rows = [entity(1), entity(2, 信用风险等级=""), entity(4, 信用风险等级="A")]
    refused = await imp("entities", write_csv(tmp_path / "r.csv", ENTITY_HEADER, rows))
    assert [(e.row, e.header, e.code) for e in refused.errors] == [
        (2, "信用风险等级", "import_risk_class_computed"),
        (4, "信用风险等级", "import_risk_class_computed"),
    ]
    assert await snapshot() == classified
    assert "信用风险等级由系统计算" in report(refused) and "computed by the risk engine" in report(refused, "en")
    # without the column (or with it empty): a changed entity keeps its computed class, a new one is C
    header = [h for h in ENTITY_HEADER if h != "信用风险等级"]
    await RiskAssessment.all().delete()
    await Entity.filter(uscc=credit_code(2)).update(risk_class="E")  # as a classification would have set
    newer = [entity(1), entity(2, 联系电话="13900000002"), entity(3), entity(4)]
    result = await imp("entities", write_csv(tmp_path / "n.csv", header, newer), now=LATER)
    assert result.ok, result.errors
    assert (result.inserted, result.updated) == (1, 3)  # the rows' fingerprints no longer hold a class
    classes = dict(await Entity.all().values_list("uscc", "risk_class"))
    assert [classes[credit_code(i)] for i in (1, 2, 3, 4)] == ["C", "E", "C", "C"]
    assert (await Entity.get(uscc=credit_code(2))).mobile == "+8613900000002"


WECOM_HEADER = INSPECTOR_HEADER + ["企业微信账号"]


async def test_wecom_userids_twice_in_a_file_are_refused_and_swaps_are_written(db, tmp_path):
    """Defect: the unique WeCom userid was checked by the database alone — a file naming one
    userid for two inspectors, two inspectors swapping theirs, or a departed member's userid given
    to a newcomer (a partial file) stopped the import with an IntegrityError and a traceback."""
    await import_departments_and_items(tmp_path)

    def csv(name, *pairs):
        return write_csv(tmp_path / name, WECOM_HEADER, [inspector(n, 企业微信账号=u) for n, u in pairs])

    twice = await imp("inspectors", csv("a.csv", (1, "zhang"), (2, "zhang")))
    assert not twice.ok and [(e.row, e.code) for e in twice.errors] == [(3, "import_duplicate_wecom_userid")]
    assert "一个企业微信账号只能对应一名检查人员" in report(twice) and "one WeCom userid" in report(twice, "en")
    assert not await Inspector.exists()
    assert (await imp("inspectors", csv("b.csv", (1, "zhang"), (2, "li")))).ok
    swapped = await imp("inspectors", csv("c.csv", (1, "li"), (2, "zhang")))
    assert swapped.ok and swapped.updated == 2
    assert await userids() == [("370200000001", "li"), ("370200000002", "zhang")]
    reused = await imp("inspectors", csv("d.csv", (3, "li")), partial=True)  # the newcomer has it now
    assert reused.ok
    assert await userids() == [("370200000001", None), ("370200000002", "zhang"), ("370200000003", "li")]
    assert (await Inspector.get(cert_no="370200000001")).content_hash == ""  # rewritten by the next file


async def test_wecom_userids_differing_only_in_case_are_one_member(db, tmp_path):
    """WeCom ignores case when it compares userids: two rows ``zhangsan`` / ``ZhangSan`` name one
    member, refused with both rows and both spellings named; a userid given in another case to
    another inspector moves to them (the holder's is freed in any case), spelt as the file spells
    it; and the database's own key refuses the same userid in another case."""
    await import_departments_and_items(tmp_path)

    def csv(name, *pairs):
        return write_csv(tmp_path / name, WECOM_HEADER, [inspector(n, 企业微信账号=u) for n, u in pairs])

    twice = await imp("inspectors", csv("a.csv", (1, "zhangsan"), (2, "li"), (3, "ZhangSan")))
    assert not twice.ok and [(e.row, e.code) for e in twice.errors] == [(4, "import_duplicate_wecom_userid")]
    zh, en = report(twice), report(twice, "en")
    assert "“ZhangSan”与第 2 行的“zhangsan”是同一个企业微信账号" in zh, zh
    assert '"ZhangSan" is the WeCom userid "zhangsan" of row 2' in en, en
    assert not await Inspector.exists()
    start = await imp("inspectors", csv("b.csv", (1, "_zhangsan"), (2, "li")))
    assert not start.ok and [(e.row, e.code) for e in start.errors] == [(2, "import_wecom_userid_start")]
    assert "第一个字符必须是字母或数字" in report(start) and "must be a letter or a digit" in report(start, "en")
    assert (await imp("inspectors", csv("c.csv", (1, "ZhangSan"), (2, "li")))).ok
    assert await userids() == [("370200000001", "ZhangSan"), ("370200000002", "li")]  # as the file spells it
    moved = await imp("inspectors", csv("d.csv", (3, "ZHANGSAN")), partial=True)
    assert moved.ok
    assert await userids() == [("370200000001", None), ("370200000002", "li"), ("370200000003", "ZHANGSAN")]
    with pytest.raises(IntegrityError):
        await Inspector.filter(cert_no="370200000002").update(wecom_userid="ZhangSan")
    assert (await Inspector.get(cert_no="370200000002")).wecom_userid == "li"


async def userids():
    return await Inspector.all().order_by("cert_no").values_list("cert_no", "wecom_userid")
