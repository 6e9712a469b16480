"""A coordinator's chat: /plans, /plan, /draw (preview, then confirm), /status, /pending,
/recusals (review, reject), /alerts (acknowledge), /report, /verify, /beacon (values typed for a
firing's announced sources, confirmed by another coordinator's button).

Every command and button is open to any sender at the router and checks here who is asking:
a coordinator sees their departments' plans, an admin everything, anyone else gets a
refusal (an unknown chat learns nothing). Something outside the coordinator's departments is
answered exactly like something missing. Rejecting a recusal is a conversation kept in
``chat_state``: Reject → (optional reason as a message) → Confirm.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from functools import wraps
from pathlib import Path

from core import drand
from core.callbacks import ALERT, BEACON, DRAW, OFF_SCHEDULE, PLAN, REJECTION, Callback, key
from core.channel import EventKind
from domain import inputs
from domain.errors import ServiceError
from handlers import inspector
from handlers.common import Replier
from handlers.paging import nav, page_context, pageable
from handlers.router import button, command, on, unknown_template
from models.messaging import Role
from services import alerts, chatstate, plan_views, recusals, reports
from services.draws import beacon_entry, confirm, offschedule, status
from services.draws.announce import MAX_REASON
from services.inbound import Context
from services.scope import Scope

COORDINATORS = {Role.COORDINATOR, Role.ADMIN}
NOTE_LIMIT = 500


def coordinators_only(fn: Callable[..., Awaitable[str]]) -> Callable[..., Awaitable[str]]:
    """Run ``fn(ctx, scope, say, *args)`` for a coordinator or admin; refuse anyone else, and
    answer a refused use case (missing, outside the scope, stale) with its reason."""

    @wraps(fn)
    async def wrapped(ctx: Context, *args) -> str:
        say = Replier(ctx)
        scope = Scope.of(ctx.bindings)
        if scope is None:
            if not ctx.bindings:
                await say(unknown_template(ctx.event))
                return "unknown"
            await say("coord_refused.j2")
            return "coord_refused"
        try:
            return await fn(ctx, scope, say, *args)
        except ServiceError as exc:
            await say("coord_error.j2", {"code": exc.code, "params": exc.params})
            return exc.code

    return wrapped


def _argument(ctx: Context) -> str:
    return ctx.event.argument.strip()


def _word(ctx: Context, maximum: int) -> str | None:
    """The command's one argument (a plan code, a draw reference), or None: absent, too long for
    any code of its kind, unprintable — answered with the command's usage either way."""
    return inputs.word(ctx.event.argument, maximum)


async def _usage(say: Replier, usage: str) -> str:
    await say("coord_error.j2", {"code": "usage", "params": {"usage": usage}})
    return "usage"


# --- plans --------------------------------------------------------------------------------------


@command("plans", roles=None)
async def plans_command(ctx: Context) -> str:
    return await show_plans(ctx, 1, None)


@pageable("plans")
@coordinators_only
async def show_plans(ctx: Context, scope: Scope, say: Replier, page: int, edit_of: str | None) -> str:
    shown = await plan_views.plans_page(scope, page, ctx.clock.now(), ctx.zone)
    rows = [[key("btn_plan_show", PLAN.data("show", p["id"]), code=p["code"])] for p in shown.items]
    await say("coord_plans.j2", {**page_context(shown), "buttons": rows + nav("plans", shown)}, edit_of=edit_of)
    return "plans"


@command("plan", roles=None)
@coordinators_only
async def plan_command(ctx: Context, scope: Scope, say: Replier) -> str:
    code = _word(ctx, inputs.CODE_MAX)
    if code is None:
        return await _usage(say, "plan")
    return await _show_plan(ctx, scope, say, code)


async def _show_plan(ctx: Context, scope: Scope, say: Replier, code: str) -> str:
    plan = await plan_views.plan_detail(scope, code, ctx.clock.now(), ctx.zone)
    buttons = [[key("btn_draw_preview", DRAW.data("preview", plan["id"]))]]
    await say("coord_plan.j2", {"plan": plan, "buttons": buttons})
    return "plan"


@button("pln", roles=None)
@coordinators_only
async def plan_button(ctx: Context, scope: Scope, say: Replier) -> str:
    cb = Callback.parse(ctx.event.data)
    if cb is None or cb.action != "show":
        raise ServiceError("stale_button")
    return await _show_plan(ctx, scope, say, await plan_views.plan_code(scope, cb.id))


# --- draw: preview, then confirm ------------------------------------------------------------------


@command("draw", roles=None)
@coordinators_only
async def draw_command(ctx: Context, scope: Scope, say: Replier) -> str:
    """/draw PLAN: the preview. /draw PLAN <reason>: ask for an off-schedule draw."""
    first, *rest = ctx.event.argument.split(maxsplit=1) or [""]
    reason = rest[0] if rest else ""
    code = inputs.word(first, inputs.CODE_MAX)
    if code is None:
        return await _usage(say, "draw")
    if reason.strip():
        return await _request(ctx, scope, say, code, reason)
    return await _preview(ctx, scope, say, code)


async def _request(ctx: Context, scope: Scope, say: Replier, code: str, reason: str) -> str:
    done = await offschedule.request_for_code(
        scope, code, reason, clock=ctx.clock, zone=ctx.zone, ttl=_off_schedule_ttl(ctx)
    )
    await say("coord_offsched_requested.j2", done.context())
    return "off_schedule_requested"


def _off_schedule_ttl(ctx: Context) -> timedelta:
    """How long a request waits for a second coordinator (INSPECTBOT_OFF_SCHEDULE_TTL_HOURS)."""
    return offschedule.DEFAULT_TTL if ctx.settings is None else timedelta(hours=ctx.settings.off_schedule_ttl_hours)


async def _preview(ctx: Context, scope: Scope, say: Replier, code: str) -> str:
    p = await confirm.draw_preview(scope, code, clock=ctx.clock, zone=ctx.zone)
    if p.firing_id is not None and not p.due:
        buttons = []  # announced for later: the scheduler draws it
    elif p.off_schedule:  # a typed reason, then another coordinator's confirmation
        buttons = [[key("btn_offsched_ask", OFF_SCHEDULE.data("ask", p.plan_id))]]
    else:
        confirm_data = (
            DRAW.data("go", p.firing_id) if p.firing_id is not None else DRAW.data("now", p.plan_id, p.firings)
        )
        buttons = [[key("btn_draw_confirm", confirm_data), key("btn_cancel", DRAW.data("cancel", p.plan_id))]]
    await say("coord_draw_preview.j2", {**p.context(), "buttons": buttons})
    return "draw_preview"


@button("drw", roles=None)
@coordinators_only
async def draw_button(ctx: Context, scope: Scope, say: Replier) -> str:
    cb = Callback.parse(ctx.event.data)
    if cb is None:
        raise ServiceError("stale_button")
    if cb.action == "preview":
        return await _preview(ctx, scope, say, await plan_views.plan_code(scope, cb.id))
    if cb.action == "cancel":
        await say("coord_info.j2", {"code": "draw_cancelled"})
        return "draw_cancelled"
    if cb.action == "go":
        relays = ctx.settings.drand_relays if ctx.settings is not None else ()
        fetch = drand.relay_fetcher(relays)
        drawn = await confirm.draw_firing(scope, cb.id, clock=ctx.clock, zone=ctx.zone, beacon_fetch=fetch)
    elif cb.action == "now" and (firings := inputs.number(cb.arg)) is not None:
        drawn = await confirm.draw_now(scope, cb.id, firings, clock=ctx.clock, zone=ctx.zone)
    else:
        raise ServiceError("stale_button")
    await say("coord_drawn.j2", drawn.context(ctx.zone))
    return "drawn"


@button("ofs", roles=None)
@coordinators_only
async def off_schedule_button(ctx: Context, scope: Scope, say: Replier) -> str:
    """Ask (then type the reason), cancel the asking; or, another coordinator: confirm / decline."""
    cb = OFF_SCHEDULE.parse(ctx.event.data)
    ev, now = ctx.event, ctx.clock.now()
    if cb is None:
        raise ServiceError("stale_button")
    if cb.action == "ask":
        code = await plan_views.plan_code(scope, cb.id)
        await chatstate.put(ev.channel, ev.sender, "offsched", "reason", {"plan": cb.id}, now, ctx.conn)
        cancel = [[key("btn_cancel", OFF_SCHEDULE.data("cancel", cb.id))]]
        await say("coord_offsched_reason.j2", {"plan": code, "limit": MAX_REASON, "buttons": cancel})
        return "off_schedule_reason_asked"
    if cb.action == "cancel":
        state = await chatstate.get(ev.channel, ev.sender, ctx.conn)
        if state is not None and state.flow == "offsched":
            await chatstate.clear(ev.channel, ev.sender, ctx.conn)
        await say("coord_offsched_declined.j2", {"cancelled": True})
        return "off_schedule_cancelled"
    decided = await offschedule.decide(scope, cb.id, cb.action == "yes", clock=ctx.clock, zone=ctx.zone)
    if decided.result is None:
        await say("coord_offsched_declined.j2", {"cancelled": False, "request": cb.id, "plan": decided.plan_code})
        return "off_schedule_declined"
    await say("coord_drawn.j2", confirm.Drawn(decided.result).context(ctx.zone))
    return "off_schedule_confirmed"


# --- beacon values typed in chat, confirmed by another coordinator --------------------------------


@command("beacon", roles=None)
@coordinators_only
async def beacon_command(ctx: Context, scope: Scope, say: Replier) -> str:
    """/beacon DRAW_REF V1 V2 …: the announced sources' results, in the announced order."""
    first, *rest = ctx.event.argument.strip().split(maxsplit=1) or [""]
    ref = inputs.word(first, inputs.REF_MAX)
    values = beacon_entry.split_values(rest[0]) if rest else []
    if ref is None or not values:
        return await _usage(say, "beacon")
    done = await beacon_entry.propose(scope, ref, values, clock=ctx.clock)
    await say("coord_beacon_proposed.j2", done.context())
    return "beacon_proposed"


@button("bcn", roles=None)
@coordinators_only
async def beacon_button(ctx: Context, scope: Scope, say: Replier) -> str:
    cb = BEACON.parse(ctx.event.data)
    if cb is None:
        raise ServiceError("stale_button")
    decided = await beacon_entry.decide(scope, cb.id, cb.action == "yes", clock=ctx.clock)
    entered = decided.entered
    await say(
        "coord_beacon_decided.j2",
        {
            "entry": decided.entry,
            "draw_ref": decided.draw_ref,
            "outcome": decided.outcome,
            "beacon": entered.beacon if entered else "",
            "values": list(entered.values) if entered else [],
            "sources": list(entered.sources) if entered else [],
        },
    )
    return f"beacon_{decided.outcome}"


# --- a draw's state -----------------------------------------------------------------------------


@command("status", roles=None)
@coordinators_only
async def status_command(ctx: Context, scope: Scope, say: Replier) -> str:
    ref = _word(ctx, inputs.REF_MAX)
    if ref is None:
        return await _usage(say, "status")
    await say("coord_status.j2", {"s": await status.draw_status(scope, ref, ctx.clock.now(), ctx.zone)})
    return "status"


@command("pending", roles=None)
async def pending_command(ctx: Context) -> str:
    return await show_pending(ctx, 1, None)


@pageable("pending")
@coordinators_only
async def show_pending(ctx: Context, scope: Scope, say: Replier, page: int, edit_of: str | None) -> str:
    shown = await status.pending_page(scope, page, ctx.clock.now(), ctx.zone)
    await say("coord_pending.j2", {**page_context(shown), "buttons": nav("pending", shown)}, edit_of=edit_of)
    return "pending"


@command("verify", roles=None)
@coordinators_only
async def verify_command(ctx: Context, scope: Scope, say: Replier) -> str:
    ref = _word(ctx, inputs.REF_MAX)
    if ref is None:
        return await _usage(say, "verify")
    v = await status.verify_draw(scope, ref, clock=ctx.clock)
    await say("coord_verify.j2", v.context())
    return "verified" if v.lines and not v.failed else "verify_failed" if v.lines else "verify_not_run"


# --- recusals -----------------------------------------------------------------------------------


@command("recusals", roles=None)
async def recusals_command(ctx: Context) -> str:
    return await show_recusals(ctx, 1, None)


@pageable("recusals")
@coordinators_only
async def show_recusals(ctx: Context, scope: Scope, say: Replier, page: int, edit_of: str | None) -> str:
    shown = await recusals.recusals_page(scope, page, ctx.zone)
    rows = [
        [key("btn_reject", REJECTION.data("ask", r["id"]), n=shown.first + i)]  # the list's number, not the row id
        for i, r in enumerate(shown.items)
        if r["rejectable"]
    ]
    await say("coord_recusals.j2", {**page_context(shown), "buttons": rows + nav("recusals", shown)}, edit_of=edit_of)
    return "recusals"


@button("rjt", roles=None)
@coordinators_only
async def reject_button(ctx: Context, scope: Scope, say: Replier) -> str:
    cb = Callback.parse(ctx.event.data)
    ev, now = ctx.event, ctx.clock.now()
    if cb is None:
        raise ServiceError("stale_button")
    if cb.action == "ask":
        item = await recusals.recusal_for_review(scope, cb.id, ctx.zone)
        await chatstate.put(ev.channel, ev.sender, "reject", "note", {"recusal": cb.id}, now, ctx.conn)
        await say(
            "coord_reject_confirm.j2", {"r": item, "note": "", "limit": NOTE_LIMIT, "buttons": _reject_buttons(cb.id)}
        )
        return "reject_asked"
    state = await chatstate.get(ev.channel, ev.sender, ctx.conn)
    ours = state is not None and state.flow == "reject" and state.data.get("recusal") == cb.id
    if cb.action == "cancel":
        if ours:
            await chatstate.clear(ev.channel, ev.sender, ctx.conn)
        await say("coord_info.j2", {"code": "reject_cancelled"})
        return "reject_cancelled"
    if cb.action == "confirm":
        note = state.data.get("note", "") if ours else ""
        if ours:
            await chatstate.clear(ev.channel, ev.sender, ctx.conn)
        done = await recusals.reject_recusal(scope, cb.id, note, clock=ctx.clock, zone=ctx.zone)
        await say("coord_rejected.j2", {"r": done.__dict__, "note": note})
        return "recusal_rejected"
    raise ServiceError("stale_button")


def _reject_buttons(recusal_id: int) -> list:
    return [
        [
            key("btn_reject_confirm", REJECTION.data("confirm", recusal_id)),
            key("btn_cancel", REJECTION.data("cancel", recusal_id)),
        ]
    ]


@on(EventKind.TEXT, roles=COORDINATORS, channel="telegram")
async def text(ctx: Context) -> str:
    """A message while a rejection waits for its reason is the reason; anything else is not understood."""
    ev = ctx.event
    state = await chatstate.get(ev.channel, ev.sender, ctx.conn)
    if state is not None and state.flow == "offsched" and not ev.edited:
        return await _with_reason(ctx, state.data["plan"], ev.text)
    if state is None or state.flow != "reject" or ev.edited:
        if any(b.role == Role.INSPECTOR for b in ctx.bindings):  # a coordinator who also inspects
            return await inspector.text(ctx)
        await Replier(ctx)("not_understood.j2", {"roles": sorted(b.role.value for b in ctx.bindings)})
        return "not_understood"
    return await _with_note(ctx, state.data["recusal"], ev.text.strip()[:NOTE_LIMIT])


@coordinators_only
async def _with_reason(ctx: Context, scope: Scope, say: Replier, plan_id: int, reason: str) -> str:
    """The reason typed after "Request an off-schedule draw": the request goes out."""
    done = await offschedule.request(scope, plan_id, reason, clock=ctx.clock, zone=ctx.zone, ttl=_off_schedule_ttl(ctx))
    await chatstate.clear(ctx.event.channel, ctx.event.sender, ctx.conn)
    await say("coord_offsched_requested.j2", done.context())
    return "off_schedule_requested"


@coordinators_only
async def _with_note(ctx: Context, scope: Scope, say: Replier, recusal_id: int, note: str) -> str:
    item = await recusals.recusal_for_review(scope, recusal_id, ctx.zone)
    await chatstate.put(
        ctx.event.channel,
        ctx.event.sender,
        "reject",
        "confirm",
        {"recusal": recusal_id, "note": note},
        ctx.clock.now(),
        ctx.conn,
    )
    await say(
        "coord_reject_confirm.j2",
        {"r": item, "note": note, "limit": NOTE_LIMIT, "buttons": _reject_buttons(recusal_id)},
    )
    return "reject_note"


# --- the monthly report ------------------------------------------------------------------------------


@command("report", roles=None)
@coordinators_only
async def report_command(ctx: Context, scope: Scope, say: Replier) -> str:
    """/report [YYYY-MM]: the month's report for the coordinator's departments (this month so
    far by default), as the monthly message and its chart."""
    month = _argument(ctx) or ctx.clock.now().astimezone(ctx.zone).strftime("%Y-%m")
    data_dir = ctx.settings.data_dir if ctx.settings is not None else Path("data")
    report = await reports.monthly_report_in_scope(
        scope, month, ctx.clock.now(), data_dir=data_dir, zone=ctx.zone, locale=ctx.locale
    )
    await say("report.j2", {"r": report.context()})
    if report.chart_path and ctx.event.channel == "telegram":
        await say("report_chart.j2", {"month": report.month, "photo_path": report.chart_path})
    return "report"


# --- alerts -------------------------------------------------------------------------------------


@command("alerts", roles=None)
async def alerts_command(ctx: Context) -> str:
    return await show_alerts(ctx, 1, None)


@pageable("alerts")
@coordinators_only
async def show_alerts(ctx: Context, scope: Scope, say: Replier, page: int, edit_of: str | None) -> str:
    shown = await alerts.alerts_page(scope, page, ctx.zone)
    rows = [
        [key("btn_ack", ALERT.data("ack", a["id"]), n=shown.first + i)]  # the list's number, not the row id
        for i, a in enumerate(shown.items)
        if not a["acknowledged"]
    ]
    await say("coord_alerts.j2", {**page_context(shown), "buttons": rows + nav("alerts", shown)}, edit_of=edit_of)
    return "alerts"


@button("alr", roles=None)
@coordinators_only
async def alert_button(ctx: Context, scope: Scope, say: Replier) -> str:
    cb = Callback.parse(ctx.event.data)
    if cb is None or cb.action != "ack":
        raise ServiceError("stale_button")
    outcome, alert = await alerts.acknowledge_alert(scope, cb.id, ctx.clock.now(), ctx.zone)
    await say("coord_info.j2", {"code": outcome, "alert": alert})
    return outcome
