"""``inspectbot invite inspector CERT_NO`` / ``invite coordinator --department CODE`` / ``invite admin``."""

from __future__ import annotations

import sys
from datetime import timedelta

from bot.channels.telegram import TelegramChannel
from core import db
from core.clock import SYSTEM
from core.render import text
from models.messaging import Role
from services.identity import IdentityError, create_invite


def register(sub) -> None:
    p = sub.add_parser("invite", help="print a one-time Telegram deep link that binds a chat to a person")
    p.add_argument("role", choices=["inspector", "coordinator", "admin", "entity"])
    p.add_argument("key", nargs="?", help="certificate number (inspector) or credit code (entity)")
    p.add_argument("--department", action="append", default=[], help="coordinator scope (repeatable)")
    p.add_argument("--days", type=int, default=7, help="days the code stays valid (default 7)")
    p.add_argument("--bot", default="", help="the bot's username for the link (default: asked from Telegram)")
    p.set_defaults(func=invite)


async def invite(args, settings) -> int:
    role = Role(args.role)
    if role in (Role.INSPECTOR, Role.ENTITY) and not args.key:
        print(text("invite_needs_key", settings.locale, role=role.value), file=sys.stderr)
        return 2
    async with db.opened(settings):
        try:
            code = await create_invite(
                role,
                SYSTEM,
                cert_no=args.key if role == Role.INSPECTOR else None,
                uscc=args.key if role == Role.ENTITY else None,
                departments=tuple(args.department),
                ttl=timedelta(days=args.days),
            )
        except IdentityError as exc:
            print(text(exc.code, settings.locale, **exc.params), file=sys.stderr)
            return 2
    username = args.bot or await bot_username(settings)
    print(text("invite_link", settings.locale, link=f"https://t.me/{username}?start={code}", days=args.days))
    return 0


async def bot_username(settings) -> str:
    """Ask Telegram (or the simulator) for the bot's username; a placeholder if no token is set."""
    if not settings.telegram_token:
        return "inspectbot"
    channel = TelegramChannel(settings.telegram_token, api_url=settings.telegram_api_url, mode="send-only")
    await channel.start()
    try:
        return channel.username
    finally:
        await channel.stop()
