"""Export: the bundle written from the stored inputs verifies; flight draws stay sealed."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from domain import bundle
from models.directory import Entity, EntityStatus, Inspector, InspectorStatus
from models.draws import Assignment, Draw, FiringSecret
from services import plans
from services.draws.announce import announce
from services.draws.common import DrawError
from services.draws.export import export
from services.recusals import record_and_replace
from tests.builders import scheduled_draw
from tests.services import draw_world as world

ZONE = world.ZONE


def read_dir(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in directory.iterdir()}


def verified(directory: Path) -> list[bundle.CheckLine]:
    lines = bundle.verify(read_dir(directory))
    assert lines and all(line.ok for line in lines), [line for line in lines if not line.ok]
    return lines


async def drawn(tmp_path, code="P1", **kwargs):
    clock = world.clock()
    await plans.add_plan(world.plan_file(tmp_path, code, **kwargs), clock)
    return await scheduled_draw(code, "drand:42", clock=clock, zone=ZONE), clock


async def test_exported_bundle_verifies(db, tmp_path):
    await world.build(n_entities=40)
    result, clock = await drawn(tmp_path)
    done = await export(result.draw_ref, tmp_path / "bundle", clock=clock)
    assert done.files == ("draw.json", "inspectors.tsv", "pool.tsv") and not done.sealed
    lines = verified(tmp_path / "bundle")
    assert {line.what for line in lines} >= {"commitment", "seed", "selection", "teams", "inspections_digest"}
    doc = json.loads((tmp_path / "bundle" / "draw.json").read_bytes())
    assert doc["draw_ref"] == result.draw_ref and doc["beacon"] == "drand:42"
    assert doc["inspections_digest"] == result.inspections_digest == (await Draw.get()).inspections_digest
    assert len(doc["inspections"]) == result.inspections


async def test_bundle_is_the_draw_as_it_was_whatever_changed_since(db, tmp_path):
    await world.build(n_entities=20)
    result, clock = await drawn(tmp_path)
    await export(result.draw_ref, tmp_path / "first", clock=clock)
    await Entity.filter(uscc=world.uscc(3)).update(status=EntityStatus.INACTIVE, risk_class="A")
    await Inspector.filter(cert_no="S01").update(status=InspectorStatus.RETIRED)
    await Inspector.create(
        cert_no="S99",
        name="新人",
        department_id=(await Inspector.get(cert_no="S02")).department_id,
        unit_id=(await Inspector.get(cert_no="S02")).unit_id,
        qualifications=["SP"],
    )
    await export(result.draw_ref, tmp_path / "again", clock=clock)
    assert read_dir(tmp_path / "first") == read_dir(tmp_path / "again")
    verified(tmp_path / "again")


async def test_recusal_log_is_exported_and_replays(db, tmp_path):
    await world.build(n_entities=12, n_scjg=6, risks="D")
    result, clock = await drawn(tmp_path)
    ids = await Assignment.filter(draw__draw_ref=result.draw_ref).order_by("id").values_list("id", flat=True)
    first = await record_and_replace(ids[0], "close_relative", clock=clock, zone=ZONE)
    await record_and_replace(first.replacement_assignment_id, "other", clock=clock, zone=ZONE)
    await record_and_replace(ids[5], "financial_interest", clock=clock, zone=ZONE)
    done = await export(result.draw_ref, tmp_path / "bundle", clock=clock)
    assert "recusals.tsv" in done.files
    lines = (tmp_path / "bundle" / "recusals.tsv").read_text().splitlines()
    assert len(lines) == 3 and [line.split("\t")[4] for line in lines[:2]] == ["0", "1"]
    checks = {line.what: line for line in verified(tmp_path / "bundle")}
    assert checks["recusals"].params["count"] == 3


async def test_recusal_log_with_an_unstaffable_seat_replays(db, tmp_path):
    await world.build(n_entities=3, n_scjg=2, risks="D")
    result, clock = await drawn(tmp_path)
    first = await Assignment.filter(draw__draw_ref=result.draw_ref).order_by("id").first()
    assert (await record_and_replace(first.id, "other", clock=clock, zone=ZONE)).unstaffable_reason
    await export(result.draw_ref, tmp_path / "bundle", clock=clock)
    assert (tmp_path / "bundle" / "recusals.tsv").read_text().split("\t")[3] == ""
    verified(tmp_path / "bundle")


async def test_flight_draw_is_sealed_until_its_reveal(db, tmp_path):
    await world.build(n_entities=20)
    result, clock = await drawn(tmp_path, "F1", flight=True)
    secret = bytes((await FiringSecret.get(firing__draw_ref=result.draw_ref)).secret)

    early = await export(result.draw_ref, tmp_path / "early", clock=clock)
    assert early.sealed and early.files == ("sealed.json",)
    sealed = json.loads((tmp_path / "early" / "sealed.json").read_bytes())
    assert sealed["inspections_digest"] == result.inspections_digest and sealed["flight"] is True
    assert "secret" not in sealed and "seed" not in sealed and "inspections" not in sealed
    everything = (tmp_path / "early" / "sealed.json").read_bytes()
    seed = bytes((await FiringSecret.get(firing__draw_ref=result.draw_ref)).seed)
    assert secret.hex().encode() not in everything and seed.hex().encode() not in everything

    forced = await export(result.draw_ref, tmp_path / "forced", clock=clock, force=True)
    assert forced.forced and not forced.sealed and "draw.json" in forced.files
    verified(tmp_path / "forced")

    clock.set(result.reveal_at)
    revealed = await export(result.draw_ref, tmp_path / "revealed", clock=clock)
    assert not revealed.sealed and not revealed.forced
    doc = json.loads((tmp_path / "revealed" / "draw.json").read_bytes())
    assert doc["flight"] is True and doc["inspections_digest"] == sealed["inspections_digest"]
    verified(tmp_path / "revealed")


async def test_export_refusals(db, tmp_path):
    await world.build(n_entities=4)
    clock = world.clock()
    await plans.add_plan(world.plan_file(tmp_path, "P1"), clock)
    announced = await announce("P1", None, clock=clock, zone=ZONE)
    for ref, code in ((announced.draw_ref, "not_drawn"), ("P1/1999-01-01", "draw_ref_not_found")):
        with pytest.raises(DrawError) as info:
            await export(ref, tmp_path / "out", clock=clock)
        assert info.value.code == code
    assert not (tmp_path / "out").exists()


async def test_tampered_bundle_fails_verification(db, tmp_path):
    await world.build(n_entities=20)
    result, clock = await drawn(tmp_path)
    await export(result.draw_ref, tmp_path / "bundle", clock=clock)
    files = read_dir(tmp_path / "bundle")
    pool = files["pool.tsv"].replace(b"\tA\n", b"\tB\n", 1)
    bad = {line.what for line in bundle.verify({**files, "pool.tsv": pool}) if not line.ok}
    assert "pool_digest" in bad


async def test_a_later_day_gets_its_own_draw_ref(db, tmp_path):
    await world.build(n_entities=4)
    result, clock = await drawn(tmp_path)
    clock.advance(timedelta(days=31))
    later = await scheduled_draw("P1", clock=clock, zone=ZONE)
    assert later.draw_ref == "P1/2027-01-01" != result.draw_ref
