"""Upsert by key: what the database already holds, and the writes of a validated file.

City-scale on purpose: existing rows are read as plain tuples, page by page, and only their key
and ``content_hash`` are kept; writes are ``execute_many`` of plain tuples, already in the
driver's types (JSON as text), inside the caller's transaction. No ORM object is built per row.

A row's ``content_hash`` is the MD5 of its normalised record; equal hash = unchanged row.
Anything that changes an imported row outside an import must clear ``content_hash`` (the
missing-row marking below does), so the next import rewrites the row from the file.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime

from core import db
from importers.validate import Departments
from models.directory import WECOM_USERID_KEY

PAGE = 50_000
BATCH = 5_000


def record_hash(record: tuple) -> str:
    """A stable fingerprint of a normalised record (its values joined by a unit separator)."""
    joined = "\x1f".join([v if v.__class__ is str else repr(v) for v in record])
    return hashlib.md5(joined.encode("utf-8"), usedforsecurity=False).hexdigest()


@dataclass
class Existing:
    """What the table holds, as little as an upsert needs: key → content hash.

    ``eligible`` are the keys a full import would mark when missing from the file (active
    entities, inspectors not retired); ``hashes`` maps a row that must be rewritten whatever
    the file says (an inactive entity that reappears) to "".
    """

    hashes: dict[str, str] = field(default_factory=dict)
    eligible: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class Target:
    """How one file kind lands in its table."""

    table: str
    columns: tuple[str, ...]  # written columns, key first
    existing_sql: str  # SELECT id, key, … WHERE id > {p1} ORDER BY id LIMIT {p2}
    existing_row: Callable[[tuple], tuple[str, str, bool]]  # row → (key, hash, eligible)
    missing_sql: str | None = None  # UPDATE … for rows missing from a full export: params (now, key)
    #: columns whose value may be None: an update keeps the stored value, an insert writes this SQL value
    kept_when_none: dict[str, str] = field(default_factory=dict)


def _param(i: int) -> str:
    return f"${i}" if db.dialect() == "postgres" else "?"


def _entity_row(r) -> tuple[str, str, bool]:
    active = r[3] == "active"
    return r[1], (r[2] if active else ""), active


def _inspector_row(r) -> tuple[str, str, bool]:
    return r[1], r[2], r[3] != "retired"


def _plain_row(r) -> tuple[str, str, bool]:
    return r[1], r[2], False


def _department_row(r) -> tuple[str, str, bool]:
    return r[1], record_hash((r[1], r[2], r[3], r[4])), False


TARGETS = {
    "entities": Target(
        table="entity",
        columns=(
            "uscc",
            "name",
            "kind",
            "division_code",
            "address",
            "industry",
            "risk_class",
            "mobile",
            "lat",
            "lon",
            "status",
            "content_hash",
            "updated_at",
        ),
        existing_sql='SELECT "id", "uscc", "content_hash", "status" FROM "entity"',
        existing_row=_entity_row,
        missing_sql="""UPDATE "entity" SET "status" = 'inactive', "content_hash" = '', "updated_at" = {p1} WHERE "uscc" = {p2}""",
        # with a risk model in force the file gives no class: the computed one stays; a new entity is C
        # until the engine classifies it (docs/risk.md)
        kept_when_none={"risk_class": "'C'"},
    ),
    "inspectors": Target(
        table="inspector",
        columns=(
            "cert_no",
            "name",
            "department_id",
            "unit_id",
            "qualifications",
            "expertise",
            "mobile",
            "cert_expiry",
            "status",
            "wecom_userid",
            "content_hash",
            "updated_at",
        ),
        existing_sql='SELECT "id", "cert_no", "content_hash", "status" FROM "inspector"',
        existing_row=_inspector_row,
        missing_sql="""UPDATE "inspector" SET "status" = 'retired', "content_hash" = '', "updated_at" = {p1} WHERE "cert_no" = {p2}""",
    ),
    "items": Target(
        table="item",
        columns=(
            "code",
            "name",
            "department_id",
            "legal_basis",
            "target_kinds",
            "method",
            "qualifications",
            "content_hash",
        ),
        existing_sql='SELECT "id", "code", "content_hash" FROM "item"',
        existing_row=_plain_row,
    ),
    "departments": Target(
        table="department",
        columns=("code", "name", "level", "division_code"),
        existing_sql='SELECT "id", "code", "name", "level", "division_code" FROM "department"',
        existing_row=_department_row,
    ),
}


async def _pages(sql: str, connection=None) -> AsyncIterator[list]:
    """All rows of ``sql`` (which selects "id" first), read by keyset pages of plain tuples."""
    client = connection or db.conn()
    query = f'{sql} WHERE "id" > {_param(1)} ORDER BY "id" LIMIT {_param(2)}'
    last = 0
    while True:
        _, rows = await client.execute_query(query, [last, PAGE])
        if not rows:
            return
        yield rows
        last = rows[-1][0]


async def load_existing(kind: str) -> Existing:
    target = TARGETS[kind]
    found = Existing()
    async for rows in _pages(target.existing_sql):
        for row in rows:
            key, digest, eligible = target.existing_row(row)
            found.hashes[key] = digest
            if eligible:
                found.eligible.add(key)
    return found


async def load_departments() -> Departments:
    rows = []
    async for page in _pages('SELECT "id", "code", "name" FROM "department"'):
        rows.extend((r[0], r[1], r[2]) for r in page)
    return Departments.of(rows)


async def load_units(connection=None) -> dict[tuple[int, str], tuple[int, str]]:
    """``{(department id, unit name): (unit id, jurisdiction)}``."""
    units = {}
    async for page in _pages('SELECT "id", "department_id", "name", "jurisdiction" FROM "unit"', connection):
        for r in page:
            units[(r[1], r[2])] = (r[0], r[3])
    return units


async def upsert_units(wanted: dict[tuple[int, str], str], connection) -> tuple[int, int, dict[tuple[int, str], int]]:
    """Create missing units and move changed jurisdictions; return (created, updated, ids)."""
    have = await load_units(connection)
    new = [(dep, name, prefix) for (dep, name), prefix in wanted.items() if (dep, name) not in have]
    moved = [
        (prefix, have[(dep, name)][0])
        for (dep, name), prefix in wanted.items()
        if (dep, name) in have and have[(dep, name)][1] != prefix
    ]
    await db.bulk_insert("unit", ("department_id", "name", "jurisdiction"), new, connection=connection)
    if moved:
        await connection.execute_many(f'UPDATE "unit" SET "jurisdiction" = {_param(1)} WHERE "id" = {_param(2)}', moved)
    ids = {k: v[0] for k, v in (await load_units(connection)).items()}
    return len(new), len(moved), ids


def stamp(now: datetime):
    """``now`` as the driver takes it: asyncpg wants a datetime; for SQLite we pass the text the
    sqlite3 module's own datetime adapter would make, once per import instead of once per row."""
    return now if db.dialect() == "postgres" else now.isoformat(" ")


def _json(values) -> str:
    return json.dumps(list(values), ensure_ascii=False, separators=(",", ":"))


def db_row(kind: str, record: tuple, digest: str, now, unit_ids: dict | None = None) -> tuple:
    """A validated record as the tuple of ``TARGETS[kind].columns``, ready for the driver."""
    if kind == "entities":
        return (*record, "active", digest, now)
    if kind == "inspectors":
        cert_no, name, department_id, (unit_name, _), quals, expertise, mobile, expiry, status, userid = record
        unit_id = unit_ids[(department_id, unit_name)]
        return (
            cert_no,
            name,
            department_id,
            unit_id,
            _json(quals),
            expertise,
            mobile,
            expiry,
            status,
            userid,
            digest,
            now,
        )
    if kind == "items":
        code, name, department_id, legal_basis, kinds, method, quals = record
        return (code, name, department_id, legal_basis, _json(kinds), method, _json(quals), digest)
    return record


def insert_sql(kind: str) -> str:
    target = TARGETS[kind]
    columns = ", ".join(f'"{c}"' for c in target.columns)
    values = [
        f"COALESCE({_param(i)}, {target.kept_when_none[c]})" if c in target.kept_when_none else _param(i)
        for i, c in enumerate(target.columns, start=1)
    ]
    if not target.kept_when_none:
        return f'INSERT INTO "{target.table}" ({columns}) VALUES ({db.placeholders(len(target.columns))})'
    return f'INSERT INTO "{target.table}" ({columns}) VALUES ({", ".join(values)})'


def update_sql(kind: str) -> str:
    """Rewrite a row by key: every written column but the key (parameters: ``update_params``); a
    ``kept_when_none`` column given None keeps its stored value."""
    target = TARGETS[kind]
    sets = ", ".join(
        f'"{c}" = COALESCE({_param(i)}, "{c}")' if c in target.kept_when_none else f'"{c}" = {_param(i)}'
        for i, c in enumerate(target.columns[1:], start=1)
    )
    return f'UPDATE "{target.table}" SET {sets} WHERE "{target.columns[0]}" = {_param(len(target.columns))}'


def update_params(row: tuple) -> tuple:
    return (*row[1:], row[0])


async def free_userids(userids: list[str], connection) -> None:
    """Clear the WeCom userids the file's written rows give out wherever they are now held (the
    column is unique): two inspectors swapping theirs, or a departed member's userid given to a
    newcomer, would otherwise break the unique key half-way through the batches. A row not in
    the file that loses its userid has its ``content_hash`` cleared, like any change outside an
    import; the rows of the file are rewritten with their own values right after. ``userids`` are
    folded (``domain.wecom.fold_userid``): a userid is held in any case (the unique index)."""
    sql = f'UPDATE "inspector" SET "wecom_userid" = NULL, "content_hash" = \'\' WHERE {WECOM_USERID_KEY} = {_param(1)}'
    for start in range(0, len(userids), BATCH):
        await connection.execute_many(sql, [(u,) for u in userids[start : start + BATCH]])


async def mark_missing(kind: str, keys: list[str], now: datetime, connection) -> None:
    """Mark rows missing from a full export (entities inactive, inspectors retired); never delete."""
    sql = TARGETS[kind].missing_sql
    if not sql or not keys:
        return
    query = sql.format(p1=_param(1), p2=_param(2))
    for start in range(0, len(keys), BATCH):
        await connection.execute_many(query, [(now, k) for k in keys[start : start + BATCH]])
