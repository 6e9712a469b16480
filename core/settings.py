"""Settings: built once from the environment (and an optional ``.env``), then frozen.

Every knob the service has is here, with its default. Nothing else in the code reads
``os.environ``; pass a :class:`Settings` instead, so tests can build their own.
"""

from __future__ import annotations

import ipaddress
import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from domain.beacon import QUICKNET, BeaconError, Chain
from domain.network import Network, parse_networks

LOCALES = ("zh-CN", "en")
SMS_PROVIDERS = ("twilio", "aliyun")
#: Where our web app takes a Twilio gateway's replies, under ``public_url``: bot/channels/sms_twilio.py
#: serves it, the SMS simulator (simulators/sms.py) posts there by default.
SMS_INBOUND_PATH = "/sms/inbound"
BEACONS = ("none", "drand", "values")
#: drand's public HTTP relays, tried in order.
DRAND_RELAYS = (
    "https://api.drand.sh",
    "https://api2.drand.sh",
    "https://api3.drand.sh",
    "https://drand.cloudflare.com",
)


class SettingsError(ValueError):
    """A configuration value is missing or malformed."""


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path("data")
    database_url: str = ""
    tz: str = "Asia/Shanghai"
    locale: str = "zh-CN"
    # Secrets: never logged, never rendered (see __repr__).
    telegram_token: str = field(default="", repr=False)
    telegram_api_url: str = ""  # empty = the real Bot API
    telegram_webhook_secret: str = field(default="", repr=False)
    sms_account_sid: str = ""
    sms_auth_token: str = field(default="", repr=False)
    sms_api_url: str = ""  # empty = the provider's real endpoint
    sms_provider: str = "twilio"  # "twilio" (any Twilio-compatible gateway) or "aliyun"
    sms_from: str = ""  # Twilio: our sender number (E.164), unless a Messaging Service is used
    sms_messaging_service_sid: str = ""  # Twilio: MG…; sent instead of From when set
    sms_sign_name: str = ""  # Aliyun: the approved signature (签名)
    sms_template_code: str = ""  # Aliyun: the approved template carrying our rendered text
    sms_template_param: str = "content"  # Aliyun: that template's variable name
    sms_push_token: str = field(default="", repr=False)  # Aliyun: secret path segment of the push URLs
    # WeCom (企业微信) self-built application: enabled when corp id and secret are set
    wecom_corp_id: str = ""
    wecom_secret: str = field(default="", repr=False)  # the application's Secret
    wecom_agent_id: int = 0
    wecom_token: str = field(default="", repr=False)  # callback Token
    wecom_aes_key: str = field(default="", repr=False)  # callback EncodingAESKey (43 characters)
    wecom_api_url: str = ""  # empty = https://qyapi.weixin.qq.com
    # licensed WeCom accounts: the application may send accounts x 200 messages (person-times) a
    # day; the dispatcher counts them and holds the rest until the next day. 0: not counted.
    wecom_accounts: int = 0
    # bind a member whose userid the directory lacks by their mobile number (contacts API user/getuserid)
    wecom_bind_by_mobile: bool = False
    public_url: str = "http://127.0.0.1:8080"
    telegram_mode: str = "polling"  # "polling" or "webhook" (served at {public_url}/telegram/webhook)
    web_host: str = "127.0.0.1"
    web_port: int = 8080
    # /metrics has a listener of its own, never the public web port; 0 turns it off. Off the
    # loopback address it needs a bearer token.
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 9464
    metrics_token: str = field(default="", repr=False)
    # The reverse proxies in front of the web app ("10.0.0.5, 10.1.0.0/16"): from them, the visitor's
    # address is read from X-Forwarded-For (domain/network.py); empty = the connection's peer.
    trusted_proxies: str = ""
    checkin_radius_m: int = 500  # a check-in farther than this from the entity is flagged (never refused)
    # The beacon of scheduled draws (docs/draw-protocol.md §3.3): "drand" (a drand round fetched
    # from the relays), "values" (values of public sources named at announce time, typed in by
    # a coordinator and confirmed by a second), or "none" (no beacon: the seed rests on the
    # secret alone, as before).
    beacon: str = "none"
    # ``serve`` runs scheduled draws only with a beacon: INSPECTBOT_BEACON=none needs this
    # acknowledgement (INSPECTBOT_BEACON_NONE_ACKNOWLEDGED=yes), so no deployment drifts into
    # seeds that rest on the secret alone by leaving the variable unset.
    beacon_none_acknowledged: bool = False
    drand_relays: tuple[str, ...] = DRAND_RELAYS
    # A drand chain other than quicknet, as its chain info JSON (a local test chain: the demo's
    # simulator prints it); empty = the League of Entropy's quicknet.
    drand_chain: str = ""
    # "values": the sources named at each announcement, "|"-separated; "{date}" stands for the
    # draw's local date (e.g. "福彩3D {date} 开奖号码|体彩排列5 {date} 开奖号码").
    beacon_sources: str = ""
    # How long a scheduled draw waits for its beacon before the plan's coordinators are alerted
    # (it keeps trying until the scheduler's grace runs out, then the fire is reported missed).
    beacon_wait_minutes: int = 30
    off_schedule_ttl_hours: int = 24  # an off-schedule draw asked for in chat lapses unconfirmed after this
    # ``inspectbot demo`` only: where its simulators and their page listen (0 = any free port)
    demo_telegram_port: int = 8081
    demo_sms_port: int = 8082
    demo_sim_port: int = 8090
    demo_wecom_port: int = 8084  # ``--channel wecom``: the WeCom simulator, in place of the Telegram one

    def __post_init__(self) -> None:
        if self.locale not in LOCALES:
            raise SettingsError(f"INSPECTBOT_LOCALE must be one of {', '.join(LOCALES)}, not {self.locale!r}")
        try:
            ZoneInfo(self.tz)
        except Exception as exc:  # ZoneInfoNotFoundError, ValueError
            raise SettingsError(f"INSPECTBOT_TZ {self.tz!r} is not a known time zone") from exc
        if self.sms_provider not in SMS_PROVIDERS:
            raise SettingsError(f"SMS_PROVIDER must be one of {', '.join(SMS_PROVIDERS)}, not {self.sms_provider!r}")
        if self.telegram_mode not in ("polling", "webhook"):
            raise SettingsError(f"TELEGRAM_MODE must be polling or webhook, not {self.telegram_mode!r}")
        if self.checkin_radius_m <= 0:
            raise SettingsError(
                f"INSPECTBOT_CHECKIN_RADIUS_M must be a positive number of metres, not {self.checkin_radius_m}"
            )
        if self.beacon not in BEACONS:
            raise SettingsError(f"INSPECTBOT_BEACON must be one of {', '.join(BEACONS)}, not {self.beacon!r}")
        if self.beacon == "drand" and not self.drand_relays:
            raise SettingsError("INSPECTBOT_DRAND_RELAYS names no relay")
        if self.beacon == "values" and not self.beacon_sources.strip():
            raise SettingsError(
                "INSPECTBOT_BEACON=values needs INSPECTBOT_BEACON_SOURCES (the public sources, '|'-separated)"
            )
        if self.beacon_wait_minutes < 0:
            raise SettingsError(f"INSPECTBOT_BEACON_WAIT_MINUTES must not be negative, not {self.beacon_wait_minutes}")
        if self.drand_chain:
            try:
                Chain.from_dict(json.loads(self.drand_chain))
            except (ValueError, BeaconError) as exc:
                raise SettingsError(f"INSPECTBOT_DRAND_CHAIN is not a drand chain info: {exc}") from None
        if not 0 < self.off_schedule_ttl_hours <= 24 * 30:
            raise SettingsError(
                f"INSPECTBOT_OFF_SCHEDULE_TTL_HOURS must be 1 to 720 hours, not {self.off_schedule_ttl_hours}"
            )
        if not 0 <= self.metrics_port <= 65535:
            raise SettingsError(f"INSPECTBOT_METRICS_PORT must be a port number (0: off), not {self.metrics_port}")
        if self.metrics_port and self.metrics_port == self.web_port:
            raise SettingsError(
                f"INSPECTBOT_METRICS_PORT ({self.metrics_port}) must differ from INSPECTBOT_WEB_PORT: "
                "the public web port serves no metrics"
            )
        if self.metrics_port and not self.metrics_token and not loopback(self.metrics_host):
            raise SettingsError(
                f"INSPECTBOT_METRICS_HOST {self.metrics_host!r} is not a loopback address: "
                "set INSPECTBOT_METRICS_TOKEN (scrapers then send Authorization: Bearer <token>)"
            )
        try:
            parse_networks(self.trusted_proxies)
        except ValueError as exc:
            raise SettingsError(f"INSPECTBOT_TRUSTED_PROXIES: {exc}") from None
        if self.wecom_corp_id and (not self.wecom_secret or self.wecom_agent_id <= 0):
            raise SettingsError("WECOM_CORP_ID needs WECOM_SECRET and a positive WECOM_AGENT_ID")
        if self.wecom_corp_id and (not self.wecom_token or len(self.wecom_aes_key) != 43):
            raise SettingsError("WECOM_CORP_ID needs WECOM_TOKEN and a 43-character WECOM_AES_KEY (callbacks)")
        if self.wecom_accounts < 0:
            raise SettingsError("WECOM_ACCOUNTS must be 0 (not counted) or the number of licensed accounts")
        if not self.database_url:
            object.__setattr__(self, "database_url", default_database_url(self.data_dir))

    @property
    def proxies(self) -> tuple[Network, ...]:
        """The trusted reverse proxies, parsed (checked when the settings were made)."""
        return parse_networks(self.trusted_proxies)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.tz)

    @property
    def dialect(self) -> str:
        return "postgres" if self.database_url.startswith(("postgres://", "postgresql://", "asyncpg://")) else "sqlite"

    @property
    def chain(self) -> Chain:
        """The drand chain whose rounds scheduled draws use (quicknet unless a test chain is set)."""
        return Chain.from_dict(json.loads(self.drand_chain)) if self.drand_chain else QUICKNET

    def with_(self, **changes: Any) -> Settings:
        return replace(self, **changes)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, dotenv: bool = True) -> Settings:
        if env is None:
            if dotenv:
                from dotenv import dotenv_values

                values = {k: v for k, v in dotenv_values(".env").items() if v is not None}
                env = {**values, **os.environ}
            else:
                env = dict(os.environ)
        data_dir = Path(env.get("INSPECTBOT_DATA_DIR", "data"))
        return cls(
            data_dir=data_dir,
            database_url=env.get("DATABASE_URL", ""),
            tz=env.get("INSPECTBOT_TZ", "Asia/Shanghai"),
            locale=env.get("INSPECTBOT_LOCALE", "zh-CN"),
            telegram_token=env.get("TELEGRAM_TOKEN", ""),
            telegram_api_url=env.get("TELEGRAM_API_URL", ""),
            telegram_webhook_secret=env.get("TELEGRAM_WEBHOOK_SECRET", ""),
            sms_account_sid=env.get("SMS_ACCOUNT_SID", ""),
            sms_auth_token=env.get("SMS_AUTH_TOKEN", ""),
            sms_api_url=env.get("SMS_API_URL", ""),
            sms_provider=env.get("SMS_PROVIDER", "twilio"),
            sms_from=env.get("SMS_FROM", ""),
            sms_messaging_service_sid=env.get("SMS_MESSAGING_SERVICE_SID", ""),
            sms_sign_name=env.get("SMS_SIGN_NAME", ""),
            sms_template_code=env.get("SMS_TEMPLATE_CODE", ""),
            sms_template_param=env.get("SMS_TEMPLATE_PARAM", "content"),
            sms_push_token=env.get("SMS_PUSH_TOKEN", ""),
            wecom_corp_id=env.get("WECOM_CORP_ID", ""),
            wecom_secret=env.get("WECOM_SECRET", ""),
            wecom_agent_id=_int(env, "WECOM_AGENT_ID", 0),
            wecom_token=env.get("WECOM_TOKEN", ""),
            wecom_aes_key=env.get("WECOM_AES_KEY", ""),
            wecom_api_url=env.get("WECOM_API_URL", ""),
            wecom_accounts=_int(env, "WECOM_ACCOUNTS", 0),
            wecom_bind_by_mobile=env.get("WECOM_BIND_BY_MOBILE", "").strip().lower() in ("1", "true", "yes"),
            public_url=env.get("INSPECTBOT_PUBLIC_URL", "http://127.0.0.1:8080"),
            telegram_mode=env.get("TELEGRAM_MODE", "polling"),
            web_host=env.get("INSPECTBOT_WEB_HOST", "127.0.0.1"),
            web_port=_int(env, "INSPECTBOT_WEB_PORT", 8080),
            metrics_host=env.get("INSPECTBOT_METRICS_HOST", "127.0.0.1"),
            metrics_port=_int(env, "INSPECTBOT_METRICS_PORT", 9464),
            metrics_token=env.get("INSPECTBOT_METRICS_TOKEN", ""),
            trusted_proxies=env.get("INSPECTBOT_TRUSTED_PROXIES", ""),
            checkin_radius_m=_int(env, "INSPECTBOT_CHECKIN_RADIUS_M", 500),
            beacon=env.get("INSPECTBOT_BEACON", "none").strip(),
            beacon_none_acknowledged=_yes(env, "INSPECTBOT_BEACON_NONE_ACKNOWLEDGED"),
            drand_relays=tuple(
                r.strip() for r in env.get("INSPECTBOT_DRAND_RELAYS", ",".join(DRAND_RELAYS)).split(",") if r.strip()
            ),
            drand_chain=env.get("INSPECTBOT_DRAND_CHAIN", "").strip(),
            beacon_sources=env.get("INSPECTBOT_BEACON_SOURCES", ""),
            beacon_wait_minutes=_int(env, "INSPECTBOT_BEACON_WAIT_MINUTES", 30),
            off_schedule_ttl_hours=_int(env, "INSPECTBOT_OFF_SCHEDULE_TTL_HOURS", 24),
            demo_telegram_port=_int(env, "INSPECTBOT_DEMO_TELEGRAM_PORT", 8081),
            demo_sms_port=_int(env, "INSPECTBOT_DEMO_SMS_PORT", 8082),
            demo_sim_port=_int(env, "INSPECTBOT_DEMO_SIM_PORT", 8090),
            demo_wecom_port=_int(env, "INSPECTBOT_DEMO_WECOM_PORT", 8084),
        )


def _int(env: dict[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, not {raw!r}") from None


def _yes(env: dict[str, str], name: str) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw in ("", "0", "no", "false"):
        return False
    if raw in ("1", "yes", "true"):
        return True
    raise SettingsError(f"{name} must be yes or no, not {raw!r}")


def loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only (``localhost``, 127.0.0.0/8, ::1)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip()).is_loopback
    except ValueError:
        return False  # a host name other than localhost, or 0.0.0.0's cousins: not loopback


def default_database_url(data_dir: Path) -> str:
    return f"sqlite://{(data_dir / 'inspectbot.sqlite3').as_posix()}"
