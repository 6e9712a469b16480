"""The ``inspectbot`` console command. Each group of subcommands lives in ``bot/commands/``.

A command module exposes ``register(subparsers)``; it adds its parsers and sets
``func`` (an ``async def (args, settings) -> int``) on each. This file only wires them.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import os
import sys

from core.render import DEFAULT_LOCALE, text
from core.settings import LOCALES, Settings, SettingsError

COMMAND_MODULES = [
    "bot.commands.db",
    "bot.commands.people",
    "bot.commands.bindings",
    "bot.commands.audit",
    "bot.commands.plans",
    "bot.commands.draws",
    "bot.commands.listing",
    "bot.commands.imports",
    "bot.commands.city",
    "bot.commands.demo",
    "bot.commands.serve",
    "bot.commands.verify",
    "bot.commands.reports",
    "bot.commands.results",
    "bot.commands.inspection",
    "bot.commands.risk",
]


class _Described:
    """The subcommands' action, handing out parsers whose one-line help (``inspectbot --help``)
    comes from ``texts/cli_help.j2`` in the configured locale (zh-CN unless INSPECTBOT_LOCALE)."""

    def __init__(self, sub, locale: str) -> None:
        self.sub, self.locale = sub, locale

    def add_parser(self, name: str, **kwargs):
        kwargs["help"] = text("cli_help", self.locale, command=name) or kwargs.get("help")
        return self.sub.add_parser(name, **kwargs)


def help_locale() -> str:
    wanted = os.environ.get("INSPECTBOT_LOCALE", DEFAULT_LOCALE)
    return wanted if wanted in LOCALES else DEFAULT_LOCALE


def build_parser() -> argparse.ArgumentParser:
    locale = help_locale()
    parser = argparse.ArgumentParser(prog="inspectbot", description=text("cli_description", locale))
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging / 调试日志")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    described = _Described(sub, locale)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(described)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(  # the terminal is for the command's output: warnings only, unless -v
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    logging.getLogger("tortoise").setLevel(logging.WARNING)
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"inspectbot: {exc}", file=sys.stderr)
        return 2
    try:
        code = asyncio.run(args.func(args, settings)) or 0
        sys.stdout.flush()  # a closed pipe shows here rather than at exit, where it cannot be caught
        return code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return pipe_closed()


def pipe_closed() -> int:
    """The reader went away (``inspectbot … | head``): stop quietly, as ``cat`` does. Python
    would flush stdout again at exit and print a traceback, so stdout now points at /dev/null."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return 141  # 128 + SIGPIPE, what a shell reports for a command killed by the closed pipe


if __name__ == "__main__":
    sys.exit(main())
