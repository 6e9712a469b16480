"""Follow-up (后续处理): the rectification order a published result with 不合格 items carries
(made with its notice, services.onsite.notice), the firm's reminder before its deadline, the
re-inspection (复查) assigned at the deadline — to the inspection's team lead, or, when the plan
says ``[publication] reinspect = "draw"``, to an inspector drawn afresh among the qualified — and
its outcome: rectified, or not, which flags the case for referral (移送立案) to the plan's
coordinators.

The re-inspector does the re-inspection in the findings conversation (services.onsite.findings,
``/recheck <ref>`` or the assignment's button): a re-inspection result over the items found 不合格,
reviewed like any result; its approval (:func:`reinspected`) decides the order. A serious finding is
flagged for referral at once by a coordinator: ``/refer <ref> <reason>``. On the audit chain:
``rectification.ordered`` / ``.reminded`` / ``.assigned`` / ``.rectified`` / ``.unrectified`` /
``.superseded``, ``case.referred``."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, tzinfo

from tortoise.expressions import Q
from tortoise.transactions import in_transaction

from core.clock import utc as _utc
from core.db import transaction as _transaction
from domain.onsite import NOTE_LIMIT, ResultStatus, Verdict
from domain.refs import Ref, inspection_ref
from domain.surveys import next_allowed_send
from models.directory import Conflict, Entity, Inspector, InspectorStatus, Item
from models.draws import Draw, Inspection
from models.messaging import Channel, ChatBinding, RecipientKind, Role
from models.onsite import Finding, Result
from models.publication import (
    Notice,
    NoticeDelivery,
    Publication,
    Rectification,
    RectificationStatus,
    Review,
    ReviewStatus,
)
from services import audit
from services.alert_cards import REVIEW, close_cards
from services.alerts import raise_alert
from services.onsite.results import _team
from services.onsite.shared import SHANGHAI, OnsiteError, inspection_at, inspection_context, plan_spec
from services.outbox import Message, enqueue
from services.plans import is_working_day

REMIND_DAYS = 3  # the firm is reminded this many working days before its deadline
BATCH = 500


def _days_left(today, due_on) -> int:
    count, day = 0, today
    while day < due_on:
        day = day.fromordinal(day.toordinal() + 1)
        count += is_working_day(day)
    return count


async def supersede(inspection_id: int, now: datetime, conn) -> int:
    """A corrected result was published: the earlier notice's open order no longer stands (the
    new notice carries its own when the corrected result still has a 不合格 item)."""
    rows = await Rectification.filter(
        inspection_id=inspection_id, status__in=[RectificationStatus.OPEN, RectificationStatus.REINSPECTING]
    ).using_db(conn)
    for row in rows:
        await (
            Rectification.filter(id=row.id).using_db(conn).update(status=RectificationStatus.SUPERSEDED, decided_at=now)
        )
        await audit.append("system", "rectification.superseded", f"rectification:{row.id}", {}, now, connection=conn)
        # a re-inspection under review no longer decides anything: its review is closed
        closing = await (
            Review.filter(result__reinspection_id=row.id, status=ReviewStatus.PENDING)
            .using_db(conn)
            .values_list("id", flat=True)
        )
        if closing:
            await Review.filter(id__in=list(closing)).using_db(conn).update(status=ReviewStatus.CLOSED, decided_at=now)
        for closed in closing:
            await close_cards(REVIEW, closed, ReviewStatus.CLOSED.value, None, now, conn)
    return len(rows)


async def order(notice: Notice, now: datetime, conn) -> Rectification:
    """The rectification order of a notice with a ``rectify_by`` date (once)."""
    found = await Rectification.filter(notice_id=notice.id).using_db(conn).first()
    if found is not None:
        return found
    row = await Rectification.create(
        notice_id=notice.id, inspection_id=notice.inspection_id, due_on=notice.rectify_by, using_db=conn
    )
    await audit.append(
        "system",
        "rectification.ordered",
        f"rectification:{row.id}",
        {"notice": notice.id, "due_on": notice.rectify_by.isoformat()},
        now,
        connection=conn,
    )
    return row


async def _context(row: Rectification, conn) -> dict:
    insp = await Inspection.get(id=row.inspection_id).using_db(conn)
    entity = await Entity.get(id=insp.entity_id).using_db(conn)
    return {
        **await inspection_context(insp, conn, entity=entity),
        "rectification": row.id,
        "address": entity.address or "",
        "due_on": row.due_on.isoformat(),
        "_entity": entity,
    }


async def sweep_rectifications(now: datetime, *, zone: tzinfo = SHANGHAI, sign: str | None = None) -> int:
    """Remind firms :data:`REMIND_DAYS` working days before their deadline (by SMS, the survey
    rules: quiet hours, opt-out); at the deadline assign the re-inspection to the team lead."""
    now = _utc(now)
    today = now.astimezone(zone).date()
    done = 0
    for row in await Rectification.filter(status=RectificationStatus.OPEN).order_by("id").limit(BATCH):
        due = today >= row.due_on
        if not due and (row.reminded_at is not None or _days_left(today, row.due_on) > REMIND_DAYS):
            continue
        async with in_transaction() as conn:
            if due:
                done += await _assign(row, now, conn)
            else:
                done += await _remind(row, now, zone, sign, conn)
    return done


async def _remind(row: Rectification, now: datetime, zone: tzinfo, sign: str | None, conn) -> int:
    claimed = await Rectification.filter(id=row.id, reminded_at=None).using_db(conn).update(reminded_at=now)
    if not claimed:
        return 0
    ctx = await _context(row, conn)
    entity = ctx.pop("_entity")
    notice = await Notice.get(id=row.notice_id).using_db(conn)
    if notice.delivery == NoticeDelivery.QUEUED and entity.mobile:
        await enqueue(
            [
                Message(
                    dedupe_key=f"rectification:{row.id}:reminder",
                    recipient_kind=RecipientKind.ENTITY,
                    recipient_id=entity.id,
                    template="rectification_reminder.j2",
                    context={**ctx, "sign": sign or "", "code": notice.code},
                    channel=Channel.SMS,
                    locale="zh-CN",
                    not_before=_utc(next_allowed_send(now, zone)),
                    address=entity.mobile,
                )
            ],
            now,
            connection=conn,
        )
    await audit.append("system", "rectification.reminded", f"rectification:{row.id}", {}, now, connection=conn)
    return 1


async def _drawn(row: Rectification, team_ids: set[int], now: datetime, conn) -> tuple[int | None, dict]:
    """A re-inspector drawn afresh (``[publication] reinspect = "draw"``): an active inspector of
    the plan's departments holding every qualification its items need, with a valid certificate,
    not on the team and with no standing conflict with the entity. The order is the SHA-256 of a
    fresh recorded seed and the certificate number, so the pick can be re-derived from the audit
    record."""
    insp = await Inspection.get(id=row.inspection_id).using_db(conn)
    draw = await Draw.get(id=insp.draw_id).using_db(conn).prefetch_related("plan")
    spec = await plan_spec(draw, conn)
    needed: set[str] = set()
    for quals in await Item.filter(code__in=list(spec.items)).using_db(conn).values_list("qualifications", flat=True):
        needed |= set(quals or [])
    conflicted = set(
        await Conflict.filter(entity_id=insp.entity_id, withdrawn_at=None)
        .filter(Q(expires_at=None) | Q(expires_at__gt=now))
        .using_db(conn)
        .values_list("inspector_id", flat=True)
    )
    today = now.date()
    candidates = [
        p
        for p in await Inspector.filter(status=InspectorStatus.ACTIVE, department__code__in=list(spec.departments))
        .using_db(conn)
        .order_by("id")
        if p.id not in team_ids
        and p.id not in conflicted
        and needed <= set(p.qualifications or [])
        and (p.cert_expiry is None or p.cert_expiry > today)
    ]
    seed = secrets.token_bytes(16)
    ranked = sorted(candidates, key=lambda p: hashlib.sha256(seed + p.cert_no.encode()).hexdigest())
    chosen = ranked[0].id if ranked else None
    return chosen, {"mode": "draw", "seed": seed.hex(), "candidates": len(candidates)}


async def _assign(row: Rectification, now: datetime, conn) -> int:
    team = await _team(row.inspection_id, conn)
    insp = await Inspection.get(id=row.inspection_id).using_db(conn)
    spec = await plan_spec(await Draw.get(id=insp.draw_id).using_db(conn), conn)
    if spec.publication.reinspect == "draw":
        inspector_id, how = await _drawn(row, {a.inspector_id for a in team}, now, conn)
    else:
        inspector_id, how = (team[0].inspector_id if team else None), {"mode": "team"}
    claimed = await (
        Rectification.filter(id=row.id, status=RectificationStatus.OPEN)
        .using_db(conn)
        .update(status=RectificationStatus.REINSPECTING, assigned_at=now, inspector_id=inspector_id)
    )
    if not claimed:
        return 0
    ctx = await _context(row, conn)
    ctx.pop("_entity")
    await audit.append(
        "system",
        "rectification.assigned",
        f"rectification:{row.id}",
        {"inspector": inspector_id, **how},
        now,
        connection=conn,
    )
    if inspector_id is None:  # nobody holds the team any more: the coordinators assign by hand
        await raise_alert(
            f"rectification:{row.id}:unassigned",
            "case_referral.j2",
            {**ctx, "why": "unassigned"},
            set(ctx["departments"]),
            now,
            connection=conn,
        )
        return 1
    await enqueue(
        [
            Message(
                dedupe_key=f"rectification:{row.id}:assigned",
                recipient_kind=RecipientKind.INSPECTOR,
                recipient_id=inspector_id,
                template="reinspection_assigned.j2",
                context={**ctx, "keyboard": ["reinspection_open", row.id]},
            )
        ],
        now,
        connection=conn,
    )
    return 1


async def reinspected(result: Result, actor: str, now: datetime, conn) -> str:
    """A re-inspection result (``result.reinspection_id``) was approved in review: it decides its
    rectification order — every item 合格 or 不涉及: rectified; any item 不合格: not rectified, and the
    case is flagged for referral (移送立案) to the plan's coordinators. The inspection's published
    result is not touched: its verdicts stand, the order's outcome is the follow-up (后续处理).
    Returns the outcome (``rectified`` / ``unrectified``), or ``superseded`` when the order no longer
    stands (a corrected result was published again meanwhile)."""
    row = await Rectification.filter(id=result.reinspection_id).using_db(conn).select_for_update().first()
    if row is None or row.status != RectificationStatus.REINSPECTING:
        return RectificationStatus.SUPERSEDED.value
    rows = await Finding.filter(result_id=result.id).using_db(conn).order_by("position")
    rectified = all(f.verdict != Verdict.FAIL for f in rows)
    note = "；".join(f"{f.item_code}：{f.note}" for f in rows if f.note)[:NOTE_LIMIT]
    status = RectificationStatus.RECTIFIED if rectified else RectificationStatus.UNRECTIFIED
    await (
        Rectification.filter(id=row.id)
        .using_db(conn)
        .update(status=status, note=note, decided_at=now, referred_at=None if rectified else now)
    )
    await audit.append(
        actor,
        f"rectification.{status.value}",
        f"rectification:{row.id}",
        {"result": result.id, "inspector": row.inspector_id},
        now,
        connection=conn,
    )
    if not rectified:
        ctx = await _context(row, conn)
        ctx.pop("_entity")
        await audit.append(
            "system",
            "case.referred",
            f"inspection:{row.inspection_id}",
            {"rectification": row.id},
            now,
            connection=conn,
        )
        await raise_alert(
            f"rectification:{row.id}:referral",
            "case_referral.j2",
            {**ctx, "why": "unrectified", "note": note},
            set(ctx["departments"]),
            now,
            connection=conn,
        )
    return status.value


async def failed_items(row: Rectification, conn) -> list[str]:
    """The items a re-inspection covers: those 不合格 in the result its order was made on."""
    notice = await Notice.get(id=row.notice_id).using_db(conn)
    return list(
        await Finding.filter(result_id=notice.result_id, verdict=Verdict.FAIL)
        .using_db(conn)
        .order_by("position")
        .values_list("item_code", flat=True)
    )


async def rectification_on(inspector_id: int | None, ref: Ref, conn=None) -> int:
    """The re-inspection the inspector means by the inspection's public reference: the one assigned
    to them (a corrected result supersedes the open order, so there is at most one under way), else
    their latest on it (its result is shown). Someone else's: ``recheck_not_found``."""
    insp = await inspection_at(ref, conn)
    rows = (
        await Rectification.filter(inspection_id=insp.id, inspector_id=inspector_id)
        .using_db(conn)
        .order_by("-id")
        .values_list("id", "status")
    )
    if inspector_id is None or not rows:
        raise OnsiteError("recheck_not_found", ref=inspection_ref(str(ref.draw_ref), ref.no))
    live = [r for r in rows if r[1] == RectificationStatus.REINSPECTING]
    return int((live or rows)[0][0])


async def refer_serious(
    binding: ChatBinding, inspection_id: int, reason: str, *, now: datetime, conn=None
) -> tuple[str, dict]:
    """A serious finding: a coordinator of the plan's departments (or an admin) flags the
    inspection for case referral (移送立案), with a reason, without waiting for a rectification
    deadline. Once per inspection; the inspection must have a result under review or published."""
    now = _utc(now)
    reason = reason.strip()
    if not reason:
        raise OnsiteError("refer_reason_empty")
    if len(reason) > NOTE_LIMIT:
        raise OnsiteError("reason_too_long", limit=NOTE_LIMIT)
    async with _transaction(conn) as c:
        row = await Publication.filter(inspection_id=inspection_id).using_db(c).select_for_update().first()
        insp = await Inspection.get(id=inspection_id).using_db(c)
        draw = await Draw.get(id=insp.draw_id).using_db(c).prefetch_related("plan")
        departments = set(draw.plan.departments)
        allowed = binding.role == Role.ADMIN or (
            binding.role == Role.COORDINATOR and bool(departments & set(binding.departments))
        )
        if not allowed or row is None:
            raise OnsiteError("review_not_found", ref=inspection_ref(draw.draw_ref, insp.no))
        if row.referred_at is not None:
            return "already_referred", await inspection_context(insp, c, draw)
        ctx = await _refer(insp, draw, row, reason, f"binding:{binding.id}", now, c)
        return "referred", ctx


async def _refer(insp: Inspection, draw: Draw, row: Publication, reason: str, actor: str, now: datetime, conn) -> dict:
    """Flag the inspection for case referral (移送立案) as a serious finding: the publication row (locked
    by the caller, not yet referred) records it, the audit chain and the plan's coordinators are told."""
    ctx = await inspection_context(insp, conn, draw)
    await Publication.filter(id=row.id).using_db(conn).update(referred_at=now, referral_reason=reason)
    await audit.append(
        actor, "case.referred", f"inspection:{insp.id}", {"why": "serious", "reason": reason}, now, connection=conn
    )
    await raise_alert(
        f"inspection:{insp.id}:referral",
        "case_referral.j2",
        {**ctx, "why": "serious", "note": reason, "rectification": "", "due_on": ""},
        set(draw.plan.departments),
        now,
        connection=conn,
    )
    return ctx


async def refer_serious_findings(result_id: int, now: datetime, conn) -> bool:
    """A result of record with items its inspectors marked serious (严重, ``Finding.serious``) flags
    the inspection for case referral at once, the items and their notes as the (internal) reason.
    Called when its review opens; once per inspection (coordinators may still ``/refer``)."""
    marked = (
        await Finding.filter(result_id=result_id, serious=True, verdict=Verdict.FAIL)
        .using_db(conn)
        .order_by("position")
        .values_list("position", "item_code", "note")
    )
    if not marked:
        return False
    result = await Result.get(id=result_id).using_db(conn)
    row = await Publication.filter(inspection_id=result.inspection_id).using_db(conn).select_for_update().first()
    if row is None or row.referred_at is not None:
        return False
    insp = await Inspection.get(id=result.inspection_id).using_db(conn)
    draw = await Draw.get(id=insp.draw_id).using_db(conn).prefetch_related("plan")
    reason = "；".join(f"{pos + 1}. {code}" + (f"：{note}" if note else "") for pos, code, note in marked)
    await _refer(insp, draw, row, reason[:NOTE_LIMIT], "system", now, conn)
    return True


async def reinspections_for(inspector_id: int, conn=None) -> list[dict]:
    """The re-inspections (复查) assigned to the inspector and not yet done, as /tasks lists them
    (the public reference, the firm and its address, the rectification deadline), oldest first. One
    whose result waits for a reviewer (or a coordinator's approval of its correction) is not the
    re-inspector's to do: left out until it is returned."""
    rows = (
        await Rectification.filter(inspector_id=inspector_id, status=RectificationStatus.REINSPECTING)
        .using_db(conn)
        .order_by("due_on", "id")
    )
    waiting = set(
        await Review.filter(result__reinspection_id__in=[r.id for r in rows], status=ReviewStatus.PENDING)
        .using_db(conn)
        .values_list("result__reinspection_id", flat=True)
    ) | set(
        await Result.filter(reinspection_id__in=[r.id for r in rows], status=ResultStatus.PENDING)
        .using_db(conn)
        .values_list("reinspection_id", flat=True)
    )
    shown = []
    for row in rows:
        if row.id in waiting:
            continue
        ctx = await _context(row, conn)
        shown.append(
            {
                "ref": inspection_ref(ctx["draw_ref"], ctx["no"]),
                "entity": {"name": ctx["entity"], "address": ctx["address"]},
                "due_on": ctx["due_on"],
                "reinspection": True,
            }
        )
    return shown
