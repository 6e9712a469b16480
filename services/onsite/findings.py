"""The findings conversation (:func:`open_findings`, :func:`act`) on the pure state machine
``domain.onsite``: the team lead (lowest seat holding the team) records and submits, another
member confirms. Submitting marks the inspection and its assignments done and enters the
inspection into the survey pool (``services.surveys.enter.enter_pool``), in the same
transaction. On the audit chain: ``result.drafted``, ``finding.recorded``,
``result.submitted``, ``result.confirmed``."""

from __future__ import annotations

from datetime import datetime, tzinfo

from core.clock import utc as _utc
from core.db import transaction as _transaction
from domain.onsite import Confirm, Edit, Findings, Note, Pick, ResultStatus, Skip, Step, Submit, Verdict, apply
from domain.refs import inspection_ref
from domain.sealing import draw_is_sealed
from models.draws import Assignment, AssignmentStatus, Draw, Firing, Inspection, InspectionStatus
from models.messaging import RecipientKind
from models.onsite import Finding, Result
from models.plans import Plan
from models.publication import Rectification, RectificationStatus
from services import audit
from services.onsite.corrections import _correction_requested
from services.onsite.followup import failed_items
from services.onsite.lead import has_chat
from services.onsite.results import (
    _ask_to_confirm,
    _findings,
    _is_lead,
    _member,
    _state,
    _team,
    _view,
    _write,
    team_of,
)
from services.onsite.review import open_review
from services.onsite.shared import CAN_WORK, SHANGHAI, Acted, Choice, OnsiteError, _pick_current
from services.outbox import Message, enqueue
from services.surveys.enter import enter_pool

LIVE = (ResultStatus.DRAFT, ResultStatus.PENDING, ResultStatus.SUBMITTED, ResultStatus.CONFIRMED)


VERDICT_ACTIONS = {v.value: v for v in Verdict}
SERIOUS = "serious"  # the 「严重不合格」 button: 不合格 and serious (Finding.serious)


# --- loading and showing -----------------------------------------------------------------------


async def _plan_items(draw: Draw, conn) -> list[str]:
    """The plan's items as they were when the firing was announced."""
    firing = await Firing.filter(id=draw.firing_id).using_db(conn).first()
    spec = firing.params if firing and firing.params else None
    if not spec:
        plan = await Plan.filter(id=draw.plan_id).using_db(conn).first()
        spec = plan.spec if plan else {}
    return [str(code) for code in spec.get("items", [])]


async def _owned(inspector_id: int, assignment_id: int, conn) -> Assignment:
    asg = await (
        Assignment.filter(id=assignment_id, inspector_id=inspector_id)
        .using_db(conn)
        .prefetch_related("draw__plan", "inspection__entity")
        .first()
    )
    if asg is None:
        raise OnsiteError("asg_not_found")
    return asg


async def open_findings(
    inspector_id: int, assignment_id: int | None = None, *, now: datetime, conn=None
) -> tuple[str, dict] | Choice:
    """Start or resume the findings of an inspection, or show its result of record.

    Returns ``(outcome, view)``: ``findings_started`` / ``findings_resumed`` (a draft, for the
    lead), ``result_shown`` (submitted, confirmed, or a correction pending); or a Choice."""
    now = _utc(now)
    async with _transaction(conn) as c:
        if assignment_id is None:
            asg = await _pick_current(inspector_id, now, None, c)
            if isinstance(asg, Choice):
                return asg
        else:
            asg = await _owned(inspector_id, assignment_id, c)
            if asg.status not in CAN_WORK:
                raise OnsiteError(
                    "not_accepted", ref=inspection_ref(asg.draw.draw_ref, asg.inspection.no), status=asg.status.value
                )
            if draw_is_sealed(asg.draw, now):
                raise OnsiteError("not_started", ref=inspection_ref(asg.draw.draw_ref, asg.inspection.no))
        # one writer at a time per inspection: two leads' taps cannot make two drafts
        await Inspection.filter(id=asg.inspection_id).using_db(c).select_for_update().first()
        team = await _team(asg.inspection_id, c)
        live = (
            await Result.filter(inspection_id=asg.inspection_id, status__in=list(LIVE), reinspection_id=None)
            .using_db(c)
            .order_by("-id")
        )
        draft = next((r for r in live if r.status == ResultStatus.DRAFT), None)
        shown = next((r for r in live if r.status != ResultStatus.DRAFT), None)
        if draft is not None and _is_lead(team, inspector_id):
            return "findings_resumed", await _view(draft, team, inspector_id, c)
        if shown is not None:
            return "result_shown", await _view(shown, team, inspector_id, c)
        if now < asg.draw.window_start:
            raise OnsiteError("window_not_open", ref=inspection_ref(asg.draw.draw_ref, asg.inspection.no))
        if not _is_lead(team, inspector_id):
            lead = team[0].inspector_id if team else None
            raise OnsiteError(
                "lead_records",
                lead=team[0].inspector.name if team else "",
                # the lead has no chat: the member is offered the lead (services.onsite.lead)
                handover=lead is not None and asg.status == AssignmentStatus.ACCEPTED and not await has_chat(lead, c),
                assignment=asg.id,  # for the offer's button only, never shown
            )
        if asg.status != AssignmentStatus.ACCEPTED:
            raise OnsiteError(
                "not_accepted", ref=inspection_ref(asg.draw.draw_ref, asg.inspection.no), status=asg.status.value
            )
        items = await _plan_items(asg.draw, c)
        if not items:
            raise OnsiteError("no_items")
        result = await _draft(asg.inspection_id, items, inspector_id, {"no": asg.inspection.no}, now, c)
        return "findings_started", await _view(result, team, inspector_id, c)


async def _draft(inspection_id: int, items: list[str], inspector_id: int, about: dict, now: datetime, conn) -> Result:
    """A new draft over ``items`` at its first verdict, on the audit chain (``about``: what else the
    record says; a ``rectification`` in it makes it a re-inspection result)."""
    result = await Result.create(
        inspection_id=inspection_id,
        reinspection_id=about.get("rectification"),
        status=ResultStatus.DRAFT,
        step=Step.VERDICT.value,
        cursor=0,
        created_by_id=inspector_id,
        created_at=now,
        updated_at=now,
        using_db=conn,
    )
    await Finding.bulk_create(
        [Finding(result_id=result.id, position=i, item_code=code) for i, code in enumerate(items)], using_db=conn
    )
    await audit.append(
        f"inspector:{inspector_id}",
        "result.drafted",
        f"result:{result.id}",
        {"inspection": inspection_id, **about, "items": items},
        now,
        connection=conn,
    )
    return result


async def open_reinspection(inspector_id: int, rectification_id: int, *, now: datetime, conn=None) -> tuple[str, dict]:
    """Start or resume the re-inspection (复查) of a rectification order assigned to the inspector:
    a re-inspection result (``Result.reinspection_id``) over the items found 不合格, drafted in this
    same conversation by the re-inspector (its lead, services.onsite.results.team_of), submitted and
    reviewed like any result. Once submitted, or decided, it is shown. Outcomes as :func:`open_findings`."""
    now = _utc(now)
    async with _transaction(conn) as c:
        row = await Rectification.filter(id=rectification_id).using_db(c).select_for_update().first()
        if row is None or row.inspector_id != inspector_id:
            raise OnsiteError("recheck_not_found", ref="")
        mine = await Result.filter(reinspection_id=row.id).using_db(c).order_by("-id")
        live = [r for r in mine if r.status in LIVE]
        shown = live[0] if live else (mine[0] if mine else None)
        if shown is not None:
            team = await team_of(shown, c)
            outcome = "findings_resumed" if shown.status == ResultStatus.DRAFT else "result_shown"
            return outcome, await _view(shown, team, inspector_id, c)
        if row.status != RectificationStatus.REINSPECTING:
            raise OnsiteError("recheck_not_found", ref="")
        items = await failed_items(row, c)
        if not items:
            raise OnsiteError("no_items")
        result = await _draft(row.inspection_id, items, inspector_id, {"rectification": row.id}, now, c)
        return "findings_started", await _view(result, await team_of(result, c), inspector_id, c)


# --- acting ------------------------------------------------------------------------------------


def _event(kind: str, index: int | None, text: str, by_lead: bool):
    if kind in VERDICT_ACTIONS and index is not None:
        return Pick(index, VERDICT_ACTIONS[kind])
    if kind == SERIOUS and index is not None:
        return Pick(index, Verdict.FAIL)  # 不合格, marked serious (:func:`_mark_serious`)
    if kind == "skip" and index is not None:
        return Skip(index)
    if kind == "edit" and index is not None:
        return Edit(index)
    if kind == "note":
        return Note(text)
    if kind == "submit":
        return Submit(by_lead)
    if kind == "confirm":
        return Confirm(by_lead)
    raise OnsiteError("stale_button")


async def act(
    inspector_id: int,
    result_id: int,
    kind: str,
    *,
    index: int | None = None,
    text: str = "",
    now: datetime,
    zone: tzinfo = SHANGHAI,
    locale: str = "zh-CN",
    sign: str | None = None,
    conn=None,
) -> Acted:
    """One step of the findings: a verdict button (``pass``/``fail``/``na``), ``skip``,
    ``edit``, a ``note`` (free text), ``submit`` or ``confirm``. Refusals come back as codes
    with the state unchanged (the caller re-shows where the conversation stands)."""
    now = _utc(now)
    async with _transaction(conn) as c:
        result = await Result.filter(id=result_id).using_db(c).select_for_update().first()
        if result is None:
            raise OnsiteError("result_not_found", id=result_id)
        team = await team_of(result, c)  # a re-inspection result's: its re-inspector
        if _member(team, inspector_id) is None:
            raise OnsiteError("result_not_found", id=result_id)  # not on the team: as if missing
        lead = _is_lead(team, inspector_id)
        rows = await _findings(result.id, c)
        state = _state(result, rows)
        event = _event(kind, index, text, lead)
        if not lead and isinstance(event, (Pick, Note, Skip, Edit)) and state.status == ResultStatus.DRAFT:
            return Acted("not_lead", index, await _view(result, team, inspector_id, c))
        if (
            isinstance(event, Submit)
            and state.correction
            and state.status == ResultStatus.DRAFT
            and await _unchanged(result, state, c)
        ):
            return Acted("no_changes", None, await _view(result, team, inspector_id, c))
        out = apply(state, event)
        survey = ""
        if isinstance(event, Pick) and out.code in ("recorded", "changed", "same"):
            await _mark_serious(result, rows, event.index, kind == SERIOUS, inspector_id, now, c)
        if out.changed:
            await _write(result, rows, state, out, inspector_id, now, c)
            if out.code == "submitted":
                survey = await _submitted(result, team, inspector_id, now, zone, locale, sign, c)
            elif out.code == "sent_for_approval":
                await _correction_requested(result, out.state, team, now, c)
            elif out.code == "confirmed":
                await _confirmed(result, team, inspector_id, now, locale, c)
        return Acted(out.code, out.index, await _view(result, team, inspector_id, c), survey)


async def _mark_serious(
    result: Result, rows: list[Finding], index: int, serious: bool, actor: int, now: datetime, conn
) -> None:
    """A verdict picked for item ``index``: 「严重不合格」 marks it serious, any other verdict unmarks it
    (the domain state knows only 不合格; pressing 「严重不合格」 on an item already 不合格 marks it)."""
    row = next((f for f in rows if f.position == index), None)
    if row is None or row.serious == serious:
        return
    await Finding.filter(id=row.id).using_db(conn).update(serious=serious)
    row.serious = serious
    await audit.append(
        f"inspector:{actor}",
        "finding.serious",
        f"result:{result.id}",
        {"item": row.item_code, "position": row.position, "serious": serious},
        now,
        connection=conn,
    )


async def _unchanged(result: Result, state: Findings, conn) -> bool:
    """A correction that changes nothing is not sent to the coordinators."""
    original = await Result.filter(id=result.supersedes_id).using_db(conn).first()
    if original is None:
        return False
    before = _state(original, await _findings(original.id, conn))
    return (before.verdicts, before.notes) == (state.verdicts, state.notes)


def _verdict_map(view: dict) -> dict:
    return {i["code"]: i["verdict"] for i in view["items"]}


async def _submitted(
    result: Result,
    team: list[Assignment],
    lead_id: int,
    now: datetime,
    zone: tzinfo,
    locale: str,
    sign: str | None,
    conn,
) -> str:
    """The lead submitted: the inspection and its assignments are done, the inspection enters
    the survey pool, and the other members are asked to confirm. A re-inspection result is only
    recorded and sent to review (its inspection was done and surveyed already)."""
    insp_id = result.inspection_id
    again = result.reinspection_id is not None
    if not again:
        await (
            Inspection.filter(id=insp_id)
            .exclude(status=InspectionStatus.CANCELLED)
            .using_db(conn)
            .update(status=InspectionStatus.DONE)
        )
        await (
            Assignment.filter(inspection_id=insp_id, status__in=[AssignmentStatus.SENT, AssignmentStatus.ACCEPTED])
            .using_db(conn)
            .update(status=AssignmentStatus.DONE)
        )
    view = await _view(result, team, lead_id, conn)
    about = {"rectification": result.reinspection_id} if again else {"no": view["no"], "draw": view["draw_ref"]}
    await audit.append(
        f"inspector:{lead_id}",
        "result.submitted",
        f"result:{result.id}",
        {"inspection": insp_id, **about, "findings": _verdict_map(view), "supersedes": result.supersedes_id},
        now,
        connection=conn,
    )
    if again:
        await open_review(result, now, zone=zone, conn=conn)
        return ""
    await _ask_to_confirm(result, team, lead_id, view, now, locale, conn)
    await open_review(result, now, zone=zone, conn=conn)
    return await enter_pool(insp_id, now, zone=zone, locale=locale, sign=sign, connection=conn)


async def _confirmed(result: Result, team: list[Assignment], member_id: int, now: datetime, locale: str, conn) -> None:
    view = await _view(result, team, member_id, conn)
    await audit.append(
        f"inspector:{member_id}",
        "result.confirmed",
        f"result:{result.id}",
        {"inspection": result.inspection_id, "no": view["no"], "draw": view["draw_ref"]},
        now,
        connection=conn,
    )
    if result.submitted_by_id:
        await enqueue(
            [
                Message(
                    dedupe_key=f"result:{result.id}:confirmed",
                    recipient_kind=RecipientKind.INSPECTOR,
                    recipient_id=result.submitted_by_id,
                    template="result_confirmed.j2",
                    context={**view, "is_lead": True},
                    locale=locale,
                )
            ],
            now,
            connection=conn,
        )
