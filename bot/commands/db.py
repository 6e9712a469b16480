"""``inspectbot db upgrade|makemigrations``."""

from __future__ import annotations

from bot.migrations_tool import write_initial
from core import db
from core.render import text


def register(sub) -> None:
    group = sub.add_parser("db", help="database schema").add_subparsers(dest="db_command", required=True)
    group.add_parser("upgrade", help="apply pending migrations").set_defaults(func=upgrade)
    group.add_parser(
        "makemigrations", help="(developers) regenerate the initial migration from the models"
    ).set_defaults(func=makemigrations)


async def upgrade(args, settings) -> int:
    await db.init(settings)
    try:
        applied = await db.upgrade(settings)
    finally:
        await db.close()
    print(text("db_upgraded", locale=settings.locale, applied=applied))
    return 0


async def makemigrations(args, settings) -> int:
    print(await write_initial())
    return 0
