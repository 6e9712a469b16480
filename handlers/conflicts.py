"""/conflicts: list, declare (find the entity by credit code or part of its name) and withdraw
standing conflicts of interest."""

from __future__ import annotations

from core.callbacks import CONFLICT, Callback, key
from handlers.common import Replier, inspector_id
from handlers.router import button, command
from models.directory import ConflictType
from models.messaging import Role
from services import conflicts
from services.assignments import RECUSAL_TYPES
from services.conflicts import ConflictError
from services.inbound import Context

INSPECTOR = {Role.INSPECTOR}


@command("conflicts", roles=INSPECTOR)
async def conflicts_command(ctx: Context) -> str:
    say = Replier(ctx)
    me, now = inspector_id(ctx), ctx.clock.now()
    query = ctx.event.argument.strip()
    if not query:
        rows = await conflicts.listing(me, now)
        buttons = [
            [key("btn_withdraw", CONFLICT.data("del", r["id"]), entity=r["entity"][:20])]
            for r in rows
            if r["withdrawable"]
        ][:10]
        await say("conflicts.j2", {"conflicts": rows, "buttons": buttons})
        return "conflicts_listed"
    try:
        found = await conflicts.search(query)
    except ConflictError as exc:
        await say("conflict_refused.j2", {"code": exc.code, "params": exc.params})
        return exc.code
    buttons = [[key("btn_pick_entity", CONFLICT.data("pick", e["id"]), name=e["name"][:24])] for e in found]
    await say("conflict_search.j2", {"query": query, "found": found, "buttons": buttons})
    return "conflict_search"


@button("cfl", roles=INSPECTOR)
async def conflict_button(ctx: Context) -> str:
    cb = Callback.parse(ctx.event.data)
    say = Replier(ctx)
    me, now = inspector_id(ctx), ctx.clock.now()
    if cb is None:
        await say("refused.j2", {"code": "stale_button", "params": {}})
        return "bad_callback"
    try:
        if cb.action == "pick":
            rows = [[key(f"conflict_{t.value}", CONFLICT.data("type", cb.id, t.value))] for t in RECUSAL_TYPES]
            await say("conflict_type.j2", {"buttons": rows})
            return "conflict_pick"
        if cb.action == "type" and cb.arg in {t.value for t in RECUSAL_TYPES}:
            row = await conflicts.declare(me, cb.id, ConflictType(cb.arg), now, ctx.conn)
            entity = await row.entity
            await say("conflict_declared.j2", {"entity": entity.name, "type": cb.arg})
            return "conflict_declared"
        if cb.action == "del":
            outcome = await conflicts.withdraw(me, cb.id, now, ctx.conn)
            await say("conflict_withdrawn.j2", {"again": outcome == "already_withdrawn"})
            return outcome
    except ConflictError as exc:
        await say("conflict_refused.j2", {"code": exc.code, "params": exc.params})
        return exc.code
    await say("refused.j2", {"code": "stale_button", "params": {}})
    return "bad_callback"
