"""The real pieces wired together over WeCom: the WeCom simulator, the real WecomChannel, the
service's web app (its callback route), the runtime and the dispatcher."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from aiohttp import web

from bot.channels.wecom import CALLBACK_PATH, WecomChannel
from bot.dispatcher import Dispatcher
from bot.runtime import Runtime
from bot.web import make_app
from core.clock import FakeClock
from core.ratelimit import RateLimiter
from core.settings import Settings
from services.wecom_codes import DbResponseCodes
from simulators.wecom import DEV_AES_KEY, DEV_AGENT_ID, DEV_CORP_ID, DEV_SECRET, DEV_TOKEN, WecomSimulator


def wecom_settings(settings: Settings, api_url: str = "") -> Settings:
    return settings.with_(
        wecom_corp_id=DEV_CORP_ID,
        wecom_secret=DEV_SECRET,
        wecom_agent_id=DEV_AGENT_ID,
        wecom_token=DEV_TOKEN,
        wecom_aes_key=DEV_AES_KEY,
        wecom_api_url=api_url,
    )


@dataclass
class WecomSpine:
    sim: WecomSimulator
    channel: WecomChannel
    rt: Runtime
    dispatcher: Dispatcher
    clock: FakeClock
    url: str  # the service's web app

    async def deliver(self) -> int:
        return await self.dispatcher.drain()


@contextlib.asynccontextmanager
async def wecom_spine(settings: Settings, *, clock=None, limiter: RateLimiter | None = None, **sim_options):
    clock = clock or FakeClock()
    sim = WecomSimulator(enforce_limits=sim_options.pop("enforce_limits", False), **sim_options)
    await sim.start()
    settings = wecom_settings(settings, sim.url)
    rt = Runtime(settings=settings, clock=clock)
    channel = WecomChannel(settings, on_event=rt.on_event, timeout=3.0, codes=DbResponseCodes())
    rt.channels = {"wecom": channel}
    dispatcher = Dispatcher(
        rt.channels,
        clock=clock,
        limits={"wecom": limiter or RateLimiter(None, None, now=lambda: clock.now().timestamp())},
        concurrency=16,
    )
    rt.dispatcher = dispatcher
    runner = web.AppRunner(make_app(rt), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    sim.callback_url = url + CALLBACK_PATH
    await channel.start()
    try:
        yield WecomSpine(sim, channel, rt, dispatcher, clock, url)
    finally:
        await channel.stop()
        await runner.cleanup()
        await sim.stop()


class Member:
    """One WeCom member: act (the callback returns once the service stored and handled it), then
    let the dispatcher send the answers, and read what arrived."""

    def __init__(self, s: WecomSpine, userid: str) -> None:
        self.s, self.userid, self.seen = s, userid, 0

    @property
    def inbox(self) -> list[dict]:
        return self.s.sim.member(self.userid).received

    def new(self) -> list[dict]:
        out, self.seen = self.inbox[self.seen :], len(self.inbox)
        return out

    async def _after(self, status_coro) -> list[dict]:
        status = await status_coro
        assert status == 200, status
        await self.s.deliver()
        return self.new()

    async def enter(self) -> list[dict]:
        return await self._after(self.s.sim.enter(self.userid))

    async def say(self, text: str) -> list[dict]:
        return await self._after(self.s.sim.text(self.userid, text))

    async def command(self, name: str, arg: str = "") -> list[dict]:
        return await self.say(f"/{name} {arg}".strip())

    async def press(self, card: dict, key: str) -> list[dict]:
        assert key in keys(card), (key, keys(card))
        return await self._after(self.s.sim.press(self.userid, task_id(card), key))

    async def location(self, lat: float, lon: float) -> list[dict]:
        return await self._after(self.s.sim.location(self.userid, lat, lon))

    async def photo(self, data: bytes) -> list[dict]:
        return await self._after(self.s.sim.image(self.userid, data))


def keys(item: dict) -> list[str]:
    return [b["key"] for b in item.get("card", {}).get("button_list", ())]


def task_id(item: dict) -> str:
    return item.get("task_id") or item["card"]["task_id"]


def text(item: dict) -> str:
    return item.get("text") or item.get("replace_name") or ""


def with_key(items: list[dict], key: str) -> dict:
    return next(m for m in reversed(items) if key in keys(m))
