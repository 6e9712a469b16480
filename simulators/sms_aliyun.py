"""A small Alibaba Cloud SMS (dysmsapi 2017-05-25) stand-in: SendSms checked, pushes sent.

Modest on purpose (the Twilio simulator is the main one). It checks what
shared/oracles/sms-gateway-aliyun.md documents: the RPC common parameters and their V2 signature
(recomputed with the AccessKey secret; a reused nonce or a stale Timestamp is refused), ``Action``
and ``Version``, the required business parameters, an approved ``SignName`` and ``TemplateCode``,
a ``TemplateParam`` that is a JSON object of strings naming every template variable, and mainland
mobile numbers (at most 1000). Business errors come back as HTTP 200 with an ``isv.*`` code, as the
oracle believes; gateway errors (signature, AccessKey, missing parameter) as HTTP 4xx — both
unverified against the real service. It answers JSON only (``Format=JSON``).

It can push SmsReport (receipts) and SmsUp (replies) to our endpoints as JSON arrays, the shape
of ``sms-samples/aliyun-*-http-push.json``.
"""

from __future__ import annotations

import json
import re
import secrets
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import parse_qsl

import aiohttp
from aiohttp import web

from domain.signatures import verify_aliyun_signature

COMMON = (
    "AccessKeyId",
    "Action",
    "Format",
    "SignatureMethod",
    "SignatureNonce",
    "SignatureVersion",
    "Timestamp",
    "Version",
    "Signature",
)
BUSINESS = ("PhoneNumbers", "SignName", "TemplateCode")
TIMESTAMP_WINDOW = timedelta(minutes=31)
MAINLAND_MOBILE = re.compile(r"^(?:\+86|0086|86)?(1[3-9]\d{9})$")
FAULTS = {
    "isv.BUSINESS_LIMIT_CONTROL": (200, "触发分钟级流控Permits:1"),
    "isv.DAY_LIMIT_CONTROL": (200, "触发日发送限额"),
    "isp.SYSTEM_ERROR": (200, "isp.SYSTEM_ERROR"),
    "InternalError": (500, "The request processing has failed due to some unknown error."),
}


class AliyunError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

    def response(self) -> web.Response:
        return web.json_response(
            {"Code": self.code, "Message": self.message, "RequestId": _request_id()}, status=self.status
        )


@dataclass
class SentSms:
    biz_id: str
    phones: list[str]
    sign_name: str
    template_code: str
    params: dict[str, str]
    out_id: str = ""
    reported: bool = False


@dataclass
class AliyunSmsStub:
    access_key_id: str
    access_key_secret: str = field(repr=False)
    sign_names: tuple[str, ...] = ("检查通",)
    templates: dict[str, tuple[str, ...]] = field(default_factory=lambda: {"SMS_000001": ("content",)})
    illegal: set[str] = field(default_factory=set)  # numbers answered isv.MOBILE_NUMBER_ILLEGAL
    undeliverable: set[str] = field(default_factory=set)  # numbers whose receipt says failure
    sent: list[SentSms] = field(default_factory=list)
    requests: int = 0
    _nonces: set[str] = field(default_factory=set, repr=False)
    _faults: deque = field(default_factory=deque, repr=False)
    _runner: web.AppRunner | None = field(default=None, repr=False)
    url: str = ""

    def inject(self, code: str, count: int = 1) -> None:
        if code not in FAULTS:
            raise ValueError(f"fault must be one of {', '.join(FAULTS)}")
        self._faults.extend([code] * count)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/", self._handle)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self._runner = web.AppRunner(self.app())
        await self._runner.setup()
        await web.TCPSite(self._runner, host, port).start()
        self.url = f"http://{host}:{self._runner.addresses[0][1]}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _handle(self, request: web.Request) -> web.Response:
        self.requests += 1
        params = dict(request.query)
        if request.method == "POST":
            params.update(parse_qsl((await request.read()).decode("utf-8"), keep_blank_values=True))
        try:
            self._check_common(request.method, params)
            if self._faults:
                code = self._faults.popleft()
                status, message = FAULTS[code]
                raise AliyunError(status, code, message)
            phones = self._check_business(params)
        except AliyunError as err:
            return err.response()
        biz_id = f"{secrets.randbelow(10**18):018d}^0"
        self.sent.append(
            SentSms(
                biz_id,
                phones,
                params["SignName"],
                params["TemplateCode"],
                json.loads(params.get("TemplateParam") or "{}"),
                params.get("OutId", ""),
            )
        )
        return web.json_response({"Code": "OK", "Message": "OK", "BizId": biz_id, "RequestId": _request_id()})

    def _check_common(self, method: str, params: dict[str, str]) -> None:
        for name in COMMON:
            if not params.get(name):
                raise AliyunError(400, f"Missing{name}", f"{name} is mandatory for this action.")
        if params["Action"] != "SendSms":
            raise AliyunError(
                404, "InvalidAction.NotFound", "Specified api is not found, please check your url and method."
            )
        if params["Version"] != "2017-05-25":
            raise AliyunError(400, "InvalidVersion", "Specified parameter Version is not valid.")
        if params["Format"] != "JSON":
            raise AliyunError(400, "InvalidParameter", "this stub answers Format=JSON only")
        if params["SignatureMethod"] != "HMAC-SHA1" or params["SignatureVersion"] != "1.0":
            raise AliyunError(400, "InvalidParameter", "SignatureMethod HMAC-SHA1 / SignatureVersion 1.0 expected")
        if params["AccessKeyId"] != self.access_key_id:
            raise AliyunError(404, "InvalidAccessKeyId.NotFound", "Specified access key is not found.")
        if not verify_aliyun_signature(method, params, self.access_key_secret):
            raise AliyunError(400, "SignatureDoesNotMatch", "Specified signature is not matched with our calculation.")
        try:
            when = datetime.strptime(params["Timestamp"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        except ValueError:
            raise AliyunError(400, "InvalidTimeStamp.Format", "Specified time stamp is not valid.") from None
        if abs(datetime.now(UTC) - when) > TIMESTAMP_WINDOW:
            raise AliyunError(400, "InvalidTimeStamp.Expired", "Specified time stamp or date value is expired.")
        if params["SignatureNonce"] in self._nonces:
            raise AliyunError(400, "SignatureNonceUsed", "Specified signature nonce was used already.")
        self._nonces.add(params["SignatureNonce"])

    def _check_business(self, params: dict[str, str]) -> list[str]:
        for name in BUSINESS:
            if not params.get(name):
                raise AliyunError(400, f"Missing{name}", f"{name} is mandatory for this action.")
        if params["SignName"] not in self.sign_names:
            raise AliyunError(200, "isv.SMS_SIGNATURE_ILLEGAL", "该账号下找不到对应签名")
        variables = self.templates.get(params["TemplateCode"])
        if variables is None:
            raise AliyunError(200, "isv.SMS_TEMPLATE_ILLEGAL", "该账号下找不到对应模板")
        try:
            values = json.loads(params.get("TemplateParam") or "{}")
        except ValueError:
            values = None
        if not isinstance(values, dict) or not all(isinstance(v, str) for v in values.values()):
            raise AliyunError(200, "isv.INVALID_JSON_PARAM", "JSON参数不合法，只接受字符串值")
        if any(v not in values for v in variables):
            raise AliyunError(200, "isv.TEMPLATE_MISSING_PARAMETERS", "模板变量缺少对应参数值")
        numbers = params["PhoneNumbers"].split(",")
        if len(numbers) > 1000:
            raise AliyunError(200, "isv.MOBILE_COUNT_OVER_LIMIT", "手机号码数量超过限制")
        phones = []
        for number in numbers:
            match = MAINLAND_MOBILE.match(number.strip())
            if match is None or match.group(1) in self.illegal:
                raise AliyunError(200, "isv.MOBILE_NUMBER_ILLEGAL", "非法手机号")
            phones.append(match.group(1))
        return phones

    async def push_reports(self, url: str) -> int:
        """POST one SmsReport batch for every message not reported yet; return the answer's status."""
        now = datetime.now(timezone(timedelta(hours=8))).strftime("%Y-%m-%d %H:%M:%S")
        items = []
        for sms in self.sent:
            if sms.reported:
                continue
            sms.reported = True
            for phone in sms.phones:
                ok = phone not in self.undeliverable
                items.append(
                    {
                        "phone_number": phone,
                        "send_time": now,
                        "report_time": now,
                        "success": ok,
                        "err_code": "DELIVERED" if ok else "MK:0001",
                        "err_msg": "用户接收成功" if ok else "MK:0001",
                        "sms_size": "1",
                        "biz_id": sms.biz_id,
                        "out_id": sms.out_id,
                    }
                )
        return await _post_json(url, items)

    async def push_up(self, url: str, phone: str, content: str, sequence_id: str | int | None = None) -> int:
        """POST one SmsUp (a reply from ``phone``) and return the answer's status."""
        now = datetime.now(timezone(timedelta(hours=8))).strftime("%Y-%m-%d %H:%M:%S")
        item = {
            "phone_number": phone,
            "content": content,
            "send_time": now,
            "dest_code": "",
            "sequence_id": sequence_id if sequence_id is not None else str(secrets.randbelow(10**10)),
        }
        return await _post_json(url, [item])


def _request_id() -> str:
    return str(uuid.uuid4()).upper()


async def _post_json(url: str, payload: list[dict]) -> int:
    async with aiohttp.ClientSession() as session:
        async with session.post(
            url,
            data=json.dumps(payload, ensure_ascii=False).encode("utf-8"),
            headers={"Content-Type": "application/json; charset=utf-8"},
        ) as resp:
            await resp.read()
            return resp.status
