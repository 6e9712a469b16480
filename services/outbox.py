"""Outgoing messages: enqueue them as rows of the outbox, written inside the caller's transaction,
and find the row a sent chat message came from."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from core import db
from models.messaging import Channel, Outbox, RecipientKind

COLUMNS = (
    "dedupe_key",
    "channel",
    "recipient_kind",
    "recipient_id",
    "address",
    "template",
    "context",
    "locale",
    "status",
    "priority",
    "attempts",
    "next_attempt_at",
    "last_error",
    "created_at",
)


@dataclass(frozen=True)
class Message:
    """One logical message. ``dedupe_key`` names it for ever (e.g. ``asg:123:sent``)."""

    dedupe_key: str
    recipient_kind: RecipientKind
    recipient_id: int
    template: str  # a template under templates/<locale>/messages/
    context: dict = field(default_factory=dict)
    channel: Channel = Channel.TELEGRAM
    locale: str = "zh-CN"
    priority: int = 0
    not_before: datetime | None = None
    address: str | None = None  # a reply to this chat/number, whoever it belongs to


async def enqueue(messages: list[Message] | tuple[Message, ...], now: datetime, connection=None) -> None:
    """Write the messages as outbox rows; a ``dedupe_key`` already present is left alone.

    Call it with the transaction's connection, so the rows commit (or roll back) together with
    the state change that caused them. (The rows are encoded here, as :func:`enqueue_many`'s
    are: a reply's one row is on every webhook's path.)
    """
    client = connection or db.conn()
    at = db.timestamp(now, connection=client)
    rows = [
        (
            m.dedupe_key,
            m.channel.value,
            m.recipient_kind.value,
            m.recipient_id,
            m.address,
            m.template,
            db.encode(m.context),
            m.locale,
            "pending",
            m.priority,
            0,
            db.timestamp(m.not_before, connection=client) if m.not_before is not None else at,
            "",
            at,
        )
        for m in messages
    ]
    await db.bulk_insert("outbox", COLUMNS, rows, ignore_conflicts=True, connection=client, encoded=True)


def to_person(binding, dedupe_key: str, template: str, context: dict, *, priority: int = -1) -> Message:
    """A message to one person's chat binding (anything with ``id``, ``channel`` and ``locale``:
    a ``ChatBinding`` or an alert's ``Recipient``). Coordinators' messages (alerts, requests to
    confirm, their outcomes) go ahead of the fan-outs: ``priority`` -1."""
    return Message(
        dedupe_key=dedupe_key,
        recipient_kind=RecipientKind.PERSON,
        recipient_id=binding.id,
        template=template,
        context=context,
        channel=Channel(binding.channel),
        locale=binding.locale,
        priority=priority,
    )


async def enqueue_to_people(
    bindings: Iterable, key: str, template: str, context: dict, now: datetime, *, priority: int = -1, connection=None
) -> None:
    """The same message to each of ``bindings`` (see :func:`to_person`), keyed ``<key>:<binding id>``,
    in the caller's transaction."""
    await enqueue(
        [to_person(b, f"{key}:{b.id}", template, context, priority=priority) for b in bindings],
        now,
        connection=connection,
    )


async def enqueue_many(
    messages: Iterable[tuple[str, int, str]],
    now: datetime,
    *,
    recipient_kind: RecipientKind,
    template: str,
    channel: Channel = Channel.TELEGRAM,
    locale: str = "zh-CN",
    priority: int = 0,
    connection=None,
) -> None:
    """:func:`enqueue` for city-scale fan-outs (a draw's 300,000 assignment messages): many
    messages of one template to one kind of recipient, each ``(dedupe_key, recipient id,
    context as JSON text)``.

    The same rows as :func:`enqueue` writes and the same dedupe (a key already present is left
    alone), without a ``Message`` per row or a look at each value: the caller encodes each
    context once (``bot.db.encode`` gives the text :func:`enqueue` would store).
    """
    at, ch, kind = db.timestamp(now, connection=connection), channel.value, recipient_kind.value
    rows = (
        (key, ch, kind, recipient_id, None, template, context, locale, "pending", priority, 0, at, "", at)
        for key, recipient_id, context in messages
    )
    await db.bulk_insert("outbox", COLUMNS, rows, ignore_conflicts=True, connection=connection, encoded=True)


async def reply(
    event,
    template: str,
    context: dict | None = None,
    *,
    locale: str,
    now: datetime,
    connection=None,
    seq: int = 0,
    binding_id: int = 0,
    edit_of: str | None = None,
    once: str = "",
) -> None:
    """Answer the sender of an inbound event (``event``: bot.channels.base.InboundEvent) on its channel.

    Keyed by the event's own id, so processing the same event twice cannot answer twice; with
    ``once``, keyed by that instead, so the answer goes out once whichever event asks for it."""
    await enqueue(
        [
            Message(
                dedupe_key=once or f"reply:{event.channel}:{event.external_id}:{seq}",
                recipient_kind=RecipientKind.PERSON,
                recipient_id=binding_id,
                template=template,
                context={**(context or {}), **({"edit_of": edit_of} if edit_of else {})},
                channel=Channel(event.channel),
                locale=locale,
                priority=-2,
                address=event.sender,
            )
        ],
        now,
        connection=connection,
    )


async def context_of(dedupe_key: str | None, conn=None) -> dict:
    """The context a message was rendered with (a page button's list reads its query back from
    the message it is on); empty when there is no such message."""
    if not dedupe_key:
        return {}
    q = Outbox.filter(dedupe_key=dedupe_key)
    if conn is not None:
        q = q.using_db(conn)
    rows = await q.limit(1).values_list("context", flat=True)
    return dict(rows[0] or {}) if rows else {}


async def sent_message_key(channel: str, address: str, message_id: str) -> str | None:
    """The outbox key of the bot message ``message_id`` in this chat (so a page button can
    edit that message in place); None when it is not ours or not known."""
    if not message_id:
        return None
    keys = await (
        Outbox.filter(channel=channel, address=address, provider_id=message_id)
        .order_by("id")
        .limit(1)
        .values_list("dedupe_key", flat=True)
    )
    return keys[0] if keys else None
