"""What the survey use cases share: the survey row and the pure state, its messages, and
applying what ``step`` or ``tick`` decided (the new state saved, the actions turned into outbox
rows and alerts, in the caller's transaction)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo

from core import db
from core.clock import utc as _utc
from domain.errors import ServiceError
from domain.surveys import (
    REQUIRED,
    Answers,
    AskQuestion,
    Clarify,
    Kind,
    Question,
    RaiseAlert,
    SendReminder,
    Status,
    SurveyState,
    Thank,
    next_allowed_send,
)
from models.messaging import Channel, ChatBinding, RecipientKind, Role
from models.surveys import Survey, SurveyStatus
from services.alerts import raise_alert
from services.outbox import Message, enqueue

OPEN = (SurveyStatus.PENDING, SurveyStatus.SENT)


RECENT = (SurveyStatus.ANSWERED, SurveyStatus.INCOMPLETE, SurveyStatus.EXPIRED)


#: How long after sending a reply still reaches a closed survey (late answers, comments).
LATE_WINDOW = timedelta(days=30)


_STATUS = {
    Status.OPEN: SurveyStatus.SENT,
    Status.COMPLETE: SurveyStatus.ANSWERED,
    Status.INCOMPLETE: SurveyStatus.INCOMPLETE,
    Status.EXPIRED: SurveyStatus.EXPIRED,
    Status.OPTED_OUT: SurveyStatus.OPTED_OUT,
}


_PURE = {v: k for k, v in _STATUS.items()}


class SurveyError(ServiceError):
    """Refused; ``code`` names a text in texts/surveys.j2."""


def _allowed(now: datetime, zone: tzinfo) -> datetime:
    """The first moment a survey message may go out (quiet hours), in UTC."""
    return _utc(next_allowed_send(now, zone))


async def _telegram_binding(entity_id: int, conn) -> ChatBinding | None:
    return await (
        ChatBinding.filter(
            channel=Channel.TELEGRAM, role=Role.ENTITY, entity_id=entity_id, revoked_at=None, reachable=True
        )
        .using_db(conn)
        .order_by("-id")
        .first()
    )


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


# --- messages --------------------------------------------------------------------------------


def _shown(row: Survey | SurveyRow) -> dict:
    """What the entity's messages may show: never anything about other surveys or answers."""
    c = row.context or {}
    return {
        "sign": c.get("sign", "") if row.channel == Channel.SMS else "",
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


def _polls(row: Survey | SurveyRow) -> dict:
    """``{"sent": [question codes whose poll went out], "ids": {answered poll id: question code}}``."""
    p = row.polls or {}
    return {"sent": list(p.get("sent", [])), "ids": dict(p.get("ids", {}))}


def _poll_sent(row: Survey | SurveyRow, question: Question) -> None:
    p = _polls(row)
    if question.value not in p["sent"]:
        p["sent"].append(question.value)
    row.polls = p


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
        # OptOutEntity and ConfirmOptOut only come from an opt-out, which replies._opt_out handles whole.
    if row.status not in OPEN or not state.open_questions:
        row.poll_question = None
    await _save_state(row, conn)
    if messages:
        await enqueue(messages, now, connection=conn)
