"""The monthly report: what the draws, the inspections and the surveys of one month add up to.

:func:`monthly_report` returns plain data (and writes a chart PNG, drawn by ``core.charts``,
under the data directory); :func:`send_monthly_report` queues it to every coordinator (scoped to
their departments) as a message plus the chart; :func:`send_due_report` (the scheduler's
``monthly_report`` sweep) sends last month's report once, on the 1st of the month from 09:00
local time (a fire key in ``scheduler_fire`` through ``services.fires``, so once across
instances). Definitions of every figure: docs/public-pages.md, "The report".

Two audiences. ``personal=True`` (coordinators) adds the per-inspector integrity scores and the
recusal reasons. ``personal=False`` (the public page) shows nothing about a person: no reasons
(the published recusal log names who recused, so even a count per reason could be read back).
Its survey figures and integrity aggregate — what respondents said — are protected against
differencing (two views one answer apart reveal that answer): they are made only for a month
that is over (``why="open"`` before), only when they rest on at least five responses
(``domain.surveys.publishable``; ``why="few"`` otherwise), and the first time they are made for
a closed month they are frozen (``models.surveys.SurveyFigures``), so a late answer never moves
them. Guarantees and their tests: docs/surveys.md, "Respondents are protected".
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from hashlib import sha256
from pathlib import Path

from core import charts, db
from core.clock import Clock
from core.db import moment as _dt
from core.render import text
from domain import inputs
from domain.errors import ServiceError
from domain.risk.strictness import strictness
from domain.surveys import REQUIRED, Answers, Response, alert_reasons, integrity_scores, publishable
from models.messaging import REACHED, Channel, ChatBinding, Role
from models.surveys import SurveyFigures
from services import fires
from services.directory import department_names
from services.draws.write import task_message_key_sql
from services.outbox import Message, enqueue, to_person
from services.scope import Scope
from services.surveys.integrity import integrity, report_context

RISKS = ("A", "B", "C", "D", "E")
SEND_HOUR = 9  # the monthly report goes out on the 1st from 09:00 local time
SEND_DAYS = 3  # … and, if every instance was down then, up to the 3rd
TOP_INSPECTORS = 10  # per-inspector rows in the coordinators' message
CHART_DIR = "reports"


class ReportError(ServiceError):
    """A report that cannot be made; ``code`` names the reason (texts/reports.j2)."""


# --- the data ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class InspectionCounts:
    drawn: int = 0
    done: int = 0
    open: int = 0  # staffed, not done yet
    unstaffable: int = 0
    cancelled: int = 0
    done_rate: float | None = None


@dataclass(frozen=True)
class Coverage:
    entities: int = 0  # distinct entities drawn this month
    year_entities: int = 0  # … from 1 January to the month's end
    pool: int = 0  # active entities in the directory
    rate: float | None = None
    year_rate: float | None = None


@dataclass(frozen=True)
class RiskRow:
    risk: str
    drawn: int = 0
    done: int = 0
    results: int = 0  # inspections with a submitted result
    problems: int = 0  # … that found a problem on at least one item
    rate: float | None = None  # problems / results


@dataclass(frozen=True)
class Recusals:
    assignments: int = 0  # sent this month
    recused: int = 0  # recusals recorded this month
    rate: float | None = None
    reasons: dict = field(default_factory=dict)  # type -> count; coordinators only


@dataclass(frozen=True)
class Deadlines:
    """Response deadlines that fell in the month and have passed (cancelled assignments excepted).
    An assignment was *told* when its task message went out (outbox ``sent`` or ``delivered``) by
    its deadline; the others were never reached (no chat bound, address unreachable, dead, still
    queued): their silence is not the inspector's, so ``rate`` is of the told ones only."""

    due: int = 0  # response deadlines that fell in the month (and have passed)
    missed: int = 0  # … answered late or not at all, told or not (= told_missed + unreached)
    rate: float | None = None  # told_missed / told
    told: int = 0  # … whose task message went out by the deadline
    told_missed: int = 0  # … of those, answered late or not at all
    unreached: int = 0  # missed, the task message never sent by the deadline
    unreached_inspectors: int = 0  # distinct inspectors of those (coordinators only: 0 in public)


@dataclass(frozen=True)
class Surveys:
    sent: int = 0
    responded: int = 0
    opted_out: int = 0
    complaints: int = 0
    response_rate: float | None = None
    opt_out_rate: float | None = None
    complaint_rate: float | None = None
    shown: bool = True  # False on the public page: the month is not over, or fewer than 5 responses
    why: str = ""  # why not shown: "open" (the month is not over) or "few" (fewer than 5)


@dataclass(frozen=True)
class Integrity:
    responses: int = 0
    score: float | None = None
    improper: int = 0
    no_credentials: int = 0
    unfair: int = 0
    fairness_mean: float | None = None
    shown: bool = False  # the aggregate rests on >= 5 responses (or the reader is a coordinator)
    inspectors: list = field(default_factory=list)  # coordinators only: worst first
    more: int = 0  # inspectors beyond the list
    why: str = ""  # why not shown to the public: "open" or "few" (as ``Surveys.why``)


@dataclass(frozen=True)
class MonthlyReport:
    month: str  # "2026-12"
    departments: tuple[str, ...] | None  # None: every department
    generated_at: str  # local "YYYY-MM-DD HH:MM"
    partial: bool  # the month is not over yet
    personal: bool
    draws: int
    inspections: InspectionCounts
    coverage: Coverage
    risk: list[RiskRow]
    recusals: Recusals
    deadlines: Deadlines
    surveys: Surveys
    integrity: Integrity
    chart_path: str  # relative to the data directory
    # per department: {"department", "name", "draws", "off_schedule", "share"} (issue 14: draws whose
    # commitment was not published ahead — ad hoc or redraws — counted and shared per department)
    off_schedule: list = field(default_factory=list)
    department_names: tuple[str, ...] = ()  # the names of ``departments``, as texts show them
    # per department: {"department", "due", "on_time", "share"} (issue 19: inspections whose
    # publication deadline fell in the month and has passed, or that are published, and how many
    # were published on or before it)
    published: list = field(default_factory=list)
    # coordinators only (issue 15): each inspector's risk-adjusted problem-found rate over the
    # 12 months to the report month's end, lowest first ({"name", "cert", "n", "rate", "adjusted",
    # "low", "high", "far_below"}); never an inspector with fewer than 10 inspections
    strictness: list = field(default_factory=list)
    strictness_overall: float | None = None

    def context(self) -> dict:
        """Plain JSON-able values (an outbox row's context)."""
        data = asdict(self)
        data["departments"] = list(self.departments) if self.departments is not None else None
        return data


# --- months -----------------------------------------------------------------------------------


def parse_month(text: str) -> tuple[int, int]:
    parsed = inputs.month(text)  # ASCII digits, 2000-01 … 9998-12: the month after is a date too
    if parsed is None:
        raise ReportError("bad_month", value=inputs.echo(text))  # a reply repeats a short part only
    return parsed


def month_bounds(month: str, zone: tzinfo) -> tuple[datetime, datetime]:
    """[start, end) of the month in local time, as UTC instants."""
    year, mon = parse_month(month)
    start = datetime(year, mon, 1, tzinfo=zone)
    end = datetime(year + (mon == 12), mon % 12 + 1, 1, tzinfo=zone)
    return start.astimezone(UTC), end.astimezone(UTC)


def last_month(now: datetime, zone: tzinfo) -> str:
    first = now.astimezone(zone).date().replace(day=1)
    prev = first - timedelta(days=1)
    return f"{prev.year:04d}-{prev.month:02d}"


def shift_month(month: str, delta: int) -> str:
    """The month ``delta`` months after ``month`` ("2026-12", 1 → "2027-01")."""
    year, mon = parse_month(month)
    index = year * 12 + mon - 1 + delta
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


async def months_with_data(zone: tzinfo) -> tuple[str, str] | None:
    """The first and the last month with a draw in them ("YYYY-MM", local time), or None before
    the first draw: month navigation links no further than these."""
    row = (await _fetch("SELECT MIN(drawn_at) AS first, MAX(drawn_at) AS last FROM draw"))[0]
    if row["first"] is None:
        return None
    first, last = (_dt(row[k]).astimezone(zone).strftime("%Y-%m") for k in ("first", "last"))
    return first, last


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


# --- queries ----------------------------------------------------------------------------------


async def _fetch(sql: str, params: Sequence = ()) -> list[dict]:
    return await db.conn().execute_query_dict(db.sql(sql), list(params))


async def _scope(departments: Iterable[str] | None) -> tuple[str, list]:
    """SQL restricting a draw ``d`` to the plans of ``departments`` (a joint plan counts for
    each of its departments); no restriction for None."""
    if departments is None:
        return "", []
    wanted = set(departments)
    rows = await _fetch("SELECT id, departments FROM plan")
    ids = [r["id"] for r in rows if wanted & set(db.decoded(r["departments"], []))]
    if not ids:
        return " AND 1 = 0", []
    return f" AND d.plan_id IN ({', '.join('?' * len(ids))})", ids


async def _inspections(start: datetime, end: datetime, scope: tuple[str, list]) -> tuple[InspectionCounts, dict]:
    rows = await _fetch(
        "SELECT i.stratum, i.status, COUNT(*) AS n FROM inspection i JOIN draw d ON d.id = i.draw_id "
        f"WHERE d.drawn_at >= ? AND d.drawn_at < ?{scope[0]} GROUP BY i.stratum, i.status",
        [start, end, *scope[1]],
    )
    by_status: dict[str, int] = {}
    by_risk: dict[str, dict[str, int]] = {}
    for r in rows:
        by_status[r["status"]] = by_status.get(r["status"], 0) + r["n"]
        risk = by_risk.setdefault(r["stratum"], {})
        risk[r["status"]] = risk.get(r["status"], 0) + r["n"]
    drawn = sum(by_status.values())
    done = by_status.get("done", 0)
    counts = InspectionCounts(
        drawn,
        done,
        by_status.get("staffed", 0),
        by_status.get("unstaffable", 0),
        by_status.get("cancelled", 0),
        _rate(done, drawn),
    )
    return counts, by_risk


async def _draw_count(start: datetime, end: datetime, scope: tuple[str, list]) -> int:
    rows = await _fetch(
        f"SELECT COUNT(*) AS n FROM draw d WHERE d.drawn_at >= ? AND d.drawn_at < ?{scope[0]}", [start, end, *scope[1]]
    )
    return rows[0]["n"]


async def _off_schedule(
    start: datetime, end: datetime, scope: tuple[str, list], departments: Sequence[str] | None
) -> list[dict]:
    """Per department, the month's draws and how many of them were off schedule (a joint
    plan's draw counts for each of its departments)."""
    rows = await _fetch(
        "SELECT d.off_schedule IS NOT NULL AS off, p.departments FROM draw d JOIN plan p ON p.id = d.plan_id "
        f"WHERE d.drawn_at >= ? AND d.drawn_at < ?{scope[0]}",
        [start, end, *scope[1]],
    )
    totals: dict[str, list[int]] = {}
    for r in rows:
        for dept in db.decoded(r["departments"], []):
            if departments is None or dept in departments:
                t = totals.setdefault(dept, [0, 0])
                t[0] += 1
                t[1] += bool(r["off"])
    names = await department_names(totals)
    return [
        {"department": d, "name": names[d], "draws": n, "off_schedule": off, "share": _rate(off, n)}
        for d, (n, off) in sorted(totals.items())
    ]


async def _published_on_time(
    start: datetime, end: datetime, now: datetime, zone: tzinfo, scope: tuple[str, list], departments
) -> list[dict]:
    """Per department, the inspections whose publication deadline (a local date) fell in the
    month — counted once it has passed or the result is published — and the share published on
    time (a joint plan's inspection counts for each of its departments)."""
    first, last = start.astimezone(zone).date(), (end.astimezone(zone) - timedelta(days=1)).date()
    today = now.astimezone(zone).date()
    rows = await _fetch(
        "SELECT pub.on_time, pub.published_at IS NOT NULL AS published, pub.due_on, p.departments "
        "FROM publication pub JOIN inspection i ON i.id = pub.inspection_id JOIN draw d ON d.id = i.draw_id "
        f"JOIN plan p ON p.id = d.plan_id WHERE pub.due_on >= ? AND pub.due_on <= ?{scope[0]}",
        [first, last, *scope[1]],
    )
    totals: dict[str, list[int]] = {}
    for r in rows:
        due_on = r["due_on"] if isinstance(r["due_on"], date) else date.fromisoformat(str(r["due_on"]))
        if not r["published"] and due_on >= today:
            continue  # not yet judged: still within its deadline
        for dept in db.decoded(r["departments"], []):
            if departments is None or dept in departments:
                t = totals.setdefault(dept, [0, 0])
                t[0] += 1
                t[1] += bool(r["on_time"])
    names = await department_names(totals)  # a reader knows 青岛市市场监督管理局, not 370200SCJG
    return [
        {"department": d, "name": names[d], "due": n, "on_time": k, "share": _rate(k, n)}
        for d, (n, k) in sorted(totals.items())
    ]


async def _coverage(start: datetime, end: datetime, year_start: datetime, scope: tuple[str, list]) -> Coverage:
    distinct = (
        "SELECT COUNT(DISTINCT i.entity_id) AS n FROM inspection i JOIN draw d ON d.id = i.draw_id "
        f"WHERE d.drawn_at >= ? AND d.drawn_at < ?{scope[0]}"
    )
    month = (await _fetch(distinct, [start, end, *scope[1]]))[0]["n"]
    year = (await _fetch(distinct, [year_start, end, *scope[1]]))[0]["n"]
    pool = (await _fetch("SELECT COUNT(*) AS n FROM entity WHERE status = 'active'"))[0]["n"]
    return Coverage(month, year, pool, _rate(month, pool), _rate(year, pool))


async def _risk_rows(
    by_risk: dict, start: datetime, end: datetime, scope: tuple[str, list], published_only: bool = False
) -> list[RiskRow]:
    results = await result_counts(start, end, scope, published_only=published_only)
    out = []
    for risk in sorted(set(RISKS) | set(by_risk)):
        statuses = by_risk.get(risk, {})
        n_results, problems = results.get(risk, (0, 0))
        out.append(
            RiskRow(
                risk, sum(statuses.values()), statuses.get("done", 0), n_results, problems, _rate(problems, n_results)
            )
        )
    return out


async def result_counts(
    start: datetime, end: datetime, scope: tuple[str, list], *, published_only: bool = False
) -> dict[str, tuple[int, int]]:
    """Per risk class: (inspections drawn in the month with a result of record, those with at
    least one item 不合格). Results are the on-site workflow's (``models.onsite``); with
    ``published_only`` (the public report) only results a reviewer approved and published."""
    joined = (
        "JOIN publication pub ON pub.inspection_id = i.id AND pub.published_at IS NOT NULL "
        "JOIN result r ON r.id = pub.result_id "
        if published_only
        else "JOIN result r ON r.inspection_id = i.id AND r.status IN ('submitted', 'confirmed') "
        "AND r.reinspection_id IS NULL "  # a re-inspection (复查) is not the inspection's result
    )
    rows = await _fetch(
        "SELECT i.stratum, COUNT(DISTINCT r.id) AS n, "
        "COUNT(DISTINCT CASE WHEN f.verdict = 'fail' THEN r.id END) AS problems "
        "FROM inspection i JOIN draw d ON d.id = i.draw_id " + joined + "LEFT JOIN finding f ON f.result_id = r.id "
        f"WHERE d.drawn_at >= ? AND d.drawn_at < ?{scope[0]} GROUP BY i.stratum",
        [start, end, *scope[1]],
    )
    return {r["stratum"]: (r["n"], int(r["problems"] or 0)) for r in rows}


async def _recusals(start: datetime, end: datetime, scope: tuple[str, list], personal: bool) -> Recusals:
    sent = (
        await _fetch(
            "SELECT COUNT(*) AS n FROM assignment a JOIN draw d ON d.id = a.draw_id "
            f"WHERE a.created_at >= ? AND a.created_at < ?{scope[0]}",
            [start, end, *scope[1]],
        )
    )[0]["n"]
    rows = await _fetch(
        "SELECT r.reason_type, COUNT(*) AS n FROM recusal r JOIN inspection i ON i.id = r.inspection_id "
        f"JOIN draw d ON d.id = i.draw_id WHERE r.at >= ? AND r.at < ?{scope[0]} GROUP BY r.reason_type",
        [start, end, *scope[1]],
    )
    recused = sum(r["n"] for r in rows)
    reasons = {r["reason_type"]: r["n"] for r in sorted(rows, key=lambda r: (-r["n"], r["reason_type"]))}
    return Recusals(sent, recused, _rate(recused, sent), reasons if personal else {})


async def _deadlines(
    start: datetime, end: datetime, now: datetime, scope: tuple[str, list], personal: bool
) -> Deadlines:
    """One query: the month's passed deadlines grouped by (told, answered late or not at all).
    "Told" is a correlated EXISTS on the task message's outbox row, found by its unique key: a
    lookup per assignment of the month, where a join let PostgreSQL hash the whole outbox (which
    only grows): benchmarks/report_deadlines.sql, figures in docs/public-pages.md."""
    until = min(end, now)
    if until <= start:
        return Deadlines()
    reached = ", ".join("?" * len(REACHED))
    rows = await _fetch(
        f"SELECT EXISTS (SELECT 1 FROM outbox o WHERE o.dedupe_key = {task_message_key_sql('a.id')} "
        f"AND o.status IN ({reached}) AND o.sent_at <= a.deadline) AS told, "
        "(a.responded_at IS NULL OR a.responded_at > a.deadline) AS late, "
        "COUNT(*) AS n, COUNT(DISTINCT a.inspector_id) AS inspectors "
        "FROM assignment a JOIN draw d ON d.id = a.draw_id "
        f"WHERE a.deadline >= ? AND a.deadline < ? AND a.status <> 'cancelled'{scope[0]} GROUP BY 1, 2",
        [*REACHED, start, until, *scope[1]],
    )
    due = missed = told = told_missed = unreached_inspectors = 0
    for r in rows:
        n = int(r["n"])
        due += n
        missed += n if r["late"] else 0
        told += n if r["told"] else 0
        told_missed += n if r["told"] and r["late"] else 0
        if r["late"] and not r["told"]:
            unreached_inspectors = int(r["inspectors"])
    return Deadlines(
        due,
        missed,
        _rate(told_missed, told),
        told,
        told_missed,
        missed - told_missed,
        unreached_inspectors if personal else 0,
    )


async def _survey_rows(start: datetime, end: datetime, scope: tuple[str, list]) -> list[dict]:
    """Surveys sent in the month (first message out), with their status and answers."""
    return await _fetch(
        "SELECT s.id, s.status, s.answers, s.answered_at, s.late, s.inspection_id FROM survey s "
        "JOIN inspection i ON i.id = s.inspection_id JOIN draw d ON d.id = i.draw_id "
        f"WHERE s.sent_at >= ? AND s.sent_at < ? AND s.status NOT IN ('pending', 'undeliverable'){scope[0]}",
        [start, end, *scope[1]],
    )


def _answers(raw) -> Answers:
    data = db.decoded(raw, {}) or {}
    return Answers(**{q.value: data.get(q.value) for q in REQUIRED})


def _surveys(rows: list[dict], personal: bool) -> Surveys:
    responded = [r for r in rows if r["answered_at"] is not None]
    complaints = sum(1 for r in responded if alert_reasons(_answers(r["answers"])))
    opted = sum(1 for r in rows if r["status"] == "opted_out")
    sent = len(rows)
    shown = personal or (sent >= 5 and len(responded) >= 5)
    if not shown:
        return Surveys(shown=False, why="few")
    return Surveys(
        sent,
        len(responded),
        opted,
        complaints,
        _rate(len(responded), sent),
        _rate(opted, sent),
        _rate(complaints, len(responded)),
    )


async def _integrity(
    rows: list[dict], departments: Sequence[str] | None, start: datetime, end: datetime, now: datetime, personal: bool
) -> Integrity:
    """The month's responses as one aggregate (every response counts once, as if for one
    inspector); for coordinators, also each inspector's score over the month."""
    at_end = min(end, now)
    responses = [
        Response(
            survey=str(r["id"]),
            inspectors=("*",),
            at=_dt(r["answered_at"]),
            late=bool(r["late"]),
            answers=_answers(r["answers"]),
        )
        for r in rows
        if r["answered_at"] is not None
    ]
    window = at_end - start
    score = integrity_scores(responses, window, at_end).get("*")
    if score is None:
        return Integrity(why="few")
    shown = personal or publishable(score)
    if not shown:
        return Integrity(responses=score.n, shown=False, why="few")
    inspectors, more = [], 0
    if personal:
        inspectors, more = await _inspector_scores(departments, window, at_end)
    return Integrity(
        score.n,
        score.score,
        score.improper,
        score.no_credentials,
        score.unfair,
        score.fairness_mean,
        True,
        inspectors,
        more,
    )


async def _inspector_scores(departments: Sequence[str] | None, window: timedelta, at: datetime) -> tuple[list, int]:
    if departments is None:
        departments = [r["code"] for r in await _fetch("SELECT code FROM department")]
    report = await integrity(departments, window, at, coordinator=True)
    ctx = report_context(report, TOP_INSPECTORS)
    return ctx["rows"], ctx["more"]


STRICTNESS_MONTHS = 12


async def _strictness(end: datetime, scope: tuple[str, list]) -> tuple[float | None, list[dict]]:
    """Each inspector's risk-adjusted problem-found rate (``domain.risk.strictness``) over the
    results submitted in the 12 months before ``end``: the lead who submitted a result and the
    member who confirmed it both vouch for its findings, so it counts for both. A re-inspection
    (复查) result, over the items found 不合格 only, is left out."""
    start = end - timedelta(days=365 * STRICTNESS_MONTHS // 12)
    rows = await _fetch(
        "SELECT r.submitted_by_id AS lead, r.confirmed_by_id AS member, i.stratum, "
        "(SELECT COUNT(*) FROM finding f WHERE f.result_id = r.id AND f.verdict = 'fail') AS fails "
        "FROM result r JOIN inspection i ON i.id = r.inspection_id JOIN draw d ON d.id = i.draw_id "
        "WHERE r.status IN ('submitted', 'confirmed') AND r.reinspection_id IS NULL "
        "AND r.submitted_at >= ? AND r.submitted_at < ?"
        f"{scope[0]}",
        [start, end, *scope[1]],
    )
    examples = []
    for r in rows:
        for who in {r["lead"], r["member"]} - {None}:
            examples.append((str(who), r["stratum"], int(r["fails"] or 0) > 0))
    overall, found = strictness(examples)
    if not found:
        return overall, []
    people = {
        str(p["id"]): p
        for p in await _fetch(
            f"SELECT p.id, p.name, p.cert_no, d.code FROM inspector p JOIN department d ON d.id = p.department_id "
            f"WHERE p.id IN ({', '.join('?' * len(found))})",
            [int(s.inspector) for s in found],
        )
    }
    return overall, [
        {
            "name": people[s.inspector]["name"],
            "cert": people[s.inspector]["cert_no"],
            "department": people[s.inspector]["code"],
            "n": s.n,
            "rate": s.rate,
            "adjusted": s.adjusted,
            "low": s.low,
            "high": s.high,
            "far_below": s.far_below,
        }
        for s in found
    ]


# --- the report -------------------------------------------------------------------------------


async def monthly_report(
    month: str,
    departments: Iterable[str] | None,
    now: datetime,
    *,
    data_dir: Path,
    zone: tzinfo,
    locale: str = "zh-CN",
    personal: bool = True,
    chart: bool = True,
) -> MonthlyReport:
    """The report of ``month`` ("YYYY-MM") for the plans of ``departments`` (None: all), as
    of ``now`` (a month not over yet is reported so far; a future month is refused). With
    ``chart`` its chart is written (or found) under ``data_dir`` and named in ``chart_path``."""
    year, mon = parse_month(month)
    month = f"{year:04d}-{mon:02d}"  # as typed it may be full-width (２０２６-１２): shown and filed as ASCII
    start, end = month_bounds(month, zone)
    if start > now:
        raise ReportError("month_in_future", month=month)
    depts = tuple(sorted(set(departments))) if departments is not None else None
    if depts:
        known = {r["code"] for r in await _fetch("SELECT code FROM department")}
        unknown = [d for d in depts if d not in known]
        if unknown:  # a typo must not print an empty report as if the department had no draws
            raise ReportError("unknown_department", value=unknown[0])
    scope = await _scope(depts)
    year_start = datetime(start.astimezone(zone).year, 1, 1, tzinfo=zone).astimezone(UTC)
    counts, by_risk = await _inspections(start, end, scope)
    if personal:
        rows = await _survey_rows(start, end, scope)
        survey_figures, integrity_figures = _surveys(rows, True), await _integrity(rows, depts, start, end, now, True)
    else:
        survey_figures, integrity_figures = await _public_survey_figures(month, depts, start, end, now, scope)
    report = MonthlyReport(
        month=month,
        departments=depts,
        generated_at=now.astimezone(zone).strftime("%Y-%m-%d %H:%M"),
        partial=now < end,
        personal=personal,
        draws=await _draw_count(start, end, scope),
        inspections=counts,
        coverage=await _coverage(start, end, year_start, scope),
        risk=await _risk_rows(by_risk, start, end, scope, published_only=not personal),
        recusals=await _recusals(start, end, scope, personal),
        deadlines=await _deadlines(start, end, now, scope, personal),
        surveys=survey_figures,
        integrity=integrity_figures,
        chart_path="",
        off_schedule=await _off_schedule(start, end, scope, depts),
        department_names=tuple((await department_names(depts)).values()) if depts else (),
        published=await _published_on_time(start, end, now, zone, scope, depts),
    )
    if personal:
        overall, rows = await _strictness(end, scope)
        report = MonthlyReport(**{**report.__dict__, "strictness": rows, "strictness_overall": overall})
    if not chart:
        return report
    path = await asyncio.to_thread(write_chart, report, Path(data_dir), locale)
    return MonthlyReport(**{**report.__dict__, "chart_path": path})


async def _public_survey_figures(
    month: str, depts: tuple[str, ...] | None, start: datetime, end: datetime, now: datetime, scope: tuple[str, list]
) -> tuple[Surveys, Integrity]:
    """The public edition's survey figures: none while the month is open; for a closed month,
    those frozen when it was first published, else made now and frozen (insert or nothing, then
    read back: of two instances publishing at once, the first insert wins and both show it)."""
    if now < end:
        return Surveys(shown=False, why="open"), Integrity(why="open")
    key = f"{month}:{'all' if depts is None else ','.join(depts)}"[:200]
    frozen = await SurveyFigures.get_or_none(key=key)
    if frozen is None:
        rows = await _survey_rows(start, end, scope)
        figures = {
            "surveys": asdict(_surveys(rows, False)),
            "integrity": asdict(await _integrity(rows, depts, start, end, now, False)),
        }
        await db.conn().execute_query(
            db.sql("INSERT INTO survey_figures (key, figures, published_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING"),
            [key, db.encode(figures), now.astimezone(UTC)],
        )
        frozen = await SurveyFigures.get(key=key)
    figures = db.decoded(frozen.figures, {}) or {}
    return Surveys(**figures.get("surveys", {})), Integrity(**figures.get("integrity", {}))


# --- the chart --------------------------------------------------------------------------------


def write_chart(report: MonthlyReport, data_dir: Path, locale: str) -> str:
    """The report's chart (inspections per risk class, and the problem-discovery rate) as a PNG
    under ``<data dir>/reports``; the file name carries a digest of what it plots, so an
    unchanged report reuses its file. Returns the path relative to ``data_dir``."""
    label_locale, font = charts.chart_locale(locale)
    plotted = [(r.risk, r.drawn, r.done, r.problems, r.rate) for r in report.risk]
    scope = "all" if report.departments is None else "-".join(report.departments)
    digest = sha256(json.dumps([plotted, label_locale, scope, report.month]).encode()).hexdigest()[:12]
    prefix = f"{report.month}-{sha256(scope.encode()).hexdigest()[:8]}-{locale}-"
    relative = Path(CHART_DIR) / f"{prefix}{digest}.png"
    path = data_dir / relative
    if path.is_file():
        return relative.as_posix()
    path.parent.mkdir(parents=True, exist_ok=True)
    labels = {
        code: text(f"report_chart_{code}", label_locale)
        for code in ("drawn", "done", "problems", "rate", "risk", "count")
    }
    labels["title"] = text("report_chart_title", label_locale, month=report.month)
    png = charts.risk_chart(plotted, labels, font)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(png)
    tmp.replace(path)
    for old in path.parent.glob(f"{prefix}*.png"):  # earlier versions of this report's chart
        if old != path:
            old.unlink(missing_ok=True)
    return relative.as_posix()


# --- sending ----------------------------------------------------------------------------------


async def send_monthly_report(month: str, now: datetime, *, data_dir: Path, zone: tzinfo, connection=None) -> int:
    """Queue the month's report to every coordinator (their departments' plans) and admin (all
    plans): the report as a message and the chart as a photo (Telegram). Returns the number of
    recipients; queuing again for the same month queues nothing new (dedupe keys)."""
    messages, recipients = await report_outbox(month, now, data_dir=data_dir, zone=zone)
    await enqueue(messages, now, connection=connection)
    return recipients


async def report_outbox(month: str, now: datetime, *, data_dir: Path, zone: tzinfo) -> tuple[list[Message], int]:
    """The outbox messages of the month's report for every coordinator and admin, each report
    made once per (departments, locale)."""
    bindings = await ChatBinding.filter(revoked_at=None, role__in=[Role.COORDINATOR, Role.ADMIN]).order_by("id")
    made: dict[tuple, MonthlyReport] = {}
    messages: list[Message] = []
    for b in bindings:
        scope = None if b.role == Role.ADMIN else tuple(sorted(b.departments))
        key = (scope, b.locale)
        if key not in made:
            made[key] = await monthly_report(month, scope, now, data_dir=data_dir, zone=zone, locale=b.locale)
        messages += report_messages(made[key], b)
    return messages, len(bindings)


def report_messages(report: MonthlyReport, binding: ChatBinding) -> list[Message]:
    """The report for one coordinator's chat: the text, then (Telegram) the chart."""
    key = f"report:{report.month}:{binding.id}"
    out = [to_person(binding, key, "report.j2", {"r": report.context()}, priority=0)]
    if binding.channel == Channel.TELEGRAM.value and report.chart_path:
        chart = {"month": report.month, "photo_path": report.chart_path}
        out.append(to_person(binding, f"{key}:chart", "report_chart.j2", chart, priority=1))
    return out


def _send_time(now: datetime, zone: tzinfo) -> datetime | None:
    """When this month's send of last month's report is due, if ``now`` is in its window."""
    local = now.astimezone(zone)
    due = datetime.combine(local.date().replace(day=1), time(SEND_HOUR), tzinfo=zone)
    return due if due <= local < due + timedelta(days=SEND_DAYS) else None


async def send_due_report(now: datetime, *, clock: Clock, zone: tzinfo, data_dir: Path, instance: str) -> str | None:
    """The scheduler's ``monthly_report`` sweep. On the 1st (from 09:00; up to the 3rd after
    downtime): last month's report, once across instances (fire key ``report:YYYY-MM``, claimed
    through ``services.fires`` by ``instance`` at the clock's time). The reports are made before
    the fire's transaction opens, so that transaction only claims the key and writes the outbox
    rows. Returns the fire key if this call ran it."""
    due = _send_time(now, zone)
    if due is None:
        return None
    month = last_month(now, zone)
    key = f"report:{month}"
    if await fires.fired([key]):
        return None
    messages, recipients = await report_outbox(month, now, data_dir=Path(data_dir), zone=zone)

    async def work() -> str:
        await enqueue(messages, now)
        return f"sent:{recipients}"

    outcome = await fires.run_once(key, "report", due.astimezone(UTC), work, now=clock.now(), instance=instance)
    return None if outcome is None else key


# --- a coordinator's /report ------------------------------------------------------------------


async def monthly_report_in_scope(
    scope: Scope, month: str, now: datetime, *, data_dir: Path, zone: tzinfo, locale: str
) -> MonthlyReport:
    """The monthly report of the scope's departments (an admin: all), as a coordinator asks for
    it from chat: refused as ``ReportError("report_<reason>")``, a text of ``coord_error`` in
    texts/coordinator.j2."""
    try:
        return await monthly_report(
            month,
            None if scope.everything else sorted(scope.departments),
            now,
            data_dir=data_dir,
            zone=zone,
            locale=locale,
        )
    except ReportError as exc:
        raise ReportError(f"report_{exc.code}", **{"month": inputs.echo(month), **exc.params}) from None
