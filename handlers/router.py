"""One place that decides which handler an inbound event goes to.

Commands register with ``@command("tasks", roles={Role.INSPECTOR})``, buttons with
``@button("asg")`` (the callback codec's prefix), other kinds with ``@on(EventKind.LOCATION)``.
Several handlers may take one kind, told apart by channel and role (an SMS reply from an
entity's mobile, a Telegram text from an inspector): the first registered one whose channel
and roles fit the sender runs. A sender with no binding reaches only ``/start`` and the
handlers registered with ``roles=None``; everything else gets the refusal template and is
otherwise ignored (recorded as ``unknown``).
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
    channel: str | None = None  # None = any channel

    def allows(self, roles: set[Role]) -> bool:
        return self.roles is None or bool(roles & self.roles)


COMMANDS: dict[str, Route] = {}
BUTTONS: dict[str, Route] = {}
KINDS: dict[EventKind, list[Route]] = {}


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


def on(kind: EventKind, roles: set[Role] | None = frozenset(Role), channel: str | None = None):
    def deco(fn: Handler) -> Handler:
        same = (fn.__module__, fn.__qualname__)  # registering again (a reload) replaces, never doubles
        others = [r for r in KINDS.get(kind, []) if (r.handler.__module__, r.handler.__qualname__) != same]
        KINDS[kind] = others + [Route(fn, frozenset(roles) if roles is not None else None, channel)]
        return fn

    return deco


def _find(ctx: Context, roles: set[Role]) -> Route | None:
    ev = ctx.event
    if ev.kind == EventKind.COMMAND:
        return COMMANDS.get(ev.command) or COMMANDS.get("_unknown_command")
    if ev.kind == EventKind.BUTTON:
        return BUTTONS.get(ev.data.split(":", 1)[0])
    fitting = [r for r in KINDS.get(ev.kind, ()) if r.channel in (None, ev.channel)]
    return next((r for r in fitting if r.allows(roles)), fitting[0] if fitting else None)


_registered = False


def _register() -> None:
    """Import every handler module once, so their routes exist (not at import time: they import us)."""
    global _registered
    import handlers.features  # noqa: F401

    _registered = True


async def route(ctx: Context) -> str:
    """Run the matching handler; return the outcome recorded on the inbound event."""
    if not _registered:
        _register()
    roles = {b.role for b in ctx.bindings}
    found = _find(ctx, roles)
    if found is not None and found.allows(roles):
        return (await found.handler(ctx)) or "handled"
    if not ctx.bindings:
        if ctx.event.kind in (EventKind.DELIVERY, EventKind.POLL_ANSWER):
            return "unknown"  # nothing to answer
        await reply(ctx.event, "unknown_sender.j2", locale=ctx.locale, now=ctx.clock.now(), connection=ctx.conn)
        return "unknown"
    await reply(ctx.event, "not_understood.j2", {"roles": sorted(r.value for r in roles)}, locale=ctx.locale,
                now=ctx.clock.now(), connection=ctx.conn)
    return "not_understood"
