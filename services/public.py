"""What the public pages show: plain data from a few narrow queries (no web framework here).

Everything here is public by construction: the queries select only published columns —
never an entity's or an inspector's mobile, a survey's answers, a conflict's or a recusal's
reason, nor anything from ``firing_secret``. A flight draw stays sealed until its reveal
(``domain.sealing``): its page shows the sealed record only, and its inspections
appear under no entity's name before then.

Speed on a Qingdao-scale database (docs/public-pages.md): every list is one query with
``LIMIT`` (page size + 1, to know whether a next page exists). The entity lookup is an exact
match on the unique credit-code index, or a name *substring* search that needs at least
:data:`MIN_QUERY` characters and walks the primary key in order, stopping at the first
``PAGE + 1`` matches (keyset pagination: the next page starts after the last id shown), so a
common fragment costs a few rows and only a rare one reads the whole name column once per
submitted search (the form submits on Enter; nothing runs per keystroke).
"""

from __future__ import annotations

import asyncio
import io
import os
import re
import shutil
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from hashlib import sha256
from pathlib import Path

from core import db
from core.clock import Clock
from core.clock import utc as _utc
from core.db import moment as _dt
from domain import inputs
from domain.errors import ServiceError
from domain.sealing import REVEALED_SQL, draw_is_sealed, is_sealed
from models.draws import Draw
from services import audit
from services.draws.export import export as export_draw
from services.onsite.objection import pending_for as objection_pending

PAGE = 20
DRAW_PAGE = 50  # inspections listed per page of a draw
HOME_ROWS = 5
MIN_QUERY = 2
MAX_QUERY = 50
BUNDLE_FILES = ("draw.json", "pool.tsv", "inspectors.tsv", "recusals.tsv")
SEALED_FILES = ("sealed.json",)
_CODE = re.compile(r"[0-9A-Z]{18}")
_LIKE_SPECIAL = re.compile(r"([\\%_])")


class PublicError(ServiceError):
    """A request the pages refuse; ``code`` is shown through the page templates."""


# --- small helpers ---------------------------------------------------------------------------


async def _fetch(sql: str, params: Sequence = ()) -> list[dict]:
    return await db.conn().execute_query_dict(db.sql(sql), list(params))


@dataclass(frozen=True)
class Page:
    """One page of a list: its rows, and how to reach its neighbours."""

    rows: list
    number: int = 1
    has_next: bool = False
    after: int | None = None  # keyset lists: the id the next page starts after

    @property
    def has_prev(self) -> bool:
        return self.number > 1


def _page(rows: list, number: int, size: int) -> Page:
    return Page(rows[:size], number, len(rows) > size)


def _offset(number: int, size: int) -> int:
    return (max(number, 1) - 1) * size


# --- home, plans, draws -----------------------------------------------------------------------


@dataclass(frozen=True)
class Firing:
    draw_ref: str
    plan_code: str
    plan_name: str
    fire_at: datetime
    commitment: str
    flight: bool
    beacon: dict | None = None  # the beacon fixed at announce time (drand round, or sources)
    pool_digest: str = ""  # v2: the digest of the pool fixed at announce (classes as salted commitments)


@dataclass(frozen=True)
class DrawSummary:
    draw_ref: str
    plan_code: str
    plan_name: str
    drawn_at: datetime
    flight: bool
    sealed: bool
    pool: int
    inspections: int
    unstaffable: int
    off_schedule: bool = False  # drawn off schedule (ad hoc or redraw): a tag in every list


@dataclass(frozen=True)
class Withdrawn:
    """An announced firing withdrawn before its draw: it stays public, with its reason."""

    draw_ref: str
    plan_name: str
    fire_at: datetime
    commitment: str
    withdrawn_at: datetime
    reason: str


async def withdrawn(number: int = 1, size: int = PAGE) -> Page:
    """Withdrawn firings, latest withdrawal first."""
    rows = await _fetch(
        "SELECT f.draw_ref, f.fire_at, f.commitment, f.withdrawn_at, f.withdrawn_reason, p.name FROM firing f "
        "JOIN plan p ON p.id = f.plan_id WHERE f.status = 'withdrawn' ORDER BY f.withdrawn_at DESC, f.id DESC "
        "LIMIT ? OFFSET ?",
        [size + 1, _offset(number, size)],
    )
    items = [
        Withdrawn(
            r["draw_ref"], r["name"], _dt(r["fire_at"]), r["commitment"], _dt(r["withdrawn_at"]), r["withdrawn_reason"]
        )
        for r in rows
    ]
    return _page(items, number, size)


@dataclass(frozen=True)
class FiringState:
    """An announced draw_ref not drawn (yet): when it fires, or when and why it was withdrawn."""

    fire_at: datetime
    withdrawn_at: datetime | None
    reason: str


async def firing_of(draw_ref: str) -> FiringState | None:
    """The announced or withdrawn firing behind a draw_ref that has no draw; None otherwise."""
    rows = await _fetch(
        "SELECT f.fire_at, f.status, f.withdrawn_at, f.withdrawn_reason FROM firing f "
        "WHERE f.draw_ref = ? AND f.status IN ('announced', 'withdrawn')",
        [draw_ref],
    )
    if not rows:
        return None
    r = rows[0]
    withdrawn = r["status"] == "withdrawn"
    return FiringState(
        _dt(r["fire_at"]), _dt(r["withdrawn_at"]) if withdrawn else None, r["withdrawn_reason"] if withdrawn else ""
    )


async def announced(number: int = 1, size: int = PAGE) -> Page:
    """Firings announced and not yet drawn, soonest first: the commitments published ahead."""
    rows = await _fetch(
        "SELECT f.draw_ref, f.fire_at, f.commitment, f.beacon_plan, f.pool_digest, p.code, p.name, p.flight FROM firing f "
        "JOIN plan p ON p.id = f.plan_id WHERE f.status = 'announced' ORDER BY f.fire_at, f.id LIMIT ? OFFSET ?",
        [size + 1, _offset(number, size)],
    )
    firings = [
        Firing(
            r["draw_ref"],
            r["code"],
            r["name"],
            _dt(r["fire_at"]),
            r["commitment"],
            bool(r["flight"]),
            db.decoded(r["beacon_plan"], None),
            r["pool_digest"] or "",
        )
        for r in rows
    ]
    return _page(firings, number, size)


@dataclass(frozen=True)
class PlanRow:
    code: str
    name: str
    departments: list[str]
    flight: bool
    items: list[str]
    ratios: dict[str, str]
    team_size: int
    schedule: dict
    # what a reader recognises: the names of the departments and items (the code where a name
    # is unknown), in the order of the codes
    department_names: list[str] = field(default_factory=list)
    item_names: list[str] = field(default_factory=list)


async def _names(table: str, codes: set[str]) -> dict[str, str]:
    if not codes:
        return {}
    marks = ", ".join("?" for _ in codes)
    rows = await _fetch(f"SELECT code, name FROM {table} WHERE code IN ({marks})", sorted(codes))
    return {r["code"]: r["name"] for r in rows}


async def plans(number: int = 1, size: int = PAGE) -> Page:
    """Active plans with what they commit to: items, ratios per risk class, team size, schedule."""
    rows = await _fetch(
        "SELECT code, name, departments, flight, spec FROM plan WHERE active = TRUE ORDER BY code LIMIT ? OFFSET ?",
        [size + 1, _offset(number, size)],
    )
    specs = [(r, db.decoded(r["spec"], {}), db.decoded(r["departments"], [])) for r in rows]
    departments = await _names("department", {c for _, _, ds in specs for c in ds})
    items = await _names("item", {c for _, spec, _ in specs for c in spec.get("items", [])})
    out = []
    for r, spec, depts in specs:
        codes = list(spec.get("items", []))
        out.append(
            PlanRow(
                r["code"],
                r["name"],
                depts,
                bool(r["flight"]),
                codes,
                dict(spec.get("ratios", {})),
                int(spec.get("team", {}).get("size", 0)),
                dict(spec.get("schedule", {})),
                [departments.get(c, c) for c in depts],
                [items.get(c, c) for c in codes],
            )
        )
    return _page(out, number, size)


def _draw_summary(r: dict, now: datetime) -> DrawSummary:
    reveal_at, revealed_at = _dt(r["reveal_at"]), _dt(r["revealed_at"])
    return DrawSummary(
        r["draw_ref"],
        r["code"],
        r["name"],
        _dt(r["drawn_at"]),
        bool(r["flight"]),
        is_sealed(bool(r["flight"]), reveal_at, revealed_at, now),
        r["pool_size"],
        r["inspection_count"],
        r["unstaffable_count"],
        r["off_schedule"] is not None,
    )


DRAW_COLUMNS = (
    "d.draw_ref, d.drawn_at, d.flight, d.reveal_at, d.revealed_at, d.pool_size, d.inspection_count, "
    "d.unstaffable_count, d.off_schedule, p.code, p.name"
)


async def draws(now: datetime, number: int = 1, size: int = PAGE) -> Page:
    """Every draw, newest first (``draw.drawn_at`` is indexed)."""
    rows = await _fetch(
        f"SELECT {DRAW_COLUMNS} FROM draw d JOIN plan p ON p.id = d.plan_id "
        "ORDER BY d.drawn_at DESC, d.id DESC LIMIT ? OFFSET ?",
        [size + 1, _offset(number, size)],
    )
    return _page([_draw_summary(r, now) for r in rows], number, size)


@dataclass(frozen=True)
class Home:
    draws: list[DrawSummary]
    announced: list[Firing]
    plans: int
    draw_count: int
    withdrawn: list[Withdrawn] = field(default_factory=list)
    audit_seq: int = 0  # the audit chain's head now (0: empty); anyone may note it down and
    audit_head: str = ""  # later hand it to `inspectbot audit verify --head SEQ:HASH`


async def home(now: datetime) -> Home:
    counts = (
        await _fetch(
            "SELECT (SELECT COUNT(*) FROM plan WHERE active = TRUE) AS plans, (SELECT COUNT(*) FROM draw) AS draws"
        )
    )[0]
    latest, upcoming = await draws(now, 1, HOME_ROWS), await announced(1, HOME_ROWS)
    gone = await withdrawn(1, HOME_ROWS)
    seq, head = await audit.head()
    return Home(latest.rows, upcoming.rows, counts["plans"], counts["draws"], gone.rows, seq, head if seq else "")


# --- one draw ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stratum:
    label: str
    pool: int
    ratio: str
    drawn: int
    cut: str | None = None  # v2, once revealed: the rank of the cut (an entity checks its fate against it)


@dataclass(frozen=True)
class DrawnEntity:
    """One drawn entity as the public page lists it: never its risk class (confidential)."""

    no: int
    uscc: str
    name: str
    status: str


@dataclass(frozen=True)
class DrawPage:
    summary: DrawSummary
    commitment: str
    beacon: str
    pool_digest: str
    inspectors_digest: str
    inspections_digest: str
    strata: list[Stratum]
    reveal_at: datetime | None
    window_start: datetime
    window_end: datetime
    files: tuple[str, ...]  # downloadable now
    inspections: Page = field(default_factory=lambda: Page([]))  # empty while sealed
    off_schedule: dict | None = None  # {"reason", "confirmed_by", "requested_by", "redraw_of"}
    redrawn_by: str = ""  # a later draw that redid this one
    beacon_source: dict | None = None  # draw.json's: the drand round, or the values named in advance
    audit_seq: int | None = None  # the audit chain's head just after the draw (as in draw.json)
    audit_head: str = ""
    confidential: bool = False  # protocol v2: classes confidential, the pool fixed at announce


async def draw_page(draw_ref: str, now: datetime, number: int = 1, size: int = DRAW_PAGE) -> DrawPage:
    rows = await _fetch(
        f"SELECT {DRAW_COLUMNS}, d.id, d.beacon, d.beacon_source, d.pool_digest, d.inspectors_digest, "
        "d.inspections_digest, d.strata, d.window_start, d.window_end, d.audit_seq, d.audit_head, f.commitment, "
        "f.pool_digest AS announced_pool_digest, "
        "(SELECT n.draw_ref FROM draw n WHERE n.redraw_of = d.draw_ref) AS redrawn_by "
        "FROM draw d JOIN plan p ON p.id = d.plan_id "
        "JOIN firing f ON f.id = d.firing_id WHERE d.draw_ref = ?",
        [draw_ref],
    )
    if not rows:
        raise PublicError("draw_not_found", draw_ref=draw_ref)
    r = rows[0]
    summary = _draw_summary(r, now)
    strata = [
        Stratum(k, v["pool"], v["ratio"], v["drawn"], None if summary.sealed else v.get("cut"))
        for k, v in sorted(db.decoded(r["strata"], {}).items())
    ]
    page = Page([])
    if not summary.sealed:
        page = await drawn_entities(r["id"], number, size)
    files = SEALED_FILES if summary.sealed else await _bundle_files(r["id"])
    return DrawPage(
        summary,
        r["commitment"],
        r["beacon"],
        r["pool_digest"],
        r["inspectors_digest"],
        r["inspections_digest"],
        strata,
        _dt(r["reveal_at"]),
        _dt(r["window_start"]),
        _dt(r["window_end"]),
        files,
        page,
        db.decoded(r["off_schedule"], None),
        r["redrawn_by"] or "",
        db.decoded(r["beacon_source"], None),
        r["audit_seq"],
        r["audit_head"] or "",
        r["announced_pool_digest"] is not None,
    )


async def _bundle_files(draw_id: int) -> tuple[str, ...]:
    recusals = (
        await _fetch(
            "SELECT COUNT(*) AS n FROM recusal r JOIN inspection i ON i.id = r.inspection_id WHERE i.draw_id = ?",
            [draw_id],
        )
    )[0]["n"]
    return BUNDLE_FILES if recusals else BUNDLE_FILES[:3]


async def drawn_entities(draw_id: int, number: int, size: int) -> Page:
    """The draw's inspections in protocol order; numbers run 1…n, so a page is a range of
    ``inspection.no`` on the (draw, no) unique index."""
    start = _offset(number, size)
    rows = await _fetch(
        "SELECT i.no, i.entity_key, e.name, i.status FROM inspection i JOIN entity e ON e.id = i.entity_id "
        "WHERE i.draw_id = ? AND i.no > ? AND i.no <= ? ORDER BY i.no",
        [draw_id, start, start + size + 1],
    )
    return _page([DrawnEntity(r["no"], r["entity_key"], r["name"], r["status"]) for r in rows], number, size)


# --- the bundle, cached on disk ---------------------------------------------------------------

_locks: dict[str, asyncio.Lock] = {}


def _safe(draw_ref: str) -> str:
    """A directory name for a draw_ref (``P1/2026-12-01`` → ``P1_2026-12-01-<hash>``)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", draw_ref) + "-" + sha256(draw_ref.encode()).hexdigest()[:8]


async def _bundle_version(draw_row: Draw, now: datetime) -> str:
    """What the bundle's content depends on: sealed or not, and how many recusals it logs."""
    if draw_is_sealed(draw_row, now):
        return "sealed"
    n = (
        await _fetch(
            "SELECT COUNT(*) AS n FROM recusal r JOIN inspection i ON i.id = r.inspection_id WHERE i.draw_id = ?",
            [draw_row.id],
        )
    )[0]["n"]
    return f"full-r{n}"


async def bundle_dir(draw_ref: str, data_dir: Path, clock: Clock) -> Path:
    """The directory holding the draw's published files (and ``bundle.zip``), exported once per
    version by ``services.draws.export.export`` under ``<data dir>/public/bundles``.

    A new recusal or the reveal of a flight draw changes the version, so a new export is
    made; an export is written beside the cache and renamed into place, so a reader never sees
    half a bundle, and one process exports a version at a time."""
    draw_row = await Draw.get_or_none(draw_ref=draw_ref)
    if draw_row is None:
        raise PublicError("draw_not_found", draw_ref=draw_ref)
    version = await _bundle_version(draw_row, clock.now())
    target = Path(data_dir) / "public" / "bundles" / _safe(draw_ref) / version
    if target.is_dir():
        return target
    lock = _locks.setdefault(f"{draw_ref}\0{version}", asyncio.Lock())
    async with lock:
        if target.is_dir():
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=".export-", dir=target.parent))
        try:
            exported = await export_draw(draw_ref, work, clock=clock)
            _write_zip(work, exported.files, draw_ref)
            try:
                os.replace(work, target)  # atomic; fails if another process won the race
            except OSError:
                if not target.is_dir():
                    raise
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return target


def _write_zip(directory: Path, names: Sequence[str], draw_ref: str) -> None:
    folder = _safe(draw_ref).rsplit("-", 1)[0]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(names):
            zf.write(directory / name, f"{folder}/{name}")
    (directory / "bundle.zip").write_bytes(buffer.getvalue())


async def bundle_file(draw_ref: str, name: str, data_dir: Path, clock: Clock) -> Path:
    """One published file of the draw (``bundle.zip`` for all of them); refused unless it is
    published now: a sealed flight draw publishes ``sealed.json`` only."""
    if name not in BUNDLE_FILES + SEALED_FILES + ("bundle.zip",):
        raise PublicError("file_not_found", name=name)
    directory = await bundle_dir(draw_ref, data_dir, clock)
    path = directory / name
    if not path.is_file():
        raise PublicError("file_not_found", name=name)
    return path


def zip_name(draw_ref: str) -> str:
    return _safe(draw_ref).rsplit("-", 1)[0] + ".zip"


# --- entity lookup ----------------------------------------------------------------------------


@dataclass(frozen=True)
class EntityRow:
    id: int
    uscc: str
    name: str
    address: str
    inspected: int = 0  # published inspections (a sealed flight draw's are not counted)
    last_drawn: datetime | None = None


def normalise_query(q: str) -> str:
    return " ".join((q or "").split())


def looks_like_code(q: str) -> bool:
    return bool(_CODE.fullmatch(q.upper()))


async def entity_by_code(code: str) -> EntityRow | None:
    credit = inputs.uscc(code)  # only a credit code reaches the query (a NUL in the address was a 500 on PostgreSQL)
    if credit is None:
        return None
    rows = await _fetch("SELECT id, uscc, name, address FROM entity WHERE uscc = ?", [credit])
    return EntityRow(**rows[0]) if rows else None


async def search_entities(q: str, after: int = 0, size: int = PAGE, now: datetime | None = None) -> Page:
    """Entities whose name contains ``q`` (at least 2 characters), in id order from ``after``."""
    q = normalise_query(q)
    if len(q) < MIN_QUERY:
        raise PublicError("query_too_short", minimum=MIN_QUERY)
    if len(q) > MAX_QUERY:
        raise PublicError("query_too_long", maximum=MAX_QUERY)
    pattern = "%" + _LIKE_SPECIAL.sub(r"\\\1", q) + "%"
    rows = await _fetch(
        "SELECT id, uscc, name, address FROM entity WHERE name LIKE ? ESCAPE '\\' AND id > ? ORDER BY id LIMIT ?",
        [pattern, max(after, 0), size + 1],
    )
    found = [EntityRow(**r) for r in rows[:size]]
    if found and now is not None:
        seen = await _inspected([e.id for e in found], now)
        found = [replace(e, inspected=seen[e.id][0], last_drawn=seen[e.id][1]) if e.id in seen else e for e in found]
    more = len(rows) > size
    return Page(found, has_next=more, after=found[-1].id if more else None)


async def _inspected(ids: list[int], now: datetime) -> dict[int, tuple[int, datetime | None]]:
    """Per entity of ``ids``: how many times it was drawn for inspection, and when last, counting
    only what the public may see (a flight draw before its reveal is not shown)."""
    marks = ", ".join("?" for _ in ids)
    rows = await _fetch(
        "SELECT i.entity_id, d.flight, d.reveal_at, d.revealed_at, d.drawn_at FROM inspection i "
        f"JOIN draw d ON d.id = i.draw_id WHERE i.entity_id IN ({marks})",
        ids,
    )
    out: dict[int, tuple[int, datetime | None]] = {}
    for r in rows:
        if is_sealed(bool(r["flight"]), _dt(r["reveal_at"]), _dt(r["revealed_at"]), now):
            continue
        n, last = out.get(r["entity_id"], (0, None))
        drawn = _dt(r["drawn_at"])
        out[r["entity_id"]] = (n + 1, max(last, drawn) if last and drawn else (drawn or last))
    return out


@dataclass(frozen=True)
class ItemResult:
    code: str
    name: str
    outcome: str  # "pass" (合格), "fail" (不合格), "na" (不涉及), "" (not judged)


@dataclass(frozen=True)
class EntityInspection:
    draw_ref: str
    plan_code: str
    plan_name: str
    drawn_at: datetime
    window_start: datetime
    window_end: datetime
    status: str  # inspection status: staffed, unstaffable, done, cancelled
    result: str  # "pending", "pass" (合格), "problems" (problems found)
    items: list[ItemResult]
    objection: bool = False  # the firm's objection to the published result awaits a decision
    follow_up: str = ""  # the standing rectification order: "open" / "reinspecting" / "rectified" / "unrectified"
    follow_up_due: str = ""  # its deadline, YYYY-MM-DD


@dataclass(frozen=True)
class EntityPage:
    entity: EntityRow
    inspections: Page


ENTITY_INSPECTIONS = f"""
WITH page AS (
    SELECT i.id, i.status, d.draw_ref, d.drawn_at, d.window_start, d.window_end, p.code, p.name
    FROM inspection i JOIN draw d ON d.id = i.draw_id JOIN plan p ON p.id = d.plan_id
    WHERE i.entity_id = ? AND {REVEALED_SQL}
    ORDER BY d.drawn_at DESC, i.id DESC LIMIT ? OFFSET ?
)
SELECT page.*, f.position, f.item_code, f.verdict, it.name AS item_name
FROM page
LEFT JOIN publication pub ON pub.inspection_id = page.id AND pub.published_at IS NOT NULL
LEFT JOIN finding f ON f.result_id = pub.result_id
LEFT JOIN item it ON it.code = f.item_code
ORDER BY page.drawn_at DESC, page.id DESC, f.position
"""


async def entity_page(uscc: str, now: datetime, number: int = 1, size: int = PAGE) -> EntityPage:
    """An entity and its inspections, newest first, each with its result of record by item —
    one query for the page (the findings joined to a page of inspections). Only a result a
    reviewer approved is shown (services.onsite.review): until then the inspection is *pending*
    (待公示). Inspections of a flight draw still sealed are
    left out: the target is secret until the reveal. Findings' notes are never shown."""
    entity = await entity_by_code(uscc)
    if entity is None:
        raise PublicError("entity_not_found", uscc=uscc)
    rows = await _fetch(ENTITY_INSPECTIONS, [entity.id, _utc(now), size + 1, _offset(number, size)])
    found: dict[int, EntityInspection] = {}
    for r in rows:
        insp = found.get(r["id"])
        if insp is None:
            insp = found[r["id"]] = EntityInspection(
                r["draw_ref"],
                r["code"],
                r["name"],
                _dt(r["drawn_at"]),
                _dt(r["window_start"]),
                _dt(r["window_end"]),
                r["status"],
                "pending",
                [],
            )
        if r["item_code"] is not None:
            insp.items.append(ItemResult(r["item_code"], r["item_name"] or r["item_code"], r["verdict"] or ""))
    pending = await objection_pending(list(found))
    orders = await _orders(list(found))
    out = [
        replace(
            i,
            result=result_of(i.items),
            objection=key in pending,
            follow_up=orders.get(key, ("", ""))[0],
            follow_up_due=orders.get(key, ("", ""))[1],
        )
        for key, i in found.items()
    ]
    return EntityPage(entity, _page(out, number, size))


async def _orders(inspection_ids: list[int]) -> dict[int, tuple[str, str]]:
    """The standing rectification order (status, deadline) of each inspection, if any."""
    if not inspection_ids:
        return {}
    rows = await _fetch(
        f"SELECT inspection_id, status, due_on FROM rectification WHERE inspection_id IN ({', '.join('?' * len(inspection_ids))}) "
        "AND status != 'superseded' ORDER BY id",
        inspection_ids,
    )
    return {r["inspection_id"]: (r["status"], str(r["due_on"])[:10]) for r in rows}


def result_of(items: Sequence[ItemResult]) -> str:
    """合格 unless an item failed; no findings at all = no result of record yet."""
    if not items:
        return "pending"
    return "problems" if any(i.outcome == "fail" for i in items) else "pass"
