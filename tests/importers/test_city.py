"""The generated city: deterministic, valid in every row, and shaped like Qingdao."""

import csv
from collections import Counter

import pytest
from stdnum.cn import uscc

from importers import city
from importers.run import import_file
from importers.validate import LIST_SEPARATORS, jurisdiction
from models.directory import Entity, Inspector, Item, Unit

from .test_import import NOW


def rows(path):
    with path.open(encoding="utf-8-sig", newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def small_city(tmp_path_factory):
    return city.generate(tmp_path_factory.mktemp("city"), entities=3000, inspectors=400, seed=7)


def test_same_seed_same_bytes_other_seed_other_city(tmp_path, small_city):
    again = city.generate(tmp_path / "again", entities=3000, inspectors=400, seed=7)
    other = city.generate(tmp_path / "other", entities=3000, inspectors=400, seed=8)
    for name in ("departments.csv", "items.csv", "entities.csv", "inspectors.csv"):
        assert (again.entities.parent / name).read_bytes() == (small_city.entities.parent / name).read_bytes()
    assert other.entities.read_bytes() != small_city.entities.read_bytes()


def test_entities_look_like_qingdao(small_city):
    entities = rows(small_city.entities)
    assert len(entities) == 3000
    codes = [e["统一社会信用代码"] for e in entities]
    assert len(set(codes)) == 3000 and all(uscc.is_valid(c) for c in codes)
    counties = {c.code for c in city.COUNTIES}
    assert all(e["行政区划代码"][:6] in counties and len(e["行政区划代码"]) == 9 for e in entities)
    assert all(35.6 <= float(e["纬度"]) <= 37.1 and 119.5 <= float(e["经度"]) <= 120.95 for e in entities)
    risk = Counter(e["信用风险等级"] for e in entities)
    for cls, share in zip("ABCDE", city.RISK_WEIGHTS):
        assert abs(risk[cls] / 3000 * 100 - share) < 3, (cls, risk)
    assert set(Counter(e["主体类型"] for e in entities)) == {
        "企业",
        "个体工商户",
        "农民专业合作社",
        "事业单位",
        "社会组织",
        "法律服务机构",
    }


def test_inspectors_hold_qualifications_their_items_need(small_city):
    inspectors = rows(small_city.inspectors)
    items = rows(small_city.items)
    needed = {}
    for item in items:
        needed.setdefault(item["部门编码"], set()).update(LIST_SEPARATORS.split(item["执法资质"]))
    for person in inspectors:
        held = set(LIST_SEPARATORS.split(person["执法资质"]))
        assert held and held <= needed[person["部门编码"]]
    statuses = Counter(p["状态"] for p in inspectors)
    assert statuses["在岗"] > 300 and statuses["休假"] > 0 and statuses["退休"] > 0
    assert sum(p["证件有效期"] < "2026-01-01" for p in inspectors) > 0
    levels = Counter(len(jurisdiction(p["单位行政区划代码"])) for p in inspectors)
    assert levels[4] > 0 and levels[6] > 0  # city-level and district-level units


async def test_the_generated_city_imports_cleanly(db, small_city):
    for kind, path in small_city.in_import_order():
        result = await import_file(kind, path, now=NOW)
        assert result.ok, (kind, result.problems, result.errors[:3])
    assert await Entity.all().count() == 3000
    assert await Inspector.all().count() == 400
    assert await Item.all().count() == sum(len(d.items) for d in city.DEPARTMENTS)
    assert await Unit.filter(jurisdiction="3702").count() == len(city.DEPARTMENTS)
