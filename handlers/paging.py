"""Paging for every long list in chat: ten items a page, ◀ / ▶ buttons ``pg:<list>:<page>``.

A list registers the function that shows one page (``@pageable("plans")``); a page button runs
it again with the new page, editing the message the button was on. The list function does its
own access check, so a page button forged by someone else is refused like the command."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from core.callbacks import Callback, key
from handlers.common import Replier
from handlers.router import button, unknown_template
from services.inbound import Context
from services.outbox import sent_message_key
from services.scope import Page

ShowPage = Callable[[Context, int, "str | None"], Awaitable[str]]  # (ctx, page, edit_of) -> outcome
LISTS: dict[str, ShowPage] = {}


def pageable(name: str):
    """Register ``fn(ctx, page, edit_of)`` as the list ``name``."""

    def deco(fn: ShowPage) -> ShowPage:
        LISTS[name] = fn
        return fn

    return deco


def page_context(page: Page) -> dict:
    return {"items": page.items, "page": page.page, "pages": page.pages, "total": page.total, "first": page.first}


def nav(name: str, page: Page) -> list[list[dict]]:
    """The ◀ / ▶ row under a page (none when everything fits on one)."""
    if page.pages <= 1:
        return []
    row = []
    if page.page > 1:
        row.append(key("btn_page_prev", Callback("pg", name, page.page - 1).pack(), page=page.page - 1))
    if page.page < page.pages:
        row.append(key("btn_page_next", Callback("pg", name, page.page + 1).pack(), page=page.page + 1))
    return [row]


@button("pg", roles=None)
async def page_button(ctx: Context) -> str:
    cb = Callback.parse(ctx.event.data)
    show = LISTS.get(cb.action) if cb is not None else None
    if show is None:
        if not ctx.bindings:
            await Replier(ctx)(unknown_template(ctx.event))
            return "unknown"
        await Replier(ctx)("coord_error.j2", {"code": "stale_button", "params": {}})
        return "bad_callback"
    ev = ctx.event
    return await show(ctx, cb.id, await sent_message_key(ev.channel, ev.sender, ev.message_id))
