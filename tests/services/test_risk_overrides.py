"""A regulator's risk-class override on a real database (SQLite and PostgreSQL): proposed by one
person, in force only once another approves, applied by the next classification after the model's
rules, ended by withdrawal or its date; every step audited; bad input refused with nothing written."""

from __future__ import annotations

import datetime as dt
from datetime import date, datetime, timedelta

import pytest

from bot.cli import main
from bot.runtime import Runtime
from core.clock import FakeClock
from core.render import render, text
from models.audit import AuditRecord
from models.directory import Entity, EntityKind, RiskClass
from models.messaging import Channel, ChatBinding, Outbox, Role
from models.risk import OverrideStatus, RiskAssessment, RiskOverride, RiskRun
from scheduler import Scheduler
from services.draws.common import DrawError
from services.risk import classify as risk
from services.risk import drift, overrides, versions
from services.risk.versions import RiskError
from tests.domain.test_risk import EXAMPLE
from tests.services import draw_world as world
from tests.services.test_draws_cli import cli  # noqa: F401
from tests.services.test_risk import USCC, ZONE, small_world
from tests.services.test_risk_drift import EXAMPLE_FILE

NOW = datetime(2026, 12, 1, 2, 0, tzinfo=dt.UTC)  # 10:00 in Shanghai, 2026-12-01
UNTIL = date(2027, 5, 31)


async def classified_world() -> list[int]:
    """The four entities of ``small_world`` (E, C, E, B by the model) classified by ``small``."""
    ids = await small_world()
    await versions.decide("small", approve=True, actor="cli", now=NOW)
    await risk.classify_directory(NOW)
    return ids


async def propose(code: str = USCC[1], cls: str = "A", reason: str = "信用修复已完成，数据未更新", **kw):
    until = kw.pop("until", UNTIL)
    args = {"actor": "alice", "departments": None, "now": NOW, "zone": ZONE, **kw}
    return await overrides.propose(code, cls, reason, until, **args)


async def actions() -> list[tuple[str, str, str]]:
    return [tuple(r) for r in await AuditRecord.all().order_by("seq").values_list("action", "subject", "actor")]


async def klass(entity_id: int) -> str:
    return (await Entity.get(id=entity_id)).risk_class.value


async def test_an_approved_override_applies_at_the_next_classification_and_the_reasons_name_it(db) -> None:
    ids = await classified_world()
    assert await klass(ids[1]) == "C"
    proposed = await propose()
    assert (proposed.status, proposed.risk_class, proposed.computed) == ("proposed", "A", "C")
    await risk.classify_directory(NOW + timedelta(hours=1))  # a proposal does nothing
    assert await klass(ids[1]) == "C"
    decided = await overrides.decide(proposed.id, True, actor="bob", departments=None, now=NOW, zone=ZONE)
    assert (decided.status, decided.decided_by) == ("in_force", {"kind": "named", "id": None, "name": "bob"})
    assert await klass(ids[1]) == "C"  # not before the next classification
    summary = await risk.classify_directory(NOW + timedelta(hours=2))
    assert await klass(ids[1]) == "A"
    # the run counts the model's classes (what drift and training compare), and the override beside them
    assert summary.counts == {"B": 1, "C": 1, "E": 2} and summary.overridden == 1
    run = await RiskRun.all().order_by("-id").first()
    assert (run.counts, run.overridden) == ({"B": 1, "C": 1, "E": 2}, 1)
    a = await RiskAssessment.get(entity_id=ids[1])
    assert (a.risk_class, a.computed, a.banded) == ("A", "C", "C")
    assert a.override == {
        "id": proposed.id,
        "class": "A",
        "reason": "信用修复已完成，数据未更新",
        "proposed_by": "alice",
        "approved_by": "bob",
        "until": "2027-05-31",
    }
    [shown] = await risk.lookup(USCC[1], ZONE)
    assert (shown.risk_class, shown.computed, shown.override["approved_by"]["name"]) == ("A", "C", "bob")
    assert shown.open_override["status"] == "in_force"
    others = await RiskAssessment.exclude(entity_id=ids[1]).values_list("override", flat=True)
    assert others == [None, None, None]
    # the mix a drift check compares is the model's: an override is not a drift of the model
    mix = await drift.mix()
    assert mix is not None and not mix.drifted and mix.current == mix.approved
    assert await actions() == [
        ("risk_model_proposed", "small", "coordinator:1"),
        ("risk_model_approved", "small", "cli"),
        ("risk_override_proposed", f"risk_override:{proposed.id}", "alice"),
        ("risk_override_approved", f"risk_override:{proposed.id}", "bob"),
    ]
    record = await AuditRecord.get(action="risk_override_proposed")
    assert record.data["entity"] == USCC[1] and record.data["computed"] == "C" and record.data["class"] == "A"


async def test_the_proposer_cannot_approve_their_own_override(db) -> None:
    ids = await classified_world()
    proposed = await propose(USCC[0], "A")
    with pytest.raises(DrawError) as caught:
        await overrides.decide(proposed.id, True, actor="alice", departments=None, now=NOW, zone=ZONE)
    assert caught.value.code == "confirmer_is_requester"
    row = await RiskOverride.get(id=proposed.id)
    assert row.status == OverrideStatus.PENDING and row.decided_by is None
    await risk.classify_directory(NOW + timedelta(hours=1))
    assert await klass(ids[0]) == "E"
    assert [a for a, _, _ in await actions()][-1] == "risk_override_proposed"


async def test_a_rejected_override_never_applies_and_a_second_decision_is_refused(db) -> None:
    ids = await classified_world()
    proposed = await propose(USCC[0], "A")
    rejected = await overrides.decide(proposed.id, False, actor="bob", departments=None, now=NOW, zone=ZONE)
    assert rejected.status == "rejected"
    with pytest.raises(DrawError) as caught:
        await overrides.decide(proposed.id, True, actor="carol", departments=None, now=NOW, zone=ZONE)
    assert (caught.value.code, caught.value.params["status"]) == ("risk_override_decided", "rejected")
    await risk.classify_directory(NOW + timedelta(hours=1))
    assert await klass(ids[0]) == "E"
    assert [a for a, _, _ in await actions()][-2:] == ["risk_override_proposed", "risk_override_rejected"]
    # a new proposal for the firm may follow a rejected one
    assert (await propose(USCC[0], "D")).status == "proposed"


async def test_withdrawing_returns_the_firm_to_the_engines_class(db) -> None:
    ids = await classified_world()
    proposed = await propose(USCC[3], "E", "立案调查中")
    await overrides.decide(proposed.id, True, actor="bob", departments=None, now=NOW, zone=ZONE)
    await risk.classify_directory(NOW + timedelta(hours=1))
    assert await klass(ids[3]) == "E"
    with pytest.raises(RiskError) as caught:
        await overrides.withdraw(proposed.id, "  ", actor="carol", departments=None, now=NOW, zone=ZONE)
    assert caught.value.code == "risk_override_reason_required"
    withdrawn = await overrides.withdraw(proposed.id, "调查已结案", actor="carol", departments=None, now=NOW, zone=ZONE)
    assert (withdrawn.status, withdrawn.ended_by["name"], withdrawn.end_reason) == ("withdrawn", "carol", "调查已结案")
    assert await klass(ids[3]) == "E"  # until the next classification
    await risk.classify_directory(NOW + timedelta(hours=2))
    assert await klass(ids[3]) == "B"
    assert (await RiskAssessment.get(entity_id=ids[3])).override is None
    with pytest.raises(RiskError) as caught:
        await overrides.withdraw(proposed.id, "再次", actor="carol", departments=None, now=NOW, zone=ZONE)
    assert (caught.value.code, caught.value.params["status"]) == ("risk_override_decided", "withdrawn")
    record = await AuditRecord.get(action="risk_override_withdrawn")
    assert (record.actor, record.data["reason"], record.data["was"]) == ("carol", "调查已结案", "in_force")


async def test_an_override_expires_after_its_last_day_at_the_classification(db) -> None:
    ids = await classified_world()
    until = date(2026, 12, 31)
    proposed = await propose(USCC[0], "C", until=until)
    await overrides.decide(proposed.id, True, actor="bob", departments=None, now=NOW, zone=ZONE)
    last_day = datetime(2026, 12, 31, 23, 30, tzinfo=ZONE)
    await risk.classify_directory(last_day)
    assert await klass(ids[0]) == "C"  # still its day
    next_day = datetime(2027, 1, 1, 0, 30, tzinfo=ZONE)
    summary = await risk.classify_directory(next_day)
    assert await klass(ids[0]) == "E" and summary.overridden == 0
    row = await RiskOverride.get(id=proposed.id)
    assert (row.status, row.ended_by) == (OverrideStatus.EXPIRED, "system")
    record = await AuditRecord.get(action="risk_override_expired")
    assert (record.actor, record.subject, record.data["status"]) == (
        "system",
        f"risk_override:{proposed.id}",
        "in_force",
    )
    assert (await propose(USCC[0], "C", until=date(2027, 2, 1), now=next_day)).status == "proposed"


async def test_a_proposal_nobody_decided_lapses_at_its_last_day(db) -> None:
    await classified_world()
    proposed = await propose(USCC[0], "A", until=date(2026, 12, 2))
    later = datetime(2026, 12, 3, 9, 0, tzinfo=ZONE)
    with pytest.raises(DrawError) as caught:
        await overrides.decide(proposed.id, True, actor="bob", departments=None, now=later, zone=ZONE)
    assert (caught.value.code, caught.value.params["status"]) == ("risk_override_decided", "expired")
    assert (await RiskOverride.get(id=proposed.id)).status == OverrideStatus.EXPIRED
    assert [a for a, _, _ in await actions()][-1] == "risk_override_expired"


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"code": "91370202MA00000099"}, "risk_override_entity_unknown"),
        ({"code": "某某公司"}, "risk_override_entity_unknown"),
        ({"cls": "F"}, "risk_override_class_unknown"),
        ({"reason": " \n\t"}, "risk_override_reason_required"),
        ({"reason": "理" * 501}, "risk_override_reason_too_long"),
        ({"until": date(2026, 11, 30)}, "risk_override_until_past"),
        ({"until": date(2027, 12, 2)}, "risk_override_until_too_far"),
    ],
)
async def test_bad_input_is_refused_and_nothing_is_written(db, change, code) -> None:
    await classified_world()
    before = await actions()
    args = {"code": USCC[1], "cls": "A", "reason": "理由", "until": UNTIL, **change}
    with pytest.raises(RiskError) as caught:
        await propose(args["code"], args["cls"], args["reason"], until=args["until"])
    assert caught.value.code == code
    assert await RiskOverride.all().count() == 0 and await actions() == before


async def test_one_override_at_a_time_per_firm(db) -> None:
    await classified_world()
    assert (await propose(USCC[1], "A", until=date(2027, 12, 1))).status == "proposed"  # 12 months is the limit
    before = await actions()
    with pytest.raises(RiskError) as caught:
        await propose(USCC[1], "B", "另一理由", actor="carol")
    assert (caught.value.code, caught.value.params["status"]) == ("risk_override_open", "proposed")
    assert await RiskOverride.all().count() == 1 and await actions() == before


async def test_the_database_holds_one_open_override_per_firm(db) -> None:
    ids = await classified_world()
    row = {
        "risk_class": "A",
        "reason": "r",
        "valid_until": UNTIL,
        "ends_at": NOW,
        "proposed_by": "x",
        "proposed_at": NOW,
    }
    await RiskOverride.create(entity_id=ids[0], status=OverrideStatus.CONFIRMED, **row)
    await RiskOverride.create(entity_id=ids[0], status=OverrideStatus.WITHDRAWN, **row)  # ended ones: any number
    from tortoise.exceptions import IntegrityError  # lazy: this test only

    with pytest.raises(IntegrityError):
        await RiskOverride.create(entity_id=ids[0], status=OverrideStatus.PENDING, **row)


async def test_without_a_version_in_force_there_is_nothing_to_override(db) -> None:
    await small_world()
    with pytest.raises(RiskError) as caught:
        await propose()
    assert caught.value.code == "risk_no_model"


async def coordinator(address: str, departments: list[str], name: str = "") -> str:
    b = await ChatBinding.create(
        channel=Channel.TELEGRAM, address=address, role=Role.COORDINATOR, departments=departments, display_name=name
    )
    return f"coordinator:{b.id}"


async def test_in_chat_the_proposers_departments_approve_and_a_revoked_proposer_is_not_approved(db) -> None:
    ids = await classified_world()
    scjg = frozenset({"SCJG"})
    with pytest.raises(RiskError) as caught:  # nobody else to approve it
        await propose(USCC[0], "A", actor=await coordinator("701", ["SCJG"]), departments=scjg)
    assert caught.value.code == "risk_override_no_approver" and await RiskOverride.all().count() == 0
    proposer = await coordinator("702", ["SCJG"])
    approver = await coordinator("703", ["SCJG"])
    outsider = await coordinator("704", ["WSJ"])
    proposed = await propose(USCC[0], "A", actor=proposer, departments=scjg)
    assert proposed.asked == 2  # the two other SCJG coordinators, not WSJ's
    asked = await Outbox.filter(dedupe_key__startswith=f"rov:{proposed.id}:ask").values_list("recipient_id", flat=True)
    assert len(asked) == 2
    with pytest.raises(RiskError) as caught:  # another department's coordinator: as if it did not exist
        await overrides.decide(proposed.id, True, actor=outsider, departments=frozenset({"WSJ"}), now=NOW, zone=ZONE)
    assert caught.value.code == "risk_override_unknown"
    await ChatBinding.filter(id=int(proposer.split(":")[1])).update(revoked_at=NOW)
    with pytest.raises(DrawError) as caught:
        await overrides.decide(proposed.id, True, actor=approver, departments=scjg, now=NOW, zone=ZONE)
    assert caught.value.code == "requester_revoked"
    row = await RiskOverride.get(id=proposed.id)
    assert (row.status, row.failure) == (OverrideStatus.FAILED, "requester_revoked")
    assert [a for a, _, _ in await actions()][-1] == "risk_override_failed"
    await risk.classify_directory(NOW + timedelta(hours=1))
    assert await klass(ids[0]) == "E"


def test_the_cli_proposes_approves_by_another_name_lists_and_withdraws(cli, capsys) -> None:  # noqa: F811
    code = world.uscc(3)
    until = (datetime.now(ZONE).date() + timedelta(days=90)).isoformat()
    assert main(["risk", "load", str(EXAMPLE_FILE)]) == 0
    assert main(["risk", "approve", EXAMPLE.name]) == 0
    assert main(["risk", "classify", "--force"]) == 0
    capsys.readouterr()
    assert main(["risk", "override", "propose", code, "E", "--until", until, "--reason", "under investigation"]) == 0
    out = capsys.readouterr().out
    assert "class E by override" in out and "waiting for approval" in out and "--by NAME" in out
    assert main(["risk", "override", "approve", "1", "--by", "cli"]) == 2  # the proposer ("cli" by default)
    assert "another coordinator must approve it" in capsys.readouterr().err
    assert main(["risk", "override", "propose", code, "A", "--until", until, "--reason", "x"]) == 2
    assert "has an override waiting for approval already" in capsys.readouterr().err
    assert main(["risk", "override", "approve", "1", "--by", "王芳"]) == 0
    assert "in force" in capsys.readouterr().out
    assert main(["risk", "override", "list"]) == 0
    assert "[1]" in capsys.readouterr().out
    assert main(["risk", "classify", "--force"]) == 0
    assert "1 entities take their class from an override in force" in capsys.readouterr().out
    assert main(["risk", "show", code]) == 0
    assert "override to E" in capsys.readouterr().out
    assert main(["risk", "override", "withdraw", "1", "--reason", "closed", "--by", "李娜"]) == 0
    assert "withdrawn" in capsys.readouterr().out
    assert main(["risk", "override", "list"]) == 0
    assert "No override is waiting" in capsys.readouterr().out


async def test_a_withdrawal_is_told_to_every_other_coordinator_of_the_departments(db) -> None:
    """One person may withdraw an override: so nobody can do it quietly."""
    await classified_world()
    scjg = frozenset({"SCJG"})
    proposer = await coordinator("711", ["SCJG"], "王芳")
    approver = await coordinator("712", ["SCJG"], "李娜")
    third = await coordinator("713", ["SCJG"], "赵强")
    outsider = await coordinator("714", ["WSJ"])
    proposed = await propose(USCC[3], "E", "立案调查中", actor=proposer, departments=scjg)
    await overrides.decide(proposed.id, True, actor=approver, departments=scjg, now=NOW, zone=ZONE)
    await overrides.withdraw(proposed.id, "调查已结案", actor=third, departments=scjg, now=NOW, zone=ZONE)
    told = dict(
        await Outbox.filter(dedupe_key__startswith=f"rov:{proposed.id}:withdrawn").values_list(
            "recipient_id", "template"
        )
    )
    number = lambda actor: int(actor.split(":")[1])  # noqa: E731
    assert told == {number(proposer): "risk_override_outcome.j2", number(approver): "risk_override_withdrawn.j2"}
    assert number(third) not in told and number(outsider) not in told  # not the one who did it, not WSJ
    # every message names the people, by the names their chats were bound with; the row and the chain keep ids
    rows = await Outbox.filter(dedupe_key__startswith=f"rov:{proposed.id}:").order_by("id")
    expected = {
        "risk_override_request.j2": ["王芳"],
        "risk_override_outcome.j2": ["李娜", "赵强"],  # approved by 李娜, then withdrawn by 赵强
        "risk_override_withdrawn.j2": ["王芳", "赵强"],
    }
    assert {r.template for r in rows} == set(expected)
    for r in rows:
        for locale in ("zh-CN", "en"):
            shown = render(f"messages/{r.template}", locale, **r.context)
            assert "coordinator:" not in shown, shown
            assert any(n in shown for n in expected[r.template]), (r.template, shown)
    outcomes = [r.context["by"]["name"] for r in rows if r.template == "risk_override_outcome.j2"]
    assert outcomes == ["李娜", "赵强"]
    row = await RiskOverride.get(id=proposed.id)
    assert (row.proposed_by, row.decided_by, row.ended_by) == (proposer, approver, third)
    assert [actor for _, _, actor in await actions()][-3:] == [proposer, approver, third]
    listed = "\n".join(
        text("risk_override_line", locale="zh-CN", o=o.context())
        for o in (await overrides.listing(ZONE, open_only=False)).items
    )
    assert "提出 王芳" in listed and "批准 李娜" in listed and "结束 赵强" in listed and "coordinator:" not in listed


@pytest.mark.parametrize("number", [0, -5, 2**63, 10**21])
async def test_an_override_number_no_row_can_have_reads_as_unknown(db, number) -> None:
    for act in (
        overrides.decide(number, True, actor="bob", departments=None, now=NOW, zone=ZONE),
        overrides.withdraw(number, "理由", actor="bob", departments=None, now=NOW, zone=ZONE),
    ):
        with pytest.raises(RiskError) as caught:
            await act
        assert caught.value.code == "risk_override_unknown"


async def many_overrides(department: str, n: int, start: datetime, *, status=OverrideStatus.PENDING) -> list[int]:
    """``n`` overrides of ``department``'s, each on a firm of its own, proposed a minute apart from ``start``."""
    firms = [
        Entity(
            uscc=f"91370202MA{9000000 + i:07d}{department[0]}",
            name=f"{department}测试{i}号公司",
            kind=EntityKind.ENTERPRISE,
            division_code="370202",
            address="青岛市",
            industry="餐饮",
            risk_class=RiskClass.C,
        )
        for i in range(n)
    ]
    await Entity.bulk_create(firms)
    ids = await Entity.filter(uscc__in=[f.uscc for f in firms]).order_by("id").values_list("id", flat=True)
    await RiskOverride.bulk_create(
        [
            RiskOverride(
                entity_id=entity_id,
                risk_class="A",
                reason="r",
                valid_until=UNTIL,
                ends_at=NOW + timedelta(days=180),
                status=status,
                proposed_by="x",
                departments=[department],
                proposed_at=start + timedelta(minutes=i),
            )
            for i, entity_id in enumerate(ids)
        ]
    )
    return list(
        await RiskOverride.filter(entity_id__in=ids).order_by("-proposed_at", "-id").values_list("id", flat=True)
    )


async def test_a_coordinators_list_is_of_their_departments_however_many_others_have(db) -> None:
    """Another department's 250 newer overrides (more than a list shows) do not hide a coordinator's own:
    the departments are part of the query, not a filter of the newest rows."""
    await classified_world()
    mine = await propose(USCC[0], "A", actor="alice")
    await RiskOverride.filter(id=mine.id).update(departments=["SCJG", "JTJ"])
    await many_overrides("WSJ", 250, NOW + timedelta(hours=1))
    listed = await overrides.listing(ZONE, departments=frozenset({"SCJG"}))
    assert ([o.id for o in listed.items], listed.total, listed.cut) == ([mine.id], 1, False)
    wsj = await overrides.listing(ZONE, departments=frozenset({"WSJ", "XX"}))
    assert (len(wsj.items), wsj.total, wsj.cut) == (overrides.LIST_LIMIT, 250, True)
    assert mine.id not in {o.id for o in wsj.items}
    everyone = await overrides.listing(ZONE)  # an admin, the CLI: every department's, newest first
    assert everyone.total == 251 and everyone.items[-1].id != mine.id
    assert await overrides.listing(ZONE, departments=frozenset()) == overrides.Listing([], 0)


async def test_a_cut_list_keeps_the_newest_and_says_how_many_it_shows(db) -> None:
    await classified_world()
    newest_first = await many_overrides("SCJG", 205, NOW, status=OverrideStatus.WITHDRAWN)
    await many_overrides("WSJ", 30, NOW + timedelta(days=1), status=OverrideStatus.WITHDRAWN)
    assert (await overrides.listing(ZONE, departments=frozenset({"SCJG"}))).total == 0  # ended: not open
    listed = await overrides.listing(ZONE, open_only=False, departments=frozenset({"SCJG"}))
    assert [o.id for o in listed.items] == newest_first[: overrides.LIST_LIMIT] and listed.total == 205
    items = [o.context() for o in listed.items]
    en = render("messages/risk_override.j2", "en", error=None, what="list", items=items, total=listed.total)
    zh = render("messages/risk_override.j2", "zh-CN", error=None, what="list", items=items, total=listed.total)
    assert "The newest 200 of 205 are shown." in en and "仅显示最新的 200 条（共 205 条）" in zh
    whole = await overrides.listing(ZONE, open_only=False, departments=frozenset({"WSJ"}))
    shown = render("cli/risk.txt", "en", what="overrides", items=[o.context() for o in whole.items], total=whole.total)
    assert whole.total == 30 and shown.count("\n[") == 29 and "are shown" not in shown


async def end_messages() -> list[tuple[str, int, str]]:
    """The messages about overrides' ends: (dedupe key, recipient, template), in the order written."""
    rows = Outbox.filter(template__in=["risk_override_ending.j2", "risk_override_outcome.j2"]).order_by("id")
    return [tuple(r) for r in await rows.values_list("dedupe_key", "recipient_id", "template")]


def binding(actor: str) -> int:
    return int(actor.split(":")[1])


async def test_an_override_running_out_is_told_a_week_ahead_and_when_it_has_each_once(db) -> None:
    """The scheduler's sweep, on the test clock: the override's departments' coordinators and its
    proposer are told once 7 days before its end and once when it has ended; a withdrawn or a
    rejected one with the same last day is not told; another department's coordinator is not."""
    ids = await classified_world()
    scjg = frozenset({"SCJG"})
    proposer = await coordinator("721", ["SCJG"], "王芳")
    approver = await coordinator("722", ["SCJG"], "李娜")
    await coordinator("723", ["WSJ"], "赵强")
    until = date(2026, 12, 31)  # it ends 2027-01-01 00:00 local
    kept = await propose(USCC[0], "C", "立案调查中", actor=proposer, departments=scjg, until=until)
    withdrawn = await propose(USCC[1], "A", actor=proposer, departments=scjg, until=until)
    rejected = await propose(USCC[2], "A", actor=proposer, departments=scjg, until=until)
    for o in (kept, withdrawn):
        await overrides.decide(o.id, True, actor=approver, departments=scjg, now=NOW, zone=ZONE)
    await overrides.decide(rejected.id, False, actor=approver, departments=scjg, now=NOW, zone=ZONE)
    before = await end_messages()  # the approvals and the rejection told to the proposer
    assert [t for _, _, t in before] == ["risk_override_outcome.j2"] * 3
    clock = FakeClock(datetime(2026, 12, 24, 23, 50, tzinfo=ZONE))  # 7 days and 10 minutes ahead
    sched = Scheduler(Runtime(settings=db, clock=clock))
    await sched.run_due()
    assert await klass(ids[0]) == "C" and await end_messages() == before  # the override applies; nothing told
    await overrides.withdraw(withdrawn.id, "调查已结案", actor=approver, departments=scjg, now=clock.now(), zone=ZONE)
    before = await end_messages()
    clock.set(datetime(2026, 12, 25, 0, 0, tzinfo=ZONE))  # 7 days before its end
    await sched.run_due()
    ending = [
        (f"rov:{kept.id}:ending:{binding(a)}", binding(a), "risk_override_ending.j2") for a in (proposer, approver)
    ]
    assert await end_messages() == before + ending
    told = await Outbox.filter(template="risk_override_ending.j2").order_by("id")
    assert [(r.context["stage"], r.context["days_left"]) for r in told] == [("ending", 7)] * 2
    for moment in (datetime(2026, 12, 25, 0, 1), datetime(2026, 12, 28, 9, 0), datetime(2026, 12, 31, 23, 59)):
        clock.set(moment.replace(tzinfo=ZONE))
        await sched.run_due()  # not again
    assert await end_messages() == before + ending
    clock.set(datetime(2027, 1, 1, 0, 5, tzinfo=ZONE))  # its last day has passed; the month's classification runs
    await sched.run_due()
    ended = [(f"rov:{kept.id}:ended:{binding(a)}", binding(a), "risk_override_ending.j2") for a in (proposer, approver)]
    assert await end_messages() == before + ending + ended
    assert await klass(ids[0]) == "E" and (await RiskOverride.get(id=kept.id)).status == OverrideStatus.EXPIRED
    clock.set(datetime(2027, 1, 2, 9, 0, tzinfo=ZONE))
    await sched.run_due()
    assert await end_messages() == before + ending + ended
    for r in await Outbox.filter(template="risk_override_ending.j2").order_by("id"):
        for locale in ("zh-CN", "en"):
            shown = render(f"messages/{r.template}", locale, **r.context)
            assert "王芳" in shown and "立案调查中" in shown and "coordinator:" not in shown, shown
    last = await Outbox.filter(template="risk_override_ending.j2").order_by("-id").first()
    assert "at the next classification" in render("messages/risk_override_ending.j2", "en", **last.context)
    first = await Outbox.filter(template="risk_override_ending.j2").order_by("id").first()
    assert "for 7 more days, through 2026-12-31" in render("messages/risk_override_ending.j2", "en", **first.context)


async def test_the_classification_that_ends_an_override_tells_whoever_was_not_told(db) -> None:
    """No sweep ran (the service was down over the last week): the classification that ends an
    override in force tells its departments, and the proposer of a proposal nobody decided is told
    it lapsed — once, whatever comes after."""
    ids = await classified_world()
    scjg = frozenset({"SCJG"})
    proposer = await coordinator("731", ["SCJG"], "王芳")
    approver = await coordinator("732", ["SCJG"], "李娜")
    in_force = await propose(USCC[0], "C", actor=proposer, departments=scjg, until=date(2026, 12, 31))
    await overrides.decide(in_force.id, True, actor=approver, departments=scjg, now=NOW, zone=ZONE)
    lapsed = await propose(USCC[1], "A", actor=proposer, departments=scjg, until=date(2026, 12, 2))
    before = await end_messages()
    after = datetime(2027, 1, 3, 10, 0, tzinfo=ZONE)
    await risk.classify_directory(after, zone=ZONE)
    assert await klass(ids[0]) == "E"
    told = [
        *(
            (f"rov:{in_force.id}:ended:{binding(a)}", binding(a), "risk_override_ending.j2")
            for a in (proposer, approver)
        ),
        (f"rov:{lapsed.id}:expired", binding(proposer), "risk_override_outcome.j2"),
    ]
    assert await end_messages() == before + told
    ended = await Outbox.get(dedupe_key=f"rov:{in_force.id}:ended:{binding(approver)}")
    shown = render("messages/risk_override_ending.j2", "en", **ended.context)
    assert "from this classification the firm has the model's class (E) again" in shown
    with pytest.raises(DrawError):  # a press on the lapsed proposal: refused, not told twice
        await overrides.decide(lapsed.id, True, actor=approver, departments=scjg, now=after, zone=ZONE)
    assert await overrides.tell_ending(after, zone=ZONE) == 0
    await risk.classify_directory(after + timedelta(hours=1), zone=ZONE)
    assert await end_messages() == before + told


async def test_an_override_withdrawn_after_its_notice_is_not_told_to_have_ended(db) -> None:
    ids = await classified_world()
    scjg = frozenset({"SCJG"})
    proposer = await coordinator("741", ["SCJG"], "王芳")
    approver = await coordinator("742", ["SCJG"], "李娜")
    o = await propose(USCC[0], "C", actor=proposer, departments=scjg, until=date(2026, 12, 31))
    await overrides.decide(o.id, True, actor=approver, departments=scjg, now=NOW, zone=ZONE)
    assert await overrides.tell_ending(datetime(2026, 12, 28, 9, 0, tzinfo=ZONE), zone=ZONE) == 1
    await overrides.withdraw(o.id, "调查已结案", actor=approver, departments=scjg, now=NOW, zone=ZONE)
    before = await end_messages()
    after = datetime(2027, 1, 1, 9, 0, tzinfo=ZONE)
    assert await overrides.tell_ending(after, zone=ZONE) == 0
    await risk.classify_directory(after, zone=ZONE)
    assert await end_messages() == before and await klass(ids[0]) == "E"
    assert [k for k, _, _ in before if ":ended:" in k] == []
