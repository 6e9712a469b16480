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

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from core.callbacks import REVIEW
from domain.refs import Ref
from handlers.common import Replier, binding_of, split_ref
from handlers.router import button, command
from models.messaging import Role
from services.inbound import Context
from services.onsite import followup, objection, review
from services.onsite.shared import OnsiteError, inspection_at
from services.surveys.enter import sign_for

COORDINATORS = {Role.COORDINATOR, Role.ADMIN}
REFUSED = "onsite_refused.j2"

#: A command's service call: (context, who asks, the reference, the rest of the argument) -> (code, shown).
Act = Callable[[Context, Any, Ref, str], Awaitable[tuple[str, dict]]]


@dataclass(frozen=True)
class _Verb:
    usage: str  # the refusal's code when the command has no reference
    act: Act
    answer: str  # the answer's template
    outcome: str  # the handler returns ``<outcome>_<the service's code>``


def _coordinator(ctx: Context):
    return binding_of(ctx, Role.COORDINATOR) or binding_of(ctx, Role.ADMIN)


def _sign(ctx: Context) -> str | None:
    return sign_for(ctx.settings) if ctx.settings is not None else None


async def _refuse(ctx: Context, code: str, outcome: str) -> str:
    await Replier(ctx)(REFUSED, {"code": code, "params": {}})
    return outcome


async def _answer(ctx: Context, answer: str, outcome: str, call: Awaitable[tuple[str, dict]]) -> str:
    """The service's answer (``answer`` with its code and what it shows), or its refusal."""
    say = Replier(ctx)
    try:
        code, shown = await call
    except OnsiteError as exc:
        await say(REFUSED, {"code": exc.code, "params": exc.params})
        return exc.code
    await say(answer, {"code": code, **shown})
    return f"{outcome}_{code}"


async def _by_ref(ctx: Context, who: Any, verb: _Verb) -> str:
    """Every command here: ``/<command> <ref> [text]`` by ``who`` (None: not a coordinator any
    more, a stale chat), one service call, its answer."""
    ref, rest = split_ref(ctx.event.argument)
    if who is None or ref is None:
        return await _refuse(ctx, verb.usage if who is not None else "stale_button", "usage")
    return await _answer(ctx, verb.answer, verb.outcome, verb.act(ctx, who, ref, rest))


# --- the service calls ----------------------------------------------------------------------------


async def _review(ctx: Context, binding, review_id: int, approve: bool, comment: str) -> tuple[str, dict]:
    return await review.decide_review(
        binding,
        review_id,
        approve,
        comment,
        now=ctx.clock.now(),
        zone=ctx.zone,
        locale=ctx.locale,
        sign=_sign(ctx),
        base_url=ctx.settings.public_url if ctx.settings is not None else "",
        conn=ctx.conn,
    )


async def _review_at(ctx: Context, binding, ref: Ref, comment: str, *, approve: bool) -> tuple[str, dict]:
    return await _review(ctx, binding, await review.review_on(ref, ctx.conn), approve, comment)


async def _objection(ctx: Context, binding, ref: Ref, note: str, *, upheld: bool) -> tuple[str, dict]:
    objection_id = await objection.objection_on(ref, ctx.conn)
    return await objection.decide(
        binding, objection_id, upheld, note, now=ctx.clock.now(), zone=ctx.zone, locale=ctx.locale, sign=_sign(ctx),
        conn=ctx.conn,
    )  # fmt: skip


async def _refer(ctx: Context, binding, ref: Ref, reason: str) -> tuple[str, dict]:
    insp = await inspection_at(ref, ctx.conn)
    return await followup.refer_serious(binding, insp.id, reason, now=ctx.clock.now(), conn=ctx.conn)


APPROVE = _Verb("review_usage", partial(_review_at, approve=True), "review_decision.j2", "review")
RETURN = _Verb("review_usage", partial(_review_at, approve=False), "review_decision.j2", "review")
UPHOLD = _Verb("objection_usage", partial(_objection, upheld=True), "objection_decision.j2", "objection")
DISMISS = _Verb("objection_usage", partial(_objection, upheld=False), "objection_decision.j2", "objection")
REFER = _Verb("refer_reason_empty", _refer, "refer_done.j2", "refer")


# --- the commands ---------------------------------------------------------------------------------


@command("approve", roles=COORDINATORS)
async def approve_command(ctx: Context) -> str:
    """/approve P1/2026-12-01/7: the inspection's result under review is approved and published."""
    return await _by_ref(ctx, _coordinator(ctx), APPROVE)


@button("rev", roles=COORDINATORS)
async def review_button(ctx: Context) -> str:
    """The review alert's approve button (``rev:ok:<review>``)."""
    cb = REVIEW.parse(ctx.event.data)
    if cb is None:
        return await _refuse(ctx, "stale_button", "stale")
    binding = _coordinator(ctx)
    if binding is None:
        return await _refuse(ctx, "stale_button", "usage")
    return await _answer(ctx, "review_decision.j2", "review", _review(ctx, binding, cb.id, True, ""))


@command("return", roles=COORDINATORS)
async def return_command(ctx: Context) -> str:
    """/return P1/2026-12-01/7 comment: the result under review goes back to the lead with the comment."""
    return await _by_ref(ctx, _coordinator(ctx), RETURN)


@command("uphold", roles=COORDINATORS)
async def uphold_command(ctx: Context) -> str:
    """/uphold P1/2026-12-01/7 [note]: the objection is upheld; the lead is asked to correct the result."""
    return await _by_ref(ctx, _coordinator(ctx), UPHOLD)


@command("dismiss", roles=COORDINATORS)
async def dismiss_command(ctx: Context) -> str:
    """/dismiss P1/2026-12-01/7 reasons: the objection is rejected; the reasons are sent to the firm."""
    return await _by_ref(ctx, _coordinator(ctx), DISMISS)


@command("refer", roles=COORDINATORS)
async def refer_command(ctx: Context) -> str:
    """/refer P1/2026-12-01/7 reason: a serious finding, the inspection flagged for case referral."""
    return await _by_ref(ctx, _coordinator(ctx), REFER)
