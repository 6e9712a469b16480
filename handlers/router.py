"""One place that decides which handler an inbound event goes to.

Commands register with ``@command("tasks", roles={Role.INSPECTOR})``, buttons with
``@button("asg")`` (the callback codec's prefix), other kinds with ``@on(EventKind.LOCATION)``.
Several handlers may take one kind, told apart by channel and role (an SMS reply from an
entity's mobile, a Telegram text from an inspector): the first registered one whose channel
and roles fit the sender runs. A sender with no binding reaches only ``/start`` and the
handlers registered with ``roles=None``; everything else gets the refusal template and is
otherwise ignored (recorded as ``unknown``); a bound sender whose roles do not fit a
coordinator's command gets the coordinators' refusal (``coord_refused``), and a coordinator or
admin sending an inspector's command (``/tasks``, ``/recheck`` …) the inspectors' one
(``insp_refused``). Roles are the sender's own (looked up by their user
id); an event from a group, or a press on a message meant for someone else, acts for nobody
(:func:`for_nobody`), and a command addressed to another bot is ignored.

The router imports no handler: each handler module registers itself with it when imported, and
``handlers/__init__.py`` imports them all (through :mod:`handlers.features`), so any import of
the package has every route in place.

The router also says which commands and buttons may start long work (:func:`long_work`, from
:data:`LONG_COMMANDS` and :data:`LONG_BUTTONS`): only those get a database transaction of their
own; every other event is committed by group commit with the events arriving with it
(``services.inbound.GROUPED_KINDS``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from core.channel import EventKind, InboundEvent
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


#: The roles of a coordinator's commands: anyone else bound is refused with ``coord_refused.j2``.
COORDINATOR_ROLES = frozenset({Role.COORDINATOR, Role.ADMIN})
#: The roles of an inspector's commands: a coordinator or admin is refused with ``insp_refused.j2``.
INSPECTOR_ROLES = frozenset({Role.INSPECTOR})

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


#: Commands that may start long work: a draw is previewed or run (``/draw``), one is verified
#: (``/verify``), a whole draw's assignments are counted (``/status``), a monthly report and its
#: chart are built (``/report``), a survey chain is checked (``/integrity``). Each runs in a
#: transaction of its own, never batched with other events.
LONG_COMMANDS = frozenset({"draw", "verify", "status", "report", "integrity"})
#: Buttons (callback prefixes) that may start long work: a draw confirmed (``drw``), an off-schedule
#: draw released by a second coordinator (``ofs``), a recusal confirmed with its replacement draw
#: (``rcs``), a recusal's rejection with its restoration (``rjt``).
LONG_BUTTONS = frozenset({"drw", "ofs", "rcs", "rjt"})


def long_work(event: InboundEvent) -> bool:
    """Whether ``event`` may start long work, so needs a transaction of its own (never a group
    commit: it would hold up the events batched with it, and on SQLite run on the event loop).
    Commands and buttons not declared in :data:`LONG_COMMANDS` / :data:`LONG_BUTTONS` are short."""
    if event.kind == EventKind.COMMAND:
        return event.command in LONG_COMMANDS
    if event.kind == EventKind.BUTTON:
        return event.data.split(":", 1)[0] in LONG_BUTTONS
    return False


def _find(ctx: Context, roles: set[Role]) -> Route | None:
    ev = ctx.event
    if ev.kind == EventKind.COMMAND:
        return COMMANDS.get(ev.command) or COMMANDS.get("_unknown_command")
    if ev.kind == EventKind.BUTTON:
        return BUTTONS.get(ev.data.split(":", 1)[0])
    fitting = [r for r in KINDS.get(ev.kind, ()) if r.channel in (None, ev.channel)]
    return next((r for r in fitting if r.allows(roles)), fitting[0] if fitting else None)


async def route(ctx: Context) -> str:
    """Run the matching handler; return the outcome recorded on the inbound event."""
    if ctx.event.elsewhere:
        return "other_bot"  # a /command@other_bot: not ours to act on or answer, in any chat
    if not ctx.event.person:
        return await for_nobody(ctx)
    roles = {b.role for b in ctx.bindings}
    found = _find(ctx, roles)
    if found is not None and found.allows(roles):
        return (await found.handler(ctx)) or "handled"
    if not ctx.bindings:
        if ctx.event.kind in (EventKind.DELIVERY, EventKind.POLL_ANSWER):
            return "unknown"  # nothing to answer
        await reply(ctx.event, unknown_template(ctx.event), locale=ctx.locale, now=ctx.clock.now(), connection=ctx.conn)
        return "unknown"
    if found is not None and ctx.event.kind == EventKind.COMMAND and found.roles and found.roles <= COORDINATOR_ROLES:
        # /approve, /uphold, /refer … from an inspector: the coordinators' one refusal, as the
        # coordinators' other commands give it (not "not understood" for a command that exists)
        await reply(ctx.event, "coord_refused.j2", locale=ctx.locale, now=ctx.clock.now(), connection=ctx.conn)
        return "coord_refused"
    if (
        found is not None
        and ctx.event.kind == EventKind.COMMAND
        and found.roles
        and found.roles <= INSPECTOR_ROLES
        and roles & COORDINATOR_ROLES
    ):
        # /tasks, /recheck … from a coordinator: the same polite refusal, the other way round (a
        # firm's chat is still "not understood": it has no business with either kind of command)
        await reply(ctx.event, "insp_refused.j2", locale=ctx.locale, now=ctx.clock.now(), connection=ctx.conn)
        return "insp_refused"
    await reply(
        ctx.event,
        "not_understood.j2",
        {"roles": sorted(r.value for r in roles)},
        locale=ctx.locale,
        now=ctx.clock.now(),
        connection=ctx.conn,
    )
    return "not_understood"


def unknown_template(event: InboundEvent) -> str:
    """The polite refusal for a sender we do not know: on WeCom no invite exists to point to."""
    return "unknown_member.j2" if event.channel == "wecom" else "unknown_sender.j2"


async def for_nobody(ctx: Context) -> str:
    """An event that acts for nobody: from a group, or a button pressed by someone other than the
    person the message was for (docs/messaging.md, "Groups"). Nothing is run and nothing of
    anyone's business is said into the group: a button press gets a short refusal on the
    presser's own screen; ``/start`` gets, once per group, the hint that invites are opened in a
    private chat; any other command of ours gets, once per group and member, the polite refusal
    that points to a private chat (a member who tried /risk in a group otherwise heard nothing and
    could not tell a refusal from a bot that is down); the rest is recorded and ignored."""
    ev = ctx.event
    if ev.kind == EventKind.BUTTON:
        ctx.notes["button_answer"] = "button_not_yours"
        return "foreign_press"
    if ev.kind != EventKind.COMMAND:
        return "group_ignored"
    if ev.command == "start":  # once per group
        kind, once = "group_start", f"group_start:{ev.channel}:{ev.sender}"
    elif ev.in_group and ev.command in COMMANDS:  # once per group and member
        kind, once = "group_command", f"group_command:{ev.channel}:{ev.sender}:{ev.user}"
    else:
        return "group_ignored"
    await reply(ev, f"{kind}.j2", locale=ctx.locale, now=ctx.clock.now(), connection=ctx.conn, once=once)
    return kind
