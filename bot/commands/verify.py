"""``inspectbot verify BUNDLE [--disclosure FILE]`` (the downloaded zip, or the folder it unpacks to):
re-derive a published draw bundle and say, line by line, what matches. A v2 bundle (confidential
classes) is checked as far as the public can; with the auditor's disclosure also every class and the
exact selection, with an entity's its own fate.

Needs no database: the bundle (draw.json, pool.tsv, inspectors.tsv, and recusals.tsv when there
were recusals) is all an auditor has, and all this command reads. Exit 0 when every check holds,
1 when one fails, 2 when the bundle cannot be read, 3 when every check holds but the beacon came
from a local TEST drand chain (its rounds prove nothing about who could choose them) and
``--allow-test-chain`` was not given (the demo and tests give it).
"""

from __future__ import annotations

import json
import sys
import zipfile
from datetime import datetime
from pathlib import Path

from core import drand
from core.render import text
from domain import bundle

SEALED_FILE = "sealed.json"  # what a flight draw publishes before its reveal (services.draws.export)
MAX_MEMBER = 512 << 20  # a zip member larger than this is not a bundle file (a zip bomb is refused)


def register(sub) -> None:
    parser = sub.add_parser(
        "verify", help="重新推导并逐项核验公开的抽取数据包 / re-derive a published draw bundle and check every part"
    )
    parser.add_argument(
        "directory",
        type=Path,
        metavar="BUNDLE",
        help="下载的 zip，或解压后的目录 / the downloaded zip, or the folder it unpacks to",
    )
    parser.add_argument(
        "--allow-test-chain",
        action="store_true",
        help="accept a beacon from a local test drand chain (the demo's): exit 0 instead of 3",
    )
    parser.add_argument(
        "--disclosure",
        type=Path,
        default=None,
        metavar="FILE",
        help="protocol v2: the audit disclosure (every class) or one entity's disclosure line",
    )
    parser.set_defaults(func=run)


TEST_CHAIN = 3  #: the exit status of a bundle that verifies on a local test chain


def read_bundle(directory: Path) -> dict[str, bytes]:
    """The bundle's files that exist in ``directory``, as bytes (a missing required one is left
    for :func:`domain.bundle.verify` to name)."""
    files = {}
    for name in (*bundle.REQUIRED_FILES, bundle.RECUSALS_FILE, SEALED_FILE):
        path = directory / name
        if path.is_file():
            files[name] = path.read_bytes()
    return files


def bundle_folder(directory: Path) -> Path:
    """The folder holding the bundle: ``directory`` itself, or its only subfolder when the files
    are not at the top (the zip unpacks into ``<draw>/``)."""
    if (directory / bundle.DRAW_FILE).is_file() or (directory / SEALED_FILE).is_file():
        return directory
    subfolders = [p for p in directory.iterdir() if p.is_dir() and not p.name.startswith((".", "__MACOSX"))]
    return subfolders[0] if len(subfolders) == 1 else directory


def read_zip(path: Path) -> dict[str, bytes]:
    """The bundle's files inside a downloaded zip, wherever they sit in it (by file name)."""
    wanted = {*bundle.REQUIRED_FILES, bundle.RECUSALS_FILE, SEALED_FILE}
    files: dict[str, bytes] = {}
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            name = info.filename.rsplit("/", 1)[-1]
            if name in wanted and not info.is_dir() and name not in files:
                if info.file_size > MAX_MEMBER:
                    raise zipfile.BadZipFile(f"{info.filename} is too large")
                files[name] = zf.read(info)
    return files


async def run(args, settings) -> int:
    locale = settings.locale
    given: Path = args.directory
    try:
        if given.is_file() and zipfile.is_zipfile(given):
            files = read_zip(given)
        elif given.is_dir():
            files = read_bundle(bundle_folder(given))
        else:
            return _unreadable(locale, "bundle_not_a_directory", path=str(given))
    except zipfile.BadZipFile:
        return _unreadable(locale, "bundle_bad_zip", path=str(given))
    except OSError as exc:
        return _unreadable(locale, "bundle_io", path=str(exc.filename or given))
    if SEALED_FILE in files and bundle.DRAW_FILE not in files:
        return _sealed(locale, files[SEALED_FILE], settings.zone)
    disclosure = None
    if args.disclosure is not None:
        try:
            disclosure = args.disclosure.read_bytes()
        except OSError:
            return _unreadable(locale, "bundle_io", path=str(args.disclosure))
    try:
        lines = bundle.verify(files, disclosure, check_signature=drand.verify_signature)
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


def _sealed(locale: str, raw: bytes, zone) -> int:
    """A flight draw before its reveal: nothing to re-derive yet; say so, and until when."""
    try:
        record = json.loads(raw)
    except ValueError:
        record = {}
    record = record if isinstance(record, dict) else {}
    print(
        text(
            "verify_sealed",
            locale,
            draw_ref=str(record.get("draw_ref", "")),
            reveal_at=_local(record.get("reveal_at"), zone),
            digest=str(record.get("inspections_digest", "")),
        )
    )
    return 2


def _local(stamp: object, zone) -> str:
    try:
        return datetime.fromisoformat(str(stamp)).astimezone(zone).strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return ""


def _unreadable(locale: str, code: str, **params) -> int:
    print(text("verify_unreadable", locale, error=code, p=params), file=sys.stderr)
    return 2
