"""``inspectbot bindings groups [--revoke]``: list (and revoke) the roles bound to Telegram groups.
``inspectbot bindings coordinators [--department CODE]``: the coordinators bound, with the id an
off-schedule draw's ``--confirmed-by`` names.
``inspectbot bindings wecom-coordinator USERID --department CODE [--name NAME]``: bind a
coordinator's WeCom userid directly (WeCom already says who the member is: no invite travels).
``inspectbot bindings wecom-mobiles``: where the deployment allows it (``WECOM_BIND_BY_MOBILE``: the
application may read the contacts), give inspectors without a WeCom userid the one WeCom's contacts
hold for their mobile number (``user/getuserid``); they are then bound on their first event.

Before issue 13 an invite opened in a group bound the group's chat, so every member acted with
the role. Invites are now refused in groups and groups act for nobody; this one-off command
finds the bindings made before that and, with ``--revoke``, revokes them (each audited). The
people concerned open a new invite in a private chat."""

from __future__ import annotations

import sys

from bot.channels.wecom import WecomChannel
from core import db
from core.channel import SendError
from core.clock import SYSTEM
from core.render import text
from importers import validate
from importers.errors import Invalid
from models.messaging import Channel
from services.identity import (
    IdentityError,
    bind_coordinator,
    coordinator_bindings,
    group_bindings,
    match_wecom_by_mobile,
    revoke_group_bindings,
)


def register(sub) -> None:
    group = sub.add_parser("bindings", help="chat bindings").add_subparsers(dest="bindings_command", required=True)
    p = group.add_parser("groups", help="list the roles bound to Telegram group chats (made before issue 13)")
    p.add_argument("--revoke", action="store_true", help="revoke them (each recorded in the audit trail)")
    p.set_defaults(func=groups)
    c = group.add_parser("coordinators", help="list the coordinators bound (the ids draw --confirmed-by takes)")
    c.add_argument("--department", help="only those scoped to this department code")
    c.set_defaults(func=coordinators)
    w = group.add_parser("wecom-coordinator", help="bind a coordinator's WeCom userid (no invite code)")
    w.add_argument("userid", help="the member's WeCom userid")
    w.add_argument("--department", action="append", required=True, help="department code (repeatable)")
    w.add_argument("--name", default="", help="the name shown in alerts and lists")
    w.set_defaults(func=wecom_coordinator)
    m = group.add_parser(
        "wecom-mobiles", help="match inspectors without a WeCom userid by mobile number (needs WECOM_BIND_BY_MOBILE)"
    )
    m.set_defaults(func=wecom_mobiles)


async def groups(args, settings) -> int:
    async with db.opened(settings):
        found = await (revoke_group_bindings(SYSTEM) if args.revoke else group_bindings())
    for b in found:
        print(text("group_binding", settings.locale, id=b.id, address=b.address, role=b.role, name=b.name))
    print(text("group_bindings_revoked" if args.revoke else "group_bindings_found", settings.locale, count=len(found)))
    return 0


async def coordinators(args, settings) -> int:
    async with db.opened(settings):
        found = await coordinator_bindings(args.department)
    for b in found:
        print(
            text(
                "coordinator_binding",
                settings.locale,
                id=b.id,
                name=b.name,
                channel=b.channel,
                departments=list(b.departments),
            )
        )
    print(text("coordinator_bindings_found", settings.locale, count=len(found)))
    return 0


async def wecom_coordinator(args, settings) -> int:
    try:  # WeCom's rules for a userid, as the directory import checks them
        userid = validate.wecom_userid(args.userid)
    except Invalid as exc:
        print(text(exc.code, settings.locale), file=sys.stderr)
        return 2
    if userid is None:
        print(text("import_wecom_userid", settings.locale), file=sys.stderr)
        return 2
    async with db.opened(settings):
        try:
            b = await bind_coordinator(Channel.WECOM, userid, tuple(args.department), args.name or userid, SYSTEM)
        except IdentityError as exc:
            print(text(exc.code, settings.locale, **exc.params), file=sys.stderr)
            return 2
    print(
        text(
            "coordinator_binding",
            settings.locale,
            id=b.id,
            name=b.display_name,
            channel="wecom",
            departments=list(b.departments),
        )
    )
    return 0


async def wecom_mobiles(args, settings) -> int:
    if not settings.wecom_corp_id or not settings.wecom_bind_by_mobile:
        print(text("wecom_mobiles_disabled", settings.locale), file=sys.stderr)
        return 2
    channel = WecomChannel(settings)
    try:
        async with db.opened(settings):
            try:
                found = await match_wecom_by_mobile(channel.userid_by_mobile, SYSTEM)
            except SendError as exc:
                print(text("wecom_mobiles_refused", settings.locale, reason=exc.kind), file=sys.stderr)
                return 1
    finally:
        await channel.stop()
    print(
        text(
            "wecom_mobiles_done",
            settings.locale,
            matched=found.matched,
            missing=found.not_found,
            taken=found.taken,
            shared=found.shared,
        )
    )
    return 0
