"""``inspectbot audit verify``: walk the audit chain and name the first broken record."""

from __future__ import annotations

from core import db
from core.render import text
from services import audit


def register(sub) -> None:
    group = sub.add_parser("audit", help="the audit trail").add_subparsers(dest="audit_command", required=True)
    group.add_parser("verify", help="check the hash chain of the audit log").set_defaults(func=verify)


async def verify(args, settings) -> int:
    async with db.opened(settings):
        count, broken = await audit.verify()
    if broken is None:
        print(text("audit_ok", settings.locale, count=count))
        return 0
    print(text("audit_broken", settings.locale, seq=broken.seq, reason=broken.reason, count=count))
    return 1
