"""Header mapping: Chinese and English headers, forgiving spelling, every problem named at once."""

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from importers.columns import COLUMNS, KINDS, HeaderInvalid, canonical_header, map_header, normalise_header

from .files import ENTITY_HEADER, ENTITY_HEADER_EN

README = Path(__file__).resolve().parents[2] / "README.md"


def test_chinese_and_english_headers_map_to_the_same_fields():
    assert map_header("entities", ENTITY_HEADER) == map_header("entities", ENTITY_HEADER_EN)
    assert map_header("entities", ENTITY_HEADER)["risk_class"] == 6


def test_spelling_variants_are_accepted():
    header = [" 统一社会信用代码* ", "\ufeff名称", "Kind", "Division Code", "RISK-CLASS", "Latitude", "经度"]
    assert set(map_header("entities", header)) == {"uscc", "name", "kind", "division_code", "risk_class", "lat", "lon"}


def test_empty_header_cells_are_ignored():
    assert map_header("entities", ENTITY_HEADER + ["", " "]) == map_header("entities", ENTITY_HEADER)


def test_every_problem_is_reported_at_once():
    header = ["名称", "name", "颜色", "主体类型", "行政区划代码", "信用风险等级"]
    with pytest.raises(HeaderInvalid) as caught:
        map_header("entities", header)
    found = {
        (p.code, p.params.get("column"), p.params.get("header"), p.params.get("zh")) for p in caught.value.problems
    }
    assert found == {
        ("import_duplicate_header", "B", "name", None),
        ("import_unknown_header", "C", "颜色", None),
        ("import_missing_column", None, None, "统一社会信用代码"),
    }


def test_department_by_name_or_by_code_is_enough_but_one_is_needed():
    base = ["执法证号", "姓名", "执法单位", "单位行政区划代码"]
    assert "department_code" in map_header("inspectors", base + ["部门编码"])
    assert "department" in map_header("inspectors", base + ["部门"])
    with pytest.raises(HeaderInvalid) as caught:
        map_header("inspectors", base)
    assert [p.code for p in caught.value.problems] == ["import_missing_one_of"]


@pytest.mark.parametrize("kind", KINDS)
def test_canonical_headers_map_back_in_both_languages(kind):
    for locale in ("zh-CN", "en"):
        mapping = map_header(kind, canonical_header(kind, locale))
        assert list(mapping) == [c.field for c in COLUMNS[kind]]


@pytest.mark.parametrize("kind", KINDS)
def test_readme_lists_every_canonical_header(kind):
    readme = README.read_text(encoding="utf-8")
    section = readme[readme.index("## Importing the directories") :]
    missing = [h for c in COLUMNS[kind] for h in (c.zh[0], c.en[0]) if f"`{h}`" not in section and h not in section]
    assert not missing


@given(st.lists(st.text(max_size=12), max_size=12))
def test_any_header_row_maps_or_fails_cleanly(header):
    for kind in KINDS:
        try:
            mapping = map_header(kind, header)
        except HeaderInvalid as invalid:
            assert invalid.problems
        else:
            assert all(normalise_header(header[i]) for i in mapping.values())
