"""The monthly report's response deadlines: a missed deadline counts against the inspector only
when the task message went out by it ("told"); the others were never reached (no chat bound,
address unreachable, dead, still queued) and are counted apart, with how many inspectors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from core.compose import compose
from models.draws import Assignment
from models.messaging import Outbox, OutboxStatus
from services import plans, reports
from services.draws.write import task_message_key
from tests.builders import scheduled_draw
from tests.services import draw_world

ZONE = draw_world.ZONE
END_OF_MONTH = datetime(2026, 12, 31, 12, 0, tzinfo=UTC)  # every deadline of the month has passed


async def _world(tmp_path) -> tuple[list[Assignment], list[Assignment]]:
    """A SCJG plan and a WSJ plan drawn on 1 December; nothing dispatched yet (every task
    message pending), nothing answered. Returns each plan's assignments by id."""
    await draw_world.build(n_entities=10)
    clock = draw_world.clock()
    await plans.add_plan(draw_world.plan_file(tmp_path, "P1"), clock)
    wsj = draw_world.plan_file(tmp_path, "P2", departments=("WSJ",), items=("WSJ-YL-01",), a="1", b="1", c="1")
    await plans.add_plan(wsj, clock)
    scjg_ref = (await scheduled_draw("P1", clock=clock, zone=ZONE)).draw_ref
    wsj_ref = (await scheduled_draw("P2", clock=clock, zone=ZONE)).draw_ref
    by_draw = [await Assignment.filter(draw__draw_ref=ref).order_by("id") for ref in (scjg_ref, wsj_ref)]
    return by_draw[0], by_draw[1]


async def _message(asg: Assignment, status: OutboxStatus, sent_at: datetime | None) -> None:
    """Where the dispatcher left the assignment's task message."""
    n = await Outbox.filter(dedupe_key=task_message_key(asg.id)).update(status=status, sent_at=sent_at)
    assert n == 1


async def _answer(asg: Assignment, at: datetime) -> None:
    await Assignment.filter(id=asg.id).update(status="accepted", responded_at=at)


async def _month(tmp_path) -> tuple[list[Assignment], list[Assignment], set[int]]:
    """SCJG: three told (one answered in time, one never, one late); the rest never reached —
    sent only after the deadline, dead after the gateway took it (an SMS not delivered), held,
    without an address, or still queued. WSJ: every task told, none answered. Returns the
    inspectors never reached."""
    scjg, wsj = await _world(tmp_path)
    assert len(scjg) >= 8
    on_time, silent, late, sent_late, dead, held, no_address = scjg[:7]
    for asg in (on_time, silent, late, *wsj):
        await _message(asg, OutboxStatus.SENT, asg.created_at + timedelta(minutes=1))
    await Outbox.filter(dedupe_key=task_message_key(silent.id)).update(status=OutboxStatus.DELIVERED)
    await _answer(on_time, on_time.deadline - timedelta(hours=1))
    await _answer(late, late.deadline + timedelta(hours=1))
    await _message(sent_late, OutboxStatus.SENT, sent_late.deadline + timedelta(hours=1))
    await _message(dead, OutboxStatus.DEAD, dead.created_at + timedelta(minutes=1))
    await _message(held, OutboxStatus.HELD, None)
    await _message(no_address, OutboxStatus.NO_ADDRESS, None)  # the rest: still pending
    return scjg, wsj, {a.inspector_id for a in scjg[3:]}


async def _report(db, departments, *, personal=True):
    return await reports.monthly_report(
        "2026-12", departments, END_OF_MONTH, data_dir=db.data_dir, zone=ZONE, personal=personal, chart=False
    )


async def test_missed_deadlines_are_split_into_told_and_never_reached(db, tmp_path):
    scjg, _, unreached = await _month(tmp_path)
    d = (await _report(db, ["SCJG"])).deadlines
    assert (d.due, d.missed) == (len(scjg), len(scjg) - 1)  # every deadline, told or not
    assert (d.told, d.told_missed, d.rate) == (3, 2, 2 / 3)  # silent and late, of the three told
    assert d.unreached == len(scjg) - 3 and d.missed == d.told_missed + d.unreached
    assert d.unreached_inspectors == len(unreached) < d.unreached  # inspectors counted once each


async def test_another_departments_assignments_are_not_counted(db, tmp_path):
    scjg, wsj, _ = await _month(tmp_path)
    d = (await _report(db, ["WSJ"])).deadlines
    assert (d.due, d.told, d.told_missed, d.unreached, d.unreached_inspectors) == (len(wsj), len(wsj), len(wsj), 0, 0)
    everything = (await _report(db, None)).deadlines
    assert (everything.due, everything.told) == (len(scjg) + len(wsj), 3 + len(wsj))
    assert everything.told_missed == 2 + len(wsj) and everything.unreached == len(scjg) - 3


async def test_the_public_sees_the_tasks_never_reached_but_not_how_many_people(db, tmp_path):
    scjg, _, _ = await _month(tmp_path)
    d = (await _report(db, ["SCJG"], personal=False)).deadlines
    assert (d.told, d.told_missed, d.unreached, d.unreached_inspectors) == (3, 2, len(scjg) - 3, 0)


async def test_report_message_tells_the_never_reached_apart_in_both_languages(db, tmp_path):
    scjg, wsj, unreached = await _month(tmp_path)
    r = await _report(db, ["SCJG"])
    n, people = len(scjg) - 3, len(unreached)
    zh = compose("report.j2", {"r": r.context()}, "zh-CN", "900").text
    line = f"逾期未答复：2/3（66.7%）；另有 {n} 项任务未能送达（{people} 名检查人员未绑定聊天或无法联系），请绑定或电话通知。"
    assert line in zh.splitlines()
    en = compose("report.j2", {"r": r.context()}, "en", "901").text
    assert (
        f"Response deadlines missed (tasks delivered): 2/3 (66.7%); {n} more tasks never reached the inspector "
        f"({people} inspectors with no chat bound or unreachable): bind them or call them."
    ) in en.splitlines()
    # every task told: no word of the never reached
    told_only = await _report(db, ["WSJ"])
    zh = compose("report.j2", {"r": told_only.context()}, "zh-CN", "900").text
    assert f"逾期未答复：{len(wsj)}/{len(wsj)}（100.0%）。" in zh.splitlines() and "未能送达" not in zh
    en = compose("report.j2", {"r": told_only.context()}, "en", "901").text
    assert f"Response deadlines missed (tasks delivered): {len(wsj)}/{len(wsj)} (100.0%)." in en.splitlines()


def test_a_report_queued_before_the_split_still_reads_as_it_did():
    """An outbox row's context is rendered at dispatch time: one written by the previous release
    (due, missed, rate only) renders its old figures."""
    old = {"due": 10, "missed": 4, "rate": 0.4}
    r = {
        "month": "2026-11",
        "departments": None,
        "partial": False,
        "draws": 1,
        "inspections": {"drawn": 5, "done": 5, "open": 0, "unstaffable": 0, "cancelled": 0, "done_rate": 1.0},
        "coverage": {"rate": 0.5, "entities": 5, "pool": 10, "year_rate": 0.5},
        "risk": [],
        "recusals": {"recused": 0, "rate": 0.0, "reasons": {}},
        "deadlines": old,
        "surveys": {"sent": 0, "response_rate": None, "opt_out_rate": None, "complaint_rate": None, "complaints": 0},
        "integrity": {"responses": 0},
    }
    assert "逾期未答复：4/10（40.0%）。" in compose("report.j2", {"r": r}, "zh-CN", "900").text.splitlines()
