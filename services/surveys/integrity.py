"""Integrity scores: per-inspector scores for coordinators; for anyone else only the aggregates
resting on at least five responses (``domain.surveys.publishable``)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from core.clock import utc as _utc
from domain.surveys import REQUIRED, Answers, Response, Score, integrity_scores, publishable
from models.directory import Inspector
from models.draws import HOLDING_SEAT, Assignment
from models.surveys import Survey

DEFAULT_WINDOW = timedelta(days=90)


REPORT_ROWS = 30


_IN_CHUNK = 5000


@dataclass(frozen=True)
class IntegrityRow:
    inspector_id: int
    name: str
    cert_no: str
    department: str
    score: Score


@dataclass(frozen=True)
class IntegrityReport:
    rows: tuple[IntegrityRow, ...]  # worst score first
    withheld: int  # inspectors left out because their aggregate rests on fewer than 5 responses
    responses: int  # survey responses in the window about these departments' inspectors
    window: timedelta


def _chunks(seq: list, size: int = _IN_CHUNK):
    for i in range(0, len(seq), size):
        yield seq[i : i + size]


async def integrity(
    departments: Iterable[str], window: timedelta, now: datetime, *, coordinator: bool = True
) -> IntegrityReport:
    """Integrity scores of the inspectors of ``departments`` over ``(now - window, now]``.

    For coordinators every scored inspector; for anyone else only the aggregates that rest on
    at least five responses (``publishable``), the others counted in ``withheld``."""
    now = _utc(now)
    departments = sorted(set(departments))
    surveys = await Survey.filter(answered_at__gt=now - window, answered_at__lte=now).values_list(
        "id", "inspection_id", "answers", "answered_at", "late"
    )
    teams: dict[int, list[int]] = {}
    for chunk in _chunks(sorted({s[1] for s in surveys})):
        pairs = await Assignment.filter(
            inspection_id__in=chunk, status__in=list(HOLDING_SEAT), inspector__department__code__in=departments
        ).values_list("inspection_id", "inspector_id")
        for inspection_id, inspector_id in pairs:
            teams.setdefault(inspection_id, []).append(inspector_id)
    responses = [
        Response(
            survey=str(sid),
            inspectors=tuple(str(i) for i in teams[insp]),
            at=at,
            late=late,
            answers=Answers(**{q.value: (answers or {}).get(q.value) for q in REQUIRED}),
        )
        for sid, insp, answers, at, late in surveys
        if insp in teams
    ]
    scores = integrity_scores(responses, window, now)
    people: dict[int, tuple] = {}
    for chunk in _chunks(sorted(int(k) for k in scores)):
        for row in await Inspector.filter(id__in=chunk).values_list("id", "name", "cert_no", "department__name"):
            people[row[0]] = row
    rows = [IntegrityRow(i, people[i][1], people[i][2], people[i][3], scores[str(i)]) for i in sorted(people)]
    shown = rows if coordinator else [r for r in rows if publishable(r.score)]
    shown.sort(key=lambda r: (r.score.score, -r.score.n, r.name))
    counted = sum(1 for r in responses if r.answers.open() != REQUIRED)
    return IntegrityReport(tuple(shown), len(rows) - len(shown), counted, window)


def report_context(report: IntegrityReport, limit: int = REPORT_ROWS) -> dict:
    """The /integrity template's context (plain values)."""
    rows = [
        {
            "name": r.name,
            "cert": r.cert_no,
            "department": r.department,
            "n": r.score.n,
            "score": r.score.score,
            "improper": r.score.improper,
            "no_credentials": r.score.no_credentials,
            "unfair": r.score.unfair,
            "fairness_mean": r.score.fairness_mean,
            "alerts": r.score.alerts,
        }
        for r in report.rows[:limit]
    ]
    return {
        "rows": rows,
        "more": max(0, len(report.rows) - limit),
        "withheld": report.withheld,
        "responses": report.responses,
        "days": report.window.days,
    }
