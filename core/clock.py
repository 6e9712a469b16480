"""Time, injectable: services take a clock so tests (and the demo's fast clock) control it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware (UTC)."""


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 12, 1, 1, 0, tzinfo=UTC)
        if self._now.tzinfo is None:
            raise ValueError("FakeClock needs an aware datetime")

    def now(self) -> datetime:
        return self._now

    def set(self, when: datetime) -> None:
        self._now = when

    def advance(self, delta: timedelta | float) -> datetime:
        self._now += delta if isinstance(delta, timedelta) else timedelta(seconds=delta)
        return self._now


SYSTEM = SystemClock()


def utc(moment: datetime) -> datetime:
    """A time as it is stored: in UTC (SQLite compares stored text, so one offset everywhere)."""
    return moment.astimezone(UTC)


def local_minute(when: datetime | None, zone: tzinfo) -> str:
    """``YYYY-MM-DD HH:MM`` in ``zone``; the empty string for no time."""
    return when.astimezone(zone).strftime("%Y-%m-%d %H:%M") if when else ""
