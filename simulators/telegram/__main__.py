"""Run the Telegram simulator on its own: ``python -m simulators.telegram --port 8081``."""

from __future__ import annotations

import argparse
import asyncio
import logging

from simulators.telegram.flood import FloodLimits
from simulators.telegram.simulator import DEFAULT_TOKEN, TelegramSimulator


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m simulators.telegram", description="Telegram Bot API simulator on loopback."
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8081, help="port (default 8081; 0 = any free port)")
    parser.add_argument("--token", default=DEFAULT_TOKEN, help="the bot token the simulator accepts")
    parser.add_argument("--bot-username", default="inspectbot_sim_bot")
    parser.add_argument("--no-flood", action="store_true", help="do not enforce flood limits")
    parser.add_argument(
        "--lenient",
        action="store_true",
        help="ignore unknown parameters, as the real server does (default: refuse them)",
    )
    parser.add_argument("--users", type=int, default=0, help="create this many virtual users at start")
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    sim = TelegramSimulator(
        token=args.token,
        bot_username=args.bot_username,
        flood=FloodLimits.off() if args.no_flood else FloodLimits(),
        strict=not args.lenient,
    )
    for n in range(args.users):
        sim.create_user(f"User {n + 1}", username=f"user{n + 1}")
    await sim.start(args.host, args.port)
    bot_id = args.token.split(":")[0]
    print(f"Telegram simulator listening on {sim.url}")
    print(f"  Bot API base URL: {sim.base_url}   (token {bot_id}:…, see docs/simulators.md)")
    print(f"  file base URL:    {sim.base_file_url}")
    print(f"  control API:      {sim.url}/_sim/state")
    try:
        await asyncio.Event().wait()
    finally:
        await sim.stop()


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        asyncio.run(serve(parse_args(argv)))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
