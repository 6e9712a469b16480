"""``inspectbot verify DIR [--disclosure FILE]``: re-derive a published draw bundle and say, line by
line, what matches. A v2 bundle (confidential classes) is checked as far as the public can; with
the auditor's disclosure also every class and the exact selection, with an entity's its own fate.

Needs no database: the bundle (draw.json, pool.tsv, inspectors.tsv, and recusals.tsv when there
were recusals) is all an auditor has, and all this command reads. Exit 0 when every check holds,
1 when one fails, 2 when the bundle cannot be read.
"""

from __future__ import annotations

import sys
from pathlib import Path

from core.render import text
from domain import bundle


def register(sub) -> None:
    parser = sub.add_parser("verify", help="re-derive a published draw bundle and check every part of it")
    parser.add_argument(
        "directory", type=Path, help="folder holding draw.json, pool.tsv, inspectors.tsv[, recusals.tsv]"
    )
    parser.add_argument(
        "--disclosure",
        type=Path,
        default=None,
        metavar="FILE",
        help="protocol v2: the audit disclosure (every class) or one entity's disclosure line",
    )
    parser.set_defaults(func=run)


def read_bundle(directory: Path) -> dict[str, bytes]:
    """The bundle's files that exist in ``directory``, as bytes (a missing required one is left
    for :func:`domain.bundle.verify` to name)."""
    files = {}
    for name in (*bundle.REQUIRED_FILES, bundle.RECUSALS_FILE):
        path = directory / name
        if path.is_file():
            files[name] = path.read_bytes()
    return files


async def run(args, settings) -> int:
    locale = settings.locale
    directory: Path = args.directory
    if not directory.is_dir():
        return _unreadable(locale, "bundle_not_a_directory", path=str(directory))
    try:
        files = read_bundle(directory)
    except OSError as exc:
        return _unreadable(locale, "bundle_io", path=str(exc.filename or directory))
    disclosure = None
    if args.disclosure is not None:
        try:
            disclosure = args.disclosure.read_bytes()
        except OSError:
            return _unreadable(locale, "bundle_io", path=str(args.disclosure))
    try:
        lines = bundle.verify(files, disclosure)
    except bundle.BundleError as exc:
        return _unreadable(locale, exc.code, **exc.params)
    for line in lines:
        print(text("verify_line", locale, line=line))
    failed = sum(not line.ok for line in lines)
    print(text("verify_summary", locale, failed=failed, total=len(lines)))
    return 1 if failed else 0


def _unreadable(locale: str, code: str, **params) -> int:
    print(text("verify_unreadable", locale, error=code, p=params), file=sys.stderr)
    return 2
