"""``inspectbot import entities|inspectors|items|departments|indicators FILE [--partial]``."""

from __future__ import annotations

import sys

from core import db
from core.clock import SystemClock
from core.render import render, text
from importers.columns import KINDS
from importers.indicators import import_indicators
from importers.run import ImportResult, import_file

MISSING_SHARE = 0.2  # a full import making more than this share of active rows inactive asks first


def register(sub) -> None:
    parser = sub.add_parser(
        "import",
        help="import a directory file (CSV or XLSX): all of it, or nothing",
        description="Import order: departments, items, entities, inspectors; risk indicators after a risk model is loaded.",
    )
    parser.add_argument("kind", choices=(*KINDS, "indicators"))
    parser.add_argument("file")
    parser.add_argument(
        "--partial",
        action="store_true",
        help="the file is a partial export: rows missing from it are left alone",
    )
    parser.add_argument("--progress", action="store_true", help="show a progress bar even when stderr is no terminal")
    parser.add_argument(
        "--yes",
        action="store_true",
        help=f"全量导入将停用超过 {MISSING_SHARE:.0%} 的在册记录时也照做 / import even if it deactivates over that share",
    )
    parser.set_defaults(func=run)


def progress_bars(locale: str, force: bool = False, unit: str = "import_progress"):
    """A factory of tqdm bars on stderr, or None when nobody would see them; ``unit`` names the
    text that labels a bar (given the phase)."""
    if not (force or sys.stderr.isatty()):
        return None
    from tqdm import tqdm

    def bar(phase: str, total: int | None):
        return tqdm(
            total=total,
            desc=text(unit, locale=locale, phase=phase),
            unit="row",
            unit_scale=True,
            file=sys.stderr,
            leave=False,
        )

    return bar


def report(result: ImportResult, locale: str) -> str:
    return render("cli/import_report.txt", locale=locale, r=result)


async def run(args, settings) -> int:
    async with db.opened(settings):
        if args.kind == "indicators":
            now = SystemClock().now()
            result = await import_indicators(args.file, now=now, today=now.astimezone(settings.zone).date())
        else:
            result = await import_file(
                args.kind,
                args.file,
                now=SystemClock().now(),
                partial=args.partial,
                progress=progress_bars(settings.locale, args.progress),
                max_missing_share=None if args.yes else MISSING_SHARE,
            )
    print(report(result, settings.locale), file=sys.stdout if result.ok else sys.stderr)
    return 0 if result.ok else 1
