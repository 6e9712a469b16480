"""``inspectbot audit verify [--head SEQ:HASH]... [--bundle DIR]...``: walk the audit chain, name
the first broken record, and compare the table with every anchor of its head (the database's
checkpoints and draws, the checkpoint file under the data directory, heads and bundles given):
a log cut short or rewritten after a checkpoint is reported, with a non-zero exit."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from core import db
from core.render import text
from domain.audit import Checkpoint, parse_head
from services import audit


def register(sub) -> None:
    group = sub.add_parser("audit", help="the audit trail").add_subparsers(dest="audit_command", required=True)
    v = group.add_parser("verify", help="check the hash chain of the audit log against every checkpoint of its head")
    v.add_argument(
        "--head", action="append", default=[], metavar="SEQ:HASH", help="a head seen elsewhere (public page, report)"
    )
    v.add_argument(
        "--bundle",
        action="append",
        default=[],
        type=Path,
        metavar="DIR",
        help="a draw bundle: its draw.json audit_head",
    )
    v.set_defaults(func=verify)


def bundle_head(directory: Path) -> Checkpoint | None:
    """The ``audit_head`` of a bundle's draw.json (or sealed.json), None when it has none."""
    for name in ("draw.json", "sealed.json"):
        path = Path(directory) / name
        if path.is_file():
            doc = json.loads(path.read_text(encoding="utf-8"))
            head = doc.get("audit_head") if isinstance(doc, dict) else None
            if not isinstance(head, dict):
                return None
            found = parse_head(f"{head.get('seq')}:{head.get('hash')}")
            return Checkpoint(found.seq, found.head, "", f"bundle:{doc.get('draw_ref', '')}") if found else None
    return None


async def verify(args, settings) -> int:
    extra = []
    for value in args.head:
        found = parse_head(value)
        if found is None:
            print(text("audit_bad_head", settings.locale, value=value), file=sys.stderr)
            return 2
        extra.append(found)
    for directory in args.bundle:
        try:
            found = bundle_head(directory)
        except (OSError, ValueError):
            found = None
        if found is None:
            print(text("audit_bad_bundle", settings.locale, path=str(directory)), file=sys.stderr)
            return 2
        extra.append(found)
    async with db.opened(settings):
        report = await audit.verify_anchored(extra, data_dir=settings.data_dir)
    if report.broken is None:
        print(text("audit_ok", settings.locale, count=report.count))
    else:
        print(
            text(
                "audit_broken", settings.locale, seq=report.broken.seq, reason=report.broken.reason, count=report.count
            )
        )
    for m in report.mismatches:
        c = m.checkpoint
        print(
            text(
                "audit_mismatch",
                settings.locale,
                kind=m.kind,
                last=m.last_seq,
                seq=c.seq,
                head=c.head,
                at=c.at,
                source=c.source,
                found=m.found,
            )
        )
    print(
        text("audit_anchors", settings.locale, checkpoints=report.checkpoints, last=report.last_seq, head=report.head)
    )
    return 0 if report.ok else 1
