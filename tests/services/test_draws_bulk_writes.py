"""The draw's city-scale write path.

Its assignment messages are written as JSON text put together from pieces encoded once
(``services.draws.write.AssignmentContexts``); they must be exactly what encoding each message's dict
whole would give, so what the dispatcher renders does not change. The ids of the rows it wrote
are found without reading them all back; its larger SQLite page cache is given back."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core import db as dbmod
from domain.plans import parse_plan
from models.directory import Entity, Inspector, Item
from models.draws import Assignment, Draw, Firing, Inspection
from models.messaging import Outbox, RecipientKind
from services import plans
from services.draws.write import (
    ASSIGNMENT_TEMPLATE,
    WRITE_CACHE_KIB,
    AssignmentContexts,
    _write_cache,
    _written_ids,
    assignment_message,
    base_context,
)
from tests.builders import scheduled_draw
from tests.services import draw_world as world

ZONE = world.ZONE
text = st.text(max_size=12)  # any character: quotes, backslashes, controls, CJK, surrogates' neighbours
ids = st.integers(min_value=0, max_value=10**12)
base_contexts = st.fixed_dictionaries(
    {
        "draw_ref": text,
        "plan": st.fixed_dictionaries({"code": text, "name": text}),
        "items": st.lists(text, max_size=3),
        "flight": st.booleans(),
        "window": st.fixed_dictionaries({"start": text, "end": text}),
        "deadline": text,
    },
    optional={"reveal_at": text},
)
entities = st.none() | st.tuples(text, text, text)


def reference(base: dict, no: int, seat: int, team: list[str], entity: tuple | None, assignment_id: int) -> dict:
    """The context as the draw built it before: a dict per message, filled by assignment_message."""
    context = {**base, "no": no, "seat": seat, "team": team}
    if entity is not None:
        context["entity"] = dict(zip(("name", "address", "uscc"), entity))
    return assignment_message(assignment_id, 7, context, "zh-CN").context


@given(base_contexts, ids, st.integers(1, 9), st.lists(text, max_size=4), entities, ids)
def test_pieces_make_the_text_of_the_whole_dict(base, no, seat, team, entity, assignment_id):
    contexts = AssignmentContexts(base)
    made = contexts.message(contexts.inspection(no, team, entity), seat, assignment_id)
    assert made == dbmod.encode(reference(base, no, seat, team, entity, assignment_id))
    assert json.loads(made) == reference(base, no, seat, team, entity, assignment_id)


async def expected_contexts(draw_ref: str) -> dict[int, dict]:
    """Every assignment's message context rebuilt from the database, one dict per message."""
    row = await Draw.get(draw_ref=draw_ref)
    spec = parse_plan((await Firing.get(id=row.firing_id)).params)
    names = dict(await Item.filter(code__in=spec.items).values_list("code", "name"))
    out = {}
    for inspection in await Inspection.filter(draw=row).order_by("no"):
        team = await Assignment.filter(inspection=inspection).order_by("seat")
        members = [await Inspector.get(id=a.inspector_id) for a in team]
        entity = await Entity.get(id=inspection.entity_id)
        for a in team:
            base = base_context(row, spec, [names[c] for c in spec.items], a.deadline, ZONE)
            if spec.flight:
                base["reveal_at"] = base["window"]["start"]
            shown = None if spec.flight else (entity.name, entity.address, inspection.entity_key)
            out[a.id] = reference(base, inspection.no, a.seat, [m.name for m in members], shown, a.id)
    return out


async def check_outbox(draw_ref: str) -> None:
    expected = await expected_contexts(draw_ref)
    rows = await Outbox.all().order_by("id")
    assert [r.dedupe_key for r in rows] == [f"asg:{a}:sent" for a in sorted(expected)]  # in assignment order
    for r in rows:
        assignment_id = int(r.dedupe_key.split(":")[1])
        assert r.context == expected[assignment_id]
        assert r.recipient_kind is RecipientKind.INSPECTOR and r.template == ASSIGNMENT_TEMPLATE
        assert r.recipient_id == (await Assignment.get(id=assignment_id)).inspector_id
    if dbmod.dialect() == "sqlite":  # stored as text: the very text encoding the dict gives
        stored = await dbmod.conn().execute_query("SELECT dedupe_key, context FROM outbox")
        for key, context in stored[1]:
            assert context == dbmod.encode(expected[int(key.split(":")[1])])


async def test_stored_contexts_are_the_dicts_encoded_whole(db, tmp_path):
    w = await world.build(n_entities=20)
    await Entity.filter(id=w.entities[0].id).update(name='青岛"引号"\\反斜杠\n公司', address="路\t1号 </b>")
    await Inspector.filter(cert_no="S01").update(name='检查员 "甲"\\')
    clock = world.clock()
    await plans.add_plan(world.plan_file(tmp_path, "P1", a="1", b="1", c="1"), clock)
    result = await scheduled_draw("P1", clock=clock, zone=ZONE)
    assert result.assignments == 40 and await Outbox.all().count() == 40
    await check_outbox(result.draw_ref)


async def test_flight_contexts_are_the_dicts_encoded_whole(db, tmp_path):
    await world.build(n_entities=10)
    clock = world.clock()
    await plans.add_plan(world.plan_file(tmp_path, "F1", flight=True), clock)
    result = await scheduled_draw("F1", clock=clock, zone=ZONE, locale="en")
    assert result.flight and result.assignments > 0
    await check_outbox(result.draw_ref)


async def test_the_write_cache_is_given_back(sqlite_db, tmp_path):
    """The draw writes with a larger SQLite page cache, on the connection everything shares;
    afterwards the connection has its own again, also when the draw fails."""
    await world.build(n_entities=6)
    clock = world.clock()
    await plans.add_plan(world.plan_file(tmp_path, "P1"), clock)

    async def cache_size() -> int:
        return (await dbmod.conn().execute_query("PRAGMA cache_size"))[1][0][0]

    before = await cache_size()
    assert before != -WRITE_CACHE_KIB
    result = await scheduled_draw("P1", clock=clock, zone=ZONE)
    assert result.assignments > 0 and await cache_size() == before
    with pytest.raises(RuntimeError):
        async with _write_cache():
            assert await cache_size() == -WRITE_CACHE_KIB
            raise RuntimeError("the write failed")
    assert await cache_size() == before


async def test_written_ids_in_write_order_with_or_without_gaps(db, tmp_path):
    await world.build(n_entities=20)
    clock = world.clock()
    await plans.add_plan(world.plan_file(tmp_path, "P1", a="1", b="1", c="1"), clock)
    result = await scheduled_draw("P1", clock=clock, zone=ZONE)
    row = await Draw.get(draw_ref=result.draw_ref)
    ids = list(await Assignment.filter(draw=row).order_by("id").values_list("id", flat=True))
    assert await _written_ids("assignment", row.id, len(ids), None) == ids  # one unbroken run
    await Assignment.filter(id=ids[5]).delete()  # a gap: the ids are read
    assert await _written_ids("assignment", row.id, len(ids) - 1, None) == ids[:5] + ids[6:]
    with pytest.raises(RuntimeError):
        await _written_ids("assignment", row.id, len(ids), None)
