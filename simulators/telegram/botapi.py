"""The Bot API methods the simulator carries out, on parameters already checked against the spec.

Each handler takes the decoded parameters and returns the result the real server would return
(or :class:`Described` for results that come with a description), or raises :class:`ApiError`
with the real server's error. Rules beyond the spec's types that the real server enforces and a
bot can trip over are enforced here: message length, empty text, parse_mode HTML, inline buttons
(``callback_data`` 1-64 bytes, a button needs an action), "message is not modified", poll option
counts, unknown file ids, answered callback queries.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from simulators.telegram import errors
from simulators.telegram.entities import (
    EntityParseError,
    detect_entities,
    parse_html,
    sort_key,
    strip_text,
    utf16_len,
)
from simulators.telegram.errors import bad_request
from simulators.telegram.media import image_size, image_type, make_png, valid_photo_dimensions
from simulators.telegram.spec import Upload
from simulators.telegram.world import ChatState, PollState, StoredMessage, World

MB = 1024 * 1024
BUTTON_LOOKS = {"text", "icon_custom_emoji_id", "style"}  # InlineKeyboardButton fields that are not actions
CHAT_ACTIONS = {
    "typing",
    "upload_photo",
    "record_video",
    "upload_video",
    "record_voice",
    "upload_voice",
    "upload_document",
    "choose_sticker",
    "find_location",
    "record_video_note",
    "upload_video_note",
}
_COMMAND = re.compile(r"[a-z0-9_]{1,32}")


class BotApi:
    def __init__(self, world: World) -> None:
        self.w = world

    @property
    def handlers(self) -> dict[str, Callable[[dict], Any]]:
        return {
            "getMe": self.get_me,
            "getChat": self.get_chat,
            "sendMessage": self.send_message,
            "sendPhoto": self.send_photo,
            "sendDocument": self.send_document,
            "sendLocation": self.send_location,
            "sendPoll": self.send_poll,
            "sendChatAction": self.send_chat_action,
            "stopPoll": self.stop_poll,
            "editMessageText": self.edit_message_text,
            "editMessageCaption": self.edit_message_caption,
            "editMessageReplyMarkup": self.edit_message_reply_markup,
            "deleteMessage": self.delete_message,
            "answerCallbackQuery": self.answer_callback_query,
            "getFile": self.get_file,
            "setMyCommands": self.set_my_commands,
            "getMyCommands": self.get_my_commands,
            "deleteMyCommands": self.delete_my_commands,
        }

    # -- the bot and its chats ------------------------------------------------------------

    def get_me(self, p: dict) -> dict:
        return {
            **self.w.bot,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    def get_chat(self, p: dict) -> dict:
        chat = self.w.chat_for(p["chat_id"])
        gifts = ("unlimited_gifts", "limited_gifts", "unique_gifts", "premium_subscription", "gifts_from_channels")
        return {
            **chat.as_chat(),
            "accent_color_id": abs(chat.id) % 7,
            "max_reaction_count": 11,
            "accepted_gift_types": {name: True for name in gifts},
        }

    def send_chat_action(self, p: dict) -> bool:
        self.w.writable_chat(p["chat_id"])
        if p["action"] not in CHAT_ACTIONS:
            raise bad_request("wrong parameter action in request")
        return True

    # -- sending --------------------------------------------------------------------------

    def send_message(self, p: dict) -> dict:
        chat = self.w.writable_chat(p["chat_id"])
        text, entities = self.formatted(
            p["text"],
            p.get("parse_mode"),
            p.get("entities"),
            limit=4096,
            empty="message text is empty",
            too_long="message is too long",
        )
        return self.send(chat, p, {"text": text, **({"entities": entities} if entities else {})})

    def send_photo(self, p: dict) -> dict:
        chat = self.w.writable_chat(p["chat_id"])
        content = self.caption(p)
        content["photo"] = self.photo_from(p["photo"])
        if p.get("has_spoiler"):
            content["has_media_spoiler"] = True
        if p.get("show_caption_above_media"):
            content["show_caption_above_media"] = True
        return self.send(chat, p, content)

    def send_document(self, p: dict) -> dict:
        chat = self.w.writable_chat(p["chat_id"])
        content = self.caption(p)
        content["document"] = self.document_from(p["document"])
        return self.send(chat, p, content)

    def send_location(self, p: dict) -> dict:
        chat = self.w.writable_chat(p["chat_id"])
        if not (-90 <= p["latitude"] <= 90 and -180 <= p["longitude"] <= 180):
            raise bad_request("wrong location specified")
        location = {"latitude": p["latitude"], "longitude": p["longitude"]}
        if "horizontal_accuracy" in p:
            location["horizontal_accuracy"] = p["horizontal_accuracy"]
        return self.send(chat, p, {"location": location})

    def send_poll(self, p: dict) -> dict:
        chat = self.w.writable_chat(p["chat_id"])
        question = p["question"].strip()
        if not question:
            raise bad_request("poll question must be non-empty")
        if len(question) > 300:
            raise bad_request("poll question length must not exceed 300")
        options = [o["text"].strip() for o in p["options"]]
        if not 1 <= len(options) <= 12:
            raise bad_request("poll must have 1-12 options")
        if any(not 1 <= len(o) <= 100 for o in options):
            raise bad_request("poll options length must not exceed 100")
        kind = p.get("type", "regular")
        if kind not in ("regular", "quiz"):
            raise bad_request("wrong poll type specified")
        correct = p.get("correct_option_ids")
        if kind == "quiz" and (not correct or any(not 0 <= i < len(options) for i in correct)):
            raise bad_request("wrong correct option ids specified")
        poll = {
            "id": str(5_357_071_513_466_454_000 + self.w.next_number()),
            "question": question,
            "options": [{"persistent_id": str(i), "text": t, "voter_count": 0} for i, t in enumerate(options)],
            "total_voter_count": 0,
            "is_closed": bool(p.get("is_closed", False)),
            "is_anonymous": bool(p.get("is_anonymous", True)),
            "type": kind,
            "allows_multiple_answers": bool(p.get("allows_multiple_answers", False)),
            "allows_revoting": bool(p.get("allows_revoting", kind == "regular")),
            "members_only": bool(p.get("members_only", False)),
        }
        for key in ("correct_option_ids", "explanation", "open_period", "close_date"):
            if key in p:
                poll[key] = p[key]
        message = self.send(chat, p, {"poll": poll})
        self.w.polls[poll["id"]] = PollState(copy.deepcopy(poll), chat.id, message["message_id"])
        return message

    def send(self, chat: ChatState, p: dict, content: dict) -> dict:
        """Store a new bot message with the common options (keyboard, reply, protection)."""
        markup = p.get("reply_markup")
        inline = self.inline_markup(markup)
        reply = self.replied_message(chat, p.get("reply_parameters"))
        if inline:
            content["reply_markup"] = inline
        if reply:
            content["reply_to_message"] = reply
        if p.get("protect_content"):
            content["has_protected_content"] = True
        message = self.w.store(chat, content, from_bot=True)
        if markup and "keyboard" in markup:
            chat.reply_keyboard = markup
        elif markup and "remove_keyboard" in markup:
            chat.reply_keyboard = None
        return message

    # -- message content ------------------------------------------------------------------

    def formatted(
        self,
        text: str,
        parse_mode: str | None,
        entities: list | None,
        *,
        limit: int,
        empty: str | None,
        too_long: str,
    ) -> tuple[str, list[dict]]:
        """Text and entities after parse_mode, trimming and Telegram's own link/command detection."""
        if parse_mode:
            mode = parse_mode.lower()
            if mode == "html":
                try:
                    text, entities = parse_html(text)
                except EntityParseError as exc:
                    raise bad_request(f"can't parse entities: {exc}") from None
            elif mode in ("markdown", "markdownv2"):
                entities = []  # not parsed by the simulator (see docs/simulators.md)
            else:
                raise bad_request("unsupported parse_mode")
        entities = [dict(e) for e in entities or []]
        text, entities = strip_text(text, entities)
        if not text and empty:
            raise bad_request(empty)
        if len(text) > limit:
            raise bad_request(too_long)
        size = utf16_len(text)
        entities = [e for e in entities if e["offset"] >= 0 and e["length"] > 0 and e["offset"] + e["length"] <= size]
        for found in detect_entities(text):
            span = range(found["offset"], found["offset"] + found["length"])
            if not any(span.start < e["offset"] + e["length"] and e["offset"] < span.stop for e in entities):
                entities.append(found)
        return text, sorted(entities, key=sort_key)

    def caption(self, p: dict) -> dict:
        if "caption" not in p:
            return {}
        text, entities = self.formatted(
            p["caption"],
            p.get("parse_mode"),
            p.get("caption_entities"),
            limit=1024,
            empty=None,
            too_long="message caption is too long",
        )
        content: dict[str, Any] = {"caption": text} if text else {}
        if entities:
            content["caption_entities"] = entities
        return content

    def inline_markup(self, markup: dict | None) -> dict | None:
        """The inline keyboard of ``reply_markup`` after the real server's button checks."""
        if not markup or "inline_keyboard" not in markup:
            return None
        for row in markup["inline_keyboard"]:
            for button in row:
                if not set(button) - BUTTON_LOOKS:
                    raise bad_request(
                        "can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard"
                    )
                if "callback_data" in button and not 1 <= len(button["callback_data"].encode("utf-8")) <= 64:
                    raise bad_request("BUTTON_DATA_INVALID")
                if "url" in button and not _valid_button_url(button["url"]):
                    raise bad_request("BUTTON_URL_INVALID")
        return copy.deepcopy(markup)

    def replied_message(self, chat: ChatState, reply: dict | None) -> dict | None:
        if not reply:
            return None
        target = chat.messages.get(reply["message_id"])
        if reply.get("chat_id", chat.id) != chat.id or target is None or target.deleted:
            if reply.get("allow_sending_without_reply"):
                return None
            raise bad_request("message to be replied not found")
        data = copy.deepcopy(target.data)
        data.pop("reply_to_message", None)
        return data

    def photo_from(self, value: Upload | str) -> list[dict]:
        if isinstance(value, Upload):
            size = image_size(value.data)
            if size is None:
                raise bad_request("IMAGE_PROCESS_FAILED")
            if not valid_photo_dimensions(*size):
                raise bad_request("PHOTO_INVALID_DIMENSIONS")
            if len(value.data) > 10 * MB:
                raise bad_request("file is too big")
            mime, extension = image_type(value.data)
            return self.w.add_photo(value.data, *size, mime_type=mime, extension=extension)
        if value.startswith(("http://", "https://")):
            # The simulator fetches nothing: a URL photo becomes a placeholder picture.
            return self.w.add_photo(make_png(320, 240), 320, 240, mime_type="image/png", extension="png")
        known = self.w.known_photo(value)
        if known is not None:
            return known
        raise self._wrong_file(value, "Photo")

    def document_from(self, value: Upload | str) -> dict:
        if isinstance(value, Upload):
            if len(value.data) > 50 * MB:
                raise errors.ApiError(413, "Request Entity Too Large")
            name = value.filename or "file"
            extension = name.rsplit(".", 1)[1] if "." in name else "bin"
            record = self.w.add_file(
                value.data,
                kind="document",
                mime_type=value.content_type or "application/octet-stream",
                extension=extension,
            )
            return {
                "file_id": record.file_id,
                "file_unique_id": record.file_unique_id,
                "file_name": name,
                "mime_type": record.mime_type,
                "file_size": len(value.data),
            }
        if value.startswith(("http://", "https://")):
            name = urlsplit(value).path.rsplit("/", 1)[-1] or "file"
            return self.document_from(
                Upload(name, "application/octet-stream", b"simulated download of " + value.encode())
            )
        record = self.w.files.get(value)
        if record is not None and record.kind == "document":
            return {
                "file_id": record.file_id,
                "file_unique_id": record.file_unique_id,
                "file_name": record.file_path.rsplit("/", 1)[-1],
                "mime_type": record.mime_type,
                "file_size": len(record.data),
            }
        raise self._wrong_file(value, "Document")

    def _wrong_file(self, file_id: str, wanted: str) -> errors.ApiError:
        record = self.w.files.get(file_id)
        if record is not None:
            return bad_request(f"can't use file of type {record.kind.capitalize()} as {wanted}")
        return bad_request("wrong file identifier/HTTP URL specified")

    # -- changing sent messages -----------------------------------------------------------

    def edit_message_text(self, p: dict) -> dict:
        chat, stored = self.editable(p)
        if "text" not in stored.data:
            raise bad_request("there is no text in the message to edit")
        text, entities = self.formatted(
            p["text"],
            p.get("parse_mode"),
            p.get("entities"),
            limit=4096,
            empty="message text is empty",
            too_long="message is too long",
        )
        return self.apply_edit(
            chat,
            stored,
            {"text": text, "entities": entities, "reply_markup": self.inline_markup(p.get("reply_markup"))},
        )

    def edit_message_caption(self, p: dict) -> dict:
        chat, stored = self.editable(p)
        if not any(k in stored.data for k in ("photo", "document")):
            raise bad_request("there is no caption in the message to edit")
        caption = self.caption({**p, "caption": p.get("caption", "")})
        return self.apply_edit(
            chat,
            stored,
            {
                "caption": caption.get("caption"),
                "caption_entities": caption.get("caption_entities"),
                "reply_markup": self.inline_markup(p.get("reply_markup")),
            },
        )

    def edit_message_reply_markup(self, p: dict) -> dict:
        chat, stored = self.editable(p)
        return self.apply_edit(chat, stored, {"reply_markup": self.inline_markup(p.get("reply_markup"))})

    def editable(self, p: dict) -> tuple[ChatState, StoredMessage]:
        """The bot message an edit names (by chat_id + message_id; inline messages do not exist here)."""
        if p.get("inline_message_id"):
            raise bad_request("MESSAGE_ID_INVALID")
        if "chat_id" not in p:
            raise bad_request("chat_id is empty")
        if "message_id" not in p:
            raise bad_request("message identifier is not specified")
        chat = self.w.chat_for(p["chat_id"])
        stored = chat.messages.get(p["message_id"])
        if stored is None or stored.deleted:
            raise bad_request("message to edit not found")
        if not stored.from_bot:
            raise bad_request("message can't be edited")
        return chat, stored

    def apply_edit(self, chat: ChatState, stored: StoredMessage, changes: dict[str, Any]) -> dict:
        """Set (or, for empty values, remove) fields; refuse an edit that changes nothing."""
        new = copy.deepcopy(stored.data)
        for key, value in changes.items():
            if value:
                new[key] = value
            else:
                new.pop(key, None)
        if all(new.get(k) == stored.data.get(k) for k in changes):
            raise bad_request(errors.NOT_MODIFIED)
        new["edit_date"] = self.w.now()
        stored.data = new
        chat.changed.notify()
        return copy.deepcopy(new)

    def stop_poll(self, p: dict) -> dict:
        chat = self.w.chat_for(p["chat_id"])
        stored = chat.messages.get(p["message_id"])
        if stored is None or stored.deleted or not stored.from_bot or "poll" not in stored.data:
            raise bad_request("message with poll to stop not found")
        state = self.w.polls[stored.data["poll"]["id"]]
        if state.poll["is_closed"]:
            raise bad_request("poll has already been closed")
        inline = self.inline_markup(p.get("reply_markup"))
        state.poll["is_closed"] = True
        stored.data["poll"] = copy.deepcopy(state.poll)
        if "reply_markup" in p:
            stored.data.pop("reply_markup", None)
            stored.data.update({"reply_markup": inline} if inline else {})
        chat.changed.notify()
        self.w.updates.push("poll", copy.deepcopy(state.poll))
        return copy.deepcopy(state.poll)

    def delete_message(self, p: dict) -> bool:
        chat = self.w.chat_for(p["chat_id"])
        stored = chat.messages.get(p["message_id"])
        if stored is None or stored.deleted:
            raise bad_request("message to delete not found")
        stored.deleted = True
        chat.changed.notify()
        return True

    # -- buttons, files, commands ---------------------------------------------------------

    def answer_callback_query(self, p: dict) -> bool:
        query = self.w.callback_queries.get(p["callback_query_id"])
        if query is None or query.answer is not None:
            raise bad_request(errors.QUERY_TOO_OLD)
        if len(p.get("text", "")) > 200:
            raise bad_request("MESSAGE_TOO_LONG")
        query.answer = {
            "callback_query_id": query.id,
            "message_id": query.message_id,
            "data": query.data,
            "text": p.get("text", ""),
            "show_alert": p.get("show_alert", False),
            "url": p.get("url"),
        }
        chat = self.w.chats[query.user_id]  # the presser's own chat: the answer shows on their screen
        chat.callback_answers.append(query.answer)
        chat.changed.notify()
        return True

    def get_file(self, p: dict) -> dict:
        record = self.w.files.get(p["file_id"])
        if record is None:
            raise bad_request("wrong file_id or the file is temporarily unavailable")
        if len(record.data) > 20 * MB:
            raise bad_request("file is too big")
        return {
            "file_id": record.file_id,
            "file_unique_id": record.file_unique_id,
            "file_size": len(record.data),
            "file_path": record.file_path,
        }

    def set_my_commands(self, p: dict) -> bool:
        for command in p["commands"]:
            if not _COMMAND.fullmatch(command["command"]):
                raise bad_request("BOT_COMMAND_INVALID")
            if not 1 <= len(command["description"]) <= 256:
                raise bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
        self.w.commands[_commands_key(p)] = copy.deepcopy(p["commands"])
        return True

    def get_my_commands(self, p: dict) -> list[dict]:
        return copy.deepcopy(self.w.commands.get(_commands_key(p), []))

    def delete_my_commands(self, p: dict) -> bool:
        self.w.commands.pop(_commands_key(p), None)
        return True


def _commands_key(p: dict) -> tuple[str, str]:
    return json.dumps(p.get("scope") or {"type": "default"}, sort_keys=True), p.get("language_code", "")


def _valid_button_url(url: str) -> bool:
    parts = urlsplit(url)
    return (parts.scheme in ("http", "https") and bool(parts.hostname)) or parts.scheme == "tg"
