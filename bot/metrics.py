"""``GET /metrics``: Prometheus' text format, from a database snapshot (``services.metrics``).

The figures are counted in the database at scrape time, so every instance reports the same
numbers and no hot path carries instrumentation. A snapshot is kept for :data:`TTL` seconds,
so a burst of scrapes costs one round of queries.

``/metrics`` is an app of its own (:func:`make_metrics_app`), which ``bot.app.Service`` serves on
``INSPECTBOT_METRICS_HOST``:``INSPECTBOT_METRICS_PORT`` (127.0.0.1:9464 by default) — never on the
public web port. With ``INSPECTBOT_METRICS_TOKEN`` set, a scrape must send
``Authorization: Bearer <token>`` (required off loopback). docs/public-pages.md, "Operations".
"""

from __future__ import annotations

import asyncio
import hmac
import time

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from bot.runtime import RUNTIME, Runtime
from services.metrics import Snapshot, snapshot

TTL = 5.0
_CACHE = web.AppKey("metrics_cache", dict)


def _family(cls, name: str, doc: str, labels: list[str], rows) -> object:
    family = cls(name, doc, labels=labels)
    for row in rows:
        family.add_metric([str(v) for v in row[:-1]], float(row[-1]))
    return family


def families(s: Snapshot) -> list:
    """The snapshot as metric families (counters for what only grows, gauges for the rest)."""
    sent = sum(n for status, n in s.outbox_status if status in ("sent", "delivered"))
    delivered = sum(n for status, n in s.outbox_status if status == "delivered")
    return [
        _family(GaugeMetricFamily, "inspectbot_outbox_depth", "Outbox rows by status", ["status"], s.outbox_status),
        _family(
            GaugeMetricFamily,
            "inspectbot_outbox_messages",
            "Outbox rows not (yet) sent, by channel and status",
            ["channel", "status"],
            s.outbox,
        ),
        _family(
            CounterMetricFamily, "inspectbot_outbox_sent", "Messages a channel accepted (all channels)", [], [(sent,)]
        ),
        _family(
            CounterMetricFamily,
            "inspectbot_outbox_delivered",
            "Messages with a delivery receipt (SMS)",
            [],
            [(delivered,)],
        ),
        _family(
            GaugeMetricFamily,
            "inspectbot_outbox_errors",
            "Rows retrying (pending/sending) or dead, by the kind of their last send error",
            ["channel", "status", "kind"],
            s.outbox_errors,
        ),
        _family(
            GaugeMetricFamily,
            "inspectbot_outbox_oldest_due_seconds",
            "How long the oldest due pending row has been waiting",
            ["channel"],
            s.outbox_due_age,
        ),
        _family(
            CounterMetricFamily,
            "inspectbot_inbound_events",
            "Inbound events by channel and outcome",
            ["channel", "outcome"],
            s.inbound,
        ),
        _family(CounterMetricFamily, "inspectbot_draws", "Draws made", ["flight"], s.draws),
        _family(GaugeMetricFamily, "inspectbot_inspections", "Inspections by status", ["status"], s.inspections),
        _family(GaugeMetricFamily, "inspectbot_firings", "Announced runs of plans by status", ["status"], s.firings),
        _family(
            CounterMetricFamily,
            "inspectbot_scheduler_fires",
            "Scheduler fires by kind and outcome",
            ["kind", "outcome"],
            s.fires,
        ),
        _family(
            GaugeMetricFamily,
            "inspectbot_scheduler_lag_seconds",
            "Worst delay between a fire's due time and its run, over the last day",
            ["kind"],
            s.fire_lag,
        ),
        _family(
            GaugeMetricFamily,
            "inspectbot_scheduler_last_fire_timestamp_seconds",
            "When the latest fire of each kind ran",
            ["kind"],
            s.last_fire,
        ),
        _family(GaugeMetricFamily, "inspectbot_alerts_open", "Unacknowledged alerts by kind", ["kind"], s.alerts_open),
        _family(GaugeMetricFamily, "inspectbot_surveys", "Integrity surveys by status", ["status"], s.surveys),
    ]


class _Snapshot:
    def __init__(self, snap: Snapshot) -> None:
        self.snap = snap

    def collect(self):
        yield from families(self.snap)


def exposition(snap: Snapshot) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot(snap))
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return generate_latest(registry)


async def metrics(request: web.Request) -> web.Response:
    cache = request.app[_CACHE]
    async with cache["lock"]:
        if cache.get("until", 0.0) <= time.monotonic():
            try:
                snap = await snapshot(request.app[RUNTIME].clock.now())
            except Exception:
                raise web.HTTPServiceUnavailable(text="database unavailable") from None
            cache.update(body=exposition(snap), until=time.monotonic() + TTL)
    return web.Response(body=cache["body"], headers={"Content-Type": CONTENT_TYPE_LATEST})


@web.middleware
async def bearer(request: web.Request, handler):
    """With a metrics token configured, every request must carry it (``Authorization: Bearer``)."""
    token = request.app[RUNTIME].settings.metrics_token
    if token:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
            raise web.HTTPUnauthorized(headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
    return await handler(request)


def make_metrics_app(rt: Runtime) -> web.Application:
    """The metrics listener's app: ``GET /metrics`` and nothing else."""
    app = web.Application(middlewares=[bearer])
    app[RUNTIME] = rt
    app[_CACHE] = {"lock": asyncio.Lock()}
    app.router.add_get("/metrics", metrics)
    return app
