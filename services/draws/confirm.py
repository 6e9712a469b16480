"""A coordinator draws from chat: /draw CODE previews (counts per risk class, writes nothing),
then a confirmation draws the pending firing, or announces one now and draws it.

Scoped (services.scope); every draw is on the audit chain (``draw.drawn``, as the coordinator's).
"""

from __future__ import annotations

from dataclasses import dataclass
from zoneinfo import ZoneInfo

from tortoise.transactions import in_transaction

from core import drand
from core.clock import Clock
from core.clock import local_minute as _local
from domain.plans import lead_time
from models.draws import Draw, Firing
from models.plans import Plan
from services.draws.announce import pending_firings
from services.draws.common import DrawError
from services.draws.gather import Preview, preview
from services.draws.write import DrawResult, draw, draw_plan, on_schedule
from services.plan_views import plan_in_scope
from services.plans import spec_of
from services.scope import Scope

DEFAULT_LOCALE = "zh-CN"


@dataclass(frozen=True)
class DrawPreview:
    plan_id: int
    plan_code: str
    plan_name: str
    preview: Preview
    firing_id: int | None  # the pending firing the confirmation will draw
    fire_at: str  # its fire time (local), "" when none
    due: bool  # False: announced for later, the scheduler draws it then
    firings: int  # the plan's firings so far: a confirmation without a pending firing checks it
    off_schedule: bool = False  # a draw now would be off schedule: from the CLI only (no Confirm)
    lead_days: int = 1
    last_draw: str = ""  # the plan's latest draw, shown when nothing is pending
    last_drawn_at: str = ""

    def context(self) -> dict:
        p = self.preview
        return {
            "plan": {"code": self.plan_code, "name": self.plan_name},
            "draw_ref": p.draw_ref,
            "fire_at": self.fire_at,
            "due": self.due,
            "flight": p.flight,
            "pool": p.pool,
            "inspectors": p.inspectors,
            "team_size": p.team_size,
            "drawn": p.drawn,
            "strata": [{"stratum": s.stratum, "pool": s.pool, "ratio": s.ratio, "drawn": s.drawn} for s in p.strata],
            "warnings": list(p.warnings),
            "off_schedule": self.off_schedule,
            "lead_days": self.lead_days,
            "last_draw": self.last_draw,
            "last_drawn_at": self.last_drawn_at,
        }


async def draw_preview(scope: Scope, code: str, *, clock: Clock, zone: ZoneInfo) -> DrawPreview:
    """/draw CODE: what a draw would select now, per risk class. Writes nothing."""
    plan = await plan_in_scope(scope, code)
    try:
        counts = await preview(plan.code, clock=clock, zone=zone)
    except DrawError as exc:
        raise DrawError("draw_failed", error=exc.code, **exc.params) from None
    firing = (await pending_firings([plan.id])).get(plan.id)
    last = await Draw.filter(plan_id=plan.id).order_by("-drawn_at", "-id").first()
    return DrawPreview(
        plan_id=plan.id,
        plan_code=plan.code,
        plan_name=plan.name,
        preview=counts,
        firing_id=firing.id if firing else None,
        fire_at=_local(firing.fire_at, zone) if firing else "",
        due=firing is None or clock.now() >= firing.fire_at,
        firings=await Firing.filter(plan_id=plan.id).count(),
        off_schedule=firing is None or not on_schedule(firing),
        lead_days=lead_time(spec_of(plan)).days,
        last_draw=last.draw_ref if last else "",
        last_drawn_at=_local(last.drawn_at, zone) if last else "",
    )


@dataclass(frozen=True)
class Drawn:
    result: DrawResult

    def context(self, zone: ZoneInfo) -> dict:
        r = self.result
        return {
            "draw_ref": r.draw_ref,
            "plan": r.plan_code,
            "commitment": r.commitment,
            "announced_now": r.announced_now,
            "pool": r.pool,
            "inspectors": r.inspectors,
            "inspections": r.inspections,
            "assignments": r.assignments,
            "unstaffable": r.unstaffable,
            "flight": r.flight,
            "reveal_at": _local(r.reveal_at, zone),
            "digest": r.inspections_digest,
            "strata": [{"stratum": s, "pool": c.pool, "ratio": c.ratio, "drawn": c.drawn} for s, c in r.strata.items()],
        }


async def draw_firing(
    scope: Scope,
    firing_id: int,
    *,
    clock: Clock,
    zone: ZoneInfo,
    locale: str = DEFAULT_LOCALE,
    beacon_fetch: drand.Fetch | None = None,
) -> Drawn:
    """Confirm: draw the announced firing the preview showed. Drawing it twice is refused by
    the draw service (and by the database: ``draw_ref`` is unique), so a double tap draws once.
    A firing with a planned drand beacon gets its round through ``beacon_fetch``."""
    firing = await Firing.get_or_none(id=firing_id).prefetch_related("plan")
    if firing is None or not scope.covers(firing.plan.departments):
        raise DrawError("firing_not_found", firing=firing_id)
    async with in_transaction():
        try:
            result = await draw(
                firing.draw_ref, clock=clock, zone=zone, locale=locale, beacon_fetch=beacon_fetch, actor=scope.actor
            )
        except DrawError as exc:
            raise DrawError("draw_failed", error=exc.code, **exc.params) from None
    return Drawn(result)


async def draw_now(
    scope: Scope, plan_id: int, firings_seen: int, *, clock: Clock, zone: ZoneInfo, locale: str = DEFAULT_LOCALE
) -> Drawn:
    """Confirm when no firing was pending: a draw now is off schedule, which chat does not
    offer (no button); a forged or stale press is refused by the draw service saying what
    exists, and nothing is drawn.

    The plan row is locked and its firings counted: if any firing was announced since the
    preview (a double tap, another coordinator, the scheduler), nothing is drawn."""
    async with in_transaction() as conn:
        plan = await Plan.filter(id=plan_id).using_db(conn).select_for_update().first()
        if plan is None or not scope.covers(plan.departments):
            raise DrawError("plan_not_found", plan=str(plan_id))
        if await Firing.filter(plan_id=plan.id).using_db(conn).count() != firings_seen:
            latest = await Firing.filter(plan_id=plan.id).using_db(conn).order_by("-id").first()
            raise DrawError("changed_since_preview", plan=plan.code, draw_ref=latest.draw_ref if latest else "")
        try:
            result = await draw_plan(plan.code, clock=clock, zone=zone, locale=locale, actor=scope.actor)
        except DrawError as exc:
            raise DrawError("draw_failed", error=exc.code, **exc.params) from None
    return Drawn(result)
