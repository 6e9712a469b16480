"""The class mix against the approved one (issue 15, brief risk4): the monthly sweep alerts once
and proposes a retrain when a class's share drifts beyond the tolerance; approving resolves it.
Real SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import re
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from bot.cli import main
from core import db as core_db
from core.render import render
from core.settings import Settings
from domain.risk import drift as pure
from domain.risk.model import parse_model
from models.alerts import Alert
from models.audit import AuditRecord
from models.draws import Firing, FiringStatus, Inspection
from models.messaging import Channel, ChatBinding, Outbox, Role
from models.publication import Publication
from models.risk import RiskModelVersion, VersionStatus
from models.scheduling import Fire
from services.risk import classify, drift, evaluate, train, versions
from services.risk.versions import RiskError
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


def test_the_proposed_mix_shows_each_versions_shares_and_the_inspections_they_ask() -> None:
    ratios = {"A": 0.0, "B": 0.5, "D": 1.0}
    shown = pure.proposed_mix(
        ["A", "B", "D"], {"A": 5, "B": 3, "D": 2}, {"A": 6, "B": 3, "D": 1}, {"A": 4, "B": 3, "D": 3}, ratios, 0.10
    )
    assert [(r["approved"], r["current"], r["proposed"]) for r in shown["rows"]] == [
        (0.5, 0.6, 0.4),
        (0.3, 0.3, 0.3),
        (0.2, 0.1, 0.3),
    ]
    assert shown["inspections"] == pytest.approx({"approved": 3.5, "current": 2.5, "proposed": 4.5})
    assert shown["beyond"] == ["A", "D"]  # against the approved mix
    before = pure.proposed_mix(["A", "B", "D"], {}, {"A": 6, "B": 3, "D": 1}, {"A": 6, "B": 3, "D": 1}, ratios, 0.1)
    assert before["inspections"]["approved"] is None and before["rows"][0]["approved"] is None
    assert before["beyond"] == []  # none approved yet: against the mix now


def test_the_tolerance_is_model_configuration() -> None:
    assert parse_model(SMALL).mix_tolerance == 0.10
    assert parse_model({**SMALL, "mix_tolerance": 0.2}).to_dict()["mix_tolerance"] == 0.2
    with pytest.raises(ValueError):
        parse_model({**SMALL, "mix_tolerance": -0.1})


async def penalties(entity_ids, value, day) -> None:
    await versions.store_values([(e, "penalties", value, day) for e in entity_ids])


async def small_in_force(tmp_path, config=SMALL):
    """80 inspected entities with published results (no draw waiting), ``config`` approved: the start
    time and the entities in inspection order."""
    clock = draw_world.clock()
    await results_world(tmp_path, clock)
    await Firing.filter(status=FiringStatus.ANNOUNCED).update(status=FiringStatus.DRAWN)
    start = clock.now()
    await versions.propose(parse_model(config), actor="cli", now=start)
    await versions.decide(config["name"], approve=True, actor="cli", now=start)
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
    assert main(["risk", "show"]) == 2  # nothing approved: that, not "not classified yet"
    assert "No risk model version is approved yet" in capsys.readouterr().err
    assert main(["risk", "load", str(EXAMPLE_FILE)]) == 0
    assert main(["risk", "approve", EXAMPLE.name]) == 0
    capsys.readouterr()
    assert main(["risk", "show"]) == 0
    assert "No classification by the version in force yet" in capsys.readouterr().out
    assert main(["risk", "classify", "--force"]) == 0
    capsys.readouterr()
    assert main(["risk", "show"]) == 0
    out = capsys.readouterr().out
    assert f"Class mix of {EXAMPLE.name}" in out and "(30 entities) → now" in out and "Within tolerance" in out


# ---- brief risktrain: one rule for every proposal's bands, the mix shown before approval, retries


#: SMALL with a ``[shares]`` far from what its bands give (half the directory in D/E).
FILE_SHARES = {"A": 0.1, "B": 0.1, "C": 0.3, "D": 0.3, "E": 0.2}
SMALL_SHARES = {**SMALL, "name": "small-shares", "shares": FILE_SHARES}


def worst(mix_rows, column: str) -> float:
    return sum(r[column] for r in mix_rows if r["risk_class"] in ("D", "E"))


async def approved_with_shares(tmp_path):
    """80 published results, SMALL_SHARES approved and classified once (its approved mix)."""
    now, _ = await small_in_force(tmp_path, SMALL_SHARES)
    summary = await classify.classify_directory(now, force=True)
    return now, summary


async def test_a_hand_run_train_keeps_the_approved_mix_unless_the_file_shares_are_asked(db, tmp_path) -> None:
    now, summary = await approved_with_shares(tmp_path)
    approved_worst = (summary.counts.get("D", 0) + summary.counts.get("E", 0)) / summary.entities
    assert approved_worst < 0.35  # the bands give far less D/E than the file's 50 %: the two rules differ

    kept = await train.train(now + timedelta(hours=1), name="by-hand", actor="协调员甲")
    mix = kept.class_mix
    assert mix["shares_from"] == "approved"
    assert [r["approved"] for r in mix["rows"]] == pytest.approx([summary.counts.get(c, 0) / 80 for c in "ABCDE"])
    assert worst(mix["rows"], "proposed") == pytest.approx(approved_worst, abs=0.05)  # the approved budget
    assert not {"D", "E"} & set(mix["beyond"])  # (the at-least rules may still move A/B/C: shown, docs/risk.md)
    stored = (await RiskModelVersion.get(version="by-hand")).metrics["class_mix"]
    assert stored == mix  # the comparison an approver sees is stored with the proposal

    asked = await train.train(now + timedelta(hours=2), name="to-file", actor="协调员甲", shares_from="file")
    moved = asked.class_mix
    assert moved["shares_from"] == "file"
    assert worst(moved["rows"], "proposed") > 0.45  # the file's 50 % D/E (after the set and at-least rules)
    assert {"D", "E"} <= set(moved["beyond"])  # flagged: approving it changes the budget
    assert moved["inspections"]["proposed"] > 1.3 * moved["inspections"]["approved"]

    with pytest.raises(RiskError) as caught:
        await train.train(now, name="bad", actor="cli", shares_from="guess")
    assert caught.value.code == "risk_shares_unknown"
    await versions.propose(parse_model(SMALL), actor="cli", now=now + timedelta(hours=3))
    await versions.decide("small", approve=True, actor="cli", now=now + timedelta(hours=3))
    with pytest.raises(RiskError) as caught:  # no [shares] in the version in force: said, nothing proposed
        await train.train(now + timedelta(hours=4), name="none", actor="cli", shares_from="file")
    assert caught.value.code == "risk_shares_none"
    assert not await RiskModelVersion.filter(version="none").exists()
    # before the new version has classified, its mix is the one it gives the directory now
    fresh = await train.train(now + timedelta(hours=4), name="fresh", actor="cli")
    assert fresh.class_mix["shares_from"] == "now" and fresh.class_mix["inspections"]["approved"] is None

    # the comparison shown before approval lists each version's mix, in both locales
    row = await RiskModelVersion.get(version="to-file")
    listed = {"version": row.version, "status": "proposed", "based_on": "small-shares", "metrics": row.metrics}
    listed |= {"created_at": "2026-01-01 09:00", "decided_by": ""}
    for locale in ("zh-CN", "en"):
        for shown in (
            render("cli/risk.txt", locale, what="trained", t=asked),
            render("messages/risk_models.j2", locale, proposals=await versions.proposals(), mix=None),
            render("cli/risk.txt", locale, what="versions", rows=[listed], current="small-shares"),
        ):
            for row in moved["rows"]:  # approved → in force now → proposed, one line a class
                shares = [f"{100 * row[k]:.1f} ?%" for k in ("approved", "current", "proposed")]
                assert re.search(f"{row['risk_class']}  " + " → ".join(shares), shown), (locale, shown)
            assert f"{moved['inspections']['proposed']:.1f}" in shown and "⚠" in shown
            assert "[shares]" in shown


async def test_a_sweep_that_could_not_retrain_retries_monthly_and_alerts_once_more_when_it_can(db, tmp_path) -> None:
    start, entities = await small_in_force(tmp_path)
    zone = draw_world.ZONE
    month = [start + timedelta(days=31 * n) for n in range(5)]
    await ChatBinding.create(channel=Channel.TELEGRAM, address="900", role=Role.COORDINATOR, departments=["WSJ"])
    published = await Publication.all().values_list("id", "published_at")
    await Publication.all().update(published_at=None)  # too few results to learn from (2 re-inspections)
    await classify.monthly_sweep(month[0], zone)
    await penalties(entities[20:26], 9, month[1].date())
    await classify.monthly_sweep(month[1], zone)
    [told] = await Alert.filter(kind="risk_drift")
    assert (told.context["proposal"], told.context["problem"]) == ("", "risk_no_results")
    for locale in ("zh-CN", "en"):  # why (how many results, how many needed), and that it will retry
        said = render("messages/risk_drift.j2", locale, **told.context)
        assert ("再次尝试" if locale == "zh-CN" else "tries again") in said and "50" in said

    await classify.monthly_sweep(month[2], zone)  # still too few: tried again, nothing said
    assert await Alert.filter(kind="risk_drift").count() == 1
    assert await Outbox.filter(template="risk_drift.j2").count() == 1
    assert (await Fire.filter(kind="risk").order_by("-id").first()).outcome == "classified:80:retried"
    assert not await RiskModelVersion.filter(status=VersionStatus.PROPOSED).exists()

    for row_id, at in published:  # the results are published: now a retrain can be learned
        await Publication.filter(id=row_id).update(published_at=at)
    await classify.monthly_sweep(month[3], zone)
    assert (await Fire.filter(kind="risk").order_by("-id").first()).outcome == "classified:80:alerted"
    [_, again] = await Alert.filter(kind="risk_drift").order_by("id")
    proposal = f"small-mix{month[3].astimezone(zone):%Y%m}"
    assert (again.context["proposal"], again.context["retried"]) == (proposal, True)
    assert await Outbox.filter(template="risk_drift.j2").count() == 2
    row = await RiskModelVersion.get(version=proposal)
    assert (row.created_by, row.metrics["class_mix"]["shares_from"]) == (drift.ACTOR, "approved")
    for locale in ("zh-CN", "en"):
        said = render("messages/risk_drift.j2", locale, **again.context)
        assert proposal in said and ("再次尝试并已成功" if locale == "zh-CN" else "tried again and now could") in said

    await classify.monthly_sweep(month[4], zone)  # the retrain waits for a decision: told, not alerted
    assert await Alert.filter(kind="risk_drift").count() == 2
    assert (await Fire.filter(kind="risk").order_by("-id").first()).outcome == "classified:80:told"


def test_risk_train_by_hand_keeps_the_approved_mix_and_shares_file_gives_the_files(
    tmp_path, monkeypatch, capsys
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("INSPECTBOT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("INSPECTBOT_LOCALE", "en")
    monkeypatch.delenv("DATABASE_URL", raising=False)

    async def seed():
        async with core_db.opened(Settings.from_env()):
            await approved_with_shares(tmp_path)

    asyncio.run(seed())
    assert main(["risk", "train", "--name", "by-hand"]) == 0
    kept = capsys.readouterr().out
    assert "keep the mix the version in force was approved with" in kept
    assert not [line for line in kept.splitlines() if line.strip()[:2] in ("D ", "E ") and "⚠" in line]
    assert main(["risk", "train", "--name", "to-file", "--shares", "file"]) == 0
    asked = capsys.readouterr().out
    assert "give the model file's [shares]" in asked and "beyond the tolerance: a different budget" in asked

    async def stored():
        async with core_db.opened(Settings.from_env()):
            rows = await RiskModelVersion.filter(version__in=["by-hand", "to-file"]).order_by("id")
            return [r.metrics["class_mix"] for r in rows]

    by_hand, to_file = asyncio.run(stored())
    assert worst(by_hand["rows"], "proposed") == pytest.approx(worst(by_hand["rows"], "approved"), abs=0.05)
    assert worst(to_file["rows"], "proposed") > 0.45  # FILE_SHARES: 50 % D/E
    with pytest.raises(SystemExit):
        main(["risk", "train", "--name", "x", "--shares", "mine"])  # only approved | file
