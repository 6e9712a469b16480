"""An inspector's chat: /tasks (paged), /task REF, accept (/accept REF or the button), and the
recusal conversation (/recuse REF or the button). REF is the inspection's public reference
(``P1/2026-12-01/7``, :mod:`domain.refs`); internal ids travel only inside button data.

Recusal: Recuse → conflict type (buttons) → optional free text (or Skip) → Confirm. The
conversation state lives in ``chat_state``; every button re-checks that the presser owns
the assignment and that it is still open, so stale and double taps are answered, not applied.
"""

from __future__ import annotations

from core.callbacks import ASSIGNMENT, FINDINGS, RECUSAL, Callback, key
from core.channel import EventKind
from domain.refs import inspection_ref
from handlers import onsite
from handlers.common import ANSWERED, Replier, inspector_id, typed_assignment
from handlers.paging import nav, page_context, pageable
from handlers.router import button, command, on
from models.directory import ConflictType
from models.messaging import Role
from services import assignments, chatstate, recusals
from services import tasks as tasks_service
from services.assignments import RECUSAL_TYPES, AssignmentError
from services.inbound import Context
from services.scope import page_of

INSPECTOR = {Role.INSPECTOR}
NOTE_LIMIT = 500


@command("tasks", roles=INSPECTOR)
async def tasks(ctx: Context) -> str:
    return await tasks_page(ctx, 1, None)


@pageable("tasks")
async def tasks_page(ctx: Context, page: int, edit_of: str | None) -> str:
    """One line per open task (reference, firm, state, start), ten a page with ◀ ▶: no buttons per task."""
    me = inspector_id(ctx)
    if me is None:  # a page button pressed by someone who is not (or no longer) an inspector
        await Replier(ctx)("refused.j2", {"code": "stale_button", "params": {}})
        return "stale"
    shown = page_of(await tasks_service.open_tasks(me, ctx.clock.now(), ctx.zone, ctx.conn), page)
    await Replier(ctx)("tasks.j2", {**page_context(shown), "buttons": nav("tasks", shown)}, edit_of=edit_of)
    return "tasks"


@command("task", roles=INSPECTOR)
async def task(ctx: Context) -> str:
    aid = await typed_assignment(ctx, "task", required=True)
    if aid is None or aid == ANSWERED:
        return "usage"
    return await _show(ctx, aid)


@command("accept", roles=INSPECTOR)
async def accept_command(ctx: Context) -> str:
    aid = await typed_assignment(ctx, "accept", required=True)
    if aid is None or aid == ANSWERED:
        return "usage"
    return await _act(ctx, "accept", aid)


@command("recuse", roles=INSPECTOR)
async def recuse_command(ctx: Context) -> str:
    aid = await typed_assignment(ctx, "recuse", required=True)
    if aid is None or aid == ANSWERED:
        return "usage"
    return await _act(ctx, "recuse", aid)


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
    return await _act(ctx, cb.action, cb.id)


async def _act(ctx: Context, action: str, aid: int) -> str:
    say, me = Replier(ctx), inspector_id(ctx)
    try:
        if action == "accept":
            outcome, view = await assignments.accept(me, aid, ctx.clock, ctx.zone, ctx.conn)
            await say("accepted.j2", {"task": view, "again": outcome == "already_accepted"})
            if outcome == "accepted":  # take the buttons off the original message
                await say("task.j2", {"task": view, "buttons": action_buttons(view)}, edit_of=f"asg:{aid}:sent")
            return outcome
        if action == "recuse":
            asg = await assignments.owned(me, aid, ctx.conn)
            await assignments.ensure_recusable(asg, ctx.conn)
            await chatstate.put(
                ctx.event.channel, ctx.event.sender, "recusal", "type", {"assignment": aid}, ctx.clock.now(), ctx.conn
            )
            ref = inspection_ref(asg.draw.draw_ref, asg.inspection.no)
            await say("recusal_type.j2", {"ref": ref, "buttons": recusal_type_buttons(aid)})
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
