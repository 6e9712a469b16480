"""The service's vital signs, counted from the database at scrape time.

Nothing is counted in memory: every instance sharing the database reports the same figures,
a restart loses nothing, and no code on the hot paths (the dispatcher, the inbound handler)
had to change. Each figure is one grouped query over an indexed or small table; the web layer
(``bot/metrics.py``) caches a snapshot for a few seconds and writes it in Prometheus' format.

Labels are bounded: channels, statuses and kinds are enums; an error or outcome is cut at its
first ``:`` (``failed:KeyError`` → ``failed``) so a free-form detail never becomes a series.

Respondents are protected here too (docs/surveys.md): no series moves with one survey answer.
Alerts raised by answers (:data:`SURVEY_ALERTS`) are left out of ``alerts_open``; surveys are
counted as pending, undeliverable or ``out`` (sent, whatever became of it: answered, incomplete,
expired, opted out); inbound events routed to a survey have the one outcome ``survey``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from core import db
from core.db import moment as _dt

LAG_WINDOW = timedelta(days=1)  # scheduler lag: the fires of the last day
LIVE = ("pending", "sending", "no_address", "held", "dead")  # outbox statuses that are not a success
SURVEY_ALERTS = ("survey_alert",)  # alert kinds an answer raises: never exported
SURVEY_STAGES = ("pending", "undeliverable")  # survey statuses no answer moves into or out of; the rest are "out"


@dataclass
class Snapshot:
    outbox_status: list[tuple[str, int]] = field(default_factory=list)  # status, rows (every status)
    outbox: list[tuple[str, str, int]] = field(default_factory=list)  # channel, live status, rows
    outbox_errors: list[tuple[str, str, str, int]] = field(default_factory=list)  # channel, status, kind, rows
    outbox_due_age: list[tuple[str, float]] = field(default_factory=list)  # channel, oldest due row's wait (s)
    inbound: list[tuple[str, str, int]] = field(default_factory=list)  # channel, outcome, events
    draws: list[tuple[str, int]] = field(default_factory=list)  # flight "true" | "false", draws
    inspections: list[tuple[str, int]] = field(default_factory=list)  # status, rows
    firings: list[tuple[str, int]] = field(default_factory=list)  # status, rows
    fires: list[tuple[str, str, int]] = field(default_factory=list)  # kind, outcome, fires
    fire_lag: list[tuple[str, float]] = field(default_factory=list)  # kind, worst lag of the last day (s)
    last_fire: list[tuple[str, float]] = field(default_factory=list)  # kind, unix time of the latest fire
    alerts_open: list[tuple[str, int]] = field(default_factory=list)  # kind, unacknowledged alerts
    surveys: list[tuple[str, int]] = field(default_factory=list)  # pending | undeliverable | out, rows


async def _rows(sql: str, params: Sequence = ()) -> list[tuple]:
    return [tuple(r) for r in (await db.conn().execute_query(db.sql(sql), list(params)))[1]]


def kind_of(text: str) -> str:
    """A bounded label from an error or outcome string."""
    head = (text or "").split(":", 1)[0].strip()
    return re.sub(r"[^A-Za-z0-9_.-]", "_", head)[:40] or "none"


def _merge(rows: list[tuple], key_len: int) -> list[tuple]:
    """Sum the counts of rows whose (normalised) keys coincide."""
    out: dict[tuple, int] = {}
    for row in rows:
        out[row[:key_len]] = out.get(row[:key_len], 0) + int(row[key_len])
    return [(*k, v) for k, v in sorted(out.items())]


async def snapshot(now: datetime) -> Snapshot:
    """Every figure of ``/metrics`` as of ``now``."""
    now = now.astimezone(UTC)
    s = Snapshot()
    # all rows by status read the (status, next_attempt_at) index alone; the per-channel split
    # only of the live statuses (few rows), since splitting the sent ones costs a table scan
    s.outbox_status = await _rows("SELECT status, COUNT(*) FROM outbox GROUP BY status")
    s.outbox = await _rows(
        "SELECT channel, status, COUNT(*) FROM outbox "
        f"WHERE status IN ({', '.join('?' * len(LIVE))}) GROUP BY channel, status",
        LIVE,
    )
    errors = await _rows(
        "SELECT channel, status, last_error, COUNT(*) FROM outbox "
        "WHERE status IN ('pending', 'sending', 'held', 'dead') AND last_error <> '' "
        "GROUP BY channel, status, last_error"
    )
    s.outbox_errors = _merge([(c, st, _error_kind(e), n) for c, st, e, n in errors], 3)
    due = await _rows(
        "SELECT channel, MIN(next_attempt_at) FROM outbox "
        "WHERE status = 'pending' AND next_attempt_at <= ? GROUP BY channel",
        [now],
    )
    s.outbox_due_age = [(c, max((now - _dt(t)).total_seconds(), 0.0)) for c, t in due if t is not None]
    inbound = await _rows("SELECT channel, outcome, COUNT(*) FROM inbound_event GROUP BY channel, outcome")
    s.inbound = _merge([(c, _outcome(o), n) for c, o, n in inbound], 2)
    flights = dict(await _rows("SELECT flight, COUNT(*) FROM draw GROUP BY flight"))
    s.draws = [
        ("false", sum(n for f, n in flights.items() if not f)),
        ("true", sum(n for f, n in flights.items() if f)),
    ]
    s.inspections = await _rows("SELECT status, COUNT(*) FROM inspection GROUP BY status")
    s.firings = await _rows("SELECT status, COUNT(*) FROM firing GROUP BY status")
    fires = await _rows("SELECT kind, outcome, COUNT(*) FROM scheduler_fire GROUP BY kind, outcome")
    s.fires = _merge([(k, kind_of(o), n) for k, o, n in fires], 2)
    recent = await _rows(
        "SELECT kind, scheduled_for, fired_at FROM scheduler_fire WHERE fired_at >= ?", [now - LAG_WINDOW]
    )
    lag: dict[str, float] = {}
    for kind, scheduled, fired in recent:
        lag[kind] = max(lag.get(kind, 0.0), (_dt(fired) - _dt(scheduled)).total_seconds())
    s.fire_lag = sorted(lag.items())
    s.last_fire = [
        (k, _dt(t).timestamp())
        for k, t in await _rows("SELECT kind, MAX(fired_at) FROM scheduler_fire GROUP BY kind")
        if t is not None
    ]
    s.alerts_open = await _rows(
        "SELECT kind, COUNT(*) FROM alert WHERE acknowledged_at IS NULL "
        f"AND kind NOT IN ({', '.join('?' * len(SURVEY_ALERTS))}) GROUP BY kind",
        SURVEY_ALERTS,
    )
    surveys = await _rows("SELECT status, COUNT(*) FROM survey GROUP BY status")
    s.surveys = _merge([(st if st in SURVEY_STAGES else "out", n) for st, n in surveys], 1)
    return s


def _outcome(outcome: str | None) -> str:
    """An inbound event's outcome as a label: cut at its first ``:``; ``survey_*`` (what a reply
    did to its survey: answered, clarified, …) is one ``survey``."""
    if not outcome:
        return "unprocessed"
    label = kind_of(outcome)
    return "survey" if label.startswith("survey_") else label


def _error_kind(error: str) -> str:
    """``gave_up:timeout`` → ``timeout``: the send error's kind (``SendError.kind``)."""
    return kind_of(error.removeprefix("gave_up:"))
