"""Inbound events: stored once, then handed to the handler router, in one transaction.

The provider's id (Telegram ``update_id``, SMS ``MessageSid``) is a unique key of
``inbound_event``; a duplicate delivery inserts nothing and changes nothing. The event row and
everything its handler writes (state changes, reply rows in the outbox) commit together, and
only then does the webhook answer 2xx — so a crash or a database outage loses nothing: the
provider delivers again.

Chat bindings belong to chats that redeemed an invite (``/start CODE``, a Telegram command). An
SMS sender is identified by its number itself (an entity's mobile), never by a binding, so the
binding lookup is skipped on the channels in :data:`UNBOUND_CHANNELS` (their handlers see none).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Awaitable, Callable
from zoneinfo import ZoneInfo

from tortoise.exceptions import DBConnectionError, OperationalError
from tortoise.transactions import in_transaction

from bot import db
from bot.channels.base import InboundEvent
from bot.clock import Clock
from bot.settings import Settings
from models.messaging import ChatBinding
from services.identity import bindings_of, code_hash

log = logging.getLogger(__name__)

#: Channels on which no chat binding can exist (no ``/start``): their senders' bindings are not looked up.
UNBOUND_CHANNELS = frozenset({"sms"})


@dataclass
class Received:
    duplicate: bool
    outcome: str = ""
    replies: int = 0


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


async def receive(event: InboundEvent, route: Callable[[Context], Awaitable[str]], clock: Clock,
                  locale: str = "zh-CN", zone: ZoneInfo = ZoneInfo("Asia/Shanghai"),
                  settings: Settings | None = None) -> Received:
    """Store and handle ``event``. A database failure propagates (the caller answers 503 or
    retries); a failure of the handler itself rolls its work back, and the event is then kept
    with outcome ``failed:<error>`` and the sender told — a bug never loses an event, nor blocks
    the ones behind it."""
    try:
        return await _receive(event, route, clock, locale, zone, settings)
    except Exception as exc:
        if transient(exc):
            raise
        log.exception("handler failed on %s event %s", event.channel, event.external_id)
        return await _record_failure(event, clock, locale, exc)


def transient(exc: BaseException) -> bool:
    """A failure of the database or the network (worth retrying), not of our code."""
    if isinstance(exc, (DBConnectionError, OSError, ConnectionError, asyncio.TimeoutError)):
        return True
    if isinstance(exc, OperationalError):
        text = str(exc).lower()
        return any(w in text for w in ("connect", "closed", "locked", "terminat", "shutdown", "timeout", "refused"))
    return False


async def _record_failure(event: InboundEvent, clock: Clock, locale: str, exc: Exception) -> Received:
    now = clock.now()
    outcome = f"failed:{exc.__class__.__name__}"[:64]
    async with in_transaction() as conn:
        p = db.placeholders(7)
        rows = await conn.execute_query_dict(
            "INSERT INTO inbound_event (channel, external_id, sender, kind, payload, received_at, outcome) "
            f"VALUES ({p}) ON CONFLICT DO NOTHING RETURNING id",
            [event.channel, event.external_id, event.sender, event.kind.value,
             db.encode(_payload(event)), now, outcome],
        )
        if rows:
            from services.outbox import reply

            await reply(event, "internal_error.j2", locale=locale, now=now, connection=conn)
    return Received(duplicate=not rows, outcome=outcome)


async def _receive(event: InboundEvent, route: Callable[[Context], Awaitable[str]], clock: Clock,
                   locale: str, zone: ZoneInfo, settings: Settings | None = None) -> Received:
    now = clock.now()
    # prepared before the transaction: on SQLite it holds the one connection until it commits
    row = [event.channel, event.external_id, event.sender, event.kind.value, db.encode(_payload(event)), now, ""]
    async with in_transaction() as conn:
        p = db.placeholders(7)
        rows = await conn.execute_query_dict(
            "INSERT INTO inbound_event (channel, external_id, sender, kind, payload, received_at, outcome) "
            f"VALUES ({p}) ON CONFLICT DO NOTHING RETURNING id",
            row,
        )
        if not rows:
            return Received(duplicate=True)
        bindings = [] if event.channel in UNBOUND_CHANNELS else await bindings_of(event.channel, event.sender)
        ctx = Context(event=event, bindings=bindings, clock=clock, conn=conn,
                      locale=bindings[0].locale if bindings else locale, zone=zone, settings=settings)
        outcome = await route(ctx)
        q = db.placeholders(3).split(", ")
        await conn.execute_query(
            f"UPDATE inbound_event SET processed_at={q[0]}, outcome={q[1]} WHERE id={q[2]}",
            [now, outcome[:64], rows[0]["id"]],
        )
    return Received(duplicate=False, outcome=outcome)


def _payload(event: InboundEvent) -> dict:
    """What we keep of an event: the normalised fields (never a token or a signature)."""
    argument = event.argument
    if event.command == "start" and argument:
        argument = "sha256:" + code_hash(argument)  # an invite code is stored only as its hash
    return {
        "text": "" if event.command == "start" else event.text, "command": event.command,
        "argument": argument, "data": event.data,
        "message_id": event.message_id, "latitude": event.latitude, "longitude": event.longitude,
        "file_id": event.file_id, "poll_id": event.poll_id, "option_ids": list(event.option_ids),
        "status": event.status, "error_code": event.error_code, "edited": event.edited,
    }
