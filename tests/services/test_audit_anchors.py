"""Issue 14 item 5: every act that shapes a draw is on the audit chain whatever the interface,
and the chain's head is anchored outside its table, so a log cut short or rewritten is found
(SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from datetime import timedelta

from bot.runtime import Runtime
from core.clock import FakeClock
from domain.audit import DRAW_ACTIONS, GENESIS, Checkpoint, Entry, entry_hash, parse_head
from importers.run import import_file
from models.audit import AuditCheckpoint, AuditRecord
from models.draws import Draw
from models.messaging import Channel, ChatBinding, Role
from models.plans import Plan
from scheduler import Scheduler
from services import audit, plans
from services.draws.export import export
from services.draws.write import OffSchedule, draw_plan
from services.identity import create_invite, redeem
from tests.builders import scheduled_draw
from tests.importers.files import DEPARTMENT_HEADER, DEPARTMENTS, write_csv
from tests.services import draw_world as world

ZONE = world.ZONE


async def actions() -> list[tuple[str, str, str]]:
    return [tuple(r) for r in await AuditRecord.all().order_by("seq").values_list("actor", "action", "subject")]


async def drawn(tmp_path):
    """A world, plan P1 added and drawn on schedule by the scheduler's path (actor "system")."""
    await world.build(n_entities=20)
    clock = world.clock()
    await plans.add_plan(world.plan_file(tmp_path, "P1"), clock)
    result = await scheduled_draw("P1", clock=clock, zone=ZONE, actor="system")
    return clock, result


async def test_plan_announce_draw_retire_are_audited_and_the_draw_carries_the_head(db, tmp_path):
    clock, result = await drawn(tmp_path)
    await plans.add_plan(world.plan_file(tmp_path, "P1", name="改名"), clock, actor="cli")
    await plans.retire_plan("P1", "年度计划结束", clock=clock)
    assert not (await Plan.get(code="P1")).active
    got = await actions()
    assert got == [
        ("cli", "plan.added", "plan:P1"),
        ("system", "firing.announced", f"draw:{result.draw_ref}"),
        ("system", "draw.drawn", f"draw:{result.draw_ref}"),
        ("cli", "plan.changed", "plan:P1"),
        ("cli", "plan.retired", "plan:P1"),
    ]
    changed = await AuditRecord.get(action="plan.changed")
    assert changed.data["changed"] == ["name"] and changed.data["spec_sha256"] != changed.data["was_sha256"]
    # the draw's head: its own record, checkpointed, in its row and its draw.json
    row = await Draw.get(draw_ref=result.draw_ref)
    drew = await AuditRecord.get(action="draw.drawn")
    assert (row.audit_seq, row.audit_head) == (drew.seq, drew.hash) == result.audit_head
    assert await AuditCheckpoint.filter(seq=drew.seq, head=drew.hash, reason=f"draw:{result.draw_ref}").exists()
    await export(result.draw_ref, tmp_path / "b", clock=clock)
    doc = json.loads((tmp_path / "b" / "draw.json").read_text())
    assert doc["audit_head"] == {"seq": drew.seq, "hash": drew.hash}
    report = await audit.verify_anchored(data_dir=tmp_path)
    assert report.ok and report.count == 5 and report.last_seq == 5


async def test_a_retired_plan_needs_a_reason_and_retires_once(db, tmp_path):
    await world.build(n_entities=4)
    clock = world.clock()
    await plans.add_plan(world.plan_file(tmp_path, "P1"), clock)
    for reason, code in [("  ", "reason_required"), ("x" * 501, "reason_too_long")]:
        try:
            await plans.retire_plan("P1", reason, clock=clock)
        except plans.PlanRetireError as exc:
            assert exc.code == code
        else:
            raise AssertionError(code)
    await plans.retire_plan("P1", "结束", clock=clock)
    try:
        await plans.retire_plan("P1", "again", clock=clock)
    except plans.PlanRetireError as exc:
        assert exc.code == "already_retired"
    assert await AuditRecord.filter(action="plan.retired").count() == 1


async def test_imports_and_invites_are_audited(db, tmp_path):
    clock = FakeClock()
    path = write_csv(tmp_path / "departments.csv", DEPARTMENT_HEADER, DEPARTMENTS)
    result = await import_file("departments", path, now=clock.now())
    assert result.ok
    record = await AuditRecord.get(action="directory.imported")
    assert record.subject == "import:departments" and record.actor == "cli"
    assert record.data["added"] == len(DEPARTMENTS) and record.data["changed"] == 0
    assert record.data["deactivated"] == 0 and len(record.data["sha256"]) == 64
    again = await import_file("departments", path, now=clock.now())  # unchanged: still an act on the record
    assert again.ok and await AuditRecord.filter(action="directory.imported").count() == 2
    code = await create_invite(Role.COORDINATOR, clock, departments=(DEPARTMENTS[0][0],))
    bound = await redeem(code, Channel.TELEGRAM, "777", "李娜", clock)
    created = await AuditRecord.get(action="invite.created")
    assert created.data["role"] == "coordinator" and code not in json.dumps(created.data)
    redeemed = await AuditRecord.get(action="invite.redeemed")
    assert redeemed.subject == f"binding:{bound.binding.id}" and redeemed.data["departments"] == [DEPARTMENTS[0][0]]
    assert (await audit.verify()) == (4, None)


async def test_deleting_the_newest_records_is_found_by_every_anchor(db, tmp_path):
    clock, result = await drawn(tmp_path)
    await audit.daily_checkpoint(clock.now(), zone=ZONE, data_dir=tmp_path)
    assert audit.read_checkpoint_file(tmp_path)  # the draw's checkpoint, now outside the database too
    last = (await audit.head())[0]
    await AuditRecord.filter(seq=last).delete()
    # the chain alone cannot see it: what is left is a perfect chain
    assert await audit.verify() == (last - 1, None)
    report = await audit.verify_anchored(data_dir=tmp_path)
    assert not report.ok and report.last_seq == last - 1
    assert {(m.kind, m.checkpoint.seq) for m in report.mismatches} == {("truncated", last)}
    assert {m.checkpoint.source for m in report.mismatches} >= {"file"}
    # an attacker who also empties the checkpoint table and the draws' heads: the file still tells
    await AuditCheckpoint.all().delete()
    await Draw.all().update(audit_seq=None, audit_head=None)
    report = await audit.verify_anchored(data_dir=tmp_path)
    assert [(m.kind, m.checkpoint.source) for m in report.mismatches] == [("truncated", "file")]
    # and with no file at all, a head read off a public page or a bundle
    report = await audit.verify_anchored([Checkpoint(last, result.audit_head[1], "", "argument")])
    assert [m.kind for m in report.mismatches] == ["truncated"]


async def test_a_rewritten_chain_is_found_though_it_links_again(db, tmp_path):
    """Rewrite a record and re-hash every record after it: the chain verifies, the anchors do not."""
    clock, result = await drawn(tmp_path)
    await audit.sync_checkpoint_file(tmp_path)
    rows = await AuditRecord.all().order_by("seq")
    prev = GENESIS
    for r in rows:
        data = {**r.data, "inspections": 0} if r.action == "draw.drawn" else r.data
        e = Entry(r.seq, r.at, r.actor, r.action, r.subject, data, prev)
        h = entry_hash(e)
        await AuditRecord.filter(id=r.id).update(data=data, prev_hash=prev, hash=h)
        prev = h
    assert (await audit.verify())[1] is None
    report = await audit.verify_anchored(data_dir=tmp_path)
    assert not report.ok
    assert {m.kind for m in report.mismatches} == {"rewritten"}
    assert {m.checkpoint.source for m in report.mismatches} == {"db", "file", f"draw:{result.draw_ref}"}
    # a plain edit (no re-hash) breaks the chain itself
    await AuditRecord.filter(seq=1).update(actor="someone")
    assert (await audit.verify_anchored(data_dir=tmp_path)).broken.seq == 1


async def test_the_daily_checkpoint_is_once_a_day_and_the_file_only_grows(db, tmp_path):
    clock, _ = await drawn(tmp_path)
    assert await audit.daily_checkpoint(clock.now(), zone=ZONE, data_dir=tmp_path) == "daily"
    assert await audit.daily_checkpoint(clock.now(), zone=ZONE, data_dir=tmp_path) is None
    size = audit.checkpoint_path(tmp_path).stat().st_size
    await audit.append("system", "x", "s", {}, clock.now())
    clock.advance(timedelta(days=1))
    assert await audit.daily_checkpoint(clock.now(), zone=ZONE, data_dir=tmp_path) == "daily"
    lines = audit.checkpoint_path(tmp_path).read_text().splitlines()
    assert audit.checkpoint_path(tmp_path).stat().st_size > size and len(lines) == 2
    assert [int(x.split("\t")[0]) for x in lines] == [3, 4]
    assert (await audit.verify_anchored(data_dir=tmp_path)).ok


def test_a_head_is_parsed_strictly():
    h = "ab" * 32
    assert parse_head(f"5:{h}") == Checkpoint(5, h, "", "argument")
    for bad in ["5", f"x:{h}", f"5:{h[:-1]}", f"5:{'zz' * 32}", f"-1:{h}", f"0:{h}"]:
        assert parse_head(bad) is None, bad


async def test_a_disclosure_export_is_recorded_for_its_draw(db, tmp_path):
    clock, result = await drawn(tmp_path)
    entry = await audit.disclosure_exported(
        "cli", result.draw_ref, {"sha256": "ab" * 32, "file": "disclosure.tsv"}, clock.now()
    )
    record = await AuditRecord.get(seq=entry.seq)
    assert (record.action, record.subject) == (audit.DISCLOSURE_EXPORTED, f"draw:{result.draw_ref}")
    assert record.action in DRAW_ACTIONS and record.data["sha256"] == "ab" * 32
    assert (await audit.verify_anchored(data_dir=tmp_path)).ok


async def test_an_ad_hoc_draw_records_its_announcement_with_the_draw(db, tmp_path):
    """The announcement made by an ad hoc draw is appended with the draw's records, at the end of
    its write (an append holds PostgreSQL's audit lock until commit), in the order of the acts."""
    await world.build(n_entities=10)
    clock = world.clock()
    await plans.add_plan(world.plan_file(tmp_path, "P1"), clock)
    b = await ChatBinding.create(channel=Channel.TELEGRAM, address="901", role=Role.COORDINATOR, departments=["SCJG"])
    result = await draw_plan(
        "P1", clock=clock, zone=ZONE, off_schedule=OffSchedule("补抽", confirmed_by=b.id, requested_by="cli")
    )
    got = await actions()
    assert got[1:] == [
        ("cli", "firing.announced", f"draw:{result.draw_ref}"),
        ("cli", "draw.off_schedule", f"draw:{result.draw_ref}"),
        ("cli", "draw.drawn", f"draw:{result.draw_ref}"),
    ]
    announced = await AuditRecord.get(action="firing.announced")
    assert announced.data["commitment"] == result.commitment
    assert (await audit.verify_anchored(data_dir=tmp_path)).ok


async def test_the_scheduler_checkpoints_daily_into_the_file(db, tmp_path):
    """The sweep as the scheduler runs it: the day's checkpoint, and the file under the data
    directory brought up to date."""
    clock, result = await drawn(tmp_path)
    await Scheduler(Runtime(settings=db, clock=clock)).run_due()
    lines = audit.read_checkpoint_file(db.data_dir)
    assert [(c.seq, c.head) for c in lines] == [result.audit_head]
    assert await AuditCheckpoint.filter(reason="daily").count() == 1


async def test_a_deleted_truncated_or_edited_checkpoint_file_is_itself_detected(db, tmp_path):
    """Brief 14d §4: the database records the file's line count and hash chain after each append,
    so the file is an anchor that cannot itself vanish unnoticed."""
    clock, _ = await drawn(tmp_path)
    await audit.daily_checkpoint(clock.now(), zone=ZONE, data_dir=tmp_path)
    await audit.append("system", "x", "s", {}, clock.now())
    clock.advance(timedelta(days=1))
    await audit.daily_checkpoint(clock.now(), zone=ZONE, data_dir=tmp_path)
    path = audit.checkpoint_path(tmp_path)
    original = path.read_bytes()
    assert len(original.splitlines()) == 2 and (await audit.verify_anchored(data_dir=tmp_path)).ok
    # truncated: the last line gone
    path.write_bytes(original.splitlines(keepends=True)[0])
    report = await audit.verify_anchored(data_dir=tmp_path)
    assert [(m.kind, m.checkpoint.seq, m.last_seq) for m in report.mismatches] == [("file_truncated", 2, 1)]
    assert report.broken is None and not report.ok  # the chain itself is whole: only the file says
    # edited: a line changed (a forged head)
    lines = original.splitlines(keepends=True)
    path.write_bytes(lines[0].replace(lines[0].split(b"\t")[1], b"f" * 64) + lines[1])
    report = await audit.verify_anchored(data_dir=tmp_path)
    assert {m.kind for m in report.mismatches} >= {"file_rewritten"}
    # deleted
    path.unlink()
    report = await audit.verify_anchored(data_dir=tmp_path)
    assert {(m.kind, m.last_seq) for m in report.mismatches} == {("file_truncated", 0)}
    # with the database intact, the next sweep writes the file again from the checkpoint table,
    # byte for byte what was there, then the new checkpoint: nothing lost, nothing reported
    await audit.append("system", "y", "s", {}, clock.now())
    clock.advance(timedelta(days=1))
    await audit.daily_checkpoint(clock.now(), zone=ZONE, data_dir=tmp_path)
    assert path.read_bytes().startswith(original) and len(path.read_bytes().splitlines()) == 3
    assert (await audit.verify_anchored(data_dir=tmp_path)).ok
    # but the file deleted together with the newest records and their checkpoints: the file written
    # again lacks lines the database once saw in it
    path.unlink()
    last = (await audit.head())[0]
    await AuditRecord.filter(seq__gte=last - 1).delete()
    await AuditCheckpoint.filter(seq__gte=last - 1).delete()
    await audit.sync_checkpoint_file(tmp_path)
    report = await audit.verify_anchored(data_dir=tmp_path)
    assert ("file_truncated", 3) in {(m.kind, m.checkpoint.seq) for m in report.mismatches}, report.mismatches
