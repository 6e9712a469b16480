"""``inspectbot report [YYYY-MM]``: the monthly report on demand, as coordinators receive it.

Prints the report (last month by default; the current month so far if named) with the
per-inspector scores, and where its chart was written; ``--send`` also queues it to every
coordinator and admin, as the scheduler does on the 1st (queuing twice sends nothing twice).
"""

from __future__ import annotations

import sys

from core import db
from core.clock import SYSTEM
from core.render import render, text
from services import reports


def register(sub) -> None:
    parser = sub.add_parser("report", help="the monthly report: print it, or queue it to the coordinators")
    parser.add_argument("month", nargs="?", default="", help="YYYY-MM (default: last month)")
    parser.add_argument(
        "--department",
        action="append",
        default=None,
        metavar="CODE",
        help="only the plans of this department (repeatable; default: all)",
    )
    parser.add_argument("--send", action="store_true", help="queue it to every coordinator and admin too")
    parser.set_defaults(func=run)


async def run(args, settings, clock=SYSTEM) -> int:
    now = clock.now()
    month = args.month or reports.last_month(now, settings.zone)
    async with db.opened(settings):
        try:
            report = await reports.monthly_report(
                month, args.department, now, data_dir=settings.data_dir, zone=settings.zone, locale=settings.locale
            )
        except reports.ReportError as exc:
            print(text("report_error", settings.locale, error=exc.code, params=exc.params), file=sys.stderr)
            return 2
        print(render("messages/report.j2", settings.locale, r=report.context()))
        print(text("report_cli_chart", settings.locale, path=str(settings.data_dir / report.chart_path)))
        if args.send:
            sent = await reports.send_monthly_report(month, now, data_dir=settings.data_dir, zone=settings.zone)
            print(text("report_cli_sent", settings.locale, n=sent))
    return 0
