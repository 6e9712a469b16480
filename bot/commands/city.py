"""``inspectbot generate-city OUT_DIR --entities N --inspectors M --seed S [--scale qingdao]``."""

from __future__ import annotations

from pathlib import Path

from bot.commands.imports import progress_bars
from core.render import render
from importers import city


def register(sub) -> None:
    parser = sub.add_parser("generate-city", help="write a generated city's directory files (CSV, import format)")
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--entities", type=int, default=2000)
    parser.add_argument("--inspectors", type=int, default=120)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--progress", action="store_true", help="show progress bars even when stderr is no terminal")
    parser.add_argument(
        "--scale",
        choices=["qingdao"],
        help=f"qingdao = {city.QINGDAO_ENTITIES:,} entities and {city.QINGDAO_INSPECTORS:,} inspectors",
    )
    parser.add_argument(
        "--indicators",
        type=Path,
        metavar="MODEL_FILE",
        help="also write indicators.csv for this risk model (e.g. examples/risk/shandong-a-e.toml) and the hidden propensity.csv",
    )
    parser.set_defaults(func=run)


async def run(args, settings) -> int:
    entities, inspectors = args.entities, args.inspectors
    if args.scale == "qingdao":
        entities, inspectors = city.QINGDAO_ENTITIES, city.QINGDAO_INSPECTORS
    bars = progress_bars(settings.locale, args.progress, unit="city_progress")
    files = city.generate(args.out_dir, entities=entities, inspectors=inspectors, seed=args.seed, progress=bars)
    indicators = city.generate_indicators(files.entities, args.indicators, args.seed) if args.indicators else None
    print(
        render(
            "cli/city_generated.txt",
            locale=settings.locale,
            files=files,
            entities=entities,
            inspectors=inspectors,
            seed=args.seed,
            indicators=indicators,
        )
    )
    return 0
