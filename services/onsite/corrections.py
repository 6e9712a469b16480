"""Corrections: a submitted result is never edited. :func:`request_correction` (the lead, with
a reason) opens a new draft that supersedes it once a coordinator of the plan's departments
approves (:func:`decide_correction`); the old result is kept as ``superseded``. On the audit
chain: ``correction.opened`` / ``.requested`` / ``.approved`` / ``.rejected``."""

from __future__ import annotations

from datetime import datetime, tzinfo

from core.clock import utc as _utc
from core.db import transaction as _transaction
from domain.onsite import REASON_LIMIT, Approve, Findings, Reject, ResultStatus, Supersede, apply
from models.draws import Assignment, Inspection
from models.messaging import ChatBinding, RecipientKind, Role
from models.onsite import Correction, CorrectionStatus, Finding, Result
from services import audit
from services.alert_cards import CORRECTION, close_cards
from services.alerts import raise_alert
from services.identity import inspectors_with_chat
from services.onsite.results import (
    OPEN_CORRECTION,
    _ask_to_confirm,
    _findings,
    _is_lead,
    _member,
    _state,
    _view,
    _write,
    team_of,
)
from services.onsite.review import decide_review, may_review_at_once, open_review
from services.onsite.shared import SHANGHAI, OnsiteError, _departments
from services.outbox import Message, enqueue


async def _record_of(result_id: int, inspector_id: int, conn) -> tuple[Result, list[Assignment]]:
    """A result of record the acting lead may correct (else a refusal)."""
    result = await Result.filter(id=result_id).using_db(conn).select_for_update().first()
    if result is None:
        raise OnsiteError("result_not_found", id=result_id)
    team = await team_of(result, conn)  # a re-inspection result: its re-inspector
    if _member(team, inspector_id) is None:
        raise OnsiteError("result_not_found", id=result_id)
    if not _is_lead(team, inspector_id):
        raise OnsiteError("correction_lead_only", lead=team[0].inspector.name)
    if not ResultStatus(result.status).effective:
        raise OnsiteError("not_correctable", status=ResultStatus(result.status).value)
    if await Correction.filter(original_id=result.id, status__in=list(OPEN_CORRECTION)).using_db(conn).exists():
        raise OnsiteError("correction_open")
    return result, team


async def begin_correction(inspector_id: int, result_id: int, *, now: datetime, conn=None) -> dict:
    """Check that the lead may correct this result (the reason is asked next)."""
    async with _transaction(conn) as c:
        result, team = await _record_of(result_id, inspector_id, c)
        return await _view(result, team, inspector_id, c)


async def request_correction(inspector_id: int, result_id: int, reason: str, *, now: datetime, conn=None) -> dict:
    """Open a correction: a new draft prefilled from the result of record, at its summary, to
    be changed by the lead and approved by a coordinator. Returns the draft's view."""
    now = _utc(now)
    reason = reason.strip()
    if not reason:
        raise OnsiteError("reason_empty")
    if len(reason) > REASON_LIMIT:
        raise OnsiteError("reason_too_long", limit=REASON_LIMIT)
    async with _transaction(conn) as c:
        original, team = await _record_of(result_id, inspector_id, c)
        rows = await _findings(original.id, c)
        draft = Findings.new([f.item_code for f in rows], prefill=_state(original, rows))
        replacement = await Result.create(
            inspection_id=original.inspection_id,
            supersedes_id=original.id,
            reinspection_id=original.reinspection_id,  # a corrected re-inspection is still one
            status=ResultStatus.DRAFT,
            step=draft.step.value,
            cursor=draft.cursor,
            created_by_id=inspector_id,
            created_at=now,
            updated_at=now,
            using_db=c,
        )
        await Finding.bulk_create(
            [
                Finding(
                    result_id=replacement.id,
                    position=f.position,
                    item_code=f.item_code,
                    verdict=f.verdict,
                    note=f.note,
                    serious=f.serious,
                )
                for f in rows
            ],
            using_db=c,
        )
        corr = await Correction.create(
            original_id=original.id,
            replacement_id=replacement.id,
            reason=reason,
            status=CorrectionStatus.DRAFTING,
            requested_by_id=inspector_id,
            opened_at=now,
            using_db=c,
        )
        await audit.append(
            f"inspector:{inspector_id}",
            "correction.opened",
            f"result:{original.id}",
            {"correction": corr.id, "replacement": replacement.id, "reason": reason},
            now,
            connection=c,
        )
        return await _view(replacement, team, inspector_id, c)


def _changes(before: dict, after: dict) -> list[dict]:
    return [
        {
            "no": b["no"],
            "name": b["name"],
            "old": b["verdict"],
            "new": a["verdict"],
            "old_note": b["note"],
            "new_note": a["note"],
        }
        for b, a in zip(before["items"], after["items"])
        if (b["verdict"], b["note"]) != (a["verdict"], a["note"])
    ]


async def _correction_requested(
    replacement: Result, state: Findings, team: list[Assignment], now: datetime, conn
) -> None:
    """The lead sent the corrected findings: the plan's coordinators decide."""
    corr = await Correction.filter(replacement_id=replacement.id).using_db(conn).first()
    await Correction.filter(id=corr.id).using_db(conn).update(status=CorrectionStatus.REQUESTED, requested_at=now)
    lead_id = team[0].inspector_id
    after = await _view(replacement, team, lead_id, conn)
    before = await _view(await Result.get(id=corr.original_id).using_db(conn), team, lead_id, conn)
    changes = _changes(before, after)
    await audit.append(
        f"inspector:{lead_id}",
        "correction.requested",
        f"correction:{corr.id}",
        {"original": corr.original_id, "replacement": replacement.id, "reason": corr.reason, "changes": changes},
        now,
        connection=conn,
    )
    insp = await Inspection.filter(id=replacement.inspection_id).using_db(conn).prefetch_related("draw").first()
    context = {
        "correction": corr.id,
        "no": after["no"],
        "plan": after["plan"],
        "draw_ref": after["draw_ref"],
        "entity": after["entity"],
        "lead": after["lead"],
        "reason": corr.reason,
        "changes": changes,
        "keyboard": ["correction_decision", corr.id],
    }
    await raise_alert(
        f"correction:{corr.id}",
        "correction_requested.j2",
        context,
        await _departments(insp.draw, conn),
        now,
        connection=conn,
    )


def _may_decide(binding: ChatBinding, departments: set[str]) -> bool:
    if binding.role == Role.ADMIN:
        return True
    return binding.role == Role.COORDINATOR and bool(departments & set(binding.departments))


async def decide_correction(
    binding: ChatBinding,
    correction_id: int,
    approve: bool,
    *,
    now: datetime,
    locale: str = "zh-CN",
    zone: tzinfo = SHANGHAI,
    sign: str | None = None,
    base_url: str = "",
    conn=None,
) -> tuple[str, dict]:
    """A coordinator of the plan's departments (or an admin) approves or rejects a requested
    correction. Approved: the new result becomes the result of record (submitted, to be
    confirmed by another member) and the old one is superseded, kept as it was. The new result is
    reviewed; when the correction answers a returned review and the approver may review it, the
    approval is that review too (``reviewed`` in the answer: published at once, one step not two;
    ``sign``/``base_url``/``zone`` are for the firm's notice)."""
    now = _utc(now)
    async with _transaction(conn) as c:
        corr = await Correction.filter(id=correction_id).using_db(c).select_for_update().first()
        if corr is None:
            raise OnsiteError("correction_not_found", id=correction_id)
        replacement = await Result.filter(id=corr.replacement_id).using_db(c).select_for_update().first()
        original = await Result.filter(id=corr.original_id).using_db(c).select_for_update().first()
        insp = await Inspection.filter(id=replacement.inspection_id).using_db(c).prefetch_related("draw").first()
        if not _may_decide(binding, await _departments(insp.draw, c)):
            raise OnsiteError("correction_not_found", id=correction_id)
        team = await team_of(replacement, c)
        lead_id = corr.requested_by_id
        shown = {"correction": corr.id, "no": insp.no, "draw_ref": insp.draw.draw_ref, "reason": corr.reason}
        if corr.status != CorrectionStatus.REQUESTED:
            return "already_decided", {**shown, "status": corr.status.value}
        new_rows = await _findings(replacement.id, c)
        out = apply(_state(replacement, new_rows), Approve() if approve else Reject())
        await _write(replacement, new_rows, _state(replacement, new_rows), out, lead_id, now, c)
        actor = f"binding:{binding.id}"
        status = CorrectionStatus.APPROVED if approve else CorrectionStatus.REJECTED
        await Correction.filter(id=corr.id).using_db(c).update(status=status, decided_by_id=binding.id, decided_at=now)
        await close_cards(CORRECTION, corr.id, status.value, f"{binding.role.value}:{binding.id}", now, c)
        if approve:
            old_rows = await _findings(original.id, c)
            superseded = apply(_state(original, old_rows), Supersede())
            await _write(original, old_rows, _state(original, old_rows), superseded, lead_id, now, c)
            await Result.filter(id=replacement.id).using_db(c).update(submitted_by_id=lead_id, submitted_at=now)
            replacement.submitted_by_id = lead_id
        await audit.append(
            actor,
            f"correction.{status.value}",
            f"correction:{corr.id}",
            {"original": original.id, "replacement": replacement.id, "superseded": original.id if approve else None},
            now,
            connection=c,
        )
        view = await _view(replacement, team, lead_id, c)
        await enqueue(
            [
                Message(
                    dedupe_key=f"correction:{corr.id}:decided",
                    recipient_kind=RecipientKind.INSPECTOR,
                    recipient_id=lead_id,
                    template="correction_decided.j2",
                    context={**shown, "approved": approve, "result": view},
                    locale=locale,
                )
            ],
            now,
            connection=c,
        )
        reviewed = False
        if approve:
            await _ask_to_confirm(replacement, team, lead_id, view, now, locale, c)
            at_once = await may_review_at_once(binding, replacement, {a.inspector_id for a in team}, c)
            opened = await open_review(replacement, now, zone=zone, ask=not at_once, conn=c)
            if at_once:
                code, _ = await decide_review(
                    binding, opened.id, True, now=now, zone=zone, locale=locale, sign=sign, base_url=base_url, conn=c
                )
                reviewed = code == "approved"
        # who the decision reaches: the lead, and on approval the members asked to confirm
        concerned = [a for a in team if approve or a.inspector_id == lead_id]
        reachable = await inspectors_with_chat([a.inspector_id for a in concerned], c)
        untold = [a.inspector.name for a in concerned if a.inspector_id not in reachable]
        return status.value, {**shown, "status": status.value, "untold": untold, "reviewed": reviewed}
