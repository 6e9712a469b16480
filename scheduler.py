"""The scheduler: jobs built from plan rows, each fire run once, missed fires handled.

One place turns a plan into jobs: :func:`plan_fires`. For every active plan it yields the
next *announce* fires (the commitment is published ``announce_days`` before the draw, at
least one day) and *draw* fires (at the plan's fire time). Besides those, the periodic *sweeps*
(assignment deadlines and reminders, flight reveals, survey dispatch, reminders and expiry,
photo fetching, the monthly report, the digests of bulk alerts, risk-class overrides running out) are one table here, :data:`SWEEPS`: each names the service
function it calls and the arguments it takes from the runtime (zone, locale, clock, data
directory, the Telegram channel's fetch function); the services know nothing of the scheduler.

Exactly once across instances: a fire's key (``draw:P0042:2026-12-01T09:00:00+08:00``) is
inserted into ``scheduler_fire`` **in the same transaction** as the fire's work
(``services.fires.run_once``; the monthly report's sweep claims its ``report:YYYY-MM`` key the
same way). A second instance sharing the PostgreSQL database blocks on the unique index until
the first commits, then finds the key taken and skips; if the first fails and rolls back, the
key is free again. (A unique row rather than an advisory lock: it also leaves a record of every
fire.)

After downtime (:meth:`Scheduler.catch_up`): for each plan and kind, the latest missed fire
within the grace period runs once (coalesced); older missed fires are recorded as ``missed``
and reported to the plan's coordinators, never run late.

APScheduler (in the service's event loop) only decides *when* to call :meth:`Scheduler.run_due`;
tests and the demo's fast clock call it directly with their own clock.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from core import drand
from core.channel import SendError
from core.clock import Clock
from domain.beacon import KIND_DRAND, Chain
from domain.plans import lead_time
from models.draws import FiringStatus
from services import audit, deadlines, fires, reports
from services.alerts import alert_plan_coordinators, send_digests
from services.draws import announce, offschedule, write
from services.draws.beacon import BeaconConfig
from services.draws.common import DrawError
from services.onsite import followup, photos, review
from services.plans import active_specs, fire_times
from services.risk import classify as risk_classify
from services.risk import overrides as risk_overrides
from services.surveys import receipts
from services.surveys import sweep as surveys_sweep
from services.surveys.enter import sign_for

log = logging.getLogger("inspectbot.scheduler")

INSTANCE = f"{socket.gethostname()}:{os.getpid()}"
DEFAULT_GRACE = timedelta(hours=6)
LOOKBACK = timedelta(days=35)


@dataclass(frozen=True)
class PlannedFire:
    key: str
    kind: str  # "announce" | "draw"
    plan: str
    at: datetime  # when this fire is due
    fire_at: datetime  # the draw time it belongs to


def plan_fires(spec, zone, after: datetime, until: datetime) -> list[PlannedFire]:
    """Every announce and draw fire of ``spec`` due in (after, until] — the one place that
    turns a plan into jobs."""
    lead = lead_time(spec)
    out: list[PlannedFire] = []
    # draw times up to `until + lead`, so announces due before `until` are included
    cursor = after - lead
    while True:
        batch = fire_times(spec, cursor, zone, limit=50)
        if not batch:
            break
        for fire_at in batch:
            stamp = fire_at.isoformat()
            announce_at = fire_at - lead
            if after < announce_at <= until:
                out.append(PlannedFire(f"announce:{spec.code}:{stamp}", "announce", spec.code, announce_at, fire_at))
            if after < fire_at <= until:
                out.append(PlannedFire(f"draw:{spec.code}:{stamp}", "draw", spec.code, fire_at, fire_at))
        cursor = batch[-1]
        if cursor > until + lead or len(batch) < 50:
            break
    return sorted(out, key=lambda f: (f.at, f.kind != "announce", f.plan))


@dataclass(frozen=True)
class Sweep:
    """A periodic sweep (idempotent by the state it reads): the service function it calls and,
    from the scheduler (its runtime) and ``now``, the keyword arguments of that call; None when
    there is nothing to do this time. ``fire``: the service returns the key of the fire it ran
    (``services.fires``), if any, which the scheduler counts as run."""

    service: Callable[..., Awaitable[object]]
    arguments: Callable[[Scheduler, datetime], dict | None]
    fire: bool = False

    async def __call__(self, scheduler: Scheduler, now: datetime) -> None:
        kwargs = self.arguments(scheduler, now)
        if kwargs is None:
            return
        result = await self.service(**kwargs)
        if self.fire and result:
            scheduler.ran.append(result)


def _photo_arguments(s: Scheduler, now: datetime) -> dict | None:
    """Photos are fetched through the channel they came on: a WeCom photo's id is ``wecom:<media
    id>``, any other a Telegram file id; without those channels there is nothing to fetch."""
    telegram, wecom = s.rt.channels.get("telegram"), s.rt.channels.get("wecom")
    if telegram is None and wecom is None:
        return None

    async def fetch(file_id: str) -> bytes:
        channel = wecom if file_id.startswith("wecom:") else telegram
        if channel is None:
            raise SendError("unsupported", retryable=True, retry_after=3600, detail="channel not enabled")
        return await channel.fetch_file(file_id)

    return {"fetch": fetch, "data_dir": s.rt.settings.data_dir, "now": now, "locale": s.locale}


#: Every periodic sweep, run in this order by :meth:`Scheduler.run_due`.
SWEEPS: dict[str, Sweep] = {
    "deadlines": Sweep(
        deadlines.sweep_deadlines,
        lambda s, now: {"now": now, "clock": s.clock, "zone": s.zone, "locale": s.locale},
    ),
    "flight_reveals": Sweep(deadlines.reveal_due, lambda s, now: {"now": now, "zone": s.zone, "locale": s.locale}),
    "surveys": Sweep(surveys_sweep.run_sweep, lambda s, now: {"now": now, "zone": s.zone}),
    # delivery receipts that came before their send's id: applied if it is known by now, else expired
    "receipts": Sweep(receipts.sweep_receipts, lambda s, now: {"now": now, "zone": s.zone}),
    "photos": Sweep(photos.fetch_pending, _photo_arguments),
    "off_schedule_requests": Sweep(offschedule.expire_due, lambda s, now: {"now": now, "zone": s.zone}),
    "audit_checkpoints": Sweep(
        audit.daily_checkpoint, lambda s, now: {"now": now, "zone": s.zone, "data_dir": s.rt.settings.data_dir}
    ),
    "reviews": Sweep(review.sweep_reviews, lambda s, now: {"now": now, "zone": s.zone}),
    "publications": Sweep(review.sweep_publications, lambda s, now: {"now": now, "zone": s.zone}),
    "rectifications": Sweep(
        followup.sweep_rectifications,
        lambda s, now: {"now": now, "zone": s.zone, "sign": sign_for(s.rt.settings)},
    ),
    "monthly_report": Sweep(
        reports.send_due_report,
        lambda s, now: {
            "now": now,
            "clock": s.clock,
            "zone": s.zone,
            "data_dir": s.rt.settings.data_dir,
            "instance": INSTANCE,
        },
        fire=True,
    ),
    # an override in force: its departments told days before it runs out, and when it has
    "risk_override_ends": Sweep(risk_overrides.tell_ending, lambda s, now: {"now": now, "zone": s.zone}),
    # the credit-risk classes: reclassified once a month (and before each announce, fire_plan)
    "risk_classes": Sweep(
        risk_classify.monthly_sweep, lambda s, now: {"now": now, "zone": s.zone, "instance": INSTANCE}, fire=True
    ),
    # bulk alerts (the deadlines sweep's escalations): one digest per coordinator every few minutes
    "alert_digests": Sweep(send_digests, lambda s, now: {"now": now}),
}


class Scheduler:
    def __init__(self, runtime, *, grace: timedelta = DEFAULT_GRACE, sweep_every: float = 30.0) -> None:
        self.rt = runtime
        self.grace = grace
        self.sweep_every = sweep_every
        self._aps = None
        self.ran: list[str] = []
        settings = runtime.settings
        self.beacon = BeaconConfig.from_settings(settings)
        self.beacon_wait = timedelta(minutes=settings.beacon_wait_minutes)
        self.beacon_fetch: drand.Fetch = drand.relay_fetcher(settings.drand_relays)

    @property
    def clock(self) -> Clock:
        return self.rt.clock

    @property
    def zone(self):
        return self.rt.settings.zone

    @property
    def locale(self) -> str:
        return self.rt.settings.locale

    # -- claim + run -------------------------------------------------------------------------

    async def run_once(
        self, key: str, kind: str, scheduled_for: datetime, work: Callable[[], Awaitable[str]]
    ) -> str | None:
        """Run ``work`` under fire ``key`` unless another instance (or an earlier run) has it.
        Returns the outcome, or None if the key was taken."""
        outcome = await fires.run_once(key, kind, scheduled_for, work, now=self.clock.now(), instance=INSTANCE)
        if outcome is not None:
            self.ran.append(key)
        return outcome

    async def record_missed(self, fire: PlannedFire) -> bool:
        recorded = await fires.record_missed(fire.key, fire.kind, fire.at, now=self.clock.now(), instance=INSTANCE)
        if recorded:
            await self._report_missed(fire)
        return recorded

    async def _report_missed(self, fire: PlannedFire) -> None:
        await alert_plan_coordinators(
            fire.plan,
            "scheduler_missed.j2",
            {"plan": fire.plan, "kind": fire.kind, "due": fire.at.astimezone(self.zone).isoformat(" ", "minutes")},
            dedupe=f"missed:{fire.key}",
            now=self.clock.now(),
        )

    # -- what is due -------------------------------------------------------------------------

    async def plan_specs(self) -> list:
        return await active_specs()

    async def run_due(self, now: datetime | None = None) -> list[str]:
        """Run every plan fire due by ``now`` (within grace; older ones are reported) and every
        sweep. Returns the fire keys this call ran."""
        now = now or self.clock.now()
        before = len(self.ran)
        await self.catch_up(now)
        for name, sweep in SWEEPS.items():
            try:
                await sweep(self, now)
            except Exception:
                log.exception("sweep %s failed", name)
        return self.ran[before:]

    async def catch_up(self, now: datetime) -> None:
        for plan, spec in await self.plan_specs():
            start = max(plan.created_at, now - LOOKBACK)
            planned = plan_fires(spec, self.zone, start, now)
            if not planned:
                continue
            done = await fires.fired(f.key for f in planned)
            pending = [f for f in planned if f.key not in done]
            latest: dict[str, PlannedFire] = {}
            for f in pending:
                if now - f.at <= self.grace:
                    latest[f.kind] = f  # sorted by time: keeps the latest of each kind
            for f in pending:
                if latest.get(f.kind) is f:
                    continue
                await self.record_missed(f)
            for kind in ("announce", "draw"):
                if kind in latest:
                    await self.fire_plan(latest[kind])

    async def fire_plan(self, fire: PlannedFire) -> str | None:
        if fire.kind == "announce":

            async def work() -> str:
                existing = await announce.firing_at(fire.plan, fire.fire_at)
                if existing is not None:
                    return "already_announced"
                # the classes this draw will use are those in force now (kept until it is drawn)
                await risk_classify.before_announce(self.clock.now(), self.zone)
                await announce.announce(
                    fire.plan, fire.fire_at.astimezone(UTC), clock=self.clock, zone=self.zone, beacon=self.beacon
                )
                return "announced"
        else:
            fetch = await self._prefetch(fire)

            async def work() -> str:
                firing = await announce.firing_at(fire.plan, fire.fire_at)
                if firing is None:
                    # Never draw without a commitment published in advance.
                    await self._report_missed(fire)
                    return "not_announced"
                if firing.status is FiringStatus.WITHDRAWN:
                    return "withdrawn"
                if not write.on_schedule(firing):
                    # announced too late to be drawn unattended: an off-schedule draw (reason, second coordinator)
                    await self._report_missed(fire)
                    return "announced_late"
                await write.draw(
                    firing.draw_ref,
                    clock=self.clock,
                    zone=self.zone,
                    locale=self.rt.settings.locale,
                    beacon_fetch=fetch,
                )
                return "drawn"

        try:
            return await self.run_once(fire.key, fire.kind, fire.at, work)
        except DrawError as exc:
            if exc.code != "beacon_unavailable":
                log.exception("fire %s failed; it will be tried again", fire.key)
                return f"failed:{exc.code}"
            return await self._beacon_missing(fire, exc)
        except Exception as exc:
            log.exception("fire %s failed; it will be tried again", fire.key)
            return f"failed:{exc.__class__.__name__}"

    async def _prefetch(self, fire: PlannedFire) -> drand.Fetch:
        """The draw's drand round, fetched before the fire's transaction opens (a relay may take
        seconds): the draw then reads it from here."""
        firing = await announce.firing_at(fire.plan, fire.fire_at)
        plan = firing.beacon_plan if firing is not None else None
        got: str | None = None
        if plan and plan.get("kind") == KIND_DRAND and firing is not None and firing.status is FiringStatus.ANNOUNCED:
            try:
                got = await self.beacon_fetch(Chain.from_dict(plan["chain"]), plan["round"])
            except Exception:
                log.exception("fetching drand round %s for %s failed", plan["round"], firing.draw_ref)

        async def fetched(chain: Chain, number: int) -> str | None:
            return got

        return fetched

    async def _beacon_missing(self, fire: PlannedFire, exc: DrawError) -> str:
        """The planned beacon is not there yet: the draw does not go ahead without it. The fire
        is tried again on every sweep until the grace runs out (then it is reported missed);
        once ``beacon_wait`` has passed the plan's coordinators are alerted, once."""
        now = self.clock.now()
        waited = now - fire.fire_at
        log.warning("draw %s waits for its beacon (%s)", exc.params.get("draw_ref"), exc.params)
        if waited >= self.beacon_wait:
            await alert_plan_coordinators(
                fire.plan,
                "beacon_missing.j2",
                {
                    "plan": fire.plan,
                    "draw_ref": exc.params.get("draw_ref", ""),
                    "kind": exc.params.get("kind", ""),
                    "round": exc.params.get("round", ""),
                    "sources": exc.params.get("sources", ""),
                    "due": fire.fire_at.astimezone(self.zone).isoformat(" ", "minutes"),
                    "until": (fire.at + self.grace).astimezone(self.zone).isoformat(" ", "minutes"),
                },
                dedupe=f"beacon_missing:{exc.params.get('draw_ref', fire.key)}",
                now=now,
            )
        return "beacon_pending"

    # -- APScheduler -------------------------------------------------------------------------

    async def start(self) -> None:
        """Build the jobs from plan rows and start APScheduler in the running loop."""
        self._aps = AsyncIOScheduler(timezone=self.zone)
        self._aps.add_job(
            self.run_due,
            "interval",
            seconds=self.sweep_every,
            id="sweep",
            coalesce=True,
            max_instances=1,
            next_run_time=datetime.now(self.zone),
        )
        await self.rebuild()
        self._aps.start()

    async def rebuild(self) -> None:
        """(Re)build the date jobs of every active plan's upcoming fires. Called at start and
        whenever a plan is added or changed."""
        if self._aps is None:
            return
        for job in self._aps.get_jobs():
            if job.id != "sweep":
                job.remove()
        now = self.clock.now()
        for _plan, spec in await self.plan_specs():
            for fire in plan_fires(spec, self.zone, now, now + timedelta(days=60))[:20]:
                self._aps.add_job(
                    self.fire_plan,
                    "date",
                    run_date=fire.at,
                    args=[fire],
                    id=fire.key,
                    misfire_grace_time=int(self.grace.total_seconds()),
                    coalesce=True,
                    replace_existing=True,
                )

    def shutdown(self) -> None:
        if self._aps is not None and self._aps.running:
            self._aps.shutdown(wait=False)
