"""What a person types, read in one place: numbers, ids, page numbers, months and search strings,
for the chat commands (``handlers/``), the button data (``core/callbacks.py``) and the public pages
(``bot/pages.py``) alike.

Every reader returns the value or ``None``; ``None`` means "not readable here" whatever the
reason (not a number, a digit Python accepts but nobody types — ``²``, ``①``, ``٣`` —, too big for
the column it names, a month outside the calendar we report on, a code longer than any code), and
the caller answers it exactly like malformed input. So nothing a person types reaches ``int()``,
a date constructor or a database column unchecked (issue 13 §4).

A Chinese phone keyboard types full-width forms (``２０２６-１２``, ``Ｐ１``, the ideographic space):
the readers of typed numbers, months, codes and credit codes fold them to ASCII first
(:func:`half_width`); nothing else is folded (NFKC would also turn ``²`` into ``2``).
"""

from __future__ import annotations

import re
import unicodedata

#: Row ids are INTEGER columns (PostgreSQL int4): nothing above this names a row.
MAX_ID = 2**31 - 1
#: Page numbers of lists and pages (ten to a page: far beyond any list, and the offset fits any column).
MAX_PAGE = 1_000_000
#: Months we report on: the platform's first year to the year before the calendar's last (so the
#: month after any readable month is a date too).
FIRST_YEAR, LAST_YEAR = 2000, 9998
#: Lengths of what is typed, by kind: a plan code (``plan.code``), a draw reference
#: (``draw.draw_ref``), a credit code (``entity.uscc``), a search by name (a full company name fits).
CODE_MAX = 32
REF_MAX = 64
USCC_LEN = 18
SEARCH_MAX = 50

_DIGITS = re.compile(r"[0-9]{1,12}")  # ASCII digits only: str.isdigit() also takes ² and ①
_MONTH = re.compile(r"([0-9]{4})-([0-9]{2})")
_CODE = re.compile(r"[0-9A-Za-z]{18}")
#: A command typed as text: a slash (ASCII or full-width), the name up to the first blank of any
#: kind (a space, the ideographic space, a line break), then the argument.
_COMMAND = re.compile(r"[/／](\S*)\s*(.*)", re.DOTALL)
#: Full-width ASCII forms (``ＡＢＣ１２３／＃``, U+FF01…U+FF5E) and the ideographic space, as ASCII.
_HALF_WIDTH = {0x3000: 0x20, **{c: c - 0xFEE0 for c in range(0xFF01, 0xFF5F)}}
#: How much of an unreadable input a reply repeats back (a reply must fit one chat message).
ECHO_MAX = 60


def half_width(text: str | None) -> str:
    """``text`` with full-width ASCII forms and the ideographic space folded to ASCII."""
    return (text or "").translate(_HALF_WIDTH)


def printable(text: str | None) -> str:
    """``text`` without control characters (line breaks kept; NUL is refused by PostgreSQL and
    by chat APIs) and lone surrogates (no encoder takes them); ``\r\n`` and tabs as ``\n`` and a space."""
    value = (text or "").replace("\r\n", "\n").replace("\r", "\n").replace("\t", " ")
    return "".join(c for c in value if c == "\n" or unicodedata.category(c) not in ("Cc", "Cs"))


def command(text: str | None) -> tuple[str, str] | None:
    """A command typed as text, where the client marks none (WeCom): ``(name, argument)`` — the
    name folded to ASCII lower case (``／ＴＡＳＫＳ`` is ``tasks``), the argument stripped and as
    typed — or ``None`` when the text is no command. Blanks before the slash are allowed; any
    blank ends the name, so ``/risk　食品`` (the ideographic space of a Chinese keyboard) and
    ``/risk`` + a line break + ``食品`` are ``("risk", "食品")``."""
    m = _COMMAND.match((text or "").lstrip())
    if m is None:
        return None
    return half_width(m.group(1)).lower(), m.group(2).strip()


def echo(text: str | None, maximum: int = ECHO_MAX) -> str:
    """What a reply repeats of input it could not read: at most ``maximum`` characters, cut with
    "…" (a 4,000-character argument echoed whole would make a reply too long to deliver)."""
    value = (text or "").strip()
    return value if len(value) <= maximum else value[: maximum - 1] + "…"


def number(text: str | None, *, minimum: int = 0, maximum: int = MAX_ID, typed: bool = False) -> int | None:
    """A whole number written in ASCII digits (surrounding blanks allowed), within
    [``minimum``, ``maximum``]; ``None`` otherwise. ``typed``: a person typed it, so full-width
    digits count (a button's data and a URL are machine-made and read strictly)."""
    raw = (half_width(text) if typed else (text or "")).strip()
    if not _DIGITS.fullmatch(raw):
        return None
    value = int(raw)
    return value if minimum <= value <= maximum else None


def ident(text: str | None) -> int | None:
    """A row id as typed (``12`` or ``#12``): 1 to :data:`MAX_ID`."""
    return number((text or "").strip().removeprefix("#"), minimum=1)


def page(text: str | None, default: int = 1) -> int:
    """A page number from a query string or a button: 1 to :data:`MAX_PAGE`; anything else (absent,
    zero, unreadable, too big) is ``default``."""
    value = number(text, minimum=1, maximum=MAX_PAGE)
    return default if value is None else value


def month(text: str | None) -> tuple[int, int] | None:
    """``YYYY-MM`` (ASCII digits) in :data:`FIRST_YEAR` … :data:`LAST_YEAR`, as (year, month)."""
    m = _MONTH.fullmatch(half_width(text).strip())
    if m is None:
        return None
    year, mon = int(m.group(1)), int(m.group(2))
    return (year, mon) if FIRST_YEAR <= year <= LAST_YEAR and 1 <= mon <= 12 else None


def word(text: str | None, maximum: int) -> str | None:
    """One argument such as a plan code or a draw reference: stripped, non-empty, at most
    ``maximum`` characters, no control characters; ``None`` otherwise."""
    value = half_width(text).strip()
    if not value or len(value) > maximum or not value.isprintable():
        return None
    return value


def search(text: str | None, maximum: int = SEARCH_MAX) -> str | None:
    """A search string: blanks collapsed, at most ``maximum`` characters, no control characters
    (its minimum length is the feature's rule, checked by its service); ``None`` if too long or
    unprintable, ``""`` if empty."""
    value = " ".join((text or "").split())
    if len(value) > maximum or not value.isprintable():
        return None
    return value


def looks_like_uscc(text: str) -> bool:
    """Whether ``text`` could be a unified social credit code (18 ASCII letters and digits)."""
    return bool(_CODE.fullmatch(text.strip()))


def uscc(text: str | None) -> str | None:
    """``text`` as a unified social credit code (18 letters and digits, full-width ones folded),
    upper-cased as the column holds it; ``None`` if it cannot be one, so only a code is ever
    compared with the credit-code column (a longer string fails the column's length check)."""
    value = half_width(text).strip()
    return value.upper() if _CODE.fullmatch(value) else None
