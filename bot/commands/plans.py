"""``inspectbot plan add FILE | list | show CODE | retire CODE --reason R``: inspection plans from
TOML/YAML files."""

from __future__ import annotations

import sys
from pathlib import Path

from core import db
from core.clock import SYSTEM
from core.render import text
from domain.plans import PlanError
from models.draws import FiringStatus
from services import plans
from services.draws.announce import firings


def register(sub) -> None:
    group = sub.add_parser("plan", help="inspection plans").add_subparsers(dest="plan_command", required=True)
    add = group.add_parser("add", help="load a plan file (TOML or YAML); replaces the plan with the same code")
    add.add_argument("file", type=Path)
    add.set_defaults(func=add_plan)
    group.add_parser("list", help="list the plans").set_defaults(func=list_plans)
    show = group.add_parser("show", help="show one plan")
    show.add_argument("code")
    show.set_defaults(func=show_plan)
    retire = group.add_parser("retire", help="retire a plan: nothing more is announced or drawn (audited)")
    retire.add_argument("code")
    retire.add_argument("--reason", required=True, help="why (on the audit chain)")
    retire.set_defaults(func=retire_plan)


def plan_error(exc: PlanError, locale: str) -> str:
    return text("plan_error", locale, path=exc.path, error=exc.code, **exc.params)


async def add_plan(args, settings) -> int:
    try:
        spec = plans.load_plan_file(args.file)  # file errors first, before touching the database
    except PlanError as exc:
        print(plan_error(exc, settings.locale), file=sys.stderr)
        return 2
    async with db.opened(settings):
        try:
            added = await plans.add_plan(args.file, SYSTEM)
        except PlanError as exc:
            print(plan_error(exc, settings.locale), file=sys.stderr)
            return 2
        upcoming = plans.fire_times(spec, SYSTEM.now(), settings.zone, limit=3)
    print(
        text(
            "plan_added",
            settings.locale,
            plan=added.spec.to_dict(),
            created=added.created,
            upcoming=[t.strftime("%Y-%m-%d %H:%M") for t in upcoming],
        )
    )
    return 0


async def list_plans(args, settings) -> int:
    async with db.opened(settings):
        rows = await plans.list_plans()
    now = SYSTEM.now()
    listed = []
    for plan in rows:
        spec = plans.spec_of(plan)
        upcoming = plans.fire_times(spec, now, settings.zone, limit=1)
        listed.append({**spec.to_dict(), "next": upcoming[0].strftime("%Y-%m-%d %H:%M") if upcoming else ""})
    print(text("plan_list", settings.locale, plans=listed))
    return 0


async def show_plan(args, settings) -> int:
    async with db.opened(settings):
        try:
            plan = await plans.get_plan(args.code)
        except plans.PlanNotFound:
            print(text("plan_not_found", settings.locale, code=args.code), file=sys.stderr)
            return 1
        announced = [f for f in await firings(plan.code) if f.status == FiringStatus.ANNOUNCED]
    pending = [
        {
            "draw_ref": f.draw_ref,
            "fire_at": f.fire_at.astimezone(settings.zone).strftime("%Y-%m-%d %H:%M"),
            "commitment": f.commitment,
        }
        for f in announced
    ]
    spec = plans.spec_of(plan)
    upcoming = plans.fire_times(spec, SYSTEM.now(), settings.zone, limit=3)
    print(
        text(
            "plan_detail",
            settings.locale,
            plan=spec.to_dict(),
            upcoming=[t.strftime("%Y-%m-%d %H:%M") for t in upcoming],
            pending=pending,
        )
    )
    return 0


async def retire_plan(args, settings) -> int:
    async with db.opened(settings):
        try:
            await plans.retire_plan(args.code, args.reason, clock=SYSTEM)
        except plans.PlanNotFound:
            print(text("plan_not_found", settings.locale, code=args.code), file=sys.stderr)
            return 1
        except plans.PlanRetireError as exc:
            print(text("plan_retire_error", settings.locale, error=exc.code, **exc.params), file=sys.stderr)
            return 1
    print(text("plan_retired", settings.locale, code=args.code, reason=args.reason.strip()))
    return 0
