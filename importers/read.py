"""Reading a directory export: CSV or XLSX, as rows of strings numbered as a spreadsheet shows them.

Regulators export from Excel and from their platforms: UTF-8 with or without a BOM, GB18030/GBK
(Excel's "CSV" on Chinese Windows), sometimes UTF-16 ("Unicode text", tab-separated). The
encoding is detected by decoding the whole file strictly, so a file is either read exactly or
refused with the row of the first undecodable byte; nothing is guessed.

Rows stream: a million-row file is never held in memory. Row 1 is the header; data rows are
numbered from 2, blank rows included, so a number in an error report is the row the user sees.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from importers.errors import FileProblem

CHUNK = 1 << 20
# Tried in this order after the BOM checks. UTF-8 first: GBK text practically never decodes as
# UTF-8, while almost any byte string decodes as *something* in a legacy code page.
FALLBACK_ENCODINGS = ("utf-8", "gb18030")
DELIMITERS = (",", "\t", ";")
# A cell longer than this is refused as unreadable; anything shorter reaches the validators, which
# name its row and column (a 200,000-character name is "too long", not a CSV error).
MAX_CSV_FIELD = 1 << 24
csv.field_size_limit(max(csv.field_size_limit(), MAX_CSV_FIELD))
XLSX_MAGIC = b"PK\x03\x04"

Row = tuple[int, list[str]]


@dataclass
class Table:
    """A header and a one-shot iterator of ``(row number, cells)``; ``rows_hint`` sizes a progress bar."""

    header: list[str]
    rows: Iterator[Row]
    encoding: str  # "xlsx" for a workbook
    rows_hint: int | None
    close: Callable[[], None]


def open_table(path: Path) -> Table:
    """Open a CSV or XLSX file (told apart by content, not by name) positioned after its header."""
    path = Path(path)
    if not path.is_file():
        raise FileProblem("import_file_missing", path=str(path))
    with path.open("rb") as fh:
        head = fh.read(4)
    if not head:
        raise FileProblem("import_file_empty")
    if head == XLSX_MAGIC:
        return _open_xlsx(path)
    return _open_csv(path)


# --- CSV -------------------------------------------------------------------------------------


def detect_encoding(path: Path) -> tuple[str, int]:
    """The encoding that decodes the whole file without error, and the number of lines.

    Reads the file in chunks with incremental decoders (memory stays flat); the line count is a
    by-product used for the progress bar.
    """
    with path.open("rb") as fh:
        start = fh.read(4)
    if start.startswith(codecs.BOM_UTF8):
        candidates: tuple[str, ...] = ("utf-8-sig",)
    elif start.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        candidates = ("utf-16",)
    else:
        candidates = FALLBACK_ENCODINGS
    bad_row = 0
    for encoding in candidates:
        ok, lines = _decodes(path, encoding)
        if ok:
            return encoding, lines
        bad_row = lines  # the last candidate's failure: where no encoding we know fits
    raise FileProblem("import_undecodable", row=bad_row)


def _decodes(path: Path, encoding: str) -> tuple[bool, int]:
    """(True, line count) if ``encoding`` decodes the file, else (False, row of the first bad byte).

    Lines are counted as 0x0A bytes: exact for UTF-8 and GB18030, an estimate for UTF-16.
    """
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    lines = 0
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                return False, lines + chunk[: exc.start].count(b"\n") + 1
            lines += chunk.count(b"\n")
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return False, lines + 1
    return True, lines


def sniff_delimiter(line: str) -> str:
    """The delimiter of a header line: the most frequent of comma, tab and semicolon."""
    return max(DELIMITERS, key=line.count)


def _open_csv(path: Path) -> Table:
    encoding, lines = detect_encoding(path)
    fh = path.open("r", encoding=encoding, newline="")
    try:
        first = fh.readline()
        if not first.strip():
            raise FileProblem("import_file_empty")
        fh.seek(0)
        reader = csv.reader(fh, delimiter=sniff_delimiter(first), strict=False)
        header = next(reader)
    except csv.Error as exc:
        fh.close()
        raise FileProblem("import_csv_unreadable", row=1, reason=str(exc)) from None
    except BaseException:
        fh.close()
        raise

    rows: Iterator[Row] = enumerate(reader, start=2)
    return Table(header=header, rows=rows, encoding=encoding, rows_hint=max(lines - 1, 0), close=fh.close)


# --- XLSX ------------------------------------------------------------------------------------


def cell_text(value) -> str:
    """A workbook cell as the text a user typed: 370202 not 370202.0, dates as YYYY-MM-DD."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if value.time() == dt.time() else value.isoformat(sep=" ")
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    return str(value)


def _open_xlsx(path: Path) -> Table:
    from openpyxl import load_workbook

    # A damaged workbook fails in many ways inside zipfile, zlib and the XML parsers (BadZipFile,
    # zlib.error, EOFError, ParseError, KeyError, …), on opening or on any later row: each is
    # "unreadable", never a crash.
    try:
        book = load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:
        raise FileProblem("import_xlsx_unreadable", reason=type(exc).__name__) from exc
    try:
        sheet = book.worksheets[0]
        values = sheet.iter_rows(min_row=1, values_only=True)
        first = next(values, None)
        header = [cell_text(v) for v in first] if first is not None else []
    except Exception as exc:
        book.close()
        raise FileProblem("import_xlsx_unreadable", reason=type(exc).__name__) from exc
    while header and not header[-1].strip():
        header.pop()  # trailing formatted-but-empty columns
    if not any(h.strip() for h in header):
        book.close()
        raise FileProblem("import_file_empty")

    def rows() -> Iterator[Row]:
        try:
            for number, cells in enumerate(values, start=2):
                yield number, [cell_text(v) for v in cells]
        except Exception as exc:
            raise FileProblem("import_xlsx_unreadable", reason=type(exc).__name__) from exc

    hint = (sheet.max_row - 1) if sheet.max_row else None
    return Table(header=header, rows=rows(), encoding="xlsx", rows_hint=hint, close=book.close)
