"""``inspectbot announce PLAN [--at DATETIME]``, ``inspectbot withdraw DRAW_REF --reason R``,
``inspectbot draw PLAN [--beacon V] [--dry-run] [--reason R --confirmed-by COORDINATOR [--redraw DRAW_REF]]``,
``inspectbot draw export DRAW_REF DIR [--force]``,
``inspectbot beacon enter DRAW_REF VALUE... --confirmed-by COORDINATOR``,
``inspectbot draw disclose DRAW_REF --out FILE --reason R [--entity CODE]`` (protocol v2: the audit
disclosure of every class, or one entity's own line; audited)."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from core import db, drand
from core.clock import SYSTEM
from core.render import text
from domain.draw import note_fields
from services import audit, people
from services.draws.announce import CLI_ACTOR, withdraw
from services.draws.announce import announce as announce_firing
from services.draws.beacon import BeaconConfig, enter_values
from services.draws.common import DrawError
from services.draws.export import export as export_draw
from services.draws.fixed import disclose as disclose_draw
from services.draws.gather import Preview
from services.draws.write import OffSchedule, draw_plan


def register(sub) -> None:
    ann = sub.add_parser("announce", help="announce a firing of a plan: publish the commitment to its secret")
    ann.add_argument("plan")
    ann.add_argument("--at", metavar="DATETIME", help="fire time, local (YYYY-MM-DD HH:MM); default now")
    ann.add_argument(
        "--beacon-source",
        action="append",
        default=[],
        metavar="NAME",
        help="a public source whose result becomes the beacon (repeat, in order; RFC 3797 style)",
    )
    ann.set_defaults(func=announce)
    bcn = sub.add_parser("beacon", help="enter the values of the public sources a firing named in advance")
    bcn.add_argument("action", choices=["enter"])
    bcn.add_argument("draw_ref")
    bcn.add_argument("values", nargs="+", metavar="VALUE", help="one per source, in the announced order")
    bcn.add_argument(
        "--confirmed-by", required=True, metavar="COORDINATOR", help="the second coordinator (binding id, e.g. 12)"
    )
    bcn.set_defaults(func=enter_beacon)
    wdr = sub.add_parser("withdraw", help="withdraw an announced firing before its draw (public reason, audited)")
    wdr.add_argument("draw_ref")
    wdr.add_argument("--reason", required=True, help="why (shown on the public pages)")
    wdr.set_defaults(func=withdraw_firing)
    drw = sub.add_parser(
        "draw",
        help="draw a plan once and for all, or export a draw's bundle",
        usage="inspectbot draw PLAN [--beacon VALUE] [--dry-run]"
        " [--reason TEXT --confirmed-by COORDINATOR [--redraw DRAW_REF]]\n"
        "       inspectbot draw export DRAW_REF DIR [--force]\n"
        '       inspectbot draw disclose DRAW_REF --out FILE --reason "…" [--entity CODE]',
    )
    drw.add_argument("plan", metavar="PLAN|export")
    drw.add_argument("rest", nargs="*", metavar="DRAW_REF DIR", help=argparse.SUPPRESS)
    drw.add_argument("--beacon", default="", help="public randomness unknown when the commitment was published")
    drw.add_argument("--dry-run", action="store_true", help="show the counts per stratum; write nothing")
    drw.add_argument(
        "--force", action="store_true", help="(administrators) export a flight draw in full before its reveal"
    )
    drw.add_argument("--reason", default=None, help="off-schedule draw (ad hoc or redraw): why, shown publicly")
    drw.add_argument(
        "--confirmed-by",
        default=None,
        metavar="COORDINATOR",
        help="off-schedule draw: the second coordinator of the plan's department (binding id, e.g. 12)",
    )
    drw.add_argument("--redraw", default=None, metavar="DRAW_REF", help="off-schedule: the draw of today redone")
    drw.add_argument("--out", default=None, type=Path, metavar="FILE", help="disclose: the file to write")
    drw.add_argument(
        "--entity", default=None, metavar="CODE", help="disclose: only this entity's own line (its class and salt)"
    )
    drw.set_defaults(func=draw_or_export)


def _error(exc: DrawError, locale: str) -> str:
    return text("draw_error", locale, error=exc.code, **exc.params)


def _parse_at(value: str, settings) -> datetime:
    when = datetime.fromisoformat(value)
    return when if when.tzinfo else when.replace(tzinfo=settings.zone)


def _coordinator_id(value: str) -> int | None:
    digits = value.removeprefix("coordinator:")
    return int(digits) if digits.isascii() and digits.isdigit() and len(digits) < 10 else None


def _off_schedule(args) -> OffSchedule | None | str:
    """The off-schedule request of the flags; a usage error's text code when incomplete."""
    if args.reason is None and args.confirmed_by is None and args.redraw is None:
        return None
    if args.reason is None or args.confirmed_by is None:
        return "draw_off_schedule_usage"
    confirmer = _coordinator_id(args.confirmed_by)
    return OffSchedule(
        reason=args.reason, confirmed_by=confirmer if confirmer is not None else -1, redraw=args.redraw or None
    )


async def withdraw_firing(args, settings) -> int:
    async with db.opened(settings):
        try:
            done = await withdraw(args.draw_ref, args.reason, actor=CLI_ACTOR, clock=SYSTEM)
        except DrawError as exc:
            print(_error(exc, settings.locale), file=sys.stderr)
            return 1
    w = {**done.__dict__, "fire_at": done.fire_at.astimezone(settings.zone).strftime("%Y-%m-%d %H:%M")}
    print(text("draw_withdrawn", settings.locale, w=w))
    return 0


async def announce(args, settings) -> int:
    at = None
    if args.at:
        try:
            at = _parse_at(args.at, settings)
        except ValueError:
            print(text("draw_bad_datetime", settings.locale, value=args.at), file=sys.stderr)
            return 2
    async with db.opened(settings):
        try:
            done = await announce_firing(
                args.plan,
                at,
                clock=SYSTEM,
                zone=settings.zone,
                actor=CLI_ACTOR,
                beacon=BeaconConfig.from_settings(settings),
                beacon_sources=args.beacon_source,
            )
        except DrawError as exc:
            print(_error(exc, settings.locale), file=sys.stderr)
            return 1
    print(
        text(
            "draw_announced",
            settings.locale,
            draw_ref=done.draw_ref,
            plan=done.plan_code,
            fire_at=done.fire_at.astimezone(settings.zone).strftime("%Y-%m-%d %H:%M"),
            commitment=done.commitment,
            beacon=done.beacon_plan,
            pool_digest=done.pool_digest,
        )
    )
    return 0


async def enter_beacon(args, settings) -> int:
    confirmer = _coordinator_id(args.confirmed_by)
    async with db.opened(settings):
        try:
            done = await enter_values(
                args.draw_ref,
                args.values,
                confirmed_by=confirmer if confirmer is not None else -1,
                entered_by=CLI_ACTOR,
                clock=SYSTEM,
            )
        except DrawError as exc:
            print(_error(exc, settings.locale), file=sys.stderr)
            return 1
        done = replace(done, confirmed_by=await people.who(done.confirmed_by))  # as the operator reads it
    print(text("beacon_entered", settings.locale, e=done))
    return 0


async def draw_or_export(args, settings) -> int:
    if args.plan == "disclose":
        if len(args.rest) != 1 or (args.entity is None and (args.out is None or not (args.reason or "").strip())):
            print(text("draw_disclose_usage", settings.locale), file=sys.stderr)
            return 2
        return await disclose(args.rest[0], args.out, args.entity, args.reason or "", settings)
    if args.plan == "export":
        if len(args.rest) != 2:
            print(text("draw_export_usage", settings.locale), file=sys.stderr)
            return 2
        return await export(args.rest[0], Path(args.rest[1]), args.force, settings)
    if args.rest:
        print(text("draw_usage", settings.locale), file=sys.stderr)
        return 2
    off = _off_schedule(args)
    if isinstance(off, str):
        print(text(off, settings.locale), file=sys.stderr)
        return 2
    async with db.opened(settings):
        try:
            result = await draw_plan(
                args.plan,
                args.beacon,
                dry_run=args.dry_run,
                clock=SYSTEM,
                zone=settings.zone,
                locale=settings.locale,
                off_schedule=off,
                beacon_fetch=drand.relay_fetcher(settings.drand_relays),
            )
        except DrawError as exc:
            print(_error(exc, settings.locale), file=sys.stderr)
            return 1
        if not isinstance(result, Preview):
            await audit.sync_checkpoint_file(settings.data_dir)  # the draw's checkpoint, outside the database
        if not isinstance(result, Preview) and result.off_schedule:  # who asked and confirmed, by name
            marked = dict(result.off_schedule)
            names = await people.whos([marked["requested_by"], marked["confirmed_by"]])
            marked.update(requested_by=names[marked["requested_by"]], confirmed_by=names[marked["confirmed_by"]])
            result = replace(result, off_schedule=marked)
    if isinstance(result, Preview):
        print(text("draw_preview", settings.locale, p=result))
        return 0
    print(result.draw_ref)
    reveal = result.reveal_at.astimezone(settings.zone).strftime("%Y-%m-%d %H:%M") if result.reveal_at else ""
    notes = [note_fields(n) for n in result.notes]
    print(text("draw_done", settings.locale, r=result, reveal_at=reveal, notes=notes))
    return 0


async def export(draw_ref: str, directory: Path, force: bool, settings) -> int:
    async with db.opened(settings):
        try:
            done = await export_draw(draw_ref, directory, clock=SYSTEM, force=force)
        except DrawError as exc:
            print(_error(exc, settings.locale), file=sys.stderr)
            return 1
    print(text("draw_exported", settings.locale, e=done))
    return 0


async def disclose(draw_ref: str, out: Path | None, entity: str | None, reason: str, settings) -> int:
    async with db.opened(settings):
        try:
            done = await disclose_draw(draw_ref, out, entity=entity, actor=CLI_ACTOR, reason=reason, clock=SYSTEM)
        except DrawError as exc:
            print(_error(exc, settings.locale), file=sys.stderr)
            return 1
    if done.path is None:  # one entity's line, to the terminal
        sys.stdout.write(done.data.decode("utf-8"))
        return 0
    print(text("draw_disclosed", settings.locale, d=done))
    return 0
