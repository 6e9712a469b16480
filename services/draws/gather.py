"""Gather a draw's inputs from the directory as plain data, and preview a draw (counts only).

The pool and the inspector list are read with raw SQL as plain tuples (a Qingdao pool is a
million rows: no ORM objects) and become the pure draw's ``DrawInputs``; :func:`preview` is
the dry run: what a draw would select now, per stratum, touching no secret.
"""

from __future__ import annotations

import asyncio
import bisect
import secrets
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from itertools import islice
from operator import lt
from zoneinfo import ZoneInfo

from core import db
from core.clock import Clock
from domain import draw as engine
from domain.plans import PlanSpec, overloaded, parse_plan
from services.draws.common import (
    COUNTED_STATUSES,
    DrawError,
    fetch_rows,
    fetch_tuples,
    find_plan,
    fixed_pool,
    marks,
    pending_firing,
)
from services.plans import spec_of


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
    inspectors: list[engine.InspectorLine]
    units: dict[str, engine.UnitInfo]
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
    rows = await fetch_rows(
        f"SELECT code, id FROM department WHERE code IN ({marks(len(spec.departments))})", spec.departments
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
    rows = await fetch_rows(
        f"SELECT code, name, department_id, qualifications FROM item WHERE code IN ({marks(len(spec.items))})",
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
        where.append(f"kind IN ({marks(len(t.kinds))})")
        params += t.kinds
    if t.divisions:
        where.append("(" + " OR ".join("division_code LIKE ?" for _ in t.divisions) + ")")
        params += [f"{d}%" for d in t.divisions]
    if t.industries:
        where.append(f"industry IN ({marks(len(t.industries))})")
        params += t.industries
    if spec.rotation.entity_days > 0:
        exempt = spec.rotation.exempt_classes
        skip = (
            "id NOT IN (SELECT i.entity_id FROM inspection i JOIN draw d ON d.id = i.draw_id "
            "JOIN assignment a ON a.inspection_id = i.id JOIN inspector p ON p.id = a.inspector_id "
            f"WHERE d.drawn_at >= ? AND p.department_id IN ({marks(len(dept_ids))}) "
            f"AND a.status IN ({marks(len(COUNTED_STATUSES))}))"
        )
        skip_params = [now - timedelta(days=spec.rotation.entity_days), *dept_ids, *COUNTED_STATUSES]
        if exempt:
            where.append(f"(risk_class IN ({marks(len(exempt))}) OR {skip})")
            params += [*exempt, *skip_params]
        else:
            where.append(skip)
            params += skip_params
    order = 'uscc COLLATE "C"' if db.dialect() == "postgres" else "uscc"
    rows = await fetch_tuples(
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
) -> tuple[list[engine.InspectorLine], dict[str, engine.UnitInfo], dict[str, Eligible]]:
    """Active inspectors of the plan's departments, certificate valid on ``today`` (no expiry
    recorded = valid), holding every qualification their department's items require."""
    ids = list(dept_ids.values())
    rows = await fetch_rows(
        "SELECT p.id, p.cert_no, p.name, p.unit_id, p.qualifications, p.department_id, u.jurisdiction, d.code "
        "FROM inspector p JOIN unit u ON u.id = p.unit_id JOIN department d ON d.id = p.department_id "
        f"WHERE p.status = 'active' AND (p.cert_expiry IS NULL OR p.cert_expiry >= ?) "
        f"AND p.department_id IN ({marks(len(ids))})",
        [today, *ids],
    )
    lines: list[engine.InspectorLine] = []
    units: dict[str, engine.UnitInfo] = {}
    eligible: dict[str, Eligible] = {}
    for pid, key, name, unit_id, quals, dept_id, jurisdiction, dept_code in rows:
        held = set(db.decoded(quals, []))
        if not required.get(dept_id, set()) <= held:
            continue
        unit = str(unit_id)
        lines.append(engine.InspectorLine(key=key, unit=unit, quals=tuple(sorted(held))))
        units[unit] = engine.UnitInfo(department=dept_code, jurisdiction=jurisdiction)
        eligible[key] = Eligible(id=pid, key=key, name=name, department=dept_code)
    lines.sort(key=lambda line: line.key)
    return lines, units, eligible


async def _conflicts(eligible: Mapping[str, Eligible], now: datetime) -> frozenset[tuple[str, str]]:
    """Standing conflicts (declared, from recusals, or set by a coordinator) not withdrawn or expired."""
    rows = await fetch_rows(
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
    rows = await fetch_rows(
        "SELECT p.cert_no, i.entity_key FROM assignment a JOIN inspection i ON i.id = a.inspection_id "
        "JOIN draw d ON d.id = i.draw_id JOIN inspector p ON p.id = a.inspector_id "
        f"WHERE d.drawn_at >= ? AND a.status IN ({marks(len(COUNTED_STATUSES))})",
        [now - timedelta(days=spec.rotation.inspector_days), *COUNTED_STATUSES],
    )
    return frozenset((k, e) for k, e in rows if k in eligible)


async def eligible_pool(spec: PlanSpec, now: datetime) -> tuple[list[str], list[str]]:
    """The plan's pool as of ``now``: keys (byte order) and their classes. What a v2 firing
    fixes at its announcement (services.draws.fixed)."""
    dept_ids = await _departments(spec)
    keys, strata, _, _ = await _pool(spec, list(dept_ids.values()), now)
    return keys, strata


async def _entities_of(keys: Sequence[str]) -> tuple[list[int], list[str]]:
    """Database ids and today's division codes of a pool fixed earlier (the keys sorted in byte
    order): one read of the entity table, merged; an entity gone from it is refused."""
    order = 'uscc COLLATE "C"' if db.dialect() == "postgres" else "uscc"
    rows = await fetch_tuples(f"SELECT uscc, id, division_code FROM entity ORDER BY {order}")
    if not all(a[0] < b[0] for a, b in zip(rows, islice(rows, 1, None))):
        rows = sorted(rows, key=lambda r: r[0])
    ids: list[int] = []
    divisions: list[str] = []
    j, n = 0, len(rows)
    for key in keys:  # both sorted: one merge pass
        while j < n and rows[j][0] < key:
            j += 1
        if j == n or rows[j][0] != key:
            raise DrawError("fixed_pool_entity_missing", entity=key)
        ids.append(rows[j][1])
        divisions.append(rows[j][2])
    return ids, divisions


async def gather(
    spec: PlanSpec, now: datetime, zone: ZoneInfo, fixed: tuple[list[str], list[str]] | None = None
) -> Gathered:
    """Read the draw's inputs from the directory, as of ``now``; the pool's keys and classes
    from ``fixed`` when the firing fixed them at its announcement (protocol v2)."""
    dept_ids = await _departments(spec)
    required, item_names = await _required_qualifications(spec, dept_ids)
    if fixed is None:
        keys, strata, ids, divisions = await _pool(spec, list(dept_ids.values()), now)
    else:
        keys, strata = fixed
        ids, divisions = await _entities_of(keys)
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


def team_spec(spec: PlanSpec, quals_by_department: Mapping[str, Sequence[str]]) -> engine.TeamSpec:
    """Seats and the qualifications they need: in a single-department plan every member holds
    what the plan's items require; in a joint plan the seat of department X needs what X's items
    require, and an "any department" seat needs what all of them require."""
    everything = tuple(sorted({q for quals in quals_by_department.values() for q in quals}))
    if not spec.joint:
        return engine.TeamSpec(size=spec.team.size, slots=tuple(spec.team.seats), required_quals=everything)
    per_seat = tuple(tuple(quals_by_department.get(s, ())) if s is not None else everything for s in spec.team.seats)
    return engine.TeamSpec(size=spec.team.size, slots=tuple(spec.team.seats), slot_quals=per_seat)


def draw_inputs(
    draw_ref: str,
    secret: bytes,
    beacon: str,
    spec: PlanSpec,
    g: Gathered,
    salt_key: bytes | None = None,
    announced_pool_digest: bytes | None = None,
) -> engine.DrawInputs:
    return engine.DrawInputs(
        draw_ref=draw_ref,
        secret=secret,
        beacon=beacon,
        pool=[engine.PoolLine(k, s) for k, s in zip(g.pool_keys, g.pool_strata)],
        ratios=spec.ratio_map,
        inspectors=g.inspectors,
        units=g.units,
        divisions=SortedLookup(g.pool_keys, g.pool_divisions),
        team=team_spec(spec, g.quals_by_department),
        conflicts=g.conflicts,
        recent=g.recent,
        salt_key=salt_key,
        announced_pool_digest=announced_pool_digest,
    )


# --- dry run ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StratumPreview:
    stratum: str
    pool: int
    ratio: str
    drawn: int


def draw_warnings(spec: PlanSpec, inspectors: int, inspections: Sequence[engine.Inspection]) -> tuple[dict, ...]:
    """What should stop a coordinator before a draw goes out: inspections that cannot be
    staffed (per reason), and a load per eligible inspector above ``team.max_per_inspector``."""
    out: list[dict] = []
    reasons = Counter(i.unstaffable for i in inspections if i.unstaffable)
    if reasons:
        out.append(
            {
                "code": "unstaffable",
                "count": sum(reasons.values()),
                "reasons": [{"reason": r, "count": n} for r, n in sorted(reasons.items())],
            }
        )
    tasks = len(inspections) * spec.team.size
    load = overloaded(spec, tasks, inspectors)
    if load is not None:
        out.append(
            {
                "code": "overloaded",
                "load": load,
                "max": spec.team.max_per_inspector,
                "tasks": tasks,
                "inspectors": inspectors,
            }
        )
    return tuple(out)


@dataclass(frozen=True)
class Preview:
    plan_code: str
    draw_ref: str | None
    strata: tuple[StratumPreview, ...]
    pool: int
    inspectors: int
    team_size: int
    flight: bool
    warnings: tuple[dict, ...] = ()  # draw_warnings of a trial draw (a throwaway secret)

    @property
    def drawn(self) -> int:
        return sum(s.drawn for s in self.strata)


async def preview_counts(plan_code: str, draw_ref: str | None, spec: PlanSpec, g: Gathered) -> Preview:
    """The preview of gathered inputs: per stratum, the pool and what its ratio draws; and the
    warnings of a trial draw with a throwaway secret (which entities it picks differs from the
    real draw, what cannot be staffed and the load per inspector hardly do). Nothing is kept."""
    counts: dict[str, int] = {}
    for s in g.pool_strata:
        counts[s] = counts.get(s, 0) + 1
    strata = tuple(
        StratumPreview(s, counts.get(s, 0), ratio, engine.quota(counts.get(s, 0), ratio)) for s, ratio in spec.ratios
    )
    trial = await asyncio.to_thread(
        engine.run_draw, draw_inputs(draw_ref or f"{plan_code}/preview", secrets.token_bytes(32), "", spec, g)
    )
    warnings = draw_warnings(spec, len(g.inspectors), trial.inspections)
    return Preview(
        plan_code, draw_ref, strata, len(g.pool_keys), len(g.inspectors), spec.team.size, spec.flight, warnings
    )


async def preview(plan_code: str, *, clock: Clock, zone: ZoneInfo) -> Preview:
    """What a draw of the plan would select now: counts per stratum only (of the pool its pending
    firing fixed, for a v2 firing). Writes nothing, reveals nothing (no secret is touched)."""
    firing = await pending_firing(plan_code)
    plan = await find_plan(plan_code)
    spec = parse_plan(firing.params) if firing else spec_of(plan)
    g = await gather(spec, clock.now(), zone, await fixed_pool(firing) if firing else None)
    return await preview_counts(plan.code, firing.draw_ref if firing else None, spec, g)
