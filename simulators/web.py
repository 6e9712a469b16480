"""The simulators' web page: be an inspector (a Telegram user or a WeCom member) or an entity (a
phone) in a browser.

One page at ``/sim/`` (``templates/common/pages/sim.html``, words in
``templates/<locale>/texts/sim.j2``; zh-CN unless ``?lang=en``) and a small JSON API beside it
at ``/sim/api/…``. The page lists the Telegram simulator's virtual users, the WeCom simulator's
members (when there is one: ``inspectbot demo --channel wecom``) and the SMS simulator's phones;
picking one shows that chat as a messenger would and lets the person act: type text or a
command, tap an inline button or a template card's button, vote in a poll, share a location,
send a photo, open the WeCom application, or — as a phone — reply by SMS. Every action calls the simulators' Python API in-process, so
what the bot receives is exactly what a test's virtual user would produce. The page polls the
JSON once a second.

Message text is put into the page with ``textContent`` only, and the page is served with a
Content-Security-Policy that runs no script but its own (a per-response nonce), so a message
holding ``<script>`` shows as text. No authentication: like the simulators, loopback only.

Use: ``sim_page_app(telegram, sms)`` (a whole app, e.g. on its own port), ``add_routes(app,
telegram, sms)`` (into an app not yet started), or ``await start_sim_page(...)``. Standalone:
``python -m simulators.web --port 8090``. See docs/simulators.md, "The web page".
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import logging
import math
import secrets
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

import aiohttp
from aiohttp import web

from core.render import DEFAULT_LOCALE, render, text
from core.settings import LOCALES, SMS_INBOUND_PATH, Settings
from domain.wecom import fold_userid
from simulators.sms import DEV_ACCOUNT_SID, DEV_AUTH_TOKEN, DEV_NUMBER, PHONE_STATES, Phone, SmsSimulator
from simulators.telegram import SimulatorError, TelegramSimulator
from simulators.telegram.media import make_png
from simulators.wecom import Member, WecomSimulator, image_type

log = logging.getLogger(__name__)

PREFIX = "/sim"
MAX_PHOTO = 10 * 1024 * 1024  # Telegram's limit for a photo
SHOWN_ENTITIES = {"bot_command", "url", "text_link", "bold", "italic", "code", "pre"}


@dataclass(frozen=True)
class Place:
    """A named point the page offers for "share location" (e.g. an assigned entity's address)."""

    label: str
    latitude: float
    longitude: float


PlacesFor = Callable[[int], Awaitable[Sequence[Place]]]  # Telegram user id -> places to offer
PhoneNames = Callable[[Sequence[str]], Awaitable[Mapping[str, str]]]  # numbers -> entity names


# Every error code the API answers with; the page has a word for each (texts/sim.j2, sim.html).
ERROR_CODES = (
    "refused",
    "bad_input",
    "bad_location",
    "no_user",
    "no_phone",
    "no_photo",
    "not_an_image",
    "not_wecom_image",
    "too_big",
    "too_long",
    "no_inbound",
)


class Refused(Exception):
    """An action the page cannot carry out: answered 4xx with a code the page has words for."""

    def __init__(self, code: str, detail: str = "", status: int = 400) -> None:
        if code not in ERROR_CODES:
            raise ValueError(f"no word for error code {code!r}: add it to ERROR_CODES and the page")
        super().__init__(detail or code)
        self.code, self.detail, self.status = code, detail, status


# -- JSON shapes (pure) ------------------------------------------------------------------------


def user_json(user, message_count: int) -> dict:
    """One Telegram user for the list."""
    name = " ".join(p for p in (user.first_name, user.last_name) if p)
    return {
        "id": user.id,
        "name": name,
        "username": user.username,
        "language_code": user.language_code,
        "started": user.started,
        "blocked": user.blocked,
        "messages": message_count,
    }


def message_json(data: dict, from_bot: bool, chosen: Sequence[int] = ()) -> dict:
    """One chat message as the page draws it: text with the entities it styles, buttons, poll,
    photo, document, location. ``chosen``: the options this user voted for, if a poll."""
    out: dict = {
        "id": data["message_id"],
        "from_bot": from_bot,
        "date": data.get("date", 0),
        "edited": "edit_date" in data,
    }
    text = data.get("text") or data.get("caption")
    if text:
        entities = data.get("entities") or data.get("caption_entities") or []
        out["text"] = text
        out["entities"] = [
            {k: e[k] for k in ("type", "offset", "length", "url") if k in e}
            for e in entities
            if e.get("type") in SHOWN_ENTITIES
        ]
    rows = (data.get("reply_markup") or {}).get("inline_keyboard", [])
    if rows:
        out["buttons"] = [[{k: b[k] for k in ("text", "callback_data", "url") if k in b} for b in row] for row in rows]
    if "poll" in data:
        out["poll"] = poll_json(data["poll"], chosen)
    if data.get("photo"):
        largest = data["photo"][-1]
        out["photo"] = {
            "url": f"api/files/{largest['file_id']}",
            "width": largest["width"],
            "height": largest["height"],
        }
    if "document" in data:
        doc = data["document"]
        out["document"] = {
            "url": f"api/files/{doc['file_id']}",
            "name": doc.get("file_name", ""),
            "size": doc.get("file_size", 0),
        }
    if "location" in data:
        out["location"] = {"latitude": data["location"]["latitude"], "longitude": data["location"]["longitude"]}
    return out


def member_json(member: Member) -> dict:
    """One WeCom member for the list, in the shape of a Telegram user (the page draws both alike)."""
    return {
        "id": member.userid,
        "name": member.name or member.userid,
        "username": None,
        "started": True,  # a member opens the application whenever they like: nothing to start
        "blocked": member.state != "ok",
        "messages": sum(1 for m in member.received if m["msgtype"] != "update"),
    }


def wecom_thread(member: Member) -> list[dict]:
    """A member's conversation with the application as :func:`message_json` shapes a Telegram
    chat, in the order it happened: texts, template cards (their buttons pressable until the
    card is updated; an update shows the card's new state — its new text and buttons, or the
    greyed-out button with the text the application put on it), images and files, and what the
    member sent: text, locations, images. Presses and opening the application are events, not
    messages: the card's new state shows a press, as in WeCom."""
    out: list[dict] = []
    cards: dict[str, dict] = {}
    items = sorted([(True, m) for m in member.received] + [(False, m) for m in member.sent], key=lambda p: p[1]["seq"])
    for from_app, m in items:
        shown: dict = {"id": f"s{m['seq']}", "from_bot": from_app, "date": m.get("at", 0), "edited": False}
        if from_app:
            kind = m["msgtype"]
            if kind == "update":
                card = cards.get(m["task_id"])
                if card is None:
                    continue
                card["edited"] = True
                if "card" in m:
                    card["text"] = m.get("text", "")
                    card["buttons"] = _card_buttons(m["card"])
                else:
                    card["buttons"] = [[{"text": m["replace_name"]}]]  # no callback_data: greyed out
                continue
            if kind == "template_card":
                shown.update(
                    id=m["card"]["task_id"], text=m.get("text", ""), buttons=_card_buttons(m["card"]), card=True
                )
                cards[m["card"]["task_id"]] = shown
            elif kind == "image":
                shown["photo"] = {"url": f"api/wecom-media/{m['media_id']}", "width": None, "height": None}
            elif kind == "file":
                shown["document"] = {"url": f"api/wecom-media/{m['media_id']}", "name": "", "size": 0}
            else:
                shown["text"] = m.get("text", "")
        elif "text" in m:
            shown["text"] = m["text"]
        elif "location" in m:
            shown["location"] = {"latitude": m["location"][0], "longitude": m["location"][1]}
        elif "image" in m:
            shown["photo"] = {"url": f"api/wecom-media/{m['image']}", "width": None, "height": None}
        else:
            continue  # a press or enter_agent: an event, not a message
        out.append(shown)
    return out


def _card_buttons(card: dict) -> list[list[dict]]:
    return [[{"text": b["text"], "callback_data": b["key"]} for b in card.get("button_list", ())]]


def poll_json(poll: dict, chosen: Sequence[int]) -> dict:
    return {
        "question": poll["question"],
        "options": [{"text": o["text"], "voter_count": o["voter_count"]} for o in poll["options"]],
        "total_voter_count": poll["total_voter_count"],
        "is_closed": poll["is_closed"],
        "allows_multiple_answers": poll["allows_multiple_answers"],
        "allows_revoting": poll.get("allows_revoting", True),
        "chosen": list(chosen),
    }


def commands_for(commands: Mapping[tuple[str, str], list[dict]], user) -> list[dict]:
    """The command menu Telegram would show this user: the narrowest scope, then the language."""
    scopes = [{"type": "chat", "chat_id": user.id}, {"type": "all_private_chats"}, {"type": "default"}]
    for scope in scopes:
        key = json.dumps(scope, sort_keys=True)
        for language in (user.language_code or "", ""):
            if (key, language) in commands:
                return [{"command": c["command"], "description": c["description"]} for c in commands[key, language]]
    return []


def keyboard_json(markup: dict | None) -> list[list[dict]]:
    """A custom reply keyboard as rows of {text, request_location}."""
    if not markup:
        return []
    return [
        [
            {
                "text": b["text"] if isinstance(b, dict) else b,
                "request_location": bool(isinstance(b, dict) and b.get("request_location")),
            }
            for b in row
        ]
        for row in markup.get("keyboard", [])
    ]


def _epoch(rfc2822: str) -> int:
    try:
        return int(parsedate_to_datetime(rfc2822).timestamp())
    except (TypeError, ValueError):
        return 0


def phone_thread(phone: Phone) -> list[dict]:
    """What the phone got and what it answered, in the order it happened (``seq``; else by time,
    received first)."""
    items = [
        ({"dir": "in", "body": m["body"], "at": _epoch(m["at"]), "status": m.get("status", "")}, m.get("seq"))
        for m in phone.received
    ]
    items += [
        (
            {"dir": "out", "body": m["body"], "at": _epoch(m["at"]), "webhook_status": m.get("webhook_status")},
            m.get("seq"),
        )
        for m in phone.sent
    ]
    items.sort(key=lambda pair: (pair[1] is None, pair[1] or 0, pair[0]["at"], pair[0]["dir"] == "out"))
    return [item for item, _ in items]


def choose_locale(request: web.Request) -> str:
    lang = request.query.get("lang", "")
    return lang if lang in LOCALES else DEFAULT_LOCALE


def page_headers(nonce: str) -> dict[str, str]:
    """Only the page's own script runs (its nonce); it may fetch from its own origin only."""
    return {
        "Content-Security-Policy": f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; "
        "img-src 'self' data:; connect-src 'self'; form-action 'none'; base-uri 'none'; "
        "frame-ancestors 'none'",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
    }


# -- request helpers ---------------------------------------------------------------------------


async def _body(request: web.Request) -> dict:
    if not request.body_exists:
        return {}
    try:
        body = await request.json()
    except (ValueError, UnicodeDecodeError):
        raise Refused("bad_input", "the body is not JSON") from None
    if not isinstance(body, dict):
        raise Refused("bad_input", "the body must be a JSON object")
    return body


def _string(body: dict, key: str, *, required: bool = True) -> str:
    value = body.get(key, "")
    if not isinstance(value, str) or (required and not value.strip()):
        raise Refused("bad_input", f"{key} must be a non-empty string" if required else f"{key} must be a string")
    return value


def _int(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise Refused("bad_input", f"{what} must be an integer")
    try:
        return int(value)
    except ValueError:
        raise Refused("bad_input", f"{what} must be an integer") from None


def _coordinate(value: object, what: str) -> float:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise Refused("bad_location", f"{what} must be a number") from None
    if not math.isfinite(number):
        raise Refused("bad_location", f"{what} must be a number")
    return number


def _answer(handler):
    """JSON out; a refused action becomes ``{"error": code, "detail": …}`` instead of a crash."""

    async def wrapped(self: SimPage, request: web.Request) -> web.StreamResponse:
        try:
            result = await handler(self, request)
        except Refused as exc:
            return web.json_response({"error": exc.code, "detail": exc.detail}, status=exc.status)
        except SimulatorError as exc:
            return web.json_response({"error": "refused", "detail": str(exc)}, status=400)
        if isinstance(result, web.StreamResponse):
            return result
        return web.json_response(
            result, dumps=lambda v: json.dumps(v, ensure_ascii=False), headers={"Cache-Control": "no-store"}
        )

    return wrapped


# -- the page and its API ----------------------------------------------------------------------


class SimPage:
    """Views over a Telegram simulator and/or a WeCom simulator, and one SMS simulator."""

    def __init__(
        self,
        telegram: TelegramSimulator | None,
        sms: SmsSimulator,
        *,
        places: PlacesFor | None = None,
        phone_names: PhoneNames | None = None,
        zone: str = "",
        wecom: WecomSimulator | None = None,
    ) -> None:
        self.tg, self.sms, self.wecom = telegram, sms, wecom
        self.zone = zone  # IANA name the page shows times in (the service's INSPECTBOT_TZ); "" = the browser's
        self.places_for, self.phone_names = places, phone_names
        self._names: dict[str, str] = {}  # phone number -> entity name, asked once per number

    def routes(self, prefix: str = PREFIX) -> list[web.RouteDef]:
        p = prefix.rstrip("/")
        return [
            web.get(f"{p}/", self.page),
            web.get(f"{p}/api/state", self.state),
            web.post(f"{p}/api/users", self.create_user),
            web.get(f"{p}/api/users/{{id}}", self.chat),
            web.get(f"{p}/api/users/{{id}}/places", self.places),
            web.post(f"{p}/api/users/{{id}}/{{action}}", self.act),
            web.get(f"{p}/api/files/{{file_id}}", self.file),
            web.get(f"{p}/api/wecom/{{userid}}", self.member_chat),
            web.post(f"{p}/api/wecom/{{userid}}/{{action}}", self.member_act),
            web.get(f"{p}/api/wecom-media/{{media_id}}", self.wecom_media),
            web.get(f"{p}/api/phones/{{number}}", self.phone),
            web.post(f"{p}/api/phones/{{number}}/reply", self.reply),
            web.post(f"{p}/api/phones/{{number}}/state", self.phone_state),
        ]

    async def page(self, request: web.Request) -> web.Response:
        locale = choose_locale(request)
        nonce = secrets.token_urlsafe(16)
        other = "en" if locale == "zh-CN" else "zh-CN"
        body = render(
            "pages/sim.html", locale=locale, nonce=nonce, other_locale=other, phone_states=PHONE_STATES, zone=self.zone
        )
        return web.Response(text=body, content_type="text/html", charset="utf-8", headers=page_headers(nonce))

    # -- lists --

    @_answer
    async def state(self, request: web.Request) -> dict:
        tg = self.tg
        users = [user_json(u, len(tg.world.chat_of(u).bot_message_ids)) for u in tg.users] if tg else []
        names = await self._phone_names(list(self.sms.phones))
        phones = [
            {
                "number": p.number,
                "name": names.get(p.number, ""),
                "state": p.state,
                "received": len(p.received),
                "sent": len(p.sent),
            }
            for p in self.sms.phones.values()
        ]
        state: dict = {"bot": tg.world.bot.get("first_name", "") if tg else "", "users": users, "phones": phones}
        state["telegram"] = tg is not None
        if self.wecom is not None:
            state["members"] = [member_json(m) for m in self.wecom.members.values()]
        return state

    async def _phone_names(self, numbers: list[str]) -> Mapping[str, str]:
        unknown = [n for n in numbers if n not in self._names]
        if unknown and self.phone_names is not None:
            try:
                found = await self.phone_names(unknown)
            except Exception:  # a name is a nicety: the list still shows the numbers
                log.exception("sim page: looking up phone names failed")
                return self._names
            self._names.update({n: found.get(n, "") for n in unknown})
        return self._names

    # -- one Telegram user --

    def _user(self, request: web.Request):
        if self.tg is None:
            raise Refused("no_user", request.match_info["id"], 404)
        try:
            return self.tg.user(int(request.match_info["id"]))
        except (ValueError, SimulatorError):
            raise Refused("no_user", request.match_info["id"], 404) from None

    @_answer
    async def create_user(self, request: web.Request) -> dict:
        if self.tg is None:
            raise Refused("refused", "no Telegram simulator", 404)
        body = await _body(request)
        first_name = _string(body, "first_name").strip()
        username = _string(body, "username", required=False).strip().lstrip("@") or None
        language = _string(body, "language_code", required=False).strip() or None
        user = self.tg.create_user(first_name[:64], username=username, language_code=language)
        return user_json(user, 0)

    @_answer
    async def chat(self, request: web.Request) -> dict:
        """The whole private chat, both sides, in order, as it looks now."""
        user = self._user(request)
        world = self.tg.world
        chat = world.chat_of(user)
        messages = []
        for message_id in sorted(chat.messages):
            stored = chat.messages[message_id]
            if stored.deleted:
                continue
            chosen: Sequence[int] = ()
            if "poll" in stored.data and stored.data["poll"]["id"] in world.polls:
                chosen = world.polls[stored.data["poll"]["id"]].votes.get(user.id, [])
            messages.append(message_json(stored.data, stored.from_bot, chosen))
        answers = [{"text": a.get("text", ""), "show_alert": bool(a.get("show_alert"))} for a in chat.callback_answers]
        return {
            "user": user_json(user, len(chat.bot_message_ids)),
            "messages": messages,
            "callback_answers": answers,
            "commands": commands_for(world.commands, user),
            "keyboard": keyboard_json(chat.reply_keyboard),
            "has_places": self.places_for is not None,
        }

    @_answer
    async def places(self, request: web.Request) -> dict:
        user = self._user(request)
        found = await self.places_for(user.id) if self.places_for is not None else []
        return {"places": [{"label": p.label, "latitude": p.latitude, "longitude": p.longitude} for p in found]}

    @_answer
    async def act(self, request: web.Request) -> dict:
        """One thing the person does; answers the ids of the updates the bot will get."""
        user = self._user(request)
        action = request.match_info["action"]
        if action == "photo":
            updates = [await self._photo(request, user)]
        else:
            body = await _body(request)
            updates = self._action(action, user, body)
        return {"updates": [u["update_id"] for u in updates]}

    def _action(self, action: str, user, body: dict) -> list[dict]:
        sim = self.tg
        if action == "text":
            return [sim.send_text(user, _string(body, "text"))]
        if action == "start":
            return [sim.send_command(user, "start")]
        if action == "press":
            return [
                sim.press_button(user, _int(body.get("message_id"), "message_id"), data=_string(body, "callback_data"))
            ]
        if action == "poll":
            options = body.get("option_ids")
            if not isinstance(options, list):
                raise Refused("bad_input", "option_ids must be a list")
            return sim.answer_poll(
                user, _int(body.get("message_id"), "message_id"), [_int(o, "option id") for o in options]
            )
        if action == "location":
            return [
                sim.share_location(
                    user, _coordinate(body.get("latitude"), "latitude"), _coordinate(body.get("longitude"), "longitude")
                )
            ]
        if action in ("block", "unblock"):
            update = sim.block_bot(user) if action == "block" else sim.unblock_bot(user)
            return [update] if update else []
        raise Refused("bad_input", f"unknown action {action}", 404)

    async def _photo(self, request: web.Request, user) -> dict:
        """A picture uploaded as ``multipart/form-data`` (field ``photo``, optional ``caption``),
        or, with a JSON body, a generated one."""
        if request.content_type != "multipart/form-data":
            body = await _body(request)
            return self.tg.send_photo(user, caption=_string(body, "caption", required=False) or None)
        data, caption = b"", ""
        reader = await request.multipart()  # streamed: not bound by the app's client_max_size
        async for part in reader:
            if part.name == "photo":
                data = await _read_capped(part, MAX_PHOTO)
            elif part.name == "caption":
                caption = (await part.text())[:1024]
        if not data:
            raise Refused("no_photo")
        try:
            return self.tg.send_photo(user, data, caption=caption or None)
        except SimulatorError as exc:
            raise Refused("not_an_image", str(exc)) from None

    async def file(self, request: web.Request) -> web.Response:
        """A photo inline, anything else as a download (never rendered on this origin)."""
        record = self.tg.world.files.get(request.match_info["file_id"]) if self.tg else None
        if record is None:
            raise web.HTTPNotFound()
        image = record.mime_type if record.kind == "photo" and record.mime_type.startswith("image/") else ""
        return _file_response(record.data, image, record.file_path.rsplit("/", 1)[-1])

    # -- one WeCom member --

    def _member(self, request: web.Request) -> Member:
        userid = request.match_info["userid"]
        if self.wecom is None or fold_userid(userid) not in self.wecom.members:  # keyed as WeCom compares them
            raise Refused("no_user", userid, 404)
        return self.wecom.members[fold_userid(userid)]

    @_answer
    async def member_chat(self, request: web.Request) -> dict:
        """The member's conversation with the application, shaped as :meth:`chat` shapes a
        Telegram chat (no command menu, keyboard or places: WeCom has none of them)."""
        member = self._member(request)
        return {
            "user": member_json(member),
            "messages": wecom_thread(member),
            "callback_answers": [],
            "commands": [],
            "keyboard": [],
            "has_places": False,
            "channel": "wecom",
        }

    @_answer
    async def member_act(self, request: web.Request) -> dict:
        """One thing the member does, delivered to the service as WeCom's encrypted callback;
        answers the status the service's callback answered (0: unreachable)."""
        member = self._member(request)
        assert self.wecom is not None  # _member found the member there
        if not self.wecom.callback_url:
            raise Refused("no_inbound", "the WeCom simulator has no callback URL", 409)
        action, userid = request.match_info["action"], member.userid
        if action == "photo":
            if request.content_type == "multipart/form-data":
                data = b""
                reader = await request.multipart()
                async for part in reader:
                    if part.name == "photo":
                        data = await _read_capped(part, MAX_PHOTO)
                if not data:
                    raise Refused("no_photo")
                if not image_type(data):
                    raise Refused("not_wecom_image")
            else:
                await _body(request)
                data = make_png(320, 240)
            return {"status": await self.wecom.image(userid, data)}
        body = await _body(request)
        if action == "text":
            status = await self.wecom.text(userid, _string(body, "text"))
        elif action == "start":  # the member opens the application
            status = await self.wecom.enter(userid)
        elif action == "press":
            status = await self.wecom.press(userid, _string(body, "message_id"), _string(body, "callback_data"))
        elif action == "location":
            latitude = _coordinate(body.get("latitude"), "latitude")
            status = await self.wecom.location(userid, latitude, _coordinate(body.get("longitude"), "longitude"))
        else:
            raise Refused("bad_input", f"unknown action {action}", 404)
        return {"status": status}

    async def wecom_media(self, request: web.Request) -> web.Response:
        """An image the application or a member sent (inline), a file as a download."""
        medium = self.wecom.media.get(request.match_info["media_id"]) if self.wecom else None
        if medium is None:
            raise web.HTTPNotFound()
        data, _, filename, _ = medium
        return _file_response(data, image_type(data), filename)

    # -- one phone --

    def _phone(self, request: web.Request) -> Phone:
        number = request.match_info["number"]
        if number not in self.sms.phones:
            raise Refused("no_phone", number, 404)
        return self.sms.phones[number]

    @_answer
    async def phone(self, request: web.Request) -> dict:
        phone = self._phone(request)
        names = await self._phone_names([phone.number])
        return {
            "number": phone.number,
            "name": names.get(phone.number, ""),
            "state": phone.state,
            "thread": phone_thread(phone),
            "can_reply": bool(self.sms.inbound_url),
        }

    @_answer
    async def reply(self, request: web.Request) -> dict:
        phone = self._phone(request)
        body = _string(await _body(request), "body")
        if len(body) > 1600:
            raise Refused("too_long", "at most 1600 characters")
        if not self.sms.inbound_url:
            raise Refused("no_inbound", "the SMS simulator has no inbound URL", 409)
        sent = await self.sms.reply(phone.number, body)
        return {"sid": sent.sid, "status": sent.status}

    @_answer
    async def phone_state(self, request: web.Request) -> dict:
        phone = self._phone(request)
        state = _string(await _body(request), "state")
        if state not in PHONE_STATES:
            raise Refused("bad_input", f"state must be one of {', '.join(PHONE_STATES)}")
        self.sms.set_state(phone.number, state)
        return {"number": phone.number, "state": state}


def _file_response(data: bytes, mime: str, filename: str) -> web.Response:
    """An image inline (``mime``: its type), anything else as a download: never rendered on this origin."""
    headers = {
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "private, max-age=3600",
        "Content-Security-Policy": "default-src 'none'; sandbox",
    }
    if mime:
        return web.Response(body=data, content_type=mime, headers=headers)
    headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return web.Response(body=data, content_type="application/octet-stream", headers=headers)


async def _read_capped(part, limit: int) -> bytes:
    chunks, size = [], 0
    while chunk := await part.read_chunk(64 * 1024):
        size += len(chunk)
        if size > limit:
            raise Refused("too_big", f"at most {limit // (1024 * 1024)} MB", 413)
        chunks.append(chunk)
    return b"".join(chunks)


# -- mounting ----------------------------------------------------------------------------------


def add_routes(
    app: web.Application,
    telegram: TelegramSimulator | None,
    sms: SmsSimulator,
    *,
    places: PlacesFor | None = None,
    phone_names: PhoneNames | None = None,
    prefix: str = PREFIX,
    zone: str = "",
    wecom: WecomSimulator | None = None,
) -> SimPage:
    """Add the page's routes to an application that has not started yet."""
    page = SimPage(telegram, sms, places=places, phone_names=phone_names, zone=zone, wecom=wecom)
    app.add_routes(page.routes(prefix))
    return page


def sim_page_app(
    telegram: TelegramSimulator | None,
    sms: SmsSimulator,
    *,
    places: PlacesFor | None = None,
    phone_names: PhoneNames | None = None,
    zone: str = "",
    wecom: WecomSimulator | None = None,
) -> web.Application:
    """A whole application: the page at ``/sim/`` (and ``/`` sending there)."""
    app = web.Application()
    add_routes(app, telegram, sms, places=places, phone_names=phone_names, zone=zone, wecom=wecom)

    async def to_page(request: web.Request) -> web.Response:
        raise web.HTTPFound(f"{PREFIX}/" + (f"?{request.query_string}" if request.query_string else ""))

    app.router.add_get("/", to_page)
    app.router.add_get(PREFIX, to_page)
    return app


async def start_sim_page(
    telegram: TelegramSimulator | None, sms: SmsSimulator, host: str = "127.0.0.1", port: int = 0, **hooks
) -> tuple[web.AppRunner, str]:
    """Serve :func:`sim_page_app` on its own port; returns the runner (``await runner.cleanup()``
    to stop) and the page's URL."""
    runner = web.AppRunner(sim_page_app(telegram, sms, **hooks), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    bound_host, bound_port = runner.addresses[0][:2]
    return runner, f"http://{bound_host}:{bound_port}{PREFIX}/"


# -- standalone --------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m simulators.web", description="The Telegram and SMS simulators with their web page."
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8090, help="the page's port (default 8090)")
    parser.add_argument("--telegram-port", type=int, default=8081, help="the Bot API simulator's port (0 = any)")
    parser.add_argument("--sms-port", type=int, default=8082, help="the SMS gateway simulator's port (0 = any)")
    parser.add_argument(
        "--inbound-url", default="", help="where phone replies are POSTed (default: $INSPECTBOT_PUBLIC_URL/sms/inbound)"
    )
    parser.add_argument("--users", type=int, default=2, help="virtual Telegram users to create at start")
    parser.add_argument(
        "--sample",
        action="store_true",
        help="have the simulated bot send each user a sample message, and a phone an SMS",
    )
    parser.add_argument("--lang", choices=LOCALES, default=DEFAULT_LOCALE, help="language of the sample texts")
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    """Both simulators and the page, until interrupted (no bot: point one at the printed URLs)."""
    settings = Settings.from_env()
    telegram = await TelegramSimulator().start(args.host, args.telegram_port)
    sms = SmsSimulator(
        account_sid=settings.sms_account_sid or DEV_ACCOUNT_SID,
        auth_token=settings.sms_auth_token or DEV_AUTH_TOKEN,
        numbers=(settings.sms_from or DEV_NUMBER,),
        inbound_url=args.inbound_url or settings.public_url.rstrip("/") + SMS_INBOUND_PATH,
    )
    await sms.start(args.host, args.sms_port)
    for n in range(args.users):
        telegram.create_user(text("sim_sample_user", args.lang, n=n + 1), username=f"inspector{n + 1}")
    if args.sample:
        await send_samples(telegram, sms, settings.sms_auth_token or DEV_AUTH_TOKEN, args.lang)
    runner, url = await start_sim_page(telegram, sms, args.host, args.port)
    print(text("sim_standalone", args.lang, page=url, telegram=telegram.base_url, sms=sms.url, inbound=sms.inbound_url))
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
        await sms.stop()
        await telegram.stop()


async def send_samples(telegram: TelegramSimulator, sms: SmsSimulator, auth_token: str, locale: str) -> None:
    """What a bot would send, so the page has something to show: through the simulators' own
    APIs (Bot API calls and a Twilio create-message request), validated as any bot's are."""
    for user in telegram.users:
        telegram.send_command(user, "start")
        buttons = [
            [
                {"text": text("sim_sample_accept", locale), "callback_data": "sample:accept"},
                {"text": text("sim_sample_recuse", locale), "callback_data": "sample:recuse"},
            ]
        ]
        options = [{"text": text("sim_sample_option", locale, n=n)} for n in (1, 2, 3)]
        for method, params in (
            (
                "sendMessage",
                {
                    "text": text("sim_sample_task", locale),
                    "reply_markup": json.dumps({"inline_keyboard": buttons}, ensure_ascii=False),
                },
            ),
            (
                "sendPoll",
                {
                    "question": text("sim_sample_poll", locale),
                    "is_anonymous": "false",
                    "options": json.dumps(options, ensure_ascii=False),
                },
            ),
        ):
            status, body = await telegram.call(telegram.token, method, {"chat_id": str(user.id), **params}, {})
            if status != 200:
                log.warning("sample %s refused: %s", method, body)
    number = next(iter(sms.numbers))
    auth = {"Authorization": "Basic " + base64.b64encode(f"{sms.account_sid}:{auth_token}".encode()).decode()}
    async with aiohttp.ClientSession(headers=auth) as session:
        async with session.post(
            f"{sms.url}/2010-04-01/Accounts/{sms.account_sid}/Messages.json",
            data={"To": "+8613800138000", "From": number, "Body": text("sim_sample_sms", locale)},
        ) as resp:
            if resp.status != 201:
                log.warning("sample SMS refused: %s", await resp.text())


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        asyncio.run(serve(parse_args(argv)))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
