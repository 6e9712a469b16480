"""A coordinator's review of submitted results: ``/approve <ref>`` publishes the result,
``/return <ref> <comment>`` sends it back to the team lead. The service checks that the
reviewer is a coordinator of the plan's departments (or an admin) and was not on the team.
And the decision on a firm's objection: ``/uphold <ref> [note]``, ``/dismiss <ref> <reasons>``.
And ``/refer <ref> <reason>``. (The re-inspector's ``/recheck <ref>`` opens the findings conversation:
handlers/onsite.py.)

``<ref>`` is always the inspection's public reference (``P1/2026-12-01/7``, domain.refs): an
inspection has at most one pending review, rectification under way, and (but for a rare case the
service documents) pending objection, so the reference says which one. Internal ids only travel in
button data."""

from __future__ import annotations

from core.callbacks import REVIEW
from handlers.common import Replier, binding_of, split_ref
from handlers.router import button, command
from models.messaging import Role
from services.inbound import Context
from services.onsite import followup, objection, review
from services.onsite.shared import OnsiteError, inspection_at
from services.surveys.enter import sign_for

COORDINATORS = {Role.COORDINATOR, Role.ADMIN}


async def _decide(ctx: Context, approve: bool, pressed: int | None = None) -> str:
    say = Replier(ctx)
    binding = binding_of(ctx, Role.COORDINATOR) or binding_of(ctx, Role.ADMIN)
    ref, comment = split_ref(ctx.event.argument) if pressed is None else (None, "")
    if binding is None or (pressed is None and ref is None):
        await say("onsite_refused.j2", {"code": "review_usage" if binding else "stale_button", "params": {}})
        return "usage"
    try:
        review_id = pressed if pressed is not None else await review.review_on(ref, ctx.conn)  # type: ignore[arg-type]
        code, shown = await review.decide_review(
            binding,
            review_id,
            approve,
            comment,
            now=ctx.clock.now(),
            zone=ctx.zone,
            locale=ctx.locale,
            sign=sign_for(ctx.settings) if ctx.settings is not None else None,
            base_url=ctx.settings.public_url if ctx.settings is not None else "",
            conn=ctx.conn,
        )
    except OnsiteError as exc:
        await say("onsite_refused.j2", {"code": exc.code, "params": exc.params})
        return exc.code
    await say("review_decision.j2", {"code": code, **shown})
    return f"review_{code}"


@command("approve", roles=COORDINATORS)
async def approve_command(ctx: Context) -> str:
    """/approve P1/2026-12-01/7: the inspection's result under review is approved and published."""
    return await _decide(ctx, True)


@button("rev", roles=COORDINATORS)
async def review_button(ctx: Context) -> str:
    """The review alert's approve button (``rev:ok:<review>``)."""
    cb = REVIEW.parse(ctx.event.data)
    if cb is None:
        await Replier(ctx)("onsite_refused.j2", {"code": "stale_button", "params": {}})
        return "stale"
    return await _decide(ctx, True, cb.id)


@command("return", roles=COORDINATORS)
async def return_command(ctx: Context) -> str:
    """/return P1/2026-12-01/7 comment: the result under review goes back to the lead with the comment."""
    return await _decide(ctx, False)


async def _objection(ctx: Context, upheld: bool) -> str:
    say = Replier(ctx)
    binding = binding_of(ctx, Role.COORDINATOR) or binding_of(ctx, Role.ADMIN)
    ref, note = split_ref(ctx.event.argument)
    if binding is None or ref is None:
        await say("onsite_refused.j2", {"code": "objection_usage" if binding else "stale_button", "params": {}})
        return "usage"
    try:
        objection_id = await objection.objection_on(ref, ctx.conn)
        code, shown = await objection.decide(
            binding,
            objection_id,
            upheld,
            note,
            now=ctx.clock.now(),
            zone=ctx.zone,
            locale=ctx.locale,
            sign=sign_for(ctx.settings) if ctx.settings is not None else None,
            conn=ctx.conn,
        )
    except OnsiteError as exc:
        await say("onsite_refused.j2", {"code": exc.code, "params": exc.params})
        return exc.code
    await say("objection_decision.j2", {"code": code, **shown})
    return f"objection_{code}"


@command("uphold", roles=COORDINATORS)
async def uphold_command(ctx: Context) -> str:
    """/uphold P1/2026-12-01/7 [note]: the objection is upheld; the lead is asked to correct the result."""
    return await _objection(ctx, True)


@command("dismiss", roles=COORDINATORS)
async def dismiss_command(ctx: Context) -> str:
    """/dismiss P1/2026-12-01/7 reasons: the objection is rejected; the reasons are sent to the firm."""
    return await _objection(ctx, False)


@command("refer", roles=COORDINATORS)
async def refer_command(ctx: Context) -> str:
    """/refer P1/2026-12-01/7 reason: a serious finding, the inspection flagged for case referral."""
    say = Replier(ctx)
    binding = binding_of(ctx, Role.COORDINATOR) or binding_of(ctx, Role.ADMIN)
    ref, reason = split_ref(ctx.event.argument)
    if binding is None or ref is None:
        await say("onsite_refused.j2", {"code": "refer_reason_empty" if binding else "stale_button", "params": {}})
        return "usage"
    try:
        insp = await inspection_at(ref, ctx.conn)
        code, shown = await followup.refer_serious(binding, insp.id, reason, now=ctx.clock.now(), conn=ctx.conn)
    except OnsiteError as exc:
        await say("onsite_refused.j2", {"code": exc.code, "params": exc.params})
        return exc.code
    await say("refer_done.j2", {"code": code, **shown})
    return f"refer_{code}"
