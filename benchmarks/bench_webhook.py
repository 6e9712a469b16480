"""Benchmark: Telegram webhook updates into our real app, beside hello world.

    uv run python benchmarks/bench_webhook.py [--requests 20000] [--connections 64] [--warmup 1000]
        [--inspectors 2000] [--seed 1] [--keep DIR] [--profile FILE]

Processes (the machine's cores are shared by them, as in production):

* this one, the **orchestrator**: migrates a fresh SQLite database (the embedded default) and
  fills it with bulk inserts — the department, plan and draw of ``bench_sms_replies.fill``, then
  ``--inspectors`` inspectors each bound to a Telegram chat, and one inspection per two
  assignments to press (two seats, status ``sent``: cards waiting for Accept). It writes every
  update in advance: complete Bot API ``Update`` objects as Telegram POSTs them.
* the **Bot API simulator** (``bench_fanout.py --serve-sim 0``), which the app's
  python-telegram-bot talks to: ``getMe`` and ``setWebhook`` at start, ``answerCallbackQuery``
  for every button press (after the commit, in the background: the 200 does not wait for it).
  The presses are not made in the simulator, so it answers those ``query is too old`` (a 400
  the channel logs and shrugs off): the round trip is still paid, in the server's CPU.
* the **server**: our real aiohttp app (``bot.web.make_app``) around the ``Runtime``, with the
  Telegram channel built by ``Service.channels_from_settings`` in webhook mode exactly as
  ``inspectbot serve`` builds it (secret token, the simulator as Bot API) and started (setWebhook),
  logging as ``inspectbot serve`` sets it (``core.logs.setup_logging``, JSON lines, to a file).
  Each update goes through the secret check, ``Update.de_json``, ``Runtime.on_event`` →
  ``services.inbound.receive`` (the event stored and handled, committed before the 200 — by group
  commit: buttons and ``/tasks`` are short, see ``handlers.router.long_work``) → the inspector
  handlers. No dispatcher and no scheduler run: replies stay queued.
* the **hello-world server**: a one-route aiohttp app answering ``Hello, world`` to the same POSTs.
* the **load generator**: an aiohttp client with ``--connections`` keep-alive connections and as
  many workers. A chat's next update is sent only after the answer to its previous one.

The mix, per chat conversation: Accept on an assignment card (40 %), a double tap of Accept
(5 %), ``/tasks`` (25 %), ``/tasks`` then Accept (15 %), a free text (15 %); ``--mix`` changes
it (e.g. ``--mix tasks=1`` for ``/tasks`` alone).

Order: hello world, the app (``--warmup`` updates, then ``--requests`` timed), hello world again
(the faster hello run is the one compared against). Afterwards the database is checked: one
processed inbound event per update with the expected outcome, no failures, exactly the pressed
assignments accepted (one audit row each), and the expected outbox rows per template.
Prints one JSON line per phase and a summary.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import pickle
import random
import shutil
import signal
import sqlite3
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _common import (  # noqa: E402
    HOST,
    Child,
    bind_inspectors,
    converse,
    emit,
    free_port,
    machine,
    measure_hello,
    run_load,
    run_role,
    serve_measured,
    workspace,
)

SECRET = "bench-webhook-secret-0123456789"
FIRST_USER = 300_000_001  # chat ids of the inspectors (as bench_fanout's simulator users)
FIRST_UPDATE = 800_000_001
WEBHOOK_PATH = "/telegram/webhook"
HEADERS = {"X-Telegram-Bot-Api-Secret-Token": SECRET, "Content-Type": "application/json"}
BOT = {"id": 1234567, "is_bot": True, "first_name": "Inspectbot", "username": "inspectbot_sim_bot"}
TEXTS = ["好的，收到", "明天上午过去", "请问地址在哪里？", "已到现场", "谢谢"]

# --- updates (also used by benchmarks/soak.py) ------------------------------------------------


def _user(chat: int) -> dict:
    return {"id": chat, "is_bot": False, "first_name": f"检查员{chat - FIRST_USER}", "language_code": "zh-hans"}


def _chat(chat: int) -> dict:
    return {"id": chat, "type": "private", "first_name": f"检查员{chat - FIRST_USER}"}


def message_update(update_id: int, chat: int, text: str, message_id: int) -> bytes:
    """A private text message (a ``/command`` gets its bot_command entity, as Telegram sends it)."""
    msg = {"message_id": message_id, "from": _user(chat), "chat": _chat(chat), "date": int(time.time()), "text": text}
    if text.startswith("/"):
        msg["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text.split(" ", 1)[0])}]
    return json.dumps({"update_id": update_id, "message": msg}, ensure_ascii=False).encode()


def press_update(update_id: int, chat: int, data: str, message_id: int) -> bytes:
    """A press of an inline button with ``data`` on the bot's message ``message_id``."""
    query = {
        "id": f"{chat}{update_id}",
        "from": _user(chat),
        "chat_instance": str(chat * 7),
        "data": data,
        "message": {
            "message_id": message_id,
            "from": BOT,
            "chat": _chat(chat),
            "date": int(time.time()) - 60,
            "text": "抽查任务",
        },
    }
    return json.dumps({"update_id": update_id, "callback_query": query}, ensure_ascii=False).encode()


# --- the database ------------------------------------------------------------------------------


def settings_for(path: Path, port: int = 0, telegram: dict | None = None, sms_url: str = ""):
    """The service's settings: Telegram in webhook mode against the simulator ``telegram``
    (``{"url", "token"}``); SMS (the Twilio simulator's dev account) when ``sms_url`` is given."""
    from core.settings import Settings
    from simulators.sms import DEV_ACCOUNT_SID, DEV_AUTH_TOKEN, DEV_NUMBER

    tg = telegram or {}
    sms = (
        dict(sms_account_sid=DEV_ACCOUNT_SID, sms_auth_token=DEV_AUTH_TOKEN, sms_from=DEV_NUMBER, sms_api_url=sms_url)
        if sms_url
        else {}
    )
    return Settings(
        data_dir=path.parent,
        database_url=f"sqlite://{path}",
        telegram_token=tg.get("token", ""),
        telegram_api_url=tg.get("url", ""),
        telegram_mode="webhook",
        telegram_webhook_secret=SECRET,
        public_url=f"http://{HOST}:{port}",
        web_host=HOST,
        web_port=port,
        **sms,
    )


async def add_telegram_inspectors(n: int, dept_code: str) -> list[tuple[int, int]]:
    """``n`` inspectors of ``dept_code``'s first unit, each bound to chat FIRST_USER + i;
    returns (inspector id, chat id)."""
    pairs = await bind_inspectors(n, "telegram", lambda i: str(FIRST_USER + i), cert_prefix="W", department=dept_code)
    return [(iid, FIRST_USER + i) for iid, i in pairs]


async def draw_id(draw_ref: str) -> int:
    from core import db

    return (await db.conn().execute_query_dict("SELECT id FROM draw WHERE draw_ref = ?", [draw_ref]))[0]["id"]


async def add_open_assignments(
    draw: int, pairs: list[tuple[int, int]], n_inspections: int, first_no: int
) -> list[tuple[int, int]]:
    """``n_inspections`` inspections of ``draw`` (new entities), each with two assignments still
    ``sent`` to consecutive inspectors of ``pairs``; returns (assignment id, chat id) in order."""
    from core import db

    now = datetime.now(UTC)
    c = db.conn()
    first_entity = (await c.execute_query_dict("SELECT COALESCE(MAX(id), 0) + 1 AS n FROM entity"))[0]["n"]
    await db.bulk_insert(
        "entity",
        (
            "uscc",
            "name",
            "kind",
            "division_code",
            "address",
            "industry",
            "risk_class",
            "mobile",
            "status",
            "content_hash",
            "updated_at",
        ),
        (
            (
                f"9137021{first_no + i:010d}Y",
                f"青岛市南区{first_no + i}号海鲜餐馆",
                "enterprise",
                "370202",
                f"青岛市市南区香港中路{i % 300}号",
                "餐饮",
                "C",
                None,
                "active",
                "",
                now,
            )
            for i in range(n_inspections)
        ),
    )
    first_insp = (await c.execute_query_dict("SELECT COALESCE(MAX(id), 0) + 1 AS n FROM inspection"))[0]["n"]
    await db.bulk_insert(
        "inspection",
        ("draw_id", "no", "entity_id", "entity_key", "division", "stratum", "rank", "status", "unstaffable_reason"),
        (
            (
                draw,
                first_no + i,
                first_entity + i,
                f"9137021{first_no + i:010d}Y",
                "370202",
                "C",
                f"{i:016x}",
                "staffed",
                "",
            )
            for i in range(n_inspections)
        ),
    )
    seats = [
        (first_insp + i, seat, pairs[(2 * i + seat - 1) % len(pairs)]) for i in range(n_inspections) for seat in (1, 2)
    ]
    await db.bulk_insert(
        "assignment",
        ("draw_id", "inspection_id", "inspector_id", "seat", "ordinal", "status", "deadline", "created_at"),
        ((draw, insp, iid, seat, 0, "sent", now + timedelta(days=3), now) for insp, seat, (iid, _) in seats),
    )
    ids = await c.execute_query_dict(
        "SELECT id FROM assignment WHERE inspection_id >= ? ORDER BY inspection_id, seat", [first_insp]
    )
    return [(r["id"], chat) for r, (_, _, (_, chat)) in zip(ids, seats)]


# --- conversations -----------------------------------------------------------------------------


@dataclass
class Conversation:
    kind: str
    chat: int
    updates: list[bytes] = field(default_factory=list)
    accepts: list[int] = field(default_factory=list)  # assignment ids accepted (first press)


MIX = "accept=40,double=5,tasks=25,tasks_accept=15,text=15"


def parse_mix(text: str) -> list[tuple[str, float]]:
    """``kind=weight,…`` (kinds: accept, double, tasks, tasks_accept, text)."""
    kinds = []
    for part in text.split(","):
        name, _, weight = part.partition("=")
        if name.strip() not in ("accept", "double", "tasks", "tasks_accept", "text"):
            raise argparse.ArgumentTypeError(f"unknown kind {name!r} in --mix")
        kinds.append((name.strip(), float(weight or 1)))
    return kinds


def make_conversations(
    n_updates: int,
    rng: random.Random,
    open_by_chat: dict[int, list[int]],
    update_ids,
    kinds: list[tuple[str, float]] | None = None,
) -> list[Conversation]:
    names, weights = zip(*(kinds or parse_mix(MIX)))
    chats = list(open_by_chat)
    out, total = [], 0
    while total < n_updates:
        kind = rng.choices(names, weights)[0]
        chat = rng.choice(chats)
        if kind in ("accept", "double", "tasks_accept") and not open_by_chat[chat]:
            kind = "tasks"
        c = Conversation(kind, chat)
        mid = rng.randrange(1, 10**6)
        if kind in ("tasks", "tasks_accept"):
            c.updates.append(message_update(next(update_ids), chat, "/tasks", mid))
        if kind == "text":
            c.updates.append(message_update(next(update_ids), chat, rng.choice(TEXTS), mid))
        if kind in ("accept", "double", "tasks_accept"):
            aid = open_by_chat[chat].pop()
            c.accepts.append(aid)
            for _ in range(2 if kind == "double" else 1):
                c.updates.append(press_update(next(update_ids), chat, f"asg:accept:{aid}", mid + 1))
        out.append(c)
        total += len(c.updates)
    return out


def expectations(conversations: list[Conversation]) -> dict:
    outcomes, outbox = Counter(), Counter()
    for c in conversations:
        if c.kind in ("tasks", "tasks_accept"):
            outcomes["tasks"] += 1
            outbox["tasks.j2"] += 1
        if c.kind == "text":
            outcomes["not_understood"] += 1
            outbox["not_understood.j2"] += 1
        if c.accepts:
            outcomes["accepted"] += 1
            outbox["accepted.j2"] += 1
            outbox["task.j2"] += 1  # the card edited: its buttons taken off
        if c.kind == "double":
            outcomes["already_accepted"] += 1
            outbox["accepted.j2"] += 1
    return {"outcomes": outcomes, "outbox": outbox, "accepted": sorted(a for c in conversations for a in c.accepts)}


def check(path: Path, expected: dict, requests: int) -> dict:
    """The database after the run, against the expectations; raises AssertionError on a difference."""
    con = sqlite3.connect(path)
    try:
        events = con.execute(
            "SELECT COUNT(*), COUNT(processed_at), SUM(outcome LIKE 'failed:%' OR outcome = ''), "
            "COUNT(DISTINCT external_id) FROM inbound_event WHERE channel = 'telegram'"
        ).fetchone()
        outcomes = Counter(dict(con.execute("SELECT outcome, COUNT(*) FROM inbound_event GROUP BY outcome")))
        outbox = Counter(dict(con.execute("SELECT template, COUNT(*) FROM outbox GROUP BY template")))
        accepted = [r[0] for r in con.execute("SELECT id FROM assignment WHERE status = 'accepted' ORDER BY id")]
        audits = con.execute("SELECT COUNT(*) FROM audit_record WHERE action = 'assignment.accepted'").fetchone()[0]
    finally:
        con.close()
    problems = []
    if events[0] != requests or events[1] != requests or events[2] or events[3] != requests:
        problems.append(
            f"inbound events: {events[0]} stored ({events[3]} distinct), {events[1]} processed, "
            f"{events[2]} failed; {requests} sent"
        )
    if outcomes != expected["outcomes"]:
        problems.append(f"outcomes {dict(outcomes)} != expected {dict(expected['outcomes'])}")
    if outbox != expected["outbox"]:
        problems.append(f"outbox {dict(outbox)} != expected {dict(expected['outbox'])}")
    if accepted != expected["accepted"]:
        problems.append(f"{len(accepted)} assignments accepted, {len(expected['accepted'])} expected")
    if audits != len(expected["accepted"]):
        problems.append(f"{audits} acceptance audit rows, {len(expected['accepted'])} expected")
    if problems:
        raise AssertionError("; ".join(problems))
    return {
        "inbound_events": events[0],
        "outcomes": dict(outcomes),
        "outbox": dict(outbox),
        "accepted": len(accepted),
        "audit_rows": audits,
    }


async def fill(path: Path, inspectors: int, inspections: int) -> dict:
    from bench_sms_replies import DEPT, DRAW_REF
    from bench_sms_replies import fill as fill_base

    from core import db

    t0 = time.perf_counter()
    await fill_base(path, [], datetime.now(UTC) - timedelta(hours=2))
    async with db.opened(settings_for(path), migrate=False):
        pairs = await add_telegram_inspectors(inspectors, DEPT)
        opened = await add_open_assignments(await draw_id(DRAW_REF), pairs, inspections, first_no=1)
    by_chat: dict[int, list[int]] = {chat: [] for _, chat in pairs}
    for aid, chat in opened:
        by_chat[chat].append(aid)
    return {"by_chat": by_chat, "seconds": round(time.perf_counter() - t0, 2)}


# --- the servers and the client (child processes) -----------------------------------------------


async def serve(args) -> None:
    """Serve the real app (or hello world) on ``args.port`` until SIGTERM; print CPU time used."""
    from aiohttp import web

    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    channels: dict = {}
    if args.app == "hello":

        async def hello(request: web.Request) -> web.Response:
            return web.Response(text="Hello, world")

        app = web.Application()
        app.router.add_post(WEBHOOK_PATH, hello)
    else:
        from bot.app import Service
        from bot.web import make_app
        from core import db
        from core.logs import setup_logging

        settings = settings_for(Path(args.db), args.port, {"url": args.tg_url, "token": args.tg_token})
        setup_logging(settings, fmt="json", stream=open(args.log, "a", encoding="utf-8"))
        service = Service(settings, scheduler_enabled=False)
        await db.init(settings)
        channels = service.rt.channels = service.channels_from_settings()
        for channel in channels.values():
            await channel.start()
        app = make_app(service.rt)
    figures = await serve_measured(app, args.port, stop, args.profile)
    if args.app == "app":
        from core import db

        for channel in channels.values():
            await channel.stop()
        await db.close()
    print(json.dumps(figures), flush=True)


async def load(args) -> None:
    """Send the conversations' updates over ``args.connections`` connections; print the figures."""
    with open(args.plan, "rb") as f:
        conversations = pickle.load(f)[args.part]
    figures = await converse(
        f"http://{HOST}:{args.port}{WEBHOOK_PATH}", conversations, args.connections, lambda body: (body, HEADERS)
    )
    print(json.dumps(figures), flush=True)


# --- orchestration -------------------------------------------------------------------------------


def orchestrate(args) -> int:
    import os

    rng = random.Random(args.seed)
    work, path = workspace(args.keep, "bench_webhook_")
    emit("machine", machine())
    # Enough open assignments for every Accept: at most 0.6 of the updates, plus slack.
    inspections = (args.requests + args.warmup) // 3 + args.inspectors
    filled = asyncio.run(fill(path, args.inspectors, inspections))
    emit("fill", {"inspectors": args.inspectors, "inspections": inspections, "seconds": filled["seconds"]})
    by_chat = {chat: ids for chat, ids in filled["by_chat"].items()}
    update_ids = iter(range(FIRST_UPDATE, FIRST_UPDATE + 10**8))
    warm = make_conversations(args.warmup, rng, by_chat, update_ids, args.mix)
    timed = make_conversations(args.requests, rng, by_chat, update_ids, args.mix)
    plan = work / "updates.pickle"
    with open(plan, "wb") as f:
        pickle.dump({"warmup": [c.updates for c in warm], "timed": [c.updates for c in timed]}, f)
    n_timed = sum(len(c.updates) for c in timed)
    n_warm = sum(len(c.updates) for c in warm)
    port = free_port()

    sim = Child("--serve-sim", "0", script=str(ROOT / "benchmarks" / "bench_fanout.py"))
    tg = sim.line()
    try:
        hello = [measure_hello(plan, port, args.connections)]
        emit("hello", hello[0])
        server = Child(
            "_serve",
            "app",
            "--port",
            str(port),
            "--db",
            str(path),
            "--log",
            str(work / "server.log"),
            "--tg-url",
            tg["url"],
            "--tg-token",
            tg["token"],
            *(["--profile", args.profile] if args.profile else []),
        )
        server.line()
        emit("updates_warmup", run_load(plan, "warmup", port, args.connections))
        updates = run_load(plan, "timed", port, args.connections)
        updates.update(server.stop())
        emit("updates", updates)
        hello.append(measure_hello(plan, port, args.connections))
        emit("hello_again", hello[1])
    finally:
        sim.proc.terminate()
        sim.proc.wait(10)

    emit("check", check(path, expectations(warm + timed), n_warm + n_timed))
    best_hello = max(h["rps"] for h in hello)
    summary = {
        "requests": n_timed,
        "connections": args.connections,
        "updates_rps": updates["rps"],
        "hello_rps": best_hello,
        "hello_runs_rps": [h["rps"] for h in hello],
        "ratio": round(updates["rps"] / best_hello, 3),
        "ratio_goal": 0.25,
        "p50_ms": updates["p50_ms"],
        "p99_ms": updates["p99_ms"],
        "p99_goal_ms": 100,
        "statuses": updates["statuses"],
        "server_peak_mb": updates["server_peak_mb"],
        "server_cpu_ms_per_request": round(1000 * updates["server_cpu_s"] / n_timed, 3),
        "server_switches_per_request": round(updates["server_switches"] / n_timed, 1),
        "load_after": [round(x, 2) for x in os.getloadavg()],
    }
    emit("summary", summary)
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if set(updates["statuses"]) == {"200"} else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    sub = parser.add_subparsers(dest="role")
    serve_p = sub.add_parser("_serve")
    serve_p.add_argument("app", choices=("app", "hello"))
    serve_p.add_argument("--port", type=int, required=True)
    serve_p.add_argument("--db")
    serve_p.add_argument("--log", default="/dev/null")
    serve_p.add_argument("--tg-url")
    serve_p.add_argument("--tg-token")
    serve_p.add_argument("--profile")
    load_p = sub.add_parser("_load")
    load_p.add_argument("--plan", required=True)
    load_p.add_argument("--part", required=True)
    load_p.add_argument("--port", type=int, required=True)
    load_p.add_argument("--connections", type=int, default=64)
    parser.add_argument("--requests", type=int, default=20000, help="timed updates (default 20000)")
    parser.add_argument("--connections", type=int, default=64, help="concurrent connections (default 64)")
    parser.add_argument("--warmup", type=int, default=1000, help="untimed updates first (default 1000)")
    parser.add_argument("--inspectors", type=int, default=2000, help="inspectors with a Telegram chat (default 2000)")
    parser.add_argument(
        "--mix", type=parse_mix, default=parse_mix(MIX), help=f"conversation kinds and weights (default {MIX})"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", help="work in this directory and keep it (database, server log, updates)")
    parser.add_argument("--profile", help="cProfile the app server's event loop into this file")
    return run_role(parser.parse_args(argv), {"_serve": serve, "_load": load}, orchestrate)


if __name__ == "__main__":
    sys.exit(main())
