"""One channel interface: Telegram, the SMS gateways and their simulators all sit behind it.

Nothing outside ``bot/channels/`` imports python-telegram-bot or a provider's wire format.
A channel sends an :class:`Outgoing` and returns the provider's message id, or raises
:class:`SendError` saying whether a retry can help. Inbound traffic is normalised to
:class:`InboundEvent` values, handed to one callback.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol


@dataclass(frozen=True)
class Button:
    label: str
    data: str  # callback data, <= 64 bytes (core.callbacks codec)


@dataclass(frozen=True)
class Poll:
    question: str
    options: tuple[str, ...]


@dataclass(frozen=True)
class Outgoing:
    """A rendered message for one address (Telegram chat id or E.164 number)."""

    address: str
    text: str = ""
    buttons: tuple[tuple[Button, ...], ...] = ()  # rows of buttons (Telegram only)
    poll: Poll | None = None
    photo: bytes | None = None
    photo_name: str = "photo.jpg"
    document: bytes | None = None
    document_name: str = "file.bin"
    edit_message_id: str | None = None  # edit this earlier message instead of sending
    key: str = ""  # the outbox row it renders (its dedupe key): a retry of this very message has it too


class SendError(Exception):
    """A failed send. ``retryable`` errors are tried again later (after ``retry_after`` seconds
    when the provider said so); permanent ones dead-letter the message and mark the address
    unreachable. ``kind`` names the case: throttled, timeout, connection, server, blocked,
    chat_not_found, invalid_number, bad_request, …"""

    def __init__(self, kind: str, *, retryable: bool, retry_after: float | None = None, detail: str = "") -> None:
        super().__init__(f"{kind}: {detail}" if detail else kind)
        self.kind = kind
        self.retryable = retryable
        self.retry_after = retry_after
        self.detail = detail


class EventKind(str, Enum):
    TEXT = "text"
    COMMAND = "command"
    BUTTON = "button"
    LOCATION = "location"
    PHOTO = "photo"
    POLL_ANSWER = "poll_answer"
    DELIVERY = "delivery"
    MEMBERSHIP = "membership"  # the bot's own status in a chat changed (Telegram my_chat_member): ``status``


@dataclass(frozen=True)
class InboundEvent:
    """A normalised inbound event. ``external_id`` is the provider's unique id (Telegram
    ``update_id``, SMS MessageSid) — the idempotency key. ``sender`` is where it came from and
    where a reply goes (chat id / E.164 number); ``user`` is who sent it (Telegram ``from.id``, the
    presser of a button; empty on SMS, where the number is the person). A role belongs to the
    person: :attr:`person` is the identity bindings are looked up by, never a group's chat id."""

    channel: str  # "telegram" | "sms"
    external_id: str
    sender: str
    kind: EventKind
    text: str = ""
    command: str = ""  # without the slash, e.g. "start"
    argument: str = ""
    data: str = ""  # button callback data
    message_id: str = ""  # the message a button belongs to / a delivery status is about
    callback_id: str = ""  # to answer a button press
    latitude: float | None = None
    longitude: float | None = None
    file_id: str = ""  # photo (largest size)
    poll_id: str = ""
    option_ids: tuple[int, ...] = ()
    status: str = ""  # delivery status: queued, sent, delivered, undelivered, failed; membership: member, kicked, …
    error_code: str = ""
    sender_name: str = ""
    edited: bool = False  # an edit of an earlier message (never re-applied as a new answer)
    user: str = ""  # who sent it: Telegram ``from.id`` (a button's presser); "" = the sender itself (SMS)
    chat_type: str = (
        ""  # Telegram: private | group | supergroup | channel; "" where there is no chat (SMS, poll answers)
    )
    addressee: str = ""  # the bot a ``/command@name`` names (lowercase, without @); "" when none is named
    elsewhere: bool = False  # a command addressed to another bot than ours: never acted on nor answered
    opened: bool = False  # the member opened the chat (WeCom enter_agent, subscribe): nothing was typed
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def in_group(self) -> bool:
        """Sent in a chat shared by several people (a group, a supergroup, a channel)."""
        return self.chat_type in GROUP_CHATS

    @property
    def person(self) -> str:
        """The identity that acts, the one whose roles apply: the sender's own user id in a private
        chat (where chat id and user id are one), the number on SMS, the voter of a poll answer —
        and "" for an event from a group, or one whose sender is not the person of the chat it
        arrived in: such an event acts for nobody."""
        if self.in_group:
            return ""
        if self.chat_type == "private" and self.user and self.user != self.sender:
            return ""
        return self.user or self.sender


#: Telegram chat types shared by several people: the bot acts for nobody in them (docs/messaging.md).
GROUP_CHATS = frozenset({"group", "supergroup", "channel"})

EventCallback = Callable[[InboundEvent], Awaitable[None]]


class Channel(Protocol):
    name: str  # "telegram" | "sms"

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def send(self, message: Outgoing) -> str:
        """Send; return the provider's message id (for a Telegram poll, the poll's id), or raise SendError."""

    async def fetch_file(self, file_id: str) -> bytes:
        """Download an inbound file (Telegram photos); channels without files raise SendError."""


#: Provider identifiers go into ``inbound_event`` (``external_id`` 100 characters, ``sender`` 64).
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def identifier(text: str, name: str, limit: int) -> str:
    """A provider's identifier (a message id, a phone number, a status) as sent: 1..``limit``
    characters without control characters, else ValueError — so a malformed webhook is refused
    whole (400) instead of stored mangled, or, on PostgreSQL, refused by the database (503) on
    every retry."""
    text = text.strip()
    if not text or len(text) > limit or _CONTROL.search(text):
        raise ValueError(f"{name} empty, longer than {limit} characters or with control characters")
    return text


def utf8_bytes(text: str) -> int:
    """A text's size as WeCom counts it."""
    return len(text.encode())


def utf16_units(text: str) -> int:
    """A text's size as Telegram counts it (UTF-16 code units: an emoji outside the BMP is two)."""
    return len(text.encode("utf-16-le")) // 2


def split_parts(text: str, limit: int, size: Callable[[str], int]) -> list[str]:
    """``text`` in parts of at most ``limit`` (as ``size`` measures), cut at line ends where
    possible, a line longer than a part cut by characters; blank parts dropped. A channel whose
    messages hold at most ``limit`` sends a long text as these parts, in order, rather than
    having it refused whole (a refused reply is a reply nobody reads)."""
    if size(text) <= limit:  # nearly always: one part
        return [text] if text.strip() else []
    parts: list[str] = []
    current = ""
    for line in text.splitlines(keepends=True):
        while size(line) > limit:  # one line longer than a part: cut by characters
            cut = len(line)
            while size(line[:cut]) > limit:
                cut = max(1, cut * 3 // 4)
            if current:
                parts.append(current)
                current = ""
            parts.append(line[:cut])
            line = line[cut:]
        if size(current + line) > limit:
            parts.append(current)
            current = ""
        current += line
    if current.strip():
        parts.append(current)
    return [p for p in (p.strip("\n") for p in parts) if p.strip()]
