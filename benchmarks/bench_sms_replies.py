"""Benchmark: inbound SMS survey replies over the signed Twilio webhook, beside hello world.

    uv run python benchmarks/bench_sms_replies.py [--requests 20000] [--connections 64] [--warmup 1000]
        [--seed 1] [--keep DIR] [--profile FILE] [--what-if-no-database]

Processes (the machine's cores are shared by them, as in production):

* this one, the **orchestrator**: migrates a fresh SQLite database (the embedded default, WAL,
  the connection settings the service uses) and fills it with bulk inserts — a plan, its draw,
  one inspection per entity with a two-person team, and one open SMS survey per inspection
  (about 0.8 entities per request; a tenth of the numbers are shared by two entities, as a
  bookkeeper's number is) — then writes the requests, each a complete Twilio inbound-SMS form
  signed with ``X-Twilio-Signature`` for the server's URL. Nothing is signed while the clock runs.
* the **server**: our real aiohttp app (``bot.web.make_app``) around a ``Runtime`` holding the
  real Twilio SMS channel, so each request goes through the webhook guard (signature, size,
  replay), ``Runtime.on_event``, ``services.inbound.receive`` (the event stored and handled in
  one transaction, committed before the 2xx) and the survey handler. Logging as ``inspectbot
  serve`` sets it (``core.logs.setup_logging``: JSON lines, redacted, INFO, one line per event,
  to a file). No dispatcher runs: replies stay queued.
* the **hello-world server**: a one-route aiohttp app answering ``Hello, world`` to the same POSTs.
* the **load generator**: an aiohttp client with ``--connections`` keep-alive connections and as
  many workers. A conversation's next message is sent only after the answer to its previous one
  (a person answers the question they were asked), so the final state of every survey is known
  in advance.

The replies vary: full answers in every accepted notation, answers with comments, one answer at a
time, garbled replies (clarified, then answered, or closed as incomplete after three), answers
raising an alert, comments after completion, a shared number naming its surveys by code (or
first being asked which), opt-outs, and texts from numbers with no survey.

``--what-if-no-database`` is an experiment, not the service: the reply server answers each
request without storing or handling it (see ``without_database``), to measure the floor our HTTP
side puts under the reply path (aiohttp, the webhook guard, the log line).

Order: hello world, the reply path (``--warmup`` requests, then ``--requests`` timed), hello world
again (the higher hello rate is the one compared against). Afterwards the database is checked:
one processed inbound event per request, no failures, each survey in exactly its expected status
with exactly its expected answers, and the expected outbox and alert rows.
Prints one JSON line per phase and a summary.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
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

from _common import Child, converse, emit, free_port, machine, measure_hello, run_load, serve_measured, workspace  # noqa: E402

HOST = "127.0.0.1"
DEPT = "SCJG"
DRAW_REF = "BENCH/2026-12-01"
TEAM = ["张伟", "李娜"]
ENTITY_NO = 1_000_000  # first number of the generated entities' USCC-like keys

# --- conversations ----------------------------------------------------------------------------

FULL = [
    "1 2 5",
    "1,2,5",
    "125",
    "１２５",
    "是，否，5",
    "是 否 5分",
    "对 没有 五分",
    "Y N 4",
    "yes no 4",
    "y/n/4",
    "1 2 4",
    "是 否 3",
]
WITH_COMMENT = ["是 否 5 态度很好", "1 2 5 10点来的，半小时就走了", "是，否，５　很规范", "1 2 4 检查很仔细"]
ALERTING = ["1 1 2", "是 是 1 他们要了两条烟", "1 2 1", "Y Y 3"]
GARBLED = ["好的", "嗯嗯", "？", "收到", "好", "知道了谢谢"]
COMMENTS = ["来得很准时", "谢谢", "检查人员很专业", "没有别的意见"]
OPT_OUT = ["TD", "退订", "STOP", "T D"]
STRANGER = ["你好", "请问是哪里", "1 2 5"]


@dataclass
class Conversation:
    """One number's messages, in order, and the surveys (codes) it holds."""

    kind: str
    mobile: str
    codes: list[str] = field(default_factory=list)  # one survey per code, one entity each
    texts: list[str] = field(default_factory=list)


def make_conversations(n_messages: int, rng: random.Random, mobiles, codes) -> list[Conversation]:
    """Conversations until ``n_messages`` messages: the mix described in the module docstring."""
    kinds = [
        ("full", 34),
        ("comment", 8),
        ("alert", 4),
        ("partial", 14),
        ("garbled", 10),
        ("incomplete", 3),
        ("after", 6),
        ("shared", 7),
        ("which", 3),
        ("optout", 2),
        ("stranger", 1),
    ]
    names, weights = zip(*kinds)
    out: list[Conversation] = []
    total = 0
    while total < n_messages:
        kind = rng.choices(names, weights)[0]
        c = Conversation(kind, next(mobiles))
        c.codes = [next(codes)] if kind not in ("shared", "which", "stranger") else []
        if kind == "full":
            c.texts = [rng.choice(FULL)]
        elif kind == "comment":
            c.texts = [rng.choice(WITH_COMMENT)]
        elif kind == "alert":
            c.texts = [rng.choice(ALERTING)]
        elif kind == "partial":
            c.texts = [rng.choice(["是", "1", "对"]), rng.choice(["否 5", "2 4", "没有 5分"])]
        elif kind == "garbled":
            c.texts = [rng.choice(GARBLED), rng.choice(FULL)]
        elif kind == "incomplete":
            c.texts = rng.sample(GARBLED, 3)
        elif kind == "after":
            c.texts = [rng.choice(FULL), rng.choice(COMMENTS)]
        elif kind == "shared":
            c.codes = [next(codes), next(codes)]
            c.texts = [f"{c.codes[0]} {rng.choice(FULL)}", f"{rng.choice(FULL)} #{c.codes[1]}"]
        elif kind == "which":
            c.codes = [next(codes), next(codes)]
            c.texts = [rng.choice(FULL), f"#{c.codes[1]} {rng.choice(FULL)}", f"{c.codes[0]} {rng.choice(FULL)}"]
        elif kind == "optout":
            c.texts = [rng.choice(OPT_OUT)]
        else:
            c.texts = [rng.choice(STRANGER)]
        out.append(c)
        total += len(c.texts)
    return out


def mobile_numbers():
    n = 0
    while True:
        yield f"+86139{n:08d}"
        n += 1


def survey_codes(rng: random.Random):
    """Distinct survey codes (unique overall, so each names one survey in the checks)."""
    from domain.surveys import make_code

    seen: set[str] = set()
    while True:
        code = make_code(rng.randbytes(16))
        if code not in seen:
            seen.add(code)
            yield code


# --- expectations (the pure core, replayed in conversation order) -----------------------------


@dataclass
class Expected:
    statuses: dict[str, str]  # survey code -> stored status
    answers: dict[str, dict]  # survey code -> stored answers
    outbox: Counter  # template -> rows
    alerts: int


def expectations(conversations: list[Conversation], sent_at: datetime, now: datetime) -> Expected:
    """What the database must hold afterwards: each conversation replayed through ``parse_reply``
    and ``step`` (the service routes as ``_choose`` does: a code names its survey; otherwise the
    only open one, else the sender is asked which)."""
    from domain.surveys import AskQuestion, Clarify, RaiseAlert, Status, Thank, new_survey, parse_reply, step

    stored = {
        Status.OPEN: "sent",
        Status.COMPLETE: "answered",
        Status.INCOMPLETE: "incomplete",
        Status.OPTED_OUT: "opted_out",
    }
    statuses, answers, outbox, alerts = {}, {}, Counter(), 0
    for c in conversations:
        states = {code: new_survey(sent_at) for code in c.codes}
        opted = False
        for text in c.texts:
            head = parse_reply(text)
            if head.opt_out:
                closed = any(s.status is Status.OPEN for s in states.values())
                for code, s in states.items():
                    states[code], _ = step(s, head, now)
                if closed or not opted:
                    outbox["survey_optout.j2"] += 1
                opted = True
                continue
            open_ = [code for code, s in states.items() if s.status is Status.OPEN]
            if head.code is not None:
                target = head.code if head.code in states else None
            else:
                pool = open_ or list(states)
                target = pool[0] if len(pool) == 1 else None
            if target is None:
                if states:  # several open and no code: asked which (once per situation)
                    outbox["survey_which.j2"] += 1
                continue
            new, actions = step(states[target], parse_reply(text, states[target].open_questions), now)
            states[target] = new
            for a in actions:
                if isinstance(a, AskQuestion):
                    outbox["survey_next.j2"] += 1
                elif isinstance(a, Clarify):
                    outbox["survey_clarify.j2"] += 1
                elif isinstance(a, Thank):
                    outbox["survey_thanks.j2"] += 1
                elif isinstance(a, RaiseAlert):
                    alerts += 1
                    outbox["survey_alert.j2"] += 1  # one coordinator
        for code, s in states.items():
            statuses[code] = stored[s.status]
            answers[code] = {
                q: v
                for q, v in (
                    ("credentials", s.answers.credentials),
                    ("improper", s.answers.improper),
                    ("fairness", s.answers.fairness),
                )
                if v is not None
            }
    return Expected(statuses, answers, outbox, alerts)


# --- the database ------------------------------------------------------------------------------


def settings_for(path: Path, port: int = 0):
    from core.settings import Settings
    from simulators.sms import DEV_ACCOUNT_SID, DEV_AUTH_TOKEN, DEV_NUMBER

    return Settings(
        data_dir=path.parent,
        database_url=f"sqlite://{path}",
        sms_account_sid=DEV_ACCOUNT_SID,
        sms_auth_token=DEV_AUTH_TOKEN,
        sms_from=DEV_NUMBER,
        sms_api_url=f"http://{HOST}:9",
        public_url=f"http://{HOST}:{port}",
    )


async def fill(path: Path, conversations: list[Conversation], sent_at: datetime) -> dict:
    """Migrate and fill the database: the plan, its draw, and one open survey per conversation code."""
    from core import db
    from domain.surveys import expires_at, reminder_at
    from models.directory import Department, Inspector, Unit
    from models.draws import Draw, Firing
    from models.messaging import Channel, ChatBinding, Role
    from models.plans import Plan

    t0 = time.perf_counter()
    async with db.opened(settings_for(path)):
        dept = await Department.create(code=DEPT, name="青岛市市场监督管理局")
        unit = await Unit.create(department=dept, name="执法支队", jurisdiction="3702")
        inspectors = [
            await Inspector.create(cert_no=f"3702000{i}", name=name, department=dept, unit=unit, qualifications=["SP"])
            for i, name in enumerate(TEAM)
        ]
        day = sent_at - timedelta(days=2)
        plan = await Plan.create(
            code="BENCH",
            name="餐饮服务食品安全抽查",
            departments=[DEPT],
            spec={},
            created_at=day,
            updated_at=day,
            active=False,
        )
        firing = await Firing.create(
            draw_ref=DRAW_REF, plan=plan, fire_at=day, commitment="0" * 64, params={}, announced_at=day
        )
        draw = await Draw.create(
            draw_ref=DRAW_REF,
            firing=firing,
            plan=plan,
            drawn_at=day,
            pool_digest="0" * 64,
            inspectors_digest="0" * 64,
            inspections_digest="0" * 64,
            window_start=day,
            window_end=day + timedelta(days=30),
            pool_size=0,
            inspector_count=2,
            inspection_count=0,
        )
        await ChatBinding.create(
            channel=Channel.TELEGRAM, address="900", role=Role.COORDINATOR, departments=[DEPT], display_name="协调员"
        )
        surveys = [(c.mobile, code) for c in conversations for code in c.codes]
        n = len(surveys)
        first_entity = await _next_id("entity")
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
                    f"9137020{ENTITY_NO + i:010d}X",
                    f"青岛测试{i}号餐饮有限公司",
                    "enterprise",
                    "370202",
                    "",
                    "餐饮",
                    "D",
                    mobile,
                    "active",
                    "",
                    day,
                )
                for i, (mobile, _) in enumerate(surveys)
            ),
        )
        first_insp = await _next_id("inspection")
        await db.bulk_insert(
            "inspection",
            ("draw_id", "no", "entity_id", "entity_key", "division", "stratum", "rank", "status", "unstaffable_reason"),
            (
                (
                    draw.id,
                    i + 1,
                    first_entity + i,
                    f"9137020{ENTITY_NO + i:010d}X",
                    "370202",
                    "D",
                    f"{i:016x}",
                    "staffed",
                    "",
                )
                for i in range(n)
            ),
        )
        await db.bulk_insert(
            "assignment",
            ("draw_id", "inspection_id", "inspector_id", "seat", "ordinal", "status", "deadline", "created_at"),
            (
                (draw.id, first_insp + i, p.id, seat, 0, "accepted", day + timedelta(days=3), day)
                for i in range(n)
                for seat, p in enumerate(inspectors)
            ),
        )
        await db.bulk_insert(
            "survey_sample",
            ("draw_id", "seed", "shares", "pool", "selected", "created_at"),
            [(draw.id, os.urandom(32), {"*": "1"}, n, list(range(1, n + 1)), day)],
        )
        sample_id = (await db.conn().execute_query_dict("SELECT id FROM survey_sample"))[0]["id"]
        local = sent_at.astimezone(settings_for(path).zone).date().isoformat()
        shared = Counter(mobile for mobile, _ in surveys)
        await db.bulk_insert(
            "survey",
            (
                "inspection_id",
                "entity_id",
                "sample_id",
                "code",
                "channel",
                "address",
                "status",
                "locale",
                "context",
                "answers",
                "comment",
                "clarifications",
                "alerted",
                "poll_question",
                "polls",
                "created_at",
                "sent_at",
                "reminder_at",
                "reminded_at",
                "expires_at",
                "answered_at",
                "completed_at",
                "late",
            ),
            (
                (
                    first_insp + i,
                    first_entity + i,
                    sample_id,
                    code,
                    "sms",
                    mobile,
                    "sent",
                    "zh-CN",
                    {
                        "date": local,
                        "departments": ["青岛市市场监督管理局"],
                        "dept_codes": [DEPT],
                        "team": TEAM,
                        "entity": f"青岛测试{i}号餐饮有限公司",
                        "plan": plan.name,
                        "plan_code": plan.code,
                        "draw_ref": DRAW_REF,
                        "no": i + 1,
                        "sign": "青岛市市场监督管理局",
                        "show_code": shared[mobile] > 1,
                    },
                    {},
                    None,
                    {},
                    [],
                    None,
                    {},
                    sent_at,
                    sent_at,
                    reminder_at(sent_at),
                    None,
                    expires_at(sent_at),
                    None,
                    None,
                    False,
                )
                for i, (mobile, code) in enumerate(surveys)
            ),
        )
    return {"surveys": n, "seconds": round(time.perf_counter() - t0, 2)}


async def _next_id(table: str) -> int:
    from core import db

    rows = await db.conn().execute_query_dict(f'SELECT COALESCE(MAX(id), 0) + 1 AS n FROM "{table}"')
    return rows[0]["n"]


def check(path: Path, expected: Expected, requests: int) -> dict:
    """The database after the run, against the expectations; raises AssertionError on a difference."""
    con = sqlite3.connect(path)
    try:
        events = con.execute(
            "SELECT COUNT(*), COUNT(processed_at), SUM(outcome LIKE 'failed:%' OR outcome = '') FROM inbound_event"
        ).fetchone()
        outcomes = dict(con.execute("SELECT outcome, COUNT(*) FROM inbound_event GROUP BY outcome").fetchall())
        rows = {
            code: (status, json.loads(answers))
            for code, status, answers in con.execute("SELECT code, status, answers FROM survey").fetchall()
        }
        outbox = Counter(dict(con.execute("SELECT template, COUNT(*) FROM outbox GROUP BY template").fetchall()))
        alerts = con.execute("SELECT COUNT(*) FROM alert").fetchone()[0]
    finally:
        con.close()
    problems = []
    if events[0] != requests or events[1] != requests or events[2]:
        problems.append(
            f"inbound events: {events[0]} stored, {events[1]} processed, {events[2]} failed; {requests} sent"
        )
    wrong = [code for code, status in expected.statuses.items() if rows.get(code) != (status, expected.answers[code])]
    if wrong:
        code = wrong[0]
        problems.append(
            f"{len(wrong)} surveys differ, e.g. {code}: stored {rows.get(code)}, expected "
            f"{(expected.statuses[code], expected.answers[code])}"
        )
    if outbox != expected.outbox:
        problems.append(f"outbox {dict(outbox)} != expected {dict(expected.outbox)}")
    if alerts != expected.alerts:
        problems.append(f"alerts {alerts} != expected {expected.alerts}")
    if problems:
        raise AssertionError("; ".join(problems))
    return {
        "inbound_events": events[0],
        "outcomes": outcomes,
        "surveys": dict(Counter(status for status, _ in rows.values())),
        "outbox": dict(outbox),
        "alerts": alerts,
    }


# --- requests ----------------------------------------------------------------------------------


def signed(url: str, conversations: list[Conversation]) -> list[list[tuple[bytes, str]]]:
    """Each conversation's requests: the url-encoded Twilio form and its X-Twilio-Signature."""
    from urllib.parse import urlencode

    from domain.signatures import twilio_signature
    from simulators.sms import DEV_ACCOUNT_SID, DEV_AUTH_TOKEN, DEV_NUMBER, new_sid, segments

    out = []
    for c in conversations:
        reqs = []
        for text in c.texts:
            sid = new_sid()
            form = {
                "ToCountry": "US",
                "ToState": "",
                "SmsMessageSid": sid,
                "NumMedia": "0",
                "ToCity": "",
                "FromZip": "",
                "SmsSid": sid,
                "FromState": "",
                "SmsStatus": "received",
                "FromCity": "",
                "Body": text,
                "FromCountry": "CN",
                "To": DEV_NUMBER,
                "ToZip": "",
                "NumSegments": str(segments(text)),
                "MessageSid": sid,
                "AccountSid": DEV_ACCOUNT_SID,
                "From": c.mobile,
                "ApiVersion": "2010-04-01",
            }
            reqs.append((urlencode(form).encode(), twilio_signature(url, form, DEV_AUTH_TOKEN)))
        out.append(reqs)
    return out


# --- the servers (child processes) ---------------------------------------------------------------


def without_database(rt) -> None:
    """What-if only (``--what-if-no-database``), never how the service runs: the floor under the
    reply path. ``Runtime.on_event`` is replaced by one that logs the line the service logs for
    each event and returns at once, so a request costs what our HTTP side costs — aiohttp, the
    webhook guard (size, signature, form), the event parsed, the replay check, the log line —
    and no statement, transaction or survey logic."""
    from services.inbound import Received

    runtime_log = logging.getLogger("bot.runtime")

    async def on_event(event):
        runtime_log.info("inbound %s/%s %s -> %s", event.channel, event.kind.value, event.external_id, "not_stored")
        return Received(duplicate=False, outcome="not_stored")

    rt.on_event = on_event


async def serve(args) -> None:
    """Serve the real app (or hello world) on ``args.port`` until SIGTERM; print CPU time used."""
    from aiohttp import web

    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    if args.app == "hello":

        async def hello(request: web.Request) -> web.Response:
            return web.Response(text="Hello, world")

        app = web.Application()
        app.router.add_post("/sms/inbound", hello)
        cleanup = None
    else:
        from bot.channels.sms_twilio import TwilioSmsChannel
        from bot.runtime import Runtime
        from bot.web import make_app
        from core import db
        from core.clock import SYSTEM
        from core.logs import setup_logging

        settings = settings_for(Path(args.db), args.port)
        # as `inspectbot serve` logs: JSON lines through the redacting filter, INFO, one per event
        setup_logging(settings, fmt="json", stream=open(args.log, "a", encoding="utf-8"))
        await db.init(settings)
        channel = TwilioSmsChannel(settings, clock=SYSTEM)
        rt = Runtime(settings=settings, clock=SYSTEM, channels={"sms": channel})
        if args.no_database:
            without_database(rt)
        app = make_app(rt)
        cleanup = db.close
    figures = await serve_measured(app, args.port, stop, args.profile)
    if cleanup:
        await cleanup()
    print(json.dumps(figures), flush=True)


async def load(args) -> None:
    """Fire the conversations' requests over ``args.connections`` connections; print the figures."""
    with open(args.plan, "rb") as f:
        conversations = pickle.load(f)[args.part]

    def request(message):
        body, signature = message
        return body, {"X-Twilio-Signature": signature, "Content-Type": "application/x-www-form-urlencoded"}

    figures = await converse(f"http://{HOST}:{args.port}/sms/inbound", conversations, args.connections, request)
    print(json.dumps(figures), flush=True)


# --- orchestration -------------------------------------------------------------------------------


def orchestrate(args) -> int:
    rng = random.Random(args.seed)
    work, path = workspace(args.keep, "bench_sms_")
    emit("machine", machine())
    mobiles, codes = mobile_numbers(), survey_codes(rng)
    warm = make_conversations(args.warmup, rng, mobiles, codes)
    timed = make_conversations(args.requests, rng, mobiles, codes)
    rng.shuffle(warm)
    rng.shuffle(timed)
    now = datetime.now(UTC)
    sent_at = now - timedelta(hours=2)
    emit("fill", asyncio.run(fill(path, warm + timed, sent_at)))
    port = free_port()
    url = f"http://{HOST}:{port}/sms/inbound"
    plan = work / "requests.pickle"
    with open(plan, "wb") as f:
        pickle.dump({"warmup": signed(url, warm), "timed": signed(url, timed)}, f)
    n_timed = sum(len(c.texts) for c in timed)
    n_warm = sum(len(c.texts) for c in warm)

    hello = [measure_hello(plan, port, args.connections)]
    emit("hello", hello[0])
    server_args = ["_serve", "app", "--port", str(port), "--db", str(path), "--log", str(work / "server.log")]
    if args.profile:
        server_args += ["--profile", args.profile]
    if args.what_if_no_database:
        server_args.append("--no-database")
    server = Child(*server_args)
    server.line()
    warm_figures = run_load(plan, "warmup", port, args.connections)
    emit("replies_warmup", warm_figures)
    replies = run_load(plan, "timed", port, args.connections)
    replies.update(server.stop())
    emit("replies", replies)
    hello.append(measure_hello(plan, port, args.connections))
    emit("hello_again", hello[1])

    if not args.what_if_no_database:  # nothing was stored to check
        expected = expectations(warm + timed, sent_at, now)
        emit("check", check(path, expected, n_warm + n_timed))
    best_hello = max(h["rps"] for h in hello)
    ratio = replies["rps"] / best_hello
    summary = {
        "requests": n_timed,
        "connections": args.connections,
        "replies_rps": replies["rps"],
        "hello_rps": best_hello,
        "hello_runs_rps": [h["rps"] for h in hello],
        "ratio": round(ratio, 3),
        "ratio_goal": 0.25,
        "p50_ms": replies["p50_ms"],
        "p99_ms": replies["p99_ms"],
        "p99_goal_ms": 100,
        "server_cpu_ms_per_request": round(1000 * replies["server_cpu_s"] / n_timed, 3),
        "server_sys_ms_per_request": round(1000 * replies["server_sys_s"] / n_timed, 3),
        "server_switches_per_request": round(replies["server_switches"] / n_timed, 1),
        "client_cpu_ms_per_request": round(1000 * replies["client_cpu_s"] / n_timed, 3),
        "hello_server_cpu_ms_per_request": round(min(1000 * h["server_cpu_s"] / h["requests"] for h in hello), 3),
        "hello_client_cpu_ms_per_request": round(min(1000 * h["client_cpu_s"] / h["requests"] for h in hello), 3),
        "what_if_no_database": args.what_if_no_database,
        "load_after": [round(x, 2) for x in os.getloadavg()],
    }
    emit("summary", summary)
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    sub = parser.add_subparsers(dest="role")
    serve_p = sub.add_parser("_serve")
    serve_p.add_argument("app", choices=("app", "hello"))
    serve_p.add_argument("--port", type=int, required=True)
    serve_p.add_argument("--db")
    serve_p.add_argument("--log", default=os.devnull)
    serve_p.add_argument("--profile")
    serve_p.add_argument("--no-database", action="store_true")
    load_p = sub.add_parser("_load")
    load_p.add_argument("--plan", required=True)
    load_p.add_argument("--part", required=True)
    load_p.add_argument("--port", type=int, required=True)
    load_p.add_argument("--connections", type=int, default=64)
    parser.add_argument("--requests", type=int, default=20000, help="timed requests (default 20000)")
    parser.add_argument("--connections", type=int, default=64, help="concurrent connections (default 64)")
    parser.add_argument("--warmup", type=int, default=1000, help="untimed requests first (default 1000)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", help="work in this directory and keep it (database, server log, requests)")
    parser.add_argument("--profile", help="cProfile the reply server's event loop into this file")
    parser.add_argument(
        "--what-if-no-database",
        action="store_true",
        help="experiment: the reply path's floor, no database work (see without_database)",
    )
    args = parser.parse_args(argv)
    if args.role == "_serve":
        asyncio.run(serve(args))
        return 0
    if args.role == "_load":
        asyncio.run(load(args))
        return 0
    return orchestrate(args)


if __name__ == "__main__":
    sys.exit(main())
