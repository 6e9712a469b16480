"""A coordinator's review of submitted results: ``/approve <review>`` publishes the result,
``/return <review> <comment>`` sends it back to the team lead. The service checks that the
reviewer is a coordinator of the plan's departments (or an admin) and was not on the team.
And the decision on a firm's objection: ``/uphold <objection> [note]``, ``/dismiss <objection>
<reasons>``. And the re-inspector's ``/recheck <rectification> 已整改|未整改 [note]``."""

from __future__ import annotations

from core.callbacks import REVIEW
from domain import inputs, refs
from handlers.common import Replier, binding_of, inspector_id
from handlers.router import button, command
from models.messaging import Role
from services.inbound import Context
from services.onsite import followup, objection, review
from services.onsite.shared import OnsiteError
from services.surveys.enter import sign_for

COORDINATORS = {Role.COORDINATOR, Role.ADMIN}


async def _decide(ctx: Context, approve: bool, pressed: int | None = None) -> str:
    say = Replier(ctx)
    binding = binding_of(ctx, Role.COORDINATOR) or binding_of(ctx, Role.ADMIN)
    head, _, comment = ctx.event.argument.strip().partition(" ")
    review_id = pressed if pressed is not None else inputs.number(head)
    ref = refs.parse(head) if review_id is None else None
    if ref is not None and ref.draw_ref is not None:  # /approve P1/2026-12-01/7: the inspection's public reference
        review_id = await review.review_of(ref.draw_ref, ref.no) or 0  # 0: no such review, refused as missing
    if binding is None or review_id is None:
        await say("onsite_refused.j2", {"code": "review_usage" if binding else "stale_button", "params": {}})
        return "usage"
    try:
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
    """/approve N: the result under review N is approved and published."""
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
    """/return N comment: the result under review N goes back to the team lead with the comment."""
    return await _decide(ctx, False)


async def _objection(ctx: Context, upheld: bool) -> str:
    say = Replier(ctx)
    binding = binding_of(ctx, Role.COORDINATOR) or binding_of(ctx, Role.ADMIN)
    head, _, note = ctx.event.argument.strip().partition(" ")
    objection_id = inputs.number(head)
    if binding is None or objection_id is None:
        await say("onsite_refused.j2", {"code": "objection_usage" if binding else "stale_button", "params": {}})
        return "usage"
    try:
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
    """/uphold N [note]: objection N is upheld; the lead is asked to correct the result."""
    return await _objection(ctx, True)


@command("dismiss", roles=COORDINATORS)
async def dismiss_command(ctx: Context) -> str:
    """/dismiss N reasons: objection N is rejected; the reasons are sent to the firm."""
    return await _objection(ctx, False)


@command("recheck", roles={Role.INSPECTOR})
async def recheck_command(ctx: Context) -> str:
    """/recheck N 已整改|未整改 [note]: the re-inspection's finding on rectification N."""
    say = Replier(ctx)
    head, _, rest = ctx.event.argument.strip().partition(" ")
    rectification_id = inputs.number(head)
    if rectification_id is None:
        await say("onsite_refused.j2", {"code": "recheck_usage", "params": {}})
        return "usage"
    try:
        code, shown = await followup.record_reinspection(
            inspector_id(ctx), rectification_id, rest, now=ctx.clock.now(), conn=ctx.conn
        )
    except OnsiteError as exc:
        await say("onsite_refused.j2", {"code": exc.code, "params": exc.params})
        return exc.code
    await say("recheck_done.j2", {"code": code, **shown})
    return f"recheck_{code}"


@command("refer", roles=COORDINATORS)
async def refer_command(ctx: Context) -> str:
    """/refer N reason: a serious finding in the result under review N, flagged for case referral."""
    say = Replier(ctx)
    binding = binding_of(ctx, Role.COORDINATOR) or binding_of(ctx, Role.ADMIN)
    head, _, reason = ctx.event.argument.strip().partition(" ")
    review_id = inputs.number(head)
    if binding is None or review_id is None:
        await say("onsite_refused.j2", {"code": "refer_reason_empty" if binding else "stale_button", "params": {}})
        return "usage"
    try:
        code, shown = await followup.refer_serious(binding, review_id, reason, now=ctx.clock.now(), conn=ctx.conn)
    except OnsiteError as exc:
        await say("onsite_refused.j2", {"code": exc.code, "params": exc.params})
        return exc.code
    await say("refer_done.j2", {"code": code, **shown})
    return f"refer_{code}"
