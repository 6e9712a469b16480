"""Inbound events: stored once, then handed to the handler router, in one transaction.

The provider's id (Telegram ``update_id``, SMS ``MessageSid``) is a unique key of
``inbound_event``; a duplicate delivery inserts nothing and changes nothing. The event row and
everything its handler writes (state changes, reply rows in the outbox) commit together, and
only then does the webhook answer 2xx — so a crash or a database outage loses nothing: the
provider delivers again. Events arriving together are committed together (group commit, see
:data:`GROUPED_KINDS`): one transaction, each event in a savepoint of its own, each answered
only after that transaction's COMMIT.

An event a person sent (anything but a delivery receipt or a membership change) also ends an
"unreachable" mark on its address and releases the messages held by it
(:func:`services.reachability.clear_unreachable`), in the same transaction.

Chat bindings belong to the people who redeemed an invite (``/start CODE``, a Telegram command,
in a private chat): they are looked up by the sender's own user id (:attr:`InboundEvent.person`),
never by a group's chat id, so an event from a group acts for nobody (docs/messaging.md). An
SMS sender is identified by its number itself (an entity's mobile), never by a binding, so the
binding lookup is skipped on the channels in :data:`UNBOUND_CHANNELS` (their handlers see none).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, fields, replace
from functools import partial
from zoneinfo import ZoneInfo

from tortoise.transactions import in_transaction

from core import db
from core.channel import EventKind, InboundEvent
from core.clock import Clock
from core.db import transient  # noqa: F401  (re-exported: a database failure worth retrying)
from core.settings import Settings
from models.messaging import ChatBinding
from services.identity import DIRECTORY_CHANNELS, as_the_directory_says, bindings_of, code_hash
from services.outbox import reply
from services.reachability import NOT_FROM_PERSON, clear_unreachable

log = logging.getLogger(__name__)

#: Channels on which no chat binding can exist (no ``/start``): their senders' bindings are not looked up.
UNBOUND_CHANNELS = frozenset({"sms"})


#: The kinds of event always committed by group commit (:class:`bot.db.GroupCommit`; on SQLite
#: their statements run on the event loop's thread): the high-volume ones, whose handlers are
#: short — a survey reply, a poll answer, a delivery receipt, a check-in, a photo's row. Commands
#: and buttons are grouped too, except those that may start long work (a draw, a monthly report,
#: a verification), which must neither hold up the events batched with them nor run on the loop:
#: the caller of :func:`receive` says which (``long_work``; the service passes the router's
#: ``handlers.router.long_work``, which declares them), and each of those gets a transaction of its
#: own. Without ``long_work`` every command and button gets its own (the safe default).
GROUPED_KINDS = frozenset(
    {
        EventKind.TEXT,
        EventKind.POLL_ANSWER,
        EventKind.DELIVERY,
        EventKind.LOCATION,
        EventKind.PHOTO,
        EventKind.MEMBERSHIP,
    }
)
#: How often an event is tried when PostgreSQL breaks it off to undo a lock cycle (a deadlock, a
#: serialization failure: :func:`core.db.lock_conflict`) — a second line: the receipts' locks are
#: taken in one order, but the events of a batch take theirs in the order the events came. Past
#: that, the error is transient: the webhook answers 503 and the provider delivers it again.
CONFLICT_TRIES = 3
#: The kinds grouped unless ``long_work`` says otherwise (or is not given).
_CLASSIFIED_KINDS = frozenset({EventKind.COMMAND, EventKind.BUTTON})


@dataclass
class Received:
    duplicate: bool
    outcome: str = ""
    replies: int = 0
    button_answer: str = ""  # a text code (templates/*/texts/) to answer a button press with, e.g. a refusal
    locale: str = "zh-CN"  # the locale of that answer


@dataclass
class Context:
    """What a handler gets besides the event: who is talking and what time it is."""

    event: InboundEvent
    bindings: list[ChatBinding]
    clock: Clock
    conn: object
    locale: str = "zh-CN"
    zone: ZoneInfo = ZoneInfo("Asia/Shanghai")
    outcome: str = "handled"
    notes: dict = field(default_factory=dict)
    settings: Settings | None = None  # the service's settings (None in tests that need none)


Handler = Callable[[Context], Awaitable[None]]


async def receive(
    event: InboundEvent,
    route: Callable[[Context], Awaitable[str]],
    clock: Clock,
    locale: str = "zh-CN",
    zone: ZoneInfo = ZoneInfo("Asia/Shanghai"),
    settings: Settings | None = None,
    long_work: Callable[[InboundEvent], bool] | None = None,
) -> Received:
    """Store and handle ``event``; return once that is committed. A database failure propagates
    (the caller answers 503 or retries); a failure of the handler itself rolls its work back,
    and the event is then kept with outcome ``failed:<error>`` and the sender told — a bug never
    loses an event, nor blocks the ones behind it.

    The event and its handler's writes are one unit. It is committed by group commit
    (:class:`bot.db.GroupCommit`) — the events arriving together share one transaction, each in
    its own savepoint, so a failing handler rolls back its own event alone — unless it is a
    command or button that may start long work (``long_work(event)``, see :data:`GROUPED_KINDS`),
    which gets a transaction of its own.

    An event PostgreSQL broke off to undo a lock cycle with another transaction (40P01, 40001)
    is handled again (:data:`CONFLICT_TRIES`), then answered as a database failure (503): the
    events of one batch take their locks in the order the events came, which no lock order of
    the use cases can rule out across two instances' batches."""
    now = clock.now()
    event = without_nul(event)
    # prepared before the transaction: on SQLite it holds the one connection until it commits
    row = [event.channel, event.external_id, event.sender, event.kind.value, db.encode(_payload(event)), now, ""]
    grouped = event.kind in GROUPED_KINDS or (
        event.kind in _CLASSIFIED_KINDS and long_work is not None and not long_work(event)
    )
    try:
        return await _handled(grouped, partial(_receive, event, row, route, clock, locale, zone, settings), event)
    except Exception as exc:
        if transient(exc):
            raise
        log.exception("handler failed on %s event %s", event.channel, event.external_id)
        return await _committed(grouped, partial(_record_failure, event, row, locale, exc))


async def _handled(grouped: bool, work: Callable[[object], Awaitable[Received]], event: InboundEvent) -> Received:
    """``work`` committed (:func:`_committed`), run again when PostgreSQL broke it off to undo a
    lock cycle, up to :data:`CONFLICT_TRIES` times in all: nothing of it was stored, and a grouped
    event then joins the next batch, after the commit of the one whose locks it met."""
    for _ in range(CONFLICT_TRIES - 1):
        try:
            return await _committed(grouped, work)
        except Exception as exc:
            if not db.lock_conflict(exc):
                raise
            log.warning(
                "%s event %s was broken off by a lock conflict (%s); handled again",
                event.channel,
                event.external_id,
                getattr(exc, "sqlstate", type(exc).__name__),
            )
    return await _committed(grouped, work)


async def _committed(grouped: bool, work: Callable[[object], Awaitable[Received]]) -> Received:
    """``work(conn)`` committed: by group commit if ``grouped``, else in a transaction of its own."""
    if grouped:
        return await db.group_commit(work)
    async with in_transaction() as conn:
        return await work(conn)


_INSERT = (
    "INSERT INTO inbound_event (channel, external_id, sender, kind, payload, received_at, outcome) "
    "VALUES ({}) ON CONFLICT DO NOTHING RETURNING id"
)


async def _record_failure(event: InboundEvent, row: list, locale: str, exc: Exception, conn) -> Received:
    outcome = f"failed:{exc.__class__.__name__}"[:64]
    rows = await conn.execute_query_dict(_INSERT.format(db.placeholders(7, connection=conn)), [*row[:-1], outcome])
    if rows:
        await reply(event, "internal_error.j2", locale=locale, now=row[5], connection=conn)
    return Received(duplicate=not rows, outcome=outcome)


async def _receive(
    event: InboundEvent,
    row: list,
    route: Callable[[Context], Awaitable[str]],
    clock: Clock,
    locale: str,
    zone: ZoneInfo,
    settings: Settings | None,
    conn,
) -> Received:
    rows = await conn.execute_query_dict(_INSERT.format(db.placeholders(7, connection=conn)), row)
    if not rows:
        return Received(duplicate=True)
    if event.kind not in NOT_FROM_PERSON:  # the person wrote: they can be reached (one DELETE if not marked)
        await clear_unreachable(event.channel, event.sender, row[5], conn)
    person = event.person  # the sender's own user id, never a group's chat id ("" in a group: nobody)
    bindings = [] if event.channel in UNBOUND_CHANNELS or not person else await bindings_of(event.channel, person, conn)
    if person and event.channel in DIRECTORY_CHANNELS:  # WeCom: the directory says who it is, now
        bindings = await as_the_directory_says(event.channel, person, bindings, row[5], conn)
    ctx = Context(
        event=event,
        bindings=bindings,
        clock=clock,
        conn=conn,
        locale=bindings[0].locale if bindings else locale,
        zone=zone,
        settings=settings,
    )
    outcome = await route(ctx)
    q = db.placeholders(3, connection=conn).split(", ")
    await conn.execute_query(
        f"UPDATE inbound_event SET processed_at={q[0]}, outcome={q[1]} WHERE id={q[2]}",
        [row[5], outcome[:64], rows[0]["id"]],
    )
    return Received(
        duplicate=False, outcome=outcome, button_answer=ctx.notes.get("button_answer", ""), locale=ctx.locale
    )


def without_nul(event: InboundEvent) -> InboundEvent:
    """``event`` with U+0000 dropped from its text fields. PostgreSQL holds no NUL in ``text`` or
    ``jsonb``: kept, it would make the event unstorable on every delivery (a poison message the
    provider retries for ever, holding Telegram's later updates behind it). No person types a
    NUL; dropping it loses nothing they meant."""
    changes = {
        name: value.replace("\x00", "")
        for name in _FIELDS
        if isinstance(value := getattr(event, name), str) and "\x00" in value
    }
    return replace(event, **changes) if changes else event


_FIELDS = tuple(f.name for f in fields(InboundEvent))


def _payload(event: InboundEvent) -> dict:
    """What we keep of an event: the normalised fields (never a token or a signature)."""
    argument = event.argument
    if event.command == "start" and argument:
        argument = "sha256:" + code_hash(argument)  # an invite code is stored only as its hash
    return {
        "text": "" if event.command == "start" else event.text,
        "command": event.command,
        "argument": argument,
        "data": event.data,
        "message_id": event.message_id,
        "latitude": event.latitude,
        "longitude": event.longitude,
        "file_id": event.file_id,
        "poll_id": event.poll_id,
        "option_ids": list(event.option_ids),
        "status": event.status,
        "error_code": event.error_code,
        "edited": event.edited,
        "user": event.user,
        "chat_type": event.chat_type,
        "addressee": event.addressee,
    }
