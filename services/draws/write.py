"""Draw a firing once and for all, and write it: the draw, its inspections, its assignments and
one outbox row per assignment, in **one** transaction.

:func:`draw` gathers the inputs (services.draws.gather), runs the pure draw
(``domain.draw.run_draw``) and writes it; ``draw_ref`` is unique in the ``draw`` table, so a
second draw of a firing is refused by the database. ``dry_run`` only counts. :func:`draw_plan`
is the CLI's: the plan's pending firing, or — off schedule only — one announced now.

A draw is *on schedule* when its firing's commitment was public the plan's lead time before the
firing's time (:func:`on_schedule`). Any other draw — ad hoc, announced late, or a redraw of a
slot already drawn — is *off schedule*: it needs an :class:`OffSchedule` (a typed reason and a
second coordinator of the plan's department), is marked so on the draw (and in draw.json), goes
on the audit chain and alerts the plan's coordinators. Without it the draw is refused, saying
what exists. The write path is
benchmarked (benchmarks/bench_draw.py): rows are prepared before the transaction opens and
written in bulk.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from json.encoder import encode_basestring
from zoneinfo import ZoneInfo

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from core import db, drand
from core.clock import Clock
from core.clock import local_minute as _local
from domain import bundle
from domain import draw as engine
from domain.plans import ANNOUNCE_SLACK, PlanSpec, lead_time, parse_plan
from models.draws import AssignmentStatus, Draw, Firing, FiringSecret, FiringStatus, InspectionStatus
from models.messaging import RecipientKind
from models.plans import Plan
from services import audit, people
from services.alerts import raise_alert
from services.draws import fixed
from services.draws.announce import CLI_ACTOR, MAX_REASON, SYSTEM_ACTOR, announce, announced_record, pending_firing
from services.draws.beacon import coordinator_actor, resolve
from services.draws.common import DrawError, fetch_rows, fetch_tuples, find_plan, marks
from services.draws.gather import (
    Eligible,
    Gathered,
    Preview,
    draw_inputs,
    draw_warnings,
    gather,
    preview,
    preview_counts,
)
from services.draws.stored import blobs
from services.outbox import Message, enqueue_many
from services.plans import inspection_window, response_deadline

log = logging.getLogger(__name__)

ASSIGNMENT_TEMPLATE = "assignment.j2"
MAX_BEACON = 255
IN_CHUNK = 1000
WRITE_CACHE_KIB = 65_536  # SQLite's page cache while a draw writes (sqlite3's default: 2,000 KiB)


class _Phases:
    """Debug timing of a draw's phases (``-v`` shows them; the benchmark reads them)."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.last = time.perf_counter()

    def __call__(self, phase: str) -> None:
        now = time.perf_counter()
        log.debug("%s: %s %.3fs", self.what, phase, now - self.last)
        self.last = now


@asynccontextmanager
async def _write_cache() -> AsyncIterator[None]:
    """A larger SQLite page cache while a draw writes, the connection's own restored after.

    The indexes on inspections by entity and on assignments by inspector take their 160,000 and
    320,000 keys in random order; in the default 2 MiB cache SQLite writes their pages out to
    the WAL and reads them back many times over before the commit.
    """
    if db.dialect() != "sqlite":
        yield
        return
    client = db.conn()
    before = (await fetch_tuples("PRAGMA cache_size"))[0][0]
    await client.execute_query(f"PRAGMA cache_size=-{WRITE_CACHE_KIB}")
    try:
        yield
    finally:
        await client.execute_query(f"PRAGMA cache_size={int(before)}")


def _chunks(seq: Sequence, size: int = IN_CHUNK) -> Iterator[Sequence]:
    for i in range(0, len(seq), size):
        yield seq[i : i + size]


@dataclass(frozen=True)
class DrawResult:
    draw_ref: str
    plan_code: str
    commitment: str
    strata: Mapping[str, engine.StratumCount]
    pool: int
    inspectors: int
    inspections: int
    assignments: int
    unstaffable: int
    notes: tuple[str, ...]
    flight: bool
    inspections_digest: str
    reveal_at: datetime | None
    announced_now: bool = False
    warnings: tuple[dict, ...] = ()  # gather.draw_warnings
    off_schedule: Mapping | None = None  # as stored on the draw
    beacon: str = ""
    beacon_source: Mapping | None = None  # draw.json's, when the beacon was planned
    audit_head: tuple[int, str] | None = None  # the audit chain's (seq, hash) just after the draw


@dataclass(frozen=True)
class OffSchedule:
    """What an off-schedule draw needs: a typed reason and a second coordinator's confirmation.
    ``confirmed_by`` is a coordinator binding id; ``requested_by`` the actor asking ("cli", or
    "coordinator:<id>"); ``redraw`` the draw_ref of the slot's draw this one redoes, if any."""

    reason: str
    confirmed_by: int
    requested_by: str = CLI_ACTOR
    redraw: str | None = None


def on_schedule(firing: Firing) -> bool:
    """The firing's commitment was public at least the plan's lead time before its time (less
    ``ANNOUNCE_SLACK``: the scheduler's announcement may run that late)."""
    return firing.announced_at + lead_time(parse_plan(firing.params)) - ANNOUNCE_SLACK <= firing.fire_at


async def _confirmer(off: OffSchedule, plan_departments: Sequence[str]) -> str:
    """The confirming coordinator, checked: a live coordinator binding of one of the plan's
    departments, not the requester. Returns how the draw names them."""
    reason = off.reason.strip()
    if not reason:
        raise DrawError("reason_required")
    if len(reason) > MAX_REASON:
        raise DrawError("reason_too_long", limit=MAX_REASON)
    actor = await coordinator_actor(off.confirmed_by, plan_departments)
    if actor == off.requested_by:
        raise DrawError("confirmer_is_requester", confirmer=actor)
    return actor


def _drawn_error(code: str, existing: Draw, zone: ZoneInfo, **params) -> DrawError:
    return DrawError(code, draw_ref=existing.draw_ref, drawn_at=_local(existing.drawn_at, zone), **params)


async def _entity_details(ids: Sequence[int], connection) -> dict[int, tuple[str, str]]:
    out: dict[int, tuple[str, str]] = {}
    for chunk in _chunks(list(ids)):
        for eid, name, address in await fetch_rows(
            f"SELECT id, name, address FROM entity WHERE id IN ({marks(len(chunk))})", chunk, connection
        ):
            out[eid] = (name, address)
    return out


def task_message_key(assignment_id: int) -> str:
    """The dedupe key of an assignment's task message (its outbox row)."""
    return f"asg:{assignment_id}:sent"


def task_message_key_sql(column: str) -> str:
    """:func:`task_message_key` in SQL, of an assignment id ``column``: joins the task message's
    outbox row (``ON o.dedupe_key = ...``, the unique index finds it), on SQLite and PostgreSQL."""
    return f"'asg:' || CAST({column} AS TEXT) || ':sent'"


def assignment_message(assignment_id: int, inspector_id: int, context: dict, locale: str) -> Message:
    """The outbox row for one assignment; adds its id and its buttons (accept / recuse) to
    ``context``, a dict made for this message."""
    context["assignment"] = assignment_id
    context["keyboard"] = ["assignment_offer", assignment_id]
    return Message(
        dedupe_key=task_message_key(assignment_id),
        recipient_kind=RecipientKind.INSPECTOR,
        recipient_id=inspector_id,
        template=ASSIGNMENT_TEMPLATE,
        context=context,
        locale=locale,
    )


class AssignmentContexts:
    """The JSON text of a draw's assignment contexts, put together from pieces encoded once.

    Every message of a draw shares the base context, and the seats of one inspection share its
    team and entity; encoding each message's dict whole (≈ 570 bytes, 300,000 times) was most
    of a city draw's outbox write. :meth:`message` gives, character for character, the text
    ``bot.db.encode`` makes of the dict :func:`assignment_message` fills in the same order
    (``{**base, "no", "seat", "team"[, "entity"], "assignment", "keyboard"}``), so the stored
    rows and what the dispatcher renders from them do not change
    (tests/services/test_draws_bulk_writes.py).
    """

    _MARK = 9_876_543_210_123_456_789  # stands for the assignment id in the encoded tail

    def __init__(self, base: dict) -> None:
        self._head = db.encode(base)[:-1] + ("," if base else "")
        tail = db.encode({"assignment": self._MARK, "keyboard": ["assignment_offer", self._MARK]})[1:]
        self._tail = tail.split(str(self._MARK))

    def inspection(self, no: int, team: Sequence[str], entity: tuple[str, str, str] | None) -> tuple[str, str]:
        """What an inspection's seats share: the text before the seat number, and after it the
        team and (unless a flight) the entity ``(name, address, uscc)``. Strings go through
        json's own ``encode_basestring``, as ``bot.db.encode`` writes them."""
        string = encode_basestring
        after = f',"team":[{",".join(map(string, team))}]'
        if entity is not None:
            name, address, uscc = entity
            after += f',"entity":{{"name":{string(name)},"address":{string(address)},"uscc":{string(uscc)}}}'
        return f'{self._head}"no":{no},"seat":', after + ","

    def message(self, inspection: tuple[str, str], seat: int, assignment_id: int) -> str:
        before, after = inspection
        return f"{before}{seat}{after}{str(assignment_id).join(self._tail)}"


async def _load_firing(draw_ref: str) -> Firing:
    firing = await Firing.get_or_none(draw_ref=draw_ref).prefetch_related("plan")
    if firing is None:
        raise DrawError("draw_ref_not_found", draw_ref=draw_ref)
    return firing


async def draw(
    draw_ref: str,
    beacon: str = "",
    *,
    dry_run: bool = False,
    clock: Clock,
    zone: ZoneInfo,
    locale: str = "zh-CN",
    off_schedule: OffSchedule | None = None,
    redraw_of: str | None = None,
    beacon_fetch: drand.Fetch | None = None,
    actor: str = SYSTEM_ACTOR,
    announced_by: str | None = None,
) -> DrawResult | Preview:
    """Draw the firing ``draw_ref`` once and for all (or, with ``dry_run``, only count). A
    firing not announced the lead time ahead is drawn only with ``off_schedule``. A firing
    whose beacon was planned at announce time takes that beacon (``beacon_fetch`` gets a drand
    round) and no other: refused as ``beacon_unavailable`` while it is missing. The draw goes
    on the audit chain as ``actor``'s (``draw.drawn``) and its head is checkpointed;
    ``announced_by``: the firing was announced in this transaction with its audit record deferred
    (:func:`draw_plan`), appended here first."""
    firing = await _load_firing(draw_ref)
    if len(beacon) > MAX_BEACON:
        raise DrawError("beacon_too_long", limit=MAX_BEACON)
    if firing.status is FiringStatus.CANCELLED:
        raise DrawError("firing_cancelled", draw_ref=draw_ref)
    if firing.status is FiringStatus.WITHDRAWN:
        raise DrawError("firing_withdrawn", draw_ref=draw_ref, reason=firing.withdrawn_reason)
    existing = await Draw.get_or_none(draw_ref=draw_ref)
    if existing is not None:
        raise _drawn_error("already_drawn", existing, zone)
    if firing.status is FiringStatus.DRAWN:
        raise DrawError("already_drawn", draw_ref=draw_ref, drawn_at="")
    now = clock.now()
    if now < firing.fire_at:
        raise DrawError("not_due", draw_ref=draw_ref, fire_at=_local(firing.fire_at, zone))
    spec = parse_plan(firing.params)
    source = None
    if firing.beacon_plan and not dry_run:
        if beacon:
            raise DrawError("beacon_planned", draw_ref=draw_ref)
        beacon, source = await resolve(firing, beacon_fetch)
    marked = None
    if not dry_run and (off_schedule is not None or not on_schedule(firing)):
        if off_schedule is None:
            raise DrawError(
                "off_schedule_required",
                draw_ref=draw_ref,
                announced_at=_local(firing.announced_at, zone),
                fire_at=_local(firing.fire_at, zone),
                lead_days=lead_time(spec).days,
            )
        marked = {
            "reason": off_schedule.reason.strip(),
            "confirmed_by": await _confirmer(off_schedule, firing.plan.departments),
            "requested_by": off_schedule.requested_by,
            "redraw_of": redraw_of,
        }
    # A million rows become a few million small objects, none of them cyclic: collecting
    # garbage while they are built would only rescan them, over and over.
    with engine.gc_paused():
        phase = _Phases(draw_ref)
        # v2: the pool and its classes as fixed at the announcement (services.draws.fixed)
        g = await gather(spec, now, zone, await fixed.fixed_pool(firing))
        phase("inputs read")
        if dry_run:
            return await preview_counts(firing.plan.code, draw_ref, spec, g)
        secret_row = await FiringSecret.get(firing_id=firing.id)
        salt_key = bytes(secret_row.salt_key) if secret_row.salt_key is not None else None
        announced = bytes.fromhex(firing.pool_digest) if firing.pool_digest and salt_key is not None else None
        inputs = draw_inputs(draw_ref, bytes(secret_row.secret), beacon, spec, g, salt_key, announced)
        outcome = await asyncio.to_thread(engine.run_draw, inputs)
        del inputs
        phase("drawn")
        actor = off_schedule.requested_by if off_schedule is not None else actor
        return await _write_draw(
            firing, spec, g, outcome, beacon, now, zone, locale, marked, source, actor=actor, announced_by=announced_by
        )


async def draw_plan(
    plan_code: str,
    beacon: str = "",
    *,
    dry_run: bool = False,
    clock: Clock,
    zone: ZoneInfo,
    locale: str = "zh-CN",
    off_schedule: OffSchedule | None = None,
    beacon_fetch: drand.Fetch | None = None,
    actor: str = CLI_ACTOR,
) -> DrawResult | Preview:
    """The CLI's ``draw PLAN``: draw the plan's pending firing. With none pending, a draw is
    off schedule: refused without ``off_schedule`` (saying which draw exists — also what a
    re-run after a crash that had committed finds), else a firing is announced now and drawn;
    when the plan already has a draw today, ``off_schedule.redraw`` must name it (a redraw).

    One transaction with the plan's row locked: of two coordinators redrawing the same slot at
    once exactly one commits (the other then finds the slot's draw changed; ``redraw_of`` is
    also unique in the table)."""
    if dry_run:
        return await preview(plan_code, clock=clock, zone=zone)
    plan = await find_plan(plan_code)
    async with in_transaction():
        await Plan.filter(id=plan.id).select_for_update().first()
        firing = await pending_firing(plan.code)
        if firing is not None:
            if off_schedule is not None and off_schedule.redraw:
                raise DrawError("redraw_with_pending", plan=plan.code, pending=firing.draw_ref)
            result = await draw(
                firing.draw_ref,
                beacon,
                clock=clock,
                zone=zone,
                locale=locale,
                off_schedule=off_schedule,
                beacon_fetch=beacon_fetch,
                actor=actor,
            )
            assert isinstance(result, DrawResult)
            return result
        now = clock.now()
        latest = await Draw.filter(plan_id=plan.id).order_by("-drawn_at", "-id").first()
        today = now.astimezone(zone).date()
        same_slot = latest if latest is not None and latest.drawn_at.astimezone(zone).date() == today else None
        if off_schedule is None:
            if same_slot is not None:
                raise _drawn_error("slot_drawn", same_slot, zone, plan=plan.code)
            if latest is not None:
                raise _drawn_error("not_announced", latest, zone, plan=plan.code)
            raise DrawError("not_announced", plan=plan.code, draw_ref="", drawn_at="")
        if same_slot is not None and off_schedule.redraw != same_slot.draw_ref:
            raise _drawn_error("slot_drawn", same_slot, zone, plan=plan.code, named=off_schedule.redraw or "")
        if same_slot is None and off_schedule.redraw:
            raise DrawError("nothing_to_redraw", plan=plan.code, named=off_schedule.redraw)
        await _confirmer(off_schedule, plan.departments)  # before announcing anything
        # its audit record is appended with the draw's, at the end of the write: an append holds
        # PostgreSQL's audit lock until commit, and the draw in between may take a while
        announced = await announce(
            plan.code, None, clock=clock, zone=zone, actor=off_schedule.requested_by, defer_audit=True
        )
        result = await draw(
            announced.draw_ref,
            beacon,
            clock=clock,
            zone=zone,
            locale=locale,
            off_schedule=off_schedule,
            redraw_of=same_slot.draw_ref if same_slot else None,
            announced_by=off_schedule.requested_by,
        )
    assert isinstance(result, DrawResult)
    return DrawResult(**{**result.__dict__, "announced_now": True})


def _prepare_rows(g: Gathered, outcome: engine.DrawOutcome) -> list[tuple]:
    """The inspection rows (without draw id), in inspection order, as the driver takes them."""
    ids = g.entity_ids([i.entity for i in outcome.inspections])
    staffed, unstaffable = InspectionStatus.STAFFED.value, InspectionStatus.UNSTAFFABLE.value
    return [
        (
            i.no,
            eid,
            i.entity,
            i.division,
            i.stratum,
            f"{i.rank:016x}",
            unstaffable if i.unstaffable else staffed,
            i.unstaffable or "",
        )
        for i, eid in zip(outcome.inspections, ids)
    ]


def _prepare_writes(spec: PlanSpec, g: Gathered, outcome: engine.DrawOutcome) -> tuple[list, str, list]:
    """Inspection rows, the inspections digest, and the stored inputs: all computed before the
    transaction opens."""
    confidential = outcome.protocol == engine.PROTOCOL_V2
    digest = bundle.inspections_digest(outcome.inspections, confidential)
    return _prepare_rows(g, outcome), digest, blobs(spec, g, outcome)


async def _write_draw(
    firing: Firing,
    spec: PlanSpec,
    g: Gathered,
    outcome: engine.DrawOutcome,
    beacon: str,
    now: datetime,
    zone: ZoneInfo,
    locale: str,
    off_schedule: dict | None = None,
    beacon_source: dict | None = None,
    actor: str = SYSTEM_ACTOR,
    announced_by: str | None = None,
) -> DrawResult:
    phase = _Phases(firing.draw_ref)
    window_start, window_end = inspection_window(now, spec, zone)
    deadline = response_deadline(now, spec, zone)
    # CPU work in a thread, before the transaction: a CPU-bound thread running *during* the
    # writes would make SQLite's thread wait for the GIL after every row it steps.
    inspection_rows, digest, blobs = await asyncio.to_thread(_prepare_writes, spec, g, outcome)
    unstaffable = sum(1 for i in outcome.inspections if i.unstaffable)
    strata = {s: {"pool": c.pool, "ratio": c.ratio, "drawn": c.drawn} for s, c in outcome.strata.items()}
    if outcome.protocol == engine.PROTOCOL_V2:  # the published cut of each stratum (docs §15.5)
        for label, entry in strata.items():
            entry["cut"] = outcome.cuts.get(label)
    phase("rows, digest and stored inputs prepared")
    try:
        async with _write_cache(), in_transaction() as conn:
            draw_row = await Draw.create(
                draw_ref=firing.draw_ref,
                firing_id=firing.id,
                plan_id=firing.plan_id,
                drawn_at=now,
                beacon=beacon,
                beacon_source=beacon_source,
                pool_digest=outcome.pool_digest.hex(),
                inspectors_digest=outcome.inspectors_digest.hex(),
                inspections_digest=digest,
                strata=strata,
                notes=list(outcome.notes),
                flight=spec.flight,
                window_start=window_start,
                window_end=window_end,
                reveal_at=window_start if spec.flight else None,
                pool_size=len(g.pool_keys),
                inspector_count=len(g.inspectors),
                inspection_count=len(outcome.inspections),
                unstaffable_count=unstaffable,
                off_schedule=off_schedule,
                redraw_of=off_schedule["redraw_of"] if off_schedule else None,
                using_db=conn,
            )
            n = (
                await Firing.filter(id=firing.id, status=FiringStatus.ANNOUNCED)
                .using_db(conn)
                .update(status=FiringStatus.DRAWN)
            )
            if n != 1:
                raise DrawError("already_drawn", draw_ref=firing.draw_ref)
            await FiringSecret.filter(firing_id=firing.id).using_db(conn).update(seed=outcome.seed)
            await db.bulk_insert(
                "draw_input",
                ("draw_id", "name", "data"),
                [(draw_row.id, name, data) for name, data in blobs],
                connection=conn,
            )
            await db.bulk_insert(
                "inspection",
                (
                    "draw_id",
                    "no",
                    "entity_id",
                    "entity_key",
                    "division",
                    "stratum",
                    "rank",
                    "status",
                    "unstaffable_reason",
                ),
                ((draw_row.id, *row) for row in inspection_rows),
                connection=conn,
                encoded=True,
            )
            phase("inspections written")
            written = await _write_assignments(draw_row.id, outcome, g, deadline, now, conn)
            phase("assignments written")
            await _enqueue_assignments(
                draw_row, spec, g, outcome, inspection_rows, written, deadline, zone, locale, now, conn
            )
            phase("outbox written")
            if announced_by is not None:
                await audit.append(*announced_record(firing, firing.plan.code, announced_by), now, conn)
            if off_schedule is not None:
                await _mark_off_schedule(firing, draw_row, off_schedule, now, zone, conn)
            anchor = await _audit_draw(firing, draw_row, actor, off_schedule is not None, now, conn)
    except IntegrityError as exc:
        existing = await Draw.get_or_none(draw_ref=firing.draw_ref)
        if existing is not None:
            raise _drawn_error("already_drawn", existing, zone) from None
        redone = off_schedule and off_schedule["redraw_of"]
        if redone and (other := await Draw.get_or_none(redraw_of=redone)) is not None:
            raise _drawn_error("already_redrawn", other, zone, redraw_of=redone) from None
        raise exc
    phase("committed")
    log.info(
        "drew %s: %d inspections, %d assignments, %d unstaffable",
        firing.draw_ref,
        len(outcome.inspections),
        len(written),
        unstaffable,
    )
    return DrawResult(
        draw_ref=firing.draw_ref,
        plan_code=firing.plan.code,
        commitment=firing.commitment,
        strata=outcome.strata,
        pool=len(g.pool_keys),
        inspectors=len(g.inspectors),
        inspections=len(outcome.inspections),
        assignments=len(written),
        unstaffable=unstaffable,
        notes=tuple(outcome.notes),
        flight=spec.flight,
        inspections_digest=digest,
        reveal_at=window_start if spec.flight else None,
        warnings=draw_warnings(spec, len(g.inspectors), outcome.inspections),
        off_schedule=off_schedule,
        beacon=beacon,
        beacon_source=beacon_source,
        audit_head=(anchor.seq, anchor.head),
    )


async def _audit_draw(firing: Firing, draw_row: Draw, actor: str, off: bool, now: datetime, conn) -> audit.Checkpoint:
    """``draw.drawn`` on the audit chain, then the chain's head checkpointed and kept on the draw
    (it goes into draw.json as ``audit_head``)."""
    await audit.append(
        actor,
        "draw.drawn",
        f"draw:{draw_row.draw_ref}",
        {
            "plan": firing.plan.code,
            "commitment": firing.commitment,
            "beacon": draw_row.beacon,
            "inspections_digest": draw_row.inspections_digest,
            "inspections": draw_row.inspection_count,
            "unstaffable": draw_row.unstaffable_count,
            "off_schedule": off,
        },
        now,
        conn,
    )
    anchor = await audit.checkpoint(f"draw:{draw_row.draw_ref}", now, conn)
    await Draw.filter(id=draw_row.id).using_db(conn).update(audit_seq=anchor.seq, audit_head=anchor.head)
    return anchor


async def _mark_off_schedule(firing: Firing, draw_row: Draw, off: dict, now: datetime, zone: ZoneInfo, conn) -> None:
    """An off-schedule draw on the audit chain, and an alert to the plan's coordinators."""
    await audit.append(
        off["requested_by"],
        "draw.off_schedule",
        f"draw:{draw_row.draw_ref}",
        {"plan": firing.plan.code, **off, "announced_at": firing.announced_at.isoformat()},
        now,
        conn,
    )
    names = await people.whos([off["requested_by"], off["confirmed_by"]], conn)
    await raise_alert(
        f"off_schedule:{draw_row.draw_ref}",
        "off_schedule_draw.j2",
        {
            "plan": firing.plan.code,
            "draw_ref": draw_row.draw_ref,
            "drawn_at": _local(now, zone),
            "reason": off["reason"],
            "requested_by": names[off["requested_by"]],
            "confirmed_by": names[off["confirmed_by"]],
            "redraw_of": off["redraw_of"] or "",
        },
        set(firing.plan.departments),
        now,
        connection=conn,
    )


async def _written_ids(table: str, draw_id: int, n: int, conn) -> list[int]:
    """The ids of the ``n`` rows of ``table`` just written for the draw, in the order written.

    Ids only grow (SQLite's AUTOINCREMENT, a PostgreSQL sequence) and nothing else writes rows
    of a draw not yet committed, so id order is write order; usually they are one unbroken run
    and need not be read at all.
    """
    low, high, count = (
        await fetch_tuples(f'SELECT MIN(id), MAX(id), COUNT(*) FROM "{table}" WHERE draw_id = ?', [draw_id], conn)
    )[0]
    if count != n:
        raise RuntimeError(f"{table}: {count} rows of draw {draw_id}, {n} written")
    if n and high - low + 1 == n:
        return list(range(low, high + 1))
    return [
        r[0] for r in await fetch_tuples(f'SELECT id FROM "{table}" WHERE draw_id = ? ORDER BY id', [draw_id], conn)
    ]


async def _write_assignments(
    draw_id: int, outcome: engine.DrawOutcome, g: Gathered, deadline: datetime, now: datetime, conn
) -> list[int]:
    """Write the assignments, inspection by inspection and seat by seat; return their ids in
    that order."""
    inspection_ids = await _written_ids("inspection", draw_id, len(outcome.inspections), conn)
    sent, due, at, eligible = AssignmentStatus.SENT.value, db.timestamp(deadline), db.timestamp(now), g.eligible
    rows = [
        (draw_id, inspection_id, eligible[key].id, seat, 0, sent, due, at)
        for insp, inspection_id in zip(outcome.inspections, inspection_ids)
        for seat, key in enumerate(insp.team, start=1)
    ]
    await db.bulk_insert(
        "assignment",
        ("draw_id", "inspection_id", "inspector_id", "seat", "ordinal", "status", "deadline", "created_at"),
        rows,
        connection=conn,
        encoded=True,
    )
    return await _written_ids("assignment", draw_id, len(rows), conn)


def base_context(draw_row: Draw, spec: PlanSpec, items: list[str], deadline: datetime, zone: ZoneInfo) -> dict:
    return {
        "draw_ref": draw_row.draw_ref,
        "plan": {"code": spec.code, "name": spec.name},
        "items": items,
        "flight": spec.flight,
        "window": {"start": _local(draw_row.window_start, zone), "end": _local(draw_row.window_end, zone)},
        "deadline": _local(deadline, zone),
    }


async def _enqueue_assignments(
    draw_row: Draw,
    spec: PlanSpec,
    g: Gathered,
    outcome: engine.DrawOutcome,
    inspection_rows: list[tuple],
    assignment_ids: list[int],
    deadline: datetime,
    zone: ZoneInfo,
    locale: str,
    now: datetime,
    conn,
) -> None:
    """One outbox row per assignment (``assignment_ids`` in inspection and seat order). A flight
    message names no entity: the team learns the target only at the reveal."""
    base = base_context(draw_row, spec, g.item_names, deadline, zone)
    staffed = [(i, row[1]) for i, row in zip(outcome.inspections, inspection_rows) if i.team]
    details = None
    if spec.flight:
        base["reveal_at"] = base["window"]["start"]
    else:
        details = await _entity_details([entity_id for _, entity_id in staffed], conn)
    messages = _assignment_messages(AssignmentContexts(base), staffed, g.eligible, details, assignment_ids)
    await enqueue_many(
        messages,
        now,
        recipient_kind=RecipientKind.INSPECTOR,
        template=ASSIGNMENT_TEMPLATE,
        locale=locale,
        connection=conn,
    )


def _assignment_messages(
    contexts: AssignmentContexts,
    staffed: list[tuple[engine.Inspection, int]],
    eligible: Mapping[str, Eligible],
    details: Mapping[int, tuple[str, str]] | None,
    assignment_ids: list[int],
) -> Iterator[tuple[str, int, str]]:
    """``(dedupe key, inspector id, context JSON)`` of each assignment message, made as the
    outbox write takes them: 300,000 contexts need not coexist."""
    ids = iter(assignment_ids)
    for inspection, entity_id in staffed:
        members = [eligible[key] for key in inspection.team]
        entity = None if details is None else (*details[entity_id], inspection.entity)
        shared = contexts.inspection(inspection.no, [m.name for m in members], entity)
        for seat, member in enumerate(members, start=1):
            assignment_id = next(ids)
            yield task_message_key(assignment_id), member.id, contexts.message(shared, seat, assignment_id)
