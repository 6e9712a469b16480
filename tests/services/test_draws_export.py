"""Export: the bundle written from the stored inputs verifies; flight draws stay sealed."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from domain import bundle
from models.audit import AuditRecord
from models.directory import Entity, EntityStatus, Inspector, InspectorStatus
from models.draws import Assignment, Draw, Firing, FiringPool, FiringSecret, Inspection
from services import plans
from services.draws.announce import announce
from services.draws.common import DrawError
from services.draws.export import export
from services.draws.fixed import disclose
from services.draws.gather import preview
from services.recusals import record_and_replace
from tests.builders import announced_ahead, scheduled_draw
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
    # v2 (confidential classes) by default: the public checks everything that needs no class
    assert {line.what for line in lines} >= {"commitment", "seed", "list", "teams", "inspections_digest"}
    doc = json.loads((tmp_path / "bundle" / "draw.json").read_bytes())
    assert doc["protocol"] == "inspectbot/draw/v2"
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
    first = files["pool.tsv"].split(b"\n", 1)[0]
    other = first[:-1] + (b"0" if first[-1:] != b"0" else b"1")  # one class commitment changed
    pool = files["pool.tsv"].replace(first, other, 1)
    bad = {line.what for line in bundle.verify({**files, "pool.tsv": pool}) if not line.ok}
    assert {"pool_digest", "seed"} <= bad  # the seed is re-derived from the file at hand


async def test_public_bundle_and_pages_data_carry_no_class(db, tmp_path):
    await world.build(n_entities=30)
    result, clock = await drawn(tmp_path)
    await export(result.draw_ref, tmp_path / "bundle", clock=clock)
    files = read_dir(tmp_path / "bundle")
    doc = json.loads(files["draw.json"])
    assert all("stratum" not in e for e in doc["inspections"])
    assert all(len(line.split(b"\t")[1]) == 64 for line in files["pool.tsv"].splitlines())
    classes = {e.risk_class for e in await Entity.all()}
    for line in files["pool.tsv"].splitlines():
        assert line.split(b"\t")[1].decode() not in classes
    # the pool was fixed at the announcement: its digest then is the bundle's
    firing = await Firing.get(draw_ref=result.draw_ref)
    assert firing.pool_digest == doc["pool_digest"]


async def test_pool_is_the_one_fixed_at_announce(db, tmp_path):
    await world.build(n_entities=20, risks="D")
    clock = world.clock()
    await plans.add_plan(world.plan_file(tmp_path, "P1"), clock)
    announced = await announced_ahead("P1", None, clock=clock, zone=ZONE)
    # after the announcement: one entity's class changes and another leaves the directory's pool
    await Entity.filter(uscc=world.uscc(3)).update(risk_class="A")
    await Entity.filter(uscc=world.uscc(4)).update(status=EntityStatus.INACTIVE)
    dry = await preview("P1", clock=clock, zone=ZONE)  # the dry run counts the fixed pool too
    assert dry.pool == 20 and {s.stratum: s.pool for s in dry.strata}["D"] == 20
    result = await scheduled_draw("P1", "drand:7", clock=clock, zone=ZONE)
    assert result.draw_ref == announced.draw_ref
    drawn_keys = set(await Inspection.filter(draw__draw_ref=result.draw_ref).values_list("entity_key", flat=True))
    assert {world.uscc(3), world.uscc(4)} <= drawn_keys  # class D as announced: drawn whole
    await export(result.draw_ref, tmp_path / "bundle", clock=clock)
    assert json.loads((tmp_path / "bundle" / "draw.json").read_bytes())["pool_digest"] == announced.pool_digest


async def test_audit_and_entity_disclosures_verify_and_are_audited(db, tmp_path):
    await world.build(n_entities=30)
    result, clock = await drawn(tmp_path)
    await export(result.draw_ref, tmp_path / "bundle", clock=clock)
    files = read_dir(tmp_path / "bundle")
    done = await disclose(
        result.draw_ref, tmp_path / "audit.tsv", entity=None, actor="cli", reason="审计抽查", clock=clock
    )
    assert done.lines == 31  # header + one line per entity
    lines = bundle.verify(files, (tmp_path / "audit.tsv").read_bytes())
    assert all(line.ok for line in lines) and {"classes", "selection", "cuts"} <= {line.what for line in lines}
    key = world.uscc(5)
    await disclose(result.draw_ref, tmp_path / "one.tsv", entity=key, actor="cli", reason="企业申请", clock=clock)
    own = bundle.verify(files, (tmp_path / "one.tsv").read_bytes())
    assert own[-1].what == "entity" and own[-1].ok and own[-1].params["entity"] == key
    records = await AuditRecord.filter(action="draw.disclosed").order_by("seq")
    assert [r.data["scope"] for r in records] == ["audit", f"entity:{key}"]
    assert records[0].data["reason"] == "审计抽查"
    with pytest.raises(DrawError) as err:
        await disclose(result.draw_ref, tmp_path / "x.tsv", entity=None, actor="cli", reason="  ", clock=clock)
    assert err.value.code == "reason_required"
    with pytest.raises(DrawError) as err:
        await disclose(result.draw_ref, tmp_path / "x.tsv", entity="nobody", actor="cli", reason="r", clock=clock)
    assert err.value.code == "entity_not_in_pool"
    assert not (tmp_path / "x.tsv").exists()


async def test_a_later_day_gets_its_own_draw_ref(db, tmp_path):
    await world.build(n_entities=4)
    result, clock = await drawn(tmp_path)
    clock.advance(timedelta(days=31))
    later = await scheduled_draw("P1", clock=clock, zone=ZONE)
    assert later.draw_ref == "P1/2027-01-01" != result.draw_ref


async def test_a_firing_announced_before_v2_still_draws_and_verifies_as_v1(db, tmp_path):
    await world.build(n_entities=20)
    clock = world.clock()
    await plans.add_plan(world.plan_file(tmp_path, "P1"), clock)
    announced = await announced_ahead("P1", None, clock=clock, zone=ZONE)
    # what a firing announced before this version holds: no salt key, no fixed pool, no pool digest
    firing = await Firing.get(draw_ref=announced.draw_ref)
    await FiringPool.filter(firing_id=firing.id).delete()
    await FiringSecret.filter(firing_id=firing.id).update(salt_key=None)
    await Firing.filter(id=firing.id).update(pool_digest=None)
    result = await scheduled_draw("P1", "drand:1", clock=clock, zone=ZONE)
    await export(result.draw_ref, tmp_path / "bundle", clock=clock)
    files = read_dir(tmp_path / "bundle")
    doc = json.loads(files["draw.json"])
    assert doc["protocol"] == "inspectbot/draw/v1" and all("stratum" in e for e in doc["inspections"])
    lines = verified(tmp_path / "bundle")
    assert "selection" in {line.what for line in lines}
    with pytest.raises(DrawError) as err:
        await disclose(result.draw_ref, tmp_path / "a.tsv", entity=None, actor="cli", reason="r", clock=clock)
    assert err.value.code == "not_confidential"
