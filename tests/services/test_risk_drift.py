"""The class mix against the approved one (issue 15, brief risk4): the monthly sweep alerts once
and proposes a retrain when a class's share drifts beyond the tolerance; approving resolves it.
Real SQLite and PostgreSQL."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from bot.cli import main
from core.render import render
from domain.risk import drift as pure
from domain.risk.model import parse_model
from models.alerts import Alert
from models.audit import AuditRecord
from models.draws import Firing, FiringStatus, Inspection
from models.messaging import Channel, ChatBinding, Outbox, Role
from models.risk import RiskModelVersion, VersionStatus
from models.scheduling import Fire
from services.risk import classify, drift, evaluate, versions
from tests.domain.test_risk import EXAMPLE, SMALL
from tests.services import draw_world
from tests.services.test_draws_cli import cli  # noqa: F401  (the fixture)
from tests.services.test_risk_learn import results_world

EXAMPLE_FILE = Path(__file__).resolve().parents[2] / "examples/risk/shandong-a-e.toml"


def test_a_share_drifts_only_beyond_the_relative_tolerance() -> None:
    approved = {"A": 50, "B": 30, "D": 20}
    within = pure.compare(approved, {"A": 48, "B": 30, "D": 22}, ["A", "B", "D"], 0.10)
    assert [round(s.change, 3) for s in within] == [-0.04, 0.0, 0.1]  # D: exactly 10 % is within
    assert pure.drifted(within) == []
    beyond = pure.compare(approved, {"A": 52, "B": 30, "D": 18, "E": 1}, ["A", "B", "D", "E"], 0.10)
    assert pure.drifted(beyond) == ["D", "E"]  # D −11.7 %; E had no approved share and now has members
    assert beyond[3].change is None


def test_the_tolerance_is_model_configuration() -> None:
    assert parse_model(SMALL).mix_tolerance == 0.10
    assert parse_model({**SMALL, "mix_tolerance": 0.2}).to_dict()["mix_tolerance"] == 0.2
    with pytest.raises(ValueError):
        parse_model({**SMALL, "mix_tolerance": -0.1})


async def penalties(entity_ids, value, day) -> None:
    await versions.store_values([(e, "penalties", value, day) for e in entity_ids])


async def small_in_force(tmp_path):
    """80 inspected entities with published results (no draw waiting), SMALL approved: the start
    time and the entities in inspection order."""
    clock = draw_world.clock()
    await results_world(tmp_path, clock)
    await Firing.filter(status=FiringStatus.ANNOUNCED).update(status=FiringStatus.DRAWN)
    start = clock.now()
    await versions.propose(parse_model(SMALL), actor="cli", now=start)
    await versions.decide("small", approve=True, actor="cli", now=start)
    return start, [i.entity_id for i in await Inspection.all().order_by("entity_id")]


async def test_the_sweep_alerts_once_proposes_a_retrain_and_approval_resolves_it(db, tmp_path) -> None:
    start, entities = await small_in_force(tmp_path)
    zone = draw_world.ZONE
    month = [start + timedelta(days=31 * n) for n in range(6)]
    wsj = await ChatBinding.create(channel=Channel.TELEGRAM, address="900", role=Role.COORDINATOR, departments=["WSJ"])

    assert await drift.mix() is None  # no classification by the version yet
    assert await classify.monthly_sweep(month[0], zone) is not None
    first = await drift.mix()
    assert first is not None and first.approved == first.current and not first.drifted

    # one entity with penalties 5 (class C, no problem found) falls to 3 (B): a small move, within ±10 %
    await penalties([entities[5]], 3, month[1].date())
    await classify.monthly_sweep(month[1], zone)
    small = await drift.mix()
    assert small.current != small.approved and not small.drifted
    assert not await Alert.filter(kind="risk_drift").exists()
    assert await RiskModelVersion.filter(status=VersionStatus.PROPOSED).count() == 0

    # six clean, low-penalty entities now carry 9 penalties: E grows far beyond the tolerance
    await penalties(entities[20:26], 9, month[2].date())
    await classify.monthly_sweep(month[2], zone)
    moved = await drift.mix()
    assert "E" in moved.drifted
    [alert] = await Alert.filter(kind="risk_drift")
    proposal = alert.context["proposal"]
    assert proposal == f"small-mix{month[2].astimezone(zone):%Y%m}" and alert.context["version"] == "small"
    assert "E" in alert.context["drifted"] and not alert.context["problem"]
    row = await RiskModelVersion.get(version=proposal)
    assert (row.status, row.based_on, row.created_by) == (VersionStatus.PROPOSED, "small", drift.ACTOR)
    assert row.metrics["mix"]["drifted"] == moved.drifted  # the comparison says why it was proposed
    assert (await versions.in_force())[0] == "small"  # nothing re-cut: the approved version classifies
    outcomes = await Fire.filter(kind="risk").order_by("id").values_list("outcome", flat=True)
    assert outcomes[-1] == "classified:80:alerted"
    # the classes span every department: its coordinators hear it (once), in their locale
    [sent] = await Outbox.filter(template="risk_drift.j2")
    assert (sent.recipient_id, sent.context["proposal"]) == (wsj.id, proposal)
    e_line = next(s for s in moved.shown(zone)["shares"] if s["risk_class"] == "E")
    for locale in ("zh-CN", "en"):
        told = render("messages/risk_drift.j2", locale, **sent.context)
        assert proposal in told and f"{100 * e_line['current']:.1f}" in told and "/riskmodels" in told
        shown = render("messages/risk_models.j2", locale, proposals=await versions.proposals(), mix=moved.shown(zone))
        assert "⚠" in shown and proposal in shown and "±10" in shown

    # still drifted a month later, the proposal undecided: no second alert, no second proposal
    await classify.monthly_sweep(month[3], zone)
    assert await Alert.filter(kind="risk_drift").count() == 1
    assert await Outbox.filter(template="risk_drift.j2").count() == 1
    assert await RiskModelVersion.filter(status=VersionStatus.PROPOSED).count() == 1
    assert (await drift.mix()).pending == proposal
    assert (await Fire.filter(kind="risk").order_by("-id").first()).outcome == "classified:80:told"

    # approved: the new version's mix is its approved one; the sweep is quiet again
    await versions.decide(proposal, approve=True, actor="协调员乙", now=month[3] + timedelta(hours=1))
    await classify.monthly_sweep(month[4], zone)
    after = await drift.mix()
    assert after.version == proposal and not after.drifted and not after.pending
    assert await Alert.filter(kind="risk_drift").count() == 1
    actions = [
        a for a in await AuditRecord.all().order_by("seq").values_list("action", "subject", "actor") if "risk" in a[0]
    ]
    assert actions[2:] == [
        ("risk_model_proposed", proposal, drift.ACTOR),
        ("risk_mix_drift", "small", drift.ACTOR),
        ("risk_model_approved", proposal, "协调员乙"),
    ]


async def test_a_rejected_retrain_leaves_the_drift_to_be_told_again(db, tmp_path) -> None:
    start, entities = await small_in_force(tmp_path)
    zone = draw_world.ZONE
    await classify.monthly_sweep(start, zone)
    await penalties(entities[20:26], 9, (start + timedelta(days=31)).date())
    await classify.monthly_sweep(start + timedelta(days=31), zone)
    [first] = await Alert.filter(kind="risk_drift")
    await versions.decide(first.context["proposal"], approve=False, actor="协调员乙", now=start + timedelta(days=32))
    await classify.monthly_sweep(start + timedelta(days=62), zone)
    assert await Alert.filter(kind="risk_drift").count() == 2  # the budget is still off what was approved
    assert await RiskModelVersion.filter(status=VersionStatus.PROPOSED, created_by=drift.ACTOR).count() == 1


def test_the_simulation_retrains_and_approves_when_the_alert_would_fire() -> None:
    tight = evaluate.simulate(replace(EXAMPLE, mix_tolerance=0.0), entities=2000, cycles=3, seed=1)
    assert tight[0].drift == "" and tight[1].drift == "retrained"  # cycle 1's mix is the approved one
    assert tight[2].version == f"{EXAMPLE.name}-mix2"
    loose = evaluate.simulate(replace(EXAMPLE, mix_tolerance=10.0), entities=2000, cycles=3, seed=1)
    assert [c.drift for c in loose] == ["", "", ""]
    for c in loose:
        assert 0.05 < c.worst_share < 0.15  # the example's D + E: about 8.5 % of the world


def test_risk_show_without_an_entity_prints_the_mix(cli, capsys) -> None:  # noqa: F811
    assert main(["risk", "show"]) == 0
    assert "No classification by the version in force yet" in capsys.readouterr().out
    assert main(["risk", "load", str(EXAMPLE_FILE)]) == 0
    assert main(["risk", "approve", EXAMPLE.name]) == 0
    assert main(["risk", "classify", "--force"]) == 0
    capsys.readouterr()
    assert main(["risk", "show"]) == 0
    out = capsys.readouterr().out
    assert f"Class mix of {EXAMPLE.name}" in out and "(30 entities) → now" in out and "Within tolerance" in out
