"""The public reference of an inspection: the draw's reference, a slash, the inspection's number.

A draw's reference is already public and unique (``P1/2026-12-01``, a second draw of the plan on
the same day ``P1/2026-12-01.2``; the plan code never holds a ``/``), so ``P1/2026-12-01/7`` names
one inspection for good, on every draw page, in every chat message and in every command that takes
an inspection. Internal row ids are never shown.

:func:`parse` reads what a person types on a phone: full-width characters (``Ｐ１／…``), a blank,
``#`` or ``第…号`` in place of the last slash, and a bare number (``7``, ``#7``, ``第7号``) that
means "my inspection number 7" (the caller resolves it among the sender's own tasks and asks when
two draws both have a number 7).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from domain.inputs import half_width

#: Inspection numbers are small (one draw's sample); anything longer is not a number we issued.
NO_DIGITS = 6
_DRAW = r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,31}/[0-9]{4}-[0-9]{2}-[0-9]{2}(?:\.[0-9]{1,3})?"
_NO = r"(?:第\s*)?([0-9]{1," + str(NO_DIGITS) + r"})\s*号?"
_FULL = re.compile("(" + _DRAW + r")\s*(?:/|#|\s)\s*" + _NO)
_BARE = re.compile(r"(?:#|No\.?\s*)?" + _NO, re.IGNORECASE)


@dataclass(frozen=True)
class Ref:
    """A typed reference: ``draw_ref`` is ``None`` for a bare number (one of the sender's own)."""

    draw_ref: str | None
    no: int


def inspection_ref(draw_ref: str, no: int) -> str:
    """The one way an inspection is shown: ``P1/2026-12-01/7``."""
    return f"{draw_ref}/{no}"


def parse(text: str | None) -> Ref | None:
    """What a person typed as an inspection, or ``None`` if it is not one."""
    raw = half_width(text).strip()  # a Chinese phone keyboard's ＡＢＣ１２３／＃ read as ASCII
    if not raw or len(raw) > 64:
        return None
    full = _FULL.fullmatch(raw)
    if full is not None:
        no = int(full.group(2))
        return Ref(full.group(1), no) if no >= 1 else None
    bare = _BARE.fullmatch(raw)
    if bare is not None and int(bare.group(1)) >= 1:
        return Ref(None, int(bare.group(1)))
    return None
