"""The plans as a coordinator sees them from chat: /plans (a page), /plan CODE (its detail).

Scoped (services.scope): a coordinator sees the plans of which at least one department is
theirs, an admin every plan; a plan outside the scope is refused exactly like a missing one.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from zoneinfo import ZoneInfo

from core.clock import local_minute as _local
from domain.errors import ServiceError
from domain.surveys.sampling import DEFAULT_SHARES
from models.directory import Item
from models.draws import Draw
from models.plans import Plan
from services.directory import department_names
from services.draws.announce import pending_firings
from services.draws.beacon import describe
from services.plans import fire_times, spec_of
from services.scope import Page, Scope, page_of, plans_in_scope


class PlanViewError(ServiceError):
    """Refused; ``code`` names a text (``coord_error`` in texts/coordinator.j2)."""


async def plans_page(scope: Scope, page: int, now: datetime, zone: ZoneInfo) -> Page:
    """/plans: the scope's plans, by code, with their next fire and pending firing."""
    plans = await plans_in_scope(scope)
    shown = page_of(plans, page)
    pending = await pending_firings([p.id for p in shown.items])
    names = await department_names(d for p in shown.items for d in p.departments)
    items = []
    for p in shown.items:
        spec = spec_of(p)
        nxt = fire_times(spec, now, zone, limit=1)
        firing = pending.get(p.id)
        items.append(
            {
                "id": p.id,
                "code": p.code,
                "name": p.name,
                "departments": [names[d] for d in p.departments],
                "flight": p.flight,
                "active": p.active,
                "next": _local(nxt[0], zone) if nxt else "",
                "pending": firing.draw_ref if firing else "",
            }
        )
    return Page(items, shown.page, shown.pages, shown.total)


async def plan_in_scope(scope: Scope, code: str, conn=None) -> Plan:
    q = Plan.filter(code=code)
    if conn is not None:
        q = q.using_db(conn)
    plan = await q.first()
    if plan is None or not scope.covers(plan.departments):
        raise PlanViewError("plan_not_found", plan=code)
    return plan


async def plan_code(scope: Scope, plan_id: int) -> str:
    """The code of a plan named by id (a button); refused like a missing one outside the scope."""
    plan = await Plan.get_or_none(id=plan_id)
    if plan is None or not scope.covers(plan.departments):
        raise PlanViewError("plan_not_found", plan=str(plan_id))
    return plan.code


async def plan_detail(scope: Scope, code: str, now: datetime, zone: ZoneInfo) -> dict:
    """/plan CODE: items, ratios, the integrity survey's shares, team, schedule, next fires, the
    pending firing's commitment and the latest draws."""
    plan = await plan_in_scope(scope, code)
    spec = spec_of(plan)
    names = dict(await _item_names(spec.items))
    departments = await department_names([*plan.departments, *(s for s in spec.team.seats if s)])
    firing = (await pending_firings([plan.id])).get(plan.id)
    recent = await Draw.filter(plan_id=plan.id).order_by("-drawn_at", "-id").limit(3).values("draw_ref", "drawn_at")
    return {
        "id": plan.id,
        "code": plan.code,
        "name": plan.name,
        "departments": [departments[d] for d in plan.departments],
        "flight": plan.flight,
        "active": plan.active,
        "items": [{"code": c, "name": names.get(c, "")} for c in spec.items],
        "ratios": [{"stratum": s, "ratio": r} for s, r in spec.ratios],
        "survey_shares": [{"stratum": s, "share": v} for s, v in (spec.survey_shares or DEFAULT_SHARES.items())],
        "team": {"size": spec.team.size, "seats": [departments[s] if s else "*" for s in spec.team.seats]},
        "response": {"working_days": spec.response.working_days, "time": spec.response.time},
        "schedule": {
            "cron": spec.schedule.cron or "",
            "dates": [d.replace("T", " ") for d in spec.schedule.dates],  # local "YYYY-MM-DD HH:MM"
            "announce_days": spec.schedule.announce_days,
        },
        "next": [_local(t, zone) for t in fire_times(spec, now, zone, limit=3)],
        "pending": (
            {
                "draw_ref": firing.draw_ref,
                "fire_at": _local(firing.fire_at, zone),
                "commitment": firing.commitment,
                "beacon": describe(firing.beacon_plan, zone, firing.beacon_values),
            }
            if firing
            else None
        ),
        "draws": [{"draw_ref": d["draw_ref"], "drawn_at": _local(d["drawn_at"], zone)} for d in recent],
    }


async def _item_names(codes: Iterable[str]) -> list[tuple[str, str]]:
    return await Item.filter(code__in=list(codes)).values_list("code", "name")
