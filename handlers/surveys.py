"""The integrity survey's inbound side: entity replies (SMS and Telegram), poll answers,
SMS delivery receipts, and ``/integrity`` for coordinators.

An SMS sender is an entity's mobile number, not a chat binding, so the SMS text handler takes
every sender (``roles=None``) on the ``sms`` channel only; Telegram text from an entity's linked
chat comes here too, while an inspector's Telegram text stays with handlers/inspector.py.
"""

from __future__ import annotations

from datetime import timedelta

from core.channel import EventKind
from domain import inputs
from domain.onsite import parse_objections
from handlers.common import Replier, binding_of
from handlers.router import command, on, unknown_template
from models.messaging import Role
from services.inbound import Context
from services.onsite import objection
from services.onsite.shared import OnsiteError
from services.outbox import reply
from services.surveys import integrity, receipts, replies
from services.surveys.enter import sign_for

MAX_DAYS = 366


def _ref(ctx: Context) -> str:
    return f"{ctx.event.channel}:{ctx.event.external_id}"


@on(EventKind.TEXT, roles=None, channel="sms")
async def sms_reply(ctx: Context) -> str:
    """A text from a phone: objections to published results when it names a notice's code
    (``异议 G7K3Q9M2 …``, one or more, each on a line of its own), else the survey of the entity
    behind that mobile."""
    ev = ctx.event
    found = parse_objections(ev.text)
    if found:
        return await _objections(ctx, found)
    return await replies.handle_reply(
        ev.sender, ev.text, ctx.clock.now(), channel="sms", zone=ctx.zone, ref=_ref(ctx), connection=ctx.conn
    )


@on(EventKind.TEXT, roles={Role.ENTITY}, channel="telegram")
async def telegram_reply(ctx: Context) -> str:
    """A text in an entity's linked chat: answers typed instead of tapped, a comment, or TD."""
    ev = ctx.event
    if ev.edited:  # an edit is never applied as a new answer
        return "edit_ignored"
    return await replies.handle_reply(
        ev.sender, ev.text, ctx.clock.now(), channel="telegram", zone=ctx.zone, ref=_ref(ctx), connection=ctx.conn
    )


@on(EventKind.POLL_ANSWER, roles={Role.ENTITY})
async def poll_answer(ctx: Context) -> str:
    ev = ctx.event
    return await replies.handle_poll_answer(
        ev.sender,
        ev.poll_id,
        ev.option_ids,
        ctx.clock.now(),
        zone=ctx.zone,
        ref=_ref(ctx),
        event_key=ev.external_id,
        connection=ctx.conn,
    )


@on(EventKind.DELIVERY, roles=None)
async def delivery(ctx: Context) -> str:
    """A delivery receipt (its sender is the recipient's number, not a person talking to us)."""
    ev = ctx.event
    return await receipts.delivery_status(
        ev.message_id,
        ev.status,
        ev.error_code,
        ctx.clock.now(),
        channel=ev.channel,
        zone=ctx.zone,
        connection=ctx.conn,
        ref=ev.external_id,
    )


async def _objections(ctx: Context, found: list[tuple[str, str]]) -> str:
    """Each objection of the text in turn, each answered; a wrong code ends the text there (one
    text is one guess at a code: services.onsite.codes counts the sender's wrong ones by text)."""
    sign = sign_for(ctx.settings) if ctx.settings is not None else None
    outcome = "objection_lodged"
    for code, reason in found:
        try:
            await objection.lodge(
                code,
                reason,
                ctx.clock.now(),
                channel="sms",
                sender=ctx.event.sender,
                zone=ctx.zone,
                sign=sign,
                conn=ctx.conn,
            )
        except OnsiteError as exc:
            await Replier(ctx)("objection_refused.j2", {"code": exc.code, "params": exc.params, "sign": sign or ""})
            outcome = exc.code
            if exc.code in ("notice_not_found", "code_locked"):
                break
    return outcome


def _days(argument: str) -> int | None:
    arg = argument.strip()
    if not arg:
        return integrity.DEFAULT_WINDOW.days
    return inputs.number(arg, minimum=1, maximum=MAX_DAYS, typed=True)


@command("integrity", roles=None)
async def integrity_command(ctx: Context) -> str:
    """/integrity [days]: the scores of the coordinator's departments' inspectors; anyone else is refused."""
    coordinator = binding_of(ctx, Role.COORDINATOR)
    if coordinator is None:
        if not ctx.bindings:
            await reply(
                ctx.event, unknown_template(ctx.event), locale=ctx.locale, now=ctx.clock.now(), connection=ctx.conn
            )
            return "unknown"
        await Replier(ctx)("integrity_refused.j2", {"reason": "not_coordinator"})
        return "integrity_refused"
    days = _days(ctx.event.argument)
    if days is None:
        await Replier(ctx)("integrity_refused.j2", {"reason": "bad_days", "max": MAX_DAYS})
        return "usage"
    report = await integrity.integrity(coordinator.departments, timedelta(days=days), ctx.clock.now(), coordinator=True)
    await Replier(ctx)("integrity.j2", integrity.report_context(report))
    return "integrity"
