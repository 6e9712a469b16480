"""One inspection's process record for a disclosure request (依申请公开), as a zip
(``inspectbot inspection archive``): check-ins with time and place (the re-inspection's too), photos, the results and
their findings, the review, notice, objection and follow-up steps, and the audit records that
prove them, with a manifest of every file's SHA-256 and the audit chain's head.

Personal data: phone numbers are redacted everywhere (:func:`domain.archive.redact`), and the
notice code — the firm's key to its notice — is shortened. An audit record is copied exactly
(its ``hash`` recomputes from it: ``verify_records``) unless redaction changed its data; then it
says so (``"redacted": true``) and keeps its stored ``hash`` and ``prev_hash``, which
``inspectbot audit verify`` proves against the live chain by ``seq``.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from datetime import datetime
from pathlib import Path

from domain.archive import redact, redact_code
from domain.audit import Entry, entry_hash
from domain.errors import ServiceError
from domain.inputs import number
from models.audit import AuditRecord
from models.draws import Assignment, Draw, Inspection
from models.onsite import CheckIn, Correction, Finding, Photo, PhotoStatus, Result
from models.publication import Notice, Objection, Publication, Rectification, Review

FORMAT = "inspectbot/inspection-archive/v1"


class ArchiveError(ServiceError):
    """Refused; ``code`` names a text of texts/results.j2 (``archive_error``)."""


async def find_inspection(ref: str) -> Inspection:
    """An inspection by its row id or as ``DRAW_REF/NO`` (the draw reference and its number)."""
    ref = ref.strip()
    found = None
    if "/" in ref:
        draw_ref, _, no = ref.rpartition("/")
        n = number(no)
        if n is not None:
            found = await Inspection.filter(draw__draw_ref=draw_ref, no=n).first()
    elif (n := number(ref)) is not None:
        found = await Inspection.filter(id=n).first()
    if found is None:
        raise ArchiveError("inspection_not_found", ref=ref[:80])
    return found


def _iso(value) -> str | None:
    return value.isoformat() if value is not None else None


def _json(data) -> bytes:
    return json.dumps(data, ensure_ascii=False, indent=2, sort_keys=True, default=str).encode("utf-8") + b"\n"


async def build_archive(ref: str, data_dir: Path, now: datetime) -> tuple[str, bytes]:
    """``(file name, zip bytes)`` of the inspection ``ref``'s process record."""
    insp = await find_inspection(ref)
    await insp.fetch_related("entity")
    draw = await Draw.get(id=insp.draw_id).prefetch_related("plan")
    assignments = await Assignment.filter(inspection_id=insp.id).order_by("id").prefetch_related("inspector")
    checkins = await CheckIn.filter(inspection_id=insp.id).order_by("at", "id").prefetch_related("inspector")
    photos = await Photo.filter(inspection_id=insp.id).order_by("received_at", "id")
    results = await Result.filter(inspection_id=insp.id).order_by("id")
    result_ids = [r.id for r in results]
    findings = await Finding.filter(result_id__in=result_ids).order_by("result_id", "position")
    corrections = await Correction.filter(original_id__in=result_ids).order_by("id")
    reviews = await Review.filter(inspection_id=insp.id).order_by("id")
    notices = await Notice.filter(inspection_id=insp.id).order_by("id")
    objections = await Objection.filter(inspection_id=insp.id).order_by("id")
    rectifications = await Rectification.filter(inspection_id=insp.id).order_by("id")
    publication = await Publication.filter(inspection_id=insp.id).first()
    files: dict[str, bytes] = {}
    files["inspection.json"] = _json(
        {
            "inspection": insp.id,
            "draw": draw.draw_ref,
            "no": insp.no,
            "plan": {"code": draw.plan.code, "name": draw.plan.name, "departments": list(draw.plan.departments)},
            "entity": {"uscc": insp.entity_key, "name": insp.entity.name, "address": insp.entity.address or ""},
            "window": {"start": _iso(draw.window_start), "end": _iso(draw.window_end)},
            "status": insp.status.value,
            "team": [
                {
                    "seat": a.seat,
                    "inspector": a.inspector.name,
                    "cert_no": a.inspector.cert_no,
                    "status": a.status.value,
                }
                for a in assignments
            ],
            "publication": (
                {
                    "ended_on": _iso(publication.ended_on),
                    "due_on": _iso(publication.due_on),
                    "published_at": _iso(publication.published_at),
                    "result": publication.result_id,
                    "on_time": publication.on_time,
                }
                if publication
                else None
            ),
        }
    )
    files["checkins.json"] = _json(
        [
            {
                "at": _iso(c.at),
                "inspector": c.inspector.name,
                "reinspection": c.rectification_id,  # a re-inspection's check-in: its rectification order
                "latitude": c.latitude,
                "longitude": c.longitude,
                "distance_m": c.distance_m,
                "radius_m": c.radius_m,
                "flagged": c.flagged,
            }
            for c in checkins
        ]
    )
    photo_rows = []
    for p in photos:
        name = None
        if p.status == PhotoStatus.STORED and p.path and (data_dir / p.path).is_file():
            name = "photos/" + Path(p.path).name
            files[name] = (data_dir / p.path).read_bytes()
        photo_rows.append(
            {
                "photo": p.id,
                "received_at": _iso(p.received_at),
                "caption": redact(p.caption),
                "sha256": p.sha256,
                "file": name,
            }
        )
    files["photos.json"] = _json(photo_rows)
    by_result: dict[int, list] = {}
    for f in findings:
        verdict = f.verdict.value if f.verdict else None
        by_result.setdefault(f.result_id, []).append(
            {"position": f.position, "item": f.item_code, "verdict": verdict, "note": redact(f.note)}
        )
    files["findings.json"] = _json(
        [
            {
                "result": r.id,
                "status": r.status.value,
                "supersedes": r.supersedes_id,
                "reinspection": r.reinspection_id,  # a re-inspection's result: its rectification order
                "submitted_at": _iso(r.submitted_at),
                "confirmed_at": _iso(r.confirmed_at),
                "findings": by_result.get(r.id, []),
            }
            for r in results
        ]
    )
    files["steps.json"] = _json(
        {
            "corrections": [
                {
                    "correction": c.id,
                    "original": c.original_id,
                    "replacement": c.replacement_id,
                    "status": c.status.value,
                    "reason": redact(c.reason),
                    "requested_at": _iso(c.requested_at),
                    "decided_at": _iso(c.decided_at),
                }
                for c in corrections
            ],
            "reviews": [
                {
                    "review": r.id,
                    "result": r.result_id,
                    "status": r.status.value,
                    "comment": redact(r.comment),
                    "opened_at": _iso(r.opened_at),
                    "due_at": _iso(r.due_at),
                    "decided_at": _iso(r.decided_at),
                }
                for r in reviews
            ],
            "notices": [
                {
                    "notice": n.id,
                    "code": redact_code(n.code),
                    "result": n.result_id,
                    "issued_on": _iso(n.issued_on),
                    "objection_until": _iso(n.objection_until),
                    "rectify_by": _iso(n.rectify_by),
                    "delivery": n.delivery.value,
                }
                for n in notices
            ],
            "objections": [
                {
                    "objection": o.id,
                    "channel": o.channel,
                    "reason": redact(o.reason),
                    "status": o.status.value,
                    "decision": redact(o.decision),
                    "received_at": _iso(o.received_at),
                    "decided_at": _iso(o.decided_at),
                }
                for o in objections
            ],
            "rectifications": [
                {
                    "rectification": r.id,
                    "due_on": _iso(r.due_on),
                    "status": r.status.value,
                    "note": redact(r.note),
                    "reminded_at": _iso(r.reminded_at),
                    "assigned_at": _iso(r.assigned_at),
                    "decided_at": _iso(r.decided_at),
                    "referred_at": _iso(r.referred_at),
                }
                for r in rectifications
            ],
        }
    )
    subjects = [f"inspection:{insp.id}"]
    for prefix, rows in (
        ("assignment", assignments),
        ("result", results),
        ("correction", corrections),
        ("photo", photos),
        ("review", reviews),
        ("notice", notices),
        ("objection", objections),
        ("rectification", rectifications),
    ):
        subjects += [f"{prefix}:{r.id}" for r in rows]
    records = (
        await AuditRecord.filter(subject__in=subjects)
        .order_by("seq")
        .values("seq", "at", "actor", "action", "subject", "data", "prev_hash", "hash")
    )
    audit_rows = []
    for r in records:
        clean = json.loads(redact(json.dumps(r["data"], ensure_ascii=False)))
        row = {**r, "data": clean}
        if clean != r["data"]:
            row["redacted"] = True
        audit_rows.append(row)
    files["audit.json"] = _json(audit_rows)
    head = await AuditRecord.all().order_by("-seq").first().values("seq", "hash")
    manifest = {
        "format": FORMAT,
        "inspection": insp.id,
        "draw": draw.draw_ref,
        "no": insp.no,
        "generated_at": now.isoformat(timespec="seconds"),
        "files": {name: hashlib.sha256(data).hexdigest() for name, data in sorted(files.items())},
        "audit": {
            "records": len(audit_rows),
            "seqs": [r["seq"] for r in audit_rows],
            "redacted": [r["seq"] for r in audit_rows if r.get("redacted")],
            "chain_head": head,
            "verify": "inspectbot audit verify",
        },
    }
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("manifest.json", _json(manifest))
        for name, data in sorted(files.items()):
            z.writestr(name, data)
    safe = draw.draw_ref.replace("/", "_")
    return f"inspection-{safe}-{insp.no}.zip", out.getvalue()


def verify_records(audit_rows: list[dict]) -> list[int]:
    """The ``seq`` of every unredacted record in an archive whose hash does not recompute."""
    bad = []
    for r in audit_rows:
        if r.get("redacted"):
            continue
        fields = {k: r[k] for k in ("seq", "at", "actor", "action", "subject", "data", "prev_hash")}
        if entry_hash(Entry(**fields)) != r["hash"]:
            bad.append(r["seq"])
    return bad
