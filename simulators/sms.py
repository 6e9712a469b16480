"""SMS gateway simulator: a loopback server speaking Twilio's Messages API, with virtual phones.

What it does, as Twilio would (shared/oracles/sms-gateway-twilio.md, twilio-api-v2010-messages.openapi.json):

- ``POST /2010-04-01/Accounts/{sid}/Messages.json``: HTTP basic auth must match the configured
  sid and token (401, code 20003); every form field is checked against the create-message schema
  of the OpenAPI file shipped in ``data/`` (names, types, patterns, enums); then Twilio's rules:
  ``To`` required (21604) and a valid E.164 number (21211; a landline gets 21614), ``From`` one
  of our numbers (21606) or a ``MessagingServiceSid`` (21603), a ``Body`` (21602) of at most 1600
  characters (21617), a ``StatusCallback`` that is a real http(s) URL without ``_`` in its host
  (21609), an unsubscribed phone refused (21610). Errors use Twilio's JSON shape
  ``{"code", "message", "more_info", "status"}``. Deliberately stricter than Twilio: an unknown
  field is refused with 400 / code 20001 (Twilio only logs warning 20001 and ignores it), so a
  misspelt field cannot pass a test.
- 201 with a Message resource shaped like the oracle's samples, then status callbacks POSTed to
  ``StatusCallback`` (never for the first status), signed with ``X-Twilio-Signature`` exactly as
  Twilio signs them: ``sent`` → ``delivered``, or ``undelivered`` (ErrorCode 30003) for an
  unreachable phone, or ``failed`` (30008) for a failing one. With ``early_callbacks`` they are
  all POSTed (and answered) before the 201 itself is sent, as a fast gateway's may overtake it:
  the bot gets receipts for a message id it has not stored yet.
- Virtual phones: what each received; :meth:`SmsSimulator.reply` makes a phone answer, which is
  POSTed (signed, form fields like Twilio's inbound webhook) to the configured inbound URL.
- Fault injection for the next sends: 429 (code 20429, optional Retry-After), 500, a hang
  until the client times out, a dropped connection, invalid number, unsubscribed, landline.
- A JSON API under ``/_sim/`` for the demo's page and for tests.

Standalone: ``python -m simulators.sms --port 8082``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import itertools
import json
import logging
import math
import re
import secrets
from collections import deque
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import aiohttp
import phonenumbers
from aiohttp import web

from core.settings import SMS_INBOUND_PATH, Settings
from domain.signatures import twilio_signature

log = logging.getLogger(__name__)

SPEC_PATH = Path(__file__).with_name("data") / "twilio-api-v2010-messages.openapi.json"
MESSAGES_PATH = "/2010-04-01/Accounts/{AccountSid}/Messages.json"
API_VERSION = "2010-04-01"
MAX_BODY = 1600
MAX_CALLBACK_URL = 4000
DEV_ACCOUNT_SID = "AC" + "0" * 32
DEV_AUTH_TOKEN = "simulator-auth-token"
DEV_NUMBER = "+15005550006"

E164 = re.compile(r"^\+[1-9]\d{1,14}$")
ACCOUNT_SID = re.compile(r"^AC[0-9a-fA-F]{32}$")

PHONE_STATES = ("ok", "unreachable", "failed", "unsubscribed", "landline", "invalid")
FAULTS = ("429", "500", "timeout", "disconnect", "invalid_number", "unsubscribed", "landline")

GSM7 = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿"
    "abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXT = set("^{}\\[~]|€\f")


# --- pure helpers -------------------------------------------------------------------------------


class TwilioError(Exception):
    """An error reply in Twilio's shape."""

    def __init__(self, status: int, code: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}

    def response(self) -> web.Response:
        body = {
            "code": self.code,
            "message": self.message,
            "more_info": f"https://www.twilio.com/docs/errors/{self.code}",
            "status": self.status,
        }
        return web.json_response(body, status=self.status, headers=self.headers)


def segments(body: str) -> int:
    """How many SMS segments a body takes: GSM-7 160/153 per segment, else UCS-2 70/67."""
    if all(c in GSM7 or c in GSM7_EXT for c in body):
        units = sum(2 if c in GSM7_EXT else 1 for c in body)
        return 1 if units <= 160 else math.ceil(units / 153)
    units = len(body.encode("utf-16-le")) // 2
    return 1 if units <= 70 else math.ceil(units / 67)


def rfc2822(when: datetime) -> str:
    """Twilio's date format, e.g. ``Thu, 24 Aug 2023 05:01:45 +0000``."""
    return format_datetime(when.astimezone(UTC).replace(microsecond=0))


def new_sid(prefix: str = "SM") -> str:
    return prefix + secrets.token_hex(16)


@lru_cache(maxsize=1)
def create_schema() -> tuple[dict[str, dict], frozenset[str]]:
    """The create-message form schema from the oracle: properties ($refs resolved) and required names."""
    spec = json.loads(SPEC_PATH.read_text(encoding="utf-8"))
    schema = spec["paths"][MESSAGES_PATH]["post"]["requestBody"]["content"]["application/x-www-form-urlencoded"][
        "schema"
    ]
    schemas = spec["components"]["schemas"]
    props = {}
    for name, prop in schema["properties"].items():
        if "$ref" in prop:
            prop = schemas[prop["$ref"].rsplit("/", 1)[-1]]
        props[name] = prop
    return props, frozenset(schema.get("required", ()))


def _type_ok(value: str, prop: dict) -> bool:
    """Whether one form value fits its schema (type, enum, length, pattern, date-time)."""
    kind = prop.get("type", "string")
    if kind == "array":
        return _type_ok(value, prop.get("items", {}))
    if "enum" in prop and value not in prop["enum"]:
        return False
    if kind == "integer":
        return re.fullmatch(r"-?\d+", value) is not None
    if kind == "number":
        try:
            return math.isfinite(float(value))
        except ValueError:
            return False
    if kind == "boolean":
        return value.lower() in ("true", "false")
    if "minLength" in prop and len(value) < prop["minLength"]:
        return False
    if "maxLength" in prop and len(value) > prop["maxLength"]:
        return False
    if "pattern" in prop and re.search(prop["pattern"], value) is None:
        return False
    if prop.get("format") == "date-time":
        try:
            datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return False
    return True


def callback_url_ok(url: str) -> bool:
    """A fully qualified http(s) URL with a hostname free of underscores, at most 4000 characters."""
    if len(url) > MAX_CALLBACK_URL:
        return False
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname) and "_" not in parts.hostname


def number_problem(number: str) -> str:
    """'' for a valid mobile-capable E.164 number, else 'invalid' or 'landline'."""
    if not E164.match(number):
        return "invalid"
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        return "invalid"
    if not phonenumbers.is_valid_number(parsed):
        return "invalid"
    if phonenumbers.number_type(parsed) == phonenumbers.PhoneNumberType.FIXED_LINE:
        return "landline"
    return ""


def validate_create(params: list[tuple[str, str]], owned: frozenset[str]) -> dict[str, Any]:
    """Check a create-message form as Twilio would; return the fields, or raise TwilioError."""
    props, required = create_schema()
    unknown = sorted({name for name, _ in params if name not in props})
    if unknown:
        raise TwilioError(400, 20001, f"Unknown parameters: {', '.join(unknown)}")
    fields: dict[str, Any] = {}
    for name, value in params:
        if props[name].get("type") == "array":
            fields.setdefault(name, []).append(value)
        else:
            fields.setdefault(name, value)
    if "To" in required and not fields.get("To"):
        raise TwilioError(400, 21604, "A 'To' phone number is required.")
    for name, value in params:
        if name in ("To", "From", "StatusCallback", "Body"):
            continue  # checked below with their own error codes
        if not _type_ok(value, props[name]):
            raise TwilioError(400, 400, f"Invalid parameter: {name}")
    if "ValidityPeriod" in fields and not 1 <= int(fields["ValidityPeriod"]) <= 36000:
        raise TwilioError(400, 400, "Invalid parameter: ValidityPeriod")
    if not fields.get("From") and not fields.get("MessagingServiceSid"):
        raise TwilioError(400, 21603, "A 'From' phone number is required.")
    if not fields.get("Body") and not fields.get("MediaUrl") and not fields.get("ContentSid"):
        raise TwilioError(400, 21602, "Message body is required.")
    if len(fields.get("Body", "")) > MAX_BODY:
        raise TwilioError(400, 21617, "The concatenated message body exceeds the 1600 character limit.")
    if "StatusCallback" in fields and not callback_url_ok(fields["StatusCallback"]):
        raise TwilioError(400, 21609, "The StatusCallback URL is not a valid URL.")
    sender = fields.get("From")
    if sender and sender not in owned:
        raise TwilioError(
            400,
            21606,
            f"The From phone number {sender} is not a valid, SMS-capable inbound phone "
            "number or short code for your account.",
        )
    to = fields["To"]
    problem = number_problem(to)
    if problem == "invalid" or to == sender:
        raise TwilioError(400, 21211, f"The 'To' number {to} is not a valid phone number.")
    if problem == "landline":
        raise TwilioError(400, 21614, f"'To' number {to} is not a valid mobile number.")
    return fields


# --- state --------------------------------------------------------------------------------------


@dataclass
class Phone:
    """A virtual phone: what it received from us and what it sent back."""

    number: str
    state: str = "ok"  # one of PHONE_STATES
    received: list[dict] = field(default_factory=list)
    sent: list[dict] = field(default_factory=list)

    def texts(self) -> list[str]:
        return [m["body"] for m in self.received]


@dataclass
class Webhook:
    """One POST the simulator made to the bot (status callback or inbound reply) and its answer."""

    kind: str  # "status" | "inbound"
    url: str
    params: dict[str, str]
    status: int  # HTTP status of the bot's answer; 0 if the bot could not be reached


@dataclass
class Reply:
    sid: str
    status: int


class SmsSimulator:
    """The simulator's state and its aiohttp application (see the module docstring)."""

    def __init__(
        self,
        *,
        account_sid: str = DEV_ACCOUNT_SID,
        auth_token: str = DEV_AUTH_TOKEN,
        numbers: tuple[str, ...] = (DEV_NUMBER,),
        inbound_url: str = "",
        callback_delay: float = 0.0,
        timeout_delay: float = 30.0,
        early_callbacks: bool = False,
    ) -> None:
        if not ACCOUNT_SID.match(account_sid):
            raise ValueError("account_sid must look like AC + 32 hex digits")
        if not auth_token:
            raise ValueError("auth_token is required")
        self.account_sid = account_sid
        self._token = auth_token
        self.numbers = frozenset(numbers)
        self._default_number = numbers[0] if numbers else DEV_NUMBER
        self.inbound_url = inbound_url
        self.callback_delay = callback_delay
        self.timeout_delay = timeout_delay
        self.early_callbacks = early_callbacks  # status callbacks before the 201 (see the module doc)
        self.phones: dict[str, Phone] = {}
        self.messages: dict[str, dict] = {}
        self.webhooks: list[Webhook] = []
        self.requests = 0  # create-message requests seen (any outcome)
        self._seq = itertools.count(1)  # orders a phone's received and sent texts into one thread
        self._faults: deque[tuple[str, float | None]] = deque()
        self._tasks: set[asyncio.Task] = set()
        self._session: aiohttp.ClientSession | None = None
        self._stopping = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.url = ""

    def __repr__(self) -> str:  # never the token
        return f"SmsSimulator({self.account_sid!r}, url={self.url!r})"

    # -- control (tests, the demo) --

    def phone(self, number: str) -> Phone:
        if number not in self.phones:
            self.phones[number] = Phone(number)
        return self.phones[number]

    def set_state(self, number: str, state: str) -> None:
        if state not in PHONE_STATES:
            raise ValueError(f"state must be one of {', '.join(PHONE_STATES)}")
        self.phone(number).state = state

    def inject(self, fault: str, count: int = 1, retry_after: float | None = None) -> None:
        """Make the next ``count`` send requests fail with ``fault`` (one of FAULTS)."""
        if fault not in FAULTS:
            raise ValueError(f"fault must be one of {', '.join(FAULTS)}")
        self._faults.extend([(fault, retry_after)] * count)

    def clear_faults(self) -> None:
        self._faults.clear()

    async def drain(self) -> None:
        """Wait until every status callback scheduled so far has been delivered."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def reply(self, number: str, body: str, to: str | None = None) -> Reply:
        """Phone ``number`` sends ``body``: POST a signed inbound-SMS webhook to the bot."""
        if not self.inbound_url:
            raise RuntimeError("no inbound_url configured")
        phone = self.phone(number)
        to = to or (phone.received[-1]["from"] if phone.received else self._default_number)
        sid = new_sid()
        params = self._inbound_params(sid, number, to, body)
        # Kept before the POST, so the bot's answer (sent while it handles the webhook) comes after it.
        item = {
            "sid": sid,
            "to": to,
            "body": body,
            "at": rfc2822(_now()),
            "webhook_status": None,
            "seq": next(self._seq),
        }
        phone.sent.append(item)
        item["webhook_status"] = status = await self._post_signed("inbound", self.inbound_url, params)
        return Reply(sid, status)

    def _inbound_params(self, sid: str, sender: str, to: str, body: str) -> dict[str, str]:
        """The form Twilio POSTs for an incoming SMS, in its usual order."""
        return {
            "ToCountry": _country(to),
            "ToState": "",
            "SmsMessageSid": sid,
            "NumMedia": "0",
            "ToCity": "",
            "FromZip": "",
            "SmsSid": sid,
            "FromState": "",
            "SmsStatus": "received",
            "FromCity": "",
            "Body": body,
            "FromCountry": _country(sender),
            "To": to,
            "ToZip": "",
            "NumSegments": str(segments(body)),
            "MessageSid": sid,
            "AccountSid": self.account_sid,
            "From": sender,
            "ApiVersion": API_VERSION,
        }

    # -- lifecycle --

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on ``host:port`` (0 = any free port); return the base URL."""
        self._runner = web.AppRunner(self.app())
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        bound = self._runner.addresses[0][1]
        self.url = f"http://{host}:{bound}"
        return self.url

    async def stop(self) -> None:
        self._stopping.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self._close()

    async def __aenter__(self) -> SmsSimulator:
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    async def _close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post(MESSAGES_PATH, self._create)
        app.router.add_get("/2010-04-01/Accounts/{AccountSid}/Messages/{Sid}.json", self._fetch)
        app.router.add_get("/_sim/phones", self._sim_phones)
        app.router.add_get("/_sim/phones/{number}", self._sim_phone)
        app.router.add_post("/_sim/phones/{number}/reply", self._sim_reply)
        app.router.add_post("/_sim/phones/{number}/state", self._sim_state)
        app.router.add_get("/_sim/messages", self._sim_messages)
        app.router.add_get("/_sim/webhooks", self._sim_webhooks)
        app.router.add_get("/_sim/faults", self._sim_faults)
        app.router.add_post("/_sim/faults", self._sim_inject)
        app.router.add_delete("/_sim/faults", self._sim_clear)
        app.middlewares.append(_not_found_as_twilio)

        async def closing(_app: web.Application) -> None:
            self._stopping.set()
            await self._close()

        app.on_shutdown.append(closing)
        return app

    # -- the Twilio API --

    def _authenticate(self, request: web.Request) -> None:
        login, password = _basic_credentials(request.headers.get("Authorization", ""))
        ok = (
            login is not None
            and secrets.compare_digest(login.encode(), self.account_sid.encode())
            and secrets.compare_digest((password or "").encode(), self._token.encode())
            and request.match_info["AccountSid"] == self.account_sid
        )
        if not ok:
            raise TwilioError(401, 20003, "Authenticate", {"WWW-Authenticate": 'Basic realm="Twilio API"'})

    async def _create(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        try:
            self._authenticate(request)
            fault = self._next_fault()
            if fault == "timeout":
                return await self._hang()
            if fault == "disconnect":
                return _drop(request)
            raw = await request.read()
            params = _form_pairs(raw) if request.content_type == "application/x-www-form-urlencoded" else []
            fields = validate_create(params, self.numbers)
            to = fields["To"]
            state = self.phone(to).state if to in self.phones else "ok"
            if fault in ("invalid_number", "landline", "unsubscribed"):
                state = {"invalid_number": "invalid"}.get(fault, fault)
            if state == "invalid":
                raise TwilioError(400, 21211, f"The 'To' number {to} is not a valid phone number.")
            if state == "landline":
                raise TwilioError(400, 21614, f"'To' number {to} is not a valid mobile number.")
            if state == "unsubscribed":
                raise TwilioError(400, 21610, "Attempt to send to unsubscribed recipient")
        except TwilioError as err:
            return err.response()
        message = self._new_message(fields)
        if self.early_callbacks:
            created = dict(message)  # the resource as created; its statuses move on meanwhile
            await self._lifecycle(message, fields.get("StatusCallback"))
            return web.json_response(created, status=201)
        self._schedule(message, fields.get("StatusCallback"))
        return web.json_response(message, status=201)

    def _next_fault(self) -> str | None:
        if not self._faults:
            return None
        fault, retry_after = self._faults.popleft()
        if fault == "429":
            headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else {}
            raise TwilioError(429, 20429, "Too Many Requests", headers)
        if fault == "500":
            raise TwilioError(500, 20500, "Internal Server Error")
        return fault

    async def _hang(self) -> web.Response:
        """Hold the request until the client gives up (or the simulator stops); nothing is created."""
        try:
            await asyncio.wait_for(self._stopping.wait(), self.timeout_delay)
        except TimeoutError:
            pass
        return TwilioError(500, 20500, "Internal Server Error").response()

    def _new_message(self, fields: dict[str, Any]) -> dict:
        now = _now()
        sid = new_sid()
        service = fields.get("MessagingServiceSid")
        sender = fields.get("From") or self._default_number
        base = f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{sid}"
        body = fields.get("Body", "")
        message = {
            "account_sid": self.account_sid,
            "api_version": API_VERSION,
            "body": body,
            "date_created": rfc2822(now),
            "date_sent": None,
            "date_updated": rfc2822(now),
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": fields.get("From"),
            "messaging_service_sid": service,
            "num_media": str(len(fields.get("MediaUrl", []))),
            "num_segments": str(segments(body)),
            "price": None,
            "price_unit": None,
            "sid": sid,
            "status": "accepted" if service else "queued",
            "subresource_uris": {"media": base + "/Media.json"},
            "to": fields["To"],
            "uri": base + ".json",
        }
        self.messages[sid] = message
        self.phone(fields["To"]).received.append(
            {
                "sid": sid,
                "from": sender,
                "body": body,
                "at": rfc2822(now),
                "status": message["status"],
                "seq": next(self._seq),
            }
        )
        return message

    async def _fetch(self, request: web.Request) -> web.Response:
        try:
            self._authenticate(request)
        except TwilioError as err:
            return err.response()
        message = self.messages.get(request.match_info["Sid"])
        if message is None:
            return _not_found(request.path)
        return web.json_response(message)

    # -- status callbacks --

    def _schedule(self, message: dict, callback: str | None) -> None:
        task = asyncio.get_running_loop().create_task(self._lifecycle(message, callback))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _lifecycle(self, message: dict, callback: str | None) -> None:
        """Move a message through its statuses, POSTing each (but the first) to its callback."""
        state = self.phones[message["to"]].state
        path = ["queued"] if message["status"] == "accepted" else []
        if state == "failed":
            path += [("failed", 30008)]
        else:
            path += ["sent", ("undelivered", 30003) if state == "unreachable" else "delivered"]
        for step in path:
            status, code = step if isinstance(step, tuple) else (step, None)
            if self.callback_delay:
                await asyncio.sleep(self.callback_delay)
            self._advance(message, status, code)
            if callback:
                await self._post_signed("status", callback, self._status_params(message, code))

    def _advance(self, message: dict, status: str, code: int | None) -> None:
        now = rfc2822(_now())
        message.update(status=status, date_updated=now)
        if status == "sent":
            message["date_sent"] = now
        if code is not None:
            message.update(error_code=code, error_message=f"Delivery failed (error {code})")
        for item in self.phones[message["to"]].received:
            if item["sid"] == message["sid"]:
                item["status"] = status

    def _status_params(self, message: dict, code: int | None) -> dict[str, str]:
        params = {
            "SmsSid": message["sid"],
            "SmsStatus": message["status"],
            "MessageStatus": message["status"],
            "To": message["to"],
            "MessageSid": message["sid"],
            "AccountSid": self.account_sid,
            "From": message["from"] or self._default_number,
            "ApiVersion": API_VERSION,
        }
        if message["messaging_service_sid"]:
            params["MessagingServiceSid"] = message["messaging_service_sid"]
        if code is not None:
            params["ErrorCode"] = str(code)
        if message["status"] in ("delivered", "undelivered"):
            params["RawDlrDoneDate"] = _now().strftime("%y%m%d%H%M")
        return params

    async def _post_signed(self, kind: str, url: str, params: dict[str, str]) -> int:
        """POST a form signed the way Twilio signs it; record and return the answer's status (0 = unreachable)."""
        if self._session is None:
            self._session = aiohttp.ClientSession()
        headers = {"X-Twilio-Signature": twilio_signature(url, params, self._token), "User-Agent": "TwilioProxy/1.1"}
        try:
            async with self._session.post(
                url, data=params, headers=headers, timeout=aiohttp.ClientTimeout(total=15)
            ) as resp:
                await resp.read()
                status = resp.status
        except (TimeoutError, aiohttp.ClientError) as exc:
            log.warning("sms simulator: %s webhook to %s failed: %s", kind, url, exc.__class__.__name__)
            status = 0
        self.webhooks.append(Webhook(kind, url, params, status))
        return status

    # -- the /_sim JSON API --

    async def _sim_phones(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "phones": [
                    {"number": p.number, "state": p.state, "received": len(p.received), "sent": len(p.sent)}
                    for p in self.phones.values()
                ]
            }
        )

    async def _sim_phone(self, request: web.Request) -> web.Response:
        return web.json_response(asdict(self.phone(request.match_info["number"])))

    async def _sim_reply(self, request: web.Request) -> web.Response:
        data = await _json_object(request)
        body = data.get("body")
        if not isinstance(body, str) or not body:
            return web.json_response({"error": "body (a non-empty string) is required"}, status=400)
        if not self.inbound_url:
            return web.json_response({"error": "the simulator has no inbound URL"}, status=409)
        reply = await self.reply(request.match_info["number"], body, data.get("to"))
        return web.json_response(asdict(reply))

    async def _sim_state(self, request: web.Request) -> web.Response:
        data = await _json_object(request)
        try:
            self.set_state(request.match_info["number"], str(data.get("state")))
        except ValueError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response(asdict(self.phone(request.match_info["number"])))

    async def _sim_messages(self, request: web.Request) -> web.Response:
        return web.json_response({"messages": list(self.messages.values())})

    async def _sim_webhooks(self, request: web.Request) -> web.Response:
        return web.json_response({"webhooks": [asdict(w) for w in self.webhooks]})

    async def _sim_faults(self, request: web.Request) -> web.Response:
        return web.json_response({"faults": [f for f, _ in self._faults]})

    async def _sim_inject(self, request: web.Request) -> web.Response:
        data = await _json_object(request)
        try:
            count = int(data.get("count", 1))
            retry_after = data.get("retry_after")
            self.inject(str(data.get("fault")), count, float(retry_after) if retry_after is not None else None)
        except (TypeError, ValueError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response({"faults": [f for f, _ in self._faults]})

    async def _sim_clear(self, request: web.Request) -> web.Response:
        self.clear_faults()
        return web.json_response({"faults": []})


# --- small helpers ------------------------------------------------------------------------------


def _now() -> datetime:
    return datetime.now(UTC)


def _country(number: str) -> str:
    try:
        return phonenumbers.region_code_for_number(phonenumbers.parse(number, None)) or ""
    except phonenumbers.NumberParseException:
        return ""


def _form_pairs(raw: bytes) -> list[tuple[str, str]]:
    try:
        return parse_qsl(raw.decode("utf-8"), keep_blank_values=True)
    except UnicodeDecodeError as exc:
        raise TwilioError(400, 400, "The request body is not valid UTF-8") from exc


def _drop(request: web.Request) -> web.Response:
    """Close the connection without an answer (the client sees a disconnect)."""
    if request.transport is not None:
        request.transport.abort()
    raise asyncio.CancelledError()


async def _json_object(request: web.Request) -> dict:
    try:
        data = await request.json()
    except (ValueError, UnicodeDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def _not_found(path: str) -> web.Response:
    return TwilioError(404, 20404, f"The requested resource {path} was not found").response()


@web.middleware
async def _not_found_as_twilio(request: web.Request, handler) -> web.StreamResponse:
    """Unknown paths get Twilio's 404 body (code 20404) instead of aiohttp's text."""
    try:
        return await handler(request)
    except web.HTTPNotFound:
        return _not_found(request.path)


# --- standalone ---------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    """``python -m simulators.sms``: serve until interrupted. Defaults come from the environment's Settings."""
    settings = Settings.from_env()
    parser = argparse.ArgumentParser(prog="python -m simulators.sms", description="Twilio-compatible SMS simulator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8082)
    parser.add_argument("--account-sid", default=settings.sms_account_sid or DEV_ACCOUNT_SID)
    parser.add_argument("--number", action="append", help="a sender number we own (repeatable)")
    parser.add_argument("--inbound-url", default=settings.public_url.rstrip("/") + SMS_INBOUND_PATH)
    parser.add_argument("--callback-delay", type=float, default=0.5, help="seconds between status callbacks")
    args = parser.parse_args(argv)
    numbers = tuple(args.number or [settings.sms_from or DEV_NUMBER])
    # The token comes only from SMS_AUTH_TOKEN (never a command-line argument, never printed).
    sim = SmsSimulator(
        account_sid=args.account_sid,
        auth_token=settings.sms_auth_token or DEV_AUTH_TOKEN,
        numbers=numbers,
        inbound_url=args.inbound_url,
        callback_delay=args.callback_delay,
    )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log.info(
        "sms simulator on http://%s:%d (account %s, numbers %s, replies to %s)",
        args.host,
        args.port,
        args.account_sid,
        ", ".join(numbers),
        args.inbound_url,
    )
    web.run_app(sim.app(), host=args.host, port=args.port, print=None)


def _basic_credentials(header: str) -> tuple[str | None, str | None]:
    """(login, password) of an ``Authorization: Basic …`` header (RFC 7617), or (None, None)."""
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not encoded:
        return None, None
    try:
        login, sep, password = base64.b64decode(encoded.strip(), validate=True).decode("utf-8").partition(":")
    except (ValueError, UnicodeDecodeError):
        return None, None
    return (login, password) if sep else (None, None)


if __name__ == "__main__":
    main()
