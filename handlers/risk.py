"""/risk CREDIT-CODE|NAME: an entity's credit-risk class, score and reasons, for coordinators only;
/riskmodels: the class mix now against the approved one, the proposed model versions with their
comparison, and Approve / Reject buttons
(audited as the coordinator who pressed).

Anyone else gets the coordinators' standard refusal (an unknown sender learns nothing), and a
command sent in a group acts for nobody (``handlers.router``): the group hears only the polite
refusal pointing to a private chat, so a class never lands in a group.
"""

from __future__ import annotations

from dataclasses import asdict

from core.callbacks import RISK_MODEL, Callback, key
from domain.errors import ServiceError
from handlers.common import Replier
from handlers.coordinator import coordinators_only
from handlers.router import button, command
from services.inbound import Context
from services.risk import classify, drift, versions
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
