"""After a full headless demo, no secret appears anywhere the run produced.

The demo runs with every log record captured at DEBUG (a handler on the root logger, and
``caplog``), with a second plan — a flight plan whose targets are revealed only a month later —
drawn beside the demo's own, so a drawn firing's secret must still be hidden at the end. Then
everything is searched: the logs, the demo's printed lines, every public page and bundle file,
every outbox row rendered as it would be sent, and every file under the data directory except the
database. Searched for: the bot token (and its secret part), the SMS auth token, the webhook
secret, every invite code handed out, each unrevealed firing secret and every firing's salt key
(hex, base64, raw).
"""

from __future__ import annotations

import base64
import io
import json
import logging
import tomllib
from datetime import timedelta
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from bot.demo import DEMO_START, ROOT, Demo, _toml
from bot.metrics import make_metrics_app
from bot.runtime import Runtime
from bot.web import make_app
from core import db as dbmod
from core.compose import compose
from core.settings import Settings

FLIGHT_PLAN = ROOT / "examples" / "plans" / "flight-hazchem.toml"
WEBHOOK_SECRET = "tg-webhook-secret-never-shown-4711"
METRICS_TOKEN = "metrics-bearer-5d1e0c7a9b"
DB_SUFFIXES = (".sqlite3", ".sqlite3-wal", ".sqlite3-shm", ".sqlite3-journal")


class DemoWithFlight(Demo):
    """The demo, plus a flight plan drawn at the same time whose targets stay sealed for 30 days."""

    async def add_plan(self):
        from services import plans

        plan = await super().add_plan()
        spec = tomllib.loads(FLIGHT_PLAN.read_text(encoding="utf-8"))
        fire = (DEMO_START + timedelta(days=1, hours=1)).astimezone(self.settings.zone)
        spec["schedule"] = {"dates": [fire.strftime("%Y-%m-%d %H:%M")], "announce_days": 1}
        spec["window"] = {"start_after_days": 30, "days": 3, "start_time": "08:30"}
        path = self.settings.data_dir / "flight-plan.toml"
        path.write_text(_toml(spec), encoding="utf-8")
        await plans.add_plan(path, self.clock)
        return plan


@pytest.fixture
def all_logs():
    """Every record of every logger at DEBUG, formatted with its traceback, into one buffer."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    saved = root.level, {name: logging.getLogger(name).level for name in logging.root.manager.loggerDict}
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield stream
    root.removeHandler(handler)
    root.setLevel(saved[0])
    for name, level in saved[1].items():
        logging.getLogger(name).setLevel(level)


def encodings(secret: bytes) -> list[str]:
    """The ways a binary secret could be written out."""
    return [
        secret.hex(),
        secret.hex().upper(),
        base64.b64encode(secret).decode(),
        base64.urlsafe_b64encode(secret).decode().rstrip("="),
        repr(secret)[2:-1],
    ]


async def hidden_firing_secrets(clock) -> list[bytes]:
    """Secrets of firings whose secret is not public at the end of the run: not drawn, or a sealed flight draw."""
    from models.draws import Draw, FiringSecret, FiringStatus

    hidden = []
    for row in await FiringSecret.all().prefetch_related("firing", "firing__plan"):
        firing = row.firing
        if row.salt_key is not None:  # protocol v2: never published, only in an audited disclosure
            hidden.append(bytes(row.salt_key))
        if firing.status != FiringStatus.DRAWN:
            hidden.append(bytes(row.secret))
        elif firing.plan.flight and await Draw.filter(draw_ref=firing.draw_ref).exists():
            hidden.append(bytes(row.secret))  # sealed: its window starts 30 days after the run
    return hidden


def invite_codes(sim) -> list[str]:
    """Every ``/start CODE`` the simulated people sent."""
    codes = []
    for update in sim.updates:
        text = (update.get("message") or {}).get("text", "")
        if text.startswith("/start "):
            codes.append(text.split(" ", 1)[1].strip())
    return codes


async def public_pages(settings: Settings, clock) -> dict[str, bytes]:
    """Every public page and every bundle file the app serves after the run."""
    from models.draws import Draw

    rt = Runtime(settings=settings, clock=clock)
    server = TestServer(make_app(rt))
    await server.start_server()
    month = clock.now().astimezone(settings.zone).strftime("%Y-%m")
    paths = ["/", "/plans", "/draws", "/entities?q=青岛", f"/reports/{month}", "/healthz"]
    for draw in await Draw.all():
        base = f"/draws/{draw.draw_ref}"
        paths += [base, base + "/bundle.zip", base + "?format=json"]
        paths += [
            f"{base}/bundle/{name}"
            for name in ("draw.json", "pool.tsv", "inspectors.tsv", "recusals.tsv", "sealed.json")
        ]
    metrics = TestServer(make_metrics_app(rt))  # /metrics has a listener of its own
    await metrics.start_server()
    pages: dict[str, bytes] = {}
    try:
        async with aiohttp.ClientSession() as http:
            for path in paths:
                async with http.get(str(server.make_url(path))) as r:
                    pages[path] = await r.read()
                    if path in ("/", "/plans", "/draws", f"/reports/{month}"):
                        assert r.status == 200, path
            bearer = {"Authorization": f"Bearer {settings.metrics_token}"}
            async with http.get(str(metrics.make_url("/metrics")), headers=bearer) as r:
                assert r.status == 200
                pages["metrics:/metrics"] = await r.read()
    finally:
        await server.close()
        await metrics.close()
    return pages


async def rendered_outbox(settings: Settings) -> list[str]:
    """Each outbox row's context, and the message as the dispatcher would compose it."""
    from models.messaging import Outbox

    out = []
    for row in await Outbox.all():
        out.append(json.dumps(row.context, ensure_ascii=False))
        message = compose(row.template, row.context, row.locale, row.address or "0", data_dir=settings.data_dir)
        out.append(message.text)
        out += [b.label + b.data for line in message.buttons for b in line]
        if message.poll is not None:
            out.append(message.poll.question + "".join(message.poll.options))
        for blob in (message.document, message.photo):
            if blob:
                out.append(blob.decode("latin-1"))
    return out


def data_files(data_dir: Path) -> dict[str, str]:
    """Every file under the data directory except the database itself."""
    return {
        str(p): p.read_bytes().decode("latin-1")
        for p in sorted(data_dir.rglob("*"))
        if p.is_file() and not p.name.endswith(DB_SUFFIXES)
    }


async def test_no_secret_leaks_anywhere_after_a_full_demo(tmp_path, all_logs, caplog):
    caplog.set_level(logging.DEBUG)
    settings = Settings(
        data_dir=tmp_path, locale="en", telegram_webhook_secret=WEBHOOK_SECRET, metrics_token=METRICS_TOKEN
    )
    printed: list[str] = []
    demo = DemoWithFlight(settings, headless=True, out=printed.append)
    assert await demo.run() == 0

    await dbmod.init(demo.settings)
    try:
        hidden = await hidden_firing_secrets(demo.clock)
        pages = await public_pages(demo.settings, demo.clock)
        outbox = await rendered_outbox(demo.settings)
    finally:
        await dbmod.close()
    codes = invite_codes(demo.tg)
    token = demo.settings.telegram_token
    secrets = {
        "bot token": token,
        "bot token secret": token.split(":", 1)[1],
        "sms auth token": demo.settings.sms_auth_token,
        "webhook secret": WEBHOOK_SECRET,
        "metrics token": METRICS_TOKEN,
    }
    secrets |= {f"invite code {i}": c for i, c in enumerate(codes)}
    for i, secret in enumerate(hidden):
        for j, form in enumerate(encodings(secret)):
            secrets[f"firing secret {i} ({j})"] = form
    # the search must have something to find, and places to look
    assert hidden, "the sealed flight draw keeps its secret"
    assert len(codes) >= 3 and all(len(c) >= 20 for c in codes)
    assert caplog.records and all_logs.getvalue()
    assert any("draws/" in p for p in pages) and outbox

    haystacks: dict[str, str] = {
        "captured logs": all_logs.getvalue(),
        "caplog": "\n".join(f"{r.getMessage()} {r.exc_text or ''} {r.args!r}" for r in caplog.records),
        "printed": "\n".join(printed),
        **{f"page {p}": body.decode("utf-8", "replace") for p, body in pages.items()},
        **{f"bundle bytes {p}": body.decode("latin-1") for p, body in pages.items() if "bundle" in p},
        **{f"outbox {i}": text for i, text in enumerate(outbox)},
        **{f"file {p}": text for p, text in data_files(demo.settings.data_dir).items()},
    }
    leaks = [
        f"{name} in {where}"
        for where, text in haystacks.items()
        for name, secret in secrets.items()
        if secret and secret in text
    ]
    assert leaks == [], "\n".join(leaks)
    raw = [bytes(s) for s in hidden]
    assert not any(s in body for s in raw for body in pages.values())
