"""Structured logs without secrets, for the long-running commands (``serve``, ``demo``).

:func:`setup_logging` sends every record to stderr as one JSON object per line (or as
``key=value`` pairs for a terminal) through :class:`RedactingFilter`, which removes the
configured secrets (the bot token, the SMS auth token, the webhook secret, the SMS push
token) and anything shaped like a Telegram bot token or a Bot API URL carrying one — from the
message, its arguments and the traceback — before any formatter sees the record. HTTP
client libraries log request URLs, and a Bot API URL contains the token: that is the leak
this guards against.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TextIO

from aiohttp.http_exceptions import HttpProcessingError

from core.db import transient

REDACTED = "[REDACTED]"
# A Telegram bot token: the bot's numeric id, a colon, 35 URL-safe characters.
BOT_TOKEN = re.compile(r"\b\d{5,}:[A-Za-z0-9_-]{30,}")
# A Bot API URL: .../bot<token>/method or .../file/bot<token>/path
BOT_URL = re.compile(r"(/(?:file/)?bot)\d+:[^/\s\"']+")
MIN_SECRET = 6  # shorter configured "secrets" are not redacted (they would match everywhere)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every secret, bot token and Bot API URL token replaced."""
    return _redact(text, _longest_first(secrets))


def _longest_first(secrets: Iterable[str]) -> tuple[str, ...]:
    """The secrets worth redacting, longest first (a secret containing another goes whole)."""
    return tuple(sorted({s for s in secrets if s and len(s) >= MIN_SECRET}, key=len, reverse=True))


def _redact(text: str, ordered: tuple[str, ...]) -> str:
    for secret in ordered:
        if secret in text:
            text = text.replace(secret, REDACTED)
    text = BOT_TOKEN.sub(REDACTED, text)
    return BOT_URL.sub(_keep_prefix, text) if "bot" in text else text


def _keep_prefix(m: re.Match[str]) -> str:
    return str(m.group(1)) + REDACTED


class RedactingFilter(logging.Filter):
    """Rewrites each record so that its message and traceback carry no secret."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = tuple(s for s in secrets if s)
        self._ordered = _longest_first(self.secrets)  # worked out once, not per record

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: keep what there is
            message = f"{record.msg} {record.args}"
        record.msg, record.args = _redact(message, self._ordered), ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = _redact(record.exc_text, self._ordered)
        if record.stack_info:
            record.stack_info = _redact(record.stack_info, self._ordered)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts (UTC, ISO 8601), level, logger, msg, and exc if any."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exc"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False)


class KeyValueFormatter(logging.Formatter):
    """``ts=… level=INFO logger=inspectbot msg="…"`` (logfmt), the traceback quoted too."""

    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        parts = [
            f"ts={ts}",
            f"level={record.levelname}",
            f"logger={record.name}",
            f"msg={json.dumps(record.getMessage(), ensure_ascii=False)}",
        ]
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            parts.append(f"exc={json.dumps(record.exc_text, ensure_ascii=False)}")
        return " ".join(parts)


def settings_secrets(settings: object) -> tuple[str, ...]:
    """The secrets a :class:`core.settings.Settings` holds."""
    names = (
        "telegram_token",
        "sms_auth_token",
        "telegram_webhook_secret",
        "sms_push_token",
        "metrics_token",
        "wecom_secret",
        "wecom_token",
        "wecom_aes_key",
    )
    return tuple(getattr(settings, n, "") for n in names if getattr(settings, n, ""))


def setup_logging(
    settings: object = None, *, fmt: str = "json", verbose: bool = False, stream: TextIO | None = None
) -> logging.Handler:
    """Replace the root logger's handlers with one redacting handler; returns it.

    ``fmt`` is ``"json"`` (JSON lines, for a service under systemd/journald or a log shipper) or
    ``"kv"`` (key=value, for a terminal)."""
    if fmt not in ("json", "kv"):
        raise ValueError(f"log format must be json or kv, not {fmt!r}")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(RedactingFilter(settings_secrets(settings) if settings is not None else ()))
    handler.setFormatter(JsonFormatter() if fmt == "json" else KeyValueFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    quiet_libraries(verbose=verbose)
    return handler


def quiet_libraries(*, verbose: bool = False) -> None:
    """Keep the libraries whose debug output carries data we must not log at WARNING/INFO.

    Tortoise's ``tortoise.db_client`` and aiosqlite/asyncpg log every statement with its values
    (a firing secret, a hashed invite, personal data); python-telegram-bot's DEBUG logs its Bot API
    URL (with the token) and every update in full (``/start CODE`` carries an invite code); httpx
    logs each request URL at INFO. None of these is a configured secret the filter could know."""
    for noisy in ("tortoise", "aiosqlite", "asyncpg", "httpcore", "apscheduler.executors.default"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    logging.getLogger("telegram").setLevel(logging.INFO)
    logging.getLogger("httpx").setLevel(logging.WARNING if not verbose else logging.INFO)


class BadRequestAsWarning(logging.Filter):
    """aiohttp logs a request it cannot parse (a request line or header over its limit, garbage on
    the port) as ``ERROR`` with a traceback; that is the sender's fault, not ours. Keep one
    ``WARNING`` line saying what was refused, and no traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError) and (exc.code or 400) < 500:
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.msg = f"{record.getMessage()}: {type(exc).__name__} {exc.code}: {str(exc.message)[:200]}"
            record.args, record.exc_info, record.exc_text = None, None, None
        return True


def quiet_bad_requests() -> None:
    """Install :class:`BadRequestAsWarning` on aiohttp's server logger (once)."""
    server = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, BadRequestAsWarning) for f in server.filters):
        server.addFilter(BadRequestAsWarning())


def protect(settings: object) -> None:
    """Without replacing anyone's handlers: quiet the leaky libraries and make every handler of
    the root logger redact ``settings``' secrets (replacing the filter an earlier call added).

    For programs that configure logging themselves or are run inside another (the demo, tests);
    call it again when the secrets change (the demo learns its simulators' tokens at start)."""
    quiet_libraries()
    secrets = settings_secrets(settings)
    for handler in logging.getLogger().handlers:
        for old in [f for f in handler.filters if isinstance(f, RedactingFilter)]:
            handler.removeFilter(old)
        handler.addFilter(RedactingFilter(secrets))


def not_stored(logger: logging.Logger, exc: BaseException, message: str, *args: object) -> None:
    """Log an inbound event that could not be stored (the caller answers 503 or retries). While
    the database is away every webhook fails this way, and a traceback each would bury the log:
    a transient failure is one WARNING line with its cause; anything else keeps its traceback."""
    if transient(exc):
        logger.warning(message + " (database unavailable: %s: %s)", *args, type(exc).__name__, exc)
    else:
        logger.error(message, *args, exc_info=exc)
