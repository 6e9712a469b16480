"""``inspectbot serve``: bot + web + scheduler + dispatcher, for production."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys

from bot.app import PortUnavailable, Service, freeze_heap
from core import db
from core.logs import setup_logging
from core.render import text

log = logging.getLogger("inspectbot")
RETRY_MAX = 30.0  # seconds between attempts to reach the database at start, at most


def register(sub) -> None:
    sub.add_parser(
        "serve", help="run the service: Telegram bot, SMS webhooks, web pages, scheduler, dispatcher"
    ).set_defaults(func=serve)


async def serve(args, settings) -> int:
    if not settings.telegram_token and not settings.sms_account_sid:
        print(text("serve_needs_channel", settings.locale), file=sys.stderr)
        return 2
    if settings.telegram_mode == "webhook" and not settings.telegram_webhook_secret:
        print(text("serve_needs_secret", settings.locale), file=sys.stderr)
        return 2
    if settings.beacon == "none" and not settings.beacon_none_acknowledged:
        print(text("serve_needs_beacon", settings.locale), file=sys.stderr)
        return 2
    setup_logging(settings, fmt="json", verbose=getattr(args, "verbose", False))  # JSON lines, no secrets
    service = Service(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        if not await start_when_reachable(service, stop):
            return 0  # stopped while waiting for the database
    except PortUnavailable as exc:  # fatal: waiting would not free it
        with contextlib.suppress(Exception):
            await service.stop()
        where = {"host": exc.host, "port": exc.port, "variable": exc.variable, "error": exc.error}
        print(text("serve_port_unavailable", settings.locale, **where), file=sys.stderr)
        return 2
    freeze_heap()  # what start built stays for the process's life: out of later GC passes
    print(
        text(
            "serve_started",
            settings.locale,
            url=settings.public_url,
            mode=settings.telegram_mode,
            channels=sorted(service.rt.channels),
        )
    )
    try:
        await stop.wait()
    finally:
        await service.stop()
    return 0


async def start_when_reachable(service: Service, stop: asyncio.Event) -> bool:
    """Start the service; while the database cannot be reached (a server still booting, a
    network away), say so once per attempt and try again with backoff (1, 2, 4 … 30 s) rather
    than exit and leave it to a supervisor. False if told to stop meanwhile. Any other failure
    (bad settings, a wrong password, a broken migration) is raised at once."""
    delay = 1.0
    while True:
        try:
            await service.start()
            return True
        except Exception as exc:
            if not db.transient(exc):
                raise
            with contextlib.suppress(Exception):
                await service.stop()  # whatever had started before the database was needed
            log.warning("database unavailable at start (%s: %s); retrying in %.0f s", type(exc).__name__, exc, delay)
        try:
            await asyncio.wait_for(stop.wait(), delay)
            return False
        except TimeoutError:
            delay = min(delay * 2, RETRY_MAX)
