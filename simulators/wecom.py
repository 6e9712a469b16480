"""A WeCom (企业微信) self-built application stand-in: the server API checked, callbacks sent.

Written from WeCom's published server API documentation (docs/messaging.md lists the pages). The
real adapter (``bot/channels/wecom.py``) runs against it unchanged: only ``WECOM_API_URL``
differs. It answers like WeCom — HTTP 200 with ``{"errcode", "errmsg", …}`` — and checks:

- ``GET /cgi-bin/gettoken``: corpid (40013) and corpsecret (40001); the token is valid
  ``token_ttl`` seconds (7200) and the same token is returned while it is valid;
- every other call: ``access_token`` missing (41001), unknown (40014) or expired (42001);
- ``POST /cgi-bin/message/send``: a JSON object (47001), no unknown field (40058, stricter than
  WeCom), ``agentid`` ours (40056), ``touser`` 1-1000 ``|``-separated userids (40031 when over),
  ``msgtype`` text / image / file / template_card (40008); text content 1-2048 bytes (44004 empty,
  45002 longer — WeCom truncates silently, we refuse so a test sees it); a known, unexpired
  ``media_id`` (40007); a ``template_card`` of type ``button_interaction`` laid out as documented
  (``task_id`` 1-128 of ``[A-Za-z0-9_-@]``, unused in the app; ``main_title.title`` ≤ 36 and
  ``desc`` ≤ 44 characters; ``sub_title_text`` ≤ 160; one of the two present; a
  ``horizontal_content_list`` of at most 6 plain items, ``keyname`` 1-5 and ``value`` ≤ 30
  characters; 1-6 buttons, each text 1-10 characters, ``style`` 1-4, ``key`` 1-1024 bytes and
  unique; ``replace_text`` ≤ 16), else
  40058 with the reason in ``errmsg``. Unknown members are returned in ``invaliduser``
  (lower-cased, as WeCom returns userids); when every recipient is invalid, 81013;
- userids without regard to case, as WeCom compares them (user/create: "系统进行唯一性检查时会忽略
  大小写"): a member is found by any spelling of their userid (``touser``, ``userids``, the
  ``/_sim`` routes, :meth:`WecomSimulator.member`), keeps the spelling they were first given, and
  their callbacks carry it in ``FromUserName``; each message they receive records its ``touser``;
- the published sending limits: per member at most 30 messages a minute and 1000 an hour from one
  application (45009 past them), and the application's own ``app_per_minute`` (default 10,000
  calls a minute, the per-CGI limit of a corp) — each counted where the simulator accepted it;
- ``POST /cgi-bin/message/update_template_card``: a ``response_code`` issued by a button event,
  unused and at most 72 h old (40058 else), ``userids`` naming the member who pressed, and either
  ``button.replace_name`` (1-16 characters) or a full ``template_card`` with the same ``task_id``;
- ``POST /cgi-bin/media/upload?type=image|file`` (multipart ``media``): an image a JPEG or PNG of at
  most 10 MB (40005/40006), a file at most 20 MB; ``media_id`` valid 3 days;
- ``GET /cgi-bin/media/get``: the bytes of an uploaded or member-sent medium, else 40007.

Faults for the next calls, in order: ``sim.inject(errcode)`` for any WeCom errcode (``-1`` busy,
``45009`` rate limit, ``42001`` expired token — which also expires the current token, as WeCom
would, ``40014``, ``60020`` IP not allowed, …), ``"timeout"`` (held until the client gives up),
``"disconnect"``, ``"html"`` (HTTP 200 with a proxy's HTML error page instead of WeCom's answer)
and ``"huge"`` (HTTP 200 with 4 MiB of blanks before a JSON answer). A member acts with :meth:`WecomSimulator.text`, :meth:`press`,
:meth:`location`, :meth:`image`, :meth:`enter`: the simulator builds the callback XML, encrypts
and signs it (``core.wecom_crypto``, the scheme tested against WeCom's sample values), POSTs it to
the callback URL and returns the HTTP status. :meth:`redeliver` repeats a callback byte for byte
(WeCom's retry). ``GET /`` shows every member's conversation; ``/_sim/*`` is its JSON API.
"""

from __future__ import annotations

import asyncio
import html
import itertools
import json
import re
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import escape

import aiohttp
from aiohttp import web

from core.wecom_crypto import WecomCrypto
from domain.wecom import fold_userid as fold

DEV_CORP_ID = "ww0000000000000000"
DEV_SECRET = "simulator-corp-secret"
DEV_AGENT_ID = 1000002
DEV_TOKEN = "simulatorToken"
DEV_AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
TOKEN_TTL = 7200
MEDIA_TTL = 3 * 86400
RESPONSE_CODE_TTL = 72 * 3600
TEXT_BYTES = 2048
TASK_ID = re.compile(r"^[A-Za-z0-9_\-@]{1,128}$")
PER_MEMBER = ((60.0, 30), (3600.0, 1000))  # (window seconds, messages) per member and application
ERRMSG = {
    -1: "system busy",
    40001: "invalid credential",
    40003: "invalid userid",
    40005: "invalid file type",
    40006: "invalid file size",
    40007: "invalid media_id",
    40008: "invalid message type",
    40013: "invalid corpid",
    40014: "invalid access_token",
    40031: "invalid user list",
    40056: "invalid agentid",
    40058: "invalid parameter",
    41001: "access_token missing",
    42001: "access_token expired",
    44004: "empty content",
    45002: "content size out of limit",
    45009: "api freq out of limit",
    46004: "user no exist",
    47001: "data format error",
    48002: "api forbidden",
    60011: "no privilege to access/modify contact/party/agent",
    60020: "not allow to access from your ip",
    81013: "user & party & tag all invalid",
}
TRANSPORT_FAULTS = ("timeout", "disconnect", "html", "huge")
SEND_FIELDS = frozenset(
    {
        "touser",
        "toparty",
        "totag",
        "msgtype",
        "agentid",
        "text",
        "image",
        "file",
        "template_card",
        "safe",
        "enable_id_trans",
        "enable_duplicate_check",
        "duplicate_check_interval",
    }
)
CARD_FIELDS = frozenset(
    {
        "card_type",
        "source",
        "main_title",
        "sub_title_text",
        "horizontal_content_list",
        "task_id",
        "button_list",
        "replace_text",
        "button_selection",
        "action_menu",
        "card_action",
        "quote_area",
    }
)


class WecomError(Exception):
    def __init__(self, errcode: int, detail: str = "") -> None:
        super().__init__(detail or ERRMSG.get(errcode, "error"))
        self.errcode = errcode
        self.detail = detail

    def response(self) -> web.Response:
        msg = ERRMSG.get(self.errcode, "error") + (f", {self.detail}" if self.detail else "")
        return web.json_response({"errcode": self.errcode, "errmsg": msg})


@dataclass
class Member:
    userid: str
    name: str = ""
    state: str = "ok"  # ok | invalid (left the corp, or outside the app's visible range)
    mobile: str = ""  # as the contacts hold it (mainland numbers without +86); user/getuserid finds it
    received: list[dict] = field(default_factory=list)  # what the application sent them
    sent: list[dict] = field(default_factory=list)  # what they did (text, button, location, image, enter)
    _sends: deque[float] = field(default_factory=deque, repr=False)

    def texts(self) -> list[str]:
        return [m["text"] for m in self.received if m.get("text")]

    def cards(self) -> list[dict]:
        return [m for m in self.received if m["msgtype"] == "template_card"]


@dataclass
class Callback:
    """One callback POSTed to the service, kept so it can be delivered again byte for byte."""

    query: dict[str, str]
    body: bytes
    status: int = 0


def _card_problem(card: Any) -> str:
    """Why ``card`` breaks the documented button_interaction layout ("" if it does not)."""
    if not isinstance(card, dict):
        return "template_card must be an object"
    unknown = set(card) - CARD_FIELDS
    if unknown:
        return f"unknown template_card field {sorted(unknown)[0]}"
    if card.get("card_type") != "button_interaction":
        return "card_type must be button_interaction"
    task_id = card.get("task_id")
    if not isinstance(task_id, str) or not TASK_ID.match(task_id):
        return "task_id must be 1-128 of letters, digits, _-@"
    main = card.get("main_title", {})
    if not isinstance(main, dict):
        return "main_title must be an object"
    title, desc = main.get("title", ""), main.get("desc", "")
    if not isinstance(title, str) or not isinstance(desc, str) or len(title) > 36 or len(desc) > 44:
        return "main_title.title at most 36, desc at most 44 characters"
    sub = card.get("sub_title_text", "")
    if not isinstance(sub, str) or len(sub) > 160:
        return "sub_title_text at most 160 characters"
    if not title and not sub:
        return "main_title.title or sub_title_text required"
    buttons = card.get("button_list")
    if not isinstance(buttons, list) or not 1 <= len(buttons) <= 6:
        return "button_list must hold 1-6 buttons"
    keys = set()
    for b in buttons:
        if not isinstance(b, dict) or set(b) - {"text", "style", "key"}:
            return "a button is {text, style, key}"
        text, key, style = b.get("text"), b.get("key"), b.get("style", 1)
        if not isinstance(text, str) or not 1 <= len(text) <= 10:
            return "button text 1-10 characters"
        if type(style) is not int or not 1 <= style <= 4:
            return "button style 1-4"
        if not isinstance(key, str) or not 1 <= len(key.encode()) <= 1024 or key in keys:
            return "button key 1-1024 bytes, unique"
        keys.add(key)
    listed = card.get("horizontal_content_list", [])
    if not isinstance(listed, list) or len(listed) > 6:
        return "horizontal_content_list at most 6 items"
    for item in listed:
        if not isinstance(item, dict) or set(item) - {"type", "keyname", "value"} or item.get("type", 0) != 0:
            return "a horizontal_content_list item is {keyname, value} (type 0: plain text)"
        keyname, value = item.get("keyname"), item.get("value", "")
        if not isinstance(keyname, str) or not 1 <= len(keyname) <= 5:
            return "horizontal_content_list keyname 1-5 characters"
        if not isinstance(value, str) or len(value) > 30:
            return "horizontal_content_list value at most 30 characters"
    replace = card.get("replace_text", "")
    if not isinstance(replace, str) or len(replace) > 16:
        return "replace_text at most 16 characters"
    return ""


def card_text(card: dict) -> str:
    """A card as its member reads it: the title, its description, the sub-title, then the listed lines."""
    main = card.get("main_title", {})
    lines = [main.get("title"), main.get("desc"), card.get("sub_title_text")]
    lines += [f"{item['keyname']} {item.get('value', '')}".strip() for item in card.get("horizontal_content_list", ())]
    return "\n".join(x for x in lines if x)


def image_type(data: bytes) -> str:
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    return ""


class WecomSimulator:
    """The simulator's state and its aiohttp application (see the module docstring)."""

    def __init__(
        self,
        *,
        corp_id: str = DEV_CORP_ID,
        corp_secret: str = DEV_SECRET,
        agent_id: int = DEV_AGENT_ID,
        token: str = DEV_TOKEN,
        encoding_aes_key: str = DEV_AES_KEY,
        callback_url: str = "",
        members: tuple[str, ...] = (),
        token_ttl: float = TOKEN_TTL,
        app_per_minute: int = 10_000,
        per_member: tuple[tuple[float, int], ...] = PER_MEMBER,
        enforce_limits: bool = True,
        timeout_delay: float = 30.0,
        now: Callable[[], float] = time.monotonic,
        contacts_api: bool = True,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.corp_id = corp_id
        self.contacts_api = contacts_api  # False: the application may not read the contacts (48002)
        self._secret = corp_secret
        self.agent_id = agent_id
        self.crypto = WecomCrypto(token, encoding_aes_key, corp_id)
        self.callback_url = callback_url
        self.token_ttl = token_ttl
        self.app_per_minute = app_per_minute
        self.per_member = per_member
        self.enforce_limits = enforce_limits
        self.timeout_delay = timeout_delay
        self.now = now
        self.wall = wall  # the time a message is stamped with (epoch seconds): a demo's clock, when it has one
        # keyed by the folded userid: WeCom ignores case when it compares userids ("系统进行唯一性检查时
        # 会忽略大小写"); a member keeps the spelling they were first given, and callbacks carry it
        self.members: dict[str, Member] = {fold(u): Member(u) for u in members}
        self.open_directory = not members  # no member list given: every userid is a member
        self.tokens: dict[str, float] = {}  # token -> expires at
        self._current = ""
        self.media: dict[str, tuple[bytes, str, str, float]] = {}  # id -> (data, type, filename, expires)
        self.response_codes: dict[str, tuple[str, str, float]] = {}  # code -> (userid, task_id, expires)
        self.task_ids: set[str] = set()
        self.callbacks: list[Callback] = []
        self.calls: dict[str, int] = {}  # path -> requests seen (any outcome)
        self.limit_errors = 0  # 45009 answered for the sending limits (not injected ones)
        self._app_sends: deque[float] = deque()
        self._faults: deque[int | str] = deque()
        self._ids = itertools.count(1)
        self._session: aiohttp.ClientSession | None = None
        self._runner: web.AppRunner | None = None
        self._stopping = asyncio.Event()
        self.url = ""

    def __repr__(self) -> str:  # never the secret
        return f"WecomSimulator({self.corp_id!r}, url={self.url!r})"

    # -- control (tests, the demo) --

    def member(self, userid: str) -> Member:
        """The member ``userid`` names, in any case (made on first mention, spelt as given then)."""
        key = fold(userid)
        if key not in self.members:
            self.members[key] = Member(userid)
        return self.members[key]

    def inject(self, fault: int | str, count: int = 1) -> None:
        """The next ``count`` API calls (other than gettoken) fail with ``fault``."""
        if not isinstance(fault, int) and fault not in TRANSPORT_FAULTS:
            raise ValueError(f"fault must be a WeCom errcode or one of {TRANSPORT_FAULTS}")
        self._faults.extend([fault] * count)

    def clear_faults(self) -> None:
        self._faults.clear()

    def expire_tokens(self) -> None:
        """Every token issued so far is expired (42001 from now on)."""
        for t in self.tokens:
            self.tokens[t] = min(self.tokens[t], self.now() - 1)
        self._current = ""

    # -- members act: encrypted callbacks to the service --

    async def text(self, userid: str, content: str) -> int:
        return await self._message(userid, "text", f"<Content>{_cdata(content)}</Content>", {"text": content})

    async def location(self, userid: str, lat: float, lon: float, label: str = "") -> int:
        xml = (
            f"<Location_X>{lat}</Location_X><Location_Y>{lon}</Location_Y><Scale>15</Scale>"
            f"<Label>{_cdata(label)}</Label><AppType><![CDATA[wxwork]]></AppType>"
        )
        return await self._message(userid, "location", xml, {"location": [lat, lon]})

    async def image(self, userid: str, data: bytes) -> int:
        media_id = self._store_media(data, "image", "photo.jpg")
        pic = f"{self.url}/_sim/media/{media_id}"
        xml = f"<PicUrl>{_cdata(pic)}</PicUrl><MediaId>{_cdata(media_id)}</MediaId>"
        return await self._message(userid, "image", xml, {"image": media_id})

    async def press(self, userid: str, task_id: str, key: str) -> int:
        code = secrets.token_hex(16)
        self.response_codes[code] = (userid, task_id, self.now() + RESPONSE_CODE_TTL)
        xml = (
            f"<Event><![CDATA[template_card_event]]></Event><EventKey>{_cdata(key)}</EventKey>"
            f"<TaskId>{_cdata(task_id)}</TaskId><CardType><![CDATA[button_interaction]]></CardType>"
            f"<ResponseCode>{_cdata(code)}</ResponseCode>"
        )
        return await self._event(userid, xml, {"press": key, "task_id": task_id})

    async def enter(self, userid: str, event: str = "enter_agent") -> int:
        """The member opens the application (``enter_agent``) or follows it (``subscribe``)."""
        xml = f"<Event>{_cdata(event)}</Event><EventKey><![CDATA[]]></EventKey>"
        return await self._event(userid, xml, {"event": event})

    async def verify_url(self, echo: str = "") -> tuple[int, str]:
        """URL verification as WeCom does it when the callback URL is saved: GET with ``echostr``."""
        echo = echo or str(secrets.randbelow(10**19))
        timestamp, nonce = str(int(time.time())), str(secrets.randbelow(10**10))
        encrypt, signature = self.crypto.seal(echo, timestamp, nonce)
        query = {"msg_signature": signature, "timestamp": timestamp, "nonce": nonce, "echostr": encrypt}
        async with self._client().get(self.callback_url, params=query) as resp:
            return resp.status, await resp.text()

    async def redeliver(self, callback: Callback | None = None) -> int:
        """Post a callback again exactly as before (WeCom retries one not answered in 5 s)."""
        callback = callback or self.callbacks[-1]
        callback.status = await self._post(callback.query, callback.body)
        return callback.status

    async def _message(self, userid: str, msgtype: str, inner: str, record: dict) -> int:
        msg_id = str(7_000_000_000_000_000_000 + next(self._ids))
        xml = f"<MsgType>{_cdata(msgtype)}</MsgType>{inner}<MsgId>{msg_id}</MsgId>"
        return await self._deliver(userid, xml, record)

    async def _event(self, userid: str, inner: str, record: dict) -> int:
        return await self._deliver(userid, f"<MsgType><![CDATA[event]]></MsgType>{inner}", record)

    async def _deliver(self, userid: str, inner: str, record: dict) -> int:
        userid = self.member(userid).userid  # FromUserName is the member's own spelling, however the test typed it
        created = int(time.time()) + next(self._ids)  # distinct CreateTime: events are keyed by it
        plain = (
            f"<xml><ToUserName>{_cdata(self.corp_id)}</ToUserName><FromUserName>{_cdata(userid)}</FromUserName>"
            f"<CreateTime>{created}</CreateTime>{inner}<AgentID>{self.agent_id}</AgentID></xml>"
        )
        timestamp, nonce = str(int(time.time())), str(secrets.randbelow(10**10))
        encrypt, signature = self.crypto.seal(plain, timestamp, nonce)
        body = (
            f"<xml><ToUserName>{_cdata(self.corp_id)}</ToUserName><Encrypt>{_cdata(encrypt)}</Encrypt>"
            f"<AgentID>{_cdata(str(self.agent_id))}</AgentID></xml>"
        ).encode()
        query = {"msg_signature": signature, "timestamp": timestamp, "nonce": nonce}
        callback = Callback(query, body)
        self.callbacks.append(callback)
        self.member(userid).sent.append({**record, "seq": next(self._ids), "at": int(self.wall())})
        callback.status = await self._post(query, body)
        return callback.status

    async def _post(self, query: dict[str, str], body: bytes) -> int:
        if not self.callback_url:
            raise RuntimeError("no callback_url configured")
        try:
            async with self._client().post(self.callback_url, params=query, data=body) as resp:
                await resp.read()
                return resp.status
        except aiohttp.ClientError:
            return 0

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        return self._session

    # -- lifecycle --

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, host, port).start()
        self.url = f"http://{host}:{self._runner.addresses[0][1]}"
        return self.url

    async def stop(self) -> None:
        self._stopping.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> WecomSimulator:
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    def app(self) -> web.Application:
        app = web.Application(client_max_size=32 << 20)
        app.router.add_get("/cgi-bin/gettoken", self._gettoken)
        app.router.add_post("/cgi-bin/message/send", self._api(self._send))
        app.router.add_post("/cgi-bin/message/update_template_card", self._api(self._update_card))
        app.router.add_post("/cgi-bin/media/upload", self._api(self._upload))
        app.router.add_get("/cgi-bin/media/get", self._api(self._media_get))
        app.router.add_post("/cgi-bin/user/getuserid", self._api(self._getuserid))
        app.router.add_get("/", self._page)
        app.router.add_get("/_sim/members", self._sim_members)
        app.router.add_get("/_sim/members/{userid}", self._sim_member)
        app.router.add_post("/_sim/members/{userid}/text", self._sim_text)
        app.router.add_post("/_sim/members/{userid}/press", self._sim_press)
        app.router.add_post("/_sim/members/{userid}/location", self._sim_location)
        app.router.add_post("/_sim/members/{userid}/enter", self._sim_enter)
        app.router.add_get("/_sim/media/{media_id}", self._sim_media)
        app.router.add_get("/_sim/stats", self._sim_stats)
        app.router.add_post("/_sim/reset", self._sim_reset)
        return app

    # -- the API --

    async def _gettoken(self, request: web.Request) -> web.Response:
        self.calls["gettoken"] = self.calls.get("gettoken", 0) + 1
        q = request.query
        if q.get("corpid") != self.corp_id:
            return WecomError(40013).response()
        if not secrets.compare_digest(q.get("corpsecret", "").encode(), self._secret.encode()):
            return WecomError(40001).response()
        now = self.now()
        if not self._current or self.tokens.get(self._current, 0) <= now:
            self._current = secrets.token_urlsafe(96)  # WeCom: keep room for 512 bytes
            self.tokens[self._current] = now + self.token_ttl
        expires_in = int(self.tokens[self._current] - now)
        return web.json_response(
            {"errcode": 0, "errmsg": "ok", "access_token": self._current, "expires_in": expires_in}
        )

    def _api(self, handler):
        async def wrapped(request: web.Request) -> web.StreamResponse:
            self.calls[request.path] = self.calls.get(request.path, 0) + 1
            try:
                self._check_token(request.query.get("access_token", ""))
                if self._faults:
                    fault = self._faults.popleft()
                    if fault == "timeout":
                        await asyncio.wait_for(self._stopping.wait(), self.timeout_delay)
                        raise WecomError(-1)
                    if fault == "huge":
                        return web.Response(body=b" " * (4 << 20) + b'{"errcode": 0}', content_type="application/json")
                    if fault == "html":
                        return web.Response(
                            text="<html><body><h1>502 Bad Gateway</h1></body></html>", content_type="text/html"
                        )
                    if fault == "disconnect":
                        if request.transport is not None:
                            request.transport.close()
                        raise web.HTTPInternalServerError()
                    assert isinstance(fault, int)
                    if fault == 42001:
                        self.expire_tokens()
                    raise WecomError(fault)
                return await handler(request)
            except WecomError as exc:
                return exc.response()
            except TimeoutError:
                return WecomError(-1).response()

        return wrapped

    def _check_token(self, token: str) -> None:
        if not token:
            raise WecomError(41001)
        expires = self.tokens.get(token)
        if expires is None:
            raise WecomError(40014)
        if expires <= self.now():
            raise WecomError(42001)

    async def _json(self, request: web.Request) -> dict:
        try:
            body = json.loads(await request.read())
        except (ValueError, UnicodeDecodeError):
            raise WecomError(47001) from None
        if not isinstance(body, dict):
            raise WecomError(47001)
        return body

    async def _getuserid(self, request: web.Request) -> web.Response:
        """``user/getuserid``: the userid of the member with this mobile number (46004: none)."""
        if not self.contacts_api:
            raise WecomError(48002)
        body = await self._json(request)
        mobile = body.get("mobile")
        if set(body) != {"mobile"} or not isinstance(mobile, str) or not 0 < len(mobile) <= 32:
            raise WecomError(40058, "mobile")
        for member in self.members.values():
            if member.mobile and member.mobile == mobile and member.state == "ok":
                return web.json_response({"errcode": 0, "errmsg": "ok", "userid": member.userid})
        raise WecomError(46004)

    async def _send(self, request: web.Request) -> web.Response:
        body = await self._json(request)
        unknown = set(body) - SEND_FIELDS
        if unknown:
            raise WecomError(40058, f"unknown field {sorted(unknown)[0]}")
        if body.get("agentid") != self.agent_id or type(body.get("agentid")) is not int:
            raise WecomError(40056)
        touser = body.get("touser")
        if not isinstance(touser, str) or not touser:
            raise WecomError(40031)
        users = touser.split("|")
        if len(users) > 1000:
            raise WecomError(40031, "at most 1000 users")
        msgtype = body.get("msgtype")
        if msgtype not in ("text", "image", "file", "template_card"):
            raise WecomError(40008)
        content = body.get(msgtype)
        if not isinstance(content, dict):
            raise WecomError(40058, f"{msgtype} must be an object")
        record: dict[str, Any] = {"msgtype": msgtype}
        if msgtype == "text":
            text = content.get("content")
            if not isinstance(text, str) or not text.strip():
                raise WecomError(44004)
            if len(text.encode()) > TEXT_BYTES:
                raise WecomError(45002, f"content over {TEXT_BYTES} bytes")
            record["text"] = text
        elif msgtype in ("image", "file"):
            media_id = content.get("media_id")
            medium = self.media.get(media_id) if isinstance(media_id, str) else None
            if medium is None or medium[3] <= self.now():
                raise WecomError(40007)
            record["media_id"] = media_id
        else:
            problem = _card_problem(content)
            if problem:
                raise WecomError(40058, problem)
            if content["task_id"] in self.task_ids:
                raise WecomError(40058, "task_id already used")
            record["card"] = content
            record["text"] = card_text(content)
        valid = [u for u in users if self._is_member(u)]
        invalid = [u for u in users if not self._is_member(u)]
        if not valid:
            raise WecomError(81013)
        self._limit(valid)
        if msgtype == "template_card":
            self.task_ids.add(content["task_id"])
        msgid = secrets.token_urlsafe(24)
        for u in valid:  # "touser": as the application wrote it (a member is found in any case)
            received = {**record, "msgid": msgid, "touser": u, "seq": next(self._ids), "at": int(self.wall())}
            self.member(u).received.append(received)
        # message/send: "返回包中的userid，不区分大小写，统一转为小写" — the invalid ones come back lower-cased
        answer = {"errcode": 0, "errmsg": "ok", "invaliduser": "|".join(fold(u) for u in invalid), "msgid": msgid}
        if msgtype == "template_card":
            answer["response_code"] = secrets.token_hex(16)
        return web.json_response(answer)

    def _is_member(self, userid: str) -> bool:
        if fold(userid) in self.members:
            return self.members[fold(userid)].state == "ok"
        return self.open_directory

    def _limit(self, users: list[str]) -> None:
        """WeCom's published sending limits (module docstring); 45009 past them."""
        if not self.enforce_limits:
            return
        now = self.now()
        while self._app_sends and self._app_sends[0] <= now - 60:
            self._app_sends.popleft()
        if len(self._app_sends) >= self.app_per_minute:
            self.limit_errors += 1
            raise WecomError(45009, "app per-minute limit")
        for u in users:
            sends = self.member(u)._sends
            while sends and sends[0] <= now - max(w for w, _ in self.per_member):
                sends.popleft()
            for window, most in self.per_member:
                if sum(1 for t in sends if t > now - window) >= most:
                    self.limit_errors += 1
                    raise WecomError(45009, f"member limit {most}/{int(window)}s")
        self._app_sends.append(now)
        for u in users:
            self.member(u)._sends.append(now)

    async def _update_card(self, request: web.Request) -> web.Response:
        body = await self._json(request)
        unknown = set(body) - {
            "userids",
            "partyids",
            "tagids",
            "atall",
            "agentid",
            "response_code",
            "button",
            "template_card",
            "enable_id_trans",
            "replace_name",
        }
        if unknown:
            raise WecomError(40058, f"unknown field {sorted(unknown)[0]}")
        if body.get("agentid") != self.agent_id:
            raise WecomError(40056)
        code = body.get("response_code")
        found = self.response_codes.pop(code, None) if isinstance(code, str) else None
        if found is None or found[2] <= self.now():
            raise WecomError(40058, "response_code invalid, used or expired")
        userid, task_id, _ = found
        userids = body.get("userids")
        if not isinstance(userids, list) or fold(userid) not in {fold(u) for u in userids if isinstance(u, str)}:
            raise WecomError(40058, "userids must name the member who pressed")
        record: dict[str, Any] = {"msgtype": "update", "task_id": task_id}
        if "template_card" in body:
            card = body["template_card"]
            problem = _card_problem(card)
            if problem:
                raise WecomError(40058, problem)
            if card["task_id"] != task_id:
                raise WecomError(40058, "task_id differs from the card's")
            record["card"] = card
            record["text"] = card_text(card)
        else:
            button = body.get("button")
            name = button.get("replace_name") if isinstance(button, dict) else None
            if not isinstance(name, str) or not 1 <= len(name) <= 16:
                raise WecomError(40058, "button.replace_name 1-16 characters")
            record["replace_name"] = name
        self.member(userid).received.append({**record, "seq": next(self._ids), "at": int(self.wall())})
        return web.json_response({"errcode": 0, "errmsg": "ok", "invaliduser": []})

    def _store_media(self, data: bytes, kind: str, filename: str) -> str:
        media_id = "3" + secrets.token_urlsafe(40)
        self.media[media_id] = (data, kind, filename, self.now() + MEDIA_TTL)
        return media_id

    async def _upload(self, request: web.Request) -> web.Response:
        kind = request.query.get("type")
        if kind not in ("image", "file", "voice", "video"):
            raise WecomError(40005)
        try:
            reader = await request.multipart()
            part = await reader.next()
        except Exception:
            raise WecomError(47001) from None
        if part is None or getattr(part, "name", "") != "media" or not getattr(part, "filename", ""):
            raise WecomError(47001, "multipart field media with a filename required")
        data = bytes(await part.read())  # type: ignore[union-attr]
        if len(data) < 5:
            raise WecomError(40006)
        if kind == "image" and (not image_type(data) or len(data) > 10 << 20):
            raise WecomError(40005 if not image_type(data) else 40006)
        if len(data) > 20 << 20:
            raise WecomError(40006)
        media_id = self._store_media(data, kind, part.filename or "media")  # type: ignore[union-attr]
        return web.json_response(
            {"errcode": 0, "errmsg": "", "type": kind, "media_id": media_id, "created_at": str(int(time.time()))}
        )

    async def _media_get(self, request: web.Request) -> web.StreamResponse:
        medium = self.media.get(request.query.get("media_id", ""))
        if medium is None or medium[3] <= self.now():
            raise WecomError(40007)
        data, kind, filename, _ = medium
        return web.Response(
            body=data,
            content_type=image_type(data) or "application/octet-stream",
            headers={"Content-disposition": f'attachment; filename="{filename}"'},
        )

    # -- the page and its JSON --

    def _member_json(self, m: Member) -> dict:
        return {"userid": m.userid, "state": m.state, "received": m.received, "sent": m.sent}

    async def _sim_members(self, request: web.Request) -> web.Response:
        return web.json_response({"members": [self._member_json(m) for m in self.members.values()]})

    async def _sim_member(self, request: web.Request) -> web.Response:
        m = self.members.get(fold(request.match_info["userid"]))
        if m is None:
            raise web.HTTPNotFound()
        return web.json_response(self._member_json(m))

    async def _fields(self, request: web.Request) -> dict:
        """A JSON object or a form (the page's buttons post forms)."""
        if request.content_type == "application/json":
            data = await request.json()
            return data if isinstance(data, dict) else {}
        return dict(await request.post())

    def _done(self, request: web.Request, status: int) -> web.Response:
        if request.content_type == "application/json":
            return web.json_response({"status": status})
        raise web.HTTPSeeOther("/")

    async def _sim_text(self, request: web.Request) -> web.Response:
        data = await self._fields(request)
        return self._done(request, await self.text(request.match_info["userid"], str(data.get("text", ""))))

    async def _sim_press(self, request: web.Request) -> web.Response:
        data = await self._fields(request)
        userid = request.match_info["userid"]
        return self._done(request, await self.press(userid, str(data.get("task_id", "")), str(data.get("key", ""))))

    async def _sim_location(self, request: web.Request) -> web.Response:
        data = await self._fields(request)
        try:
            lat, lon = float(data.get("lat", "")), float(data.get("lon", ""))
        except ValueError:
            raise web.HTTPBadRequest(text="lat and lon must be numbers") from None
        return self._done(request, await self.location(request.match_info["userid"], lat, lon))

    async def _sim_enter(self, request: web.Request) -> web.Response:
        return self._done(request, await self.enter(request.match_info["userid"]))

    def stats(self) -> dict:
        """Accepted messages, 45009s answered for the limits, and the most messages accepted in any
        one-second and any one-minute window (from the acceptance times)."""
        times = sorted(t for m in self.members.values() for t in m._sends)
        peak_s = peak_min = 0
        lo = lo_min = 0
        for hi, t in enumerate(times):
            while times[lo] <= t - 1.0:
                lo += 1
            while times[lo_min] <= t - 60.0:
                lo_min += 1
            peak_s, peak_min = max(peak_s, hi - lo + 1), max(peak_min, hi - lo_min + 1)
        return {
            "accepted": sum(len(m.received) for m in self.members.values()),
            "limit_errors": self.limit_errors,
            "peak_per_second": peak_s,
            "peak_per_minute": peak_min,
            "max_per_member_minute": max(
                (
                    max(sum(1 for u in ts if t - 60 < u <= t) for t in ts)
                    for ts in (list(m._sends) for m in self.members.values())
                    if ts
                ),
                default=0,
            ),
            "calls": self.calls,
        }

    async def _sim_stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.stats())

    async def _sim_reset(self, request: web.Request) -> web.Response:
        options = await request.json() if request.can_read_body else {}
        self.members.clear()
        self._app_sends.clear()
        self.limit_errors = 0
        self.calls.clear()
        self.enforce_limits = bool(options.get("enforce_limits", self.enforce_limits))
        return web.json_response({"ok": True})

    async def _sim_media(self, request: web.Request) -> web.Response:
        medium = self.media.get(request.match_info["media_id"])
        if medium is None:
            raise web.HTTPNotFound()
        return web.Response(body=medium[0], content_type=image_type(medium[0]) or "application/octet-stream")

    async def _page(self, request: web.Request) -> web.Response:
        """Every member's conversation with the application, in order; a member can press a card's
        buttons, write, share a location or open the application (loopback use only: no CSRF guard)."""
        esc = html.escape
        parts = ["<!doctype html><meta charset=utf-8><title>WeCom simulator</title><h1>WeCom</h1>"]
        for m in self.members.values():
            u = esc(m.userid, quote=True)
            parts.append(f"<h2>{esc(m.userid)}</h2><ol>")
            items = sorted(
                [("app", x) for x in m.received] + [("member", x) for x in m.sent], key=lambda p: p[1]["seq"]
            )
            for who, item in items:
                shown = (
                    item.get("text")
                    or item.get("replace_name")
                    or json.dumps({k: v for k, v in item.items() if k not in ("seq", "card")}, ensure_ascii=False)
                )
                parts.append(f"<li><b>{who}</b>: <pre>{esc(str(shown))}</pre>")
                card = item.get("card")
                if card and who == "app":
                    task = esc(card["task_id"], quote=True)
                    parts.append(f'<form method=post action="/_sim/members/{u}/press">')
                    parts.append(f'<input type=hidden name=task_id value="{task}">')
                    for b in card.get("button_list", ()):
                        parts.append(f'<button name=key value="{esc(b["key"], quote=True)}">{esc(b["text"])}</button>')
                    parts.append("</form>")
                parts.append("</li>")
            parts.append(
                f'</ol><form method=post action="/_sim/members/{u}/text"><input name=text size=60>'
                "<button>send</button></form>"
                f'<form method=post action="/_sim/members/{u}/location"><input name=lat size=10>'
                "<input name=lon size=10><button>location</button></form>"
                f'<form method=post action="/_sim/members/{u}/enter"><button>enter_agent</button></form>'
            )
        return web.Response(text="".join(parts), content_type="text/html")


def _cdata(text: str) -> str:
    if "]]>" in text:
        return escape(text)
    return f"<![CDATA[{text}]]>"


def main(argv: list[str] | None = None) -> None:
    """``python -m simulators.wecom --port 8083 [--callback-url URL] [--no-limits]``: the development
    corp (``DEV_*``) unless WECOM_CORP_ID, WECOM_SECRET, WECOM_AGENT_ID, WECOM_TOKEN and
    WECOM_AES_KEY are set (never printed)."""
    import argparse
    import os

    p = argparse.ArgumentParser(description="WeCom API simulator")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8083)
    p.add_argument("--callback-url", default="")
    p.add_argument("--no-limits", action="store_true")
    args = p.parse_args(argv)
    env = os.environ
    sim = WecomSimulator(
        corp_id=env.get("WECOM_CORP_ID", DEV_CORP_ID),
        corp_secret=env.get("WECOM_SECRET", DEV_SECRET),
        agent_id=int(env.get("WECOM_AGENT_ID", DEV_AGENT_ID)),
        token=env.get("WECOM_TOKEN", DEV_TOKEN),
        encoding_aes_key=env.get("WECOM_AES_KEY", DEV_AES_KEY),
        callback_url=args.callback_url,
        enforce_limits=not args.no_limits,
    )

    async def serve() -> None:
        url = await sim.start(args.host, args.port)
        print(json.dumps({"phase": "ready", "url": url}), flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await sim.stop()

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
