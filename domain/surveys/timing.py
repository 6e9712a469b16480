"""When survey messages may go out: quiet hours, the reminder and the expiry. Pure, stdlib only.

Mainland-China practice (and the issue): no survey SMS between 20:00 and 08:00 local time; a
message that falls due then waits until 08:00. One reminder 48 hours after sending, moved
forward into allowed hours; the survey expires 7 days (168 hours) after sending. Durations are
counted in absolute time (UTC), so a daylight-saving change cannot stretch or shrink them; the
quiet window is in wall-clock time of ``tz``.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo

SHANGHAI = ZoneInfo("Asia/Shanghai")
#: (start, end) of the quiet window in local wall-clock time; it may cross midnight.
QUIET_HOURS: tuple[time, time] = (time(20, 0), time(8, 0))
REMINDER_AFTER = timedelta(hours=48)
EXPIRES_AFTER = timedelta(days=7)


def _require_aware(moment: datetime) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"a time-zone-aware datetime is required, got {moment!r}")


def is_quiet_time(wall: time, quiet: tuple[time, time] = QUIET_HOURS) -> bool:
    """Whether a local wall-clock time lies in the quiet window ``[start, end)``; a window
    with ``start == end`` is empty."""
    start, end = quiet
    wall = wall.replace(tzinfo=None, fold=0)
    if start == end:
        return False
    if start < end:
        return start <= wall < end
    return wall >= start or wall < end


def is_quiet(moment: datetime, tz: tzinfo = SHANGHAI, quiet: tuple[time, time] = QUIET_HOURS) -> bool:
    """Whether the instant ``moment`` falls in quiet hours in ``tz``."""
    _require_aware(moment)
    return is_quiet_time(moment.astimezone(tz).time(), quiet)


def _wall(day: date, at: time, tz: tzinfo, fold: int) -> datetime:
    """The instant the wall clock in ``tz`` shows ``at`` on ``day`` (``fold`` picks the first
    or second pass through a repeated hour), normalised so its wall time really occurs."""
    naive = datetime.combine(day, at.replace(tzinfo=None)).replace(fold=fold)
    return naive.replace(tzinfo=tz).astimezone(UTC).astimezone(tz)


def utc(moment: datetime) -> datetime:
    """The same instant in UTC. Python compares and subtracts two datetimes that share a
    tzinfo by their wall clocks, which is wrong across a daylight-saving change; in UTC it is
    always right."""
    _require_aware(moment)
    return moment.astimezone(UTC)


def _first_allowed(lo: datetime, hi: datetime, tz: tzinfo, quiet: tuple[time, time]) -> datetime:
    """Bisect to the first allowed instant in ``(lo, hi]`` (``lo`` quiet, ``hi`` allowed): only
    needed when the window's end falls in a daylight-saving gap."""
    lo, hi = utc(lo), utc(hi)
    while hi - lo > timedelta(microseconds=1):
        mid = lo + (hi - lo) / 2
        if is_quiet(mid, tz, quiet):
            lo = mid
        else:
            hi = mid
    return hi.astimezone(tz)


def next_allowed_send(now: datetime, tz: tzinfo = SHANGHAI, quiet: tuple[time, time] = QUIET_HOURS) -> datetime:
    """The earliest instant at or after ``now`` outside quiet hours, in ``tz``: ``now`` itself
    if allowed, else the end of the quiet window (08:00 by default)."""
    _require_aware(now)
    local = now.astimezone(tz)
    if not is_quiet_time(local.time(), quiet):
        return local
    for offset in range(3):
        for fold in (0, 1):
            candidate = _wall(local.date() + timedelta(days=offset), quiet[1], tz, fold)
            if utc(candidate) < utc(now) or is_quiet(candidate, tz, quiet):
                continue
            if candidate.time().replace(fold=0) != quiet[1].replace(tzinfo=None):
                # the end of the window does not exist that day (clocks jumped over it)
                return _first_allowed(now, candidate, tz, quiet)
            return candidate
    raise AssertionError("unreachable: a quiet window ends within two days")  # pragma: no cover


def reminder_at(sent_at: datetime, tz: tzinfo = SHANGHAI, quiet: tuple[time, time] = QUIET_HOURS) -> datetime:
    """When the one reminder is due: 48 h after sending, moved out of quiet hours."""
    _require_aware(sent_at)
    return next_allowed_send(utc(sent_at) + REMINDER_AFTER, tz, quiet)


def expires_at(sent_at: datetime) -> datetime:
    """When the survey expires: 7 days (168 h) after sending, whatever the hour (in UTC)."""
    return utc(sent_at) + EXPIRES_AFTER
