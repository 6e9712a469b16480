"""The WeCom (企业微信) channel: a self-built application (自建应用) behind our channel interface.

Outbound over WeCom's server API (``/cgi-bin/...``, aiohttp): the access token is cached and
refreshed :data:`REFRESH_BEFORE` seconds before it expires, and at once when an answer says it is
stale (40014, 42001, 41001 — the call is then made again with the new token, once). Text goes as
``text`` messages (split at 2048 bytes); a message with buttons as a ``button_interaction``
template card (:func:`card_for`: a title that tells it from its neighbours, :func:`card_title`;
buttons that read apart, numbered and listed when their labels are too long, :func:`button_faces`)
whose ``task_id`` is the provider id we record; a photo through
``media/upload`` then an ``image`` message; a document as a ``file``. An edit of a card (the
answer to a press) is ``update_template_card`` with the press's ``response_code``, which WeCom
gives only in the button event: the channel remembers the last one of each card in its
``codes`` store — in production the database (``services.wecom_codes``: 72 hours, used once, so
another instance or a restarted one can still update the card), else in memory
(:class:`MemoryResponseCodes`); without one (expired, already used) the new text goes as a new
message instead; an update refused for now (45009, busy) puts its code back for the retry. A
message of several calls refused half-way is retried for the calls WeCom did not accept only
(:class:`_Progress`). WeCom's errcodes map onto the retryable / permanent / rate-limited classes
(:func:`classify`).

Inbound: the encrypted callback (``GET`` URL verification with ``echostr``; ``POST`` messages
and events), checked (``msg_signature``, AES, CorpID: ``core.wecom_crypto``), refused when its
timestamp is more than :data:`MAX_SKEW` from ours (an old capture replayed), parsed as UTF-8 only
and without a DOCTYPE (:func:`_xml`), each field read once (:func:`_field`), ignored when its
AgentID is another application's, normalised to
:class:`~core.channel.InboundEvent` and handed to ``on_event`` — which returns once it is stored —
before we answer 200 (WeCom waits 5 s, then retries up to three times: the event's key makes the
retries duplicates). See docs/messaging.md, "WeCom channel".
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import re
import time
import xml.etree.ElementTree as ET
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import replace
from typing import Protocol
from urllib.parse import quote

import aiohttp
from aiohttp import web

from bot.channels.http import HttpSession
from bot.channels.sms_twilio import read_limited
from core.channel import (
    Button,
    EventCallback,
    EventKind,
    InboundEvent,
    Outgoing,
    SendError,
    identifier,
    split_parts,
    utf8_bytes,
)
from core.logs import not_stored
from core.settings import Settings
from core.wecom_crypto import WecomCrypto, WecomCryptoError
from domain import inputs

log = logging.getLogger(__name__)

DEFAULT_API_URL = "https://qyapi.weixin.qq.com"
CALLBACK_PATH = "/wecom/callback"
FILE_PREFIX = "wecom:"  # a photo's file id says its channel (the photo sweep fetches it there)
REFRESH_BEFORE = 300.0  # seconds before expiry a token is renewed
TEXT_BYTES = 2048  # a text message's content (WeCom truncates longer ones)
TITLE_CHARS = 36  # template card main_title.title (documented)
SUB_TITLE_CHARS = 160  # template card sub_title_text (documented)
DESC_CHARS = 44  # template card main_title.desc (documented)
BUTTON_CHARS = 10  # a button's text (documented)
MAX_BUTTONS = 6  # per card (documented)
KEYNAME_CHARS = 5  # horizontal_content_list keyname (documented)
VALUE_CHARS = 30  # horizontal_content_list value (documented)
REF_TAIL_CHARS = 9  # what a cut title keeps at least of a bracketed reference's end ("6-12-02/5")
TITLE_HEAD_CHARS = 6  # what a cut title keeps at least of the words before its brackets, "…" included
BRACKETED = re.compile(r"[（(][^（）()]+[）)]")  # a line's first bracketed part: our reference (and firm)
REPLACE_CHARS = 16
MAX_BODY = 64 << 10  # a callback is a few hundred bytes
MAX_ANSWER = 1 << 20  # an API answer (JSON) is a few hundred bytes
MAX_MEDIA = 20 << 20  # media/get: WeCom's largest medium (a file; an image is at most 10 MB)
MAX_SKEW = 300.0  # seconds a callback's timestamp may differ from our clock
MAX_RESPONSE_CODES = 50_000
NO_SUCH_USER = 46004  # user/getuserid: no member has this mobile number
RESPONSE_CODE_TTL = 72 * 3600  # seconds: WeCom's validity of a card's ResponseCode
MAX_SEEN = 10_000
TASK_ID_CHARS = 128  # a card's TaskId and a press's ResponseCode (wecom_response_code's columns)
MEDIA_ID_CHARS = 255 - len(FILE_PREFIX)  # photo.file_id holds FILE_PREFIX + the MediaId
MAX_PARTIAL = 10_000  # messages whose earlier try was accepted in part
JSON_HEADERS = {"Content-Type": "application/json; charset=utf-8"}
# UTF-8 as is (a third of the bytes of \uXXXX escapes for Chinese text), no spaces. One encoder
# for every call: json.dumps with these options builds a new one each time (4.3 -> 2.5 µs a message).
JSON_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
STALE_TOKEN = frozenset({40014, 42001, 41001})
#: errcode -> (kind, retryable, retry_after). Anything not listed is "unknown", retryable.
ERRCODES: dict[int, tuple[str, bool, float | None]] = {
    -1: ("server", True, None),  # system busy
    45009: ("throttled", True, 60.0),  # API frequency out of limit
    45033: ("throttled", True, 5.0),  # too many concurrent calls
    45047: ("throttled", True, 60.0),
    40001: ("auth", True, 60.0),  # invalid secret: our configuration; retry later, mark nobody
    40013: ("auth", True, 60.0),  # invalid corpid
    40091: ("auth", True, 60.0),
    40014: ("auth", True, 5.0),  # a token still refused after a refresh
    42001: ("auth", True, 5.0),
    41001: ("auth", True, 5.0),
    60020: ("config", True, 300.0),  # our server's IP is not in the application's trusted IPs
    40056: ("config", False, None),  # wrong agentid
    48002: ("config", False, None),  # API forbidden for this application
    81013: ("chat_not_found", False, None),  # every recipient invalid
    40003: ("chat_not_found", False, None),  # invalid userid
    60111: ("chat_not_found", False, None),  # userid not found
    60011: ("blocked", False, None),  # outside the application's visible range
    44004: ("bad_request", False, None),
    45002: ("too_long", False, None),
    40058: ("bad_request", False, None),
    47001: ("bad_request", False, None),
    40008: ("bad_request", False, None),
    40007: ("bad_request", False, None),
    40005: ("bad_request", False, None),
    40006: ("too_long", False, None),
}


def classify(errcode: int, errmsg: str = "") -> SendError:
    kind, retryable, retry_after = ERRCODES.get(errcode, ("unknown", True, None))
    return SendError(kind, retryable=retryable, retry_after=retry_after, detail=f"errcode {errcode}: {errmsg[:120]}")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def split_text(text: str, limit: int = TEXT_BYTES) -> list[str]:
    """``text`` in parts of at most ``limit`` UTF-8 bytes, cut at line ends where possible."""
    return split_parts(text, limit, utf8_bytes)


def _middle_cut(text: str, limit: int, head: int) -> str:
    """``text`` in at most ``limit`` characters: its first ``head`` ones, "…", and its end."""
    if len(text) <= limit:
        return text
    head = min(head, limit - 2)
    return text[:head] + "…" + text[len(text) - (limit - head - 1) :]


def card_title(line: str, limit: int = TITLE_CHARS) -> str:
    """A card's title from its message's first line, within ``limit``: the line when it fits; else
    its first bracketed part — in our messages the inspection's reference, and its firm — kept to
    its end, the words before it shortened (to :data:`TITLE_HEAD_CHARS` at least), and a bracketed
    part too long itself cut in the middle of its reference (:func:`_bracket_cut`); a line without brackets
    keeps its start and its end. What is cut is still said by the text sent before the card."""
    if len(line) <= limit:
        return line
    found = BRACKETED.search(line)
    if found is None:
        return _middle_cut(line, limit, limit * 2 // 3)
    if found.end() < limit:  # the brackets fit whole after the start: only the line's end goes
        return _cut(line, limit)
    before, inside = line[: found.start()], found.group()
    room = max(limit - len(inside), TITLE_HEAD_CHARS)
    if len(before) > room:
        before = before[: room - 1] + "…"
    return before + _bracket_cut(inside, limit - len(before))


def _bracket_cut(inside: str, room: int) -> str:
    """A bracketed ``（reference，firm）`` in ``room`` characters: the reference cut in its middle
    (its start and at least its last :data:`REF_TAIL_CHARS` stay: the draw's date and number), then
    as much of what follows it as fits; brackets without a comma lose their middle."""
    found = re.match(r"([（(])([^，,]+)([，,] ?)(.+)([）)])$", inside)
    if found is None:
        return _middle_cut(inside, room, 5)
    opening, ref, comma, rest, closing = found.groups()
    fixed = len(opening) + len(comma) + len(closing)
    ref_room = min(len(ref), max(REF_TAIL_CHARS + 5, room - fixed - len(rest)))
    ref = _middle_cut(ref, ref_room, 4)
    return opening + ref + comma + _cut(rest, room - fixed - len(ref)) + closing


def _mark(n: int) -> str:
    """The number of a card's ``n``-th choice: ①…⑳, then ``21.``."""
    return chr(0x2460 + n - 1) if 1 <= n <= 20 else f"{n}."


def button_faces(buttons: tuple[Button, ...]) -> list[tuple[str, str, str]]:
    """What each button shows: its text (at most :data:`BUTTON_CHARS`), and its number and line in
    the card's numbered list ("", "" for none). Labels that fit are shown as they are, and so is
    one label cut at its end (「‼️ 严重不合格（…」 still reads apart from the others, shown whole).
    When two or more do not fit, every button is numbered (①, ②…): its text is the number and
    what sets its label apart (the longest start it shares with another label cut off, back to a
    word's start), and the card lists each number with the whole label (:data:`VALUE_CHARS`; a
    longer one loses its middle). So choices whose labels share a prefix
    ("SCJG-FOOD/2026-12-02/5 …", "…/10 …") never read alike."""
    labels = [b.label for b in buttons]
    if sum(len(label) > BUTTON_CHARS for label in labels) < 2:  # one cut label still reads apart
        return [(_cut(label, BUTTON_CHARS), "", "") for label in labels]
    faces = []
    for n, label in enumerate(labels, 1):
        mark = _mark(n)
        shared = max((len(os.path.commonprefix((label, other))) for other in labels if other is not label), default=0)
        while shared and label[shared - 1].isalnum():  # "…/1" of "…/1 x" and "…/10 y": back to "/"
            shared -= 1
        apart = label[shared:].strip() or label
        faces.append((_cut(mark + apart, BUTTON_CHARS), mark, _middle_cut(label, VALUE_CHARS, 5)))
    return faces


def card_for(
    text: str, buttons: tuple[Button, ...], task_id: str, faces: list[tuple[str, str, str]] | None = None
) -> tuple[dict, str]:
    """A ``button_interaction`` card for ``text`` and ``buttons`` (at most 6), and the text that
    does not fit the card's documented lengths (sent before it as a text message; "" if none).
    The first line is the title (:func:`card_title`); the rest the sub-title when it fits, else the
    second line is the title's ``desc``. The buttons show ``faces`` (:func:`button_faces` of all the
    message's buttons, when a card holds a part of them); numbered ones are listed in the card's
    ``horizontal_content_list``. Each button's key is its callback data, unchanged."""
    first, _, rest = text.strip().partition("\n")
    rest = rest.strip()
    overflow = desc = ""
    if len(first) > TITLE_CHARS or len(rest) > SUB_TITLE_CHARS:
        overflow, first, rest = text.strip(), card_title(first), ""
        desc = _cut(text.strip().partition("\n")[2].strip().partition("\n")[0].strip(), DESC_CHARS)
    shown = buttons[:MAX_BUTTONS]
    faces = (faces or button_faces(buttons))[: len(shown)]
    card: dict = {
        "card_type": "button_interaction",
        "main_title": {"title": first} if first else {},
        "task_id": task_id,
        "button_list": [
            {"text": face, "style": 1 if i == 0 else 2, "key": b.data}
            for i, (b, (face, _, _)) in enumerate(zip(shown, faces, strict=True))
        ],
    }
    if desc:
        card["main_title"]["desc"] = desc
    if rest:
        card["sub_title_text"] = rest
    if not first and not rest:
        card["main_title"] = {"title": _cut(buttons[0].label, TITLE_CHARS)}
    listed = [{"keyname": mark, "value": line} for _, mark, line in faces if mark]
    if listed:
        card["horizontal_content_list"] = listed
    return card, overflow


def task_id_for(address: str, text: str, now: float) -> str:
    """A card's ``task_id``: unique per application (WeCom refuses a repeated one), from the
    characters it allows."""
    digest = hashlib.sha1(f"{address}\x1f{text}\x1f{now}\x1f{time.monotonic_ns()}".encode()).hexdigest()
    return f"ib-{digest[:32]}"


class ResponseCodes(Protocol):
    """Where the channel keeps the last press's ``ResponseCode`` of each card (``now``: seconds)."""

    async def remember(self, task_id: str, userid: str, code: str, now: float) -> None: ...

    async def take(self, task_id: str, userid: str, now: float) -> str | None: ...


class MemoryResponseCodes:
    """This process only (tests, the benchmark): the newest :data:`MAX_RESPONSE_CODES` codes, 72 hours each."""

    def __init__(self) -> None:
        self._codes: OrderedDict[str, tuple[str, str, float]] = OrderedDict()

    async def remember(self, task_id: str, userid: str, code: str, now: float) -> None:
        self._codes[task_id] = (userid, code, now + RESPONSE_CODE_TTL)
        self._codes.move_to_end(task_id)
        while len(self._codes) > MAX_RESPONSE_CODES:
            self._codes.popitem(last=False)

    async def take(self, task_id: str, userid: str, now: float) -> str | None:
        found = self._codes.get(task_id)
        if found is None or found[0] != userid or found[2] <= now:
            return None
        del self._codes[task_id]
        return found[1]


class _Progress:
    """How far earlier tries of one message got: the number of its ``message/send`` calls WeCom
    accepted, and its card's task id. A message of several calls refused half-way (45009 on its
    third part, WeCom busy) is tried again by the dispatcher; the parts already accepted are then
    skipped instead of arriving twice. Kept in this process (:data:`MAX_PARTIAL` messages): after a
    restart a retry sends the whole message again — at least once, as everywhere."""

    def __init__(self, store: OrderedDict[str, tuple[int, str]], key: str) -> None:
        self._store, self._key = store, key
        self._before, self.task_id = store.get(key, (0, ""))
        self._step = 0

    @property
    def started(self) -> bool:
        """Whether an earlier try had a call accepted."""
        return self._before > 0

    def skip(self) -> bool:
        """Whether the next call was accepted on an earlier try (and is not to be made again)."""
        self._step += 1
        return self._step <= self._before

    def accepted(self) -> None:
        self._store[self._key] = (self._step, self.task_id)
        self._store.move_to_end(self._key)
        while len(self._store) > MAX_PARTIAL:
            self._store.popitem(last=False)

    def done(self, provider_id: str) -> str:
        self._store.pop(self._key, None)
        return provider_id


class WecomChannel(HttpSession):
    """The WeCom :class:`~core.channel.Channel` (see the module docstring)."""

    name = "wecom"

    def __init__(
        self,
        settings: Settings,
        *,
        on_event: EventCallback | None = None,
        session: aiohttp.ClientSession | None = None,
        timeout: float = 10.0,
        pool_size: int = 64,
        now: Callable[[], float] = time.time,
        codes: ResponseCodes | None = None,
    ) -> None:
        self.corp_id = settings.wecom_corp_id
        self._secret = settings.wecom_secret
        self.agent_id = settings.wecom_agent_id
        self.base = (settings.wecom_api_url or DEFAULT_API_URL).rstrip("/")
        self.crypto = WecomCrypto(settings.wecom_token, settings.wecom_aes_key, settings.wecom_corp_id)
        self.on_event = on_event
        self.now = now
        self._pool_size = pool_size
        self._use_session(session, timeout)
        self._token = ""
        self._token_expires = 0.0
        self._token_lock = asyncio.Lock()
        self.token_fetches = 0
        self._query = ("", "")  # (token, "?access_token=…")
        self.codes: ResponseCodes = codes or MemoryResponseCodes()  # task_id -> its last press's code
        self._seen: OrderedDict[str, None] = OrderedDict()  # stored callbacks' keys (replays refused)
        self._partial: OrderedDict[str, tuple[int, str]] = OrderedDict()  # messages sent in part (_Progress)

    def __repr__(self) -> str:  # never the secret
        return f"WecomChannel({self.base!r}, corp={self.corp_id!r}, agent={self.agent_id})"

    async def start(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=self._pool_size))

    # -- the access token --

    async def token(self) -> str:
        if self._token and self.now() < self._token_expires - REFRESH_BEFORE:
            return self._token
        stale = self._token
        async with self._token_lock:
            if self._token != stale and self.now() < self._token_expires - REFRESH_BEFORE:
                return self._token  # another caller renewed it meanwhile
            body = await self._request(
                "GET", "/cgi-bin/gettoken", params={"corpid": self.corp_id, "corpsecret": self._secret}
            )
            errcode = body.get("errcode", 0)
            if errcode:
                raise classify(errcode, str(body.get("errmsg", "")))
            token, expires_in = body.get("access_token"), body.get("expires_in")
            if not isinstance(token, str) or not token or type(expires_in) is not int or expires_in <= 0:
                raise SendError("bad_response", retryable=True, retry_after=10, detail="gettoken without a token")
            self.token_fetches += 1
            self._token, self._token_expires = token, self.now() + expires_in
            return token

    def _forget(self, token: str) -> None:
        if self._token == token:
            self._token, self._token_expires = "", 0.0

    # -- HTTP --

    async def _request(self, method: str, path: str, *, params: dict | None = None, query: str = "", **kwargs) -> dict:
        if self._session is None:
            await self.start()
            assert self._session is not None
        try:
            async with self._session.request(
                method, self.base + path + query, params=params, timeout=self._timeout, **kwargs
            ) as resp:
                if resp.status >= 500:
                    raise SendError("server", retryable=True, detail=f"HTTP {resp.status}")
                if resp.status != 200:
                    raise SendError("bad_request", retryable=False, detail=f"HTTP {resp.status}")
                media = path == "/cgi-bin/media/get"
                raw = await _read_limited(resp, MAX_MEDIA if media else MAX_ANSWER, medium=media)
                if resp.content_type != "application/json" and media:
                    return {"_bytes": raw}
        except SendError:
            raise
        except TimeoutError as exc:
            raise SendError("timeout", retryable=True, detail=exc.__class__.__name__) from exc
        except aiohttp.ClientError as exc:
            raise SendError("connection", retryable=True, detail=exc.__class__.__name__) from exc
        try:
            body = json.loads(raw)
        except ValueError:
            raise SendError("bad_response", retryable=True, detail="not JSON") from None
        if not isinstance(body, dict):
            raise SendError("bad_response", retryable=True, detail="not an object")
        return body

    async def call(self, method: str, path: str, *, params: dict | None = None, **kwargs) -> dict:
        """An API call with the access token; a stale token is renewed and the call made again once."""
        for attempt in (0, 1):
            token = await self.token()
            if self._query[0] != token:  # the token's query string, built once per token
                self._query = (token, f"?access_token={quote(token, safe='')}")
            query = self._query[1]
            if "json" in kwargs:
                kwargs["data"] = JSON_ENCODER.encode(kwargs.pop("json")).encode()
                kwargs["headers"] = JSON_HEADERS
            sent = kwargs
            if callable(kwargs.get("data")):  # a multipart form is consumed by one request: a new one each try
                sent = {**kwargs, "data": kwargs["data"]()}
            body = await self._request(method, path, params=params, query=query, **sent)
            errcode = body.get("errcode", 0)
            if errcode in STALE_TOKEN and attempt == 0:
                self._forget(token)
                continue
            if errcode:
                raise classify(errcode, str(body.get("errmsg", "")))
            return body
        raise AssertionError("unreachable")

    # -- sending --

    async def _message(self, address: str, msgtype: str, content: dict, progress: _Progress | None = None) -> dict:
        """One ``message/send``; with ``progress``, skipped when an earlier try of the same message
        had it accepted already (see :class:`_Progress`)."""
        if progress is not None and progress.skip():
            return {}
        body = await self.call(
            "POST",
            "/cgi-bin/message/send",
            json={"touser": address, "msgtype": msgtype, "agentid": self.agent_id, msgtype: content},
        )
        if body.get("invaliduser"):  # accepted, but not for this member (left, or outside the visible range)
            raise SendError("chat_not_found", retryable=False, detail="invaliduser")
        if progress is not None:
            progress.accepted()
        return body

    async def _text(self, address: str, text: str, progress: _Progress | None = None) -> str:
        msgid = ""
        for part in split_text(text):
            msgid = str((await self._message(address, "text", {"content": part}, progress)).get("msgid", ""))
        return msgid

    def _progress(self, message: Outgoing) -> _Progress:
        """Where a message of several calls (a long text's parts, a card's overflow text and its
        cards, a card's update and the text after it) stands: a retry after a refusal half-way
        (45009, busy) sends only what was not accepted."""
        if message.key:  # the outbox row: its retries, and only they, share it
            return _Progress(self._partial, f"{message.address}\x1f{message.key}")
        digest = hashlib.sha1(repr((message.address, message.text, message.buttons, message.edit_message_id)).encode())
        for data in (message.photo, message.document):  # the bytes themselves, never their repr
            digest.update(b"\x1f" + (data if data is not None else b""))
        return _Progress(self._partial, digest.hexdigest())

    async def send(self, message: Outgoing) -> str:
        if message.poll is not None:
            raise SendError("unsupported", retryable=False, detail="WeCom application messages carry no polls")
        if message.edit_message_id:
            return await self._edit(message)
        address = message.address
        if not message.buttons and message.photo is None and message.document is None and not message.text.strip():
            raise SendError("bad_request", retryable=False, detail="empty text")
        progress = self._progress(message)
        if message.photo is not None or message.document is not None:
            if message.text.strip():
                await self._text(address, message.text, progress)
            kind = "image" if message.photo is not None else "file"
            data = message.photo if message.photo is not None else message.document
            name = message.photo_name if message.photo is not None else message.document_name
            media_id = await self.upload(kind, data or b"", name)
            sent = await self._message(address, kind, {"media_id": media_id}, progress)
            return progress.done(str(sent.get("msgid", "")))
        if message.buttons:
            buttons = tuple(b for row in message.buttons for b in row)
            task_id = progress.task_id or task_id_for(address, message.text, self.now())
            progress.task_id = task_id  # a retry sends the cards not accepted yet under the same id
            card, overflow = card_for(message.text, buttons, task_id)
            if overflow:
                await self._text(address, overflow, progress)
            await self._message(address, "template_card", card, progress)
            title = card["main_title"].get("title") or _cut(buttons[0].label, TITLE_CHARS)
            faces = button_faces(buttons)
            for n, start in enumerate(range(MAX_BUTTONS, len(buttons), MAX_BUTTONS), 1):  # past 6: more cards
                at = slice(start, start + MAX_BUTTONS)
                more, _ = card_for(title, buttons[at], f"{task_id}-{n}", faces[at])
                await self._message(address, "template_card", more, progress)
            return progress.done(task_id)
        return progress.done(await self._text(address, message.text, progress))

    async def _edit(self, message: Outgoing) -> str:
        """Update a card after a press (``update_template_card``), or say it anew without a code.
        Buttons past the card's six follow as further cards; the text the card cannot hold follows
        as text. A retry after a refusal half-way does not update the card twice (its code is used)."""
        task_id = message.edit_message_id or ""
        progress = self._progress(message)
        code = None if progress.started else await self.codes.take(task_id, message.address, self.now())
        buttons = tuple(b for row in message.buttons for b in row)
        if code is not None or progress.started:
            if buttons:
                card, overflow = card_for(message.text, buttons, task_id)
            else:
                overflow = message.text
                first = message.text.strip().partition("\n")[0]
            if not progress.skip():  # the update: the first call of the answer
                payload: dict = {"userids": [message.address], "agentid": self.agent_id, "response_code": code}
                if buttons:
                    payload["template_card"] = card
                else:
                    payload["button"] = {"replace_name": _cut(first, REPLACE_CHARS) or "✓"}
                try:
                    await self.call("POST", "/cgi-bin/message/update_template_card", json=payload)
                except SendError as exc:
                    if exc.retryable:  # 45009, busy, a timeout: the retry needs the code again
                        await self.codes.remember(task_id, message.address, code or "", self.now())
                    if exc.kind != "bad_request":
                        raise
                    log.info("update_template_card refused (%s); sending anew", exc.detail)
                    return await self.send(replace(message, edit_message_id=None))
                progress.accepted()
            if overflow.strip():  # the greyed-out button or the card cannot say it all
                await self._text(message.address, overflow, progress)
            if len(buttons) > MAX_BUTTONS:  # the card holds six: the rest as further cards, new ids
                group = progress.task_id or task_id_for(message.address, message.text, self.now())
                progress.task_id = group
                title = card["main_title"].get("title") or _cut(buttons[0].label, TITLE_CHARS)
                faces = button_faces(buttons)
                for n, at in enumerate(range(MAX_BUTTONS, len(buttons), MAX_BUTTONS), 1):
                    part = slice(at, at + MAX_BUTTONS)
                    more, _ = card_for(title, buttons[part], f"{group}-{n}", faces[part])
                    await self._message(message.address, "template_card", more, progress)
            return progress.done(task_id)
        return await self.send(replace(message, edit_message_id=None))

    async def upload(self, kind: str, data: bytes, filename: str) -> str:
        def form() -> aiohttp.FormData:
            made = aiohttp.FormData()
            made.add_field("media", data, filename=filename, content_type="application/octet-stream")
            return made

        body = await self.call("POST", "/cgi-bin/media/upload", params={"type": kind}, data=form)
        media_id = body.get("media_id")
        if not isinstance(media_id, str) or not media_id:
            raise SendError("bad_response", retryable=True, detail="upload without media_id")
        return media_id

    async def fetch_file(self, file_id: str) -> bytes:
        """A member's image (``media/get``; a media id is valid three days)."""
        media_id = file_id.removeprefix(FILE_PREFIX)
        body = await self.call("GET", "/cgi-bin/media/get", params={"media_id": media_id})
        data = body.get("_bytes")
        if not isinstance(data, bytes):
            raise SendError("bad_response", retryable=True, detail="media/get returned no file")
        return data

    async def userid_by_mobile(self, mobile: str) -> str | None:
        """The member with this mobile number (contacts API ``user/getuserid``), None if there is
        none; SendError when the application may not read the contacts. A mainland number goes
        without its +86, as the contacts hold it."""
        number = mobile[3:] if mobile.startswith("+86") else mobile
        try:
            body = await self.call("POST", "/cgi-bin/user/getuserid", json={"mobile": number})
        except SendError as exc:
            if exc.detail.startswith(f"errcode {NO_SUCH_USER}:"):
                return None
            raise
        userid = body.get("userid")
        return userid if isinstance(userid, str) and 0 < len(userid) <= 64 else None

    # -- receiving --

    async def remember_press(self, task_id: str, userid: str, response_code: str) -> None:
        await self.codes.remember(task_id, userid, response_code, self.now())

    def open_callback(self, query, body: bytes) -> str:
        """The decrypted XML of a POSTed callback; WecomCryptoError / ValueError if it is not genuine."""
        timestamp = query.get("timestamp", "")
        if not timestamp.isdigit() or abs(int(timestamp) - self.now()) > MAX_SKEW:
            raise WecomCryptoError("timestamp")
        outer = _xml(body)
        encrypt = _field(outer, "Encrypt") or ""
        return self.crypto.verify(query.get("msg_signature", ""), timestamp, query.get("nonce", ""), encrypt)

    async def verify_url(self, request: web.Request) -> web.Response:
        q = request.query
        try:
            echo = self.crypto.verify(
                q.get("msg_signature", ""), q.get("timestamp", ""), q.get("nonce", ""), q.get("echostr", "")
            )
        except WecomCryptoError as exc:
            log.warning("wecom URL verification from %s refused (%s)", request.remote, exc)
            raise web.HTTPForbidden() from None
        return web.Response(text=echo)

    async def callback(self, request: web.Request) -> web.Response:
        body = await read_limited(request, MAX_BODY)
        try:
            plain = self.open_callback(request.query, body)
        except (WecomCryptoError, ValueError) as exc:
            log.warning("wecom callback from %s refused (%s)", request.remote, exc)
            raise web.HTTPForbidden() from None
        try:
            event = normalise(_xml(plain.encode()), self.corp_id, self.agent_id)
        except OtherApplication:
            log.warning("wecom callback: genuine but for another application (its AgentID), ignored")
            return web.Response(text="")
        except ValueError:
            log.warning("wecom callback: genuine but malformed, refused")
            raise web.HTTPBadRequest() from None
        if event is None:
            return web.Response(text="")
        if event.external_id in self._seen:
            log.warning("wecom callback: replay of %s refused", event.external_id)
            raise web.HTTPForbidden()
        if self.on_event is None:
            raise web.HTTPServiceUnavailable()
        try:
            if event.kind == EventKind.BUTTON and event.callback_id:  # kept before the event is stored
                await self.remember_press(event.message_id, event.sender, event.callback_id)
            await self.on_event(event)
        except Exception as exc:
            not_stored(log, exc, "wecom callback: event %s not stored, answered 503", event.external_id)
            raise web.HTTPServiceUnavailable() from None
        self._seen[event.external_id] = None
        while len(self._seen) > MAX_SEEN:
            self._seen.popitem(last=False)
        return web.Response(text="")  # an empty answer: no passive reply (ours go through the outbox)

    def routes(self) -> list[web.RouteDef]:
        return [web.get(CALLBACK_PATH, self.verify_url), web.post(CALLBACK_PATH, self.callback)]


async def _read_limited(resp: aiohttp.ClientResponse, limit: int, *, medium: bool) -> bytes:
    """An answer's body, read no further than ``limit`` bytes (whatever the server sends, a
    download never takes more memory than the largest medium). Past it: a medium larger than
    WeCom's largest is permanent (``too_long``); an API answer that large is no answer of WeCom's
    (a proxy's page), tried again later (``bad_response``)."""

    def too_large(size: int) -> SendError:
        if medium:
            return SendError("too_long", retryable=False, detail=f"medium of {size} bytes or more")
        return SendError("bad_response", retryable=True, detail=f"answer of {size} bytes or more")

    if resp.content_length is not None and resp.content_length > limit:
        raise too_large(resp.content_length)
    chunks: list[bytes] = []
    size = 0
    while chunk := await resp.content.read(limit + 1 - size):
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            raise too_large(size)
    return b"".join(chunks)


def _xml(data: bytes) -> ET.Element:
    """Parse a callback's XML. WeCom sends UTF-8 and nothing else: anything that is not UTF-8
    (UTF-16 or -32, with or without a BOM), a NUL, or a DOCTYPE (entities) is refused before a
    parser sees it — the check is on the decoded text, so no other encoding spells one past it."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("not UTF-8") from None
    upper = text.upper()
    if "\x00" in text or "<!DOCTYPE" in upper or "<!ENTITY" in upper:
        raise ValueError("DOCTYPE, entity or NUL not allowed")
    try:
        return ET.fromstring(text)  # a str: expat reads it as UTF-8 whatever its declaration says
    except ET.ParseError as exc:
        raise ValueError("not XML") from exc


def _field(root: ET.Element, name: str) -> str | None:
    """The text of ``root``'s one ``name`` element (None if absent). Twice, or with elements
    inside, is ValueError: a callback that could be read two ways is refused whole."""
    found = root.findall(name)
    if len(found) > 1 or (found and len(found[0])):
        raise ValueError(f"{name} repeated or nested")
    return (found[0].text or "") if found else None


def _coordinate(text: str | None, limit: float) -> float:
    value = float(text or "")  # ValueError: 400
    if value != value or abs(value) > limit:  # NaN, inf, off the globe
        raise ValueError("coordinate out of range")
    return value


class OtherApplication(ValueError):
    """A genuine callback for another application of the corp (its AgentID is not ours)."""


def normalise(root: ET.Element, corp_id: str, agent_id: int) -> InboundEvent | None:
    """One decrypted callback as our event (None for kinds we do not handle). ``sender`` and
    ``user`` are the member's userid, ``chat_type`` ``private``: an application chat is one to one.
    ValueError (400) when it is malformed; :class:`OtherApplication` when it is not ours."""
    user = identifier(_field(root, "FromUserName") or "", "FromUserName", 64)  # ValueError: 400
    if (_field(root, "ToUserName") or "").strip() != corp_id:
        raise ValueError("ToUserName")
    if (_field(root, "AgentID") or "").strip() != str(agent_id):
        raise OtherApplication("AgentID")
    msgtype = _field(root, "MsgType") or ""
    created = (_field(root, "CreateTime") or "").strip()
    if not created.isascii() or not created.isdigit() or len(created) > 12:  # events are keyed by it
        raise ValueError("CreateTime")
    common = dict(channel="wecom", sender=user, user=user, chat_type="private", raw={"msgtype": msgtype})
    msg_id = (_field(root, "MsgId") or "").strip()
    if msgtype != "event":
        msg_id = identifier(msg_id, "MsgId", 64)
        key = f"msg:{msg_id}"
        if msgtype == "text":
            text = _field(root, "Content") or ""
            typed = inputs.command(text)  # a Chinese keyboard's ／ and ideographic space too
            if typed is not None:
                return InboundEvent(
                    external_id=key,
                    kind=EventKind.COMMAND,
                    command=typed[0],
                    argument=typed[1],
                    text=text,
                    message_id=msg_id,
                    **common,
                )
            return InboundEvent(external_id=key, kind=EventKind.TEXT, text=text, message_id=msg_id, **common)
        if msgtype == "location":
            lat = _coordinate(_field(root, "Location_X"), 90.0)
            lon = _coordinate(_field(root, "Location_Y"), 180.0)
            return InboundEvent(
                external_id=key, kind=EventKind.LOCATION, latitude=lat, longitude=lon, message_id=msg_id, **common
            )
        if msgtype == "image":
            media_id = identifier(_field(root, "MediaId") or "", "MediaId", MEDIA_ID_CHARS)
            return InboundEvent(
                external_id=key, kind=EventKind.PHOTO, file_id=FILE_PREFIX + media_id, message_id=msg_id, **common
            )
        return None
    event = (_field(root, "Event") or "").strip()
    # Events have no MsgId: the member, the time and what happened name one (a retry repeats them).
    if event == "template_card_event":
        # Lengths as our columns hold them (wecom_response_code): longer is refused whole (400),
        # never left for PostgreSQL to refuse on every retry (503) while SQLite stores it.
        task_id = identifier(_field(root, "TaskId") or "", "TaskId", TASK_ID_CHARS)
        key_value = _field(root, "EventKey") or ""
        code = (_field(root, "ResponseCode") or "").strip()
        if code:
            code = identifier(code, "ResponseCode", TASK_ID_CHARS)
        digest = hashlib.sha1(f"{user}\x1f{created}\x1f{task_id}\x1f{key_value}\x1f{code}".encode()).hexdigest()
        return InboundEvent(
            external_id=f"card:{digest[:40]}",
            kind=EventKind.BUTTON,
            data=key_value,
            message_id=task_id,
            callback_id=code,
            **common,
        )
    if event in ("enter_agent", "subscribe"):
        digest = hashlib.sha1(f"{user}\x1f{created}\x1f{event}".encode()).hexdigest()
        # opening the application is our /start without a code: help for a member we know, else a refusal
        return InboundEvent(
            external_id=f"{event}:{digest[:40]}", kind=EventKind.COMMAND, command="start", opened=True, **common
        )
    return None  # LOCATION reports (not a check-in), unsubscribe, menu clicks: nothing to do
