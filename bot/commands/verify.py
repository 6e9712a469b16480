"""``inspectbot verify DIR``: re-derive a published draw bundle and say, line by line, what matches.

Needs no database: the bundle (draw.json, pool.tsv, inspectors.tsv, and recusals.tsv when there
were recusals) is all an auditor has, and all this command reads. Exit 0 when every check holds,
1 when one fails, 2 when the bundle cannot be read, 3 when every check holds but the beacon came
from a local TEST drand chain (its rounds prove nothing about who could choose them) and
``--allow-test-chain`` was not given (the demo and tests give it).
"""

from __future__ import annotations

import sys
from pathlib import Path

from core import drand
from core.render import text
from domain import bundle


def register(sub) -> None:
    parser = sub.add_parser("verify", help="re-derive a published draw bundle and check every part of it")
    parser.add_argument(
        "directory", type=Path, help="folder holding draw.json, pool.tsv, inspectors.tsv[, recusals.tsv]"
    )
    parser.add_argument(
        "--allow-test-chain",
        action="store_true",
        help="accept a beacon from a local test drand chain (the demo's): exit 0 instead of 3",
    )
    parser.set_defaults(func=run)


TEST_CHAIN = 3  #: the exit status of a bundle that verifies on a local test chain


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
    try:
        lines = bundle.verify(files, drand.verify_signature)
    except bundle.BundleError as exc:
        return _unreadable(locale, exc.code, **exc.params)
    for line in lines:
        print(text("verify_line", locale, line=line))
    failed = sum(not line.ok for line in lines)
    print(text("verify_summary", locale, failed=failed, total=len(lines)))
    if failed:
        return 1
    if any(line.what == "beacon_chain_test" for line in lines):
        allowed = getattr(args, "allow_test_chain", False)
        print(text("verify_test_chain", locale, allowed=allowed), file=sys.stdout if allowed else sys.stderr)
        return 0 if allowed else TEST_CHAIN
    return 0


def _unreadable(locale: str, code: str, **params) -> int:
    print(text("verify_unreadable", locale, error=code, p=params), file=sys.stderr)
    return 2
