"""SMS through Alibaba Cloud SMS (dysmsapi 2017-05-25): SendSms out, SmsReport / SmsUp pushes in.

Mainland-China SMS has no free text: every message is an approved signature (``SignName``)
plus an approved template (``TemplateCode``). We use one template whose single variable
(``Settings.sms_template_param``, default ``content``) carries our rendered text, sent as the
``TemplateParam`` JSON string. The platform prefixes 【签名】 itself.

Requests are signed with Alibaba Cloud's RPC "signature method V2" (domain.signatures; the
service calls it deprecated in favour of V3 but still documents it). The AccessKey id and
secret are ``Settings.sms_account_sid`` / ``sms_auth_token``.

Pushes (HTTP batch push, set in the console) carry **no documented signature**, so their URLs
end in a secret path segment (``Settings.sms_push_token``) compared in constant time; the
idempotency keys (``biz_id:phone`` for a receipt, ``up:sequence_id`` for a reply) make a
replayed or repeated push change nothing. See shared/oracles/sms-gateway-aliyun.md.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import secrets
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import aiohttp
from aiohttp import web

from bot.channels.http import HttpSession
from bot.channels.sms_twilio import read_limited
from core.channel import EventCallback, EventKind, InboundEvent, Outgoing, SendError, identifier
from core.clock import SYSTEM, Clock
from core.logs import not_stored
from core.settings import Settings, SettingsError
from domain.signatures import aliyun_signature

log = logging.getLogger(__name__)

DEFAULT_API_URL = "https://dysmsapi.aliyuncs.com"
API_VERSION = "2017-05-25"
REPORT_PATH = "/sms/aliyun/report/{token}"
UP_PATH = "/sms/aliyun/up/{token}"
MAX_PUSH_BODY = 1 << 20
PUSH_ACK = {"code": 0, "msg": "接收成功"}  # the reply Aliyun expects (only ``code`` is checked)

# SendSms business codes (Code of an HTTP 200 reply) -> (SendError kind, retryable).
ERROR_CODES: dict[str, tuple[str, bool]] = {
    "isv.MOBILE_NUMBER_ILLEGAL": ("invalid_number", False),
    "isv.MOBILE_COUNT_OVER_LIMIT": ("bad_request", False),
    "isv.BUSINESS_LIMIT_CONTROL": ("throttled", True),  # per-number flow control
    "isv.DAY_LIMIT_CONTROL": ("quota", True),  # account caps set in the console
    "isv.MONTH_LIMIT_CONTROL": ("quota", True),
    "isv.AMOUNT_NOT_ENOUGH": ("quota", True),  # balance; a top-up fixes it
    "isv.OUT_OF_SERVICE": ("quota", True),  # arrears
    "isv.SMS_SIGNATURE_ILLEGAL": ("config", False),
    "isv.SMS_TEMPLATE_ILLEGAL": ("config", False),
    "isv.SMS_SIGNATURE_SCENE_ILLEGAL": ("config", False),
    "isv.TEMPLATE_MISSING_PARAMETERS": ("config", False),
    "isv.DENY_IP_RANGE": ("config", False),
    "isv.INVALID_JSON_PARAM": ("bad_request", False),
    "isv.INVALID_PARAMETERS": ("bad_request", False),
    "isv.SMS_CONTENT_ILLEGAL": ("content_rejected", False),
    "isv.BLACK_KEY_CONTROL_LIMIT": ("content_rejected", False),
    "isp.RAM_PERMISSION_DENY": ("auth", False),
    "isp.SYSTEM_ERROR": ("server", True),
}
# Gateway codes (HTTP 4xx/5xx), by prefix. Not confirmed on an Aliyun page for dysmsapi.
GATEWAY_PREFIXES: tuple[tuple[str, tuple[str, bool]], ...] = (
    ("Throttling", ("throttled", True)),
    ("SignatureNonceUsed", ("server", True)),  # a fresh nonce next time
    ("InvalidAccessKeyId", ("auth", False)),
    ("SignatureDoesNotMatch", ("auth", False)),
    ("IncompleteSignature", ("auth", False)),
    ("Forbidden", ("auth", False)),
    ("InvalidTimeStamp", ("config", False)),  # our clock is off by more than the allowed window
)
FLOW_CONTROL_WAIT = (("分钟级", 60.0), ("小时级", 3600.0), ("天级", 86400.0))
QUOTA_WAIT = 3600.0


def aliyun_phone(address: str) -> str:
    """The ``PhoneNumbers`` form of an E.164 address: 11 digits for mainland China, else country code + number."""
    if address.startswith("+86"):
        return address[3:]
    return address[1:] if address.startswith("+") else address


def e164_from_aliyun(phone: Any) -> str:
    """A pushed ``phone_number`` as E.164 when it is recognisably a number; otherwise as received."""
    text = str(phone).strip()
    if re.fullmatch(r"1\d{10}", text):
        return "+86" + text
    if re.fullmatch(r"(?:0086|86)1\d{10}", text):
        return "+86" + text[-11:]
    if re.fullmatch(r"\+\d{6,15}", text):
        return text
    return text


def parse_send_reply(status: int, body: bytes) -> str:
    """The ``BizId`` of a successful SendSms reply, or raise the matching SendError."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        data = None
    if not isinstance(data, dict):
        data = {}
    code = str(data.get("Code", ""))
    message = str(data.get("Message", ""))[:200]
    if status == 200 and code == "OK":
        biz_id = data.get("BizId")
        if not isinstance(biz_id, str) or not biz_id:
            raise SendError("bad_response", retryable=False, detail="OK reply without a BizId")
        return biz_id
    detail = f"HTTP {status}" + (f" {code}" if code else "") + (f": {message}" if message else "")
    if code in ERROR_CODES:
        kind, retryable = ERROR_CODES[code]
    else:
        kind, retryable = next((v for p, v in GATEWAY_PREFIXES if code.startswith(p)), ("", False))
        if not kind:
            kind, retryable = ("server", True) if status >= 500 or code.startswith("isp.") else ("bad_request", False)
    wait = None
    if code == "isv.BUSINESS_LIMIT_CONTROL":
        wait = next((s for word, s in FLOW_CONTROL_WAIT if word in message), 60.0)
    elif kind == "quota":
        wait = QUOTA_WAIT
    raise SendError(kind, retryable=retryable, retry_after=wait, detail=detail)


class AliyunSmsChannel(HttpSession):
    """The SMS :class:`~core.channel.Channel` over Alibaba Cloud SendSms."""

    name = "sms"

    def __init__(
        self,
        settings: Settings,
        *,
        session: aiohttp.ClientSession | None = None,
        timeout: float = 10.0,
        clock: Clock = SYSTEM,
    ) -> None:
        missing = [
            env
            for env, value in (
                ("SMS_ACCOUNT_SID", settings.sms_account_sid),
                ("SMS_AUTH_TOKEN", settings.sms_auth_token),
                ("SMS_SIGN_NAME", settings.sms_sign_name),
                ("SMS_TEMPLATE_CODE", settings.sms_template_code),
            )
            if not value
        ]
        if missing:
            raise SettingsError(f"{', '.join(missing)} required for the Aliyun SMS channel")
        self._key_id = settings.sms_account_sid
        self._secret = settings.sms_auth_token
        self._sign_name = settings.sms_sign_name
        self._template = settings.sms_template_code
        self._param = settings.sms_template_param
        self.endpoint = (settings.sms_api_url or DEFAULT_API_URL).rstrip("/") + "/"
        self._use_session(session, timeout)
        self._clock = clock

    def __repr__(self) -> str:  # never the secret
        return f"AliyunSmsChannel({self.endpoint!r})"

    def request_params(self, message: Outgoing, now: datetime, nonce: str) -> dict[str, str]:
        """The signed SendSms parameters (POST form) for one message; SendError for what SMS cannot carry."""
        if message.poll is not None or message.photo is not None or message.document is not None:
            raise SendError("unsupported", retryable=False, detail="SMS carries text only")
        if message.edit_message_id:
            raise SendError("unsupported", retryable=False, detail="an SMS cannot be edited")
        if not message.text.strip():
            raise SendError("bad_request", retryable=False, detail="empty text")
        params = {
            "AccessKeyId": self._key_id,
            "Action": "SendSms",
            "Format": "JSON",
            "RegionId": "cn-hangzhou",
            "SignatureMethod": "HMAC-SHA1",
            "SignatureNonce": nonce,
            "SignatureVersion": "1.0",
            "Timestamp": now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "Version": API_VERSION,
            "PhoneNumbers": aliyun_phone(message.address),
            "SignName": self._sign_name,
            "TemplateCode": self._template,
            "TemplateParam": json.dumps({self._param: message.text}, ensure_ascii=False, separators=(",", ":")),
        }
        params["Signature"] = aliyun_signature("POST", params, self._secret)
        return params

    async def send(self, message: Outgoing) -> str:
        """SendSms for one number; return the ``BizId`` or raise SendError."""
        params = self.request_params(message, self._clock.now(), uuid.uuid4().hex)
        await self.start()
        assert self._session is not None
        try:
            async with self._session.post(self.endpoint, data=params, timeout=self._timeout) as resp:
                return parse_send_reply(resp.status, await resp.read())
        except SendError:
            raise
        except TimeoutError as exc:
            raise SendError("timeout", retryable=True, detail=exc.__class__.__name__) from exc
        except aiohttp.ClientError as exc:
            raise SendError("connection", retryable=True, detail=exc.__class__.__name__) from exc

    async def fetch_file(self, file_id: str) -> bytes:
        raise SendError("unsupported", retryable=False, detail="the SMS channel has no files")


# --- pushes: pure parsing -----------------------------------------------------------------------


def parse_push(body: bytes) -> list[dict]:
    """A push body: a JSON array of objects (ValueError otherwise)."""
    try:
        data = json.loads(body)
    except RecursionError:  # nested deeper than the parser goes: not a push either
        raise ValueError("a push body nested too deeply") from None
    if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
        raise ValueError("a push body must be a JSON array of objects")
    return data


# Field limits: the event's key and sender must fit ``inbound_event`` (external_id 100, sender 64).
MAX_BIZ_ID, MAX_PHONE, MAX_SEQUENCE = 64, 32, 64


def _scalar(item: Mapping[str, Any], key: str, limit: int) -> str:
    """A pushed identifier as text: a string or an integer, 1..``limit`` characters, no control
    characters (ValueError otherwise, so the push is refused whole rather than stored mangled)."""
    value = item.get(key)
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ValueError(f"{key} missing or not a string")
    return identifier(str(value), key, limit)


def _truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")


def report_event(item: Mapping[str, Any]) -> InboundEvent:
    """An SmsReport item as a DELIVERY event keyed by ``biz_id:phone_number``."""
    biz_id, phone = _scalar(item, "biz_id", MAX_BIZ_ID), _scalar(item, "phone_number", MAX_PHONE)
    delivered = _truthy(item.get("success"))
    return InboundEvent(
        channel="sms",
        external_id=f"{biz_id}:{phone}",
        sender=e164_from_aliyun(phone),
        kind=EventKind.DELIVERY,
        message_id=str(biz_id),
        status="delivered" if delivered else "undelivered",
        error_code="" if delivered else str(item.get("err_code", "")),
        raw=dict(item),
    )


def up_event(item: Mapping[str, Any]) -> InboundEvent:
    """An SmsUp item (a reply) as a TEXT event keyed by ``up:sequence_id`` (String or Number)."""
    phone, content = _scalar(item, "phone_number", MAX_PHONE), item.get("content")
    if isinstance(content, bool) or not isinstance(content, (str, int)):
        raise ValueError("SmsUp item without a text content")
    content = str(content).replace("\x00", "")  # no database text holds a NUL (a GSM "@" mis-decoded)
    sequence = item.get("sequence_id")
    if sequence is not None and sequence != "":
        sequence = _scalar(item, "sequence_id", MAX_SEQUENCE)
    else:
        digest = hashlib.sha256(f"{phone}|{item.get('send_time', '')}|{content}".encode()).hexdigest()
        sequence = "h" + digest[:32]
    return InboundEvent(
        channel="sms",
        external_id=f"up:{sequence}",
        sender=e164_from_aliyun(phone),
        kind=EventKind.TEXT,
        text=str(content),
        raw=dict(item),
    )


# --- pushes: aiohttp routes ---------------------------------------------------------------------


def push_handler(
    label: str, token: str, parse: Callable[[Mapping[str, Any]], InboundEvent], on_event: EventCallback
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """Secret path check → body → events → ``on_event`` each → Aliyun's ack. 503 if one was not stored.

    Logs name the push by ``label``, never by its path (the path holds the secret)."""

    async def handle(request: web.Request) -> web.StreamResponse:
        given = request.match_info.get("token", "")
        if not secrets.compare_digest(given.encode("utf-8"), token.encode("utf-8")):
            log.warning("aliyun %s push with a wrong path token from %s, refused", label, request.remote)
            raise web.HTTPForbidden()
        raw = await read_limited(request, MAX_PUSH_BODY)
        try:
            events = [parse(item) for item in parse_push(raw)]
        except (ValueError, UnicodeDecodeError):
            log.warning("aliyun %s push from %s: malformed body, refused", label, request.remote)
            raise web.HTTPBadRequest() from None
        for event in events:
            try:
                await on_event(event)
            except Exception as exc:
                not_stored(log, exc, "aliyun %s push: event %s not stored, answered 503", label, event.external_id)
                raise web.HTTPServiceUnavailable() from None
        return web.json_response(PUSH_ACK)

    return handle


def push_routes(settings: Settings, on_event: EventCallback) -> list[web.RouteDef]:
    """The SmsReport and SmsUp push endpoints (configure ``{public_url}/sms/aliyun/{report|up}/{token}``)."""
    if not settings.sms_push_token:
        raise SettingsError("SMS_PUSH_TOKEN is required for the Aliyun push endpoints")
    return [
        web.post(REPORT_PATH, push_handler("SmsReport", settings.sms_push_token, report_event, on_event)),
        web.post(UP_PATH, push_handler("SmsUp", settings.sms_push_token, up_event, on_event)),
    ]
