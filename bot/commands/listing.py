"""``inspectbot draws list [--page N]``, ``inspectbot draws show DRAW_REF [--force]`` and
``inspectbot firings list [--page N]``: what has been drawn, who was sent where, and the
commitments published ahead of draws still to come."""

from __future__ import annotations

import sys

from core import db
from core.clock import SYSTEM
from core.render import text
from services import public
from services.draws.common import DrawError
from services.draws.listing import assignments

PAGE = 50


def register(sub) -> None:
    draws = sub.add_parser(
        "draws", help="列出抽取批次，或查看一个批次的检查对象和检查组 / list draws, show one"
    ).add_subparsers(dest="draws_command", required=True)
    lst = draws.add_parser("list", help="最近的抽取批次（最新在前）/ the draws, newest first")
    lst.add_argument("--page", type=int, default=1)
    lst.set_defaults(func=list_draws)
    show = draws.add_parser("show", help="一个批次的检查对象与检查组 / a draw's inspections and teams")
    show.add_argument("draw_ref")
    show.add_argument("--force", action="store_true", help="飞行检查揭晓前也显示（管理员）/ show a sealed flight draw")
    show.set_defaults(func=show_draw)
    firings = sub.add_parser("firings", help="已公示、尚未抽取的批次及其承诺值 / announced firings").add_subparsers(
        dest="firings_command", required=True
    )
    fl = firings.add_parser("list", help="已公示、尚未抽取的批次（最早在前）/ announced, soonest first")
    fl.add_argument("--page", type=int, default=1)
    fl.set_defaults(func=list_firings)


def _when(moment, settings) -> str:
    return moment.astimezone(settings.zone).strftime("%Y-%m-%d %H:%M") if moment else ""


async def list_draws(args, settings) -> int:
    async with db.opened(settings):
        page = await public.draws(SYSTEM.now(), max(args.page, 1), PAGE)
    rows = [{**d.__dict__, "drawn_at": _when(d.drawn_at, settings)} for d in page.rows]
    print(text("draws_list", settings.locale, rows=rows, page=page))
    return 0


async def list_firings(args, settings) -> int:
    async with db.opened(settings):
        page = await public.announced(max(args.page, 1), PAGE)
    rows = [{**f.__dict__, "fire_at": _when(f.fire_at, settings)} for f in page.rows]
    print(text("firings_list", settings.locale, rows=rows, page=page))
    return 0


async def show_draw(args, settings) -> int:
    async with db.opened(settings):
        try:
            found = await assignments(args.draw_ref, SYSTEM.now(), force=args.force)
        except DrawError as exc:
            print(text("draw_error", settings.locale, error=exc.code, **exc.params), file=sys.stderr)
            return 1
    print(
        text(
            "draw_assignments",
            settings.locale,
            d=found,
            drawn_at=_when(found.drawn_at, settings),
            reveal_at=_when(found.reveal_at, settings),
        )
    )
    return 0
