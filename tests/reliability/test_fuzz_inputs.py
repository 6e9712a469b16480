"""Fuzzing (hypothesis) of the two file inputs an administrator hands the service: plan files and
directory spreadsheets. Whatever the file holds, the answer is either a result or our own clear
refusal — never another exception — and a refused file writes nothing.

* The plan-file loader (``services.plans.load_plan_file``: TOML or YAML → ``PlanSpec``) with the
  examples of ``examples/plans/`` mutated field by field (values of every type, keys removed and
  added) and written back as TOML and YAML, and byte by byte (flipped, truncated, other encodings),
  and arbitrary text: a ``PlanSpec`` or a ``PlanError`` whose message (rendered from the
  templates in both locales) names the field, or the file for a file-level problem.
* The spreadsheet importer (``importers.run.import_file``) with a valid entities file in CSV and
  XLSX mutated cell by cell (huge, empty, formula, control and hostile characters, duplicate keys,
  extra and missing columns, other encodings) and byte by byte: success with consistent counts, or
  a refusal with the row, column and reason of each bad value (or the file's problem), rendered in
  both locales — and the entity table exactly as it was. On SQLite and PostgreSQL.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import math
import tempfile
import tomllib
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from openpyxl.utils.exceptions import IllegalCharacterError

from core.render import render, text
from domain.plans import TOP_LEVEL, PlanError, PlanSpec, parse_plan
from importers.errors import CellError, FileProblem
from importers.run import import_file
from models.directory import Department, Entity
from models.plans import Plan
from services import plans
from services.plans import load_plan_file, read_plan_file
from tests.importers.files import ENTITY_HEADER, csv_bytes, entity
from tests.services import draw_world

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples" / "plans").glob("*.*"))
FILE_LEVEL = {"unknown_format", "unreadable", "not_utf8", "bad_syntax", "not_table"}
LOCALES = ("zh-CN", "en")
NOW = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)


# --- plan files -----------------------------------------------------------------------------------


def toml_key(key: str) -> str:
    return key if key and all(c.isascii() and (c.isalnum() or c in "_-") for c in key) else toml_string(key)


def toml_string(value: str) -> str:
    # JSON's escapes are TOML's; TOML also wants DEL escaped
    return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")


def toml_value(value) -> str | None:
    """A value as TOML (None: TOML has no null, the key is left out)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(v for v in map(toml_value, value) if v is not None) + "]"
    if isinstance(value, dict):
        pairs = [(toml_key(str(k)), toml_value(v)) for k, v in value.items()]
        return "{ " + ", ".join(f"{k} = {v}" for k, v in pairs if v is not None) + " }"
    raise TypeError(type(value))


def to_toml(doc: dict) -> str:
    """A small TOML writer (the project needs none): scalars first, then one [table] per dict."""
    lines, tables = [], []
    for key, value in doc.items():
        if isinstance(value, dict):
            tables.append((key, value))
        elif (v := toml_value(value)) is not None:
            lines.append(f"{toml_key(str(key))} = {v}")
    for key, table in tables:
        lines.append(f"\n[{toml_key(str(key))}]")
        lines += [f"{toml_key(str(k))} = {t}" for k, v in table.items() if (t := toml_value(v)) is not None]
    return "\n".join(lines) + "\n"


BASES = {p.name: read_plan_file(p) for p in EXAMPLES}

scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(10**30), 10**30)
    | st.floats()
    | st.text(max_size=40)
    | st.sampled_from(
        [
            "0.05",
            "1",
            "1.5",
            "-0.1",
            "0.1.2",
            "",
            " ",
            "*",
            "A",
            "F",
            "export",
            "SCJG",
            "09:00",
            "24:00",
            "2027-02-30",
            "2027-03-15T09:30",
            "0 9 1 * *",
            "* * *",
            "enterprise",
            "3702",
            "x" * 300,
            "<script>",
            "\u202e",
            "\x00",
            "replace",
            "alert",
        ]
    )
    | st.dates()
    | st.datetimes(timezones=st.none() | st.just(UTC))
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=8) | st.sampled_from(sorted(TOP_LEVEL)), inner, max_size=3)
    ),
    max_leaves=6,
)


@st.composite
def mutated_plan(draw, bases: dict | None = None) -> dict:
    """An example plan with a few fields changed, removed or added, anywhere in it."""
    bases = bases or BASES
    doc = json.loads(json.dumps(bases[draw(st.sampled_from(sorted(bases)))], default=str))
    for _ in range(draw(st.integers(1, 3))):
        table = doc
        while True:  # walk down a few levels
            keys = sorted(k for k in table) if isinstance(table, dict) else list(range(len(table)))
            if not keys:
                break
            key = draw(st.sampled_from(keys))
            inner = table[key]
            if isinstance(inner, (dict, list)) and inner and draw(st.booleans()):
                table = inner
                continue
            action = draw(st.sampled_from(["replace", "replace", "delete", "add"]))
            if action == "replace":
                table[key] = draw(values)
            elif action == "delete":
                del table[key]
            elif isinstance(table, dict):
                table[draw(st.text(min_size=1, max_size=8))] = draw(values)
            else:
                table.append(draw(values))
            break
    return doc


def plan_outcome(path: Path) -> PlanSpec | PlanError:
    """Load the file: a plan, or a PlanError whose message names the field (or the file)."""
    try:
        return load_plan_file(path)
    except PlanError as exc:
        return clear(exc)


def clear(exc: PlanError) -> PlanError:
    """The refusal is ours and clear: worded by the templates (both locales), naming the field by
    its path — or the file, for a file-level problem."""
    for locale in LOCALES:
        message = text("plan_error", locale, path=exc.path, error=exc.code, **exc.params)
        reason = message.split("：" if locale == "zh-CN" else ": ", 1)[-1]
        assert reason != exc.code, (exc, message)  # the template has words for it
        if exc.path:
            assert message.startswith(exc.path), (exc, message)
    if not exc.path:
        assert exc.code in FILE_LEVEL, exc
    else:
        root = exc.path.split(".")[0].split("[")[0]
        assert root in TOP_LEVEL or exc.code == "unknown_field", exc
    return exc


@settings(max_examples=150, deadline=None)
@given(doc=mutated_plan(), fmt=st.sampled_from(["toml", "yaml"]))
def test_a_mutated_plan_loads_or_is_refused_naming_the_field(tmp_path_factory, doc, fmt):
    path = tmp_path_factory.mktemp("plan") / f"plan.{fmt}"
    path.write_text(to_toml(doc) if fmt == "toml" else yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    got = plan_outcome(path)
    assert isinstance(got, (PlanSpec, PlanError))


# the test city's plan (tests.services.draw_world), whose departments and items the database holds
CITY_PLAN = tomllib.loads(
    draw_world.PLAN_TOML.format(
        code="P1",
        name="测试计划",
        departments='["SCJG"]',
        items='["SCJG-SP-01"]',
        flight="false",
        divisions='["3702"]',
        a="0.25",
        b="0.25",
        c="0.5",
        size=2,
        entity_days=0,
        inspector_days=0,
    )
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=mutated_plan({"city": CITY_PLAN}))
@example(doc={**CITY_PLAN, "name": "测试\x00计划"})
@example(doc={**CITY_PLAN, "name": "计" * 300})
@example(doc={**CITY_PLAN, "description": "\x1b[2J"})
@example(doc=CITY_PLAN)
async def test_a_mutated_plan_is_stored_whole_or_refused_with_nothing_written(db, tmp_path, doc):
    """``inspectbot plan add``: the plan stored, or a PlanError and the plan table as it was —
    never a database error (a NUL or a 300-character name once reached PostgreSQL)."""
    if not await Department.exists():
        await draw_world.build(n_entities=0, n_scjg=0, n_wsj=0)
    before = await Plan.all().order_by("id").values()
    path = tmp_path / "plan.toml"
    path.write_text(to_toml(doc), encoding="utf-8")
    try:
        added = await plans.add_plan(path, draw_world.clock())
    except PlanError as exc:
        clear(exc)
        assert await Plan.all().order_by("id").values() == before, exc
        return
    stored = await Plan.get(code=added.spec.code)
    assert stored.name == added.spec.name and parse_plan(stored.spec) == added.spec


def test_the_unmutated_examples_load(tmp_path):
    for path in EXAMPLES:
        assert isinstance(plan_outcome(path), PlanSpec), path
        # and the writers above are faithful: written back, the example loads to the same plan
        doc = BASES[path.name]
        toml_file, yaml_file = tmp_path / f"{path.stem}.toml", tmp_path / f"{path.stem}.yaml"
        toml_file.write_text(to_toml(doc), encoding="utf-8")
        yaml_file.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
        assert plan_outcome(path) == plan_outcome(toml_file) == plan_outcome(yaml_file)


@st.composite
def mangled_bytes(draw, raw: bytes, binary: bool = False) -> bytes:
    """The file's bytes damaged: flipped, cut, spliced with junk, or (a text file) re-encoded."""
    how = draw(st.sampled_from(["flip", "truncate", "insert"] + ([] if binary else ["encode", "nest"])))
    data = bytearray(raw)
    if how == "flip":
        for _ in range(draw(st.integers(1, 8))):
            i = draw(st.integers(0, len(data) - 1))
            data[i] ^= 1 << draw(st.integers(0, 7))
    elif how == "truncate":
        data = data[: draw(st.integers(0, len(data)))]
    elif how == "insert":
        i = draw(st.integers(0, len(data)))
        data[i:i] = draw(
            st.binary(min_size=1, max_size=20)
            | st.sampled_from(
                [b"\x00", b"\xef\xbb\xbf", b"\n[", b"{{", b"&a [*a]", b"!!python/object:os.system", b'"', b"'''"]
            )
        )
    elif how == "encode":
        encoding = draw(st.sampled_from(["utf-16", "utf-16-le", "utf-32", "gb18030", "latin-1", "utf-8-sig"]))
        data = bytearray(raw.decode("utf-8").encode(encoding, errors="replace"))
    else:  # nested deeper than any parser recurses
        depth = draw(st.sampled_from([100, 1000, 100_000]))
        data += b"\nzz = " + b"[" * depth + b"]" * depth + b"\n"
    return bytes(data)


@settings(max_examples=150, deadline=None)
@given(data=st.data(), name=st.sampled_from([p.name for p in EXAMPLES]))
def test_a_damaged_plan_file_loads_or_is_refused_clearly(tmp_path_factory, data, name):
    raw = (ROOT / "examples" / "plans" / name).read_bytes()
    path = tmp_path_factory.mktemp("plan") / name
    path.write_bytes(data.draw(mangled_bytes(raw)))
    assert isinstance(plan_outcome(path), (PlanSpec, PlanError))


@settings(max_examples=100, deadline=None)
@given(body=st.text(max_size=300), fmt=st.sampled_from(["toml", "yaml", "yml", "txt"]))
@example(body="a = " + "[" * 50_000, fmt="toml")
@example(body="[" * 50_000, fmt="yaml")
@example(body="code: 2027-02-30", fmt="yaml")
@example(body="schedule: {dates: [0000-01-01]}", fmt="yaml")
@example(body="schedule: {dates: [2027-01-01 10:00:00 +25:00]}", fmt="yaml")
@example(body="? [a]\n: 1", fmt="yaml")
@example(body="!!python/object/apply:os.system ['true']", fmt="yaml")
@example(body='code = "P1"\nname = "a\\u0000b"', fmt="toml")
@example(body='name: "\\ud800"', fmt="yaml")
def test_arbitrary_text_as_a_plan_file_is_refused_clearly(tmp_path_factory, body, fmt):
    path = tmp_path_factory.mktemp("plan") / f"plan.{fmt}"
    path.write_text(body, encoding="utf-8", errors="surrogatepass")
    assert isinstance(plan_outcome(path), (PlanSpec, PlanError))


@pytest.mark.parametrize(
    "field, value",
    [
        ("team.size", 10**12),
        ("team.size", 2**63),
        ("window.days", 10**9),
        ("window.start_after_days", 10**15),
        ("rotation.entity_days", 10**18),
        ("rotation.inspector_days", 10**10),
        ("response.working_days", 10**7),
        ("schedule.announce_days", 10**9),
    ],
)
def test_absurdly_large_numbers_are_refused_naming_the_field(tmp_path, field, value):
    """Not a plan that fails later (a team of 10¹² people, a window of a billion days): refused now."""
    doc = json.loads(json.dumps(BASES["food-safety.toml"], default=str))
    table, key = field.split(".")
    doc[table][key] = value
    path = tmp_path / "big.toml"
    path.write_text(to_toml(doc), encoding="utf-8")
    got = plan_outcome(path)
    assert isinstance(got, PlanError) and got.path == field and got.code == "too_large", got
    assert str(value) in text("plan_error", "zh-CN", path=got.path, error=got.code, **got.params)


# --- spreadsheets ---------------------------------------------------------------------------------

ROWS = [entity(i) for i in range(1, 6)]
HOSTILE = [
    "",
    " ",
    "x" * 300,
    "名" * 200_000,
    "=1+1",
    '=HYPERLINK("http://evil","点击")',
    "+86 138",
    "-5",
    "@SUM(A1)",
    "\x00",
    "a\x00b",
    "\x1b[31m",
    "\u202e\u0645\u0631\u062d\u0628\u0627",
    "👩‍👩‍👧‍👦",
    "e\u0301\u0301\u0301",
    "<script>alert(1)</script>",
    '"quoted"',
    "a,b",
    "a\nb",
    "\ud800",
    "NULL",
    "0" * 18,
    "ＡＢＣ",
]


@st.composite
def entity_rows(draw) -> tuple[list[str], list[list[str]]]:
    """The valid entity rows with some cells and columns changed, then some rows reshaped."""
    header = list(ENTITY_HEADER)
    rows = [[r[h] for h in header] for r in ROWS]
    for _ in range(draw(st.integers(1, 4))):
        how = draw(st.sampled_from(["cell", "cell", "cell", "duplicate", "drop_column", "extra_column", "rename"]))
        r = draw(st.integers(0, len(rows) - 1))
        c = draw(st.integers(0, len(header) - 1)) if header else 0
        if how == "cell" and header:
            rows[r][c] = draw(st.sampled_from(HOSTILE) | st.text(max_size=30))
        elif how == "duplicate" and header:
            rows[r][0] = rows[(r + 1) % len(rows)][0]
        elif how == "drop_column" and header:
            del header[c]
            for row in rows:
                del row[c]
        elif how == "extra_column":
            header.append(draw(st.sampled_from(["", "备注", "名称", "统一社会信用代码"])))
            for row in rows:
                row.append(draw(st.sampled_from(["", "x", "=1+1"])))
        elif how == "rename" and header:
            header[c] = draw(st.sampled_from(HOSTILE[:12]) | st.text(max_size=10))
    for _ in range(draw(st.integers(0, 2))):
        how = draw(st.sampled_from(["blank_row", "short_row", "long_row"]))
        r = draw(st.integers(0, len(rows) - 1))
        if how == "blank_row":
            rows.insert(r, [""] * len(header))
        elif how == "short_row":
            rows[r] = rows[r][: draw(st.integers(0, len(rows[r])))]
        else:
            rows[r] = rows[r] + ["多余"] * draw(st.integers(1, 3))
    return header, rows


async def entity_table() -> list:
    return (
        await Entity.all()
        .order_by("uscc")
        .values_list(
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
        )
    )


async def check_import(path: Path) -> None:
    """Import the file: a consistent success, or a clear refusal that wrote nothing."""
    before = await entity_table()
    result = await import_file("entities", path, now=NOW)
    for locale in LOCALES:
        report = render("cli/import_report.txt", locale=locale, r=result)
        assert report.strip()
    if result.ok:
        after = await entity_table()
        assert result.rows >= 1 and result.inserted + result.updated + result.unchanged <= result.rows
        assert len(after) == len(before) + result.inserted
        return
    assert await entity_table() == before
    assert result.problems or result.errors
    assert "没有写入任何数据" in render("cli/import_report.txt", locale="zh-CN", r=result)
    for problem in result.problems:
        assert isinstance(problem, FileProblem)
        for locale in LOCALES:
            assert text(problem.code, locale, **problem.params).strip()
    for error in result.errors:
        assert isinstance(error, CellError) and error.row >= 2 and error.code, error
        # the column (-1: a field whose column the file lacks, e.g. latitude without longitude)
        assert error.column >= 0 or (error.header == "" and error.column == -1), error
        for locale in LOCALES:
            assert text(error.code, locale, **error.params).strip()


def write_rows(path: Path, header: list[str], rows: list[list[str]], encoding: str) -> Path:
    buffer = io.StringIO()
    out = csv.writer(buffer, lineterminator="\r\n")
    out.writerow(header)
    out.writerows(rows)
    path.write_bytes(buffer.getvalue().encode(encoding, errors="surrogatepass" if "utf" in encoding else "replace"))
    return path


fuzz_db = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@fuzz_db
@given(table=entity_rows(), encoding=st.sampled_from(["utf-8", "utf-8-sig", "gb18030", "utf-16"]))
async def test_a_mutated_csv_imports_or_is_refused_with_row_and_column(db, tmp_path, table, encoding):
    header, rows = table
    await check_import(write_rows(tmp_path / "entities.csv", header, rows, encoding))


@fuzz_db
@given(data=st.data())
async def test_a_damaged_csv_imports_or_is_refused_whole(db, tmp_path, data):
    raw = csv_bytes(ENTITY_HEADER, ROWS)
    path = tmp_path / "entities.csv"
    path.write_bytes(data.draw(mangled_bytes(raw)))
    await check_import(path)


def write_book(path: Path, header: list, rows: list[list]) -> Path:
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.append(header)
    for row in rows:
        sheet.append(row)
    book.save(path)
    return path


XLSX_CELLS = [
    None,
    0,
    -1,
    3.5,
    1e300,
    float("nan"),
    True,
    date(2027, 1, 1),
    datetime(2027, 1, 1, 8, 30),
    "=1+1",
    "=A1",
    "=1/0",
    "名" * 40_000,
    "\u202e右到左",
    "👩‍👩‍👧‍👦",
    "<b>",
    "",
]


@st.composite
def book_rows(draw) -> tuple[list, list[list]]:
    header, rows = draw(entity_rows())
    for _ in range(draw(st.integers(0, 3))):  # typed cells a workbook can hold and a CSV cannot
        r = draw(st.integers(0, len(rows) - 1))
        if rows[r]:
            c = draw(st.integers(0, len(rows[r]) - 1))
            rows[r][c] = draw(st.sampled_from(XLSX_CELLS))
    # openpyxl refuses control characters in cells: those go in as they would from Excel (not at all)
    clean = lambda v: v.replace("\x00", "").replace("\x1b", "") if isinstance(v, str) else v  # noqa: E731
    return [clean(h) for h in header], [[clean(v) for v in row] for row in rows]


@fuzz_db
@given(table=book_rows())
async def test_a_mutated_workbook_imports_or_is_refused_with_row_and_column(db, tmp_path, table):
    header, rows = table
    try:
        path = write_book(tmp_path / "entities.xlsx", header, rows)
    except IllegalCharacterError:  # openpyxl will not write it (a control character): nobody can send it
        return
    await check_import(path)


@functools.cache
def good_book() -> bytes:
    """The valid workbook's bytes, made once (a zip records the time: each save differs a little)."""
    with tempfile.TemporaryDirectory() as folder:
        return write_book(
            Path(folder) / "good.xlsx", ENTITY_HEADER, [[r[h] for h in ENTITY_HEADER] for r in ROWS]
        ).read_bytes()


@fuzz_db
@given(data=st.data())
async def test_a_damaged_workbook_imports_or_is_refused_whole(db, tmp_path, data):
    path = tmp_path / "entities.xlsx"
    path.write_bytes(data.draw(mangled_bytes(good_book(), binary=True)))
    await check_import(path)


async def test_each_kind_of_refusal_is_really_reached(db, tmp_path):
    """The fuzzers above are not vacuous: a huge cell, a NUL, a formula, a duplicate key, a cut
    workbook each get their own refusal, and the valid file imports."""
    rows = [[r[h] for h in ENTITY_HEADER] for r in ROWS]
    cases = {
        "import_too_long": (1, "名" * 200_000),
        "import_control_chars": (4, "a\x00b"),
        "import_duplicate_key": (0, rows[1][0]),
    }
    for code, (column, value) in cases.items():
        changed = [list(r) for r in rows]
        changed[2][column] = value
        result = await import_file(
            "entities", write_rows(tmp_path / f"{code}.csv", ENTITY_HEADER, changed, "utf-8"), now=NOW
        )
        assert [(e.row, e.column, e.code) for e in result.errors] == [(4, column, code)], result.errors
    cut = write_book(tmp_path / "cut.xlsx", ENTITY_HEADER, rows)
    cut.write_bytes(cut.read_bytes()[: len(cut.read_bytes()) // 2])
    result = await import_file("entities", cut, now=NOW)
    assert [p.code for p in result.problems] == ["import_xlsx_unreadable"]
    assert await Entity.all().count() == 0
    assert (await import_file("entities", write_rows(tmp_path / "ok.csv", ENTITY_HEADER, rows, "utf-8"), now=NOW)).ok
    assert await Entity.all().count() == len(rows)
