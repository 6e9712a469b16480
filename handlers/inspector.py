"""An inspector's chat: /tasks, /task N, accept, and the recusal conversation.

Recusal: Recuse → conflict type (buttons) → optional free text (or Skip) → Confirm. The
conversation state lives in ``chat_state``; every button re-checks that the presser owns
the assignment and that it is still open, so stale and double taps are answered, not applied.
"""

from __future__ import annotations

from core.callbacks import ASSIGNMENT, FINDINGS, RECUSAL, Callback, key
from core.channel import EventKind
from domain import inputs
from handlers import onsite
from handlers.common import Replier, inspector_id
from handlers.router import button, command, on
from models.directory import ConflictType
from models.messaging import Role
from services import assignments, chatstate, recusals
from services.assignments import RECUSAL_TYPES, AssignmentError
from services.inbound import Context

INSPECTOR = {Role.INSPECTOR}
NOTE_LIMIT = 500


@command("tasks", roles=INSPECTOR)
async def tasks(ctx: Context) -> str:
    rows = await assignments.open_for(inspector_id(ctx), ctx.clock.now(), ctx.zone, ctx.conn)
    buttons = [[key("btn_show_task", ASSIGNMENT.data("show", r["assignment"]), no=r["assignment"])] for r in rows[:10]]
    await Replier(ctx)("tasks.j2", {"tasks": rows, "buttons": buttons})
    return "tasks"


@command("task", roles=INSPECTOR)
async def task(ctx: Context) -> str:
    aid = inputs.ident(ctx.event.argument)
    if aid is None:
        await Replier(ctx)("usage.j2", {"usage": "task"})
        return "usage"
    return await _show(ctx, aid)


async def _show(ctx: Context, aid: int) -> str:
    say = Replier(ctx)
    try:
        asg = await assignments.owned(inspector_id(ctx), aid, ctx.conn)
    except AssignmentError as exc:
        await say("refused.j2", {"code": exc.code, "params": exc.params})
        return exc.code
    view = await assignments.view(asg, ctx.clock.now(), ctx.zone, ctx.conn)
    await say("task.j2", {"task": view, "buttons": action_buttons(view)})
    return "task"


def action_buttons(view: dict) -> list:
    aid = view["assignment"]
    if view["status"] == "sent":
        return [
            [
                key("draw_btn_accept", ASSIGNMENT.data("accept", aid)),
                key("draw_btn_recuse", ASSIGNMENT.data("recuse", aid)),
            ]
        ]
    if view["status"] == "accepted":
        return [
            [key("draw_btn_recuse", ASSIGNMENT.data("recuse", aid))],
            [key("btn_record_result", FINDINGS.data("open", aid))],
        ]
    if view["status"] == "done":
        return [[key("btn_view_result", FINDINGS.data("open", aid))]]
    return []


@button("asg", roles=INSPECTOR)
async def assignment_button(ctx: Context) -> str:
    cb = Callback.parse(ctx.event.data)
    say = Replier(ctx)
    if cb is None:
        await say("refused.j2", {"code": "stale_button", "params": {}})
        return "bad_callback"
    if cb.action == "show":
        return await _show(ctx, cb.id)
    me = inspector_id(ctx)
    try:
        if cb.action == "accept":
            outcome, view = await assignments.accept(me, cb.id, ctx.clock, ctx.zone, ctx.conn)
            await say("accepted.j2", {"task": view, "again": outcome == "already_accepted"})
            if outcome == "accepted":  # take the buttons off the original message
                await say("task.j2", {"task": view, "buttons": action_buttons(view)}, edit_of=f"asg:{cb.id}:sent")
            return outcome
        if cb.action == "recuse":
            asg = await assignments.owned(me, cb.id, ctx.conn)
            await assignments.ensure_recusable(asg, ctx.conn)
            await chatstate.put(
                ctx.event.channel, ctx.event.sender, "recusal", "type", {"assignment": cb.id}, ctx.clock.now(), ctx.conn
            )
            await say("recusal_type.j2", {"no": asg.inspection.no, "buttons": recusal_type_buttons(cb.id)})
            return "recusal_started"
    except AssignmentError as exc:
        await say("refused.j2", {"code": exc.code, "params": exc.params})
        return exc.code
    await say("refused.j2", {"code": "stale_button", "params": {}})
    return "bad_callback"


def recusal_type_buttons(aid: int) -> list:
    rows = [[key(f"conflict_{t.value}", RECUSAL.data("type", aid, t.value))] for t in RECUSAL_TYPES]
    return rows + [[key("btn_cancel", RECUSAL.data("cancel", aid))]]


@button("rcs", roles=INSPECTOR)
async def recusal_button(ctx: Context) -> str:
    cb = Callback.parse(ctx.event.data)
    say = Replier(ctx)
    ev, now = ctx.event, ctx.clock.now()
    state = await chatstate.get(ev.channel, ev.sender, ctx.conn)
    current = state is not None and state.flow == "recusal" and cb is not None and state.data.get("assignment") == cb.id
    if not current:
        await say("refused.j2", {"code": "stale_button", "params": {}})
        return "stale"
    if cb.action == "cancel":
        await chatstate.clear(ev.channel, ev.sender, ctx.conn)
        await say("recusal_cancelled.j2", {})
        return "recusal_cancelled"
    if cb.action == "type" and cb.arg in {t.value for t in RECUSAL_TYPES}:
        await chatstate.put(
            ev.channel, ev.sender, "recusal", "note", {"assignment": cb.id, "type": cb.arg}, now, ctx.conn
        )
        await say(
            "recusal_note.j2",
            {
                "type": cb.arg,
                "limit": NOTE_LIMIT,
                "buttons": [
                    [
                        key("btn_skip", RECUSAL.data("skip", cb.id)),
                        key("btn_cancel", RECUSAL.data("cancel", cb.id)),
                    ]
                ],
            },
        )
        return "recusal_type"
    if cb.action == "skip" and state.step == "note":
        return await _confirm_step(ctx, state.data, "")
    if cb.action == "confirm" and state.step == "confirm":
        await chatstate.clear(ev.channel, ev.sender, ctx.conn)
        try:
            done = await recusals.recuse(
                inspector_id(ctx),
                cb.id,
                ConflictType(state.data["type"]),
                state.data.get("note", ""),
                clock=ctx.clock,
                zone=ctx.zone,
                locale=ctx.locale,
            )
        except AssignmentError as exc:
            await say("refused.j2", {"code": exc.code, "params": exc.params})
            return exc.code
        await say("recused.j2", {"replaced": done.replacement_name is not None})
        return "recused"
    await say("refused.j2", {"code": "stale_button", "params": {}})
    return "stale"


async def _confirm_step(ctx: Context, data: dict, note: str) -> str:
    aid = data["assignment"]
    await chatstate.put(
        ctx.event.channel, ctx.event.sender, "recusal", "confirm", {**data, "note": note}, ctx.clock.now(), ctx.conn
    )
    await Replier(ctx)(
        "recusal_confirm.j2",
        {
            "type": data["type"],
            "note": note,
            "buttons": [
                [
                    key("btn_confirm_recusal", RECUSAL.data("confirm", aid)),
                    key("btn_cancel", RECUSAL.data("cancel", aid)),
                ]
            ],
        },
    )
    return "recusal_note"


@on(EventKind.TEXT, roles=INSPECTOR)
async def text(ctx: Context) -> str:
    """Free text belongs to the open conversation, if any."""
    ev = ctx.event
    state = await chatstate.get(ev.channel, ev.sender, ctx.conn)
    if state is not None and state.flow in onsite.TEXT_FLOWS:  # a findings note, a correction's reason
        return await onsite.flow_text(ctx, state)
    if state is not None and state.flow == "recusal" and state.step == "note" and not ev.edited:
        return await _confirm_step(ctx, state.data, ev.text.strip()[:NOTE_LIMIT])
    if ev.edited:
        await Replier(ctx)("edit_ignored.j2", {})
        return "edit_ignored"
    await Replier(ctx)("not_understood.j2", {"roles": [b.role.value for b in ctx.bindings]})
    return "not_understood"
