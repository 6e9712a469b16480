"""Import credit-risk indicator values: one observation a row, with the date it was observed.

The directories' rules hold (``importers/run.py``): CSV or XLSX, any encoding ``importers.read``
detects (GB18030 included), Chinese or English headers, every bad value reported by row and
column, and nothing written unless the whole file is good. A row is::

    统一社会信用代码 | 指标 | 指标值 | 采集日期
    91370202MA…      | penalties_3y (or its name, 近三年行政处罚次数) | 2 | 2026-11-30

The indicator is named by its code or its name in any stored model version (not one the engine
counts from published results: ``source = "results"``); the entity must be in the directory; the value is a finite number (是/否 read as 1/0); the date is not in the future.
History is kept: a value for a new date is added, the same entity, indicator and date again
replaces that observation only.
"""

from __future__ import annotations

import math
from datetime import date, datetime
from pathlib import Path

from core import db
from importers.columns import HeaderInvalid, map_header
from importers.errors import CellError, FileProblem, Invalid, visible
from importers.read import open_table
from importers.run import MAX_REPORTED, ImportResult
from importers.validate import date as parse_date
from importers.validate import uscc
from services.risk import versions

BATCH = 5_000
_BOOLEANS = {"是": 1.0, "否": 0.0, "true": 1.0, "false": 0.0, "yes": 1.0, "no": 0.0, "有": 1.0, "无": 0.0}


def number(value: str) -> float:
    text = value.strip().replace(",", "")
    if not text:
        raise Invalid("import_required")
    found = _BOOLEANS.get(text.lower())
    if found is not None:
        return found
    try:
        parsed = float(text)
    except ValueError:
        raise Invalid("import_number") from None
    if not math.isfinite(parsed) or abs(parsed) > 1e15:
        raise Invalid("import_number")
    return parsed


def observed(value: str, today: date) -> date:
    found = parse_date(value)
    if found is None:
        raise Invalid("import_required")
    if found > today:
        raise Invalid("import_date_future", today=today.isoformat())
    return found


async def _entity_ids() -> dict[str, int]:
    rows = await db.conn().execute_query('SELECT "uscc", "id" FROM "entity"')
    return {r[0]: r[1] for r in rows[1]}


async def import_indicators(path: Path | str, *, now: datetime, today: date) -> ImportResult:
    """Validate the whole file, then write every observation in one transaction, or nothing."""
    result = ImportResult(kind="indicators", path=str(path))
    try:
        table = open_table(Path(path))
    except FileProblem as problem:
        result.problems.append(problem)
        return result
    result.encoding = table.encoding
    try:
        mapping = map_header("indicators", table.header)
        names = await versions.indicator_names()
        if not names:
            raise FileProblem("import_no_risk_model")
        derived = await versions.derived_indicators()
        entities = await _entity_ids()
        good: list[tuple[int, str, float, date]] = []
        seen: dict[tuple[str, str, date], int] = {}
        for number_, cells in table.rows:
            if not "".join(cells).strip():
                continue
            result.rows += 1
            values = {f: (cells[i] if i < len(cells) else "") for f, i in mapping.items()}
            errors: list[tuple[str, Invalid]] = []
            parsed: dict[str, object] = {}
            for name, check in (
                ("uscc", lambda v: _entity(v, entities)),
                ("indicator", lambda v: _indicator(v, names, derived)),
                ("value", number),
                ("observed_on", lambda v: observed(v, today)),
            ):
                try:
                    parsed[name] = check(values[name])
                except Invalid as problem:
                    errors.append((name, problem))
            if not errors:
                key = (values["uscc"].strip(), str(parsed["indicator"]), parsed["observed_on"])
                first = seen.setdefault(key, number_)  # type: ignore[arg-type]
                if first != number_:
                    errors.append(("indicator", Invalid("import_duplicate_observation", first_row=first)))
            if errors:
                _bad(result, table.header, mapping, number_, values, errors)
            elif not result.error_count:
                entity_id = parsed["uscc"]
                good.append((entity_id, parsed["indicator"], parsed["value"], parsed["observed_on"]))  # type: ignore[arg-type]
        if result.ok and not result.rows:
            result.problems.append(FileProblem("import_no_data_rows"))
        if result.ok:
            await versions.store_values(good)
            result.inserted = len(good)
    except HeaderInvalid as invalid:
        result.problems.extend(invalid.problems)
    except FileProblem as problem:
        result.problems.append(problem)
    finally:
        table.close()
    return result


def _entity(value: str, entities: dict[str, int]) -> int:
    code = uscc(value.strip())
    found = entities.get(code)
    if found is None:
        raise Invalid("import_entity_unknown")
    return found


def _indicator(value: str, names: dict[str, str], derived: set[str]) -> str:
    text = value.strip()
    if not text:
        raise Invalid("import_required")
    found = names.get(text) or names.get(text.lower())
    if found is None:
        raise Invalid("import_indicator_unknown")
    if found in derived:
        raise Invalid("import_indicator_derived")
    return found


def _bad(result: ImportResult, header, mapping, row: int, values, errors) -> None:
    result.bad_rows += 1
    result.error_count += len(errors)
    for name, problem in errors:
        if len(result.errors) >= MAX_REPORTED:
            break
        column = mapping[name]
        result.errors.append(
            CellError(
                row=row,
                column=column,
                header=visible(header[column]),
                value=visible(values.get(name, "")),
                code=problem.code,
                params=problem.params,
            )
        )
