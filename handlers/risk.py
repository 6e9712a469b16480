"""/risk CREDIT-CODE|NAME: an entity's credit-risk class, score and reasons, for coordinators only;
/riskmodels: the class mix now against the approved one, the proposed model versions with their
comparison, and Approve / Reject buttons
(audited as the coordinator who pressed);
/riskoverride CREDIT-CODE CLASS VALID-UNTIL REASON: propose a class for one firm, which another
coordinator approves with the buttons sent to them (``rov``); /riskoverrides lists the overrides
waiting or in force; /riskwithdraw NUMBER REASON ends one (``services.risk.overrides``).

Anyone else gets the coordinators' standard refusal (an unknown sender learns nothing), and a
command sent in a group acts for nobody (``handlers.router``): the group hears only the polite
refusal pointing to a private chat, so a class never lands in a group.
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import asdict
from datetime import date

from core.callbacks import RISK_MODEL, RISK_OVERRIDE, Callback, key
from domain.errors import ServiceError
from handlers.common import Replier
from handlers.coordinator import coordinators_only
from handlers.router import button, command
from services.inbound import Context
from services.risk import classify, drift, overrides, versions
from services.risk.versions import RiskError
from services.scope import Scope


@command("risk", roles=None)
@coordinators_only
async def risk_command(ctx: Context, scope: Scope, say: Replier) -> str:
    try:
        found = await classify.lookup(ctx.event.argument, ctx.zone)
    except RiskError as exc:
        await say("risk.j2", {"error": exc.code, "params": exc.params})
        return exc.code
    await say("risk.j2", {"error": None, "found": [asdict(a) for a in found]})
    return "risk"


@command("riskmodels", roles=None)
@coordinators_only
async def risk_models_command(ctx: Context, scope: Scope, say: Replier) -> str:
    shown = await versions.proposals()
    mix = await drift.mix()
    buttons = [
        [
            key("btn_risk_approve", RISK_MODEL.data("approve", p["id"]), version=p["version"]),
            key("btn_risk_reject", RISK_MODEL.data("reject", p["id"]), version=p["version"]),
        ]
        for p in shown
    ]
    await say("risk_models.j2", {"proposals": shown, "buttons": buttons, "mix": mix.shown(ctx.zone) if mix else None})
    return "risk_models"


@button("rmv", roles=None)
@coordinators_only
async def risk_model_button(ctx: Context, scope: Scope, say: Replier) -> str:
    cb = Callback.parse(ctx.event.data)
    if cb is None or cb.action not in ("approve", "reject"):
        raise ServiceError("stale_button")
    try:
        row = await versions.decide_by_id(cb.id, approve=cb.action == "approve", actor=scope.actor, now=ctx.clock.now())
    except RiskError as exc:
        await say("risk.j2", {"error": exc.code, "params": exc.params})
        return exc.code
    await say("risk_decided.j2", {"version": row.version, "status": row.status.value})
    return f"risk_{row.status.value}"


def _departments(scope: Scope) -> frozenset[str] | None:
    """Whose overrides a coordinator decides on: their departments' (an admin: every one)."""
    return None if scope.everything else scope.departments


def _override_arguments(text: str) -> tuple[str, str, date, str]:
    """CREDIT-CODE CLASS VALID-UNTIL REASON…, refused as the usage or a date that is not one."""
    parts = text.split(maxsplit=3)
    if len(parts) < 4:
        raise RiskError("risk_override_usage")
    try:
        until = date.fromisoformat(parts[2])
    except ValueError:
        raise RiskError("risk_override_until_bad", given=parts[2][:20]) from None
    return parts[0], parts[1], until, parts[3]


async def _refused(say: Replier, exc: ServiceError) -> str:
    await say("risk_override.j2", {"error": exc.code, "params": exc.params})
    return exc.code


async def _override_reply(say: Replier, call: Awaitable[overrides.Override], what: str) -> str:
    """Await one override service call and say what became of it (or why it was refused: the risk
    engine's refusals and, for a decision, the two-person rule's)."""
    try:
        shown = await call
    except ServiceError as exc:
        return await _refused(say, exc)
    await say("risk_override.j2", {"error": None, "what": what, "o": shown.context()})
    return f"risk_override_{shown.status}"


@command("riskoverride", roles=None)
@coordinators_only
async def risk_override_command(ctx: Context, scope: Scope, say: Replier) -> str:
    try:
        code, risk_class, until, reason = _override_arguments(ctx.event.argument)
    except RiskError as exc:
        return await _refused(say, exc)
    call = overrides.propose(
        code,
        risk_class,
        reason,
        until,
        actor=scope.actor,
        departments=_departments(scope),
        now=ctx.clock.now(),
        zone=ctx.zone,
    )
    return await _override_reply(say, call, "proposed")


@command("riskoverrides", roles=None)
@coordinators_only
async def risk_overrides_command(ctx: Context, scope: Scope, say: Replier) -> str:
    shown = await overrides.listing(ctx.zone, departments=_departments(scope))
    items = [o.context() for o in shown.items]
    await say("risk_override.j2", {"error": None, "what": "list", "items": items, "total": shown.total})
    return "risk_overrides"


@command("riskwithdraw", roles=None)
@coordinators_only
async def risk_withdraw_command(ctx: Context, scope: Scope, say: Replier) -> str:
    parts = ctx.event.argument.split(maxsplit=1)
    if len(parts) < 2 or not parts[0].isdigit() or len(parts[0]) > 9:
        await say("risk_override.j2", {"error": "risk_withdraw_usage", "params": {}})
        return "risk_withdraw_usage"
    call = overrides.withdraw(
        int(parts[0]), parts[1], actor=scope.actor, departments=_departments(scope), now=ctx.clock.now(), zone=ctx.zone
    )
    return await _override_reply(say, call, "withdrawn")


@button("rov", roles=None)
@coordinators_only
async def risk_override_button(ctx: Context, scope: Scope, say: Replier) -> str:
    cb = RISK_OVERRIDE.parse(ctx.event.data)
    if cb is None:
        raise ServiceError("stale_button")
    call = overrides.decide(
        cb.id,
        cb.action == "approve",
        actor=scope.actor,
        departments=_departments(scope),
        now=ctx.clock.now(),
        zone=ctx.zone,
    )
    return await _override_reply(say, call, "decided")
