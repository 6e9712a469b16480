"""The risk engine on a real database (SQLite and PostgreSQL): versions, classification, look-up."""

from __future__ import annotations

import datetime as dt
from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from domain.risk.model import parse_model
from domain.risk.score import classify
from models.audit import AuditRecord
from models.directory import Entity
from models.risk import RiskAssessment, RiskRun
from services.risk import classify as risk
from services.risk import versions
from services.risk.versions import RiskError
from tests import builders
from tests.domain.test_risk import SMALL

NOW = datetime(2026, 12, 1, 2, 0, tzinfo=dt.UTC)
ZONE = ZoneInfo("Asia/Shanghai")
USCC = ["91370202MA00000012", "91370202MA00000025", "91370202MA00000033", "91370202MA00000041"]


async def small_world():
    ids = []
    for n, code in enumerate(USCC):
        ids.append((await builders.entity(uscc=code, name=f"青岛测试{n}号商贸有限公司", risk="A")).id)
    await versions.propose(parse_model(SMALL), actor="coordinator:1", now=NOW)
    await versions.store_values(
        [
            (ids[0], "penalties", 1, date(2026, 1, 1)),  # older: replaced by the next
            (ids[0], "penalties", 9, date(2026, 6, 1)),
            (ids[0], "rating", 1, date(2026, 6, 1)),
            (ids[0], "months", 60, date(2026, 6, 1)),
            (ids[1], "months", 60, date(2026, 6, 1)),  # penalties, rating missing: average
            (ids[2], "bad_faith", 1, date(2026, 6, 1)),
            (ids[2], "months", 60, date(2026, 6, 1)),
            (ids[3], "months", 3, date(2026, 6, 1)),
            (ids[3], "penalties", 10, date(2026, 6, 1)),
        ]
    )
    return ids


async def test_only_an_approved_version_classifies_and_decisions_are_audited(db) -> None:
    await small_world()
    with pytest.raises(RiskError) as caught:
        await risk.classify_directory(NOW)
    assert caught.value.code == "risk_no_model"
    with pytest.raises(RiskError) as caught:
        await versions.propose(parse_model(SMALL), actor="x", now=NOW)
    assert caught.value.code == "risk_version_exists"
    await versions.decide("small", approve=True, actor="coordinator:1", now=NOW)
    with pytest.raises(RiskError) as caught:
        await versions.decide("small", approve=False, actor="coordinator:1", now=NOW)
    assert caught.value.code == "risk_version_decided"
    actions = await AuditRecord.all().order_by("seq").values_list("action", "subject", "actor")
    assert actions == [
        ("risk_model_proposed", "small", "coordinator:1"),
        ("risk_model_approved", "small", "coordinator:1"),
    ]
    # a rejected proposal never classifies
    await versions.propose(parse_model({**SMALL, "name": "other"}), actor="x", now=NOW)
    await versions.decide("other", approve=False, actor="coordinator:2", now=NOW)
    assert (await versions.in_force())[0] == "small"


async def test_classification_matches_the_reference_and_writes_the_class_in_force(db) -> None:
    ids = await small_world()
    await versions.decide("small", approve=True, actor="c", now=NOW)
    summary = await risk.classify_directory(NOW)
    model = parse_model(SMALL)
    want = [
        classify(model, {"penalties": 9, "rating": 1, "months": 60}, {}),
        classify(model, {"months": 60}, {}),
        classify(model, {"bad_faith": 1, "months": 60}, {}),
        classify(model, {"months": 3, "penalties": 10}, {}),
    ]
    assert [w.risk_class for w in want] == ["E", "C", "E", "B"]  # hand: 92.5 → E; 50 → C; serious; new
    rows = {a.entity_id: a for a in await RiskAssessment.all()}
    for entity_id, w in zip(ids, want):
        a = rows[entity_id]
        assert (a.risk_class, a.banded, a.rules, a.version) == (w.risk_class, w.banded, list(w.rules), "small")
        assert a.score == pytest.approx(w.score)
        assert [tuple(r) for r in a.reasons] == [tuple(r) for r in w.reasons]
    classes = dict(await Entity.all().values_list("id", "risk_class"))
    assert [classes[i].value for i in ids] == ["E", "C", "E", "B"]
    assert (summary.entities, summary.counts, summary.changed) == (4, {"B": 1, "C": 1, "E": 2}, 4)
    # again: same classes, nothing changes, the run is recorded
    again = await risk.classify_directory(NOW, reason="monthly")
    assert again.changed == 0 and await RiskRun.filter(reason="monthly").count() == 1
    assert await RiskAssessment.all().count() == 4


async def test_monthly_sweep_runs_once_a_month(db) -> None:
    await small_world()
    zone = dt.timezone(dt.timedelta(hours=8))
    assert await risk.monthly_sweep(NOW, zone) is None  # no version in force
    await versions.decide("small", approve=True, actor="c", now=NOW)
    assert await risk.monthly_sweep(NOW, zone) == "risk:2026-12"
    assert await risk.monthly_sweep(NOW + dt.timedelta(days=3), zone) is None
    assert await risk.monthly_sweep(NOW + dt.timedelta(days=31), zone) == "risk:2027-01"


async def test_lookup_by_code_or_name(db) -> None:
    await small_world()
    await versions.decide("small", approve=True, actor="c", now=NOW)
    await risk.classify_directory(NOW)
    [found] = await risk.lookup(USCC[2].lower(), ZONE)
    assert (found.risk_class, found.rules, found.assessed_on) == ("E", [["serious", "serious"]], "2026-12-01")
    found = await risk.lookup("测试", ZONE)
    assert len(found) == 4
    for query, code in (("", "risk_query_empty"), ("没有这家", "risk_not_found"), ("x" * 300, "risk_query_too_long")):
        with pytest.raises(RiskError) as caught:
            await risk.lookup(query, ZONE)
        assert caught.value.code == code


async def test_without_any_indicator_value_the_scheduler_reclassifies_nothing(db) -> None:
    """A version approved before any indicator was imported would score every firm alike (every
    value missing: all E on the example): the monthly sweep and the classification before an
    announce leave the classes as they are until values are imported."""
    ids = [
        (await builders.entity(uscc=code, name=f"青岛空白{n}号商贸有限公司", risk="B")).id
        for n, code in enumerate(USCC)
    ]
    await versions.propose(parse_model(SMALL), actor="coordinator:1", now=NOW)
    await versions.decide("small", approve=True, actor="cli", now=NOW)
    assert await risk.before_announce(NOW) is None
    assert await risk.monthly_sweep(NOW, ZONE) is None
    assert {e.risk_class.value for e in await Entity.filter(id__in=ids)} == {"B"}
    assert await RiskRun.all().count() == 0
