"""The one rule of flight (unannounced) inspections: a flight draw is sealed until its reveal.

Until then nobody but its coordinators learns which entities it drew: not the public pages, not
the inspectors' task lists, not the on-site flow. The rule lives here once, in two forms that must
agree (tests/domain/test_sealing.py runs both over the same cases): :func:`is_sealed` for values
in Python and :data:`REVEALED_SQL` for a query over a draw row aliased ``d``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol


class Sealable(Protocol):
    """What :func:`draw_is_sealed` reads: a Draw row, a dataclass of raw columns."""

    @property
    def flight(self) -> bool: ...
    @property
    def reveal_at(self) -> datetime | None: ...
    @property
    def revealed_at(self) -> datetime | None: ...


def is_sealed(flight: bool, reveal_at: datetime | None, revealed_at: datetime | None, now: datetime) -> bool:
    """True while a flight draw's list may not be shown: it was not revealed explicitly and its
    reveal time (if any) has not come. Draws that are not flights are never sealed."""
    if not flight or revealed_at is not None:
        return False
    return reveal_at is None or now < reveal_at


def is_revealed(flight: bool, reveal_at: datetime | None, revealed_at: datetime | None, now: datetime) -> bool:
    return not is_sealed(flight, reveal_at, revealed_at, now)


#: "Not sealed" for a draw aliased ``d``; takes one parameter: now (UTC).
REVEALED_SQL = "(d.flight = FALSE OR d.revealed_at IS NOT NULL OR (d.reveal_at IS NOT NULL AND d.reveal_at <= ?))"


def draw_is_sealed(draw: Sealable, now: datetime) -> bool:
    """:func:`is_sealed` on anything with ``flight``, ``reveal_at`` and ``revealed_at`` (a Draw
    row, a dataclass of raw columns)."""
    return is_sealed(bool(draw.flight), draw.reveal_at, draw.revealed_at, now)
