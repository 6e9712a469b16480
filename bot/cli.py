"""The ``inspectbot`` console command. Each group of subcommands lives in ``bot/commands/``.

A command module exposes ``register(subparsers)``; it adds its parsers and sets
``func`` (an ``async def (args, settings) -> int``) on each. This file only wires them.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import sys

from core.settings import Settings, SettingsError

COMMAND_MODULES = [
    "bot.commands.db",
    "bot.commands.people",
    "bot.commands.bindings",
    "bot.commands.audit",
    "bot.commands.plans",
    "bot.commands.draws",
    "bot.commands.imports",
    "bot.commands.city",
    "bot.commands.demo",
    "bot.commands.serve",
    "bot.commands.verify",
    "bot.commands.reports",
    "bot.commands.risk",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="inspectbot", description="双随机、一公开 inspection bot")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    logging.getLogger("tortoise").setLevel(logging.WARNING)
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"inspectbot: {exc}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(args.func(args, settings)) or 0
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
