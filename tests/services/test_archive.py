"""``inspectbot inspection archive``: one inspection's process record as a zip — check-ins,
photos, findings, review/notice/objection/follow-up steps and their audit records — with a
manifest of SHA-256s, phone numbers redacted, and the audit records tied to the chain."""

from __future__ import annotations

import argparse
import hashlib
import json
import zipfile
from datetime import UTC, datetime

from bot.commands import inspection as inspection_cli
from core import db as dbmod
from domain.archive import redact
from models.audit import AuditRecord
from models.directory import Entity
from models.draws import Assignment, Draw
from models.onsite import CheckIn, Photo, PhotoStatus
from models.publication import Notice, Review
from services import audit
from services.archive import verify_records
from services.onsite import objection, review
from tests.services.publication_world import coordinator, inspections, submitted

MOBILE = "+8613912345678"
PICTURE = b"\x89PNG\r\n\x1a\n" + b"fake-photo" * 10


def test_redaction_catches_the_usual_ways_of_writing_a_phone_number():
    for phone in (
        "13912345678",
        "139 1234 5678",
        "139-1234-5678",
        "+86 13912345678",
        "+8613912345678",
        "0532-88886666",
    ):
        assert "[电话已隐去]" in redact(f"请联系 {phone} 王经理") and phone not in redact(f"请联系 {phone}")
    assert (
        redact("统一社会信用代码 91370200000000001X，2026-12-03") == "统一社会信用代码 91370200000000001X，2026-12-03"
    )


async def test_archive_has_the_record_redacted_and_tied_to_the_audit_chain(db, tmp_path, capsys):
    insp, _ = await inspections(tmp_path)
    await Entity.filter(id=insp.entity_id).update(mobile=MOBILE)
    lead = await Assignment.filter(inspection_id=insp.id).order_by("seat").first()
    at = datetime(2026, 12, 3, 2, 0, tzinfo=UTC)
    await CheckIn.create(
        assignment_id=lead.id,
        inspection=insp,
        inspector_id=lead.inspector_id,
        latitude=36.07,
        longitude=120.38,
        distance_m=12.0,
        radius_m=500,
        at=at,
    )
    digest = hashlib.sha256(PICTURE).hexdigest()
    path = f"photos/{digest[:2]}/{digest}.png"
    (db.data_dir / path).parent.mkdir(parents=True, exist_ok=True)
    (db.data_dir / path).write_bytes(PICTURE)
    await Photo.create(
        inspection=insp,
        inspector_id=lead.inspector_id,
        file_id="f1",
        caption=f"店主电话 {MOBILE}",
        status=PhotoStatus.STORED,
        next_attempt_at=at,
        sha256=digest,
        size=len(PICTURE),
        path=path,
        received_at=at,
    )
    result = await submitted(insp, at)
    reviewer = await coordinator("900")
    await review.decide_review(reviewer, (await Review.get(result_id=result.id)).id, True, now=at)
    notice = await Notice.get(result_id=result.id)
    await objection.lodge(notice.code, "请致电 139 1234 5678 核实", at, channel="sms", sender=MOBILE)
    draw = await Draw.get(id=insp.draw_id)
    await dbmod.close()

    out = tmp_path / "out"
    args = argparse.Namespace(inspection=f"{draw.draw_ref}/{insp.no}", out=out)
    assert await inspection_cli.run_archive(args, db) == 0
    [written] = list(out.glob("*.zip"))
    assert "inspectbot audit verify" in capsys.readouterr().out
    with zipfile.ZipFile(written) as z:
        files = {name: z.read(name) for name in z.namelist()}
    manifest = json.loads(files.pop("manifest.json"))
    assert manifest["files"] == {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}
    assert files[f"photos/{digest}.png"] == PICTURE
    everything = b"".join(files.values()).decode("utf-8", "replace")
    for secret in ("13912345678", "139 1234 5678", notice.code):
        assert secret not in everything, secret
    assert json.loads(files["checkins.json"])[0]["latitude"] == 36.07
    steps = json.loads(files["steps.json"])
    assert [r["status"] for r in steps["reviews"]] == ["approved"] and steps["objections"][0]["channel"] == "sms"
    assert steps["rectifications"][0]["status"] == "open"
    records = json.loads(files["audit.json"])
    actions = {r["action"] for r in records}
    assert {"review.opened", "review.approved", "result.published", "notice.issued", "objection.lodged"} <= actions
    assert {"rectification.ordered"} <= actions

    # tied to the chain: every record is the live chain's record at its seq; unredacted ones recompute
    await dbmod.init(db)
    try:
        live = {r.seq: r.hash for r in await AuditRecord.filter(seq__in=[r["seq"] for r in records])}
        assert all(live[r["seq"]] == r["hash"] for r in records)
        assert verify_records(records) == []
        redacted = [r for r in records if r.get("redacted")]
        assert [r["action"] for r in redacted] == ["objection.lodged"] and manifest["audit"]["redacted"] == [
            redacted[0]["seq"]
        ]
        tampered = [{**records[0], "actor": "someone-else"}]
        assert verify_records(tampered) == [records[0]["seq"]]
        assert (await audit.verify())[1] is None
    finally:
        await dbmod.close()
    assert await inspection_cli.run_archive(argparse.Namespace(inspection="NOPE/1", out=out), db) == 2
