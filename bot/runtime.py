"""The running service's parts, wired once: settings, clock, channels, dispatcher.

``Runtime.on_event`` is the single entry of every inbound event, whatever channel or mode
(Telegram polling, Telegram webhook, SMS webhooks) brought it. The web app holds it under
:data:`RUNTIME`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from aiohttp import web

from bot.dispatcher import Dispatcher
from core.channel import EventKind, InboundEvent
from core.clock import SYSTEM, Clock
from core.render import text
from core.settings import Settings
from handlers.router import long_work, route
from services.inbound import Received, receive

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: Settings
    clock: Clock = SYSTEM
    channels: dict = field(default_factory=dict)
    dispatcher: Dispatcher | None = None

    async def on_event(self, event: InboundEvent) -> Received:
        """Store and handle one event (committed when this returns: by group commit unless the
        router says it may start long work); then answer a button's press in the background (it
        stops the client's spinner, with a short text when the router refused the press — the
        replies are in the outbox) and wake the sender."""
        result = await receive(
            event,
            route,
            self.clock,
            self.settings.locale,
            self.settings.zone,
            settings=self.settings,
            long_work=long_work,
        )
        if event.kind == EventKind.BUTTON and event.callback_id:
            channel = self.channels.get(event.channel)
            if channel is not None and hasattr(channel, "answer_button_soon"):
                notice = text(result.button_answer, result.locale) if result.button_answer else ""
                channel.answer_button_soon(event.callback_id, notice)
        if self.dispatcher is not None and not result.duplicate:
            self.dispatcher.wake()
        log.info(
            "inbound %s/%s %s -> %s",
            event.channel,
            event.kind.value,
            event.external_id,
            "duplicate" if result.duplicate else result.outcome,
        )
        return result


#: Where the aiohttp app (bot/web.py) keeps the Runtime; its views (web, pages, metrics) read it there.
RUNTIME = web.AppKey("runtime", Runtime)
