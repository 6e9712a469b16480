"""The SMS channel the settings ask for (``SMS_PROVIDER``), and its inbound routes."""

from __future__ import annotations

from aiohttp import web

from bot.channels.sms_aliyun import AliyunSmsChannel, push_routes
from bot.channels.sms_twilio import TwilioSmsChannel, webhook_routes
from core.channel import EventCallback
from core.settings import Settings


def sms_channel(settings: Settings, **options) -> TwilioSmsChannel | AliyunSmsChannel:
    """A Twilio-compatible channel (the default; also the simulator's) or the Alibaba Cloud one."""
    if settings.sms_provider == "aliyun":
        return AliyunSmsChannel(settings, **options)
    return TwilioSmsChannel(settings, **options)


def sms_routes(settings: Settings, on_event: EventCallback) -> list[web.RouteDef]:
    """The provider's inbound endpoints: Twilio's two signed webhooks, or Aliyun's two push URLs."""
    if settings.sms_provider == "aliyun":
        return push_routes(settings, on_event)
    return webhook_routes(settings, on_event)
