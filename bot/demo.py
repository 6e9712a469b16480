"""The whole cycle on the embedded default, in one command (``inspectbot demo``).

SQLite, a generated city, the Telegram Bot API and SMS gateway simulators, the real service
(python-telegram-bot polling the simulator, the Twilio adapter sending to the SMS simulator,
our aiohttp app receiving its signed webhooks, the dispatcher, the scheduler's sweeps), and
scripted people: a coordinator who reviews, inspectors who accept, recuse, check in and submit
results, entities who answer the integrity survey (one complains), and at the rectification
deadline the team lead's re-inspection (复查), which the coordinator approves. The clock is a fast,
scripted one: the script moves it and runs the scheduler, so a month passes in seconds.

Without ``--headless`` the public page, the simulators and their web page stay up afterwards,
so a person can be an inspector or an entity; ``--headless`` runs to the end and exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import socket
import time as _time
import tomllib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

from bot.app import PortUnavailable, Service
from core import db, logs
from core.callbacks import ASSIGNMENT, FINDINGS, RECUSAL
from core.clock import Clock, FakeClock
from core.drand import test_chain
from core.render import text
from core.settings import SMS_INBOUND_PATH, Settings, default_database_url
from domain.refs import inspection_ref
from importers import city
from importers.run import ImportResult, import_file
from models.alerts import Alert
from models.directory import Entity
from models.draws import Assignment, AssignmentStatus, Draw, Firing, Inspection, Recusal
from models.messaging import InboundEvent, Outbox, OutboxStatus, Role
from models.onsite import Finding, Result
from models.publication import Notice, Publication, Rectification, RectificationStatus, Review, ReviewStatus
from models.surveys import Survey
from scheduler import SWEEPS, Scheduler
from services import credit, plans, public, reports
from services.identity import create_invite
from simulators.drand import DrandSimulator
from simulators.sms import DEV_ACCOUNT_SID, DEV_AUTH_TOKEN, DEV_NUMBER, SmsSimulator
from simulators.telegram import TelegramSimulator
from simulators.telegram.flood import FloodLimits
from simulators.web import start_sim_page

log = logging.getLogger("inspectbot.demo")

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_PLAN = ROOT / "examples" / "plans" / "food-safety.toml"
# Tuesday 1 December 2026, 09:00 in Shanghai: a working day the holiday calendar knows.
DEMO_START = datetime(2026, 12, 1, 1, 0, tzinfo=UTC)
DEADLINE_TIME = time(9, 0)  # the demo's clock moves to 09:00 (local) on a rectification deadline
ACTED_INSPECTIONS = 3
DEMO_ENTITIES = 2_000
DEMO_INSPECTORS = 400
DEMO_SEED = 2026
PREVIOUS = "previous-demo"  # where a re-run moves the last run's world
SETTLE_POLL = 0.1  # seconds between checks that the bot is idle (three in a row settle a step)
QUIET = 2.0  # seconds without a line after which the demo says what it is doing


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


@dataclass
class Summary:
    lines: list[str] = field(default_factory=list)
    figures: dict = field(default_factory=dict)


class Demo:
    #: the inspectors' chat: the narration says how they came to it (an invite link, or the directory)
    channel = "telegram"

    def __init__(self, settings: Settings, *, headless: bool, out=print) -> None:
        # always its own SQLite database in the data folder: a configured DATABASE_URL (perhaps
        # production's) is never the demo's
        self.settings = settings.with_(database_url=default_database_url(settings.data_dir))
        self.headless = headless
        self.out = out
        self.clock = FakeClock(DEMO_START)
        self.summary = Summary()
        self.tg = self.sms = None
        self.drand: DrandSimulator | None = None
        self.service: Service | None = None
        self.scheduler = None
        self.users: dict[str, object] = {}  # cert_no / "coordinator" -> simulator user
        self.step = "start"
        self._last_line = _time.monotonic()
        self._step_started = _time.monotonic()
        self._live: asyncio.Task | None = None
        self.sim_url = ""  # the simulators' page, when served (not headless)

    def say(self, code: str, **params) -> None:
        line = text(code, self.settings.locale, **params)
        self.summary.lines.append(line)
        self.out(line)
        self._last_line = _time.monotonic()

    def doing(self, step: str) -> None:
        """Name what the demo does now; :meth:`heartbeat` says it when it takes a while."""
        self.step = step
        self._step_started = _time.monotonic()

    async def heartbeat(self) -> None:
        """Never more than :data:`QUIET` seconds of silence: a progress line naming the step."""
        while True:
            await asyncio.sleep(0.25)
            now = _time.monotonic()
            if now - self._last_line >= QUIET:
                line = text(
                    "demo_progress",
                    self.settings.locale,
                    step=self.step,
                    seconds=int(now - self._step_started),
                    channel=self.channel,
                )
                self.out(line)
                self._last_line = now

    def ports(self) -> list[tuple[int, str]]:
        """The fixed ports the demo listens on, each with the variable that chooses it."""
        if self.headless:
            return []
        s = self.settings
        wanted = [
            (s.web_port, "INSPECTBOT_WEB_PORT"),
            (s.metrics_port, "INSPECTBOT_METRICS_PORT"),
            (s.demo_telegram_port, "INSPECTBOT_DEMO_TELEGRAM_PORT"),
            (s.demo_sms_port, "INSPECTBOT_DEMO_SMS_PORT"),
            (s.demo_sim_port, "INSPECTBOT_DEMO_SIM_PORT"),
        ]
        return [(port, var) for port, var in wanted if port]

    def busy_port(self) -> tuple[int, str] | None:
        """The first of :meth:`ports` that cannot be bound now (before anything is started)."""
        for port, variable in self.ports():
            with socket.socket() as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as aiohttp binds
                try:
                    probe.bind(("127.0.0.1", port))
                except OSError:
                    return port, variable
        return None

    def fresh_world(self) -> None:
        """A re-run starts a new world: the last run's database and files move to
        ``<data>/previous-demo/`` (replacing an older one); the generated city is kept (the
        same seed writes the same files)."""
        data = self.settings.data_dir
        if not (data / "inspectbot.sqlite3").exists():
            return
        previous = data / PREVIOUS
        if previous.exists():
            shutil.rmtree(previous)
        previous.mkdir(parents=True)
        for path in data.iterdir():
            if path.name not in ("city", PREVIOUS):
                shutil.move(str(path), previous / path.name)
        self.say("demo_fresh", path=str(previous))

    # -- set-up ------------------------------------------------------------------------------

    async def start_simulators(self, *simulators: tuple[Callable[[str, int], Awaitable[Any]], int, str]) -> None:
        """Start each (start, port, its variable) on loopback — any free port when headless; a port
        in use stops the demo with one line naming it and its variable."""
        for start, port, variable in simulators:
            port = 0 if self.headless else port
            try:
                await start("127.0.0.1", port)
            except OSError as exc:
                raise PortUnavailable("127.0.0.1", port, variable, exc) from None

    async def start(self) -> None:
        s = self.settings
        self.tg = TelegramSimulator(flood=FloodLimits(), clock=self.clock)
        self.sms = SmsSimulator(account_sid=DEV_ACCOUNT_SID, auth_token=DEV_AUTH_TOKEN, numbers=(DEV_NUMBER,))
        await self.start_simulators(
            (self.tg.start, s.demo_telegram_port, "INSPECTBOT_DEMO_TELEGRAM_PORT"),
            (self.sms.start, s.demo_sms_port, "INSPECTBOT_DEMO_SMS_PORT"),
        )
        web_port = self.settings.web_port if not self.headless and self.settings.web_port else _free_port()
        public = f"http://127.0.0.1:{web_port}"
        # The beacon: a local test chain (its own key; flagged as such wherever it shows), whose
        # rounds fall on whole minutes of the demo's clock (30 days before it starts, 3 s a round).
        chain = test_chain(int((DEMO_START - timedelta(days=30)).timestamp()), 3)
        self.drand = DrandSimulator(now=lambda: self.clock.now().timestamp(), chain=chain)
        await self.drand.start("127.0.0.1", 0)
        self.settings = self.settings.with_(
            beacon="drand",
            drand_relays=(self.drand.url,),
            drand_chain=self.drand.chain_info_json(),
            telegram_token=self.tg.token,
            telegram_api_url=self.tg.url,
            telegram_mode="polling",
            sms_account_sid=DEV_ACCOUNT_SID,
            sms_auth_token=DEV_AUTH_TOKEN,
            sms_api_url=self.sms.url,
            sms_from=DEV_NUMBER,
            public_url=public,
            web_port=web_port,
            metrics_port=self.settings.metrics_port if not self.headless else _free_port(),
        )
        self.sms.inbound_url = public + SMS_INBOUND_PATH
        logs.protect(self.settings)  # now that the tokens are known
        self.service = Service(self.settings, self.clock, scheduler_enabled=False)
        await self.service.start()
        self._sim_runner = None
        if not self.headless:
            await self._serve_sim_page()
        self.scheduler = Scheduler(self.service.rt)
        self.say("demo_started", web=public, telegram=self.tg.url, sms=self.sms.url)

    async def _serve_sim_page(self) -> None:
        """The simulators' page, where a person can be an inspector or an entity (not headless)."""
        port = self.settings.demo_sim_port
        try:
            self._sim_runner, url = await start_sim_page(
                self._page_telegram(),
                self.sms,
                "127.0.0.1",
                port,
                phone_names=_phone_names,
                zone=self.settings.tz,
                wecom=getattr(self, "wecom", None),
            )
            self.sim_url = url
        except OSError as exc:
            raise PortUnavailable("127.0.0.1", port, "INSPECTBOT_DEMO_SIM_PORT", exc) from None
        self.say("demo_sim_page", url=url)

    def _page_telegram(self):
        """The Telegram simulator the page shows (the WeCom demo has none)."""
        return self.tg

    async def stop(self) -> None:
        if self._live is not None:
            self._live.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._live
            self._live = None
        if getattr(self, "_sim_runner", None) is not None:
            await self._sim_runner.cleanup()
        if self.service is not None:
            await self.service.stop()
        for sim in (self.tg, self.sms, self.drand):
            if sim is not None:
                await sim.stop()

    # -- helpers -----------------------------------------------------------------------------

    async def settle(self, rounds: int = 3) -> None:
        """Let inbound updates be handled and the outbox drain (the dispatcher runs as in prod)."""
        deadline = _time.monotonic() + 30
        while _time.monotonic() < deadline:
            await asyncio.sleep(SETTLE_POLL)
            busy = await InboundEvent.filter(outcome="").exists()
            due = await Outbox.filter(
                status__in=[OutboxStatus.PENDING, OutboxStatus.SENDING], next_attempt_at__lte=self.clock.now()
            ).exists()
            if not busy and not due:
                rounds -= 1
                if rounds <= 0:
                    break
            else:
                self.service.rt.dispatcher.wake()
        await self.sms.drain()

    async def advance(self, delta: timedelta, *, sweep: str = "") -> list[str]:
        """Move the demo's clock on and run what the scheduler runs then: every due fire and
        sweep, or only the named sweep of :data:`scheduler.SWEEPS` (run as the scheduler runs it)."""
        self.clock.advance(delta)
        if sweep:
            await SWEEPS[sweep](self.scheduler, self.clock.now())
            ran: list[str] = []
        else:
            ran = await self.scheduler.run_due()
        await self.settle()
        return ran

    async def bind(self, role, key: str, name: str, **invite):
        user = self.tg.create_user(name)
        code = await create_invite(role, self.clock, **invite)
        before = await self.events()
        self.tg.send_command(user, "start", code)
        self.users[key] = user
        await self.handled(before)
        return user

    def last(self, user):
        msgs = self.tg.messages(user)
        return msgs[-1] if msgs else None

    async def handled(self, before: int) -> None:
        """Wait until the bot has stored and handled one more inbound event than ``before``."""
        deadline = _time.monotonic() + 30
        while _time.monotonic() < deadline:
            if await InboundEvent.filter(outcome__not="").count() > before:
                break
            await asyncio.sleep(0.05)
        await self.settle()

    async def events(self) -> int:
        return await InboundEvent.filter(outcome__not="").count()

    async def press(self, user, message, data: str) -> None:
        before = await self.events()
        self.tg.press_button(user, message.message_id, data=data)
        await self.handled(before)

    # -- the story ---------------------------------------------------------------------------

    async def run(self) -> int:
        logs.protect(self.settings)
        busy = self.busy_port()
        if busy is not None:
            self.say("demo_port_busy", port=busy[0], variable=busy[1])
            return 2
        beat = asyncio.create_task(self.heartbeat())
        try:
            return await self._run()
        finally:
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat

    async def _run(self) -> int:
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.fresh_world()
        self.doing("city")
        files = await asyncio.to_thread(generate_city, self.settings.data_dir)
        await db.init(self.settings)
        await db.upgrade(self.settings)
        results = await import_city(files, self.clock)
        await db.close()
        if not all(r.ok for r in results):
            self.say("demo_import_failed")
            return 1
        rows = {r.kind: r.rows for r in results}
        self.say("demo_city", entities=rows.get("entities", 0), inspectors=rows.get("inspectors", 0))
        self.doing("start")
        try:
            await self.start()
        except PortUnavailable as exc:  # taken between the check and now
            self.say("demo_port_busy", port=exc.port, variable=exc.variable)
            await self.stop()
            return 2
        try:
            await self.story()
        finally:
            if self.headless:
                await self.stop()
        return 0

    def live(self) -> None:
        """After the story (not headless): the demo's clock runs on in real time from where the
        story left it, the scheduler's sweeps run and the outbox keeps draining, so what a
        person does on the simulators' page is answered and delivered."""
        self._live = asyncio.create_task(self._run_live())

    async def _run_live(self) -> None:
        last = _time.monotonic()
        sweeps = 0.0
        while True:
            await asyncio.sleep(1.0)
            now = _time.monotonic()
            self.clock.advance(timedelta(seconds=now - last))
            sweeps += now - last
            last = now
            if sweeps >= 30:
                sweeps = 0.0
                with contextlib.suppress(Exception):  # a failed sweep is logged by the scheduler
                    await self.scheduler.run_due()
            self.service.rt.dispatcher.wake()

    async def story(self) -> None:
        self.doing("plan")
        plan = await self.add_plan()
        await self.bind(Role.COORDINATOR, "coordinator", "王芳（协调员）", departments=tuple(plan.departments))
        await self.settle()
        # the commitment is published the day before, the draw fires on time
        self.doing("announce")
        await self.advance(timedelta(hours=1))
        firing = await self.firing(plan.code)
        self.say(
            "demo_announced",
            plan=plan.code,
            draw_ref=firing.draw_ref,
            commitment=firing.commitment,
            fire_at=firing.fire_at.astimezone(self.settings.zone).strftime("%Y-%m-%d %H:%M"),
        )
        self.doing("draw")
        await self.advance(timedelta(days=1))
        draw = await self.the_draw(firing.draw_ref)
        self.say(
            "demo_drawn",
            draw_ref=draw.draw_ref,
            pool=draw.pool_size,
            inspections=draw.inspection_count,
            unstaffable=draw.unstaffable_count,
            strata=", ".join(f"{k} {v['drawn']}/{v['pool']}" for k, v in sorted(draw.strata.items())),
            beacon=draw.beacon,
        )
        self.doing("chat")
        inspections = await self.inspectors_act(draw)
        self.doing("onsite")
        await self.on_site(inspections)
        self.doing("survey")
        await self.surveys_answered()
        await self.reviewed()
        self.doing("reinspect")
        await self.reinspected()
        self.doing("report")
        await self.report()
        self.doing("deliver")
        await self.deliver_all()
        await self.done()
        if not self.headless:
            self.live()

    async def queued(self, within: timedelta | None = None) -> list[Outbox]:
        """Messages waiting to be sent (not those waiting for a chat to be bound)."""
        rows = Outbox.filter(status__in=[OutboxStatus.PENDING, OutboxStatus.SENDING])
        if within is not None:
            rows = rows.filter(next_attempt_at__lte=self.clock.now() + within)
        return await rows.order_by("next_attempt_at")

    async def deliver_all(self) -> None:
        """Everything due is sent before the story says it is done: the dispatcher sends a chat
        one message a second and postpones the rest a second ahead of the demo's clock, which
        stands still between steps, so the clock moves on a second at a time until the queue
        (of what is due within the next minute: a reminder days ahead is not due) is empty."""
        told = 0
        for _ in range(900):
            waiting = await self.queued(timedelta(minutes=1))
            if not waiting:
                return
            if _time.monotonic() - self._last_line >= QUIET and len(waiting) != told:
                told = len(waiting)
                self.say("demo_delivering", n=told)
            self.clock.advance(timedelta(seconds=1))
            self.service.rt.dispatcher.wake()
            await self.settle(rounds=1)

    async def add_plan(self):
        spec = tomllib.loads(EXAMPLE_PLAN.read_text(encoding="utf-8"))
        # announced an hour from now (one day ahead of the draw), drawn the next day
        fire = (DEMO_START + timedelta(days=1, hours=1)).astimezone(self.settings.zone)
        spec["schedule"] = {"dates": [fire.strftime("%Y-%m-%d %H:%M")], "announce_days": 1}
        spec["window"] = {"start_after_days": 0, "days": 14, "start_time": "10:00"}
        path = self.settings.data_dir / "demo-plan.toml"
        path.write_text(_toml(spec), encoding="utf-8")
        added = await plans.add_plan(path, self.clock)
        self.say("demo_plan", plan=added.plan.code, name=added.plan.name)
        return added.plan

    async def firing(self, plan_code: str):
        return await Firing.filter(plan__code=plan_code).order_by("-id").first()

    async def the_draw(self, draw_ref: str):
        return await Draw.get(draw_ref=draw_ref)

    async def acted(self, draw) -> list[Inspection]:
        """The inspections the script acts on: the first staffed one of a firm surveyed for sure
        (risk class D or E, a share of 1 in the example plan) that has a mobile number, so the
        survey and its complaint always happen; then the next staffed ones by number."""
        staffed = await Inspection.filter(draw_id=draw.id, status="staffed").order_by("no").prefetch_related("entity")
        sure = next((i for i in staffed if i.entity.mobile and i.entity.risk_class in ("D", "E")), None)
        rest = [i for i in staffed if i is not sure]
        return ([sure] if sure else []) + rest[: ACTED_INSPECTIONS - (1 if sure else 0)]

    async def inspectors_act(self, draw) -> None:
        inspections = await self.acted(draw)
        team_of: dict[int, list] = {}
        for insp in inspections:
            team_of[insp.id] = await (
                Assignment.filter(inspection_id=insp.id).order_by("seat").prefetch_related("inspector")
            )
            for asg in team_of[insp.id]:
                if asg.inspector.cert_no not in self.users:
                    await self.bind(
                        Role.INSPECTOR, asg.inspector.cert_no, asg.inspector.name, cert_no=asg.inspector.cert_no
                    )
        await self.settle()
        self.say("demo_bound", count=len(self.users) - 1, channel=self.channel)
        # the first member of the second inspection recuses: a replacement is drawn
        recusing = team_of[inspections[1].id][0] if len(inspections) > 1 else None
        for insp in inspections:
            for asg in team_of[insp.id]:
                user = self.users[asg.inspector.cert_no]
                card = await self.card(user, asg.id)
                if card is None:
                    continue
                if recusing is not None and asg.id == recusing.id:
                    await self.recuse(user, card, asg)
                else:
                    await self.press(user, card, ASSIGNMENT.data("accept", asg.id))
        if recusing is not None:
            await self.replacement_accepts(recusing)
        accepted = await Assignment.filter(draw_id=draw.id, status=AssignmentStatus.ACCEPTED).count()
        self.say("demo_answered", accepted=accepted)
        return inspections

    async def card(self, user, assignment_id: int):
        """The card of an assignment in ``user``'s chat, once it has arrived.

        The dispatcher sends a chat one message a second (real time) and postpones the others
        for it to a second or so ahead of the demo's clock, which stands still between steps: an
        inspector on two of the acted teams, or a replacement with cards of other inspections
        queued before the new one, would not see the card until the next step (and when it was
        the scripted recusal's, the demo showed none). So while such a postponed message is
        waiting, the clock moves on a second at a time until the card is there."""
        return await self.arrived(user, ASSIGNMENT.data("accept", assignment_id))

    async def arrived(self, user, data: str):
        """The message of ``user``'s chat carrying the button ``data``, once it has arrived (see
        :meth:`card`: the clock moves on a second at a time while a paced message waits)."""
        for _ in range(60):
            card = next((m for m in self.tg.messages(user) if data in m.callback_data), None)
            if card is not None:
                return card
            paced = await Outbox.filter(
                status=OutboxStatus.PENDING,
                next_attempt_at__gt=self.clock.now(),
                next_attempt_at__lte=self.clock.now() + timedelta(seconds=5),
            ).exists()
            if not paced:
                return None
            self.clock.advance(timedelta(seconds=1))
            await self.settle()
        return None

    def with_button(self, user, data: str):
        """The newest message of this chat carrying the button ``data``."""
        return next((m for m in reversed(self.tg.messages(user)) if data in m.callback_data), None)

    async def recuse(self, user, card, asg) -> None:
        await self.press(user, card, ASSIGNMENT.data("recuse", asg.id))
        for data in (
            RECUSAL.data("type", asg.id, "former_employment"),
            RECUSAL.data("skip", asg.id),
            RECUSAL.data("confirm", asg.id),
        ):
            message = self.with_button(user, data)
            if message is None:
                self.say("demo_step_missing", step=data)
                return
            await self.press(user, message, data)
        self.say("demo_recused", name=asg.inspector.name, reply=self.last(user).text.splitlines()[0])

    async def replacement_accepts(self, recused) -> None:
        rec = await Recusal.get_or_none(assignment_id=recused.id).prefetch_related("replacement")
        if rec is None:
            return
        if rec.replacement is None:
            self.say("demo_no_replacement")
            return
        cert = rec.replacement.cert_no
        if cert not in self.users:
            await self.bind(Role.INSPECTOR, cert, rec.replacement.name, cert_no=cert)
            await self.settle()
        user = self.users[cert]
        new = await Assignment.get(inspection_id=recused.inspection_id, inspector_id=rec.replacement_id)
        card = await self.card(user, new.id)
        if card is not None:
            await self.press(user, card, ASSIGNMENT.data("accept", new.id))
        self.say("demo_replacement", name=rec.replacement.name)

    async def on_site(self, inspections) -> None:
        """Each team's lead checks in at the entity, records the findings and submits; the other
        member confirms. One finding is 不合格 with a note."""
        for k, insp in enumerate(inspections):
            team = await (
                Assignment.filter(inspection_id=insp.id, status=AssignmentStatus.ACCEPTED)
                .order_by("seat")
                .prefetch_related("inspector", "inspection__entity", "inspection__draw")
            )
            if len(team) < 2:
                continue
            lead, member = (self.users[a.inspector.cert_no] for a in team[:2])
            entity = team[0].inspection.entity
            before = await self.events()
            self.tg.send_command(lead, "checkin")
            await self.handled(before)
            if entity.lat is not None:
                before = await self.events()
                self.tg.share_location(lead, entity.lat + 0.0003, entity.lon + 0.0002)
                await self.handled(before)
            before = await self.events()
            self.tg.send_command(
                lead, "result", inspection_ref(team[0].inspection.draw.draw_ref, team[0].inspection.no)
            )
            await self.handled(before)
            if k == 0:
                await self.findings(lead, first="fail", note="后厨冷藏温度记录缺失，已责令整改")
            else:
                await self.findings(lead, first="pass")
            confirm = next(
                (
                    m
                    for m in reversed(self.tg.messages(member))
                    if any(d.startswith("fnd:confirm:") for d in m.callback_data)
                ),
                None,
            )
            if confirm is not None:
                await self.press(
                    member, confirm, next(d for d in confirm.callback_data if d.startswith("fnd:confirm:"))
                )
            self.say("demo_result", no=insp.no, entity=entity.name, lead=team[0].inspector.name)

    async def findings(self, user, *, first: str, note: str = "") -> None:
        """The findings conversation now open in ``user``'s chat, to its submit: the first item
        gets the verdict ``first`` ("pass" / "fail"), the others 合格; ``note`` is typed at the
        first note step, the other notes skipped."""
        first_done = False
        for _ in range(20):  # one verdict, then the note, per item; then submit
            msg = self.last(user)
            data = msg.callback_data if msg else []
            submit = next((d for d in data if d.startswith("fnd:submit:")), None)
            if submit:
                await self.press(user, msg, submit)
                return
            verdict = next((d for d in data if d.startswith("fnd:" + ("pass" if first_done else first))), None)
            skip = next((d for d in data if d.startswith("fnd:skip:")), None)
            if verdict:
                first_done = True
                await self.press(user, msg, verdict)
            elif skip and note:
                before = await self.events()
                self.tg.send_text(user, note)
                note = ""
                await self.handled(before)
            elif skip:
                await self.press(user, msg, skip)
            else:
                return

    async def surveys_answered(self) -> None:
        """Entities surveyed by SMS answer; the first complains (asked for a meal, fairness 1)."""
        await self.settle()
        rows = await Survey.all().order_by("id").prefetch_related("entity")
        complained = False
        for survey in rows:
            number = survey.entity.mobile
            if not number or not self.sms.phone(number).texts():
                continue
            reply = "是 否 5" if complained else "是 是 1 检查人员暗示请吃饭"
            complained = True
            await self.sms.reply(number, reply)
            await self.settle()
            self.say("demo_survey", entity=survey.entity.name, reply=reply)
        if not rows:
            self.say("demo_no_survey")

    async def reviewed(self) -> None:
        """After the visit (docs/results.md): the coordinator, on no team, approves each result
        (/approve); the firm gets its notice (SMS, PDF on its page) and a 不合格 result its
        rectification order."""
        coordinator = self.users["coordinator"]
        pending = Review.filter(status=ReviewStatus.PENDING).order_by("id").prefetch_related("inspection__draw")
        for row in await pending:
            before = await self.events()
            self.tg.send_command(
                coordinator, "approve", inspection_ref(row.inspection.draw.draw_ref, row.inspection.no)
            )
            await self.handled(before)
        await self.settle()
        for notice in await Notice.all().order_by("id").prefetch_related("inspection__entity"):
            entity = notice.inspection.entity
            url = f"{self.settings.public_url}/entities/{entity.uscc}/notice?code={notice.code}"
            self.say("demo_notice", entity=entity.name, notice=notice.code, url=url)
        for order in await Rectification.all().order_by("id").prefetch_related("inspection__entity"):
            self.say("demo_rectification", entity=order.inspection.entity.name, due_on=order.due_on.isoformat())

    async def reinspected(self) -> None:
        """The rectification order through to its re-inspection (docs/results.md "Follow-up"): the
        demo's clock moves to the deadline, where the scheduler's ``rectifications`` sweep assigns
        the re-inspection to the team lead; the lead presses 「开始复查」 and records it in the
        findings conversation (the item put right, with a note); the coordinator approves it and
        the order is decided, which the entity's public page and the credit export show as its
        follow-up (后续处理)."""
        order = await Rectification.filter(status=RectificationStatus.OPEN).order_by("id").first()
        if order is None:
            return
        await self.deliver_all()  # what is due now goes out now, not dated three weeks on
        due = datetime.combine(order.due_on, DEADLINE_TIME, tzinfo=self.settings.zone)
        # only the rectifications sweep: three weeks on, every sweep would also escalate the
        # ~270 assignments the demo's unbound inspectors never answered, one alert each to the
        # coordinator's chat, which the dispatcher sends a second apart (4.5 minutes more)
        await self.advance(due - self.clock.now(), sweep="rectifications")
        order = await Rectification.get(id=order.id).prefetch_related(
            "inspector", "inspection__entity", "inspection__draw"
        )
        insp = order.inspection
        ref = inspection_ref(insp.draw.draw_ref, insp.no)
        user = self.users.get(order.inspector.cert_no) if order.inspector else None
        button = FINDINGS.data("recheck", order.id)
        assigned = await self.arrived(user, button) if user is not None else None
        if assigned is None:
            self.say("demo_step_missing", step=button)
            return
        self.say(
            "demo_reinspection_assigned",
            entity=insp.entity.name,
            due_on=order.due_on.isoformat(),
            name=order.inspector.name,
        )
        await self.press(user, assigned, button)
        await self.findings(user, first="pass", note="冷藏柜温度记录已补齐，现场复查温度 4℃")
        again = await Result.get_or_none(reinspection_id=order.id)
        items = await Finding.filter(result_id=again.id).count() if again else 0
        self.say("demo_reinspected", name=order.inspector.name, items=items)
        before = await self.events()
        self.tg.send_command(self.users["coordinator"], "approve", ref)
        await self.handled(before)
        order = await Rectification.get(id=order.id)
        page = await public.entity_page(insp.entity.uscc, self.clock.now())
        row = next((r for r in page.inspections.rows if r.draw_ref == insp.draw.draw_ref), None)
        published = await Publication.get(inspection_id=insp.id)
        month = f"{published.published_at.astimezone(self.settings.zone):%Y-%m}"
        records = await credit.published_records(month, self.settings.zone)
        record = next((r for r in records if r["uscc"] == insp.entity_key), None)
        self.say(
            "demo_follow_up_decided",
            entity=insp.entity.name,
            outcome=order.status.value,
            page=row.follow_up if row else "",
            export=record["follow_up"] if record else "",
            url=f"{self.settings.public_url}/entities/{insp.entity.uscc}",
        )

    async def report(self) -> None:
        month = self.clock.now().astimezone(self.settings.zone).strftime("%Y-%m")
        monthly = await reports.monthly_report(
            month,
            None,
            self.clock.now(),
            data_dir=self.settings.data_dir,
            zone=self.settings.zone,
            locale=self.settings.locale,
        )
        sent_to = await reports.send_monthly_report(
            month, self.clock.now(), data_dir=self.settings.data_dir, zone=self.settings.zone
        )
        await self.settle()
        self.say(
            "demo_report",
            month=month,
            drawn=monthly.inspections.drawn,
            done=monthly.inspections.done,
            coordinators=sent_to,
            url=f"{self.settings.public_url}/reports/{month}",
        )

    async def done(self) -> None:
        sent = await Outbox.filter(status__in=[OutboxStatus.SENT, OutboxStatus.DELIVERED]).count()
        waiting = await Outbox.filter(status=OutboxStatus.NO_ADDRESS).count()
        queued = len(await self.queued())
        alerts = await Alert.all().count()
        self.say("demo_done", sent=sent, waiting=waiting, queued=queued, alerts=alerts, web=self.settings.public_url)


async def _phone_names(numbers: list[str]) -> dict[str, str]:
    """The simulators' page labels a phone with the name of the firm whose mobile it is."""
    return {e.mobile: e.name for e in await Entity.filter(mobile__in=numbers)}


def _toml(data: dict) -> str:
    """A plan dict back to TOML (strings, ints, bools, lists, one level of tables, and inline
    tables inside those: ``[survey] shares = {"D" = "1", "*" = "1/3"}``)."""

    def text(v) -> str:
        return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'

    def value(v) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int):
            return str(v)
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{" + ", ".join(f"{text(k)} = {value(x)}" for k, x in v.items()) + "}"
        return text(v)

    top = [f"{k} = {value(v)}" for k, v in data.items() if not isinstance(v, dict)]
    tables = [
        f"\n[{k}]\n" + "\n".join(f"{kk} = {value(vv)}" for kk, vv in v.items())
        for k, v in data.items()
        if isinstance(v, dict)
    ]
    return "\n".join(top) + "\n" + "\n".join(tables) + "\n"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
