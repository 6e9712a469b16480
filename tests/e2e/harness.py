"""The real pieces wired together for end-to-end tests: the Bot API simulator, the real
python-telegram-bot behind our TelegramChannel, the runtime, and the dispatcher."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
from dataclasses import dataclass

from bot.channels.telegram import TelegramChannel
from bot.dispatcher import Dispatcher
from bot.runtime import Runtime
from core.clock import FakeClock
from core.ratelimit import RateLimiter
from core.settings import Settings
from simulators.telegram.flood import FloodLimits
from simulators.telegram.simulator import TelegramSimulator


async def eventually(check, timeout: float = 5.0, interval: float = 0.02):
    """Poll an async or plain predicate until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(interval)


@dataclass
class Spine:
    sim: TelegramSimulator
    channel: TelegramChannel
    rt: Runtime
    dispatcher: Dispatcher
    clock: FakeClock

    async def deliver(self) -> int:
        """Send everything due (what the dispatcher loop does in production)."""
        return await self.dispatcher.drain()


@contextlib.asynccontextmanager
async def spine(
    settings: Settings,
    *,
    mode: str = "polling",
    flood: FloodLimits | None = None,
    clock=None,
    limiter: RateLimiter | None = None,
):
    clock = clock or FakeClock()
    sim = TelegramSimulator(flood=flood or FloodLimits.off())
    await sim.start()
    rt = Runtime(settings=settings, clock=clock)
    channel = TelegramChannel(
        sim.token,
        api_url=sim.url,
        mode="polling" if mode == "polling" else "send-only",
        on_event=rt.on_event,
        timeout=3.0,
    )
    rt.channels = {"telegram": channel}
    dispatcher = Dispatcher(
        rt.channels,
        clock=clock,
        limits={"telegram": limiter or RateLimiter(None, None, now=lambda: clock.now().timestamp())},
        concurrency=16,
        data_dir=settings.data_dir,  # as bot/app.py wires it: a reply may attach a file (a report's chart)
    )
    rt.dispatcher = dispatcher
    await channel.start()
    try:
        yield Spine(sim, channel, rt, dispatcher, clock)
    finally:
        await channel.stop()
        await sim.stop()
