"""Announce, draw, export, recuse: the verifiable double-random draw against the database.

Use cases, one transaction each:

- :func:`announce` — a firing of a plan: a fresh 32-byte secret (OS CSPRNG), kept in its own
  table, and its public commitment ``hex(SHA-256(secret))``.
- :func:`draw` — build the pool and the inspector list as plain tuples with raw SQL (a Qingdao
  pool is a million rows: no ORM objects), run the pure draw (``domain.draw.run_draw``), then
  write the draw, its inspections, its assignments and one outbox row per assignment in **one**
  transaction. ``draw_ref`` is unique in the ``draw`` table, so a second draw of a firing is
  refused by the database. ``dry_run`` only counts.
- :func:`export` — the public bundle (``draw.json``, ``pool.tsv``, ``inspectors.tsv``) from the
  inputs stored at draw time; a flight draw stays sealed (digest only) until its reveal.
- :func:`recuse` — an inspector's recusal: logged, a standing conflict stored, the replacement
  drawn with ``domain.draw.replacement`` and sent, or the inspection marked unstaffable.
"""

from __future__ import annotations

import asyncio
import bisect
import json
import logging
import secrets
import time
import zlib
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from itertools import islice
from json.encoder import encode_basestring
from operator import lt
from pathlib import Path
from zoneinfo import ZoneInfo

from tortoise.exceptions import IntegrityError
from tortoise.expressions import F
from tortoise.transactions import in_transaction

from core import db
from core.clock import Clock
from core.clock import local_minute as _local
from domain import bundle
from domain import draw as core
from domain.errors import ServiceError
from domain.plans import PlanSpec, parse_plan
from domain.sealing import draw_is_sealed
from models.directory import Conflict, ConflictSource, ConflictType, Entity
from models.draws import (
    HOLDING_SEAT,
    Assignment,
    AssignmentStatus,
    Draw,
    DrawInput,
    Firing,
    FiringSecret,
    FiringStatus,
    Inspection,
    InspectionStatus,
    Recusal,
)
from models.messaging import RecipientKind
from services.outbox import Message, enqueue, enqueue_many
from services.plans import PlanNotFound, get_plan, inspection_window, response_deadline, spec_of

log = logging.getLogger(__name__)

ASSIGNMENT_TEMPLATE = "assignment.j2"
COUNTED_STATUSES = tuple(s.value for s in HOLDING_SEAT)  # an assignment that "inspected" its entity
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


class DrawError(ServiceError):
    """A use case refused; ``code`` names the reason (``draw_error`` in ``texts/draws.j2``)."""


# --- small SQL helpers ---------------------------------------------------------------------------


def _marks(n: int) -> str:
    return ", ".join("?" * n)


async def _rows(sql: str, params: Sequence = (), connection=None) -> list:
    client = connection or db.conn()
    return list((await client.execute_query(db.sql(sql, connection=client), list(params)))[1])


async def _tuples(sql: str, params: Sequence = (), connection=None) -> list:
    """Like :func:`_rows` for reads of a million rows: on SQLite plain tuples, not the
    ``sqlite3.Row`` Tortoise's connection makes of each row (asyncpg's records index alike)."""
    client = connection or db.conn()
    if db.dialect() == "postgres":
        return await _rows(sql, params, connection)
    async with client.acquire_connection() as raw:
        cursor = await raw.cursor()
        cursor.row_factory = None
        try:
            await cursor.execute(sql, list(params))
            return await cursor.fetchall()
        finally:
            await cursor.close()


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
    before = (await _tuples("PRAGMA cache_size"))[0][0]
    await client.execute_query(f"PRAGMA cache_size=-{WRITE_CACHE_KIB}")
    try:
        yield
    finally:
        await client.execute_query(f"PRAGMA cache_size={int(before)}")


def _chunks(seq: Sequence, size: int = IN_CHUNK) -> Iterator[Sequence]:
    for i in range(0, len(seq), size):
        yield seq[i : i + size]


# --- announce -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Announced:
    draw_ref: str
    plan_code: str
    fire_at: datetime
    commitment: str


async def announce(plan_code: str, fire_at: datetime | None, *, clock: Clock, zone: ZoneInfo) -> Announced:
    """Announce a firing of a plan: generate its secret and publish the commitment.

    The draw_ref is ``<plan code>/<local date of fire_at>`` (``.2``, ``.3``… when that day
    already has one); it is unique for ever.
    """
    plan = await _plan(plan_code)
    spec = spec_of(plan)
    now = clock.now()
    fire_at = fire_at or now
    day = fire_at.astimezone(zone).date().isoformat()
    secret = secrets.token_bytes(32)
    commitment = core.commitment(secret)
    for n in range(1, 1000):
        draw_ref = f"{plan.code}/{day}" if n == 1 else f"{plan.code}/{day}.{n}"
        if await Firing.filter(draw_ref=draw_ref).exists():
            continue
        try:
            async with in_transaction() as conn:
                firing = await Firing.create(
                    draw_ref=draw_ref,
                    plan=plan,
                    fire_at=fire_at,
                    commitment=commitment,
                    params=spec.to_dict(),
                    status=FiringStatus.ANNOUNCED,
                    announced_at=now,
                    using_db=conn,
                )
                await FiringSecret.create(firing=firing, secret=secret, using_db=conn)
        except IntegrityError:  # announced concurrently under the same name: take the next
            continue
        return Announced(draw_ref, plan.code, fire_at, commitment)
    raise DrawError("no_free_ref", plan=plan.code, day=day)


async def _plan(code: str):
    try:
        return await get_plan(code)
    except PlanNotFound:
        raise DrawError("plan_not_found", plan=code) from None


async def pending_firing(plan_code: str) -> Firing | None:
    """The plan's earliest announced, not yet drawn firing."""
    plan = await _plan(plan_code)
    return await Firing.filter(plan=plan, status=FiringStatus.ANNOUNCED).order_by("fire_at", "id").first()


async def firings(plan_code: str) -> list[Firing]:
    plan = await _plan(plan_code)
    return await Firing.filter(plan=plan).order_by("fire_at", "id")


# --- gathering the inputs -----------------------------------------------------------------------


class SortedLookup(Mapping[str, str]):
    """A read-only mapping over two parallel lists, the keys sorted: a million-entry lookup
    without building a dict (binary search)."""

    def __init__(self, keys: Sequence[str], values: Sequence[str]) -> None:
        self._keys = keys
        self._values = values

    def index(self, key: str) -> int:
        i = bisect.bisect_left(self._keys, key)
        if i == len(self._keys) or self._keys[i] != key:
            raise KeyError(key)
        return i

    def __getitem__(self, key: str) -> str:
        return self._values[self.index(key)]

    def get(self, key: str, default=None):
        """As ``Mapping.get``, without its detour through ``__getitem__`` and ``KeyError``
        (``run_draw`` asks once per drawn entity)."""
        i = bisect.bisect_left(self._keys, key)
        if i != len(self._keys) and self._keys[i] == key:
            return self._values[i]
        return default

    def __iter__(self):
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)


@dataclass
class Eligible:
    """One eligible inspector as the service needs it beside the published line."""

    id: int
    key: str
    name: str
    department: str


@dataclass
class Gathered:
    """Everything read from the directory for one draw, as plain data."""

    pool_keys: list[str]
    pool_strata: list[str]
    pool_ids: list[int]
    pool_divisions: list[str]
    inspectors: list[core.InspectorLine]
    units: dict[str, core.UnitInfo]
    eligible: dict[str, Eligible]  # by inspector key
    conflicts: frozenset[tuple[str, str]]
    recent: frozenset[tuple[str, str]]
    item_names: list[str]
    quals_by_department: dict[str, tuple[str, ...]]  # what a member from that department must hold

    def entity_ids(self, keys: Sequence[str]) -> list[int]:
        """Database ids of pool entities by key (binary search: the keys are sorted)."""
        pool_keys, pool_ids, find = self.pool_keys, self.pool_ids, bisect.bisect_left
        return [pool_ids[find(pool_keys, k)] for k in keys]


async def _departments(spec: PlanSpec) -> dict[str, int]:
    rows = await _rows(
        f"SELECT code, id FROM department WHERE code IN ({_marks(len(spec.departments))})", spec.departments
    )
    found = {r[0]: r[1] for r in rows}
    for code in spec.departments:
        if code not in found:
            raise DrawError("unknown_department", department=code)
    return found


async def _required_qualifications(
    spec: PlanSpec, dept_ids: Mapping[str, int]
) -> tuple[dict[int, set[str]], list[str]]:
    """Per department id, the qualification codes its inspectors need for the plan's items."""
    rows = await _rows(
        f"SELECT code, name, department_id, qualifications FROM item WHERE code IN ({_marks(len(spec.items))})",
        spec.items,
    )
    by_code = {r[0]: r for r in rows}
    required: dict[int, set[str]] = {i: set() for i in dept_ids.values()}
    names = []
    for code in spec.items:
        if code not in by_code:
            raise DrawError("unknown_item", item=code)
        _, name, dept_id, quals = by_code[code]
        names.append(name)
        required.setdefault(dept_id, set()).update(db.decoded(quals, []))
    return required, names


async def _pool(spec: PlanSpec, dept_ids: Sequence[int], now: datetime) -> tuple[list, list, list, list]:
    """Active entities matching the plan's targets, minus those a plan department inspected
    within ``rotation.entity_days`` (unless of an exempt class); sorted by key (byte order)."""
    where = ["status = 'active'"]
    params: list = []
    t = spec.targets
    if t.kinds:
        where.append(f"kind IN ({_marks(len(t.kinds))})")
        params += t.kinds
    if t.divisions:
        where.append("(" + " OR ".join("division_code LIKE ?" for _ in t.divisions) + ")")
        params += [f"{d}%" for d in t.divisions]
    if t.industries:
        where.append(f"industry IN ({_marks(len(t.industries))})")
        params += t.industries
    if spec.rotation.entity_days > 0:
        exempt = spec.rotation.exempt_classes
        skip = (
            "id NOT IN (SELECT i.entity_id FROM inspection i JOIN draw d ON d.id = i.draw_id "
            "JOIN assignment a ON a.inspection_id = i.id JOIN inspector p ON p.id = a.inspector_id "
            f"WHERE d.drawn_at >= ? AND p.department_id IN ({_marks(len(dept_ids))}) "
            f"AND a.status IN ({_marks(len(COUNTED_STATUSES))}))"
        )
        skip_params = [now - timedelta(days=spec.rotation.entity_days), *dept_ids, *COUNTED_STATUSES]
        if exempt:
            where.append(f"(risk_class IN ({_marks(len(exempt))}) OR {skip})")
            params += [*exempt, *skip_params]
        else:
            where.append(skip)
            params += skip_params
    order = 'uscc COLLATE "C"' if db.dialect() == "postgres" else "uscc"
    rows = await _tuples(
        f"SELECT uscc, risk_class, id, division_code FROM entity WHERE {' AND '.join(where)} ORDER BY {order}", params
    )
    keys, strata, ids, divisions = ([r[i] for r in rows] for i in range(4))
    del rows
    if not all(map(lt, keys, islice(keys, 1, None))):  # the database's order must be byte order
        order_ix = sorted(range(len(keys)), key=keys.__getitem__)
        keys, strata, ids, divisions = ([col[i] for i in order_ix] for col in (keys, strata, ids, divisions))
    return keys, strata, ids, divisions


async def _inspectors(
    spec: PlanSpec, dept_ids: Mapping[str, int], required: Mapping[int, set[str]], today: date
) -> tuple[list[core.InspectorLine], dict[str, core.UnitInfo], dict[str, Eligible]]:
    """Active inspectors of the plan's departments, certificate valid on ``today`` (no expiry
    recorded = valid), holding every qualification their department's items require."""
    ids = list(dept_ids.values())
    rows = await _rows(
        "SELECT p.id, p.cert_no, p.name, p.unit_id, p.qualifications, p.department_id, u.jurisdiction, d.code "
        "FROM inspector p JOIN unit u ON u.id = p.unit_id JOIN department d ON d.id = p.department_id "
        f"WHERE p.status = 'active' AND (p.cert_expiry IS NULL OR p.cert_expiry >= ?) "
        f"AND p.department_id IN ({_marks(len(ids))})",
        [today, *ids],
    )
    lines: list[core.InspectorLine] = []
    units: dict[str, core.UnitInfo] = {}
    eligible: dict[str, Eligible] = {}
    for pid, key, name, unit_id, quals, dept_id, jurisdiction, dept_code in rows:
        held = set(db.decoded(quals, []))
        if not required.get(dept_id, set()) <= held:
            continue
        unit = str(unit_id)
        lines.append(core.InspectorLine(key=key, unit=unit, quals=tuple(sorted(held))))
        units[unit] = core.UnitInfo(department=dept_code, jurisdiction=jurisdiction)
        eligible[key] = Eligible(id=pid, key=key, name=name, department=dept_code)
    lines.sort(key=lambda line: line.key)
    return lines, units, eligible


async def _conflicts(eligible: Mapping[str, Eligible], now: datetime) -> frozenset[tuple[str, str]]:
    """Standing conflicts (declared, from recusals, or set by a coordinator) not withdrawn or expired."""
    rows = await _rows(
        "SELECT p.cert_no, e.uscc FROM conflict c JOIN inspector p ON p.id = c.inspector_id "
        "JOIN entity e ON e.id = c.entity_id "
        "WHERE c.withdrawn_at IS NULL AND (c.expires_at IS NULL OR c.expires_at > ?)",
        [now],
    )
    return frozenset((k, e) for k, e in rows if k in eligible)


async def _recent(spec: PlanSpec, eligible: Mapping[str, Eligible], now: datetime) -> frozenset[tuple[str, str]]:
    """(inspector, entity) pairs inspected within ``rotation.inspector_days``: never again so soon."""
    if spec.rotation.inspector_days <= 0:
        return frozenset()
    rows = await _rows(
        "SELECT p.cert_no, i.entity_key FROM assignment a JOIN inspection i ON i.id = a.inspection_id "
        "JOIN draw d ON d.id = i.draw_id JOIN inspector p ON p.id = a.inspector_id "
        f"WHERE d.drawn_at >= ? AND a.status IN ({_marks(len(COUNTED_STATUSES))})",
        [now - timedelta(days=spec.rotation.inspector_days), *COUNTED_STATUSES],
    )
    return frozenset((k, e) for k, e in rows if k in eligible)


async def gather(spec: PlanSpec, now: datetime, zone: ZoneInfo) -> Gathered:
    """Read the draw's inputs from the directory, as of ``now``."""
    dept_ids = await _departments(spec)
    required, item_names = await _required_qualifications(spec, dept_ids)
    keys, strata, ids, divisions = await _pool(spec, list(dept_ids.values()), now)
    lines, units, eligible = await _inspectors(spec, dept_ids, required, now.astimezone(zone).date())
    return Gathered(
        pool_keys=keys,
        pool_strata=strata,
        pool_ids=ids,
        pool_divisions=divisions,
        inspectors=lines,
        units=units,
        eligible=eligible,
        conflicts=await _conflicts(eligible, now),
        recent=await _recent(spec, eligible, now),
        item_names=item_names,
        quals_by_department={code: tuple(sorted(required.get(i, set()))) for code, i in dept_ids.items()},
    )


def team_spec(spec: PlanSpec, quals_by_department: Mapping[str, Sequence[str]]) -> core.TeamSpec:
    """Seats and the qualifications they need: in a single-department plan every member holds
    what the plan's items require; in a joint plan the seat of department X needs what X's items
    require, and an "any department" seat needs what all of them require."""
    everything = tuple(sorted({q for quals in quals_by_department.values() for q in quals}))
    if not spec.joint:
        return core.TeamSpec(size=spec.team.size, slots=tuple(spec.team.seats), required_quals=everything)
    per_seat = tuple(tuple(quals_by_department.get(s, ())) if s is not None else everything for s in spec.team.seats)
    return core.TeamSpec(size=spec.team.size, slots=tuple(spec.team.seats), slot_quals=per_seat)


def draw_inputs(draw_ref: str, secret: bytes, beacon: str, spec: PlanSpec, g: Gathered) -> core.DrawInputs:
    return core.DrawInputs(
        draw_ref=draw_ref,
        secret=secret,
        beacon=beacon,
        pool=[core.PoolLine(k, s) for k, s in zip(g.pool_keys, g.pool_strata)],
        ratios=spec.ratio_map,
        inspectors=g.inspectors,
        units=g.units,
        divisions=SortedLookup(g.pool_keys, g.pool_divisions),
        team=team_spec(spec, g.quals_by_department),
        conflicts=g.conflicts,
        recent=g.recent,
    )


# --- dry run ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StratumPreview:
    stratum: str
    pool: int
    ratio: str
    drawn: int


@dataclass(frozen=True)
class Preview:
    plan_code: str
    draw_ref: str | None
    strata: tuple[StratumPreview, ...]
    pool: int
    inspectors: int
    team_size: int
    flight: bool

    @property
    def drawn(self) -> int:
        return sum(s.drawn for s in self.strata)


def _preview(plan_code: str, draw_ref: str | None, spec: PlanSpec, g: Gathered) -> Preview:
    counts: dict[str, int] = {}
    for s in g.pool_strata:
        counts[s] = counts.get(s, 0) + 1
    strata = tuple(
        StratumPreview(s, counts.get(s, 0), ratio, core.quota(counts.get(s, 0), ratio)) for s, ratio in spec.ratios
    )
    return Preview(plan_code, draw_ref, strata, len(g.pool_keys), len(g.inspectors), spec.team.size, spec.flight)


async def preview(plan_code: str, *, clock: Clock, zone: ZoneInfo) -> Preview:
    """What a draw of the plan would select now: counts per stratum only. Writes nothing,
    reveals nothing (no secret is touched)."""
    firing = await pending_firing(plan_code)
    plan = await _plan(plan_code)
    spec = parse_plan(firing.params) if firing else spec_of(plan)
    g = await gather(spec, clock.now(), zone)
    return _preview(plan.code, firing.draw_ref if firing else None, spec, g)


# --- the draw -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class DrawResult:
    draw_ref: str
    plan_code: str
    commitment: str
    strata: Mapping[str, core.StratumCount]
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


def _tsv_pool(keys: Sequence[str], strata: Sequence[str]) -> bytes:
    return "".join(f"{k}\t{s}\n" for k, s in zip(keys, strata)).encode()


def _tsv_inspectors(lines: Sequence[core.InspectorLine]) -> bytes:
    return "".join(f"{x.key}\t{x.unit}\t{','.join(x.quals)}\n" for x in lines).encode()


def _params_blob(spec: PlanSpec, g: Gathered, outcome: core.DrawOutcome) -> bytes:
    """What, beside the two TSVs and the inspection rows (which keep each drawn entity's
    division), re-creates the DrawInputs later. No secret in it."""
    data = {
        "ratios": spec.ratio_map,
        "team": _team_json(team_spec(spec, g.quals_by_department)),
        "units": {k: [u.department, u.jurisdiction] for k, u in sorted(g.units.items())},
        "conflicts": sorted(g.conflicts),
        "recent": sorted(g.recent),
    }
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()


def _team_json(team: core.TeamSpec) -> dict:
    return {
        "size": team.size,
        "slots": list(team.slots),
        "required_quals": list(team.required_quals),
        "slot_quals": [list(q) for q in team.slot_quals],
    }


def _pack(data: bytes) -> bytes:
    return zlib.compress(data, 1)


async def _entity_details(ids: Sequence[int], connection) -> dict[int, tuple[str, str]]:
    out: dict[int, tuple[str, str]] = {}
    for chunk in _chunks(list(ids)):
        for eid, name, address in await _rows(
            f"SELECT id, name, address FROM entity WHERE id IN ({_marks(len(chunk))})", chunk, connection
        ):
            out[eid] = (name, address)
    return out


def _assignment_key(assignment_id: int) -> str:
    return f"asg:{assignment_id}:sent"


def assignment_message(assignment_id: int, inspector_id: int, context: dict, locale: str) -> Message:
    """The outbox row for one assignment; adds its id and its buttons (accept / recuse) to
    ``context``, a dict made for this message."""
    context["assignment"] = assignment_id
    context["keyboard"] = ["assignment_offer", assignment_id]
    return Message(
        dedupe_key=_assignment_key(assignment_id),
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
    draw_ref: str, beacon: str = "", *, dry_run: bool = False, clock: Clock, zone: ZoneInfo, locale: str = "zh-CN"
) -> DrawResult | Preview:
    """Draw the firing ``draw_ref`` once and for all (or, with ``dry_run``, only count)."""
    firing = await _load_firing(draw_ref)
    if len(beacon) > MAX_BEACON:
        raise DrawError("beacon_too_long", limit=MAX_BEACON)
    if firing.status is FiringStatus.CANCELLED:
        raise DrawError("firing_cancelled", draw_ref=draw_ref)
    if firing.status is FiringStatus.DRAWN or await Draw.filter(draw_ref=draw_ref).exists():
        raise DrawError("already_drawn", draw_ref=draw_ref)
    now = clock.now()
    if now < firing.fire_at:
        raise DrawError("not_due", draw_ref=draw_ref, fire_at=_local(firing.fire_at, zone))
    spec = parse_plan(firing.params)
    # A million rows become a few million small objects, none of them cyclic: collecting
    # garbage while they are built would only rescan them, over and over.
    with core.gc_paused():
        phase = _Phases(draw_ref)
        g = await gather(spec, now, zone)
        phase("inputs read")
        if dry_run:
            return _preview(firing.plan.code, draw_ref, spec, g)
        secret_row = await FiringSecret.get(firing_id=firing.id)
        inputs = draw_inputs(draw_ref, bytes(secret_row.secret), beacon, spec, g)
        outcome = await asyncio.to_thread(core.run_draw, inputs)
        del inputs
        phase("drawn")
        return await _write_draw(firing, spec, g, outcome, beacon, now, zone, locale)


async def draw_plan(
    plan_code: str, beacon: str = "", *, dry_run: bool = False, clock: Clock, zone: ZoneInfo, locale: str = "zh-CN"
) -> DrawResult | Preview:
    """The CLI's ``draw PLAN``: draw the plan's pending firing, announcing one now if none is."""
    if dry_run:
        return await preview(plan_code, clock=clock, zone=zone)
    firing = await pending_firing(plan_code)
    announced_now = firing is None
    draw_ref = firing.draw_ref if firing else (await announce(plan_code, None, clock=clock, zone=zone)).draw_ref
    result = await draw(draw_ref, beacon, clock=clock, zone=zone, locale=locale)
    return DrawResult(**{**result.__dict__, "announced_now": announced_now})


def _prepare_rows(g: Gathered, outcome: core.DrawOutcome) -> list[tuple]:
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


def _prepare_writes(spec: PlanSpec, g: Gathered, outcome: core.DrawOutcome) -> tuple[list, str, list]:
    """Inspection rows, the inspections digest, and the stored inputs: all computed before the
    transaction opens."""
    return _prepare_rows(g, outcome), bundle.inspections_digest(outcome.inspections), _prepare_blobs(spec, g, outcome)


def _prepare_blobs(spec: PlanSpec, g: Gathered, outcome: core.DrawOutcome) -> list[tuple[str, bytes]]:
    return [
        ("pool.tsv", _pack(_tsv_pool(g.pool_keys, g.pool_strata))),
        ("inspectors.tsv", _pack(_tsv_inspectors(g.inspectors))),
        ("params.json", _pack(_params_blob(spec, g, outcome))),
    ]


async def _write_draw(
    firing: Firing,
    spec: PlanSpec,
    g: Gathered,
    outcome: core.DrawOutcome,
    beacon: str,
    now: datetime,
    zone: ZoneInfo,
    locale: str,
) -> DrawResult:
    phase = _Phases(firing.draw_ref)
    window_start, window_end = inspection_window(now, spec, zone)
    deadline = response_deadline(now, spec, zone)
    # CPU work in a thread, before the transaction: a CPU-bound thread running *during* the
    # writes would make SQLite's thread wait for the GIL after every row it steps.
    inspection_rows, digest, blobs = await asyncio.to_thread(_prepare_writes, spec, g, outcome)
    unstaffable = sum(1 for i in outcome.inspections if i.unstaffable)
    strata = {s: {"pool": c.pool, "ratio": c.ratio, "drawn": c.drawn} for s, c in outcome.strata.items()}
    phase("rows, digest and stored inputs prepared")
    try:
        async with _write_cache(), in_transaction() as conn:
            draw_row = await Draw.create(
                draw_ref=firing.draw_ref,
                firing_id=firing.id,
                plan_id=firing.plan_id,
                drawn_at=now,
                beacon=beacon,
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
    except IntegrityError as exc:
        if await Draw.filter(draw_ref=firing.draw_ref).exists():
            raise DrawError("already_drawn", draw_ref=firing.draw_ref) from None
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
    )


async def _written_ids(table: str, draw_id: int, n: int, conn) -> list[int]:
    """The ids of the ``n`` rows of ``table`` just written for the draw, in the order written.

    Ids only grow (SQLite's AUTOINCREMENT, a PostgreSQL sequence) and nothing else writes rows
    of a draw not yet committed, so id order is write order; usually they are one unbroken run
    and need not be read at all.
    """
    low, high, count = (
        await _tuples(f'SELECT MIN(id), MAX(id), COUNT(*) FROM "{table}" WHERE draw_id = ?', [draw_id], conn)
    )[0]
    if count != n:
        raise RuntimeError(f"{table}: {count} rows of draw {draw_id}, {n} written")
    if n and high - low + 1 == n:
        return list(range(low, high + 1))
    return [r[0] for r in await _tuples(f'SELECT id FROM "{table}" WHERE draw_id = ? ORDER BY id', [draw_id], conn)]


async def _write_assignments(
    draw_id: int, outcome: core.DrawOutcome, g: Gathered, deadline: datetime, now: datetime, conn
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


def _base_context(draw_row: Draw, spec: PlanSpec, items: list[str], deadline: datetime, zone: ZoneInfo) -> dict:
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
    outcome: core.DrawOutcome,
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
    base = _base_context(draw_row, spec, g.item_names, deadline, zone)
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
    staffed: list[tuple[core.Inspection, int]],
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
            yield _assignment_key(assignment_id), member.id, contexts.message(shared, seat, assignment_id)


# --- stored inputs ------------------------------------------------------------------------------


async def _stored(draw_id: int, *names: str) -> dict[str, bytes]:
    rows = await DrawInput.filter(draw_id=draw_id, name__in=list(names)).values_list("name", "data")
    return {name: zlib.decompress(bytes(data)) for name, data in rows}


def _pool_lines(data: bytes) -> list[core.PoolLine]:
    columns = core.parse_pool_tsv(data)
    with core.gc_paused():
        return [core.PoolLine(k, s) for k, s in zip(columns.keys, columns.strata)]


async def stored_inputs(draw_row: Draw, secret: bytes, *, with_pool: bool = True) -> core.DrawInputs:
    """The DrawInputs exactly as drawn, rebuilt from what the draw stored (not from today's
    directory, which may have changed since)."""
    names = ("inspectors.tsv", "params.json") + (("pool.tsv",) if with_pool else ())
    parts = await _stored(draw_row.id, *names)
    params = json.loads(parts["params.json"])
    team = params["team"]
    return core.DrawInputs(
        draw_ref=draw_row.draw_ref,
        secret=secret,
        beacon=draw_row.beacon,
        pool=_pool_lines(parts["pool.tsv"]) if with_pool else [],
        ratios=params["ratios"],
        inspectors=core.parse_inspectors_tsv(parts["inspectors.tsv"]),
        units={k: core.UnitInfo(department=d, jurisdiction=j) for k, (d, j) in params["units"].items()},
        divisions=dict(await _rows("SELECT entity_key, division FROM inspection WHERE draw_id = ?", [draw_row.id])),
        team=core.TeamSpec(
            size=team["size"],
            slots=tuple(team["slots"]),
            required_quals=tuple(team["required_quals"]),
            slot_quals=tuple(tuple(q) for q in team["slot_quals"]),
        ),
        conflicts=frozenset(tuple(p) for p in params["conflicts"]),
        recent=frozenset(tuple(p) for p in params["recent"]),
    )


# --- recusal and replacement --------------------------------------------------------------------


@dataclass(frozen=True)
class RecusalResult:
    recusal_id: int
    inspection_id: int
    ordinal: int  # earlier recusals on the inspection (0 for the first), as in recusals.tsv
    replacement_assignment_id: int | None
    replacement_inspector_id: int | None
    unstaffable_reason: str | None


async def recuse(
    assignment_id: int,
    reason_type: ConflictType | str,
    note: str = "",
    *,
    clock: Clock,
    zone: ZoneInfo,
    locale: str = "zh-CN",
) -> RecusalResult:
    """Record a recusal (回避) and draw its replacement, in one transaction.

    The recusal enters the draw's recusal log (published, so the replacement can be
    re-derived), a standing conflict is stored (later draws exclude the pair), and the
    replacement drawn by ``domain.draw.replacement`` gets the assignment — or, with nobody
    eligible, the inspection is marked unstaffable with the reason. Called inside a caller's
    transaction (the chat workflow's), it joins it.
    """
    reason_type = ConflictType(reason_type)
    now = clock.now()
    asg = await Assignment.get_or_none(id=assignment_id).prefetch_related("inspection", "inspector", "draw")
    if asg is None:
        raise DrawError("assignment_not_found", assignment=assignment_id)
    draw_row, inspection, recusing = asg.draw, asg.inspection, asg.inspector
    firing = await Firing.get(id=draw_row.firing_id)
    spec = parse_plan(firing.params)
    secret_row = await FiringSecret.get(firing_id=firing.id)
    inputs = await stored_inputs(draw_row, bytes(secret_row.secret), with_pool=False)
    async with in_transaction() as conn:
        # Lock the inspection (PostgreSQL) so two recusals on one team are drawn one after the other.
        await Inspection.filter(id=inspection.id).using_db(conn).select_for_update().first()
        current = await Assignment.get(id=assignment_id).using_db(conn)
        if current.status not in (AssignmentStatus.SENT, AssignmentStatus.ACCEPTED):
            raise DrawError("assignment_not_open", assignment=assignment_id, status=current.status.value)
        team = await _current_team(inspection.id, inputs.team.size, conn)
        earlier = await Recusal.filter(inspection_id=inspection.id).using_db(conn).count()
        # every exclusion known now: standing conflicts with the entity (earlier recusals among
        # them) and this recusal itself
        excluded = await _entity_conflicts(inspection.entity_id, now, conn)
        excluded.add((recusing.cert_no, inspection.entity_key))
        drawn = core.Inspection(
            no=inspection.no,
            entity=inspection.entity_key,
            stratum=inspection.stratum,
            rank=int(inspection.rank, 16),
            team=tuple(team),
            division=inspection.division,
        )
        choice = core.replacement(
            inputs, bytes(secret_row.seed), drawn, earlier, team, recusing.cert_no, frozenset(excluded)
        )
        await (
            Assignment.filter(id=assignment_id).using_db(conn).update(status=AssignmentStatus.RECUSED, responded_at=now)
        )
        await Conflict.create(
            inspector_id=recusing.id,
            entity_id=inspection.entity_id,
            type=reason_type,
            source=ConflictSource.RECUSAL,
            note=note,
            using_db=conn,
        )
        new_asg = None
        if choice.inspector is not None:
            new_asg = await Assignment.create(
                draw_id=draw_row.id,
                inspection_id=inspection.id,
                inspector_id=await _inspector_id(choice.inspector, conn),
                seat=asg.seat,
                ordinal=earlier + 1,
                status=AssignmentStatus.SENT,
                deadline=response_deadline(now, spec, zone),
                created_at=now,
                using_db=conn,
            )
        else:
            await _mark_unstaffable(draw_row.id, inspection.id, choice.reason or "", conn)
        log_row = await Recusal.create(
            inspection_id=inspection.id,
            assignment_id=assignment_id,
            seat=choice.seat or asg.seat,
            ordinal=earlier,
            recusing_id=recusing.id,
            replacement_id=new_asg.inspector_id if new_asg else None,
            replacement_assignment_id=new_asg.id if new_asg else None,
            reason_type=reason_type,
            exclusions=list(choice.exclusions),
            unstaffable_reason="" if new_asg else (choice.reason or ""),
            at=now,
            using_db=conn,
        )
        if new_asg is not None:
            context = await _replacement_context(draw_row, spec, inspection, new_asg, zone, now, conn)
            await enqueue([assignment_message(new_asg.id, new_asg.inspector_id, context, locale)], now, connection=conn)
    return RecusalResult(
        recusal_id=log_row.id,
        inspection_id=inspection.id,
        ordinal=earlier,
        replacement_assignment_id=new_asg.id if new_asg else None,
        replacement_inspector_id=new_asg.inspector_id if new_asg else None,
        unstaffable_reason=None if new_asg else (choice.reason or ""),
    )


async def _mark_unstaffable(draw_id: int, inspection_id: int, reason: str, conn) -> None:
    """Flag the inspection (once: a second failed replacement on it changes no count)."""
    changed = await (
        Inspection.filter(id=inspection_id)
        .exclude(status=InspectionStatus.UNSTAFFABLE)
        .using_db(conn)
        .update(status=InspectionStatus.UNSTAFFABLE, unstaffable_reason=reason)
    )
    if changed:
        await Draw.filter(id=draw_id).using_db(conn).update(unstaffable_count=F("unstaffable_count") + 1)


async def _current_team(inspection_id: int, size: int, conn) -> list[str]:
    """The team as it stands, in seat order, a vacant seat as "" (as ``replacement`` wants it)."""
    rows = await _rows(
        "SELECT a.seat, p.cert_no FROM assignment a JOIN inspector p ON p.id = a.inspector_id "
        f"WHERE a.inspection_id = ? AND a.status IN ({_marks(len(COUNTED_STATUSES))})",
        [inspection_id, *COUNTED_STATUSES],
        conn,
    )
    team = [""] * size
    for seat, key in rows:
        team[seat - 1] = key
    return team


async def _entity_conflicts(entity_id: int, now: datetime, conn) -> set[tuple[str, str]]:
    rows = await _rows(
        "SELECT p.cert_no, e.uscc FROM conflict c JOIN inspector p ON p.id = c.inspector_id "
        "JOIN entity e ON e.id = c.entity_id WHERE c.entity_id = ? AND c.withdrawn_at IS NULL "
        "AND (c.expires_at IS NULL OR c.expires_at > ?)",
        [entity_id, now],
        conn,
    )
    return {(k, e) for k, e in rows}


async def _inspector_id(key: str, conn) -> int:
    rows = await _rows("SELECT id FROM inspector WHERE cert_no = ?", [key], conn)
    return rows[0][0]


async def _replacement_context(
    draw_row: Draw, spec: PlanSpec, inspection: Inspection, new_asg: Assignment, zone: ZoneInfo, now: datetime, conn
) -> dict:
    """The replacement's assignment message: like the draw's, naming the entity unless the
    flight draw is still sealed."""
    names = dict(
        await _rows(f"SELECT code, name FROM item WHERE code IN ({_marks(len(spec.items))})", spec.items, conn)
    )
    team = await (
        Assignment.filter(inspection_id=inspection.id, status__in=list(HOLDING_SEAT))
        .using_db(conn)
        .order_by("seat")
        .prefetch_related("inspector")
    )
    context = _base_context(draw_row, spec, [names[c] for c in spec.items if c in names], new_asg.deadline, zone)
    context.update(no=inspection.no, seat=new_asg.seat, team=[a.inspector.name for a in team], replacement=True)
    if draw_is_sealed(draw_row, now):
        context["reveal_at"] = context["window"]["start"]
    else:
        entity = await Entity.get(id=inspection.entity_id).using_db(conn)
        context["entity"] = {"name": entity.name, "address": entity.address, "uscc": inspection.entity_key}
    return context


# --- export -------------------------------------------------------------------------------------

SEALED_FILE = "sealed.json"


@dataclass(frozen=True)
class Exported:
    draw_ref: str
    directory: Path
    files: tuple[str, ...]
    sealed: bool  # a flight draw before its reveal: only the sealed record with the digest
    forced: bool = False  # a flight draw exported in full before its reveal (administrator)


def sealed_record(draw_row: Draw, commitment: str) -> dict:
    """What a flight draw publishes at draw time (docs/draw-protocol.md §9.3): never the secret,
    the seed or the list, only the digest that binds the list."""
    return {
        "protocol": core.PROTOCOL,
        "draw_ref": draw_row.draw_ref,
        "commitment": commitment,
        "beacon": draw_row.beacon,
        "pool_digest": draw_row.pool_digest,
        "inspectors_digest": draw_row.inspectors_digest,
        "strata": draw_row.strata,
        "flight": True,
        "inspections_digest": draw_row.inspections_digest,
        "reveal_at": draw_row.reveal_at.isoformat() if draw_row.reveal_at else None,
    }


async def export(draw_ref: str, directory: Path, *, clock: Clock, force: bool = False) -> Exported:
    """Write the draw's public bundle into ``directory``: ``draw.json``, ``pool.tsv``,
    ``inspectors.tsv`` and, after a recusal, ``recusals.tsv``.

    The bundle is rebuilt from the inputs stored at draw time (the directories may have changed
    since) by re-running the draw, and must reproduce the digest stored then. A flight draw
    before its reveal gets only ``sealed.json`` unless ``force`` (an administrator's decision,
    reported as such).
    """
    draw_row = await Draw.get_or_none(draw_ref=draw_ref)
    if draw_row is None:
        if await Firing.filter(draw_ref=draw_ref).exists():
            raise DrawError("not_drawn", draw_ref=draw_ref)
        raise DrawError("draw_ref_not_found", draw_ref=draw_ref)
    firing = await Firing.get(id=draw_row.firing_id)
    directory = Path(directory)
    sealed = draw_is_sealed(draw_row, clock.now())
    if sealed and not force:
        files = {SEALED_FILE: bundle.canonical_json(sealed_record(draw_row, firing.commitment)) + b"\n"}
    else:
        files = await _full_bundle(draw_row, firing)
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (directory / name).write_bytes(data)
    return Exported(draw_ref, directory, tuple(sorted(files)), sealed=sealed and not force, forced=sealed and force)


async def _full_bundle(draw_row: Draw, firing: Firing) -> dict[str, bytes]:
    """Re-run the draw on its stored inputs; it must reproduce the digest stored at draw time."""
    secret_row = await FiringSecret.get(firing_id=firing.id)
    with core.gc_paused():
        inputs = await stored_inputs(draw_row, bytes(secret_row.secret))
        outcome = await asyncio.to_thread(core.run_draw, inputs)
        if bundle.inspections_digest(outcome.inspections) != draw_row.inspections_digest:
            raise DrawError("stored_inputs_differ", draw_ref=draw_row.draw_ref)
        records = await recusal_log(draw_row.id)
        return await asyncio.to_thread(bundle.build_bundle, inputs, outcome, records, flight=draw_row.flight)


async def recusal_log(draw_id: int) -> list[bundle.RecusalRecord]:
    """The draw's recusal log as published (recusals.tsv): per inspection, in order."""
    rows = await _rows(
        "SELECT i.no, r.seat, p.cert_no, q.cert_no, r.ordinal, r.exclusions FROM recusal r "
        "JOIN inspection i ON i.id = r.inspection_id JOIN inspector p ON p.id = r.recusing_id "
        "LEFT JOIN inspector q ON q.id = r.replacement_id WHERE i.draw_id = ? ORDER BY i.no, r.ordinal",
        [draw_id],
    )
    return [
        bundle.RecusalRecord(
            no=no,
            seat=seat,
            recusing=recusing,
            replacement=repl,
            ordinal=ordinal,
            exclusions=tuple(sorted(db.decoded(exclusions, []))),
        )
        for no, seat, recusing, repl, ordinal, exclusions in rows
    ]
