"""A coordinator's review of submitted results: ``/approve <review>`` publishes the result,
``/return <review> <comment>`` sends it back to the team lead. The service checks that the
reviewer is a coordinator of the plan's departments (or an admin) and was not on the team."""

from __future__ import annotations

from domain import inputs
from handlers.common import Replier, binding_of
from handlers.router import command
from models.messaging import Role
from services.inbound import Context
from services.onsite import review
from services.onsite.shared import OnsiteError
from services.surveys.enter import sign_for

COORDINATORS = {Role.COORDINATOR, Role.ADMIN}


async def _decide(ctx: Context, approve: bool) -> str:
    say = Replier(ctx)
    binding = binding_of(ctx, Role.COORDINATOR) or binding_of(ctx, Role.ADMIN)
    head, _, comment = ctx.event.argument.strip().partition(" ")
    review_id = inputs.number(head)
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


@command("return", roles=COORDINATORS)
async def return_command(ctx: Context) -> str:
    """/return N comment: the result under review N goes back to the team lead with the comment."""
    return await _decide(ctx, False)
