"""The aiohttp application: webhooks in; health and the public pages out. ``/metrics`` is not
here: it has a listener of its own (``bot.metrics.make_metrics_app``), off the public port.

A webhook answers 2xx only after the event is stored; if the database cannot take it, 503,
so the sender retries. Forged requests get 403 and are logged (without their content).
"""

from __future__ import annotations

import json
import logging

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler, Middleware

from bot import pages
from bot.channels.sms import sms_routes
from bot.runtime import RUNTIME, Runtime
from core import db
from core.logs import not_stored, quiet_bad_requests
from domain.network import Network, client_address

log = logging.getLogger(__name__)

MAX_BODY = 1 << 20


async def telegram_webhook(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    channel = rt.channels.get("telegram")
    if channel is None or channel.mode != "webhook":
        raise web.HTTPNotFound()
    if not channel.secret_ok(request.headers.get("X-Telegram-Bot-Api-Secret-Token")):
        log.warning("telegram webhook: missing or wrong secret token from %s", request.remote)
        raise web.HTTPForbidden()
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise web.HTTPRequestEntityTooLarge(max_size=MAX_BODY, actual_size=request.content_length)
    try:
        data = json.loads(await request.read())
        if not isinstance(data, dict) or type(data.get("update_id")) is not int:
            raise ValueError("not an update")  # its update_id is the idempotency key: never store a made-up one
        event = channel.parse_webhook(data)
    except web.HTTPException:
        raise
    except Exception:
        log.warning("telegram webhook: malformed update from %s", request.remote)
        raise web.HTTPBadRequest() from None
    if event is None:
        return web.Response(status=200)
    try:
        await rt.on_event(event)
    except Exception as exc:
        not_stored(log, exc, "telegram webhook: update %s not stored, answered 503", event.external_id)
        raise web.HTTPServiceUnavailable() from None
    return web.Response(status=200)


async def healthz(request: web.Request) -> web.Response:
    try:
        await db.conn().execute_query("SELECT 1")
    except Exception:
        return web.json_response({"ok": False, "database": "unavailable"}, status=503)
    return web.json_response({"ok": True})


def behind_proxies(trusted: tuple[Network, ...]) -> Middleware:
    """``request.remote`` is the visitor's address, read past the trusted reverse proxies
    (domain/network.py): the per-client limits and the audit see each visitor, not the proxy."""

    @web.middleware
    async def real_remote(request: web.Request, handler: Handler) -> web.StreamResponse:
        peer = request.remote or ""
        client = client_address(peer, request.headers.getall(hdrs.X_FORWARDED_FOR, ()), trusted)
        return await handler(request if client == peer else request.clone(remote=client))

    return real_remote


def make_app(rt: Runtime) -> web.Application:
    quiet_bad_requests()  # an over-long request line is the sender's fault: one WARNING, no traceback
    proxies = rt.settings.proxies
    app = web.Application(client_max_size=MAX_BODY, middlewares=[behind_proxies(proxies)] if proxies else [])
    app[RUNTIME] = rt
    app.router.add_post("/telegram/webhook", telegram_webhook)
    if "wecom" in rt.channels:
        app.add_routes(rt.channels["wecom"].routes())
    if "sms" in rt.channels:
        app.add_routes(sms_routes(rt.settings, rt.on_event))
    app.router.add_get("/healthz", healthz)
    pages.setup_routes(app)
    return app
