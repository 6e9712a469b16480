"""``inspectbot serve``: bot + web + scheduler + dispatcher, for production."""

from __future__ import annotations

import asyncio
import signal
import sys

from bot.app import Service
from bot.logs import setup_logging
from bot.render import text


def register(sub) -> None:
    sub.add_parser("serve", help="run the service: Telegram bot, SMS webhooks, web pages, scheduler, dispatcher"
                   ).set_defaults(func=serve)


async def serve(args, settings) -> int:
    if not settings.telegram_token and not settings.sms_account_sid:
        print(text("serve_needs_channel", settings.locale), file=sys.stderr)
        return 2
    if settings.telegram_mode == "webhook" and not settings.telegram_webhook_secret:
        print(text("serve_needs_secret", settings.locale), file=sys.stderr)
        return 2
    setup_logging(settings, fmt="json", verbose=getattr(args, "verbose", False))  # JSON lines, no secrets
    service = Service(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await service.start()
    print(text("serve_started", settings.locale, url=settings.public_url, mode=settings.telegram_mode,
               channels=sorted(service.rt.channels)))
    try:
        await stop.wait()
    finally:
        await service.stop()
    return 0
