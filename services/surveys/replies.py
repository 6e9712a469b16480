"""Replies from entities: a text (SMS, or the entity's linked Telegram chat) or a Telegram poll
answer, routed to the right survey, read (``parse_reply``) and applied through ``step``. Opt-out
keywords close every open survey of the entity for good.

A poll answer names only the poll's id, so the Telegram channel reports a sent poll's id (not
its message id) and the dispatcher stores it as the outbox row's ``provider_id``; the row's
dedupe key (``survey:<id>:poll:<question>``) names the survey and the question. An answer is
matched by that stored id, in the answering chat, so several surveys for one chat poll at once
and their answers may come in any order. An answer to a poll id we did not send there is ignored.
An answer to a poll id no send has yet (the entity voted before the dispatcher stored it) waits
in ``waiting_receipt`` and is applied when the id is recorded (services/surveys/waiting.py).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime, tzinfo

from core import db
from core.clock import utc as _utc
from core.db import transaction as _transaction
from domain.surveys import REQUIRED, SHANGHAI, Answers, Kind, ParseResult, Question, parse_reply, route_reply, step
from models.messaging import Channel, Outbox, RecipientKind, Role
from models.surveys import Survey
from services.outbox import Message, enqueue
from services.surveys.shared import (
    _LIVE_SQL,
    _SELECT_SQL,
    LATE_WINDOW,
    OPEN,
    SurveyRow,
    _allowed,
    _apply,
    _listed,
    _message,
    _polls,
    _reply_time,
    _save_state,
    _store,
    _survey_row,
    state_of,
)
from services.surveys.waiting import POLL_ANSWER, hold, lock_unmatched


async def _live(channel: Channel, address: str, now: datetime, conn) -> list[SurveyRow]:
    """The surveys a message from this address may be about, newest first, locked (PostgreSQL;
    SQLite has one writer). One raw query: this runs for every reply."""
    sql = _LIVE_SQL + (" FOR UPDATE" if conn.capabilities.dialect == "postgres" else "")
    _, rows = await conn.execute_query(db.sql(sql, connection=conn), [channel.value, address, now - LATE_WINDOW])
    return [_survey_row(r) for r in rows]


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
                        context={},
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
                context={"sign": sign if ch == Channel.SMS else ""},
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
    event_key: str = "",
    connection=None,
) -> str:
    """A Telegram poll answer from an entity's chat, applied through the same ``step``.

    ``event_key`` is the answer's inbound event key: with it, an answer naming a poll id that no
    send has yet (the entity voted before the dispatcher stored the poll's id) waits for that id
    (``survey_poll_waiting``, services/surveys/waiting.py) and is applied when it is recorded;
    without it, such an answer is ``survey_poll_unknown``."""
    now = _utc(now)
    options = list(option_ids)
    ref = ref or secrets.token_hex(8)
    async with _transaction(connection) as conn:
        sent = await _sent_poll(chat, poll_id, conn)
        if sent is None and event_key and poll_id and not await _recorded(poll_id, conn):
            if await lock_unmatched(conn):  # a send recording this id now commits before we look again
                sent = await _sent_poll(chat, poll_id, conn)
            if sent is None and not await _recorded(poll_id, conn):
                await hold(
                    Channel.TELEGRAM.value,
                    poll_id,
                    event_key,
                    now,
                    conn,
                    status=POLL_ANSWER,
                    address=chat,
                    options=options,
                )
                return "survey_poll_waiting"
        return await _poll_answer(sent, chat, poll_id, options, now, zone, conn, ref)


async def apply_poll_answer(
    chat: str, poll_id: str, options: list[int], at: datetime, zone: tzinfo, conn, *, ref: str
) -> str:
    """A poll answer that waited for its poll's id (now recorded), applied as it was given ``at``;
    ``survey_poll_unknown`` if that poll was not sent to this chat or its survey is closed."""
    at = _utc(at)
    return await _poll_answer(await _sent_poll(chat, poll_id, conn), chat, poll_id, options, at, zone, conn, ref)


async def _poll_answer(
    sent: tuple[int, Question] | None,
    chat: str,
    poll_id: str,
    options: list[int],
    now: datetime,
    zone: tzinfo,
    conn,
    ref: str,
) -> str:
    live = await _live(Channel.TELEGRAM, chat, now, conn) if sent is not None else []
    target = next((s for s in live if sent is not None and s.id == sent[0]), None)
    if sent is None or target is None:
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


def _poll_value(question: Question, option: int) -> bool | int | None:
    """The answer an option index stands for (yes/no: 0 = yes, 1 = no; score: 0 → 1 … 4 → 5)."""
    if question.kind is Kind.YES_NO:
        return {0: True, 1: False}.get(option)
    if question.kind is Kind.SCORE and 0 <= option < 5:
        return option + 1
    return None


def _poll_answered(row: Survey | SurveyRow, poll_id: str, question: Question) -> None:
    """Record which poll answered which question (for the record; routing reads the outbox)."""
    p = _polls(row)
    p["ids"][poll_id] = question.value
    row.polls = p


_POLL_KEY = re.compile(r"survey:(\d+):poll:([a-z]+)")


def is_poll_key(dedupe_key: str) -> bool:
    """Whether an outbox row's key is a survey poll's (its answers name the poll's id)."""
    return _POLL_KEY.fullmatch(dedupe_key) is not None


async def _recorded(poll_id: str, conn) -> bool:
    """Whether any Telegram send has this id (an answer naming it in another chat is not ours)."""
    return await Outbox.filter(channel=Channel.TELEGRAM, provider_id=poll_id).using_db(conn).exists()


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
