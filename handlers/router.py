"""One place that decides which handler an inbound event goes to.

Commands register with ``@command("tasks", roles={Role.INSPECTOR})``, buttons with
``@button("asg")`` (the callback codec's prefix), other kinds with ``@on(EventKind.LOCATION)``.
A sender with no binding reaches only ``/start``; everything else gets the refusal template
and is otherwise ignored (recorded as ``unknown``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Awaitable, Callable

from bot.channels.base import EventKind
from models.messaging import Role
from services.inbound import Context
from services.outbox import reply

Handler = Callable[[Context], Awaitable[str | None]]


@dataclass(frozen=True)
class Route:
    handler: Handler
    roles: frozenset[Role] | None  # None = anyone, bound or not


COMMANDS: dict[str, Route] = {}
BUTTONS: dict[str, Route] = {}
KINDS: dict[EventKind, Route] = {}


def command(name: str, roles: set[Role] | None = frozenset(Role)):
    def deco(fn: Handler) -> Handler:
        COMMANDS[name] = Route(fn, frozenset(roles) if roles is not None else None)
        return fn

    return deco


def button(prefix: str, roles: set[Role] | None = frozenset(Role)):
    def deco(fn: Handler) -> Handler:
        BUTTONS[prefix] = Route(fn, frozenset(roles) if roles is not None else None)
        return fn

    return deco


def on(kind: EventKind, roles: set[Role] | None = frozenset(Role)):
    def deco(fn: Handler) -> Handler:
        KINDS[kind] = Route(fn, frozenset(roles) if roles is not None else None)
        return fn

    return deco


def _find(ctx: Context) -> Route | None:
    ev = ctx.event
    if ev.kind == EventKind.COMMAND:
        return COMMANDS.get(ev.command) or COMMANDS.get("_unknown_command")
    if ev.kind == EventKind.BUTTON:
        return BUTTONS.get(ev.data.split(":", 1)[0])
    return KINDS.get(ev.kind)


async def route(ctx: Context) -> str:
    """Run the matching handler; return the outcome recorded on the inbound event."""
    import handlers.features  # noqa: F401  (registers every handler module)

    found = _find(ctx)
    roles = {b.role for b in ctx.bindings}
    if found is not None and (found.roles is None or roles & found.roles):
        return (await found.handler(ctx)) or "handled"
    if not ctx.bindings:
        if ctx.event.kind in (EventKind.DELIVERY, EventKind.POLL_ANSWER):
            return "unknown"  # nothing to answer
        await reply(ctx.event, "unknown_sender.j2", locale=ctx.locale, now=ctx.clock.now(), connection=ctx.conn)
        return "unknown"
    await reply(ctx.event, "not_understood.j2", {"roles": sorted(r.value for r in roles)}, locale=ctx.locale,
                now=ctx.clock.now(), connection=ctx.conn)
    return "not_understood"
