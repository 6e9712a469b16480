"""``inspectbot demo``: a generated city, imported into the configured database, and what it holds.

A small orchestrator, extended by later issues: each step is a function of its own. Running it
again regenerates the same city (same seed) and re-imports it, so every row reports unchanged.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from dataclasses import dataclass

from bot.commands.imports import report
from bot.demo import Demo, generate_city, import_city
from bot.demo_wecom import WecomDemo
from core import db
from core.clock import SYSTEM, Clock
from core.render import render, text
from importers import city
from importers.run import ImportResult
from services.directory import DirectorySummary, summary


@dataclass
class DemoOutcome:
    files: city.CityFiles
    imports: list[ImportResult]
    summary: DirectorySummary | None

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.imports)


PORT_FLAGS = (
    ("--web-port", "web_port", "INSPECTBOT_WEB_PORT"),
    ("--telegram-port", "demo_telegram_port", "INSPECTBOT_DEMO_TELEGRAM_PORT"),
    ("--sms-port", "demo_sms_port", "INSPECTBOT_DEMO_SMS_PORT"),
    ("--sim-port", "demo_sim_port", "INSPECTBOT_DEMO_SIM_PORT"),
    ("--wecom-port", "demo_wecom_port", "INSPECTBOT_DEMO_WECOM_PORT"),
)


def register(sub) -> None:
    p = sub.add_parser("demo", help="the whole cycle on SQLite with simulated Telegram and SMS: draw, chat, surveys")
    p.add_argument("--headless", action="store_true", help="run to the end, print the summary and exit")
    p.add_argument("--directory-only", action="store_true", help="only generate and import the city, then exit")
    p.add_argument(
        "--channel", choices=("telegram", "wecom"), default="telegram", help="the inspectors' chat (default telegram)"
    )
    for flag, field, variable in PORT_FLAGS:
        p.add_argument(
            flag, type=int, default=None, dest=field, metavar="PORT", help=f"default ${variable} or its default"
        )
    p.set_defaults(func=run)


async def run_demo(settings, clock: Clock = SYSTEM) -> DemoOutcome:
    files = generate_city(settings.data_dir)
    async with db.opened(settings):
        results = await import_city(files, clock)
        held = await summary(clock.now().astimezone(settings.zone).date()) if all(r.ok for r in results) else None
    return DemoOutcome(files, results, held)


def render_outcome(outcome: DemoOutcome, locale: str) -> str:
    reports = [report(r, locale) for r in outcome.imports]
    return render("cli/demo_summary.txt", locale=locale, outcome=outcome, reports=reports, s=outcome.summary)


async def run(args, settings) -> int:
    if args.directory_only:
        outcome = await run_demo(settings)
        print(render_outcome(outcome, settings.locale))
        return 0 if outcome.ok else 1
    if not args.verbose:  # the story is the output; logs only when asked for (-v)
        logging.getLogger().setLevel(logging.WARNING)

    ports = {field: getattr(args, field) for _, field, _ in PORT_FLAGS if getattr(args, field, None) is not None}
    demo_class = WecomDemo if getattr(args, "channel", "telegram") == "wecom" else Demo
    demo = demo_class(settings.with_(**ports), headless=args.headless)
    code = await demo.run()
    if args.headless or code != 0:
        return code
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(text("demo_keep_running", settings.locale))
    try:
        await stop.wait()
    finally:
        await demo.stop()
    return 0
