"""Import one directory file: validate it whole, then write it in one transaction, or write nothing.

1. open the file (encoding detected) and map its header;
2. stream every row through its validator: bad values are collected (all counted, the first 50
   kept for the report), duplicates of a key inside the file are bad values too, and good rows
   are compared with the database by ``content_hash`` and spooled as inserts or updates;
3. only if no row was bad: one transaction writes the spooled rows and, for a full export,
   marks the rows the file no longer lists (entities inactive, inspectors retired).

Departments must be imported before items and inspectors (they name departments); inspectors'
units are created from the inspectors file.
"""

from __future__ import annotations

import asyncio
import csv
import functools
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol

from tortoise.transactions import in_transaction

from domain.wecom import fold_userid
from importers import write
from importers.columns import HeaderInvalid, map_header
from importers.errors import CellError, FileProblem, Invalid, RowInvalid, visible
from importers.read import Table, open_table
from importers.spool import INSERT, UPDATE, Spool
from importers.validate import RECORDS, VALIDATORS, Departments, key, uscc, validate_entity
from services import audit
from services.risk import versions

MAX_REPORTED = 50
PROGRESS_STEP = 1_000
KEY_CHECKS = {"entities": uscc, "inspectors": key, "items": key, "departments": key}


class Progress(Protocol):
    def update(self, n: int) -> None: ...
    def close(self) -> None: ...


ProgressFactory = Callable[[str, "int | None"], Progress]  # (phase "validate"|"write", total)


@dataclass
class ImportResult:
    kind: str
    path: str
    encoding: str = ""
    partial: bool = False
    rows: int = 0  # data rows read (blank rows skipped)
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    marked_missing: int = 0  # entities made inactive / inspectors retired (full export only)
    missing_kept: int = 0  # not in the file and left as they are (partial export; items, departments)
    units_created: int = 0
    units_updated: int = 0
    problems: list[FileProblem] = field(default_factory=list)  # the file as a whole
    errors: list[CellError] = field(default_factory=list)  # the first MAX_REPORTED bad values
    error_count: int = 0
    bad_rows: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems and not self.error_count


async def import_file(
    kind: str,
    path: Path | str,
    *,
    now: datetime,
    partial: bool = False,
    progress: ProgressFactory | None = None,
    actor: str = "cli",
    max_missing_share: float | None = None,
) -> ImportResult:
    """Import ``path`` as a ``kind`` file (departments, items, entities, inspectors). A written
    import goes on the audit chain as ``actor``'s (``directory.imported``: the file's SHA-256 and
    the counts), in the write's transaction.

    A full (not ``partial``) file makes the rows it lacks inactive; with ``max_missing_share``
    an import that would do so to more than that share of the active rows writes nothing and
    says how many (a one-row file meant as a partial export must not retire the directory)."""
    result = ImportResult(kind=kind, path=str(path), partial=partial)
    try:
        table = open_table(Path(path))
    except FileProblem as problem:
        result.problems.append(problem)
        return result
    result.encoding = table.encoding
    try:
        # once a risk model is in force the engine computes the classes: 信用风险等级 may be left out,
        # and a value in it is refused (docs/risk.md, "Classes are computed, not imported")
        computed = kind == "entities" and await versions.in_force() is not None
        mapping = map_header(kind, table.header, frozenset({"risk_class"}) if computed else frozenset())
        refs = await write.load_departments() if kind in ("items", "inspectors") else None
        existing = await write.load_existing(kind)
        with Spool() as spool:
            check = _Checker(kind, table, mapping, refs, existing, spool, result)
            if computed:
                check.validator = functools.partial(validate_entity, computed=True)
            check.run(progress)
            if result.ok and not result.rows:
                result.problems.append(FileProblem("import_no_data_rows"))
            if result.ok:
                await _write(kind, spool, check, existing, now, partial, result, progress, actor, max_missing_share)
    except HeaderInvalid as invalid:
        result.problems.extend(invalid.problems)
    except FileProblem as problem:
        result.problems.append(problem)
    finally:
        table.close()
    return result


class _Checker:
    """The validation pass: one streaming read of the file."""

    def __init__(self, kind, table: Table, mapping, refs: Departments | None, existing, spool: Spool, result):
        self.kind, self.table, self.mapping, self.refs = kind, table, mapping, refs
        self.existing, self.spool, self.result = existing, spool, result
        self.validator = VALIDATORS[kind]
        self.key_field = RECORDS[kind][0]  # the key's field name, first in every record
        self.seen: dict[str, int] = {}  # key → first row number
        self.units: dict[tuple[int, str], tuple[str, int]] = {}  # inspectors: unit → (prefix, first row)
        self.userids: dict[str, tuple[int, str]] = {}  # inspectors: folded WeCom userid → (first row, as spelt)
        self.written_userids: set[str] = set()  # inspectors: the folded userids of the rows to write

    def run(self, progress: ProgressFactory | None) -> None:
        bar = progress("validate", self.table.rows_hint) if progress else None
        fields = list(self.mapping.items())
        header_width = len(self.table.header)
        unlabelled = [i for i in range(header_width) if i not in self.mapping.values()]  # empty header cells
        pending = 0
        number = 1
        try:
            for number, cells in self.table.rows:
                pending += 1
                if pending == PROGRESS_STEP and bar:
                    bar.update(pending)
                    pending = 0
                if not "".join(cells).strip():
                    continue  # a blank row, as spreadsheets leave at the end
                width = len(cells)
                values = {f: (cells[i] if i < width else "") for f, i in fields}
                stray = ()
                if unlabelled or width > header_width:  # data under no header would be lost
                    stray = [i for i in (*unlabelled, *range(header_width, width)) if i < width and cells[i].strip()]
                self.row(number, values, [(i, cells[i]) for i in stray])
        except UnicodeDecodeError:  # detection read the whole file, so this cannot happen
            raise FileProblem("import_undecodable", row=0) from None
        except csv.Error as exc:  # a cell over the reader's limit: the row after the last one read
            raise FileProblem("import_csv_unreadable", row=number + 1, reason=str(exc)) from None
        finally:
            if bar:
                bar.update(pending)
                bar.close()

    def row(self, number: int, values: dict[str, str], stray: list[tuple[int, str]]) -> None:
        """Validate one row; spool it if it is good and the file has no error so far."""
        self.result.rows += 1
        errors: list[tuple[str, Invalid]] = []
        try:
            record = self.validator(values, self.refs)
            row_key = record[0]
            self._check_duplicate(row_key, number)
            if self.kind == "inspectors":
                self._check_unit(record, number)
                self._check_userid(record[-1], number)
        except RowInvalid as bad:
            errors = bad.errors
        if errors or stray:
            self._bad(number, values, errors, stray)
            return
        if self.result.error_count:
            return  # the file is rejected already: only look for more errors
        digest = write.record_hash(record)
        old = self.existing.hashes.get(row_key)
        if old is None:
            self.spool.add(INSERT, (record, digest))
        elif old == digest:
            self.result.unchanged += 1
            return
        else:
            self.spool.add(UPDATE, (record, digest))
        if self.kind == "inspectors" and record[-1]:
            self.written_userids.add(fold_userid(record[-1]))

    def _check_duplicate(self, row_key: str, number: int) -> None:
        first = self.seen.get(row_key)
        if first is not None:
            raise RowInvalid([(self.key_field, Invalid("import_duplicate_key", first_row=first))])
        self.seen[row_key] = number

    def _check_userid(self, userid: str | None, number: int) -> None:
        """One WeCom userid, one inspector: a userid twice in the file is refused (it names a person),
        in any case — WeCom ignores case, ``ZhangSan`` and ``zhangsan`` are one member."""
        if not userid:
            return
        first = self.userids.get(fold_userid(userid))
        if first is not None:
            problem = Invalid("import_duplicate_wecom_userid", first_row=first[0], first=first[1], userid=userid)
            raise RowInvalid([("wecom_userid", problem)])
        self.userids[fold_userid(userid)] = (number, userid)

    def _check_unit(self, record: tuple, number: int) -> None:
        """One unit, one jurisdiction: every row naming a unit must give it the same division."""
        name, prefix = record[3]
        unit = (record[2], name)
        first = self.units.get(unit)
        if first is None:
            self.units[unit] = (prefix, number)
        elif first[0] != prefix:
            raise RowInvalid([("unit_division", Invalid("import_unit_conflict", first_row=first[1], prefix=first[0]))])

    def _bad(self, number: int, values: dict[str, str], errors: list[tuple[str, Invalid]], stray) -> None:
        """Record a bad row; its key still counts for duplicate detection when it is valid."""
        result = self.result
        result.bad_rows += 1
        result.error_count += len(errors) + len(stray)
        if not any(f == self.key_field for f, _ in errors):
            try:
                self.seen.setdefault(KEY_CHECKS[self.kind](values.get(self.key_field, "")), number)
            except Invalid:
                pass
        for name, problem in sorted(errors, key=lambda e: self.mapping.get(e[0], -1)):  # in column order
            if len(result.errors) >= MAX_REPORTED:
                break
            column = self.mapping.get(name, -1)
            header = self.table.header[column] if column >= 0 else ""
            result.errors.append(
                CellError(
                    row=number,
                    column=column,
                    header=visible(header),
                    value=visible(values.get(name, "")),
                    code=problem.code,
                    params=problem.params,
                )
            )
        for column, value in stray:
            if len(result.errors) >= MAX_REPORTED:
                break
            header = self.table.header[column] if column < len(self.table.header) else ""
            result.errors.append(
                CellError(
                    row=number,
                    column=column,
                    header=visible(header),
                    value=visible(value),
                    code="import_value_without_header",
                )
            )


def file_sha256(path: Path | str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


async def _write(
    kind, spool: Spool, check: _Checker, existing, now, partial, result, progress, actor, max_missing_share=None
) -> None:
    """The write phase: one transaction for the whole file, its audit record included."""
    sha = await asyncio.to_thread(file_sha256, result.path)
    absent = [k for k in existing.hashes if k not in check.seen]
    if partial or write.TARGETS[kind].missing_sql is None:
        missing, result.missing_kept = [], len(absent)
    else:  # rows already inactive/retired stay as they are and are not counted again
        missing = [k for k in absent if k in existing.eligible]
    active = len(existing.eligible)
    if max_missing_share is not None and missing and len(missing) > max_missing_share * active:
        result.problems.append(
            FileProblem(
                "import_mass_deactivation", count=len(missing), active=active, share=round(max_missing_share * 100)
            )
        )
        return
    total = spool.counts[INSERT] + spool.counts[UPDATE] + len(missing)
    bar = progress("write", total) if progress and total else None
    try:
        async with in_transaction() as conn:
            unit_ids = None
            if kind == "inspectors":
                wanted = {unit: prefix for unit, (prefix, _) in check.units.items()}
                result.units_created, result.units_updated, unit_ids = await write.upsert_units(wanted, conn)
            stamp = write.stamp(now)
            batches = (
                (op, [write.db_row(kind, record, digest, stamp, unit_ids) for record, digest in batch])
                for op, batch in spool.batches()
            )
            if kind == "inspectors":  # userids that move (a swap, a departed member's reused) are freed first
                await write.free_userids(sorted(check.written_userids), conn)
            await _write_batches(kind, batches, conn, result, bar)
            await write.mark_missing(kind, missing, stamp, conn)
            result.marked_missing = len(missing)
            await audit.append(
                actor,
                "directory.imported",
                f"import:{kind}",
                {
                    "file": Path(result.path).name,
                    "sha256": sha,
                    "partial": partial,
                    "rows": result.rows,
                    "added": result.inserted,
                    "changed": result.updated,
                    "unchanged": result.unchanged,
                    "deactivated": result.marked_missing,
                },
                now,
                conn,
            )
            if bar:
                bar.update(len(missing))
    finally:
        if bar:
            bar.close()


async def _write_batches(kind, batches, conn, result, bar) -> None:
    """Send the batches to the database, preparing the next one while the driver writes this one.

    aiosqlite writes in its own thread (and SQLite releases the GIL while it works), so reading
    and converting the next batch from the spool overlaps with the write of the previous one.
    """
    insert, update = write.insert_sql(kind), write.update_sql(kind)

    async def send(op: str, rows: list[tuple]) -> None:
        if op == INSERT:
            await conn.execute_many(insert, rows)
            result.inserted += len(rows)
        else:
            await conn.execute_many(update, [write.update_params(r) for r in rows])
            result.updated += len(rows)
        if bar:
            bar.update(len(rows))

    pending: asyncio.Future | None = None
    try:
        for op, rows in batches:  # the generator prepares a batch while ``pending`` is written
            if pending is not None:
                await pending
            pending = asyncio.ensure_future(send(op, rows))
            await asyncio.sleep(0)  # let it hand its batch to the driver before preparing the next
        if pending is not None:
            await pending
    finally:
        if pending is not None and not pending.done():
            pending.cancel()
