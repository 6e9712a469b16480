"""On site: check-in, photos, the findings conversation, corrections.

Each use case is one transaction (the caller's when it passes ``conn``, else its own); the
clock's ``now`` is passed in. Every state change is appended to the audit chain in that
transaction: ``checkin.recorded``, ``photo.received`` / ``photo.stored`` / ``photo.failed``,
``result.drafted``, ``finding.recorded``, ``result.submitted``, ``result.confirmed``,
``correction.opened`` / ``.requested`` / ``.approved`` / ``.rejected``.

* Which inspection: the inspector's *accepted* assignments whose window contains now (a flight
  inspection only once revealed). Several → the caller gets a :class:`Choice` and asks.
* :func:`checkin` records the position and its distance to the entity; farther than the
  radius → flagged and the plan's coordinators alerted, never refused.
* :func:`photo` records the photo at once (``pending``); :func:`fetch_pending`, run by the
  ``photos`` sweep outside any inbound transaction, downloads it through the Telegram channel
  and stores it by SHA-256 under the data directory.
* The findings (:func:`open_findings`, :func:`act`) run the pure state machine
  ``domain.onsite``; the team lead (lowest seat holding the team) records and submits, another
  member confirms. Submitting marks the inspection and its assignments done and enters the
  inspection into the survey pool (``services.surveys.enter_pool``), in the same transaction.
* A submitted result is never edited: :func:`request_correction` (the lead, with a reason)
  opens a new draft that supersedes it once a coordinator of the plan's departments approves
  (:func:`decide_correction`); the old result is kept as ``superseded``.

Someone else's inspection, result or correction is reported exactly like a missing one.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo

from tortoise.transactions import in_transaction

from core.channel import SendError
from core.clock import utc as _utc
from core.db import transaction as _transaction
from domain.errors import ServiceError
from domain.onsite import (
    REASON_LIMIT,
    Approve,
    Confirm,
    Edit,
    Findings,
    Note,
    Outcome,
    Pick,
    Reject,
    ResultStatus,
    Skip,
    Step,
    Submit,
    Supersede,
    Verdict,
    apply,
    checkin_flagged,
    haversine_m,
    image_extension,
    photo_path,
    valid_position,
)
from domain.sealing import draw_is_sealed
from models.directory import Inspector, Item
from models.draws import HOLDING_SEAT, Assignment, AssignmentStatus, Draw, Firing, Inspection, InspectionStatus
from models.messaging import ChatBinding, RecipientKind, Role
from models.onsite import CheckIn, Correction, CorrectionStatus, Finding, Photo, PhotoStatus, Result
from models.plans import Plan
from scheduler import sweep
from services import audit
from services.alerts import raise_alert
from services.outbox import Message, enqueue

SHANGHAI = ZoneInfo("Asia/Shanghai")
CAN_WORK = (AssignmentStatus.ACCEPTED, AssignmentStatus.DONE)
LIVE = (ResultStatus.DRAFT, ResultStatus.PENDING, ResultStatus.SUBMITTED, ResultStatus.CONFIRMED)
OPEN_CORRECTION = (CorrectionStatus.DRAFTING, CorrectionStatus.REQUESTED)
VERDICT_ACTIONS = {v.value: v for v in Verdict}
FETCH_BATCH = 50
MAX_FETCH_ATTEMPTS = 8


class OnsiteError(ServiceError):
    """Refused; ``code`` names a case of messages/onsite_refused.j2."""


@dataclass(frozen=True)
class Choice:
    """Several inspections fit: ask which (each ``{"assignment", "no", "plan", "entity"}``)."""

    choices: list[dict]


@dataclass(frozen=True)
class Acted:
    code: str  # domain.onsite outcome code
    index: int | None  # the item it was about
    view: dict
    survey: str = ""  # services.surveys.enter_pool's outcome on a first submission (never shown to inspectors)


# --- which inspection ----------------------------------------------------------------------------


def _under_way(draw: Draw, now: datetime) -> bool:
    return draw.window_start <= now <= draw.window_end and not draw_is_sealed(draw, now)


def _choice(asg: Assignment) -> dict:
    return {
        "assignment": asg.id,
        "no": asg.inspection.no,
        "plan": asg.draw.plan.name,
        "entity": asg.inspection.entity.name,
    }


async def current(inspector_id: int, now: datetime, conn=None) -> list[Assignment]:
    """The inspector's accepted assignments under way now (window open, flight revealed)."""
    rows = await (
        Assignment.filter(inspector_id=inspector_id, status=AssignmentStatus.ACCEPTED)
        .using_db(conn)
        .order_by("id")
        .prefetch_related("draw__plan", "inspection__entity")
    )
    return [a for a in rows if _under_way(a.draw, now) and a.inspection.status != InspectionStatus.CANCELLED]


async def _pick_current(inspector_id: int, now: datetime, assignment_id: int | None, conn) -> Assignment | Choice:
    rows = await current(inspector_id, now, conn)
    if assignment_id is not None:
        found = next((a for a in rows if a.id == assignment_id), None)
        if found is None:
            raise OnsiteError("not_under_way", id=assignment_id)
        return found
    if not rows:
        raise OnsiteError("no_current_inspection")
    return rows[0] if len(rows) == 1 else Choice([_choice(a) for a in rows])


async def _departments(draw: Draw, conn) -> set[str]:
    plan = await Plan.filter(id=draw.plan_id).using_db(conn).first()
    return set(plan.departments) if plan else set()


# --- check-in ------------------------------------------------------------------------------------


async def checkin(
    inspector_id: int,
    lat: float,
    lon: float,
    *,
    now: datetime,
    radius_m: int,
    assignment_id: int | None = None,
    conn=None,
) -> dict | Choice:
    """Record a check-in at (lat, lon) for the inspection under way (or ``assignment_id``).
    Returns what the inspector is told, or a :class:`Choice`."""
    if not valid_position(lat, lon):
        raise OnsiteError("bad_location")
    now = _utc(now)
    async with _transaction(conn) as c:
        asg = await _pick_current(inspector_id, now, assignment_id, c)
        if isinstance(asg, Choice):
            return asg
        insp, entity = asg.inspection, asg.inspection.entity
        distance = haversine_m(lat, lon, entity.lat, entity.lon) if valid_position(entity.lat, entity.lon) else None
        flagged = checkin_flagged(distance, radius_m)
        row = await CheckIn.create(
            assignment_id=asg.id,
            inspection_id=insp.id,
            inspector_id=inspector_id,
            latitude=lat,
            longitude=lon,
            distance_m=distance,
            radius_m=radius_m,
            flagged=flagged,
            at=now,
            using_db=c,
        )
        shown = {
            **_choice(asg),
            "checkin": row.id,
            "distance": None if distance is None else round(distance),
            "radius": radius_m,
            "flagged": flagged,
            "count": await CheckIn.filter(assignment_id=asg.id).using_db(c).count(),
        }
        await audit.append(
            f"inspector:{inspector_id}",
            "checkin.recorded",
            f"inspection:{insp.id}",
            {
                "checkin": row.id,
                "assignment": asg.id,
                "lat": lat,
                "lon": lon,
                "distance_m": shown["distance"],
                "radius_m": radius_m,
                "flagged": flagged,
            },
            now,
            connection=c,
        )
        if flagged:
            inspector = await Inspector.get(id=inspector_id).using_db(c)
            await raise_alert(
                f"checkin:{row.id}",
                "checkin_flagged.j2",
                {**shown, "inspector": inspector.name, "cert_no": inspector.cert_no, "draw_ref": asg.draw.draw_ref},
                await _departments(asg.draw, c),
                now,
                connection=c,
            )
        return shown


# --- photos --------------------------------------------------------------------------------------


async def photo(
    inspector_id: int,
    file_id: str,
    *,
    now: datetime,
    caption: str = "",
    assignment_id: int | None = None,
    inspection_id: int | None = None,
    conn=None,
) -> dict | Choice:
    """Record a photo (fetch pending) on the inspection under way: the one named, else the only
    one, else the one last checked in to; otherwise a :class:`Choice`."""
    if not file_id:
        raise OnsiteError("bad_photo")
    now = _utc(now)
    async with _transaction(conn) as c:
        asg = await _photo_target(inspector_id, now, assignment_id, inspection_id, c)
        if isinstance(asg, Choice):
            return asg
        row = await Photo.create(
            inspection_id=asg.inspection_id,
            inspector_id=inspector_id,
            file_id=file_id[:255],
            caption=caption[:1024],
            status=PhotoStatus.PENDING,
            next_attempt_at=now,
            received_at=now,
            using_db=c,
        )
        await audit.append(
            f"inspector:{inspector_id}",
            "photo.received",
            f"inspection:{asg.inspection_id}",
            {"photo": row.id, "assignment": asg.id},
            now,
            connection=c,
        )
        return {
            **_choice(asg),
            "photo": row.id,
            "count": await Photo.filter(inspection_id=asg.inspection_id).using_db(c).count(),
        }


async def _photo_target(
    inspector_id: int, now: datetime, assignment_id: int | None, inspection_id: int | None, conn
) -> Assignment | Choice:
    rows = await current(inspector_id, now, conn)
    if assignment_id is not None or inspection_id is not None:
        found = next((a for a in rows if a.id == assignment_id or a.inspection_id == inspection_id), None)
        if found is not None:
            return found
        if assignment_id is not None:
            raise OnsiteError("not_under_way", id=assignment_id)
    if not rows:
        raise OnsiteError("no_current_inspection")
    if len(rows) == 1:
        return rows[0]
    last = await (
        CheckIn.filter(inspector_id=inspector_id, assignment_id__in=[a.id for a in rows])
        .using_db(conn)
        .order_by("-at", "-id")
        .first()
    )
    if last is not None:
        return next(a for a in rows if a.id == last.assignment_id)
    return Choice([_choice(a) for a in rows])


def _store_file(path: Path, data: bytes) -> None:
    """Write once, atomically: a reader never sees half a photo; the same content is stored once."""
    if path.exists() and path.stat().st_size == len(data):
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".part-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(30 * 2**attempts, 3600))


async def fetch_pending(
    fetch: Callable[[str], Awaitable[bytes]],
    data_dir: Path,
    now: datetime,
    *,
    limit: int = FETCH_BATCH,
    locale: str = "zh-CN",
) -> dict[str, int]:
    """Download pending photos and store them by SHA-256. The download happens outside any
    transaction; each photo's row is then updated in its own short one, guarded by its status
    (two instances never store one photo twice)."""
    now = _utc(now)
    done = {"stored": 0, "retry": 0, "failed": 0}
    rows = await (
        Photo.filter(status=PhotoStatus.PENDING, next_attempt_at__lte=now)
        .order_by("id")
        .limit(limit)
        .values("id", "file_id", "attempts", "inspection_id", "inspector_id")
    )
    for r in rows:
        try:
            data = await fetch(r["file_id"])
        except Exception as exc:  # SendError from the channel; anything else is treated as transient
            retryable = exc.retryable if isinstance(exc, SendError) else True
            kind = exc.kind if isinstance(exc, SendError) else exc.__class__.__name__
            outcome = await _fetch_failed(r, kind[:64], retryable, now, locale)
            done[outcome] += 1
            continue
        digest = hashlib.sha256(data).hexdigest()
        rel = photo_path(digest, image_extension(data))
        await asyncio.to_thread(_store_file, Path(data_dir) / rel, data)
        async with in_transaction() as conn:
            n = (
                await Photo.filter(id=r["id"], status=PhotoStatus.PENDING)
                .using_db(conn)
                .update(
                    status=PhotoStatus.STORED,
                    sha256=digest,
                    size=len(data),
                    path=rel,
                    fetched_at=now,
                    attempts=r["attempts"] + 1,
                    last_error="",
                )
            )
            if n:
                await audit.append(
                    "system",
                    "photo.stored",
                    f"photo:{r['id']}",
                    {"inspection": r["inspection_id"], "sha256": digest, "size": len(data), "path": rel},
                    now,
                    connection=conn,
                )
                done["stored"] += 1
    return done


async def _fetch_failed(r: dict, kind: str, retryable: bool, now: datetime, locale: str) -> str:
    attempts = r["attempts"] + 1
    give_up = not retryable or attempts >= MAX_FETCH_ATTEMPTS
    async with in_transaction() as conn:
        n = (
            await Photo.filter(id=r["id"], status=PhotoStatus.PENDING)
            .using_db(conn)
            .update(
                attempts=attempts,
                last_error=kind,
                next_attempt_at=now + _backoff(attempts),
                **({"status": PhotoStatus.FAILED} if give_up else {}),
            )
        )
        if not n or not give_up:
            return "retry"
        await audit.append(
            "system",
            "photo.failed",
            f"photo:{r['id']}",
            {"inspection": r["inspection_id"], "error": kind, "attempts": attempts},
            now,
            connection=conn,
        )
        insp = await Inspection.filter(id=r["inspection_id"]).using_db(conn).first()
        await enqueue(
            [
                Message(
                    dedupe_key=f"photo:{r['id']}:failed",
                    recipient_kind=RecipientKind.INSPECTOR,
                    recipient_id=r["inspector_id"],
                    template="photo_failed.j2",
                    context={"photo": r["id"], "no": insp.no if insp else 0},
                    locale=locale,
                )
            ],
            now,
            connection=conn,
        )
    return "failed"


@sweep("photos")
async def photo_sweep(scheduler, now: datetime) -> None:
    """The scheduler's periodic call: fetch what Telegram still holds."""
    channel = scheduler.rt.channels.get("telegram")
    if channel is None:
        return
    await fetch_pending(channel.fetch_file, scheduler.rt.settings.data_dir, now, locale=scheduler.rt.settings.locale)


# --- findings: loading and showing --------------------------------------------------------------


async def _team(inspection_id: int, conn) -> list[Assignment]:
    """The team as it stands, lead (lowest seat) first."""
    return await (
        Assignment.filter(inspection_id=inspection_id, status__in=list(HOLDING_SEAT))
        .using_db(conn)
        .order_by("seat", "id")
        .prefetch_related("inspector")
    )


def _member(team: list[Assignment], inspector_id: int) -> Assignment | None:
    return next((a for a in team if a.inspector_id == inspector_id and a.status in CAN_WORK), None)


def _is_lead(team: list[Assignment], inspector_id: int) -> bool:
    return bool(team) and team[0].inspector_id == inspector_id


async def _findings(result_id: int, conn) -> list[Finding]:
    return await Finding.filter(result_id=result_id).using_db(conn).order_by("position")


def _state(result: Result, rows: list[Finding]) -> Findings:
    return Findings(
        items=tuple(f.item_code for f in rows),
        verdicts=tuple(Verdict(f.verdict) if f.verdict else None for f in rows),
        notes=tuple(f.note for f in rows),
        cursor=result.cursor,
        step=Step(result.step),
        status=ResultStatus(result.status),
        correction=result.supersedes_id is not None,
    )


async def _plan_items(draw: Draw, conn) -> list[str]:
    """The plan's items as they were when the firing was announced."""
    firing = await Firing.filter(id=draw.firing_id).using_db(conn).first()
    spec = firing.params if firing and firing.params else None
    if not spec:
        plan = await Plan.filter(id=draw.plan_id).using_db(conn).first()
        spec = plan.spec if plan else {}
    return [str(code) for code in spec.get("items", [])]


async def _view(result: Result, team: list[Assignment], actor_id: int, conn) -> dict:
    """The result as a member of the team sees it (never a survey, never another inspection)."""
    insp = (
        await Inspection.filter(id=result.inspection_id).using_db(conn).prefetch_related("entity", "draw__plan").first()
    )
    rows = await _findings(result.id, conn)
    names = dict(await Item.filter(code__in=[f.item_code for f in rows]).using_db(conn).values_list("code", "name"))
    items = [
        {
            "pos": f.position,
            "no": f.position + 1,
            "code": f.item_code,
            "name": names.get(f.item_code, f.item_code),
            "verdict": f.verdict.value if f.verdict else None,
            "note": f.note,
        }
        for f in rows
    ]
    people = {a.inspector_id: a.inspector.name for a in team}
    me = _member(team, actor_id)
    corr = await Correction.filter(replacement_id=result.id).using_db(conn).first()
    open_corr = await (
        Correction.filter(original_id=result.id, status__in=list(OPEN_CORRECTION))
        .using_db(conn)
        .order_by("-id")
        .first()
    )
    return {
        "result": result.id,
        "inspection": insp.id,
        "assignment": me.id if me else None,
        "no": insp.no,
        "plan": insp.draw.plan.name,
        "draw_ref": insp.draw.draw_ref,
        "entity": insp.entity.name,
        "status": ResultStatus(result.status).value,
        "step": result.step,
        "cursor": result.cursor,
        "count": len(items),
        "items": items,
        "current": items[result.cursor] if result.cursor < len(items) else None,
        "lead": team[0].inspector.name if team else "",
        "is_lead": _is_lead(team, actor_id),
        "submitted_by": people.get(result.submitted_by_id, "") if result.submitted_by_id else "",
        "confirmed_by": people.get(result.confirmed_by_id, "") if result.confirmed_by_id else "",
        "supersedes": result.supersedes_id,
        "correction": ({"id": corr.id, "reason": corr.reason, "status": corr.status.value} if corr else None),
        "open_correction": (
            {"id": open_corr.id, "status": open_corr.status.value, "replacement": open_corr.replacement_id}
            if open_corr
            else None
        ),
    }


async def _owned(inspector_id: int, assignment_id: int, conn) -> Assignment:
    asg = await (
        Assignment.filter(id=assignment_id, inspector_id=inspector_id)
        .using_db(conn)
        .prefetch_related("draw__plan", "inspection__entity")
        .first()
    )
    if asg is None:
        raise OnsiteError("asg_not_found", id=assignment_id)
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
                raise OnsiteError("not_accepted", id=asg.id, status=asg.status.value)
            if draw_is_sealed(asg.draw, now):
                raise OnsiteError("not_started", id=asg.id)
        # one writer at a time per inspection: two leads' taps cannot make two drafts
        await Inspection.filter(id=asg.inspection_id).using_db(c).select_for_update().first()
        team = await _team(asg.inspection_id, c)
        live = await Result.filter(inspection_id=asg.inspection_id, status__in=list(LIVE)).using_db(c).order_by("-id")
        draft = next((r for r in live if r.status == ResultStatus.DRAFT), None)
        shown = next((r for r in live if r.status != ResultStatus.DRAFT), None)
        if draft is not None and _is_lead(team, inspector_id):
            return "findings_resumed", await _view(draft, team, inspector_id, c)
        if shown is not None:
            return "result_shown", await _view(shown, team, inspector_id, c)
        if now < asg.draw.window_start:
            raise OnsiteError("window_not_open", id=asg.id)
        if not _is_lead(team, inspector_id):
            raise OnsiteError("lead_records", lead=team[0].inspector.name if team else "")
        if asg.status != AssignmentStatus.ACCEPTED:
            raise OnsiteError("not_accepted", id=asg.id, status=asg.status.value)
        items = await _plan_items(asg.draw, c)
        if not items:
            raise OnsiteError("no_items")
        result = await Result.create(
            inspection_id=asg.inspection_id,
            status=ResultStatus.DRAFT,
            step=Step.VERDICT.value,
            cursor=0,
            created_by_id=inspector_id,
            created_at=now,
            updated_at=now,
            using_db=c,
        )
        await Finding.bulk_create(
            [Finding(result_id=result.id, position=i, item_code=code) for i, code in enumerate(items)], using_db=c
        )
        await audit.append(
            f"inspector:{inspector_id}",
            "result.drafted",
            f"result:{result.id}",
            {"inspection": asg.inspection_id, "no": asg.inspection.no, "items": items},
            now,
            connection=c,
        )
        return "findings_started", await _view(result, team, inspector_id, c)


# --- findings: acting ---------------------------------------------------------------------------


def _event(kind: str, index: int | None, text: str, by_lead: bool):
    if kind in VERDICT_ACTIONS and index is not None:
        return Pick(index, VERDICT_ACTIONS[kind])
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
        team = await _team(result.inspection_id, c)
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
        if out.changed:
            await _write(result, rows, state, out, inspector_id, now, c)
            if out.code == "submitted":
                survey = await _submitted(result, team, inspector_id, now, zone, locale, sign, c)
            elif out.code == "sent_for_approval":
                await _correction_requested(result, out.state, team, now, c)
            elif out.code == "confirmed":
                await _confirmed(result, team, inspector_id, now, locale, c)
        return Acted(out.code, out.index, await _view(result, team, inspector_id, c), survey)


async def _write(
    result: Result, rows: list[Finding], old: Findings, out: Outcome, actor: int, now: datetime, conn
) -> None:
    """Store the new state: changed findings (each on the audit chain) and the result row."""
    new = out.state
    for f, (v0, n0, v1, n1) in zip(rows, zip(old.verdicts, old.notes, new.verdicts, new.notes)):
        if (v0, n0) == (v1, n1):
            continue
        await Finding.filter(id=f.id).using_db(conn).update(verdict=v1, note=n1)
        await audit.append(
            f"inspector:{actor}",
            "finding.recorded",
            f"result:{result.id}",
            {"item": f.item_code, "position": f.position, "verdict": v1.value if v1 else None, "note": n1},
            now,
            connection=conn,
        )
    changes: dict = {"status": new.status, "step": new.step.value, "cursor": new.cursor, "updated_at": now}
    if out.code == "submitted":
        changes.update(submitted_by_id=actor, submitted_at=now)
    if out.code == "confirmed":
        changes.update(confirmed_by_id=actor, confirmed_at=now)
    await Result.filter(id=result.id).using_db(conn).update(**changes)
    for key, value in changes.items():
        setattr(result, key, value)


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
    the survey pool, and the other members are asked to confirm."""
    from services import surveys

    insp_id = result.inspection_id
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
    await audit.append(
        f"inspector:{lead_id}",
        "result.submitted",
        f"result:{result.id}",
        {
            "inspection": insp_id,
            "no": view["no"],
            "draw": view["draw_ref"],
            "findings": _verdict_map(view),
            "supersedes": result.supersedes_id,
        },
        now,
        connection=conn,
    )
    await _ask_to_confirm(result, team, lead_id, view, now, locale, conn)
    return await surveys.enter_pool(insp_id, now, zone=zone, locale=locale, sign=sign, connection=conn)


async def _ask_to_confirm(
    result: Result, team: list[Assignment], lead_id: int, view: dict, now: datetime, locale: str, conn
) -> None:
    others = [a for a in team if a.inspector_id != lead_id]
    context = {
        **view,
        "is_lead": False,
        "keyboard": ["result_confirm", result.id],
    }
    await enqueue(
        [
            Message(
                dedupe_key=f"result:{result.id}:confirm:{a.inspector_id}",
                recipient_kind=RecipientKind.INSPECTOR,
                recipient_id=a.inspector_id,
                template="result_confirm.j2",
                context=context,
                locale=locale,
            )
            for a in others
        ],
        now,
        connection=conn,
    )


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


# --- corrections --------------------------------------------------------------------------------


async def _record_of(result_id: int, inspector_id: int, conn) -> tuple[Result, list[Assignment]]:
    """A result of record the acting lead may correct (else a refusal)."""
    result = await Result.filter(id=result_id).using_db(conn).select_for_update().first()
    if result is None:
        raise OnsiteError("result_not_found", id=result_id)
    team = await _team(result.inspection_id, conn)
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
                    result_id=replacement.id, position=f.position, item_code=f.item_code, verdict=f.verdict, note=f.note
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
    binding: ChatBinding, correction_id: int, approve: bool, *, now: datetime, locale: str = "zh-CN", conn=None
) -> tuple[str, dict]:
    """A coordinator of the plan's departments (or an admin) approves or rejects a requested
    correction. Approved: the new result becomes the result of record (submitted, to be
    confirmed by another member) and the old one is superseded, kept as it was."""
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
        team = await _team(replacement.inspection_id, c)
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
        if approve:
            await _ask_to_confirm(replacement, team, lead_id, view, now, locale, c)
        return status.value, {**shown, "status": status.value}
