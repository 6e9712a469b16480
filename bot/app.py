"""The whole service in one event loop: database, channels, dispatcher, web app, scheduler.

``inspectbot serve`` runs it against real Telegram and SMS providers; the demo runs it
against the local simulators. Both go through :class:`Service`, so there is one way to start.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging

from aiohttp import web

from bot.channels.sms import sms_channel
from bot.channels.telegram import TelegramChannel
from bot.channels.wecom import WecomChannel
from bot.dispatcher import Dispatcher
from bot.metrics import make_metrics_app
from bot.runtime import Runtime
from bot.web import make_app
from core import db
from core.clock import SYSTEM, Clock
from core.settings import Settings
from scheduler import Scheduler
from services.wecom_codes import DbResponseCodes

log = logging.getLogger("inspectbot")


def freeze_heap() -> None:
    """Leave what the process holds now out of the cyclic garbage collector's later passes:
    one collection, then ``gc.freeze()``. Called once the service has started: its modules,
    classes, compiled templates and ORM metadata live as long as the process, and every full
    collection walked them all again — under a fan-out, the dispatcher's allocations set off
    such collections, a measurable share of its CPU (docs/benchmarks.md, "WeCom fan-out",
    CPU pass). Nothing else changes: whatever is made later is collected as before (an
    object alive now and dropped later is still freed by its reference count; only a cycle
    among such objects would stay)."""
    gc.collect()
    gc.freeze()


class PortUnavailable(Exception):
    """A listening address that cannot be bound (taken, not ours to take): fatal at start, never
    retried as a database fault (it is not an ``OSError``, so ``core.db.transient`` says no)."""

    def __init__(self, host: str, port: int, variable: str, error: OSError) -> None:
        super().__init__(f"{host}:{port} ({variable}): {error}")
        self.host, self.port, self.variable, self.error = host, port, variable, error


async def listen(runner: web.AppRunner, host: str, port: int, variable: str) -> None:
    """Serve ``runner`` on ``host:port``; a bind that fails is :class:`PortUnavailable`, naming
    the setting (``variable``) that chose the port."""
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError as exc:
        raise PortUnavailable(host, port, variable, exc) from None


class Service:
    def __init__(
        self,
        settings: Settings,
        clock: Clock = SYSTEM,
        *,
        web_enabled: bool = True,
        scheduler_enabled: bool = True,
        dispatcher_options: dict | None = None,
    ) -> None:
        self.settings = settings
        self.rt = Runtime(settings=settings, clock=clock)
        self.web_enabled = web_enabled
        self.scheduler_enabled = scheduler_enabled
        self.dispatcher_options = dispatcher_options or {}
        self.scheduler = None
        self._runner: web.AppRunner | None = None
        self._metrics_runner: web.AppRunner | None = None
        self._tasks: list[asyncio.Task] = []

    def channels_from_settings(self) -> dict:
        channels = {}
        s = self.settings
        if s.telegram_token:
            channels["telegram"] = TelegramChannel(
                s.telegram_token,
                api_url=s.telegram_api_url,
                mode=s.telegram_mode,
                webhook_url=f"{s.public_url.rstrip('/')}/telegram/webhook",
                webhook_secret=s.telegram_webhook_secret,
                on_event=self.rt.on_event,
            )
        if s.wecom_corp_id:
            channels["wecom"] = WecomChannel(s, on_event=self.rt.on_event, codes=DbResponseCodes())
        if s.sms_account_sid or s.sms_provider == "aliyun" and s.sms_api_url:
            channels["sms"] = sms_channel(s)
        return channels

    async def start(self, channels: dict | None = None) -> None:
        await db.init(self.settings)
        await db.upgrade(self.settings)
        self.rt.channels = channels if channels is not None else self.channels_from_settings()
        options = {"quotas": {"wecom": 200 * self.settings.wecom_accounts}} | self.dispatcher_options
        self.rt.dispatcher = Dispatcher(
            self.rt.channels, clock=self.rt.clock, data_dir=self.settings.data_dir, zone=self.settings.zone, **options
        )
        if self.web_enabled:
            self._runner = web.AppRunner(make_app(self.rt), access_log=None)
            await self._runner.setup()
            await listen(self._runner, self.settings.web_host, self.settings.web_port, "INSPECTBOT_WEB_PORT")
            if self.settings.metrics_port:  # /metrics: its own address, never the public port
                self._metrics_runner = web.AppRunner(make_metrics_app(self.rt), access_log=None)
                await self._metrics_runner.setup()
                await listen(
                    self._metrics_runner,
                    self.settings.metrics_host,
                    self.settings.metrics_port,
                    "INSPECTBOT_METRICS_PORT",
                )
        for name, channel in self.rt.channels.items():
            await channel.start()
            log.info("channel %s started", name)
        self._tasks.append(asyncio.create_task(self.rt.dispatcher.run(), name="dispatcher"))
        if self.scheduler_enabled:
            self.scheduler = Scheduler(self.rt)
            await self.scheduler.start()

    async def stop(self) -> None:
        if self.scheduler is not None:
            self.scheduler.shutdown()
        if self.rt.dispatcher is not None:
            self.rt.dispatcher.stop()
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for channel in self.rt.channels.values():
            with contextlib.suppress(Exception):
                await channel.stop()
        for runner in (self._runner, self._metrics_runner):
            if runner is not None:
                await runner.cleanup()
        self._runner = self._metrics_runner = None
        await db.close()
