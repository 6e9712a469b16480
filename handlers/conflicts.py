"""/conflicts: list, declare and withdraw standing conflicts of interest.

Declaring: ``/conflicts 群英`` (a credit code or part of a name) lists every match, ten a page
with ◀ ▶ (the query travels in the page message's own context, so paging never disturbs another
conversation); a tap on a firm → the kind of conflict → a confirmation (Confirm / Cancel) →
registered. A firm whose name another active firm shares is labelled with its credit code."""

from __future__ import annotations

from core.callbacks import CONFLICT, Callback, key
from handlers.common import Replier, inspector_id
from handlers.paging import nav, page_context, pageable
from handlers.router import button, command
from models.directory import ConflictType
from models.messaging import Role
from services import conflicts
from services.assignments import RECUSAL_TYPES
from services.conflicts import ConflictError
from services.inbound import Context
from services.outbox import context_of

INSPECTOR = {Role.INSPECTOR}
TYPES = {t.value for t in RECUSAL_TYPES}


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
    return await _search(ctx, query, 1, None)


@pageable("cfs")
async def search_page(ctx: Context, page: int, edit_of: str | None) -> str:
    """A ◀ ▶ press under a search: the query is the one the message was made for."""
    query = (await context_of(edit_of)).get("query") if inspector_id(ctx) is not None else None
    if not query:
        await Replier(ctx)("refused.j2", {"code": "stale_button", "params": {}})
        return "stale"
    return await _search(ctx, query, page, edit_of)


async def _search(ctx: Context, query: str, page: int, edit_of: str | None) -> str:
    say = Replier(ctx)
    try:
        found = await conflicts.search(query, page)
    except ConflictError as exc:
        await say("conflict_refused.j2", {"code": exc.code, "params": exc.params})
        return exc.code
    buttons = [
        [
            key(
                "btn_pick_entity",
                CONFLICT.data("pick", e["id"]),
                name=e["name"][:24],
                uscc=e["uscc"] if e["same_name"] else "",
            )
        ]
        for e in found.items
    ]
    await say(
        "conflict_search.j2",
        {"query": query, **page_context(found), "buttons": buttons + nav("cfs", found)},
        edit_of=edit_of,
    )
    return "conflict_search"


@button("cfl", roles=INSPECTOR)
async def conflict_button(ctx: Context) -> str:
    cb = Callback.parse(ctx.event.data)
    say = Replier(ctx)
    me, now = inspector_id(ctx), ctx.clock.now()
    if cb is None:
        await say("refused.j2", {"code": "stale_button", "params": {}})
        return "bad_callback"
    cancel = [key("btn_cancel", CONFLICT.data("cancel", cb.id))]
    try:
        if cb.action == "pick":
            entity = await conflicts.entity_label(cb.id)
            rows = [[key(f"conflict_{t.value}", CONFLICT.data("type", cb.id, t.value))] for t in RECUSAL_TYPES]
            await say("conflict_type.j2", {"entity": entity, "buttons": rows + [cancel]})
            return "conflict_pick"
        if cb.action == "type" and cb.arg in TYPES:
            entity = await conflicts.entity_label(cb.id)
            confirm = [key("btn_confirm_conflict", CONFLICT.data("ok", cb.id, cb.arg)), *cancel]
            await say("conflict_confirm.j2", {"entity": entity, "type": cb.arg, "buttons": [confirm]})
            return "conflict_type"
        if cb.action == "ok" and cb.arg in TYPES:
            row = await conflicts.declare(me, cb.id, ConflictType(cb.arg), now, ctx.conn)
            entity = await row.entity
            await say("conflict_declared.j2", {"entity": entity.name, "type": cb.arg})
            return "conflict_declared"
        if cb.action == "cancel":
            await say("conflict_cancelled.j2", {})
            return "conflict_cancelled"
        if cb.action == "del":
            outcome = await conflicts.withdraw(me, cb.id, now, ctx.conn)
            await say("conflict_withdrawn.j2", {"again": outcome == "already_withdrawn"})
            return outcome
    except ConflictError as exc:
        await say("conflict_refused.j2", {"code": exc.code, "params": exc.params})
        return exc.code
    await say("refused.j2", {"code": "stale_button", "params": {}})
    return "bad_callback"
