"""SMS through a Twilio-compatible HTTP gateway (Twilio itself, or simulators.sms).

Outbound: ``POST {api}/2010-04-01/Accounts/{sid}/Messages.json`` with HTTP basic auth, form
fields ``To``, ``From`` (or ``MessagingServiceSid``), ``Body``, ``StatusCallback``; the ``sid`` of
the 201 reply is the message id. Failures become :class:`SendError` (see :func:`classify_error`).

Inbound: Twilio POSTs a form to our inbound URL (a reply from a phone) and to the
``StatusCallback`` URL (delivery status). :class:`TwilioWebhookGuard` checks ``X-Twilio-Signature``
against the URL *we* publish (``Settings.public_url`` + the path and query received), never the
Host header the request arrived with, since a proxy rewrites it. The pure functions
:func:`inbound_event` and :func:`status_event` turn a verified form into an :class:`InboundEvent`.

Replay: Twilio's signature has no timestamp, so a captured request stays valid forever. What
protects us is the idempotency key: ``MessageSid`` for a reply, ``MessageSid:status`` for a status
callback, which is the unique key of the ``inbound_event`` table — a replay inserts nothing and
changes nothing. The guard also remembers the keys it accepted (in memory, bounded) and answers a
replay of one of them 403 without touching the database. A key is remembered only after the
handler succeeded, so Twilio's own retry of a request we failed (503) is still accepted.
"""

from __future__ import annotations

import json
import logging
import math
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import quote, unquote

import aiohttp
from aiohttp import web

from bot.channels.http import HttpSession
from core.channel import EventCallback, EventKind, InboundEvent, Outgoing, SendError, identifier
from core.clock import SYSTEM, Clock
from core.logs import not_stored
from core.settings import SMS_INBOUND_PATH, Settings, SettingsError
from domain.signatures import HMAC_SHA1, signature_algorithm, verify_twilio_signature

log = logging.getLogger(__name__)

API_VERSION = "2010-04-01"
DEFAULT_API_URL = "https://api.twilio.com"
INBOUND_PATH = SMS_INBOUND_PATH
STATUS_PATH = "/sms/status"
MAX_WEBHOOK_BODY = 64 * 1024  # a reply is at most 1600 chars; a webhook form stays far below this
TWIML_EMPTY = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'

# Twilio error codes (shared/oracles/sms-gateway-twilio.md §5) -> (SendError kind, retryable).
# "config" = our account or settings are wrong: nothing the recipient did, so a dispatcher should
# not mark the recipient unreachable for it.
ERROR_CODES: dict[int, tuple[str, bool]] = {
    21211: ("invalid_number", False),  # 'To' not a valid phone number
    21614: ("invalid_number", False),  # 'To' not a valid mobile number
    21635: ("invalid_number", False),  # 'To' is a landline
    21610: ("unsubscribed", False),  # recipient replied STOP
    21608: ("unverified_number", False),  # trial account, unverified 'To'
    21408: ("region_disabled", False),  # geo permission for the region not enabled
    21611: ("throttled", True),  # 'From' queue over 10 h of messages
    20429: ("throttled", True),  # too many concurrent requests; never processed, safe to retry
    20003: ("auth", False),  # bad credentials
    21601: ("config", False),  # 'From' is not a message-capable Twilio number
    21606: ("config", False),  # 'From' is not a valid message-capable Twilio number
    21603: ("config", False),  # neither From nor MessagingServiceSid
    21609: ("config", False),  # invalid StatusCallback (public URL)
    21617: ("too_long", False),  # body over 1600 characters
}


# --- outbound -----------------------------------------------------------------------------------


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date); None if absent or unreadable."""
    if not value or not value.strip():
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return max(0.0, (when - now).total_seconds())
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def _error_body(body: bytes) -> tuple[int | None, str]:
    """Twilio's error code and message from ``{"code", "message", …}`` or an RFC 9457 problem body."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None, ""
    if not isinstance(data, dict):
        return None, ""
    code = data.get("code")
    if isinstance(code, str) and code.isdigit():
        code = int(code)
    if not isinstance(code, int) or isinstance(code, bool):
        code = None
    message = data.get("message") or data.get("detail") or data.get("title") or ""
    return code, str(message)[:200]


def classify_error(status: int, body: bytes, retry_after: str | None, now: datetime) -> SendError:
    """The :class:`SendError` for a non-2xx reply: 429/5xx retryable, 401/403 ``auth``, known codes named."""
    code, message = _error_body(body)
    wait = parse_retry_after(retry_after, now)
    if code in ERROR_CODES:
        kind, retryable = ERROR_CODES[code]
    elif status == 429:
        kind, retryable = "throttled", True
    elif status >= 500:
        kind, retryable = "server", True
    elif status in (401, 403):
        kind, retryable = "auth", False
    else:
        kind, retryable = "bad_request", False
    detail = f"HTTP {status}" + (f" code {code}" if code is not None else "") + (f": {message}" if message else "")
    return SendError(kind, retryable=retryable, retry_after=wait if retryable else None, detail=detail)


class TwilioSmsChannel(HttpSession):
    """The SMS :class:`~core.channel.Channel` over Twilio's Messages API."""

    name = "sms"

    def __init__(
        self,
        settings: Settings,
        *,
        session: aiohttp.ClientSession | None = None,
        timeout: float = 10.0,
        clock: Clock = SYSTEM,
    ) -> None:
        if not settings.sms_account_sid or not settings.sms_auth_token:
            raise SettingsError("SMS_ACCOUNT_SID and SMS_AUTH_TOKEN are required for the Twilio SMS channel")
        self._sid = settings.sms_account_sid
        # HTTP Basic with the account SID and auth token, built once (aiohttp's BasicAuth is deprecated)
        self._headers = {
            "Accept": "application/json",
            "Authorization": aiohttp.encode_basic_auth(settings.sms_account_sid, settings.sms_auth_token),
        }
        self._from = settings.sms_from
        self._service = settings.sms_messaging_service_sid
        base = (settings.sms_api_url or DEFAULT_API_URL).rstrip("/")
        self.messages_url = f"{base}/{API_VERSION}/Accounts/{quote(self._sid, safe='')}/Messages.json"
        self.status_callback_url = settings.public_url.rstrip("/") + STATUS_PATH
        self._use_session(session, timeout)
        self._clock = clock

    def __repr__(self) -> str:  # never the token
        return f"TwilioSmsChannel({self.messages_url!r})"

    def form_for(self, message: Outgoing) -> dict[str, str]:
        """The Messages.json form for one message; SendError for what SMS cannot carry."""
        if message.poll is not None or message.photo is not None or message.document is not None:
            raise SendError("unsupported", retryable=False, detail="SMS carries text only")
        if message.edit_message_id:
            raise SendError("unsupported", retryable=False, detail="an SMS cannot be edited")
        if not message.text.strip():
            raise SendError("bad_request", retryable=False, detail="empty text")
        if not (self._service or self._from):
            raise SendError("config", retryable=False, detail="SMS_FROM or SMS_MESSAGING_SERVICE_SID is required")
        form = {"To": message.address, "Body": message.text, "StatusCallback": self.status_callback_url}
        if self._service:
            form["MessagingServiceSid"] = self._service
        else:
            form["From"] = self._from
        return form

    async def send(self, message: Outgoing) -> str:
        """POST the message; return its ``SM…`` sid or raise SendError. Buttons are dropped (text only)."""
        form = self.form_for(message)
        await self.start()
        assert self._session is not None
        try:
            async with self._session.post(
                self.messages_url,
                data=form,
                timeout=self._timeout,
                headers=self._headers,
            ) as resp:
                body = await resp.read()
                if resp.status in (200, 201):
                    return _sid_of(body)
                raise classify_error(resp.status, body, resp.headers.get("Retry-After"), self._clock.now())
        except SendError:
            raise
        except TimeoutError as exc:  # also aiohttp's ServerTimeoutError
            raise SendError("timeout", retryable=True, detail=exc.__class__.__name__) from exc
        except aiohttp.ClientError as exc:
            raise SendError("connection", retryable=True, detail=exc.__class__.__name__) from exc

    async def fetch_file(self, file_id: str) -> bytes:
        raise SendError("unsupported", retryable=False, detail="the SMS channel has no files")


def _sid_of(body: bytes) -> str:
    """The message sid of a 201 reply. A 2xx without one is permanent: Twilio did take the message."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        data = None
    sid = data.get("sid") if isinstance(data, dict) else None
    if not isinstance(sid, str) or not sid:
        raise SendError("bad_response", retryable=False, detail="2xx reply without a message sid")
    return sid


# --- inbound: pure parsing ----------------------------------------------------------------------


#: Identifier limits (a Twilio SID is 34 characters, an E.164 number at most 16): what fits ``inbound_event``.
MAX_SID, MAX_ADDRESS, MAX_STATUS = 64, 32, 32


def inbound_event(form: Mapping[str, str]) -> InboundEvent:
    """A reply from a phone (Twilio's inbound-SMS webhook form) as a TEXT event keyed by MessageSid."""
    sid = form.get("MessageSid") or form.get("SmsMessageSid") or form.get("SmsSid") or ""
    sender = form.get("From") or ""
    if not sid or not sender:
        raise ValueError("inbound SMS webhook without MessageSid or From")
    sid, sender = identifier(sid, "MessageSid", MAX_SID), identifier(sender, "From", MAX_ADDRESS)
    return InboundEvent(
        channel="sms", external_id=sid, sender=sender, kind=EventKind.TEXT, text=form.get("Body", ""), raw=dict(form)
    )


def status_event(form: Mapping[str, str]) -> InboundEvent:
    """A status callback as a DELIVERY event keyed by ``MessageSid:status`` (each status counts once).

    ``sender`` is the phone the message went to (``To``), the address the status is about."""
    sid = form.get("MessageSid") or form.get("SmsSid") or ""
    status = form.get("MessageStatus") or form.get("SmsStatus") or ""
    if not sid or not status:
        raise ValueError("status callback without MessageSid or MessageStatus")
    sid, status = identifier(sid, "MessageSid", MAX_SID), identifier(status, "MessageStatus", MAX_STATUS)
    to = identifier(form["To"], "To", MAX_ADDRESS) if form.get("To") else ""
    return InboundEvent(
        channel="sms",
        external_id=f"{sid}:{status}",
        sender=to,
        kind=EventKind.DELIVERY,
        message_id=sid,
        status=status,
        error_code=form.get("ErrorCode", ""),
        raw=dict(form),
    )


# --- inbound: the aiohttp guard -----------------------------------------------------------------


@dataclass(frozen=True)
class VerifiedWebhook:
    """A webhook whose signature checked out: its form parameters (all of them, in order) and raw body."""

    params: tuple[tuple[str, str], ...]
    raw_body: bytes
    is_json: bool = False

    @property
    def form(self) -> dict[str, str]:
        """First value of each parameter."""
        out: dict[str, str] = {}
        for name, value in self.params:
            out.setdefault(name, value)
        return out


def form_pairs(text: str) -> tuple[tuple[str, str], ...]:
    """An url-encoded form's ``(name, value)`` pairs, in order: ``parse_qsl(text,
    keep_blank_values=True)``, in half its time (it runs for every webhook)."""
    pairs = []
    for field in text.split("&"):
        if not field:
            continue
        name, _, value = field.partition("=")
        if "+" in name:
            name = name.replace("+", " ")
        if "%" in name:
            name = unquote(name)
        if "+" in value:
            value = value.replace("+", " ")
        if "%" in value:
            value = unquote(value)
        pairs.append((name, value))
    return tuple(pairs)


async def read_limited(request: web.Request, limit: int) -> bytes:
    """The body, or 413 as soon as it passes ``limit`` bytes (whatever Content-Length claimed)."""
    if request.content_length is not None and request.content_length > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=request.content_length)
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await request.content.read(limit + 1 - size)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=size)


class TwilioWebhookGuard:
    """Checks ``X-Twilio-Signature`` of webhooks, caps their size and refuses replays it has seen.

    ``public_url`` is the base URL Twilio is told to call (scheme, host, optional port and path
    prefix); the signed URL is that base + the path and query the request arrived with."""

    def __init__(
        self, auth_token: str, public_url: str, *, max_body: int = MAX_WEBHOOK_BODY, remember: int = 10_000
    ) -> None:
        self._token = auth_token
        self._base = public_url.rstrip("/")
        self._max_body = max_body
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._remember = remember

    def __repr__(self) -> str:  # never the token
        return f"TwilioWebhookGuard({self._base!r})"

    def signed_url(self, request: web.Request) -> str:
        return self._base + request.raw_path

    async def verify(self, request: web.Request) -> VerifiedWebhook:
        """The verified webhook, or 403 (missing/bad signature), 413 (too big)."""
        raw = await read_limited(request, self._max_body)
        signature = request.headers.get("X-Twilio-Signature")
        algorithm = signature_algorithm(request.headers.get("X-Twilio-Webhooks-Signature-Settings"))
        url = self.signed_url(request)
        ok = False
        params: tuple[tuple[str, str], ...] = ()
        is_json = request.content_type == "application/json"
        if signature and algorithm == HMAC_SHA1:  # SharedKey (HMAC-SHA256, beta) keys are not configured here
            try:
                if is_json:
                    ok = verify_twilio_signature(url, (), self._token, signature, raw_body=raw)
                else:
                    params = form_pairs(raw.decode("utf-8"))
                    ok = verify_twilio_signature(url, params, self._token, signature)
            except (UnicodeDecodeError, ValueError):
                ok = False
        if not ok:
            log.warning(
                "sms webhook %s from %s: %s signature, refused",
                request.path,
                request.remote,
                "bad" if signature else "missing",
            )
            raise web.HTTPForbidden()
        return VerifiedWebhook(params=params, raw_body=raw, is_json=is_json)

    def is_replay(self, key: str) -> bool:
        return key in self._seen

    def remember(self, key: str) -> None:
        """Record an accepted idempotency key (after the handler succeeded); the oldest are forgotten."""
        self._seen[key] = None
        self._seen.move_to_end(key)
        while len(self._seen) > self._remember:
            self._seen.popitem(last=False)


def webhook_handler(
    guard: TwilioWebhookGuard, parse: Callable[[Mapping[str, str]], InboundEvent], on_event: EventCallback
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """An aiohttp handler: verify → parse → refuse a replay → ``on_event`` → empty TwiML.

    ``on_event`` must have stored the event when it returns; if it raises, 503 (Twilio may retry)."""

    async def handle(request: web.Request) -> web.StreamResponse:
        verified = await guard.verify(request)
        if verified.is_json:
            raise web.HTTPUnsupportedMediaType()
        try:
            event = parse(verified.form)
        except ValueError:
            log.warning("sms webhook %s: signed but malformed form, refused", request.path)
            raise web.HTTPBadRequest() from None
        if guard.is_replay(event.external_id):
            log.warning("sms webhook %s: replay of %s refused", request.path, event.external_id)
            raise web.HTTPForbidden()
        try:
            await on_event(event)
        except Exception as exc:
            not_stored(log, exc, "sms webhook %s: event %s not stored, answered 503", request.path, event.external_id)
            raise web.HTTPServiceUnavailable() from None
        guard.remember(event.external_id)
        return web.Response(text=TWIML_EMPTY, content_type="text/xml")

    return handle


def webhook_routes(
    settings: Settings, on_event: EventCallback, *, guard: TwilioWebhookGuard | None = None
) -> list[web.RouteDef]:
    """The two Twilio webhooks: replies at :data:`INBOUND_PATH`, status callbacks at :data:`STATUS_PATH`."""
    guard = guard or TwilioWebhookGuard(settings.sms_auth_token, settings.public_url)
    return [
        web.post(INBOUND_PATH, webhook_handler(guard, inbound_event, on_event)),
        web.post(STATUS_PATH, webhook_handler(guard, status_event, on_event)),
    ]
