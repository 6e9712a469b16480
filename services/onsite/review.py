"""Review and publication (审核公示): a result of record is published only once a reviewer — a
coordinator of the plan's departments (or an admin) who was not on the inspection's team — has
approved it. Returned (with a comment), the team lead corrects it through the correction flow
(services.onsite.corrections); the approved correction opens a new review.

Deadlines: a review is due ``[publication] review_days`` working days after it opened (the
coordinators are reminded halfway, the admins alerted at the deadline, :func:`sweep_reviews`);
the inspection is to be published ``[publication] working_days`` Chinese working days after it
ended — the day its result was first submitted (:func:`sweep_publications` alerts when it is
near and when it is missed). On the audit chain: ``review.opened`` / ``.approved`` /
``.returned`` / ``.reminded`` / ``.escalated``, ``result.published``,
``publication.warned`` / ``.missed``.
"""

from __future__ import annotations

from datetime import date, datetime, tzinfo

from tortoise.transactions import in_transaction

from core.clock import utc as _utc
from core.db import transaction as _transaction
from domain.onsite import REASON_LIMIT, ResultStatus
from domain.refs import Ref, inspection_ref
from models.draws import Draw, Inspection
from models.messaging import ChatBinding, RecipientKind, Role
from models.onsite import Result
from models.publication import Publication, Review, ReviewStatus
from services import audit
from services.alert_cards import REVIEW, close_cards
from services.alerts import raise_alert
from services.onsite.followup import refer_serious_findings, reinspected
from services.onsite.notice import issue_notice
from services.onsite.results import team_of
from services.onsite.shared import SHANGHAI, OnsiteError, pending_or_latest, plan_spec
from services.outbox import Message, enqueue
from services.plans import _at, add_working_days, is_working_day

REVIEW_TIME = "18:00"  # a review is due at this local time of its last working day
WARN_DAYS = 3  # the coordinators are warned this many working days before the publication deadline
BATCH = 500


def working_days_between(start: date, end: date) -> int:
    """Working days after ``start`` up to and including ``end`` (0 when ``end`` <= ``start``)."""
    count, day = 0, start
    while day < end:
        day = date.fromordinal(day.toordinal() + 1)
        count += is_working_day(day)
    return count


async def _context(insp: Inspection, conn) -> dict:
    await insp.fetch_related("draw__plan", "entity", using_db=conn)
    return {
        "inspection": insp.id,
        "no": insp.no,
        "draw_ref": insp.draw.draw_ref,
        "plan": insp.draw.plan.name,
        "entity": insp.entity.name,
        "uscc": insp.entity_key,
    }


def _track(inspection_id: int, reinspection_id: int | None):
    """The reviews of one line of results of an inspection: its own results (the result of record),
    or the re-inspection results of one rectification order. Each line has at most one pending review."""
    rows = Review.filter(inspection_id=inspection_id)
    if reinspection_id is None:
        return rows.filter(result__reinspection_id__isnull=True)
    return rows.filter(result__reinspection_id=reinspection_id)


async def open_review(result: Result, now: datetime, *, zone: tzinfo = SHANGHAI, ask: bool = True, conn) -> Review:
    """A result became the result of record: open its review (closing any earlier one still
    pending), record the inspection's publication deadline on its first submission, and ask
    the plan's coordinators to review (unless ``ask`` is false: the caller decides it at once)."""
    insp = await Inspection.get(id=result.inspection_id).using_db(conn)
    draw = await Draw.get(id=insp.draw_id).using_db(conn).prefetch_related("plan")
    spec = await plan_spec(draw, conn)
    today = now.astimezone(zone).date()
    earlier = await (
        _track(insp.id, result.reinspection_id)
        .filter(status=ReviewStatus.PENDING)
        .using_db(conn)
        .values_list("id", flat=True)
    )
    if earlier:
        await Review.filter(id__in=list(earlier)).using_db(conn).update(status=ReviewStatus.CLOSED, decided_at=now)
        for closed in earlier:
            await close_cards(REVIEW, closed, ReviewStatus.CLOSED.value, None, now, conn)
    due = _utc(_at(add_working_days(today, spec.publication.review_days), REVIEW_TIME, zone))
    review = await Review.create(
        result_id=result.id,
        inspection_id=insp.id,
        status=ReviewStatus.PENDING,
        opened_at=now,
        remind_at=now + (due - now) / 2,
        due_at=due,
        using_db=conn,
    )
    if not await Publication.filter(inspection_id=insp.id).using_db(conn).exists():
        await Publication.create(
            inspection_id=insp.id,
            ended_on=today,
            due_on=add_working_days(today, spec.publication.working_days),
            using_db=conn,
        )
    if result.reinspection_id is None:  # a re-inspection refers through its outcome (services.onsite.followup)
        await refer_serious_findings(result.id, now, conn)  # items the inspectors marked 严重
    context = {
        **await _context(insp, conn),
        "reinspection": result.reinspection_id is not None,
        "review": review.id,
        "due": due.astimezone(zone).strftime("%Y-%m-%d"),
        "keyboard": ["review_decision", review.id],
    }
    await audit.append(
        "system",
        "review.opened",
        f"review:{review.id}",
        {"result": result.id, "due": due.isoformat()},
        now,
        connection=conn,
    )
    if ask:
        await raise_alert(
            f"review:{review.id}", "review_requested.j2", context, set(draw.plan.departments), now, connection=conn
        )
    return review


async def may_review_at_once(binding: ChatBinding, replacement: Result, team_ids: set[int], conn) -> bool:
    """Whether approving a correction (its ``replacement`` result) can count as the new review too:
    the latest review of its line (the inspection's results, or one re-inspection's) was returned
    (this correction answers it) and the approver is eligible to review it (a coordinator of the
    plan's departments, or an admin, not on the team)."""
    last = await _track(replacement.inspection_id, replacement.reinspection_id).using_db(conn).order_by("-id").first()
    if last is None or last.status != ReviewStatus.RETURNED:
        return False
    insp = await Inspection.get(id=replacement.inspection_id).using_db(conn)
    draw = await Draw.get(id=insp.draw_id).using_db(conn).prefetch_related("plan")
    return _may_review(binding, set(draw.plan.departments)) and not team_ids & await _people(binding, conn)


# --- the reviewer's decision ----------------------------------------------------------------------


async def _people(binding: ChatBinding, conn) -> set[int]:
    """The directory inspectors behind the reviewer's chat (a coordinator may also be bound as an
    inspector from the same chat or phone)."""
    rows = (
        await ChatBinding.filter(
            channel=binding.channel, address=binding.address, revoked_at=None, inspector_id__not_isnull=True
        )
        .using_db(conn)
        .values_list("inspector_id", flat=True)
    )
    return {int(i) for i in rows} | ({binding.inspector_id} if binding.inspector_id else set())


def _may_review(binding: ChatBinding, departments: set[str]) -> bool:
    if binding.role == Role.ADMIN:
        return True
    return binding.role == Role.COORDINATOR and bool(departments & set(binding.departments))


async def review_on(ref: Ref, conn=None) -> int:
    """The review the commands mean by an inspection's public reference: its pending review (a new
    review closes the one before it in its line, so there is at most one — two only while a
    re-inspection's result and a corrected result of the inspection are both under review: then the
    older first), else its latest (answered "already decided"). None at all: ``review_not_found``."""
    return await pending_or_latest(Review, ReviewStatus.PENDING, ref, "review_not_found", conn)


async def decide_review(
    binding: ChatBinding,
    review_id: int,
    approve: bool,
    comment: str = "",
    *,
    now: datetime,
    zone: tzinfo = SHANGHAI,
    locale: str = "zh-CN",
    sign: str | None = None,
    base_url: str = "",
    conn=None,
) -> tuple[str, dict]:
    """Approve (the result is published and the firm sent its notice: services.onsite.notice;
    ``sign`` and ``base_url`` are the SMS signature and the public site's address) or return with a comment (the lead is told to correct).
    Refused: a review outside the reviewer's departments (as if missing), a reviewer who was on
    the team, an empty or too long comment. Decided already: ``already_decided``, nothing changes."""
    now = _utc(now)
    comment = comment.strip()
    if not approve and not comment:
        raise OnsiteError("review_comment_empty")
    if len(comment) > REASON_LIMIT:
        raise OnsiteError("reason_too_long", limit=REASON_LIMIT)
    async with _transaction(conn) as c:
        review = await Review.filter(id=review_id).using_db(c).select_for_update().first()
        if review is None:
            raise OnsiteError("review_not_found", ref="")
        insp = await Inspection.get(id=review.inspection_id).using_db(c)
        draw = await Draw.get(id=insp.draw_id).using_db(c).prefetch_related("plan")
        ref = inspection_ref(draw.draw_ref, insp.no)
        if not _may_review(binding, set(draw.plan.departments)):
            raise OnsiteError("review_not_found", ref=ref)
        result = await Result.get(id=review.result_id).using_db(c)
        team = await team_of(result, c)  # a re-inspection's: its re-inspector
        if {a.inspector_id for a in team} & await _people(binding, c):
            raise OnsiteError("review_own_team", ref=ref)
        shown = {
            **await _context(insp, c),
            "review": review.id,
            "comment": comment or review.comment,
            "reinspection": result.reinspection_id is not None,
        }
        if review.status != ReviewStatus.PENDING:
            return "already_decided", {**shown, "status": review.status.value}
        if not ResultStatus(result.status).effective:
            return "already_decided", {**shown, "status": ReviewStatus.CLOSED.value}
        status = ReviewStatus.APPROVED if approve else ReviewStatus.RETURNED
        await (
            Review.filter(id=review.id)
            .using_db(c)
            .update(status=status, comment=comment, decided_by_id=binding.id, decided_at=now)
        )
        await audit.append(
            f"binding:{binding.id}",
            f"review.{status.value}",
            f"review:{review.id}",
            {"result": result.id, "inspection": insp.id, "comment": comment},
            now,
            connection=c,
        )
        await close_cards(REVIEW, review.id, status.value, f"{binding.role.value}:{binding.id}", now, c)
        if approve and result.reinspection_id is not None:
            # a re-inspection decides its rectification order; the published result stands as it is
            shown["outcome"] = await reinspected(result, f"binding:{binding.id}", now, c)
        elif approve:
            await _publish(insp, result, now, zone, c)
            spec = await plan_spec(draw, c)
            await issue_notice(insp, result, spec, now, zone=zone, sign=sign, base_url=base_url, conn=c)
        lead = team[0].inspector_id if team else result.submitted_by_id
        if lead:
            await enqueue(
                [
                    Message(
                        dedupe_key=f"review:{review.id}:decided",
                        recipient_kind=RecipientKind.INSPECTOR,
                        recipient_id=lead,
                        template="review_decided.j2",
                        context={**shown, "approved": approve, "result": result.id},
                        locale=locale,
                    )
                ],
                now,
                connection=c,
            )
        return status.value, {**shown, "status": status.value}


async def _publish(insp: Inspection, result: Result, now: datetime, zone: tzinfo, conn) -> None:
    pub = await Publication.filter(inspection_id=insp.id).using_db(conn).select_for_update().first()
    first = pub.published_at is None
    changes: dict = {"result_id": result.id}
    if first:
        changes.update(published_at=now, on_time=now.astimezone(zone).date() <= pub.due_on)
    await Publication.filter(id=pub.id).using_db(conn).update(**changes)
    await audit.append(
        "system",
        "result.published",
        f"result:{result.id}",
        {"inspection": insp.id, "due_on": pub.due_on.isoformat(), "first": first, "on_time": changes.get("on_time")},
        now,
        connection=conn,
    )


# --- sweeps ------------------------------------------------------------------------------------------


async def sweep_reviews(now: datetime, *, zone: tzinfo = SHANGHAI) -> int:
    """Remind the coordinators of reviews halfway to their deadline; alert the admins (an alert with
    no department) of reviews past it. Each step once (a conditional update claims it)."""
    now = _utc(now)
    done = 0
    for kind, field, when in (("reminded", "reminded_at", "remind_at"), ("escalated", "escalated_at", "due_at")):
        due = (
            await Review.filter(status=ReviewStatus.PENDING, **{f"{when}__lte": now, field: None})
            .order_by("id")
            .limit(BATCH)
        )
        for review in due:
            async with in_transaction() as conn:
                claimed = (
                    await Review.filter(id=review.id, status=ReviewStatus.PENDING, **{field: None})
                    .using_db(conn)
                    .update(**{field: now})
                )
                if not claimed:
                    continue
                insp = await Inspection.get(id=review.inspection_id).using_db(conn)
                again = (
                    await Result.filter(id=review.result_id).using_db(conn).values_list("reinspection_id", flat=True)
                )
                context = {
                    **await _context(insp, conn),
                    "review": review.id,
                    "reinspection": bool(again and again[0] is not None),
                    "due": review.due_at.astimezone(zone).strftime("%Y-%m-%d %H:%M"),
                }
                departments = set(insp.draw.plan.departments) if kind == "reminded" else set()
                template = "review_reminder.j2" if kind == "reminded" else "review_overdue.j2"
                # a draw's reviews come due together: reminders (a nudge) go in the coordinators' digest
                await raise_alert(
                    f"review:{review.id}:{kind}",
                    template,
                    context,
                    departments,
                    now,
                    connection=conn,
                    digest=kind == "reminded",
                )
                await audit.append("system", f"review.{kind}", f"review:{review.id}", {}, now, connection=conn)
                done += 1
    return done


async def sweep_publications(now: datetime, *, zone: tzinfo = SHANGHAI) -> int:
    """Alert the plan's coordinators once when an unpublished inspection is within
    :data:`WARN_DAYS` working days of its publication deadline, and once when it has passed."""
    now = _utc(now)
    today = now.astimezone(zone).date()
    done = 0
    pending = await Publication.filter(published_at=None).filter(missed_at=None).order_by("id").limit(BATCH)
    for pub in pending:
        left = working_days_between(today, pub.due_on)
        if today > pub.due_on:
            kind, field, template = "missed", "missed_at", "publication_missed.j2"
        elif left <= WARN_DAYS and pub.warned_at is None:
            kind, field, template = "warned", "warned_at", "publication_near.j2"
        else:
            continue
        async with in_transaction() as conn:
            claimed = (
                await Publication.filter(id=pub.id, published_at=None, **{field: None})
                .using_db(conn)
                .update(**{field: now})
            )
            if not claimed:
                continue
            insp = await Inspection.get(id=pub.inspection_id).using_db(conn)
            context = {**await _context(insp, conn), "due": pub.due_on.isoformat(), "left": left}
            # a draw's publications fall due together: the early warnings go in the digest, a missed
            # deadline is told at once
            await raise_alert(
                f"publication:{pub.id}:{kind}",
                template,
                context,
                set(insp.draw.plan.departments),
                now,
                connection=conn,
                digest=kind == "warned",
            )
            await audit.append(
                "system",
                f"publication.{kind}",
                f"inspection:{insp.id}",
                {"due_on": pub.due_on.isoformat()},
                now,
                connection=conn,
            )
            done += 1
    return done
