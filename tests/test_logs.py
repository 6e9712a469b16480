"""Structured logs carry no secret: not in the message, its arguments or a traceback."""

from __future__ import annotations

import io
import json
import logging

import pytest

from core.logs import redact, setup_logging
from core.settings import Settings

TOKEN = "7123456789:AAH3kq_Zx-9bTqW1mD0rS2vLp4yUe8oNfGc"
SMS = "sms-auth-token-0f9e8d7c6b5a"


@pytest.fixture
def captured():
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    settings = Settings(telegram_token=TOKEN, sms_auth_token=SMS, telegram_webhook_secret="hook-secret-123")
    yield stream, lambda fmt="json": setup_logging(settings, fmt=fmt, stream=stream)
    root.handlers[:], _ = saved
    root.setLevel(saved[1])


def test_json_lines_redact_tokens_in_message_args_and_traceback(captured):
    stream, setup = captured
    setup("json")
    log = logging.getLogger("inspectbot.test")
    log.info("POST https://api.telegram.org/bot%s/sendMessage ok", TOKEN)
    log.warning("sms auth %s failed for %s", SMS, "+8613800138000")
    try:
        raise RuntimeError(f"connect to https://api.telegram.org/file/bot{TOKEN}/photos/a.jpg failed")
    except RuntimeError:
        log.exception("webhook secret hook-secret-123 rejected")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [x["level"] for x in lines] == ["INFO", "WARNING", "ERROR"]
    assert lines[0]["msg"] == "POST https://api.telegram.org/bot[REDACTED]/sendMessage ok"
    assert lines[0]["logger"] == "inspectbot.test" and lines[0]["ts"].endswith("+00:00")
    assert "exc" in lines[2] and "RuntimeError" in lines[2]["exc"]
    text = stream.getvalue()
    for secret in (TOKEN, SMS, "hook-secret-123", TOKEN.split(":")[1]):
        assert secret not in text
    assert text.count("[REDACTED]") >= 4


def test_key_value_format(captured):
    stream, setup = captured
    setup("kv")
    logging.getLogger("inspectbot").info("drew %s: %d inspections", "P1/2026-12-01", 40)
    line = stream.getvalue().strip()
    assert line.startswith("ts=") and 'level=INFO logger=inspectbot msg="drew P1/2026-12-01: 40 inspections"' in line


def test_redact_finds_tokens_it_was_not_told_about():
    other = "5555555:BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB"
    assert redact(f"token {other} in text") == "token [REDACTED] in text"
    assert redact("GET /bot123:abc/getMe") == "GET /bot[REDACTED]/getMe"
    assert redact("nothing here: 2026-12-01 09:00, /bottles/1") == "nothing here: 2026-12-01 09:00, /bottles/1"
    with pytest.raises(ValueError):
        setup_logging(fmt="xml")
