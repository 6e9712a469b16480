"""The bot's own membership of a chat changed (Telegram ``my_chat_member``): the person blocked
or unblocked the bot, or a group removed or added it. Marks the chat unreachable or clears the
mark (docs/messaging.md, "Unreachable: held, not thrown away"); nothing is answered."""

from __future__ import annotations

from core.channel import EventKind
from handlers.router import on
from services.inbound import Context
from services.reachability import membership_changed


@on(EventKind.MEMBERSHIP, roles=None)
async def membership(ctx: Context) -> str:
    ev = ctx.event
    return await membership_changed(ev.channel, ev.sender, ev.status, ctx.clock.now(), ctx.conn)
