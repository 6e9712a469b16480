"""/start CODE binds the sender (in a private chat; the router keeps groups away); /help lists what the sender's roles can do."""

from __future__ import annotations

from handlers.router import command, unknown_template
from models.messaging import Channel
from services.identity import IdentityError, redeem
from services.inbound import Context
from services.outbox import reply


@command("start", roles=None)
async def start(ctx: Context) -> str:
    ev, now = ctx.event, ctx.clock.now()
    if not ev.argument:
        template = "help.j2" if ctx.bindings else unknown_template(ev)
        # WeCom says so each time the member opens the application: answered once a day, not each time
        once = f"opened:{ev.channel}:{ev.person}:{now.astimezone(ctx.zone).date()}" if ev.opened else ""
        await reply(
            ev,
            template,
            {"roles": [b.role.value for b in ctx.bindings]},
            locale=ctx.locale,
            now=now,
            connection=ctx.conn,
            once=once,
        )
        return "start_without_code"
    try:
        bound = await redeem(ev.argument, Channel(ev.channel), ev.person, ev.sender_name, ctx.clock)
    except IdentityError as exc:
        await reply(ev, "invite_refused.j2", {"reason": exc.code}, locale=ctx.locale, now=now, connection=ctx.conn)
        return exc.code
    await reply(
        ev,
        "welcome.j2",
        {"name": bound.name, "role": bound.binding.role.value},
        locale=bound.binding.locale,
        now=now,
        connection=ctx.conn,
        binding_id=bound.binding.id,
    )
    return "bound"


@command("help")
async def help_(ctx: Context) -> str:
    await reply(
        ctx.event,
        "help.j2",
        {"roles": sorted(b.role.value for b in ctx.bindings)},
        locale=ctx.locale,
        now=ctx.clock.now(),
        connection=ctx.conn,
    )
    return "help"
