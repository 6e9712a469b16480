"""What can be wrong with an import file, as data: a text code and its parameters.

The words live in ``templates/<locale>/texts/import.j2`` (one macro per code); these objects
only say which text applies and with what values, so a report renders in any locale.
"""

from __future__ import annotations

from dataclasses import dataclass, field


def column_letter(index: int) -> str:
    """A 0-based column index as a spreadsheet names it: A, B, …, Z, AA, …"""
    n, letters = index + 1, ""
    while n:
        n, rest = divmod(n - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


_PICTURES = {c: 0x2400 + c for c in range(0x20)} | {0x7F: 0x2421}


def visible(value: str) -> str:
    """A bad value as a report may print it: control characters as their symbols (NUL → ␀,
    ESC → ␛), so a value from a file can never drive the terminal it is reported on."""
    return value.translate(_PICTURES)


class FileProblem(Exception):
    """The file as a whole cannot be imported (unreadable, empty, wrong header, …)."""

    def __init__(self, code: str, **params) -> None:
        super().__init__(code)
        self.code = code
        self.params = params


class Invalid(ValueError):
    """One value is unacceptable; raised by a field validator, caught by the row validator."""

    def __init__(self, code: str, **params) -> None:
        super().__init__(code)
        self.code = code
        self.params = params


@dataclass(frozen=True)
class CellError:
    """One bad value: its spreadsheet row, column (index and header as in the file), value, reason."""

    row: int
    column: int  # 0-based index into the file's header
    header: str
    value: str
    code: str
    params: dict = field(default_factory=dict)

    @property
    def column_letter(self) -> str:
        return column_letter(self.column)


class RowInvalid(Exception):
    """A row has one or more bad values (``errors`` lists them, row numbers filled in later)."""

    def __init__(self, errors: list[tuple[str, Invalid]]) -> None:
        super().__init__(f"{len(errors)} invalid values")
        self.errors = errors  # (field name, problem)
