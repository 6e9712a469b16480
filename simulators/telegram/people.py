"""Virtual users: what a person can do in a Telegram client, each action a real ``Update``.

An action that a real client would not allow — pressing a button that is not on the message,
voting in a closed poll, writing to a bot one has blocked — raises :class:`SimulatorError`
instead of producing an update, so a test cannot build a situation Telegram never produces.
"""

from __future__ import annotations

import copy
from itertools import count

from simulators.telegram.entities import detect_entities
from simulators.telegram.media import image_size, image_type, make_png
from simulators.telegram.world import CallbackQuery, ChatState, Group, SimulatorError, VirtualUser, World

FIRST_USER_ID = 200_000_001
FIRST_GROUP_ID = 4_000_001  # a group's chat id is -N
FIRST_SUPERGROUP_ID = -1_002_000_000_001  # a supergroup's is -100 followed by ten digits


class People:
    def __init__(self, world: World) -> None:
        self.w = world
        self._ids = count(FIRST_USER_ID)
        self._groups = count(FIRST_GROUP_ID)

    def create(
        self,
        first_name: str = "Test",
        *,
        id: int | None = None,
        last_name: str | None = None,
        username: str | None = None,
        language_code: str | None = None,
    ) -> VirtualUser:
        """A new person who has not talked to the bot yet (the bot cannot write to them)."""
        if id is None:
            id = next(i for i in self._ids if i not in self.w.users)
        if id in self.w.users or id <= 0:
            raise SimulatorError(f"user id {id} is taken or invalid")
        if not first_name:
            raise SimulatorError("first_name must not be empty")
        user = VirtualUser(id, first_name, last_name, username, language_code)
        self.w.users[id] = user
        self.w.chats[id] = ChatState(user)
        return user

    def user(self, user: VirtualUser | int) -> VirtualUser:
        return self.w.chat_of(user).user

    def create_group(self, title: str, members: list[VirtualUser | int], *, supergroup: bool = False) -> ChatState:
        """A group (or supergroup) of ``members``, the first of whom adds the bot to it: the bot
        gets a ``my_chat_member`` update and, as an administrator, every message written there."""
        if not title.strip() or len(title) > 128:
            raise SimulatorError("a group title has 1-128 characters")
        people = [self.user(m) for m in members]
        if not people:
            raise SimulatorError("a group needs at least one member")
        n = next(self._groups)
        chat_id = FIRST_SUPERGROUP_ID - (n - FIRST_GROUP_ID) if supergroup else -n
        group = Group(chat_id, "supergroup" if supergroup else "group", title, {p.id: p for p in people})
        chat = ChatState(people[0], group)
        self.w.chats[chat_id] = chat
        self.w.updates.push(
            "my_chat_member",
            {
                "chat": group.as_chat(),
                "from": people[0].as_user(),
                "date": self.w.now(),
                "old_chat_member": {"status": "left", "user": dict(self.w.bot)},
                "new_chat_member": {"status": "member", "user": dict(self.w.bot)},
            },
        )
        return chat

    def _group_chat(self, user: VirtualUser | int, chat_id: int) -> tuple[ChatState, VirtualUser]:
        """The group ``chat_id`` and ``user`` as one of its members."""
        chat = self.w.chats.get(chat_id)
        person = self.user(user)
        if chat is None or chat.group is None:
            raise SimulatorError(f"no group {chat_id}")
        if person.id not in chat.group.members:
            raise SimulatorError(f"user {person.id} is not a member of group {chat_id}")
        return chat, person

    # -- messages the person writes -------------------------------------------------------

    def send_text(self, user: VirtualUser | int, text: str, *, chat: int | None = None) -> dict:
        """A text message (in the person's private chat, or in the group ``chat`` they are a
        member of); commands — ``/cmd`` and ``/cmd@botname`` — and links get the entities a
        client gives them."""
        if not text.strip():
            raise SimulatorError("a Telegram client does not send empty messages")
        if len(text) > 4096:
            raise SimulatorError("a Telegram message holds at most 4096 characters")
        entities = detect_entities(text)
        return self._message(user, {"text": text, **({"entities": entities} if entities else {})}, chat)

    def send_command(
        self, user: VirtualUser | int, command: str, argument: str = "", *, chat: int | None = None
    ) -> dict:
        """``/command argument``, e.g. ``send_command(u, "start", "CODE")`` for a deep link;
        ``command`` may name a bot (``"report@some_other_bot"``)."""
        return self.send_text(user, f"/{command.lstrip('/')}" + (f" {argument}" if argument else ""), chat=chat)

    def share_location(
        self, user: VirtualUser | int, latitude: float, longitude: float, horizontal_accuracy: float | None = None
    ) -> dict:
        if not (-90 <= latitude <= 90 and -180 <= longitude <= 180):
            raise SimulatorError("latitude must be within ±90 and longitude within ±180")
        location = {"latitude": float(latitude), "longitude": float(longitude)}
        if horizontal_accuracy is not None:
            location["horizontal_accuracy"] = float(horizontal_accuracy)
        return self._message(user, {"location": location})

    def send_photo(
        self,
        user: VirtualUser | int,
        image: bytes | None = None,
        *,
        caption: str | None = None,
        width: int = 800,
        height: int = 600,
    ) -> dict:
        """A photo (a generated PNG of ``width`` x ``height`` unless ``image`` is given), with sizes."""
        data = image if image is not None else make_png(width, height)
        size = image_size(data)
        if size is None:
            raise SimulatorError("image is not a PNG, JPEG, GIF or WebP picture")
        mime, extension = image_type(data)
        content: dict = {"photo": self.w.add_photo(data, *size, mime_type=mime, extension=extension)}
        if caption:
            content["caption"] = caption
            entities = detect_entities(caption)
            if entities:
                content["caption_entities"] = entities
        return self._message(user, content)

    def edit_message(self, user: VirtualUser | int, message_id: int, text: str) -> dict:
        """The person edits one of their own text messages: an ``edited_message`` update."""
        chat = self._active_chat(user)
        stored = chat.messages.get(message_id)
        if stored is None or stored.deleted or stored.from_bot or "text" not in stored.data:
            raise SimulatorError(f"message {message_id} is not a text message of this user")
        if not text.strip() or text == stored.data["text"]:
            raise SimulatorError("an edit must change the text and leave some")
        stored.data = {**stored.data, "text": text, "edit_date": self.w.now()}
        stored.data.pop("entities", None)
        entities = detect_entities(text)
        if entities:
            stored.data["entities"] = entities
        return self.w.updates.push("edited_message", copy.deepcopy(stored.data))

    def _message(self, user: VirtualUser | int, content: dict, group: int | None = None) -> dict:
        if group is not None:
            chat, person = self._group_chat(user, group)
            return self.w.updates.push("message", self.w.store(chat, content, from_bot=False, author=person))
        chat = self._active_chat(user)
        chat.user.started = True
        return self.w.updates.push("message", self.w.store(chat, content, from_bot=False))

    def _active_chat(self, user: VirtualUser | int) -> ChatState:
        chat = self.w.chat_of(user)
        if chat.user.blocked:
            raise SimulatorError(f"user {chat.user.id} has blocked the bot; unblock_bot first")
        return chat

    # -- reactions to the bot's messages --------------------------------------------------

    def press_button(
        self,
        user: VirtualUser | int,
        message_id: int,
        *,
        data: str | None = None,
        text: str | None = None,
        chat: int | None = None,
    ) -> dict:
        """Press the inline button with this ``callback_data`` (or label) on this bot message, in
        the person's private chat or in the group ``chat`` (any member may press any button there)."""
        if chat is None:
            where = self._active_chat(user)
            presser = where.user
        else:
            where, presser = self._group_chat(user, chat)
        return self._press(where, presser, message_id, data, text)

    def _press(
        self, chat: ChatState, presser: VirtualUser, message_id: int, data: str | None, text: str | None
    ) -> dict:
        stored = chat.messages.get(message_id)
        if stored is None or stored.deleted or not stored.from_bot:
            raise SimulatorError(f"no bot message {message_id} in this chat")
        buttons = [b for row in (stored.data.get("reply_markup") or {}).get("inline_keyboard", []) for b in row]
        chosen = next(
            (
                b
                for b in buttons
                if (data is None or b.get("callback_data") == data) and (text is None or b["text"] == text)
            ),
            None,
        )
        if chosen is None or "callback_data" not in chosen or (data is None and text is None):
            raise SimulatorError(f"message {message_id} has no callback button {data or text!r}")
        query = CallbackQuery(
            str(4_382_000_000_000_000_000 + self.w.next_number()), presser.id, message_id, chosen["callback_data"]
        )
        self.w.callback_queries[query.id] = query
        return self.w.updates.push(
            "callback_query",
            {
                "id": query.id,
                "from": presser.as_user(),
                "message": copy.deepcopy(stored.data),
                "chat_instance": chat.chat_instance,
                "data": query.data,
            },
        )

    def answer_poll(self, user: VirtualUser | int, message_id: int, option_ids: list[int]) -> list[dict]:
        """Vote (or, with ``[]``, retract). Returns the updates: ``poll_answer`` (non-anonymous
        polls only, as on Telegram) and the new ``poll`` state."""
        chat = self._active_chat(user)
        stored = chat.messages.get(message_id)
        if stored is None or stored.deleted or not stored.from_bot or "poll" not in stored.data:
            raise SimulatorError(f"no poll in bot message {message_id}")
        state = self.w.polls[stored.data["poll"]["id"]]
        poll = state.poll
        ids = list(option_ids)
        previous = state.votes.get(chat.user.id, [])
        _check_vote(poll, ids, previous)
        for i in previous:
            poll["options"][i]["voter_count"] -= 1
        for i in ids:
            poll["options"][i]["voter_count"] += 1
        if ids:
            state.votes[chat.user.id] = ids
        else:
            state.votes.pop(chat.user.id, None)
        poll["total_voter_count"] = len(state.votes)
        stored.data["poll"] = copy.deepcopy(poll)
        updates = []
        if not poll["is_anonymous"]:
            updates.append(
                self.w.updates.push(
                    "poll_answer",
                    {
                        "poll_id": poll["id"],
                        "user": chat.user.as_user(),
                        "option_ids": ids,
                        "option_persistent_ids": [poll["options"][i]["persistent_id"] for i in ids],
                    },
                )
            )
        updates.append(self.w.updates.push("poll", copy.deepcopy(poll)))
        return updates

    # -- blocking -------------------------------------------------------------------------

    def block_bot(self, user: VirtualUser | int) -> dict | None:
        """The person blocks the bot: sends fail with 403 and the bot gets a ``my_chat_member`` update."""
        chat = self.w.chat_of(user)
        if chat.user.blocked:
            raise SimulatorError("already blocked")
        chat.user.blocked = True
        return self._membership(chat, "member", "kicked") if chat.user.started else None

    def unblock_bot(self, user: VirtualUser | int) -> dict | None:
        chat = self.w.chat_of(user)
        if not chat.user.blocked:
            raise SimulatorError("not blocked")
        chat.user.blocked = False
        return self._membership(chat, "kicked", "member") if chat.user.started else None

    def _membership(self, chat: ChatState, old: str, new: str) -> dict:
        def member(status: str) -> dict:
            return {"status": status, "user": dict(self.w.bot), **({"until_date": 0} if status == "kicked" else {})}

        return self.w.updates.push(
            "my_chat_member",
            {
                "chat": chat.user.as_chat(),
                "from": chat.user.as_user(),
                "date": self.w.now(),
                "old_chat_member": member(old),
                "new_chat_member": member(new),
            },
        )


def _check_vote(poll: dict, ids: list[int], previous: list[int]) -> None:
    """Refuse a vote a Telegram client would not let the person cast."""
    if poll["is_closed"]:
        raise SimulatorError("the poll is closed")
    if any(not 0 <= i < len(poll["options"]) for i in ids) or len(set(ids)) != len(ids):
        raise SimulatorError(f"option ids {ids} do not fit {len(poll['options'])} options")
    if len(ids) > 1 and not poll["allows_multiple_answers"]:
        raise SimulatorError("the poll allows one answer")
    if previous and not poll["allows_revoting"]:
        raise SimulatorError("the poll does not allow changing a vote")
    if not ids and not previous:
        raise SimulatorError("there is no vote to retract")
