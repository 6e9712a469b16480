"""``inspectbot demo --channel wecom``: the demo's story with the inspectors and the coordinator on
WeCom (the WeCom simulator, the real WecomChannel, our encrypted callback route) instead of Telegram.

The story is :class:`bot.demo.Demo`'s, unchanged: the scripted people act through
:class:`WecomPeople`, which offers the demo the few calls it makes of the Telegram simulator
(send a command, press a button, share a location, read a chat) and makes them WeCom callbacks.
Inspectors are bound from the directory's WeCom userid when they open the application (no
invite); the coordinator by ``services.identity.bind_coordinator`` (what ``inspectbot bindings
wecom-coordinator`` does). Entities still answer their surveys by SMS.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

from bot.app import Service
from bot.channels.wecom import CALLBACK_PATH
from bot.demo import Demo, _free_port
from bot.dispatcher import WECOM_RATE, default_limits
from core import logs
from core.ratelimit import RateLimiter
from core.settings import SMS_INBOUND_PATH
from models.directory import Inspector
from models.messaging import Channel, Role
from scheduler import Scheduler
from services.identity import bind_coordinator
from simulators.sms import DEV_ACCOUNT_SID, DEV_AUTH_TOKEN, DEV_NUMBER, SmsSimulator
from simulators.wecom import DEV_AES_KEY, DEV_AGENT_ID, DEV_CORP_ID, DEV_SECRET, DEV_TOKEN, WecomSimulator


@dataclass
class Shown:
    """A message as the demo reads it: its text, its buttons' data, its id (a card's task id)."""

    text: str
    callback_data: list[str] = field(default_factory=list)
    message_id: str = ""


class WecomPeople:
    """The Telegram simulator's calls the demo makes, done by WeCom members. Each action is a
    callback in the background, as a Telegram user's update is; the demo waits until it is handled."""

    def __init__(self, sim: WecomSimulator) -> None:
        self.sim = sim
        self.url = sim.url
        self._tasks: set[asyncio.Task] = set()

    def _soon(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def send_command(self, user: str, command: str, arg: str = "") -> None:
        self._soon(self.sim.text(user, f"/{command} {arg}".strip()))

    def send_text(self, user: str, text: str) -> None:
        self._soon(self.sim.text(user, text))

    def press_button(self, user: str, message_id: str, data: str) -> None:
        self._soon(self.sim.press(user, message_id, data))

    def share_location(self, user: str, lat: float, lon: float) -> None:
        self._soon(self.sim.location(user, lat, lon))

    def messages(self, user: str) -> list[Shown]:
        """The member's chat, a card updated after a press shown as Telegram shows an edited message."""
        shown: list[Shown] = []
        by_task: dict[str, Shown] = {}
        for m in self.sim.member(user).received:
            card = m.get("card")
            keys = [b["key"] for b in card.get("button_list", ())] if card else []
            if m["msgtype"] == "update":
                old = by_task.get(m["task_id"])
                if old is not None:
                    old.text = m.get("text") or old.text
                    old.callback_data = keys
                continue
            item = Shown(m.get("text", ""), keys, card["task_id"] if card else m.get("msgid", ""))
            if card:
                by_task[card["task_id"]] = item
            shown.append(item)
        return shown


class WecomDemo(Demo):
    channel = "wecom"  # inspectors bound from the directory's userid: the narration says so

    async def start(self) -> None:
        s = self.settings
        # messages stamped with the story's time, as the Telegram simulator's are
        self.wecom = WecomSimulator(enforce_limits=False, wall=lambda: self.clock.now().timestamp())
        self.tg = WecomPeople(self.wecom)
        self.sms = SmsSimulator(account_sid=DEV_ACCOUNT_SID, auth_token=DEV_AUTH_TOKEN, numbers=(DEV_NUMBER,))
        await self.start_simulators(
            (self.wecom.start, s.demo_wecom_port, "INSPECTBOT_DEMO_WECOM_PORT"),
            (self.sms.start, s.demo_sms_port, "INSPECTBOT_DEMO_SMS_PORT"),
        )
        web_port = s.web_port if not self.headless and s.web_port else _free_port()
        public = f"http://127.0.0.1:{web_port}"
        self.settings = self.settings.with_(
            telegram_token="",
            wecom_corp_id=DEV_CORP_ID,
            wecom_secret=DEV_SECRET,
            wecom_agent_id=DEV_AGENT_ID,
            wecom_token=DEV_TOKEN,
            wecom_aes_key=DEV_AES_KEY,
            wecom_api_url=self.wecom.url,
            sms_account_sid=DEV_ACCOUNT_SID,
            sms_auth_token=DEV_AUTH_TOKEN,
            sms_api_url=self.sms.url,
            sms_from=DEV_NUMBER,
            public_url=public,
            web_port=web_port,
            metrics_port=self.settings.metrics_port if not self.headless else _free_port(),
        )
        self.wecom.callback_url = public + CALLBACK_PATH
        self.sms.inbound_url = public + SMS_INBOUND_PATH
        logs.protect(self.settings)
        # A member's messages 1 s apart, not 4 (the simulator's limits are off here): the demo's
        # clock stands still between steps, and a wait of up to a second is waited, not postponed.
        limits = {**default_limits(), "wecom": RateLimiter(WECOM_RATE, 1.0)}
        self.service = Service(
            self.settings, self.clock, scheduler_enabled=False, dispatcher_options={"limits": limits}
        )
        await self.service.start()
        self._sim_runner = None
        self.scheduler = Scheduler(self.service.rt)
        if not self.headless:  # the simulators' page shows the members' conversations (and the phones)
            await self._serve_sim_page()
        self.say("demo_started_wecom", web=public, wecom=self.wecom.url, sms=self.sms.url)

    def ports(self) -> list[tuple[int, str]]:
        """The Telegram simulator's port is the WeCom simulator's here."""
        telegram = {"INSPECTBOT_DEMO_TELEGRAM_PORT"}
        theirs = [(port, var) for port, var in super().ports() if var not in telegram]
        wecom = self.settings.demo_wecom_port
        return theirs + ([(wecom, "INSPECTBOT_DEMO_WECOM_PORT")] if wecom and not self.headless else [])

    def _page_telegram(self):
        return None  # the members are the WeCom simulator's; the page shows them from there

    async def stop(self) -> None:
        if self._live is not None:  # the clock that ran on after the story (not headless)
            self._live.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._live
            self._live = None
        if getattr(self, "_sim_runner", None) is not None:
            await self._sim_runner.cleanup()
        if self.service is not None:
            await self.service.stop()
        for sim in (getattr(self, "wecom", None), self.sms):
            if sim is not None:
                await sim.stop()

    async def bind(self, role, key: str, name: str, **invite):
        if role == Role.COORDINATOR:
            userid = "coordinator"
            await bind_coordinator(Channel.WECOM, userid, tuple(invite["departments"]), name, self.clock, "demo")
        else:
            userid = f"wx{invite['cert_no']}"
            await Inspector.filter(cert_no=invite["cert_no"]).update(wecom_userid=userid)
            before = await self.events()
            self.tg._soon(self.wecom.enter(userid))  # opening the application binds them from the directory
            await self.handled(before)
        self.wecom.member(userid).name = name  # as the corp's directory names them (the simulator page shows it)
        self.users[key] = userid
        return userid
