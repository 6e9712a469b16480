"""Plans: load plan files, check them against the directory, store them; plan calendars.

A plan file is TOML or YAML holding the fields of :class:`domain.plans.PlanSpec`. Every
failure is a :class:`domain.plans.PlanError` naming the field, so the CLI can say exactly
what to fix; nothing is written unless the whole plan is good.

The calendar helpers (fire times, response deadlines in Chinese working days, the inspection
window) live here because they need third-party libraries (croniter, chinese_calendar) that
the pure domain must not import.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import tomllib
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import chinese_calendar
import yaml
from croniter import croniter
from tortoise.transactions import in_transaction

from core.clock import Clock
from domain.errors import ServiceError
from domain.plans import PlanError, PlanSpec, parse_plan
from models.directory import Department, Item
from models.plans import Plan
from services import audit

log = logging.getLogger(__name__)

TOML_SUFFIXES = (".toml",)
YAML_SUFFIXES = (".yaml", ".yml")


class PlanNotFound(LookupError):
    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


# --- files ------------------------------------------------------------------------------------


def read_plan_file(path: Path) -> object:
    """The file's data as TOML or YAML (by suffix); a syntax error names line and column."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in TOML_SUFFIXES + YAML_SUFFIXES:
        raise PlanError("", "unknown_format", file=path.name)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise PlanError("", "unreadable", file=str(path), detail=exc.strerror or str(exc)) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise PlanError("", "not_utf8", file=path.name) from None
    if suffix in TOML_SUFFIXES:
        try:
            return tomllib.loads(text)
        except (tomllib.TOMLDecodeError, RecursionError) as exc:  # RecursionError: nested too deeply
            raise toml_error(exc, path.name, text) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        detail = getattr(exc, "problem", None) or str(exc)
        where = {"line": mark.line + 1, "column": mark.column + 1} if mark else {}
        raise PlanError("", "bad_syntax", file=path.name, detail=detail, **where) from None
    except (RecursionError, ValueError, OverflowError) as exc:  # nested too deeply; a date like 2027-02-30
        raise PlanError("", "bad_syntax", file=path.name, detail=str(exc)) from None


def toml_error(exc: Exception, name: str, text: str) -> PlanError:
    """A TOML syntax error as a :class:`PlanError` naming the line and column (tomllib says
    "at end of document" for the last line), the message's kind (``problem``) for the templates
    to say in the reader's language, and tomllib's own words (``detail``)."""
    message = str(exc)
    found = re.search(r"\(at line (\d+), column (\d+)\)$", message)
    if found:
        line, column = int(found.group(1)), int(found.group(2))
    else:
        lines = text.splitlines() or [""]
        line, column = len(lines), len(lines[-1]) + 1
    detail = re.sub(r"\s*\(at [^)]*\)$", "", message)
    problem = next((key for key, start in TOML_PROBLEMS if detail.startswith(start)), "other")
    return PlanError("", "bad_syntax", file=name, line=line, column=column, problem=problem, detail=detail)


TOML_PROBLEMS = (
    ("invalid_value", "Invalid value"),
    ("unterminated", "Unterminated string"),
    ("unterminated", 'Expected "'),
    ("unterminated", 'Expected "\'"'),
    ("overwrite", "Cannot overwrite"),
    ("twice", "Cannot declare"),
    ("expected_equals", "Expected '=' after a key"),
    ("expected_newline", "Expected newline or end of document"),
    ("unclosed", "Unclosed"),
    ("illegal_char", "Illegal character"),
)


def check_schedule(spec: PlanSpec) -> None:
    """The cron expression must be one croniter understands."""
    if spec.schedule.cron is not None and not croniter.is_valid(spec.schedule.cron):
        raise PlanError("schedule.cron", "bad_cron", value=spec.schedule.cron)


def load_plan_file(path: Path) -> PlanSpec:
    """Read and validate a plan file (not yet against the directory)."""
    spec = parse_plan(read_plan_file(path))
    check_schedule(spec)
    return spec


# --- the directory ------------------------------------------------------------------------


async def check_against_directory(spec: PlanSpec) -> None:
    """Departments and items must exist, and each item must belong to one of the plan's
    departments (a joint plan's seat from department D checks D's items)."""
    known = {d.code: d.id for d in await Department.filter(code__in=list(spec.departments))}
    for i, code in enumerate(spec.departments):
        if code not in known:
            raise PlanError(f"departments[{i}]", "unknown_department", value=code)
    items = {it.code: it for it in await Item.filter(code__in=list(spec.items)).prefetch_related("department")}
    for i, code in enumerate(spec.items):
        item = items.get(code)
        if item is None:
            raise PlanError(f"items[{i}]", "unknown_item", value=code)
        if item.department.code not in spec.departments:
            raise PlanError(f"items[{i}]", "item_department", value=code, department=item.department.code)


@dataclass(frozen=True)
class AddedPlan:
    plan: Plan
    spec: PlanSpec
    created: bool


def spec_digest(spec: dict) -> str:
    """SHA-256 of a plan's stored spec as canonical JSON: what the audit chain records."""
    return hashlib.sha256(
        json.dumps(spec, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    ).hexdigest()


async def add_plan(path: Path, clock: Clock, actor: str = "cli") -> AddedPlan:
    """Load a plan file and store it (insert, or update the plan with the same code), on the
    audit chain (``plan.added`` / ``plan.changed`` with the spec's digest and the fields changed).

    Firings already announced keep the parameters they were announced with.
    """
    spec = load_plan_file(path)
    await check_against_directory(spec)
    now = clock.now()
    fields = dict(
        name=spec.name,
        departments=list(spec.departments),
        flight=spec.flight,
        spec=spec.to_dict(),
        active=True,
        source=Path(path).name[:255],
        updated_at=now,
    )
    async with in_transaction() as conn:
        plan = await Plan.filter(code=spec.code).using_db(conn).select_for_update().first()
        data = {"source": fields["source"], "spec_sha256": spec_digest(fields["spec"])}
        if plan is None:
            plan = await Plan.create(code=spec.code, created_at=now, using_db=conn, **fields)
            await audit.append(actor, "plan.added", f"plan:{spec.code}", data, now, conn)
            return AddedPlan(plan, spec, created=True)
        before = dict(plan.spec or {})
        changed = sorted(k for k in set(before) | set(fields["spec"]) if before.get(k) != fields["spec"].get(k))
        data = {**data, "changed": changed, "reactivated": not plan.active, "was_sha256": spec_digest(before)}
        plan.update_from_dict(fields)
        await plan.save(using_db=conn)
        await audit.append(actor, "plan.changed", f"plan:{spec.code}", data, now, conn)
    return AddedPlan(plan, spec, created=False)


class PlanRetireError(ServiceError):
    """A refused retirement; ``code`` names ``plan_retire_error`` in texts/plans.j2."""


async def retire_plan(code: str, reason: str, *, clock: Clock, actor: str = "cli", max_reason: int = 500) -> Plan:
    """Retire a plan: the scheduler stops announcing and drawing it (firings already announced
    stay, to be drawn or withdrawn); a typed reason, on the audit chain (``plan.retired``).
    ``plan add`` of its file makes it active again (``plan.changed``, ``reactivated``)."""
    reason = reason.strip()
    if not reason:
        raise PlanRetireError("reason_required")
    if len(reason) > max_reason:
        raise PlanRetireError("reason_too_long", limit=max_reason)
    now = clock.now()
    async with in_transaction() as conn:
        plan = await Plan.filter(code=code).using_db(conn).select_for_update().first()
        if plan is None:
            raise PlanNotFound(code)
        if not plan.active:
            raise PlanRetireError("already_retired", plan=code)
        await Plan.filter(id=plan.id).using_db(conn).update(active=False, updated_at=now)
        await audit.append(actor, "plan.retired", f"plan:{code}", {"reason": reason}, now, conn)
    plan.active = False
    return plan


async def list_plans() -> list[Plan]:
    return await Plan.all().order_by("code")


async def get_plan(code: str) -> Plan:
    plan = await Plan.get_or_none(code=code)
    if plan is None:
        raise PlanNotFound(code)
    return plan


async def active_specs() -> list[tuple[Plan, PlanSpec]]:
    """Every active plan with its spec, by code: what the scheduler builds its jobs from."""
    return [(p, spec_of(p)) for p in await Plan.filter(active=True).order_by("code")]


def spec_of(plan: Plan) -> PlanSpec:
    return parse_plan(plan.spec)


# --- calendars --------------------------------------------------------------------------------


def _at(day: date, hhmm: str, zone: ZoneInfo) -> datetime:
    hour, minute = (int(x) for x in hhmm.split(":"))
    return datetime.combine(day, time(hour, minute), tzinfo=zone)


def fire_times(spec: PlanSpec, after: datetime, zone: ZoneInfo, limit: int = 5) -> list[datetime]:
    """The plan's next ``limit`` fire times strictly after ``after`` (aware, in ``zone``)."""
    local_after = after.astimezone(zone)
    if spec.schedule.cron is not None:
        it = croniter(spec.schedule.cron, local_after)
        return [it.get_next(datetime) for _ in range(limit)]
    out = []
    for text in spec.schedule.dates:
        when = datetime.fromisoformat(text).replace(tzinfo=zone)
        if when > local_after:
            out.append(when)
    return out[:limit]


def is_working_day(day: date) -> bool:
    """A working day by the State Council's holiday calendar; beyond the years the calendar
    covers, Monday to Friday (logged, since make-up working days are then unknown)."""
    try:
        return chinese_calendar.is_workday(day)
    except NotImplementedError:
        log.warning("no Chinese holiday data for %s; counting Monday-Friday as working days", day.year)
        return day.weekday() < 5


def add_working_days(start: date, days: int) -> date:
    """The ``days``-th working day after ``start`` (``start`` itself not counted)."""
    day = start
    counted = 0
    while counted < days:
        day += timedelta(days=1)
        if is_working_day(day):
            counted += 1
    return day


def response_deadline(sent_at: datetime, spec: PlanSpec, zone: ZoneInfo) -> datetime:
    """When an assignment sent at ``sent_at`` must have been answered."""
    local_day = sent_at.astimezone(zone).date()
    return _at(add_working_days(local_day, spec.response.working_days), spec.response.time, zone)


def inspection_window(drawn_at: datetime, spec: PlanSpec, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """[start, end) of the inspections of a draw made at ``drawn_at``; a flight plan reveals
    its targets at the start."""
    first_day = drawn_at.astimezone(zone).date() + timedelta(days=spec.window.start_after_days)
    start = _at(first_day, spec.window.start_time, zone)
    return start, start + timedelta(days=spec.window.days)
