"""``inspectbot inspection archive <inspection> [--out DIR]``: one inspection's process record
as a zip for a disclosure request (services.archive; docs/results.md). The inspection is its
row id or ``DRAW_REF/NO``."""

from __future__ import annotations

import sys
from pathlib import Path

from core import db
from core.clock import SYSTEM
from core.render import text
from services import archive


def register(sub) -> None:
    group = sub.add_parser("inspection", help="one inspection's records").add_subparsers(
        dest="inspection_command", required=True
    )
    parser = group.add_parser("archive", help="its process record as a zip (phone numbers redacted)")
    parser.add_argument("inspection", help="the inspection: its id, or DRAW_REF/NO")
    parser.add_argument("--out", type=Path, default=None, help="directory to write to (default: the data directory)")
    parser.set_defaults(func=run_archive)


async def run_archive(args, settings, clock=SYSTEM) -> int:
    out = args.out or settings.data_dir / "exports"
    async with db.opened(settings):
        try:
            name, data = await archive.build_archive(args.inspection, Path(settings.data_dir), clock.now())
        except archive.ArchiveError as exc:
            print(text("archive_error", settings.locale, error=exc.code, params=exc.params), file=sys.stderr)
            return 2
    out.mkdir(parents=True, exist_ok=True)
    (out / name).write_bytes(data)
    print(text("archive_written", settings.locale, path=str(out / name)))
    return 0
