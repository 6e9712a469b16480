"""``inspectbot results export --month YYYY-MM [--out DIR]``: the month's published results for
the national credit publicity system, as ``results-YYYY-MM.csv`` (UTF-8 with BOM) and
``results-YYYY-MM.json`` (services.credit; docs/results.md)."""

from __future__ import annotations

import sys
from pathlib import Path

from core import db
from core.clock import SYSTEM
from core.render import text
from services import credit, reports


def register(sub) -> None:
    parser = sub.add_parser("results", help="published inspection results: export for the credit record")
    inner = parser.add_subparsers(dest="results_command", required=True, metavar="ACTION")
    export = inner.add_parser("export", help="the month's published results as CSV and JSON")
    export.add_argument("--month", required=True, help="YYYY-MM (the month the results were published)")
    export.add_argument("--out", type=Path, default=None, help="directory to write to (default: the data directory)")
    export.set_defaults(func=run_export)


async def run_export(args, settings, clock=SYSTEM) -> int:
    out = args.out or settings.data_dir / "exports"
    async with db.opened(settings):
        try:
            records = await credit.published_records(args.month, settings.zone)
        except reports.ReportError:
            print(text("results_error", settings.locale, value=args.month), file=sys.stderr)
            return 2
    out.mkdir(parents=True, exist_ok=True)
    csv_path, json_path = out / f"results-{args.month}.csv", out / f"results-{args.month}.json"
    csv_path.write_bytes(credit.to_csv(records))
    json_path.write_bytes(credit.to_json(records, args.month, clock.now().astimezone(settings.zone)))
    print(text("results_exported", settings.locale, n=len(records), month=args.month, csv=csv_path, json=json_path))
    return 0
