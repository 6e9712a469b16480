"""Integrity surveys as a working feature, on the pure core in ``domain.surveys``.

Each use case is one transaction (the caller's, when it passes ``connection``): the survey row
changes, its messages are outbox rows, its alerts are alert rows, and they commit together.

* :func:`enter_pool` — an inspection's result was submitted: draw the draw's sample once (with
  a recorded seed), and if this inspection is in it create the survey and queue its first
  message (SMS to the entity's mobile, or a Telegram poll if the entity linked a chat), never
  in quiet hours.
* :func:`handle_reply` — a text from an entity (SMS, or its linked Telegram chat): route it to
  the right survey, read it (``parse_reply``), apply ``step`` and turn the actions into
  messages and alerts. Opt-out keywords close every open survey of the entity for good.
* :func:`handle_poll_answer` — a Telegram poll answer, through the same ``step``.
* :func:`delivery_status` — an SMS delivery receipt: update the outbox row; an undelivered
  survey falls back to Telegram if the entity linked a chat, else it is undeliverable.
* :func:`run_sweep` (registered as the ``surveys`` sweep) — reminders after 48 h in allowed
  hours, expiry after 7 days (``tick``), dead first messages.
* :func:`integrity` — per-inspector scores for coordinators; for anyone else only the
  aggregates resting on at least five responses.

A poll answer names only the poll's id, so the Telegram channel reports a sent poll's id (not
its message id) and the dispatcher stores it as the outbox row's ``provider_id``; the row's
dedupe key (``survey:<id>:poll:<question>``) names the survey and the question. An answer is
matched by that stored id, in the answering chat, so several surveys for one chat poll at once
and their answers may come in any order. An answer to a poll id we did not send there is ignored.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, tzinfo

from tortoise.expressions import Q
from tortoise.transactions import in_transaction

from core import db
from core.clock import utc as _utc
from core.db import transaction as _transaction
from core.settings import Settings
from domain.errors import ServiceError
from domain.surveys import (
    DEFAULT_SHARES,
    REQUIRED,
    SHANGHAI,
    Answers,
    AskQuestion,
    Candidate,
    Clarify,
    Kind,
    ParseResult,
    Question,
    RaiseAlert,
    Response,
    Score,
    SendReminder,
    Status,
    SurveyState,
    Thank,
    expires_at,
    integrity_scores,
    is_quiet,
    make_code,
    next_allowed_send,
    parse_reply,
    publishable,
    reminder_at,
    route_reply,
    sample,
    share,
    step,
    tick,
)
from models.directory import Department, Entity, Inspector
from models.draws import HOLDING_SEAT, Assignment, Draw, Firing, Inspection
from models.messaging import Channel, ChatBinding, Outbox, OutboxStatus, RecipientKind, Role
from models.plans import Plan
from models.surveys import Survey, SurveyOptOut, SurveySample, SurveyStatus
from scheduler import sweep
from services.alerts import raise_alert
from services.outbox import Message, enqueue

OPEN = (SurveyStatus.PENDING, SurveyStatus.SENT)
RECENT = (SurveyStatus.ANSWERED, SurveyStatus.INCOMPLETE, SurveyStatus.EXPIRED)
#: How long after sending a reply still reaches a closed survey (late answers, comments).
LATE_WINDOW = timedelta(days=30)
SWEEP_BATCH = 500
DEFAULT_WINDOW = timedelta(days=90)
REPORT_ROWS = 30
_IN_CHUNK = 5000

_STATUS = {
    Status.OPEN: SurveyStatus.SENT,
    Status.COMPLETE: SurveyStatus.ANSWERED,
    Status.INCOMPLETE: SurveyStatus.INCOMPLETE,
    Status.EXPIRED: SurveyStatus.EXPIRED,
    Status.OPTED_OUT: SurveyStatus.OPTED_OUT,
}
_PURE = {v: k for k, v in _STATUS.items()}
_INVITE = re.compile(r"survey:(\d+):invite")


class SurveyError(ServiceError):
    """Refused; ``code`` names a text in texts/surveys.j2."""


def _allowed(now: datetime, zone: tzinfo) -> datetime:
    """The first moment a survey message may go out (quiet hours), in UTC."""
    return _utc(next_allowed_send(now, zone))


# --- the survey row <-> the pure state -------------------------------------------------------


@dataclass
class SurveyRow:
    """A survey as the reply path reads it: the ``Survey`` columns it uses, under the model's
    attribute names (so the message and state helpers take either), read with one raw query."""

    id: int
    entity_id: int
    code: str
    channel: Channel
    address: str
    status: SurveyStatus
    locale: str
    context: dict = field(default_factory=dict)
    answers: dict = field(default_factory=dict)
    comment: str | None = None
    clarifications: dict = field(default_factory=dict)
    alerted: list = field(default_factory=list)
    poll_question: str | None = None
    polls: dict = field(default_factory=dict)
    created_at: datetime | None = None
    sent_at: datetime | None = None
    reminded_at: datetime | None = None
    completed_at: datetime | None = None
    late: bool = False
    answered_at: datetime | None = None


def _listed(statuses: Iterable[SurveyStatus]) -> str:
    return ", ".join(f"'{s.value}'" for s in statuses)


_SELECT_SQL = (
    "SELECT id, entity_id, code, channel, address, status, locale, context, answers, comment, clarifications, "
    "alerted, poll_question, polls, created_at, sent_at, reminded_at, completed_at, late, answered_at FROM survey "
)
_LIVE_SQL = (
    _SELECT_SQL + f"WHERE channel = ? AND address = ? AND (status IN ({_listed(OPEN)}) "
    f"OR (status IN ({_listed(RECENT)}) AND sent_at >= ?)) ORDER BY id DESC"
)
_SAVE_SQL = (
    "UPDATE survey SET answers = ?, comment = ?, status = ?, clarifications = ?, alerted = ?, reminded_at = ?, "
    "completed_at = ?, late = ?, answered_at = ?, poll_question = ?, polls = ? WHERE id = ?"
)


def _survey_row(r) -> SurveyRow:
    return SurveyRow(
        id=r[0],
        entity_id=r[1],
        code=r[2],
        channel=Channel(r[3]),
        address=r[4],
        status=SurveyStatus(r[5]),
        locale=r[6],
        context=db.decoded(r[7], {}),
        answers=db.decoded(r[8], {}),
        comment=r[9],
        clarifications=db.decoded(r[10], {}),
        alerted=db.decoded(r[11], []),
        poll_question=r[12],
        polls=db.decoded(r[13], {}),
        created_at=db.moment(r[14]),
        sent_at=db.moment(r[15]),
        reminded_at=db.moment(r[16]),
        completed_at=db.moment(r[17]),
        late=bool(r[18]),
        answered_at=db.moment(r[19]),
    )


def state_of(row: Survey | SurveyRow) -> SurveyState:
    """What ``step`` and ``tick`` need, read from the row."""
    a = row.answers or {}
    answers = Answers(
        credentials=a.get("credentials"), improper=a.get("improper"), fairness=a.get("fairness"), comment=row.comment
    )
    return SurveyState(
        sent_at=row.sent_at or row.created_at,
        status=_PURE.get(row.status, Status.OPEN),
        answers=answers,
        clarifications={Question(k): v for k, v in (row.clarifications or {}).items()},
        reminded_at=row.reminded_at,
        closed_at=row.completed_at,
        late=row.late,
        alerted=frozenset(row.alerted or ()),
    )


def _store(row: Survey | SurveyRow, state: SurveyState, now: datetime) -> None:
    """Write the new state onto the row (the caller saves it)."""
    answers = {q.value: state.answers.get(q) for q in REQUIRED if state.answers.get(q) is not None}
    if answers != (row.answers or {}) or state.answers.comment != row.comment:
        row.answered_at = now
    row.answers = answers
    row.comment = state.answers.comment
    row.status = _STATUS[state.status]
    row.clarifications = {q.value: n for q, n in state.clarifications.items()}
    row.alerted = sorted(state.alerted)
    row.reminded_at = state.reminded_at
    row.completed_at = state.closed_at
    row.late = state.late


# --- messages --------------------------------------------------------------------------------


def _shown(row: Survey | SurveyRow) -> dict:
    """What the entity's messages may show: never anything about other surveys or answers."""
    c = row.context or {}
    return {
        "sign": c.get("sign", "") if row.channel == Channel.SMS else "",
        "channel": row.channel.value,
        "entity": c.get("entity", ""),
        "date": c.get("date", ""),
        "departments": c.get("departments", []),
        "team": c.get("team", []),
        "code": row.code,
        "show_code": bool(c.get("show_code")),
    }


def _message(
    row: Survey | SurveyRow,
    key: str,
    template: str,
    extra: dict,
    *,
    not_before: datetime,
    priority: int = 0,
    context: dict | None = None,
) -> Message:
    return Message(
        dedupe_key=f"survey:{row.id}:{key}",
        recipient_kind=RecipientKind.ENTITY,
        recipient_id=row.entity_id,
        template=template,
        context=context if context is not None else {**_shown(row), **extra},
        channel=Channel(row.channel),
        locale=row.locale,
        priority=priority,
        not_before=not_before,
        address=row.address,
    )


def _reply_time(row: Survey | SurveyRow, now: datetime, zone: tzinfo) -> datetime:
    """Replies by SMS respect quiet hours; a Telegram reply to someone answering goes at once."""
    return _allowed(now, zone) if row.channel == Channel.SMS else now


def _poll(row: Survey | SurveyRow, question: Question, *, intro: bool, not_before: datetime) -> Message:
    """One Telegram poll for one question (the first one carries the introduction)."""
    if question.kind is Kind.YES_NO:
        options = ["survey_opt_yes", "survey_opt_no"]
    else:
        options = [f"survey_opt_{n}" for n in range(1, 6)]
    shown = _shown(row)
    params = {
        "question": question.value,
        "number": question.number,
        "intro": intro,
        "date": shown["date"],
        "departments": shown["departments"],
        "team": shown["team"],
    }
    return _message(
        row,
        f"poll:{question.value}",
        "",
        {},
        not_before=not_before,
        priority=-2 if not intro else 0,
        context={"poll": {"question": "survey_poll_question", "options": options}, "params": params},
    )


def _poll_value(question: Question, option: int) -> bool | int | None:
    """The answer an option index stands for (yes/no: 0 = yes, 1 = no; score: 0 → 1 … 4 → 5)."""
    if question.kind is Kind.YES_NO:
        return {0: True, 1: False}.get(option)
    if question.kind is Kind.SCORE and 0 <= option < 5:
        return option + 1
    return None


async def _alert(row: Survey | SurveyRow, action: RaiseAlert, now: datetime, conn) -> None:
    """To the plan's coordinators (never the inspectors), with the inspection and the answers."""
    c = row.context or {}
    a = action.answers
    context = {
        "plan": c.get("plan", ""),
        "plan_code": c.get("plan_code", ""),
        "draw_ref": c.get("draw_ref", ""),
        "no": c.get("no"),
        "entity": c.get("entity", ""),
        "date": c.get("date", ""),
        "team": c.get("team", []),
        "reasons": list(action.reasons),
        "late": row.late,
        "code": row.code,
        "answers": {"credentials": a.credentials, "improper": a.improper, "fairness": a.fairness},
        "comment": a.comment or "",
        "departments": c.get("dept_codes", []),
    }
    await raise_alert(
        f"survey:{row.id}:{'+'.join(action.reasons)}",
        "survey_alert.j2",
        context,
        c.get("dept_codes", []),
        now,
        connection=conn,
    )


async def _apply(
    row: Survey | SurveyRow, state: SurveyState, actions: Iterable, now: datetime, zone: tzinfo, conn, ref: str
) -> None:
    """Store the new state and turn the actions into outbox rows and alerts."""
    _store(row, state, now)
    messages: list[Message] = []
    when = _reply_time(row, now, zone)
    for i, action in enumerate(actions):
        key = f"r:{ref}:{i}"
        if isinstance(action, AskQuestion):
            if row.channel == Channel.TELEGRAM:
                row.poll_question = action.question.value
                _poll_sent(row, action.question)
                messages.append(_poll(row, action.question, intro=False, not_before=when))
            else:
                messages.append(
                    _message(
                        row,
                        key,
                        "survey_next.j2",
                        {
                            "question": action.question.value,
                            "number": action.question.number,
                            "kind": action.question.kind.value,
                        },
                        not_before=when,
                        priority=-2,
                    )
                )
        elif isinstance(action, Clarify):
            messages.append(
                _message(
                    row,
                    key,
                    "survey_clarify.j2",
                    {
                        "question": action.question.value,
                        "number": action.question.number,
                        "reason": action.reason.value,
                        "attempt": action.attempt,
                        "open": [q.number for q in state.open_questions],
                    },
                    not_before=when,
                    priority=-2,
                )
            )
        elif isinstance(action, Thank):
            messages.append(
                _message(row, key, "survey_thanks.j2", {"kind": action.kind.value}, not_before=when, priority=-2)
            )
        elif isinstance(action, SendReminder):
            messages.append(
                _message(
                    row,
                    "reminder",
                    "survey_reminder.j2",
                    {"questions": [{"code": q.value, "number": q.number} for q in action.questions]},
                    not_before=_allowed(now, zone),
                )
            )
        elif isinstance(action, RaiseAlert):
            await _alert(row, action, now, conn)
        # OptOutEntity and ConfirmOptOut only come from an opt-out, which _opt_out handles whole.
    if row.status not in OPEN or not state.open_questions:
        row.poll_question = None
    await _save_state(row, conn)
    if messages:
        await enqueue(messages, now, connection=conn)


# --- entering the pool: sampling and sending ---------------------------------------------------


def sign_for(settings: Settings) -> str | None:
    """The ``sign`` for :func:`enter_pool` from the settings: none in the text with Alibaba Cloud
    (its platform prefixes the approved signature), ``SMS_SIGN_NAME`` if set, else None (the
    plan's first department's name)."""
    if settings.sms_provider == "aliyun":
        return ""
    return settings.sms_sign_name or None


def shares_of(spec: Mapping | None) -> dict[str, str]:
    """The plan's survey shares (``[survey] shares = {D = "1", "*" = "1/3"}``, normalised by
    ``domain.plans``: the named classes, then ``"*"``) if it has them, else the default: all of
    class D and E, a third of the rest. ``spec`` is the plan's spec as the firing recorded it."""
    shares = ((spec or {}).get("survey") or {}).get("shares") if isinstance(spec, Mapping) else None
    if not isinstance(shares, Mapping) or not shares:
        return dict(DEFAULT_SHARES)
    for value in shares.values():
        share(value)  # refuses floats and values outside [0, 1]
    return {str(k): str(v) for k, v in shares.items()}


async def _sample_for(draw: Draw, now: datetime, conn) -> SurveySample:
    """The draw's sample, drawn once over all its inspections with a fresh recorded seed."""
    found = await SurveySample.get_or_none(draw_id=draw.id).using_db(conn)
    if found is not None:
        return found
    firing = await Firing.filter(id=draw.firing_id).using_db(conn).first()
    plan = await Plan.filter(id=draw.plan_id).using_db(conn).first()
    shares = shares_of((firing.params if firing else None) or (plan.spec if plan else None))
    pool = await Inspection.filter(draw_id=draw.id).using_db(conn).values_list("no", "stratum")
    seed = secrets.token_bytes(32)
    chosen = sample([Candidate(f"{draw.draw_ref}/{no}", stratum) for no, stratum in pool], shares, seed)
    selected = sorted(int(c.key.rsplit("/", 1)[1]) for c in chosen)
    await db.bulk_insert(
        "survey_sample",
        ("draw_id", "seed", "shares", "pool", "selected", "created_at"),
        [(draw.id, seed, shares, len(pool), selected, now)],
        ignore_conflicts=True,
        connection=conn,
    )
    return await SurveySample.get(draw_id=draw.id).using_db(conn)


async def _telegram_binding(entity_id: int, conn) -> ChatBinding | None:
    return await (
        ChatBinding.filter(
            channel=Channel.TELEGRAM, role=Role.ENTITY, entity_id=entity_id, revoked_at=None, reachable=True
        )
        .using_db(conn)
        .order_by("-id")
        .first()
    )


async def _opted_out(entity: Entity, conn) -> bool:
    q = Q(entity_id=entity.id)
    if entity.mobile:
        q |= Q(mobile=entity.mobile)
    return await SurveyOptOut.filter(q).using_db(conn).exists()


async def _fresh_code(entity_id: int, address: str, now: datetime, conn) -> str:
    """A code no survey of this entity or this address used lately (so a code names one survey)."""
    recent = now - LATE_WINDOW - timedelta(days=30)
    q = Q(entity_id=entity_id) | (Q(address=address) if address else Q(id=-1))
    taken = set(await Survey.filter(q, created_at__gte=recent).using_db(conn).values_list("code", flat=True))
    while True:
        code = make_code(secrets.token_bytes(16))
        if code not in taken:
            return code


async def _context(insp: Inspection, now: datetime, zone: tzinfo, sign: str | None, conn) -> dict:
    """What the survey's messages and alerts show, fixed when it is created."""
    draw = insp.draw
    plan = await Plan.get(id=draw.plan_id).using_db(conn)
    names = dict(await Department.filter(code__in=list(plan.departments)).using_db(conn).values_list("code", "name"))
    departments = [names.get(code, code) for code in plan.departments]
    team = await (
        Assignment.filter(inspection_id=insp.id, status__in=list(HOLDING_SEAT))
        .using_db(conn)
        .order_by("seat")
        .values_list("inspector__name", flat=True)
    )
    return {
        "date": now.astimezone(zone).date().isoformat(),
        "departments": departments,
        "dept_codes": list(plan.departments),
        "team": list(team),
        "entity": insp.entity.name,
        "plan": plan.name,
        "plan_code": plan.code,
        "draw_ref": draw.draw_ref,
        "no": insp.no,
        "sign": sign if sign is not None else (departments[0] if departments else ""),
    }


async def enter_pool(
    inspection_id: int,
    now: datetime,
    *,
    zone: tzinfo = SHANGHAI,
    locale: str = "zh-CN",
    sign: str | None = None,
    connection=None,
) -> str:
    """An inspection's result was submitted: survey it if the draw's sample selected it.

    Returns the outcome: ``survey_sent`` / ``survey_scheduled`` (quiet hours) / ``not_sampled`` / ``opted_out`` /
    ``undeliverable`` / ``already``. ``sign`` is the SMS signature (``【…】``); None = the plan's
    first department, "" = none (a provider such as Alibaba Cloud adds its own)."""
    now = _utc(now)
    async with _transaction(connection) as conn:
        # locked: a result submitted twice at once still makes one survey
        insp = await (
            Inspection.filter(id=inspection_id)
            .using_db(conn)
            .select_for_update()
            .prefetch_related("draw", "entity")
            .first()
        )
        if insp is None:
            raise SurveyError("survey_unknown_inspection", id=inspection_id)
        if await Survey.filter(inspection_id=insp.id).using_db(conn).exists():
            return "already"
        smp = await _sample_for(insp.draw, now, conn)
        if insp.no not in smp.selected:
            return "not_sampled"
        return await _create(insp, smp, now, zone, locale, sign, conn)


async def _create(
    insp: Inspection, smp: SurveySample, now: datetime, zone: tzinfo, locale: str, sign: str | None, conn
) -> str:
    entity = insp.entity
    binding = await _telegram_binding(entity.id, conn)
    if binding is not None:
        channel, address, locale = Channel.TELEGRAM, binding.address, binding.locale
    else:
        channel, address = Channel.SMS, entity.mobile or ""
    status = SurveyStatus.PENDING
    if await _opted_out(entity, conn):
        status = SurveyStatus.OPTED_OUT
    elif not address:
        status = SurveyStatus.UNDELIVERABLE
    row = await Survey.create(
        inspection_id=insp.id,
        entity_id=entity.id,
        sample_id=smp.id,
        code=await _fresh_code(entity.id, address, now, conn),
        channel=channel,
        address=address,
        status=status,
        locale=locale,
        context=await _context(insp, now, zone, sign, conn),
        created_at=now,
        completed_at=None if status == SurveyStatus.PENDING else now,
        using_db=conn,
    )
    if status != SurveyStatus.PENDING:
        return status.value
    return await _start(row, now, zone, conn)


async def _start(row: Survey, now: datetime, zone: tzinfo, conn) -> str:
    """Queue the survey's first message at the first allowed moment (its ``sent_at``)."""
    sent = _allowed(now, zone)
    others = await (
        Survey.filter(channel=row.channel, address=row.address, status__in=list(OPEN))
        .using_db(conn)
        .exclude(id=row.id)
        .exists()
    )
    row.context = {**(row.context or {}), "show_code": others}
    row.sent_at, row.reminder_at, row.expires_at = sent, _utc(reminder_at(sent, zone)), expires_at(sent)
    row.status = SurveyStatus.SENT if sent <= now else SurveyStatus.PENDING
    if row.channel == Channel.TELEGRAM:
        row.poll_question = Question.CREDENTIALS.value
        _poll_sent(row, Question.CREDENTIALS)
        first = _poll(row, Question.CREDENTIALS, intro=True, not_before=sent)
    else:
        first = _message(row, "invite", "survey_sms.j2", {}, not_before=sent)
    await row.save(using_db=conn)
    await enqueue([first], now, connection=conn)
    return "survey_sent" if row.status == SurveyStatus.SENT else "survey_scheduled"


# --- replies -----------------------------------------------------------------------------------


async def _live(channel: Channel, address: str, now: datetime, conn) -> list[SurveyRow]:
    """The surveys a message from this address may be about, newest first, locked (PostgreSQL;
    SQLite has one writer). One raw query: this runs for every reply."""
    sql = _LIVE_SQL + (" FOR UPDATE" if conn.capabilities.dialect == "postgres" else "")
    _, rows = await conn.execute_query(db.sql(sql, connection=conn), [channel.value, address, now - LATE_WINDOW])
    return [_survey_row(r) for r in rows]


async def _save_state(row: Survey | SurveyRow, conn) -> None:
    """Write what a reply, a poll answer or time changes on a survey (``_store``, the polls)."""
    status = row.status.value if isinstance(row.status, SurveyStatus) else row.status
    await conn.execute_query(
        db.sql(_SAVE_SQL, connection=conn),
        [
            db.encode(row.answers or {}),
            row.comment,
            status,
            db.encode(row.clarifications or {}),
            db.encode(list(row.alerted or [])),
            db.encode(row.reminded_at),
            db.encode(row.completed_at),
            bool(row.late),
            db.encode(row.answered_at),
            row.poll_question,
            db.encode(row.polls or {}),
            row.id,
        ],
    )


def _choose(code: str | None, live: list[SurveyRow]) -> tuple[SurveyRow | None, str]:
    """The survey a reply is about, or why none: ``which_inspection`` / ``unknown_code`` /
    ``none_open``. A code may name any live survey; without one, the open surveys count
    (else the recently closed ones, for late answers and comments)."""
    if code is not None:
        hit = next((s for s in live if s.code == code), None)
        return (hit, "") if hit is not None else (None, "unknown_code")
    pool = [s for s in live if s.status in OPEN] or live
    routing = route_reply(None, [s.code for s in pool])
    if routing.code is not None:
        return next(s for s in pool if s.code == routing.code), ""
    return None, routing.reason or "none_open"


async def handle_reply(
    sender: str,
    text: str,
    now: datetime,
    *,
    channel: str = "sms",
    zone: tzinfo = SHANGHAI,
    ref: str | None = None,
    connection=None,
) -> str:
    """A message from an entity's mobile (or its linked chat): apply it to the right survey.

    ``ref`` names the inbound event (its replies' keys), so one event answers once. Returns the
    outcome recorded on the inbound event."""
    now = _utc(now)
    ch = Channel(channel)
    ref = ref or secrets.token_hex(8)
    async with _transaction(connection) as conn:
        head = parse_reply(text)
        live = await _live(ch, sender, now, conn)
        if head.opt_out:
            return await _opt_out(ch, sender, text, live, now, zone, conn)
        target, reason = _choose(head.code, live) if live else (None, "none_open")
        if target is None:
            return await _unrouted(ch, sender, reason, head.code, live, now, zone, conn, ref)
        state = state_of(target)
        # read against the questions still open; with all of them open that is the first reading
        reading = head if state.open_questions == REQUIRED else parse_reply(text, state.open_questions)
        new, actions = step(state, reading, now)
        await _apply(target, new, actions, now, zone, conn, ref)
        return f"survey_{target.status.value}"


async def _unrouted(
    ch: Channel,
    sender: str,
    reason: str,
    code: str | None,
    live: list[SurveyRow],
    now: datetime,
    zone: tzinfo,
    conn,
    ref: str,
) -> str:
    """Ask which inspection, or refuse a code that is not the sender's, once per situation
    (an auto-responder cannot start a loop). Nothing about anyone else's survey is said."""
    if reason == "none_open":
        if ch == Channel.TELEGRAM:
            await enqueue(
                [
                    Message(
                        dedupe_key=f"survey:none:{ref}",
                        recipient_kind=RecipientKind.PERSON,
                        recipient_id=0,
                        template="survey_none_open.j2",
                        context={"channel": ch.value},
                        channel=ch,
                        priority=-2,
                        address=sender,
                    )
                ],
                now,
                connection=conn,
            )
        return "survey_none_open"
    base = live[0]
    pool = [s for s in live if s.status in OPEN] or live
    listing = [
        {
            "code": s.code,
            "date": (s.context or {}).get("date", ""),
            "departments": (s.context or {}).get("departments", []),
        }
        for s in pool
    ]
    codes = "-".join(sorted(s["code"] for s in listing))
    if reason == "which_inspection":
        key, template, extra = f"which:{codes}", "survey_which.j2", {"surveys": listing}
    else:
        key, template, extra = f"unknown:{code}:{codes}", "survey_unknown_code.j2", {"given": code, "surveys": listing}
    msg = _message(base, key, template, extra, not_before=_reply_time(base, now, zone), priority=-2)
    await enqueue([replace(msg, dedupe_key=f"survey:{ch.value}:{sender}:{key}")], now, connection=conn)
    return f"survey_{reason}"


_OPTED_SQL = "SELECT COUNT(*) FROM survey_opt_out WHERE entity_id IN ({}) OR mobile = ?"


async def _opted_count(entity_ids: list[int], mobile: str | None, conn) -> int:
    """How many opt-out rows name these entities or this mobile."""
    marks = ", ".join("?" * len(entity_ids)) or "NULL"
    _, rows = await conn.execute_query(db.sql(_OPTED_SQL.format(marks), connection=conn), [*entity_ids, mobile])
    return rows[0][0]


async def _open_of(entity_ids: list[int], conn) -> list[SurveyRow]:
    """The open surveys of these entities, locked (PostgreSQL; SQLite has one writer)."""
    if not entity_ids:
        return []
    sql = _SELECT_SQL + (
        f"WHERE entity_id IN ({', '.join('?' * len(entity_ids))}) AND status IN ({_listed(OPEN)}) ORDER BY id"
    )
    sql += " FOR UPDATE" if conn.capabilities.dialect == "postgres" else ""
    _, rows = await conn.execute_query(db.sql(sql, connection=conn), entity_ids)
    return [_survey_row(r) for r in rows]


async def _opt_out(
    ch: Channel, sender: str, text: str, live: list[SurveyRow], now: datetime, zone: tzinfo, conn
) -> str:
    """Record the opt-out (the entities reached here, and the mobile itself), close every open
    survey of those entities, and confirm once — ever — to this address. Raw SQL, as the reply
    path is: an opt-out is one reply among many."""
    entity_ids = {s.entity_id for s in live}
    if ch == Channel.SMS:
        _, found = await conn.execute_query(db.sql("SELECT id FROM entity WHERE mobile = ?", connection=conn), [sender])
    else:
        _, found = await conn.execute_query(
            db.sql(
                "SELECT entity_id FROM chat_binding WHERE channel = ? AND address = ? AND role = ? "
                "AND revoked_at IS NULL",
                connection=conn,
            ),
            [ch.value, sender, Role.ENTITY.value],
        )
    entity_ids |= {r[0] for r in found}
    entity_ids.discard(None)
    ids = sorted(entity_ids)
    mobile = sender if ch == Channel.SMS else None
    before = await _opted_count(ids, mobile, conn)
    keyword = " ".join(text.split())[:64]
    rows = [(eid, None, ch.value, keyword, now) for eid in ids]
    if mobile:
        rows.append((None, mobile, ch.value, keyword, now))
    await db.bulk_insert(
        "survey_opt_out",
        ("entity_id", "mobile", "channel", "keyword", "at"),
        rows,
        ignore_conflicts=True,
        connection=conn,
    )
    closed = 0
    for s in await _open_of(ids, conn):
        new, _ = step(state_of(s), ParseResult(opt_out=True), now)
        _store(s, new, now)
        s.poll_question = None
        await _save_state(s, conn)
        closed += 1
    after = await _opted_count(ids, mobile, conn)
    if not closed and after == before:
        return "survey_opt_out_again"
    sign = next(((s.context or {}).get("sign", "") for s in live), "")
    await enqueue(
        [
            Message(
                dedupe_key=f"survey:optout:{ch.value}:{sender}",
                recipient_kind=RecipientKind.ENTITY,
                recipient_id=min(entity_ids) if entity_ids else 0,
                template="survey_optout.j2",
                context={"sign": sign if ch == Channel.SMS else "", "channel": ch.value},
                channel=ch,
                locale=live[0].locale if live else "zh-CN",
                priority=-2,
                address=sender,
                not_before=_allowed(now, zone) if ch == Channel.SMS else now,
            )
        ],
        now,
        connection=conn,
    )
    return "survey_opted_out"


async def handle_poll_answer(
    chat: str,
    poll_id: str,
    option_ids: Iterable[int],
    now: datetime,
    *,
    zone: tzinfo = SHANGHAI,
    ref: str | None = None,
    connection=None,
) -> str:
    """A Telegram poll answer from an entity's chat, applied through the same ``step``."""
    now = _utc(now)
    options = list(option_ids)
    ref = ref or secrets.token_hex(8)
    async with _transaction(connection) as conn:
        sent = await _sent_poll(chat, poll_id, conn)
        live = await _live(Channel.TELEGRAM, chat, now, conn) if sent is not None else []
        target = next((s for s in live if sent is not None and s.id == sent[0]), None)
        if target is None:
            return "survey_poll_unknown"
        question = sent[1]
        _poll_answered(target, poll_id, question)
        if len(options) != 1:
            await _save_state(target, conn)  # the poll id recorded; a retracted vote changes nothing
            return "survey_poll_retracted"
        value = _poll_value(question, options[0])
        if value is None:
            return "survey_poll_bad_option"
        state = state_of(target)
        new, actions = step(state, ParseResult(answers=Answers(**{question.value: value})), now)
        await _apply(target, new, actions, now, zone, conn, ref)
        return f"survey_{target.status.value}"


def _polls(row: Survey | SurveyRow) -> dict:
    """``{"sent": [question codes whose poll went out], "ids": {answered poll id: question code}}``."""
    p = row.polls or {}
    return {"sent": list(p.get("sent", [])), "ids": dict(p.get("ids", {}))}


def _poll_sent(row: Survey | SurveyRow, question: Question) -> None:
    p = _polls(row)
    if question.value not in p["sent"]:
        p["sent"].append(question.value)
    row.polls = p


def _poll_answered(row: Survey | SurveyRow, poll_id: str, question: Question) -> None:
    """Record which poll answered which question (for the record; routing reads the outbox)."""
    p = _polls(row)
    p["ids"][poll_id] = question.value
    row.polls = p


_POLL_KEY = re.compile(r"survey:(\d+):poll:([a-z]+)")


async def _sent_poll(chat: str, poll_id: str, conn) -> tuple[int, Question] | None:
    """The survey and question of the poll ``poll_id`` sent to this chat: the dispatcher stored
    the poll's id as its outbox row's ``provider_id`` (index on channel, provider_id) and the
    row's key names both. None for a poll we did not send to this chat."""
    if not poll_id:
        return None
    keys = await (
        Outbox.filter(channel=Channel.TELEGRAM, provider_id=poll_id, address=chat)
        .using_db(conn)
        .values_list("dedupe_key", flat=True)
    )
    for key in keys:
        m = _POLL_KEY.fullmatch(key)
        if m is not None and m.group(2) in {q.value for q in REQUIRED}:
            return int(m.group(1)), Question(m.group(2))
    return None


# --- delivery receipts -------------------------------------------------------------------------


async def delivery_status(
    provider_id: str,
    status: str,
    error_code: str,
    now: datetime,
    *,
    channel: str = "sms",
    zone: tzinfo = SHANGHAI,
    connection=None,
) -> str:
    """A delivery receipt: record it on the outbox row (matched by the provider's message id);
    an undelivered survey invitation falls back to Telegram or makes the survey undeliverable."""
    now = _utc(now)
    async with _transaction(connection) as conn:
        row = await (
            Outbox.filter(channel=Channel(channel), provider_id=provider_id).using_db(conn).select_for_update().first()
        )
        if row is None:
            return "delivery_unknown"
        if status == "delivered":
            if row.status != OutboxStatus.DELIVERED:
                await Outbox.filter(id=row.id).using_db(conn).update(status=OutboxStatus.DELIVERED, delivered_at=now)
            return "delivered"
        if status not in ("undelivered", "failed"):
            return f"delivery_{status}"[:64]
        if row.status == OutboxStatus.DELIVERED:
            return "delivery_after_delivered"
        await (
            Outbox.filter(id=row.id)
            .using_db(conn)
            .update(status=OutboxStatus.DEAD, last_error=f"{status}:{error_code}"[:255])
        )
        invite = _INVITE.fullmatch(row.dedupe_key)
        if invite is None:
            return "undelivered"
        return await _undelivered(int(invite[1]), now, zone, conn)


async def _undelivered(survey_id: int, now: datetime, zone: tzinfo, conn) -> str:
    """The SMS invitation did not arrive: Telegram polls if the entity linked a chat, else give up."""
    row = await Survey.filter(id=survey_id).using_db(conn).select_for_update().first()
    if row is None or row.status not in OPEN or row.channel != Channel.SMS:
        return "undelivered"
    binding = await _telegram_binding(row.entity_id, conn)
    if binding is None:
        row.status, row.completed_at = SurveyStatus.UNDELIVERABLE, now
        await row.save(using_db=conn)
        return "survey_undeliverable"
    row.channel, row.address, row.locale = Channel.TELEGRAM, binding.address, binding.locale
    await _start(row, now, zone, conn)
    return "survey_fallback_telegram"


# --- time: the sweep ---------------------------------------------------------------------------


async def _dead_invites(limit: int) -> list[int]:
    """Open SMS surveys whose invitation the dispatcher gave up on (a permanent send error)."""
    sql = (
        "SELECT s.id FROM survey s JOIN outbox o ON o.dedupe_key = ('survey:' || CAST(s.id AS TEXT) || ':invite') "
        f"WHERE s.channel = 'sms' AND s.status IN ('pending', 'sent') AND o.status = 'dead' "
        f"ORDER BY s.id LIMIT {int(limit)}"
    )
    return [r["id"] for r in await db.conn().execute_query_dict(sql)]


async def _tick_one(survey_id: int, now: datetime, zone: tzinfo) -> bool:
    async with in_transaction() as conn:
        row = await Survey.filter(id=survey_id, status__in=list(OPEN)).using_db(conn).select_for_update().first()
        if row is None or row.sent_at is None:
            return False
        state = state_of(row)
        new, actions = tick(state, now, zone)
        if new == state and not actions:
            return False
        await _apply(row, new, actions, now, zone, conn, "tick")
        return True


async def run_sweep(now: datetime, *, zone: tzinfo = SHANGHAI, batch: int = SWEEP_BATCH) -> dict[str, int]:
    """Everything time does to surveys; idempotent (it reads the state it changes)."""
    now = _utc(now)
    done = {"sent": 0, "fallback": 0, "started": 0, "ticked": 0}
    done["sent"] = await Survey.filter(status=SurveyStatus.PENDING, sent_at__lte=now).update(status=SurveyStatus.SENT)
    for sid in await _dead_invites(batch):
        async with in_transaction() as conn:
            done["fallback"] += (await _undelivered(sid, now, zone, conn)) != "undelivered"
    # Telegram surveys an older version left waiting for another survey's polls: start them
    waiting = await (
        Survey.filter(channel=Channel.TELEGRAM, status=SurveyStatus.PENDING, sent_at=None)
        .order_by("id")
        .limit(batch)
        .values_list("id", flat=True)
    )
    for sid in waiting:
        async with in_transaction() as conn:
            row = await (
                Survey.filter(id=sid, status=SurveyStatus.PENDING, sent_at=None)
                .using_db(conn)
                .select_for_update()
                .first()
            )
            if row is not None:
                await _start(row, now, zone, conn)
                done["started"] += 1
    due = Q(expires_at__lte=now)
    if not is_quiet(now, zone):
        due |= Q(reminded_at=None, reminder_at__lte=now)
    ids = await (
        Survey.filter(due, status__in=list(OPEN), sent_at__not_isnull=True)
        .order_by("id")
        .limit(batch)
        .values_list("id", flat=True)
    )
    for sid in ids:
        done["ticked"] += await _tick_one(sid, now, zone)
    return done


@sweep("surveys")
async def survey_sweep(scheduler, now: datetime) -> None:
    """The scheduler's periodic call (every ``sweep_every`` seconds)."""
    await run_sweep(now, zone=scheduler.zone)


# --- integrity scores --------------------------------------------------------------------------


@dataclass(frozen=True)
class IntegrityRow:
    inspector_id: int
    name: str
    cert_no: str
    department: str
    score: Score


@dataclass(frozen=True)
class IntegrityReport:
    rows: tuple[IntegrityRow, ...]  # worst score first
    withheld: int  # inspectors left out because their aggregate rests on fewer than 5 responses
    responses: int  # survey responses in the window about these departments' inspectors
    window: timedelta


def _chunks(seq: list, size: int = _IN_CHUNK):
    for i in range(0, len(seq), size):
        yield seq[i : i + size]


async def integrity(
    departments: Iterable[str], window: timedelta, now: datetime, *, coordinator: bool = True
) -> IntegrityReport:
    """Integrity scores of the inspectors of ``departments`` over ``(now - window, now]``.

    For coordinators every scored inspector; for anyone else only the aggregates that rest on
    at least five responses (``publishable``), the others counted in ``withheld``."""
    now = _utc(now)
    departments = sorted(set(departments))
    surveys = await Survey.filter(answered_at__gt=now - window, answered_at__lte=now).values_list(
        "id", "inspection_id", "answers", "answered_at", "late"
    )
    teams: dict[int, list[int]] = {}
    for chunk in _chunks(sorted({s[1] for s in surveys})):
        pairs = await Assignment.filter(
            inspection_id__in=chunk, status__in=list(HOLDING_SEAT), inspector__department__code__in=departments
        ).values_list("inspection_id", "inspector_id")
        for inspection_id, inspector_id in pairs:
            teams.setdefault(inspection_id, []).append(inspector_id)
    responses = [
        Response(
            survey=str(sid),
            inspectors=tuple(str(i) for i in teams[insp]),
            at=at,
            late=late,
            answers=Answers(**{q.value: (answers or {}).get(q.value) for q in REQUIRED}),
        )
        for sid, insp, answers, at, late in surveys
        if insp in teams
    ]
    scores = integrity_scores(responses, window, now)
    people: dict[int, tuple] = {}
    for chunk in _chunks(sorted(int(k) for k in scores)):
        for row in await Inspector.filter(id__in=chunk).values_list("id", "name", "cert_no", "department__code"):
            people[row[0]] = row
    rows = [IntegrityRow(i, people[i][1], people[i][2], people[i][3], scores[str(i)]) for i in sorted(people)]
    shown = rows if coordinator else [r for r in rows if publishable(r.score)]
    shown.sort(key=lambda r: (r.score.score, -r.score.n, r.name))
    counted = sum(1 for r in responses if r.answers.open() != REQUIRED)
    return IntegrityReport(tuple(shown), len(rows) - len(shown), counted, window)


def report_context(report: IntegrityReport, limit: int = REPORT_ROWS) -> dict:
    """The /integrity template's context (plain values)."""
    rows = [
        {
            "name": r.name,
            "cert": r.cert_no,
            "department": r.department,
            "n": r.score.n,
            "score": r.score.score,
            "improper": r.score.improper,
            "no_credentials": r.score.no_credentials,
            "unfair": r.score.unfair,
            "fairness_mean": r.score.fairness_mean,
            "alerts": r.score.alerts,
        }
        for r in report.rows[:limit]
    ]
    return {
        "rows": rows,
        "more": max(0, len(report.rows) - limit),
        "withheld": report.withheld,
        "responses": report.responses,
        "days": report.window.days,
    }


async def sample_of(draw_ref: str) -> SurveySample | None:
    """The recorded sample of a draw (seed included): for coordinators' and auditors' tools only."""
    return await SurveySample.filter(draw__draw_ref=draw_ref).first()
