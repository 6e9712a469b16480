"""What the simulated Telegram knows: the bot, its users, their private chats and the groups the
bot is in, messages, files.

Both sides work on one :class:`World`: the bot through Bot API calls (``botapi.py``), the people
through virtual-user actions (``people.py``). Messages are stored as the Bot API ``Message``
JSON they are now (after edits), so what a test reads is what the bot would get back.
"""

from __future__ import annotations

import base64
import copy
from collections.abc import Callable
from dataclasses import dataclass, field

from simulators.telegram import errors
from simulators.telegram.media import photo_sizes
from simulators.telegram.notify import Notifier
from simulators.telegram.updates import UpdateQueue


class SimulatorError(ValueError):
    """A virtual-user action that a real Telegram client could not perform."""


@dataclass
class VirtualUser:
    id: int
    first_name: str
    last_name: str | None = None
    username: str | None = None
    language_code: str | None = None
    started: bool = False  # has ever written to the bot (pressed Start)
    blocked: bool = False

    def as_user(self) -> dict:
        """The Bot API ``User`` for this person."""
        return _drop_none(
            {
                "id": self.id,
                "is_bot": False,
                "first_name": self.first_name,
                "last_name": self.last_name,
                "username": self.username,
                "language_code": self.language_code,
            }
        )

    def as_chat(self) -> dict:
        """The Bot API ``Chat`` of this person's private chat with the bot."""
        return _drop_none(
            {
                "id": self.id,
                "type": "private",
                "first_name": self.first_name,
                "last_name": self.last_name,
                "username": self.username,
            }
        )

    def as_json(self) -> dict:
        return {**self.as_user(), "started": self.started, "blocked": self.blocked}


@dataclass
class StoredMessage:
    data: dict
    from_bot: bool
    deleted: bool = False


@dataclass(frozen=True)
class ChatMessage:
    """A snapshot of one bot message as the user sees it."""

    message_id: int
    data: dict
    deleted: bool = False

    @property
    def text(self) -> str:
        return self.data.get("text") or self.data.get("caption") or ""

    @property
    def buttons(self) -> list[list[dict]]:
        return (self.data.get("reply_markup") or {}).get("inline_keyboard", [])

    @property
    def callback_data(self) -> list[str]:
        return [b["callback_data"] for row in self.buttons for b in row if "callback_data" in b]

    @property
    def poll(self) -> dict | None:
        return self.data.get("poll")

    @property
    def photo(self) -> list[dict] | None:
        return self.data.get("photo")

    @property
    def document(self) -> dict | None:
        return self.data.get("document")

    @property
    def edited(self) -> bool:
        return "edit_date" in self.data

    def as_json(self) -> dict:
        return {"message_id": self.message_id, "deleted": self.deleted, "message": self.data}


@dataclass
class Group:
    """A group or supergroup the bot is a member of (an administrator: it receives every message)."""

    id: int  # negative, as on Telegram: -N for a group, -100NNNNNNNNNN for a supergroup
    type: str  # group | supergroup
    title: str
    members: dict[int, VirtualUser] = field(default_factory=dict)

    def as_chat(self) -> dict:
        """The Bot API ``Chat`` of this group."""
        return {"id": self.id, "type": self.type, "title": self.title}


@dataclass
class ChatState:
    user: VirtualUser  # the person of a private chat; in a group, the member who added the bot
    group: Group | None = None
    messages: dict[int, StoredMessage] = field(default_factory=dict)
    next_message_id: int = 1
    bot_message_ids: list[int] = field(default_factory=list)
    read_cursor: int = 0  # bot messages already handed out by wait_for_message
    callback_answers: list[dict] = field(default_factory=list)
    reply_keyboard: dict | None = None
    changed: Notifier = field(default_factory=Notifier)

    @property
    def id(self) -> int:
        return self.group.id if self.group is not None else self.user.id

    def as_chat(self) -> dict:
        return self.group.as_chat() if self.group is not None else self.user.as_chat()

    @property
    def chat_instance(self) -> str:
        return str(-(8_200_000_000_000_000_000 + abs(self.id)))


@dataclass
class FileRecord:
    file_id: str
    file_unique_id: str
    data: bytes
    file_path: str
    mime_type: str
    kind: str  # photo | document
    group: str  # file id of the largest size: all sizes of one photo share it


@dataclass
class PollState:
    poll: dict
    chat_id: int
    message_id: int
    votes: dict[int, list[int]] = field(default_factory=dict)


@dataclass
class CallbackQuery:
    id: str
    user_id: int
    message_id: int
    data: str
    answer: dict | None = None


class World:
    """All simulator state, plus the small helpers both sides need."""

    def __init__(
        self, bot_id: int, bot_name: str, bot_username: str, updates: UpdateQueue, now: Callable[[], int]
    ) -> None:
        self.bot = {"id": bot_id, "is_bot": True, "first_name": bot_name, "username": bot_username}
        self.updates = updates
        self.now = now
        self.users: dict[int, VirtualUser] = {}
        self.chats: dict[int, ChatState] = {}
        self.files: dict[str, FileRecord] = {}
        self.files_by_path: dict[str, FileRecord] = {}
        self.photos: dict[str, list[dict]] = {}  # group -> PhotoSize list
        self.polls: dict[str, PollState] = {}
        self.callback_queries: dict[str, CallbackQuery] = {}
        self.commands: dict[tuple[str, str], list[dict]] = {}
        self._counter = 0

    def next_number(self) -> int:
        self._counter += 1
        return self._counter

    # -- chats ----------------------------------------------------------------------------

    def chat_for(self, chat_id: object) -> ChatState:
        """The chat ``chat_id`` names (a private chat whose person has started the bot, or a
        group the bot is in), as the bot may address it; else 'chat not found'."""
        chat = self.chats.get(chat_id) if isinstance(chat_id, int) else None
        if chat is None or (chat.group is None and not chat.user.started):
            raise errors.chat_not_found()
        return chat

    def writable_chat(self, chat_id: object) -> ChatState:
        """A chat the bot may send to: known, started, and not blocked."""
        chat = self.chat_for(chat_id)
        if chat.group is None and chat.user.blocked:
            raise errors.blocked()
        return chat

    def chat_of(self, user: VirtualUser | int) -> ChatState:
        user_id = user if isinstance(user, int) else user.id
        if user_id not in self.chats:
            raise SimulatorError(f"no virtual user {user_id}")
        return self.chats[user_id]

    def store(self, chat: ChatState, content: dict, *, from_bot: bool, author: VirtualUser | None = None) -> dict:
        """Give ``content`` a message id, sender (the bot, else ``author`` or the chat's person),
        chat and date; keep it; tell waiters."""
        message_id = chat.next_message_id
        chat.next_message_id += 1
        sender = self.bot if from_bot else (author or chat.user).as_user()
        data = {
            "message_id": message_id,
            "from": dict(sender),
            "chat": chat.as_chat(),
            "date": self.now(),
            **content,
        }
        chat.messages[message_id] = StoredMessage(data, from_bot)
        if from_bot:
            chat.bot_message_ids.append(message_id)
        chat.changed.notify()
        return copy.deepcopy(data)

    # -- files ----------------------------------------------------------------------------

    def add_file(
        self, data: bytes, *, kind: str, mime_type: str, extension: str, group: str | None = None
    ) -> FileRecord:
        n = self.next_number()
        prefix = "AgACAgIAAxkBAAI" if kind == "photo" else "BQACAgIAAxkBAAI"
        file_id = prefix + base64.urlsafe_b64encode(n.to_bytes(6, "big")).decode() + "sim"
        record = FileRecord(
            file_id=file_id,
            file_unique_id="AQAD" + base64.urlsafe_b64encode(n.to_bytes(6, "big")).decode(),
            data=data,
            file_path=f"{'photos' if kind == 'photo' else 'documents'}/file_{n}.{extension}",
            mime_type=mime_type,
            kind=kind,
            group=group or file_id,
        )
        self.files[file_id] = record
        self.files_by_path[record.file_path] = record
        return record

    def add_photo(self, data: bytes, width: int, height: int, *, mime_type: str, extension: str) -> list[dict]:
        """Store a photo and return its ``PhotoSize`` list (every size downloads ``data``)."""
        sizes = photo_sizes(width, height)
        records = [self.add_file(data, kind="photo", mime_type=mime_type, extension=extension) for _ in sizes]
        for record in records:
            record.group = records[-1].file_id
        photo = [
            {"file_id": r.file_id, "file_unique_id": r.file_unique_id, "file_size": len(data), "width": w, "height": h}
            for r, (w, h) in zip(records, sizes)
        ]
        self.photos[records[-1].file_id] = photo
        return copy.deepcopy(photo)

    def known_photo(self, file_id: str) -> list[dict] | None:
        """The PhotoSize list of a photo one of whose sizes has ``file_id``."""
        record = self.files.get(file_id)
        if record is None or record.kind != "photo":
            return None
        return copy.deepcopy(self.photos[record.group])


def _drop_none(d: dict) -> dict:
    return {k: v for k, v in d.items() if v is not None}
