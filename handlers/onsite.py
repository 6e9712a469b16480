"""On site, in the inspector's chat: /checkin and a shared location, photos, /result (and /recheck,
the re-inspection) and the findings buttons, corrections; and the coordinator's approve/reject buttons for corrections.

Buttons (callback codec): ``fnd:<pass|fail|na>:<result>:<item>``, ``fnd:skip|edit:<result>:<item>``,
``fnd:submit|confirm|fix|nofix:<result>``, ``fnd:open:<assignment>``, ``fnd:recheck:<rectification>``, ``chk:at:<assignment>``,
``chk:re:<rectification>`` / ``pho:re:<rectification>`` (a re-inspection's check-in, photos),
``pho:at:<assignment>``, ``cor:<ok|no>:<correction>``. Every press is re-checked by the service
against the presser and the current state, so stale and double taps are answered, not applied.
Free text reaches :func:`flow_text` through handlers/inspector.py's text handler when the chat
is in a findings note or a correction reason (``chat_state.flow`` in :data:`TEXT_FLOWS`).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from core.callbacks import CHECKIN, FINDINGS, PHOTO, Callback, Family, key
from core.channel import EventKind
from core.settings import Settings
from domain import inputs, refs
from domain.onsite import NOTE_LIMIT
from handlers.common import ANSWERED, Replier, binding_of, inspector_id, split_ref, typed_assignment
from handlers.router import button, command, on
from models.messaging import Role
from services import assignments, chatstate
from services.assignments import AssignmentError
from services.inbound import Context
from services.onsite import checkin, corrections, findings, followup, lead, photos
from services.onsite.shared import Choice, OnsiteError
from services.surveys.enter import sign_for

INSPECTOR = {Role.INSPECTOR}
COORDINATORS = {Role.COORDINATOR, Role.ADMIN}
TEXT_FLOWS = ("findings", "correction")
LOCATION_TTL = timedelta(minutes=10)  # a shared location waiting for "which inspection?"
MAX_CHOICES = 10
MAX_STASHED_PHOTOS = 20


# --- small helpers ------------------------------------------------------------------------------


async def _refuse(ctx: Context, exc: OnsiteError) -> str:
    buttons = []
    if exc.code == "lead_records" and exc.params.get("handover"):  # the lead has no chat: offer the lead
        buttons = [[key("btn_take_lead", FINDINGS.data("lead", exc.params["assignment"]))]]
    await Replier(ctx)("onsite_refused.j2", {"code": exc.code, "params": exc.params, "buttons": buttons})
    return exc.code


async def _stale(ctx: Context, code: str = "stale_button") -> str:
    await Replier(ctx)("onsite_refused.j2", {"code": code, "params": {}})
    return "stale"


def _radius(ctx: Context) -> int:
    return ctx.settings.checkin_radius_m if ctx.settings is not None else Settings.checkin_radius_m


def _sign(ctx: Context) -> str | None:
    if ctx.settings is None:
        return None
    return sign_for(ctx.settings)


def _choice_buttons(family: Family, action: str, choice: Choice) -> list:
    """One button per inspection to pick; a re-inspection as ``re`` (its rectification order)."""
    return [
        [
            key(
                "btn_pick_reinspection" if c.get("rectification") else "btn_pick_inspection",
                family.data("re", c["rectification"])
                if c.get("rectification")
                else family.data(action, c["assignment"]),
                ref=c["ref"],
                entity=c["entity"][:20],
            )
        ]
        for c in choice.choices[:MAX_CHOICES]
    ]


async def _put(ctx: Context, flow: str, step: str, data: dict) -> None:
    await chatstate.put(ctx.event.channel, ctx.event.sender, flow, step, data, ctx.clock.now(), ctx.conn)


async def _clear(ctx: Context) -> None:
    await chatstate.clear(ctx.event.channel, ctx.event.sender, ctx.conn)


# --- check-in -----------------------------------------------------------------------------------


@command("checkin", roles=INSPECTOR)
async def checkin_command(ctx: Context) -> str:
    """``/checkin`` asks for the location; ``/checkin P1/2026-12-01/7`` also says which inspection
    (or the sender's re-inspection of it) the location that follows is for (kept for
    :data:`LOCATION_TTL`)."""
    named, _ = split_ref(ctx.event.argument)
    rid = await checkin.reinspection_named(inspector_id(ctx), named, ctx.conn) if named is not None else None
    target = {"rectification": rid} if rid is not None else None
    if target is None:
        aid = await typed_assignment(ctx, "checkin")
        if aid == ANSWERED:
            return "usage"
        target = {"assignment": aid} if aid is not None else None
    ref = ""
    if target is not None:
        await _put(ctx, "checkin", "for", {**target, "at": ctx.clock.now().isoformat()})
        ref = ctx.event.argument.strip()
    await Replier(ctx)("checkin_ask.j2", {"ref": ref})
    return "checkin_asked"


@on(EventKind.LOCATION, roles=INSPECTOR)
async def location(ctx: Context) -> str:
    """A shared location is a check-in. A live location's later positions arrive as edits:
    never re-applied, and not answered (they come every few seconds)."""
    if ctx.event.edited:
        return "location_update_ignored"
    state = await chatstate.get(ctx.event.channel, ctx.event.sender, ctx.conn)
    named: dict = {}
    if state is not None and state.flow == "checkin" and state.step == "for":
        await _clear(ctx)
        if ctx.clock.now() - datetime.fromisoformat(state.data["at"]) <= LOCATION_TTL:
            named = {k: state.data.get(k) for k in ("assignment", "rectification")}
    return await _checkin(ctx, ctx.event.latitude, ctx.event.longitude, **named)


async def _checkin(
    ctx: Context, lat: float, lon: float, assignment: int | None = None, rectification: int | None = None
) -> str:
    say, now = Replier(ctx), ctx.clock.now()
    try:
        done = await checkin.checkin(
            inspector_id(ctx),
            lat,
            lon,
            now=now,
            radius_m=_radius(ctx),
            assignment_id=assignment,
            rectification_id=rectification,
            conn=ctx.conn,
        )
    except OnsiteError as exc:
        return await _refuse(ctx, exc)
    if isinstance(done, Choice):
        await _put(ctx, "checkin", "which", {"lat": lat, "lon": lon, "at": now.isoformat()})
        await say(
            "onsite_which.j2",
            {"purpose": "checkin", "choices": done.choices, "buttons": _choice_buttons(CHECKIN, "at", done)},
        )
        return "checkin_choose"
    await say("checkin_done.j2", done)
    return "checkin_flagged" if done["flagged"] else "checked_in"


@button("chk", roles=INSPECTOR)
async def checkin_button(ctx: Context) -> str:
    cb = Callback.parse(ctx.event.data)
    state = await chatstate.get(ctx.event.channel, ctx.event.sender, ctx.conn)
    if cb is None or cb.action not in ("at", "re") or state is None or state.flow != "checkin":
        return await _stale(ctx)
    await _clear(ctx)
    if ctx.clock.now() - datetime.fromisoformat(state.data["at"]) > LOCATION_TTL:
        return await _stale(ctx, "location_expired")
    picked = {"assignment": cb.id} if cb.action == "at" else {"rectification": cb.id}
    return await _checkin(ctx, state.data["lat"], state.data["lon"], **picked)


# --- photos -------------------------------------------------------------------------------------


@on(EventKind.PHOTO, roles=INSPECTOR)
async def photo(ctx: Context) -> str:
    ev, say = ctx.event, Replier(ctx)
    if ev.edited:
        await say("edit_ignored.j2", {})
        return "edit_ignored"
    state = await chatstate.get(ev.channel, ev.sender, ctx.conn)
    hint = state.data.get("inspection") if state is not None and state.flow == "findings" else None
    try:
        done = await photos.photo(
            inspector_id(ctx),
            ev.file_id,
            now=ctx.clock.now(),
            caption=ev.text,
            assignment_id=await _captioned(ctx, ev.text),
            inspection_id=hint,
            conn=ctx.conn,
        )
    except OnsiteError as exc:
        return await _refuse(ctx, exc)
    if isinstance(done, Choice):
        stashed = state.data.get("files", []) if state is not None and state.flow == "photo" else []
        files = (stashed + [{"file_id": ev.file_id, "caption": ev.text}])[-MAX_STASHED_PHOTOS:]
        await _put(ctx, "photo", "which", {"files": files})
        await say(
            "onsite_which.j2",
            {
                "purpose": "photo",
                "choices": done.choices,
                "waiting": len(files),
                "buttons": _choice_buttons(PHOTO, "at", done),
            },
        )
        return "photo_choose"
    await say("photo_received.j2", done)
    return "photo_recorded"


async def _captioned(ctx: Context, caption: str) -> int | None:
    """The inspection a photo's caption starts with (``P1/2026-12-01/7 门头``), if it names one of
    the sender's; any other caption is only a caption."""
    words = (caption or "").split()
    ref = refs.parse(words[0]) if words else None
    if ref is None or ref.draw_ref is None:
        return None
    try:
        return await assignments.find(inspector_id(ctx), ref, ctx.conn)
    except AssignmentError:
        return None


@button("pho", roles=INSPECTOR)
async def photo_button(ctx: Context) -> str:
    cb = Callback.parse(ctx.event.data)
    state = await chatstate.get(ctx.event.channel, ctx.event.sender, ctx.conn)
    if cb is None or cb.action not in ("at", "re") or state is None or state.flow != "photo":
        return await _stale(ctx)
    await _clear(ctx)
    done = None
    picked = {"assignment_id": cb.id} if cb.action == "at" else {"rectification_id": cb.id}
    try:
        for f in state.data.get("files", []):
            done = await photos.photo(
                inspector_id(ctx), f["file_id"], now=ctx.clock.now(), caption=f["caption"], **picked, conn=ctx.conn
            )
    except OnsiteError as exc:
        return await _refuse(ctx, exc)
    if done is None:
        return await _stale(ctx)
    await Replier(ctx)("photo_received.j2", done)
    return "photo_recorded"


# --- findings -----------------------------------------------------------------------------------


@command("result", roles=INSPECTOR)
async def result_command(ctx: Context) -> str:
    aid = await typed_assignment(ctx, "result")
    if aid == ANSWERED:
        return "usage"
    return await _open(ctx, aid)


async def _open(ctx: Context, assignment_id: int | None) -> str:
    try:
        got = await findings.open_findings(inspector_id(ctx), assignment_id, now=ctx.clock.now(), conn=ctx.conn)
    except OnsiteError as exc:
        return await _refuse(ctx, exc)
    if isinstance(got, Choice):
        await Replier(ctx)(
            "onsite_which.j2",
            {"purpose": "findings", "choices": got.choices, "buttons": _choice_buttons(FINDINGS, "open", got)},
        )
        return "findings_choose"
    outcome, view = got
    await _show(ctx, view)
    return outcome


@command("recheck", roles=INSPECTOR)
async def recheck_command(ctx: Context) -> str:
    """``/recheck P1/2026-12-01/7``: the re-inspection (复查) assigned to the sender at the rectification
    deadline, in the same findings conversation as ``/result`` (over the items found 不合格)."""
    ref, _ = split_ref(ctx.event.argument)
    if ref is None:
        await Replier(ctx)("onsite_refused.j2", {"code": "recheck_usage", "params": {}})
        return "usage"
    try:
        rectification_id = await followup.rectification_on(inspector_id(ctx), ref, ctx.conn)
    except OnsiteError as exc:
        return await _refuse(ctx, exc)
    return await _open_reinspection(ctx, rectification_id)


async def _open_reinspection(ctx: Context, rectification_id: int) -> str:
    try:
        outcome, view = await findings.open_reinspection(
            inspector_id(ctx), rectification_id, now=ctx.clock.now(), conn=ctx.conn
        )
    except OnsiteError as exc:
        return await _refuse(ctx, exc)
    await _show(ctx, view)
    return outcome


def _item_buttons(view: dict) -> list:
    rid, pos = view["result"], view["current"]["pos"]
    verdicts = [key(f"btn_verdict_{v}", FINDINGS.data(v, rid, pos)) for v in ("pass", "fail", "na")]
    return [verdicts, [key("btn_verdict_serious", FINDINGS.data("serious", rid, pos))]]


def _summary_buttons(view: dict) -> list:
    rid = view["result"]
    edits = [key("btn_edit_item", FINDINGS.data("edit", rid, i["pos"]), no=i["no"]) for i in view["items"]]
    rows = [edits[k : k + 4] for k in range(0, len(edits), 4)]
    submit = "btn_submit_correction" if view["supersedes"] else "btn_submit_result"
    return rows + [[key(submit, FINDINGS.data("submit", rid))]]


def _result_buttons(view: dict) -> list:
    rid = view["result"]
    if view["is_lead"] and view["status"] in ("submitted", "confirmed") and not view["open_correction"]:
        return [[key("btn_request_correction", FINDINGS.data("fix", rid))]]
    if not view["is_lead"] and view["status"] == "submitted":
        return [[key("btn_confirm_result", FINDINGS.data("confirm", rid))]]
    return []


async def _show(ctx: Context, view: dict, notice: str = "", index: int | None = None) -> None:
    """Where the findings stand now, with the buttons that fit (and what just happened)."""
    item = view["items"][index] if index is not None and 0 <= index < len(view["items"]) else None
    context = {
        "result": view,
        "notice": notice,
        "notice_no": item["no"] if item else 0,
        "notice_verdict": (item["verdict"] or "") if item else "",
    }
    say = Replier(ctx)
    if view["status"] != "draft" or not view["is_lead"]:
        if view["status"] != "draft":
            await _clear_if(ctx, "findings", view["result"])
        await say("result_view.j2", {**context, "buttons": _result_buttons(view)})
        return
    await _put(ctx, "findings", view["step"], {"result": view["result"], "inspection": view["inspection"]})
    if view["step"] == "verdict":
        await say("findings_item.j2", {**context, "buttons": _item_buttons(view)})
    elif view["step"] == "note":
        await say(
            "findings_note.j2",
            {
                **context,
                "limit": NOTE_LIMIT,
                "buttons": [[key("btn_skip", FINDINGS.data("skip", view["result"], view["current"]["pos"]))]],
            },
        )
    else:
        await say("findings_summary.j2", {**context, "buttons": _summary_buttons(view)})


async def _clear_if(ctx: Context, flow: str, result_id: int) -> None:
    state = await chatstate.get(ctx.event.channel, ctx.event.sender, ctx.conn)
    if state is not None and state.flow == flow and state.data.get("result") == result_id:
        await _clear(ctx)


@button("fnd", roles=INSPECTOR)
async def findings_button(ctx: Context) -> str:
    cb = Callback.parse(ctx.event.data)
    if cb is None:
        return await _stale(ctx)
    if cb.action == "open":
        return await _open(ctx, cb.id)
    if cb.action == "recheck":
        return await _open_reinspection(ctx, cb.id)
    if cb.action == "fix":
        return await _begin_fix(ctx, cb.id)
    if cb.action == "lead":
        try:
            outcome, taken = await lead.take_lead(inspector_id(ctx), cb.id, now=ctx.clock.now(), conn=ctx.conn)
        except OnsiteError as exc:
            return await _refuse(ctx, exc)
        await Replier(ctx)("lead_taken_reply.j2", {**taken, "again": outcome == "already_lead"})
        return outcome
    if cb.action == "nofix":
        await _clear_if(ctx, "correction", cb.id)
        await Replier(ctx)("correction_cancelled.j2", {})
        return "correction_cancelled"
    index = inputs.number(cb.arg)
    return await _act(ctx, cb.id, cb.action, index=index)


async def _act(ctx: Context, result_id: int, kind: str, *, index: int | None = None, text: str = "") -> str:
    try:
        done = await findings.act(
            inspector_id(ctx),
            result_id,
            kind,
            index=index,
            text=text,
            now=ctx.clock.now(),
            zone=ctx.zone,
            locale=ctx.locale,
            sign=_sign(ctx),
            conn=ctx.conn,
        )
    except OnsiteError as exc:
        return await _refuse(ctx, exc)
    view = done.view
    if done.code == "submitted":
        await _clear_if(ctx, "findings", result_id)
        await Replier(ctx)("findings_submitted.j2", {"result": view})
    elif done.code == "sent_for_approval":
        await _clear_if(ctx, "findings", result_id)
        await Replier(ctx)("correction_sent.j2", {"result": view})
    else:
        await _show(ctx, view, done.code, done.index)
    return f"findings_{done.code}"


# --- corrections --------------------------------------------------------------------------------


async def _begin_fix(ctx: Context, result_id: int) -> str:
    try:
        view = await corrections.begin_correction(inspector_id(ctx), result_id, now=ctx.clock.now(), conn=ctx.conn)
    except OnsiteError as exc:
        return await _refuse(ctx, exc)
    await _put(ctx, "correction", "reason", {"result": result_id})
    await Replier(ctx)(
        "correction_reason.j2",
        {
            "result": view,
            "limit": corrections.REASON_LIMIT,
            "buttons": [[key("btn_cancel", FINDINGS.data("nofix", result_id))]],
        },
    )
    return "correction_reason_asked"


async def flow_text(ctx: Context, state) -> str:
    """Free text in a findings note step or a correction's reason step. An edit of an earlier
    message is never applied: the inspector is told and the state stays as it was."""
    ev = ctx.event
    if ev.edited:
        await Replier(ctx)("edit_ignored.j2", {})
        return "edit_ignored"
    if state.flow == "findings":
        return await _act(ctx, state.data["result"], "note", text=ev.text)
    try:
        view = await corrections.request_correction(
            inspector_id(ctx), state.data["result"], ev.text, now=ctx.clock.now(), conn=ctx.conn
        )
    except OnsiteError as exc:
        if exc.code not in ("reason_empty", "reason_too_long"):
            await _clear(ctx)
        return await _refuse(ctx, exc)
    await _show(ctx, view, "correction_opened")
    return "correction_opened"


@button("cor", roles=COORDINATORS)
async def correction_button(ctx: Context) -> str:
    """A coordinator of the plan's departments (or an admin) approves or rejects a correction."""
    cb = Callback.parse(ctx.event.data)
    binding = binding_of(ctx, Role.COORDINATOR) or binding_of(ctx, Role.ADMIN)
    if cb is None or cb.action not in ("ok", "no") or binding is None:
        return await _stale(ctx)
    try:
        code, shown = await corrections.decide_correction(
            binding,
            cb.id,
            cb.action == "ok",
            now=ctx.clock.now(),
            locale=ctx.locale,
            zone=ctx.zone,
            sign=sign_for(ctx.settings) if ctx.settings is not None else None,
            base_url=ctx.settings.public_url if ctx.settings is not None else "",
            conn=ctx.conn,
        )
    except OnsiteError as exc:
        return await _refuse(ctx, exc)
    await Replier(ctx)("correction_decision.j2", {"code": code, **shown})
    return f"correction_{code}"
