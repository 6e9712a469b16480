"""``/metrics`` off the public port (issue 13 §3): the public web app answers 404 for it; the
metrics app listens on its own address (``INSPECTBOT_METRICS_HOST``/``_PORT``, default
127.0.0.1:9464), optionally behind a bearer token; no series moves with one survey answer.
Real aiohttp servers on loopback, on SQLite and PostgreSQL."""

from __future__ import annotations

import socket
from datetime import UTC, datetime

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.app import Service
from bot.metrics import make_metrics_app
from bot.runtime import Runtime
from bot.web import make_app
from core.clock import FakeClock
from core.settings import Settings, SettingsError
from models.alerts import Alert
from models.surveys import Survey
from tests.web import world

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
TOKEN = "metrics-token-7f3a9c"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_the_public_port_serves_no_metrics(db, tmp_path):
    w = await world.build(tmp_path)
    async with TestClient(TestServer(make_app(Runtime(settings=db, clock=w.clock)))) as client:
        response = await client.get("/metrics")
        assert response.status == 404
        assert "inspectbot_" not in await response.text()
        assert (await client.get("/healthz")).status == 200  # the port itself is up


async def test_metrics_need_the_bearer_token_when_one_is_set(db, tmp_path):
    w = await world.build(tmp_path)
    rt = Runtime(settings=db.with_(metrics_token=TOKEN), clock=w.clock)
    async with TestClient(TestServer(make_metrics_app(rt), host="127.0.0.1")) as client:
        assert (await client.get("/metrics")).status == 401
        assert (await client.get("/metrics", headers={"Authorization": "Bearer wrong"})).status == 401
        assert (await client.get("/metrics", headers={"Authorization": TOKEN})).status == 401
        ok = await client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        assert ok.status == 200 and "inspectbot_outbox_depth" in await ok.text()
        bearer = {"Authorization": f"Bearer {TOKEN}"}
        assert (await client.get("/reports", headers=bearer)).status == 404  # it serves nothing else


async def test_no_series_moves_with_one_survey_answer(db, tmp_path):
    """The world has one answered survey with a complaint (an open ``survey_alert``)."""
    w = await world.build(tmp_path)
    await Alert.create(key="survey:1:improper", kind="survey_alert", departments=["SCJG"], created_at=w.clock.now())
    await Alert.create(key="unstaffable:1", kind="unstaffable", departments=["SCJG"], created_at=w.clock.now())
    rt = Runtime(settings=db, clock=w.clock)
    async with TestClient(TestServer(make_metrics_app(rt), host="127.0.0.1")) as client:
        body = await (await client.get("/metrics")).text()
    assert 'inspectbot_alerts_open{kind="unstaffable"} 1.0' in body
    assert "survey_alert" not in body
    # survey statuses are coarsened: every survey that went out counts once, whatever its answers
    assert 'status="answered"' not in body and 'status="opted_out"' not in body
    assert f'inspectbot_surveys{{status="out"}} {float(await Survey.all().count())}' in body
    assert 'outcome="survey_answered"' not in body


async def test_the_service_serves_metrics_on_their_own_address_only(db, tmp_path):
    web_port, metrics_port = free_port(), free_port()
    settings = db.with_(web_port=web_port, metrics_port=metrics_port)
    service = Service(settings, FakeClock(datetime(2026, 12, 1, 2, 0, tzinfo=UTC)), scheduler_enabled=False)
    await service.start(channels={})
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{metrics_port}/metrics") as r:
                assert r.status == 200 and "inspectbot_outbox_depth" in await r.text()
            async with http.get(f"http://127.0.0.1:{web_port}/metrics") as r:
                assert r.status == 404
            async with http.get(f"http://127.0.0.1:{web_port}/healthz") as r:
                assert r.status == 200
    finally:
        await service.stop()


def test_metrics_settings_defaults_and_refusals():
    s = Settings.from_env({}, dotenv=False)
    assert (s.metrics_host, s.metrics_port, s.metrics_token) == ("127.0.0.1", 9464, "")
    env = {"INSPECTBOT_METRICS_HOST": "10.0.0.5", "INSPECTBOT_METRICS_PORT": "9500", "INSPECTBOT_METRICS_TOKEN": TOKEN}
    s = Settings.from_env(env, dotenv=False)
    assert (s.metrics_host, s.metrics_port, s.metrics_token) == ("10.0.0.5", 9500, TOKEN)
    assert TOKEN not in repr(s)
    with pytest.raises(SettingsError, match="INSPECTBOT_METRICS_TOKEN"):
        Settings(metrics_host="0.0.0.0")  # off loopback without a token: refused
    with pytest.raises(SettingsError, match="INSPECTBOT_METRICS_PORT"):
        Settings(web_port=9000, metrics_port=9000)
    with pytest.raises(SettingsError, match="INSPECTBOT_METRICS_PORT"):
        Settings.from_env({"INSPECTBOT_METRICS_PORT": "x"}, dotenv=False)
    assert Settings(metrics_port=0).metrics_port == 0  # 0: no metrics listener
