"""Announce and draw against the database: one-shot, one transaction, eligibility, rotation."""

from __future__ import annotations

import hashlib
from datetime import date, timedelta

import pytest
from tortoise.exceptions import IntegrityError

from core import db as dbmod
from core.keyboards import keyboard
from core.render import render
from models.directory import Conflict, ConflictSource, ConflictType, InspectorStatus, Unit
from models.draws import (
    Assignment,
    AssignmentStatus,
    Draw,
    DrawInput,
    Firing,
    FiringSecret,
    FiringStatus,
    Inspection,
)
from models.messaging import Outbox
from services import plans
from services.draws.announce import announce
from services.draws.common import DrawError
from services.draws.gather import Preview
from services.draws.stored import _stored
from services.draws.write import draw
from tests.builders import announced_ahead, scheduled_draw
from tests.services import draw_world as world

ZONE = world.ZONE
DRAW_TABLES = ("firing", "firing_secret", "draw", "draw_input", "inspection", "assignment", "recusal", "outbox")


async def counts() -> dict[str, int]:
    out = {}
    for table in DRAW_TABLES:
        rows = await dbmod.conn().execute_query_dict(f'SELECT COUNT(*) AS n FROM "{table}"')
        out[table] = rows[0]["n"]
    return out


async def add(tmp_path, clock, code="P1", **kwargs):
    return await plans.add_plan(world.plan_file(tmp_path, code, **kwargs), clock)


async def team_of(no: int, draw_ref: str) -> list[str]:
    rows = await (
        Assignment.filter(
            inspection__no=no,
            inspection__draw__draw_ref=draw_ref,
            status__in=[AssignmentStatus.SENT, AssignmentStatus.ACCEPTED],
        )
        .order_by("seat")
        .prefetch_related("inspector")
    )
    return [a.inspector.cert_no for a in rows]


# --- announce ---------------------------------------------------------------------------------


async def test_announce_commits_to_a_hidden_secret(db, tmp_path):
    await world.build(n_entities=4)
    clock = world.clock()
    await add(tmp_path, clock)
    first = await announce("P1", None, clock=clock, zone=ZONE)
    second = await announce("P1", clock.now() + timedelta(hours=1), clock=clock, zone=ZONE)
    assert (first.draw_ref, second.draw_ref) == ("P1/2026-12-01", "P1/2026-12-01.2")
    row = await FiringSecret.get(firing__draw_ref=first.draw_ref)
    secret = bytes(row.secret)
    assert len(secret) == 32 and hashlib.sha256(secret).hexdigest() == first.commitment
    assert secret.hex() not in repr(row) + str(row)
    firing = await Firing.get(draw_ref=first.draw_ref)
    assert "secret" not in firing._meta.fields_map
    assert firing.params["code"] == "P1" and firing.status is FiringStatus.ANNOUNCED


async def test_announce_unknown_plan(db):
    with pytest.raises(DrawError) as info:
        await announce("NOPE", None, clock=world.clock(), zone=ZONE)
    assert info.value.code == "plan_not_found"


# --- the draw -----------------------------------------------------------------------------------


async def test_draw_writes_everything_once(db, tmp_path):
    await world.build(n_entities=40)
    clock = world.clock()
    await add(tmp_path, clock)
    result = await scheduled_draw("P1", "drand:1234", clock=clock, zone=ZONE)
    assert not result.announced_now and result.draw_ref == "P1/2026-12-01"
    # 8 entities per class: A 0.25 → 2, B 0.25 → 2, C 0.5 → 4, D 1 → 8, E 1 → 8
    assert {s: c.drawn for s, c in result.strata.items()} == {"A": 2, "B": 2, "C": 4, "D": 8, "E": 8}
    assert result.inspections == 24 and result.assignments == 48 and result.unstaffable == 0
    row = await Draw.get(draw_ref=result.draw_ref)
    assert row.inspection_count == 24 and row.pool_size == 40 and row.beacon == "drand:1234"
    assert (await Firing.get(draw_ref=result.draw_ref)).status is FiringStatus.DRAWN
    assert await Inspection.filter(draw=row).count() == 24
    assignments = await Assignment.filter(draw=row).order_by("id")
    assert len(assignments) == 48 and {a.status for a in assignments} == {AssignmentStatus.SENT}
    outbox = await Outbox.all().order_by("id")
    assert sorted(o.dedupe_key for o in outbox) == sorted(f"asg:{a.id}:sent" for a in assignments)
    assert {o.recipient_id for o in outbox} == {a.inspector_id for a in assignments}
    assert set(await DrawInput.filter(draw=row).values_list("name", flat=True)) == {
        "pool.tsv",
        "inspectors.tsv",
        "params.json",
    }
    # the numbering is the protocol's: ascending rank
    ranks = [int(r, 16) for r in await Inspection.filter(draw=row).order_by("no").values_list("rank", flat=True)]
    assert ranks == sorted(ranks)
    # the message renders, names the entity, and carries accept/recuse buttons
    first = outbox[0]
    text = render(f"messages/{first.template}", "zh-CN", **first.context)
    assert first.context["entity"]["name"] in text and "测试计划" in text
    assert [b["data"].split(":")[1] for b in keyboard(*first.context["keyboard"])[0]] == ["accept", "recuse"]


async def test_second_draw_of_a_firing_is_refused(db, tmp_path):
    await world.build(n_entities=10)
    clock = world.clock()
    await add(tmp_path, clock)
    announced = await announced_ahead("P1", None, clock=clock, zone=ZONE)
    await draw(announced.draw_ref, clock=clock, zone=ZONE)
    before = await counts()
    with pytest.raises(DrawError) as info:
        await draw(announced.draw_ref, "another beacon", clock=clock, zone=ZONE)
    assert info.value.code == "already_drawn"
    assert await counts() == before


async def test_database_refuses_a_second_draw_row(db, tmp_path):
    """Even a writer that skips every check cannot store two draws of one draw_ref."""
    await world.build(n_entities=6)
    clock = world.clock()
    await add(tmp_path, clock)
    result = await scheduled_draw("P1", clock=clock, zone=ZONE)
    first = await Draw.get(draw_ref=result.draw_ref)
    other = await announce("P1", clock.now() + timedelta(hours=1), clock=clock, zone=ZONE)
    other_firing = await Firing.get(draw_ref=other.draw_ref)
    with pytest.raises(IntegrityError):
        await Draw.create(
            draw_ref=result.draw_ref,
            firing=other_firing,
            plan_id=first.plan_id,
            drawn_at=clock.now(),
            pool_digest="0" * 64,
            inspectors_digest="0" * 64,
            inspections_digest="0" * 64,
            window_start=clock.now(),
            window_end=clock.now(),
            pool_size=0,
            inspector_count=0,
            inspection_count=0,
        )


async def test_draw_plan_uses_the_pending_firing_and_refuses_before_its_time(db, tmp_path):
    await world.build(n_entities=6)
    clock = world.clock()
    await add(tmp_path, clock)
    ahead = await announce("P1", clock.now() + timedelta(days=1), clock=clock, zone=ZONE)
    with pytest.raises(DrawError) as info:
        await scheduled_draw("P1", clock=clock, zone=ZONE)
    assert info.value.code == "not_due" and await Draw.all().count() == 0
    clock.advance(timedelta(days=1))
    result = await scheduled_draw("P1", clock=clock, zone=ZONE)
    assert result.draw_ref == ahead.draw_ref and not result.announced_now


async def test_dry_run_counts_and_writes_nothing(db, tmp_path):
    await world.build(n_entities=40)
    clock = world.clock()
    await add(tmp_path, clock)
    before = await counts()
    preview = await scheduled_draw("P1", dry_run=True, clock=clock, zone=ZONE)
    assert isinstance(preview, Preview) and preview.draw_ref is None
    assert [(s.stratum, s.pool, s.drawn) for s in preview.strata] == [
        ("A", 8, 2),
        ("B", 8, 2),
        ("C", 8, 4),
        ("D", 8, 8),
        ("E", 8, 8),
    ]
    assert preview.inspectors == 8 and preview.drawn == 24
    assert await counts() == before  # not even a firing was announced
    announced = await announced_ahead("P1", None, clock=clock, zone=ZONE)
    before = await counts()
    again = await draw(announced.draw_ref, dry_run=True, clock=clock, zone=ZONE)
    assert again.draw_ref == announced.draw_ref and again.drawn == 24
    assert await counts() == before
    assert (await Firing.get(draw_ref=announced.draw_ref)).status is FiringStatus.ANNOUNCED


FAIL_TRIGGER = {
    "sqlite": [
        "CREATE TRIGGER outbox_fails BEFORE INSERT ON outbox BEGIN SELECT RAISE(ABORT, 'outbox is down'); END",
    ],
    "postgres": [
        "CREATE OR REPLACE FUNCTION outbox_fails() RETURNS trigger AS $$ "
        "BEGIN RAISE EXCEPTION 'outbox is down'; END $$ LANGUAGE plpgsql",
        "CREATE TRIGGER outbox_fails BEFORE INSERT ON outbox FOR EACH ROW EXECUTE FUNCTION outbox_fails()",
    ],
}
DROP_TRIGGER = {
    "sqlite": ["DROP TRIGGER outbox_fails"],
    "postgres": ["DROP TRIGGER outbox_fails ON outbox", "DROP FUNCTION outbox_fails()"],
}


async def test_the_draw_is_one_transaction(db, tmp_path):
    """The outbox write fails (a real database error) → nothing of the draw exists."""
    await world.build(n_entities=20)
    clock = world.clock()
    await add(tmp_path, clock)
    announced = await announced_ahead("P1", None, clock=clock, zone=ZONE)
    before = await counts()
    for sql in FAIL_TRIGGER[dbmod.dialect()]:
        await dbmod.conn().execute_script(sql)
    try:
        with pytest.raises(Exception, match="outbox is down"):
            await draw(announced.draw_ref, clock=clock, zone=ZONE)
    finally:
        for sql in DROP_TRIGGER[dbmod.dialect()]:
            await dbmod.conn().execute_script(sql)
    assert await counts() == before
    assert (await Firing.get(draw_ref=announced.draw_ref)).status is FiringStatus.ANNOUNCED
    assert (await FiringSecret.get(firing__draw_ref=announced.draw_ref)).seed is None
    result = await draw(announced.draw_ref, clock=clock, zone=ZONE)  # the firing is still drawable
    assert result.inspections > 0 and await Outbox.all().count() == result.assignments


# --- eligibility ----------------------------------------------------------------------------------


async def test_only_eligible_inspectors_are_placed(db, tmp_path):
    w = await world.build(n_entities=30, n_scjg=6, n_wsj=2)
    await world.inspector(w, "X-LEAVE", "SCJG", ["SP"], status=InspectorStatus.ON_LEAVE)
    await world.inspector(w, "X-RETIRED", "SCJG", ["SP"], status=InspectorStatus.RETIRED)
    await world.inspector(w, "X-EXPIRED", "SCJG", ["SP"], expiry=date(2026, 11, 30))
    await world.inspector(w, "X-UNQUAL", "SCJG", ["ZL"])
    await world.inspector(w, "X-WSJ", "WSJ", ["SP", "YL"])  # qualified, but of another department
    w.units["far"] = await Unit.create(department=w.depts["SCJG"], name="外区分局", jurisdiction="370299")
    await world.inspector(w, "X-FAR", "SCJG", ["SP"], unit="far")
    await world.inspector(w, "Y-TODAY", "SCJG", ["SP"], expiry=date(2026, 12, 1))  # valid through today
    conflicted = w.entities[0]
    await Conflict.create(
        inspector=w.inspectors["S01"],
        entity=conflicted,
        type=ConflictType.CLOSE_RELATIVE,
        source=ConflictSource.DECLARED,
    )
    await Conflict.create(
        inspector=w.inspectors["S02"],
        entity=conflicted,
        type=ConflictType.OTHER,
        source=ConflictSource.DECLARED,
        withdrawn_at=world.START,
    )  # withdrawn: no longer counts
    clock = world.clock()
    await add(tmp_path, clock, a="1", b="1", c="1")  # every entity drawn
    result = await scheduled_draw("P1", clock=clock, zone=ZONE)
    assert result.inspections == 30 and result.unstaffable == 0
    placed = set(await Assignment.all().values_list("inspector__cert_no", flat=True))
    assert not placed & {"X-LEAVE", "X-RETIRED", "X-EXPIRED", "X-UNQUAL", "X-WSJ", "X-FAR"}
    assert "Y-TODAY" in placed
    inspectors_tsv = await _stored((await Draw.get()).id, "inspectors.tsv")
    listed = {line.split("\t")[0] for line in inspectors_tsv["inspectors.tsv"].decode().splitlines()}
    assert listed == {f"S0{i}" for i in range(1, 7)} | {"Y-TODAY", "X-FAR"}  # X-FAR listed, never placed
    first = await Inspection.get(entity=conflicted)
    assert "S01" not in await team_of(first.no, result.draw_ref)
    for insp in await Inspection.all():
        assert len(set(await team_of(insp.no, result.draw_ref))) == 2


async def test_out_of_jurisdiction_inspectors_serve_only_their_district(db, tmp_path):
    w = await world.build(n_entities=20, n_scjg=0, n_wsj=0)
    for i in range(4):
        await world.inspector(w, f"S-{i}", "SCJG", ["SP"], unit="SCJG-S")  # 370202 only
    w.units["north"] = await Unit.create(department=w.depts["SCJG"], name="市北区市场监管局", jurisdiction="370203")
    for i in range(4):
        await world.inspector(w, f"N-{i}", "SCJG", ["SP"], unit="north")
    clock = world.clock()
    await add(tmp_path, clock, a="1", b="1", c="1")
    result = await scheduled_draw("P1", clock=clock, zone=ZONE)
    for insp in await Inspection.filter(draw__draw_ref=result.draw_ref):
        team = await team_of(insp.no, result.draw_ref)
        prefix = "S-" if insp.division.startswith("370202") else "N-"
        assert team and all(k.startswith(prefix) for k in team)


async def test_joint_plan_has_a_seat_per_department(db, tmp_path):
    await world.build(n_entities=20, n_scjg=4, n_wsj=4)
    clock = world.clock()
    await add(tmp_path, clock, "J1", departments=("SCJG", "WSJ"), items=("SCJG-SP-01", "WSJ-YL-01"))
    result = await scheduled_draw("J1", clock=clock, zone=ZONE)
    assert result.unstaffable == 0
    for insp in await Inspection.filter(draw__draw_ref=result.draw_ref):
        team = await team_of(insp.no, result.draw_ref)
        assert team[0].startswith("S") and team[1].startswith("W")


async def test_too_few_inspectors_is_reported_not_short(db, tmp_path):
    await world.build(n_entities=10, n_scjg=1, n_wsj=0)
    clock = world.clock()
    await add(tmp_path, clock)
    result = await scheduled_draw("P1", clock=clock, zone=ZONE)
    assert result.unstaffable == result.inspections > 0 and result.assignments == 0
    reasons = set(await Inspection.all().values_list("unstaffable_reason", flat=True))
    assert reasons and "" not in reasons


# --- rotation ------------------------------------------------------------------------------------


async def test_rotation_skips_recent_entities_except_d_and_e(db, tmp_path):
    await world.build(n_entities=40)
    clock = world.clock()
    await add(tmp_path, clock, "P1", a="1", b="1", c="1")
    await add(tmp_path, clock, "P2", a="1", b="1", c="1", entity_days=365)
    first = await scheduled_draw("P1", clock=clock, zone=ZONE)
    assert first.inspections == 40
    clock.advance(timedelta(days=30))
    preview = await scheduled_draw("P2", dry_run=True, clock=clock, zone=ZONE)
    assert {s.stratum: s.pool for s in preview.strata} == {"A": 0, "B": 0, "C": 0, "D": 8, "E": 8}
    clock.advance(timedelta(days=366))
    preview = await scheduled_draw("P2", dry_run=True, clock=clock, zone=ZONE)
    assert preview.pool == 40


async def test_recused_assignment_does_not_count_as_inspected(db, tmp_path):
    await world.build(n_entities=10, risks="A")
    clock = world.clock()
    await add(tmp_path, clock, "P1", a="0.1")
    await add(tmp_path, clock, "P2", a="1", entity_days=365)
    first = await scheduled_draw("P1", clock=clock, zone=ZONE)
    assert first.inspections == 1
    await Assignment.filter(draw__draw_ref=first.draw_ref).update(status=AssignmentStatus.RECUSED)
    preview = await scheduled_draw("P2", dry_run=True, clock=clock, zone=ZONE)
    assert preview.pool == 10


async def pairs(draw_ref: str) -> set[tuple[str, str]]:
    rows = await Assignment.filter(draw__draw_ref=draw_ref).prefetch_related("inspector", "inspection")
    return {(a.inspector.cert_no, a.inspection.entity_key) for a in rows}


async def test_inspector_never_returns_to_an_entity_within_m_days(db, tmp_path):
    await world.build(n_entities=8, n_scjg=6, risks="D")
    clock = world.clock()
    await add(tmp_path, clock, "P1", inspector_days=365)
    first = await scheduled_draw("P1", clock=clock, zone=ZONE)
    earlier = await pairs(first.draw_ref)
    clock.advance(timedelta(days=1))
    second = await scheduled_draw("P1", clock=clock, zone=ZONE)
    later = await pairs(second.draw_ref)
    assert len(earlier) == len(later) == 16
    assert not earlier & later


# --- flight ------------------------------------------------------------------------------------


async def test_flight_messages_do_not_name_the_entity(db, tmp_path):
    w = await world.build(n_entities=10)
    clock = world.clock()
    await add(tmp_path, clock, "F1", flight=True)
    result = await scheduled_draw("F1", clock=clock, zone=ZONE, locale="en")
    assert result.flight and result.reveal_at is not None
    row = await Draw.get(draw_ref=result.draw_ref)
    assert row.reveal_at == result.reveal_at and row.flight
    names = {e.name for e in w.entities} | {e.uscc for e in w.entities} | {e.address for e in w.entities}
    for message in await Outbox.all():
        assert "entity" not in message.context
        body = render(f"messages/{message.template}", message.locale, **message.context)
        assert not any(n in body for n in names)
        assert not any(n in str(message.context) for n in names)
        assert "Flight inspection" in body
