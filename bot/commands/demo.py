"""``inspectbot demo``: a generated city, imported into the configured database, and what it holds.

A small orchestrator, extended by later issues: each step is a function of its own. Running it
again regenerates the same city (same seed) and re-imports it, so every row reports unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bot import db
from bot.clock import SYSTEM, Clock
from bot.commands.imports import report
from bot.render import render
from importers import city
from importers.run import ImportResult, import_file
from services.directory import DirectorySummary, summary

DEMO_ENTITIES = 2_000
DEMO_INSPECTORS = 120
DEMO_SEED = 2026


@dataclass
class DemoOutcome:
    files: city.CityFiles
    imports: list[ImportResult]
    summary: DirectorySummary | None

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.imports)


def register(sub) -> None:
    sub.add_parser("demo", help="generate a small city, import it and show what the database holds").set_defaults(func=run)


def generate_city(data_dir: Path) -> city.CityFiles:
    return city.generate(data_dir / "city", entities=DEMO_ENTITIES, inspectors=DEMO_INSPECTORS, seed=DEMO_SEED)


async def import_city(files: city.CityFiles, clock: Clock) -> list[ImportResult]:
    """Import the four files in dependency order; stop at the first one refused."""
    results = []
    for kind, path in files.in_import_order():
        result = await import_file(kind, path, now=clock.now())
        results.append(result)
        if not result.ok:
            break
    return results


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
    outcome = await run_demo(settings)
    print(render_outcome(outcome, settings.locale))
    return 0 if outcome.ok else 1
