"""Soak: mixed traffic at 10× a city's busiest day against one real service process, with memory
and outbox depth flat at the end.

    uv run python benchmarks/soak.py [--minutes 30] [--scale 10] [--sample 5] [--drain 120]
        [--inspectors 400] [--seed 1] [--keep DIR]

**The busiest day** (docs/benchmarks.md, "Soak"): the Qingdao-scale plan of the draw benchmark
draws 160,948 inspections a year, 321,896 assignments. Spread over 250 working days that is
1,288 assignments a day; the busiest day is taken as 3 × that (draws cluster before the
quarter's end), **3,863 assignments**, all within an 8-hour working day. Per assignment that day:
its card (one message), one Accept press, one ``/tasks``, half a free text from the inspector;
a fifth of the inspections surveyed by SMS at ≈ 1.5 replies each (0.15 survey replies per
assignment); five public page views. ``--scale`` (10) multiplies all of it: at 10× that is
1.34 assignments/s, 1.34 presses/s, 1.34 ``/tasks``/s, 0.67 texts/s, 0.20 survey replies/s and
6.7 page views/s, ≈ 6.5 outgoing messages/s, arriving at random (Poisson) times.

Processes:

* the **service**: ``python -m bot.cli serve`` — the real ``inspectbot serve`` (web, dispatcher,
  scheduler; JSON logs to a file) on a SQLite file (the embedded default), configured from the
  environment: Telegram in webhook mode against the Bot API simulator, SMS against the Twilio
  simulator.
* the **Telegram Bot API simulator** (this script's ``_tgsim``): the inspectors and the
  coordinator as users who pressed Start, flood limits on (30/s, 1/s per chat, as Telegram).
* the **SMS simulator** (``python -m simulators.sms``): takes the survey messages and sends
  signed delivery receipts back to the service's ``/sms/status``.
* the **load generator and sampler** (``_load``): the city's draws — every 5 s it commits the
  assignments due (inspections, two seats each, and their assignment cards through
  ``services.draws.write.assignment_message`` and ``services.outbox.enqueue``) in its own transaction on
  the same database, as ``inspectbot draw`` run beside the service would; the service's
  dispatcher fans them out to the simulator. Each card, once the outbox says it was sent, is
  pressed (Accept) 5–60 s later: a ``callback_query`` update with the card's real message id,
  POSTed with the secret header to ``/telegram/webhook``. ``/tasks`` and free texts from random
  inspectors; survey replies from ``bench_sms_replies`` conversations (signed Twilio forms, a
  conversation's next message 5–20 s after the answer to its previous one); page views of the
  home page, plans, draws, a draw, entity search and an entity page. Every few seconds it
  samples the service's resident memory (``VmRSS``), the outbox (pending + sending rows, dead
  rows), the inbound backlog (events stored but not processed; requests in flight) and the
  latencies of the window.

After ``--minutes`` of traffic, the generator stops and waits (at most ``--drain`` s) for the
outbox to empty. The verdict, printed as one JSON line and reflected in the exit code:

* **memory flat**: the least-squares slope of RSS over the last two thirds of the traffic period
  at most ``--max-slope`` MB/min (0.5: 15 MB over 30 min) — judged only for runs of 5 minutes or
  more (a shorter run is all warm-up);
* **outbox bounded and back to zero**: pending + sending never above a minute of outgoing traffic
  (at least 50 rows), nothing left after the drain, no dead row;
* every webhook answered 200, no page answered 5xx, no inbound event left unprocessed;
* **effects**: one processed inbound event per Telegram update and per survey reply, every pressed
  assignment accepted, every card delivered, every outbox row ``sent`` (or ``delivered``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pickle
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _common import HOST, Child, die_with_parent, emit, free_port, machine, pct, rss_mb, run_role, workspace  # noqa: E402

# The busiest day, from the Qingdao-scale plan (docs/benchmarks.md, "Draw" and "Soak").
YEAR_ASSIGNMENTS = 321_896
WORKING_DAYS = 250
PEAK_FACTOR = 3
WORKING_SECONDS = 8 * 3600
PER_ASSIGNMENT = {"assign": 1.0, "press": 1.0, "tasks": 1.0, "text": 0.5, "survey": 0.15, "page": 5.0}
COORDINATOR_CHAT = 900  # bench_sms_replies.fill binds the coordinator to this chat
TICK = 5.0  # seconds between the generator's draw commits


def working_zone(minutes: float) -> str:
    """The service's time zone: Asia/Shanghai when the whole run falls in its working day
    (09:00-18:00), else a fixed-offset zone where it is 10:00 now. The soak is a working day:
    at night quiet hours would rightly hold the survey SMS until 08:00 (``domain.surveys.timing``)."""
    from zoneinfo import ZoneInfo

    now = datetime.now(UTC)
    local = now.astimezone(ZoneInfo("Asia/Shanghai"))
    if (
        9 <= local.hour
        and (local + timedelta(minutes=minutes + 5)).hour < 18
        and (local + timedelta(minutes=minutes + 5)).date() == local.date()
    ):
        return "Asia/Shanghai"
    offset = (10 - now.hour) % 24
    offset = offset - 24 if offset > 14 else offset
    return f"Etc/GMT{-offset:+d}" if offset else "Etc/UTC"


def busiest_day() -> float:
    return YEAR_ASSIGNMENTS / WORKING_DAYS * PEAK_FACTOR


def rates(scale: float) -> dict[str, float]:
    """Arrivals per second of each kind at ``scale`` × the busiest day."""
    per_second = busiest_day() * scale / WORKING_SECONDS
    return {kind: per_second * k for kind, k in PER_ASSIGNMENT.items()}


# --- the Telegram simulator (child) -------------------------------------------------------------


async def tgsim(args) -> None:
    from bench_webhook import FIRST_USER

    from simulators.telegram.simulator import TelegramSimulator

    sim = TelegramSimulator()  # flood limits on, as Telegram's
    for n in range(args.users):
        sim.send_command(sim.create_user(f"检查员{n}", id=FIRST_USER + n), "start")
    sim.send_command(sim.create_user("协调员", id=COORDINATOR_CHAT), "start")
    sim.queue.drop_pending()  # they pressed Start long ago: nothing waits for the service
    await sim.start(HOST, args.port)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print(json.dumps({"url": sim.url, "token": sim.token}), flush=True)
    await stop.wait()
    print(json.dumps({"flood": sim.flood_stats(), "self_check_failures": len(sim.self_check_failures)}), flush=True)
    await sim.stop()


# --- the load generator and sampler (child) ------------------------------------------------------


class Reader:
    """Read-only queries on the service's database from a thread (WAL: never blocks its writer)."""

    def __init__(self, path: str) -> None:
        self.con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False, timeout=30)
        self.lock = asyncio.Lock()

    async def __call__(self, sql: str, params=()) -> list[tuple]:
        async with self.lock:
            return await asyncio.to_thread(lambda: self.con.execute(sql, params).fetchall())


class Load:
    def __init__(self, args, plan: dict) -> None:
        self.args = args
        self.plan = plan
        self.rng = random.Random(args.seed)
        self.rates = rates(args.scale)
        self.base = f"http://{HOST}:{args.port}"
        self.latency: dict[str, list[float]] = defaultdict(list)  # this window's, per kind
        self.all_latency: dict[str, list[float]] = defaultdict(list)
        self.statuses: dict[str, Counter] = defaultdict(Counter)
        self.inflight = 0
        self.update_id = iter(range(900_000_001, 2_000_000_000))
        self.sent_updates: list[int] = []
        self.sms_sent = 0
        self.assignments: list[tuple[int, int]] = []  # (assignment id, chat)
        self.pressed: list[int] = []
        self.press_waits = 0
        self.next_no = 1_000_000
        self.entity_no = 5_000_000
        self.tasks: set[asyncio.Task] = set()
        self.traffic = True

    def spawn(self, coro) -> None:
        task = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def request(self, kind: str, method: str, path: str, **kw) -> int:
        self.inflight += 1
        t = time.perf_counter()
        try:
            async with self.session.request(method, self.base + path, **kw) as resp:
                await resp.read()
                status = resp.status
        except Exception as exc:  # counted, never raised: the verdict reports it
            status = type(exc).__name__
        finally:
            self.inflight -= 1
        took = time.perf_counter() - t
        self.latency[kind].append(took)
        self.all_latency[kind].append(took)
        self.statuses[kind][str(status)] += 1
        return status

    # -- the kinds of traffic --

    async def telegram(self, kind: str, body: bytes, update_id: int) -> int:
        from bench_webhook import HEADERS, WEBHOOK_PATH

        self.sent_updates.append(update_id)
        return await self.request(kind, "POST", WEBHOOK_PATH, data=body, headers=HEADERS)

    async def draws(self) -> None:
        """Every TICK seconds, commit the assignments that came due (two seats an inspection)."""
        owed = 0.0
        while self.traffic:
            owed += self.rates["assign"] * TICK
            n = int(owed // 2)
            owed -= 2 * n
            if n:
                t = time.perf_counter()
                made = await self.draw(n)
                self.latency["draw_commit"].append(time.perf_counter() - t)
                now = time.monotonic()
                for aid, chat in made:
                    self.assignments.append((aid, chat))
                    self.spawn(self.press_later(aid, chat, now + self.rng.uniform(5, 60)))
            await asyncio.sleep(TICK)

    async def draw(self, n: int) -> list[tuple[int, int]]:
        from tortoise.transactions import in_transaction

        from core.clock import SYSTEM
        from services.draws.write import assignment_message
        from services.outbox import enqueue

        now = SYSTEM.now()
        local = now.astimezone(self.zone)
        made, messages = [], []
        async with in_transaction() as conn:
            for _ in range(n):
                self.next_no += 1
                self.entity_no += 1
                no, key = self.next_no, f"9137023{self.entity_no:010d}Z"
                name, address = f"青岛崂山区{no}号食品商行", f"青岛市崂山区海尔路{no % 500}号"
                entity = await conn.execute_insert(
                    'INSERT INTO "entity" ("uscc", "name", "kind", "division_code", "address", "industry", '
                    '"risk_class", "mobile", "status", "content_hash", "updated_at") VALUES (?,?,?,?,?,?,?,?,?,?,?)',
                    [key, name, "enterprise", "370212", address, "食品", "B", None, "active", "", now.isoformat(" ")],
                )
                insp = await conn.execute_insert(
                    'INSERT INTO "inspection" ("draw_id", "no", "entity_id", "entity_key", "division", "stratum", '
                    '"rank", "status", "unstaffable_reason") VALUES (?,?,?,?,?,?,?,?,?)',
                    [self.plan["draw_id"], no, entity, key, "370212", "B", f"{no:016x}", "staffed", ""],
                )
                team = self.rng.sample(self.plan["inspectors"], 2)
                for seat, (iid, chat) in enumerate(team, start=1):
                    aid = await conn.execute_insert(
                        'INSERT INTO "assignment" ("draw_id", "inspection_id", "inspector_id", "seat", "ordinal", '
                        '"status", "deadline", "created_at") VALUES (?,?,?,?,?,?,?,?)',
                        [
                            self.plan["draw_id"],
                            insp,
                            iid,
                            seat,
                            0,
                            "sent",
                            (now + timedelta(days=3)).isoformat(" "),
                            now.isoformat(" "),
                        ],
                    )
                    context = {
                        "draw_ref": self.plan["draw_ref"],
                        "plan": {"code": "BENCH", "name": "餐饮服务食品安全抽查"},
                        "items": ["食品经营许可情况检查"],
                        "flight": False,
                        "window": {
                            "start": local.strftime("%Y-%m-%d %H:%M"),
                            "end": (local + timedelta(days=30)).strftime("%Y-%m-%d %H:%M"),
                        },
                        "deadline": (local + timedelta(days=3)).strftime("%Y-%m-%d %H:%M"),
                        "no": no,
                        "seat": seat,
                        "team": ["检查员甲", "检查员乙"],
                        "entity": {"name": name, "address": address, "uscc": key},
                    }
                    messages.append(assignment_message(aid, iid, context, "zh-CN"))
                    made.append((aid, chat))
            await enqueue(messages, now, connection=conn)
        return made

    async def press_later(self, aid: int, chat: int, at: float) -> None:
        """Accept, once the card was delivered (its message id is the outbox row's provider id)."""
        from bench_webhook import press_update

        while True:
            await asyncio.sleep(max(0.0, at - time.monotonic()))
            if not self.traffic:
                return
            rows = await self.db("SELECT status, provider_id FROM outbox WHERE dedupe_key = ?", (f"asg:{aid}:sent",))
            if rows and rows[0][0] == "sent" and rows[0][1]:
                break
            self.press_waits += 1
            at = time.monotonic() + 5
        uid = next(self.update_id)
        status = await self.telegram("press", press_update(uid, chat, f"asg:accept:{aid}", int(rows[0][1])), uid)
        if status == 200:
            self.pressed.append(aid)

    async def poisson(self, kind: str, action) -> None:
        rate = self.rates[kind]
        while self.traffic:
            await asyncio.sleep(self.rng.expovariate(rate))
            if self.traffic:
                self.spawn(action())

    async def tasks_command(self) -> None:
        from bench_webhook import message_update

        _, chat = self.rng.choice(self.plan["inspectors"])
        uid = next(self.update_id)
        await self.telegram("tasks", message_update(uid, chat, "/tasks", self.rng.randrange(1, 10**6)), uid)

    async def text(self) -> None:
        from bench_webhook import TEXTS, message_update

        _, chat = self.rng.choice(self.plan["inspectors"])
        uid = next(self.update_id)
        await self.telegram(
            "text", message_update(uid, chat, self.rng.choice(TEXTS), self.rng.randrange(1, 10**6)), uid
        )

    async def survey_reply(self) -> None:
        if not self.ready:
            self.statuses["survey"]["none_ready"] += 1
            return
        i, k = self.ready.popleft()
        body, signature = self.plan["surveys"][i][k]
        self.sms_sent += 1
        await self.request(
            "survey",
            "POST",
            "/sms/inbound",
            data=body,
            headers={"X-Twilio-Signature": signature, "Content-Type": "application/x-www-form-urlencoded"},
        )
        if k + 1 < len(self.plan["surveys"][i]):
            await asyncio.sleep(self.rng.uniform(5, 20))
            self.ready.append((i, k + 1))

    async def page(self) -> None:
        from urllib.parse import quote

        r = self.rng.random()
        if r < 0.25:
            path = "/"
        elif r < 0.35:
            path = "/plans"
        elif r < 0.50:
            path = "/draws"
        elif r < 0.60:
            path = "/draws/" + quote(self.plan["draw_ref"], safe="/")
        elif r < 0.80:
            path = "/entities?q=" + quote(f"青岛测试{self.rng.randrange(1, 300)}")
        else:
            path = "/entities/" + self.rng.choice(self.plan["usccs"])
        await self.request("page", "GET", path)

    # -- sampling --

    async def sample(self, t0: float, phase: str) -> dict:
        outbox = dict(await self.db("SELECT status, COUNT(*) FROM outbox GROUP BY status"))
        backlog = (await self.db("SELECT COUNT(*) FROM inbound_event WHERE processed_at IS NULL"))[0][0]
        window = {}
        for kind, lat in self.latency.items():
            lat.sort()
            window[kind] = {"n": len(lat), "p50_ms": pct(lat, 0.5), "p99_ms": pct(lat, 0.99)}
        self.latency = defaultdict(list)
        return {
            "phase": phase,
            "t": round(time.monotonic() - t0, 1),
            "rss_mb": rss_mb(self.args.server_pid),
            "outbox_depth": outbox.get("pending", 0) + outbox.get("sending", 0),
            "outbox_dead": outbox.get("dead", 0),
            "outbox_sent": outbox.get("sent", 0),
            "inbound_unprocessed": backlog,
            "inflight": self.inflight,
            "window": window,
            "load": round(os.getloadavg()[0], 2),
        }

    async def run(self) -> None:
        from collections import deque

        import aiohttp
        from bench_webhook import settings_for

        from core import db

        settings = settings_for(Path(self.args.db))
        self.zone = settings.zone
        await db.init(settings)
        self.db = Reader(self.args.db)
        self.ready = deque((i, 0) for i in range(len(self.plan["surveys"])))
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256))
        t0 = time.monotonic()
        end = t0 + self.args.seconds
        generators = [
            asyncio.create_task(g)
            for g in (
                self.draws(),
                self.poisson("tasks", self.tasks_command),
                self.poisson("text", self.text),
                self.poisson("survey", self.survey_reply),
                self.poisson("page", self.page),
            )
        ]
        while time.monotonic() < end:
            await asyncio.sleep(min(self.args.sample, max(0.0, end - time.monotonic())))
            print(json.dumps(await self.sample(t0, "sample"), ensure_ascii=False), flush=True)
        self.traffic = False
        for g in generators:
            g.cancel()
        await asyncio.gather(*generators, return_exceptions=True)
        # presses still waiting are dropped; requests already sent finish
        drain_end = time.monotonic() + self.args.drain
        while True:
            await asyncio.sleep(min(self.args.sample, 2.0))
            s = await self.sample(t0, "drain")
            print(json.dumps(s, ensure_ascii=False), flush=True)
            if (s["outbox_depth"] == 0 and s["inflight"] == 0) or time.monotonic() > drain_end:
                break
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.session.close()
        await db.close()
        figures = {}
        for kind, lat in self.all_latency.items():
            lat.sort()
            figures[kind] = {
                "n": len(lat),
                "p50_ms": pct(lat, 0.5),
                "p99_ms": pct(lat, 0.99),
                "max_ms": round(1000 * lat[-1], 1) if lat else 0,
                "statuses": dict(self.statuses[kind]),
            }
        print(
            json.dumps(
                {
                    "phase": "load",
                    "rates_per_s": {k: round(v, 3) for k, v in self.rates.items()},
                    "kinds": figures,
                    "telegram_updates": len(self.sent_updates),
                    "distinct_updates": len(set(self.sent_updates)),
                    "sms_replies": self.sms_sent,
                    "assignments": len(self.assignments),
                    "pressed": len(self.pressed),
                    "press_waits": self.press_waits,
                    "pressed_ids": self.pressed,
                    "assignment_ids": [a for a, _ in self.assignments],
                },
                ensure_ascii=False,
            ),
            flush=True,
        )


async def load(args) -> None:
    with open(args.plan, "rb") as f:
        plan = pickle.load(f)
    await Load(args, plan).run()


# --- orchestration -------------------------------------------------------------------------------


async def fill(path: Path, port: int, inspectors: int, survey_messages: int, rng: random.Random) -> dict:
    """The database: the survey benchmark's plan, draw and open surveys; inspectors with chats."""
    import bench_sms_replies as sms
    from bench_webhook import add_telegram_inspectors, draw_id, settings_for

    from core import db

    conversations = sms.make_conversations(survey_messages, rng, sms.mobile_numbers(), sms.survey_codes(rng))
    sent_at = datetime.now(UTC) - timedelta(hours=2)
    await sms.fill(path, conversations, sent_at)
    async with db.opened(settings_for(path), migrate=False):
        pairs = await add_telegram_inspectors(inspectors, sms.DEPT)
        draw = await draw_id(sms.DRAW_REF)
        usccs = [r["uscc"] for r in await db.conn().execute_query_dict("SELECT uscc FROM entity LIMIT 500")]
    url = f"http://{HOST}:{port}/sms/inbound"
    return {
        "draw_id": draw,
        "draw_ref": sms.DRAW_REF,
        "inspectors": pairs,
        "usccs": usccs,
        "surveys": sms.signed(url, conversations),
        "survey_conversations": len(conversations),
    }


def wait_http(url: str, proc: subprocess.Popen, seconds: float = 60) -> None:
    import urllib.error
    import urllib.request

    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args} ended: exit {proc.returncode}")
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {seconds} s")


def slope_per_minute(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, value) points, per minute."""
    n = len(points)
    if n < 2:
        return 0.0
    mx = sum(t for t, _ in points) / n
    my = sum(v for _, v in points) / n
    var = sum((t - mx) ** 2 for t, _ in points)
    return 60 * sum((t - mx) * (v - my) for t, v in points) / var if var else 0.0


def check_database(path: Path, load: dict) -> dict:
    con = sqlite3.connect(path)
    try:
        tg = con.execute(
            "SELECT COUNT(*), COUNT(processed_at), SUM(outcome LIKE 'failed:%' OR outcome = ''), "
            "COUNT(DISTINCT external_id) FROM inbound_event WHERE channel = 'telegram'"
        ).fetchone()
        sms_kinds = dict(con.execute("SELECT kind, COUNT(*) FROM inbound_event WHERE channel = 'sms' GROUP BY kind"))
        unprocessed = con.execute("SELECT COUNT(*) FROM inbound_event WHERE processed_at IS NULL").fetchone()[0]
        outcomes = dict(con.execute("SELECT outcome, COUNT(*) FROM inbound_event GROUP BY outcome"))
        outbox = dict(con.execute("SELECT status, COUNT(*) FROM outbox GROUP BY status"))
        by_channel = dict(
            con.execute("SELECT channel, COUNT(*) FROM outbox WHERE status IN ('sent', 'delivered') GROUP BY channel")
        )
        ids = load["assignment_ids"]
        status = (
            dict(con.execute(f"SELECT id, status FROM assignment WHERE id IN ({','.join('?' * len(ids))})", ids))
            if ids
            else {}
        )
        cards = dict(
            con.execute("SELECT status, COUNT(*) FROM outbox WHERE template = 'assignment.j2' GROUP BY status")
        )
    finally:
        con.close()
    not_accepted = [a for a in load["pressed_ids"] if status.get(a) != "accepted"]
    problems = []
    if tg[0] != load["telegram_updates"] or tg[1] != tg[0] or tg[2] or tg[3] != tg[0]:
        problems.append(
            f"telegram events: {tg[0]} stored ({tg[3]} distinct), {tg[1]} processed, {tg[2]} failed; "
            f"{load['telegram_updates']} sent"
        )
    replies = sum(n for kind, n in sms_kinds.items() if kind != "delivery")
    if replies != load["sms_replies"]:
        problems.append(f"{replies} SMS reply events stored, {load['sms_replies']} sent")
    if unprocessed:
        problems.append(f"{unprocessed} inbound events unprocessed")
    if not_accepted:
        problems.append(f"{len(not_accepted)} pressed assignments not accepted, e.g. {not_accepted[:3]}")
    if cards.get("sent", 0) != len(ids):
        problems.append(f"cards {cards} for {len(ids)} assignments")
    if set(outbox) - {"sent", "delivered"}:  # delivered: an SMS whose receipt came back
        problems.append(f"outbox rows not sent: {outbox}")
    return {
        "ok": not problems,
        "problems": problems,
        "telegram_events": tg[0],
        "sms_events": sms_kinds,
        "outcomes": outcomes,
        "outbox": outbox,
        "sent_by_channel": by_channel,
        "cards": cards,
        "pressed_accepted": len(load["pressed_ids"]) - len(not_accepted),
    }


def verdict(samples: list[dict], drain: list[dict], load: dict, db_check: dict, args, out_rate: float) -> dict:
    traffic_s = args.minutes * 60
    tail = [(s["t"], s["rss_mb"]) for s in samples if s["t"] >= traffic_s / 3]
    slope = slope_per_minute(tail)
    judged = args.minutes >= 5
    memory = {
        "ok": (slope <= args.max_slope) if judged else True,
        "judged": judged,
        "slope_mb_per_min": round(slope, 3),
        "limit_mb_per_min": args.max_slope,
        "first_mb": samples[0]["rss_mb"] if samples else 0,
        "last_mb": samples[-1]["rss_mb"] if samples else 0,
        "peak_mb": max((s["rss_mb"] for s in samples + drain), default=0),
        "tail_min_mb": min((v for _, v in tail), default=0),
        "tail_max_mb": max((v for _, v in tail), default=0),
    }
    bound = max(50, round(60 * out_rate))
    depths = [s["outbox_depth"] for s in samples]
    last_third = depths[-max(1, len(depths) // 3) :]
    final = (drain or samples)[-1]
    outbox = {
        "ok": max(depths, default=0) <= bound and final["outbox_depth"] == 0 and final["outbox_dead"] == 0,
        "max_depth": max(depths, default=0),
        "bound": bound,
        "mean_depth_last_third": round(sum(last_third) / max(1, len(last_third)), 1),
        "depth_slope_per_min": round(
            slope_per_minute([(s["t"], s["outbox_depth"]) for s in samples if s["t"] >= traffic_s / 3]), 2
        ),
        "after_drain": final["outbox_depth"],
        "dead": final["outbox_dead"],
        "drain_seconds": round(final["t"] - traffic_s, 1) if drain else 0,
    }
    kinds = load["kinds"]
    webhook_bad = {
        k: {s: n for s, n in kinds.get(k, {}).get("statuses", {}).items() if s != "200"}
        for k in ("press", "tasks", "text", "survey")
    }
    page_bad = {s: n for s, n in kinds.get("page", {}).get("statuses", {}).items() if not s.isdigit() or int(s) >= 500}
    answers = {
        "ok": not any(webhook_bad.values()) and not page_bad,
        "webhooks_not_200": webhook_bad,
        "pages_5xx_or_failed": page_bad,
        "max_inbound_unprocessed": max((s["inbound_unprocessed"] for s in samples), default=0),
        "max_inflight": max((s["inflight"] for s in samples), default=0),
    }
    checks = {"memory": memory, "outbox": outbox, "answers": answers, "database": db_check}
    return {
        "ok": all(c["ok"] for c in checks.values()),
        **checks,
        "latency": {k: {x: v[x] for x in ("n", "p50_ms", "p99_ms", "max_ms")} for k, v in kinds.items()},
    }


def orchestrate(args) -> int:
    rng = random.Random(args.seed)
    work, path = workspace(args.keep, "soak_")
    emit("machine", machine())
    r = rates(args.scale)
    seconds = args.minutes * 60
    out_rate = r["assign"] + 2 * r["press"] + r["tasks"] + r["text"] + r["survey"]
    emit(
        "rates",
        {
            "busiest_day_assignments": round(busiest_day()),
            "scale": args.scale,
            "per_second": {k: round(v, 3) for k, v in r.items()},
            "outgoing_per_second": round(out_rate, 2),
            "minutes": args.minutes,
            "service_zone": working_zone(args.minutes),
        },
    )
    zone = working_zone(args.minutes)
    port, tg_port, sms_port = free_port(), free_port(), free_port()
    t = time.perf_counter()
    plan = asyncio.run(fill(path, port, args.inspectors, int(r["survey"] * seconds * 1.5) + 20, rng))
    emit(
        "fill",
        {
            "inspectors": args.inspectors,
            "survey_conversations": plan["survey_conversations"],
            "seconds": round(time.perf_counter() - t, 1),
        },
    )
    plan_file = work / "plan.pickle"
    with open(plan_file, "wb") as f:
        pickle.dump(plan, f)

    from bench_webhook import SECRET

    from simulators.sms import DEV_ACCOUNT_SID, DEV_AUTH_TOKEN, DEV_NUMBER

    children: list[subprocess.Popen] = []
    logs = []
    try:
        tgsim_child = Child("_tgsim", "--users", str(args.inspectors), "--port", str(tg_port))
        children.append(tgsim_child.proc)
        tg = tgsim_child.line()
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("TELEGRAM_", "SMS_", "INSPECTBOT_")) and k != "DATABASE_URL"
        }
        env.update(
            {
                "PYTHONPATH": str(ROOT),
                "DATABASE_URL": f"sqlite://{path}",
                "INSPECTBOT_DATA_DIR": str(work),
                "TELEGRAM_TOKEN": tg["token"],
                "TELEGRAM_API_URL": tg["url"],
                "TELEGRAM_MODE": "webhook",
                "TELEGRAM_WEBHOOK_SECRET": SECRET,
                "INSPECTBOT_PUBLIC_URL": f"http://{HOST}:{port}",
                "INSPECTBOT_WEB_HOST": HOST,
                "INSPECTBOT_WEB_PORT": str(port),
                "INSPECTBOT_METRICS_PORT": "0",  # no metrics listener (the soak does not scrape it)
                "SMS_ACCOUNT_SID": DEV_ACCOUNT_SID,
                "SMS_AUTH_TOKEN": DEV_AUTH_TOKEN,
                "SMS_FROM": DEV_NUMBER,
                "SMS_API_URL": f"http://{HOST}:{sms_port}",
                "INSPECTBOT_TZ": zone,
            }
        )
        sms_log = open(work / "sms_simulator.log", "w")
        logs.append(sms_log)
        sms_sim = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "simulators.sms",
                "--port",
                str(sms_port),
                "--inbound-url",
                f"http://{HOST}:{port}/sms/inbound",
                "--callback-delay",
                "0.5",
            ],
            cwd=work,
            env=env,
            stdout=sms_log,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent,
        )
        children.append(sms_sim)
        wait_http(f"http://{HOST}:{sms_port}/", sms_sim)
        service_log = open(work / "service.log", "w")
        logs.append(service_log)
        service = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "serve"],
            cwd=work,
            # the soak measures the service, not a beacon: no beacon, said so as serve requires
            env={**env, "INSPECTBOT_BEACON": "none", "INSPECTBOT_BEACON_NONE_ACKNOWLEDGED": "yes"},
            stdout=service_log,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent,
        )
        children.append(service)
        wait_http(f"http://{HOST}:{port}/healthz", service)
        emit("started", {"service_pid": service.pid, "rss_mb": rss_mb(service.pid)})

        gen = Child(
            "_load",
            "--plan",
            str(plan_file),
            "--db",
            str(path),
            "--port",
            str(port),
            "--server-pid",
            str(service.pid),
            "--seconds",
            str(seconds),
            "--scale",
            str(args.scale),
            "--sample",
            str(args.sample),
            "--drain",
            str(args.drain),
            "--seed",
            str(args.seed),
        )
        children.append(gen.proc)
        samples, drain = [], []
        while True:
            line = gen.line()
            if line["phase"] == "load":
                load_out = line
                break
            (samples if line["phase"] == "sample" else drain).append(line)
            print(json.dumps(line, ensure_ascii=False), flush=True)
        gen.proc.wait(30)
        service.send_signal(signal.SIGTERM)
        service_exit = service.wait(60)
        tgsim_child.proc.send_signal(signal.SIGTERM)
        sim_stats = tgsim_child.line()
    finally:
        for proc in children:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
        for f in logs:
            f.close()
    emit("load", {k: v for k, v in load_out.items() if k not in ("pressed_ids", "assignment_ids", "phase")})
    db_check = check_database(path, load_out)
    tg_sent = db_check["sent_by_channel"].get("telegram", 0)
    if sim_stats["flood"].get("accepted", 0) < tg_sent:
        db_check["ok"] = False
        db_check["problems"].append(f"simulator accepted {sim_stats['flood'].get('accepted')} < {tg_sent} sent")
    db_check["simulator"] = sim_stats
    db_check["service_exit"] = service_exit
    result = verdict(samples, drain, load_out, db_check, args, out_rate)
    result["load_after"] = [round(x, 2) for x in os.getloadavg()]
    emit("verdict", result)
    if not args.keep and result["ok"]:
        shutil.rmtree(work, ignore_errors=True)
    elif not args.keep:
        print(f"kept for inspection: {work}", file=sys.stderr)
    return 0 if result["ok"] else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    sub = parser.add_subparsers(dest="role")
    sim_p = sub.add_parser("_tgsim")
    sim_p.add_argument("--users", type=int, required=True)
    sim_p.add_argument("--port", type=int, required=True)
    load_p = sub.add_parser("_load")
    for name in ("--plan", "--db"):
        load_p.add_argument(name, required=True)
    for name in ("--port", "--server-pid"):
        load_p.add_argument(name, type=int, required=True)
    for name in ("--seconds", "--scale", "--sample", "--drain"):
        load_p.add_argument(name, type=float, required=True)
    load_p.add_argument("--seed", type=int, default=1)
    parser.add_argument("--minutes", type=float, default=30, help="minutes of traffic (default 30)")
    parser.add_argument("--scale", type=float, default=10, help="multiple of the busiest day (default 10)")
    parser.add_argument("--sample", type=float, default=5, help="seconds between samples (default 5)")
    parser.add_argument(
        "--drain", type=float, default=120, help="seconds to wait for the outbox to empty (default 120)"
    )
    parser.add_argument("--inspectors", type=int, default=400, help="inspectors with a Telegram chat (default 400)")
    parser.add_argument("--max-slope", type=float, default=0.5, help="largest RSS slope allowed, MB/min (default 0.5)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", help="work in this directory and keep it (database, logs)")
    return run_role(parser.parse_args(argv), {"_tgsim": tgsim, "_load": load}, orchestrate)


if __name__ == "__main__":
    sys.exit(main())
