"""/risk CREDIT-CODE|NAME: an entity's credit-risk class, score and reasons, for coordinators only.

Anyone else gets the coordinators' standard refusal (an unknown sender learns nothing), and a
command sent in a group acts for nobody (``handlers.router``), so a class never lands in a group.
"""

from __future__ import annotations

from dataclasses import asdict

from handlers.common import Replier
from handlers.coordinator import coordinators_only
from handlers.router import command
from services.inbound import Context
from services.risk import classify
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
