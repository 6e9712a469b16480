"""Inspection plans (抽查计划): parse and validate a plan written as a dict. Pure, stdlib only.

A plan file (TOML or YAML, read by ``services.plans``) becomes a dict; :func:`parse_plan` turns
it into a frozen :class:`PlanSpec` or raises :class:`PlanError` naming the offending field by
its path (``ratios.F``, ``items[2]``, ``team.seats[1]``). The error carries a code and
parameters, not a sentence: the words live in the templates (``texts/plans.j2``).

Ratios are decimal *strings* (``"0.05"``) because the draw protocol computes quotas in exact
decimal arithmetic; a float from the file (``0.1``) is refused rather than guessed at.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from domain.surveys.sampling import OTHERS, share

RISK_CLASSES = ("A", "B", "C", "D", "E")
ENTITY_KINDS = ("enterprise", "institution", "social_org", "legal_service")
# What a person may write for a kind, in a plan file as in a directory file (importers.validate)
KIND_ALIASES: dict[str, str] = {
    **dict.fromkeys(("企业", "公司", "个体工商户", "农民专业合作社", "enterprise"), "enterprise"),
    **dict.fromkeys(("事业单位", "institution", "public_institution"), "institution"),
    **dict.fromkeys(
        (
            "社会组织",
            "社会团体",
            "民办非企业单位",
            "基金会",
            "social_org",
            "social_organisation",
            "social_organization",
        ),
        "social_org",
    ),
    **dict.fromkeys(("法律服务机构", "律师事务所", "公证机构", "司法鉴定机构", "legal_service"), "legal_service"),
}
RESERVED_CODES = frozenset({"export"})  # `inspectbot draw export …` is a subcommand, not a plan

_CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}")
_DECIMAL = re.compile(r"\d+(\.\d+)?")
_SHARE = re.compile(r"\d+(\.\d+)?|\d+/\d+")
_DIVISION = re.compile(r"\d{2,12}")
_TIME = re.compile(r"([01]\d|2[0-3]):[0-5]\d")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")
MAX_NAME = 255  # the plan table's name column
MAX_TEAM = 50
MAX_LOAD = 100_000  # team.max_per_inspector: tasks per inspector per draw
MAX_DAYS = 3660  # ten years: every day count of a plan (window, rotation, announcement)
MAX_WORKING_DAYS = 250  # a working year

_DATE_TEXT = re.compile(r"\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2})?)?")


class PlanError(ValueError):
    """A plan field is wrong. ``path`` names the field, ``code`` the reason (a text in plans.j2)."""

    def __init__(self, path: str, code: str, **params: Any) -> None:
        self.path = path
        self.code = code
        self.params = params
        detail = ", ".join(f"{k}={v!r}" for k, v in params.items())
        super().__init__(f"{path or '(file)'}: {code}" + (f" ({detail})" if detail else ""))


@dataclass(frozen=True)
class Targets:
    """Which entities the plan covers; an empty tuple means "no restriction"."""

    kinds: tuple[str, ...] = ()
    divisions: tuple[str, ...] = ()  # division-code prefixes, e.g. "3702", "370202"
    industries: tuple[str, ...] = ()


@dataclass(frozen=True)
class Team:
    """Team size and, per seat, the department it must come from (None = any of the plan's)."""

    size: int
    seats: tuple[str | None, ...]
    max_per_inspector: int | None = None  # tasks one eligible inspector may carry per draw (a warning)


@dataclass(frozen=True)
class Rotation:
    """Skip entities a plan department inspected in the last ``entity_days`` (unless exempt);
    never send an inspector to an entity they inspected in the last ``inspector_days``."""

    entity_days: int = 0
    exempt_classes: tuple[str, ...] = ("D", "E")
    inspector_days: int = 0


@dataclass(frozen=True)
class Response:
    """An assignment must be answered by ``time`` on the ``working_days``-th working day.

    No answer by then: a reminder. Still none after a second period as long as the first: the
    coordinators are alerted, and with ``on_silence = "replace"`` the assignment is treated
    as a recusal of type "no response" and a replacement is drawn."""

    working_days: int = 3
    time: str = "18:00"
    on_silence: str = "alert"  # "alert" | "replace"


@dataclass(frozen=True)
class Publication:
    """After the visit: a submitted result is reviewed within ``review_days`` working days and
    published within ``working_days`` working days of the end of the inspection (the day the
    result was submitted); the firm may state its case or object within ``objection_days``
    working days of the notice; a re-inspection goes to the same ``team`` or is ``draw``n afresh."""

    working_days: int = 20
    review_days: int = 3
    objection_days: int = 5
    rectify_days: int = 15  # working days a 不合格 finding's rectification order gives
    reinspect: str = "team"  # "team" | "draw"


@dataclass(frozen=True)
class Window:
    """Inspections run from ``start_after_days`` after the draw (at ``start_time``) for ``days``.
    A flight plan reveals its targets to the teams at the window's start."""

    start_after_days: int = 1
    days: int = 30
    start_time: str = "09:00"


@dataclass(frozen=True)
class Schedule:
    """When the plan fires: a cron expression, or explicit local dates/times (one of the two).
    The firing is announced (its commitment published) ``announce_days`` ahead."""

    cron: str | None = None
    dates: tuple[str, ...] = ()  # "YYYY-MM-DDTHH:MM", local time in the configured zone
    at: str = "09:00"  # time of day for date-only entries
    announce_days: int = 1


@dataclass(frozen=True)
class PlanSpec:
    code: str
    name: str
    departments: tuple[str, ...]
    items: tuple[str, ...]
    ratios: tuple[tuple[str, str], ...]  # (risk class, decimal string) for every class A–E
    team: Team
    targets: Targets = field(default_factory=Targets)
    rotation: Rotation = field(default_factory=Rotation)
    flight: bool = False
    response: Response = field(default_factory=Response)
    window: Window = field(default_factory=Window)
    schedule: Schedule = field(default_factory=Schedule)
    description: str = ""
    #: The integrity survey's shares per risk class, then ``"*"`` for the classes not named
    #: (exact strings, ``"1/3"``, ``"0.5"``); () = the default, all of D and E and a third of the rest.
    survey_shares: tuple[tuple[str, str], ...] = ()
    publication: Publication = field(default_factory=Publication)

    @property
    def ratio_map(self) -> dict[str, str]:
        return dict(self.ratios)

    @property
    def joint(self) -> bool:
        return len(self.departments) > 1

    def to_dict(self) -> dict[str, Any]:
        """The normalised plan as plain JSON-able data; ``parse_plan(spec.to_dict()) == spec``."""
        return {
            "code": self.code,
            "name": self.name,
            "description": self.description,
            "departments": list(self.departments),
            "items": list(self.items),
            "flight": self.flight,
            "targets": {
                "kinds": list(self.targets.kinds),
                "divisions": list(self.targets.divisions),
                "industries": list(self.targets.industries),
            },
            "ratios": dict(self.ratios),
            "team": {
                "size": self.team.size,
                "seats": [s if s is not None else "*" for s in self.team.seats],
                **({"max_per_inspector": self.team.max_per_inspector} if self.team.max_per_inspector else {}),
            },
            "rotation": {
                "entity_days": self.rotation.entity_days,
                "exempt_classes": list(self.rotation.exempt_classes),
                "inspector_days": self.rotation.inspector_days,
            },
            "response": {
                "working_days": self.response.working_days,
                "time": self.response.time,
                "on_silence": self.response.on_silence,
            },
            "window": {
                "start_after_days": self.window.start_after_days,
                "days": self.window.days,
                "start_time": self.window.start_time,
            },
            "schedule": {
                **({"cron": self.schedule.cron} if self.schedule.cron is not None else {}),
                **({"dates": list(self.schedule.dates)} if self.schedule.dates else {}),
                "at": self.schedule.at,
                "announce_days": self.schedule.announce_days,
            },
            **({"survey": {"shares": dict(self.survey_shares)}} if self.survey_shares else {}),
            **({"publication": self.publication.__dict__.copy()} if self.publication != Publication() else {}),
        }


# --- field readers: each checks one value and names it by its path on failure ---------------


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _table(value: Any, path: str, allowed: set[str]) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise PlanError(path, "not_table")
    for key in value:
        if not isinstance(key, str) or key not in allowed:
            shown = str(key)
            if not shown.isprintable() or shown.strip() != shown or not shown:
                shown = repr(shown)  # a key of blanks or control characters, made visible in the message
            raise PlanError(_join(path, shown), "unknown_field")
    return value


def _string(value: Any, path: str, *, empty: bool = False, max_len: int | None = None) -> str:
    if not isinstance(value, str):
        raise PlanError(path, "not_string", value=_show(value))
    if not empty and not value.strip():
        raise PlanError(path, "empty")
    if _CONTROL.search(value):  # a NUL, an escape sequence, a lone surrogate: no database text holds them all
        raise PlanError(path, "control_chars")
    if max_len is not None and len(value) > max_len:
        raise PlanError(path, "too_long", length=len(value), maximum=max_len)
    return value


def _int(value: Any, path: str, minimum: int, maximum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise PlanError(path, "not_int", value=_show(value))
    if value < minimum:
        raise PlanError(path, "too_small", value=value, minimum=minimum)
    if value > maximum:  # a team of 10¹² people, a window of a billion days: refused now, not at the draw
        raise PlanError(path, "too_large", value=value, maximum=maximum)
    return value


def _bool(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise PlanError(path, "not_bool", value=_show(value))
    return value


def _list(value: Any, path: str, *, nonempty: bool = False) -> list[Any]:
    if not isinstance(value, (list, tuple)):
        raise PlanError(path, "not_list")
    if nonempty and not value:
        raise PlanError(path, "empty")
    return list(value)


def _unique_strings(
    value: Any,
    path: str,
    *,
    nonempty: bool = False,
    check: Callable[[str, str], object] | None = None,
    normalise: Callable[[str], str | None] | None = None,
) -> tuple[str, ...]:
    out: list[str] = []
    for i, item in enumerate(_list(value, path, nonempty=nonempty)):
        text = _string(item, _join(path, i))
        if normalise is not None:
            text = normalise(text.strip()) or text
        if check is not None:
            check(text, _join(path, i))
        if text in out:
            raise PlanError(_join(path, i), "duplicate", value=text)
        out.append(text)
    return tuple(out)


def _time(value: Any, path: str) -> str:
    text = _string(value, path)
    if not _TIME.fullmatch(text):
        raise PlanError(path, "bad_time", value=text)
    return text


def _show(value: Any) -> str:
    return repr(value) if not isinstance(value, str) else value


def _code(text: str, path: str) -> None:
    if not _CODE.fullmatch(text):
        raise PlanError(path, "bad_code", value=text)


def _risk_class(text: str, path: str) -> None:
    if text not in RISK_CLASSES:
        raise PlanError(path, "unknown_risk_class", value=text)


def _kind(text: str, path: str) -> None:
    if text not in ENTITY_KINDS:
        raise PlanError(path, "unknown_kind", value=text, allowed="企业、事业单位、社会组织、法律服务机构")


def _division(text: str, path: str) -> None:
    if not _DIVISION.fullmatch(text):
        raise PlanError(path, "bad_division", value=text)


# --- sections --------------------------------------------------------------------------------


def _exact_text(value: Any, path: str, kind: str) -> str:
    """A ratio or share as the file gives it: quoted text or a whole number. A float is refused
    (``float_<kind>``: 0.1 is not one tenth in binary), as is a bool (``bad_<kind>``)."""
    if isinstance(value, float):
        raise PlanError(path, f"float_{kind}", value=repr(value))
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise PlanError(path, f"bad_{kind}", value=repr(value) if isinstance(value, bool) else _show(value))
    return str(value)


def parse_ratio(value: Any, path: str) -> str:
    """A sampling ratio as the exact decimal string the protocol publishes (0 ≤ p ≤ 1)."""
    text = _exact_text(value, path, "ratio")
    if not _DECIMAL.fullmatch(text):
        raise PlanError(path, "bad_ratio", value=_show(text))
    if Decimal(text) > 1:
        raise PlanError(path, "ratio_range", value=text)
    return text


def parse_share(value: Any, path: str) -> str:
    """A survey share as an exact string: a decimal (``"0.05"``) or a fraction (``"1/3"``) in
    [0, 1]. A float from the file is refused, as for ratios."""
    text = _exact_text(value, path, "share").strip()
    if not _SHARE.fullmatch(text):
        raise PlanError(path, "bad_share", value=_show(value))
    if text.partition("/")[2].strip("0") == "" and "/" in text:  # a zero denominator
        raise PlanError(path, "bad_share", value=text)
    try:
        share(text)
    except ValueError:  # more than 1
        raise PlanError(path, "share_range", value=text) from None
    return text


def _survey(value: Any) -> tuple[tuple[str, str], ...]:
    """``[survey] shares = {D = "1", "*" = "1/3"}``: the share of each named class, ``"*"`` for the
    others; without ``"*"`` the classes not named are not surveyed (as a class left out of
    ``ratios`` is not drawn). Normalised: the named classes A–E in order, then ``"*"``."""
    table = _table(value, "survey", {"shares"})
    if "shares" not in table:
        return ()
    shares = table["shares"]
    if not isinstance(shares, Mapping):
        raise PlanError("survey.shares", "not_table")
    if not shares:
        raise PlanError("survey.shares", "empty")
    given = {}
    for key, value in shares.items():
        path = _join("survey.shares", str(key))
        if key != OTHERS:
            _risk_class(str(key), path)
        given[str(key)] = parse_share(value, path)
    return tuple((c, given[c]) for c in RISK_CLASSES if c in given) + ((OTHERS, given.get(OTHERS, "0")),)


def _ratios(value: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, Mapping):
        raise PlanError("ratios", "not_table")
    table = value
    if not table:
        raise PlanError("ratios", "empty")
    given = {}
    for key, ratio in table.items():
        _risk_class(str(key), _join("ratios", str(key)))
        given[key] = parse_ratio(ratio, _join("ratios", key))
    return tuple((c, given.get(c, "0")) for c in RISK_CLASSES)


def _targets(value: Any) -> Targets:
    table = _table(value, "targets", {"kinds", "divisions", "industries"})
    return Targets(
        kinds=_unique_strings(table.get("kinds", []), "targets.kinds", check=_kind, normalise=KIND_ALIASES.get),
        divisions=_unique_strings(table.get("divisions", []), "targets.divisions", check=_division),
        industries=_unique_strings(table.get("industries", []), "targets.industries"),
    )


def _team(value: Any, departments: tuple[str, ...]) -> Team:
    table = _table(value, "team", {"size", "seats", "max_per_inspector"})
    if "size" not in table:
        raise PlanError("team.size", "missing")
    size = _int(table["size"], "team.size", 2, MAX_TEAM)
    if "seats" in table:
        raw = _list(table["seats"], "team.seats")
        if len(raw) != size:
            raise PlanError("team.seats", "seats_count", count=len(raw), size=size)
        seats: list[str | None] = []
        for i, seat in enumerate(raw):
            text = _string(seat, _join("team.seats", i))
            if text != "*" and text not in departments:
                raise PlanError(_join("team.seats", i), "seat_department", value=text)
            seats.append(None if text == "*" else text)
    elif len(departments) > 1:
        if size < len(departments):
            raise PlanError("team.size", "joint_too_small", size=size, departments=len(departments))
        seats = [*departments, *([None] * (size - len(departments)))]
    else:
        seats = [None] * size
    if len(departments) > 1:
        for dept in departments:
            if dept not in seats:
                raise PlanError("team.seats", "joint_needs_seat", value=dept)
    cap = table.get("max_per_inspector")
    cap = None if cap is None else _int(cap, "team.max_per_inspector", 1, MAX_LOAD)
    return Team(size=size, seats=tuple(seats), max_per_inspector=cap)


def _rotation(value: Any) -> Rotation:
    table = _table(value, "rotation", {"entity_days", "exempt_classes", "inspector_days"})
    exempt = table.get("exempt_classes", list(Rotation.exempt_classes))
    return Rotation(
        entity_days=_int(table.get("entity_days", 0), "rotation.entity_days", 0, MAX_DAYS),
        exempt_classes=_unique_strings(exempt, "rotation.exempt_classes", check=_risk_class),
        inspector_days=_int(table.get("inspector_days", 0), "rotation.inspector_days", 0, MAX_DAYS),
    )


def _response(value: Any) -> Response:
    table = _table(value, "response", {"working_days", "time", "on_silence"})
    on_silence = table.get("on_silence", Response.on_silence)
    if on_silence not in ("alert", "replace"):
        raise PlanError("response.on_silence", "bad_choice", value=_show(on_silence), allowed="alert, replace")
    return Response(
        working_days=_int(
            table.get("working_days", Response.working_days), "response.working_days", 1, MAX_WORKING_DAYS
        ),
        time=_time(table.get("time", Response.time), "response.time"),
        on_silence=on_silence,
    )


def _publication(value: Any) -> Publication:
    table = _table(value, "publication", {"working_days", "review_days", "objection_days", "rectify_days", "reinspect"})
    reinspect = table.get("reinspect", Publication.reinspect)
    if reinspect not in ("team", "draw"):
        raise PlanError("publication.reinspect", "bad_choice", value=_show(reinspect), allowed="team, draw")
    return Publication(
        working_days=_int(
            table.get("working_days", Publication.working_days), "publication.working_days", 1, MAX_WORKING_DAYS
        ),
        review_days=_int(
            table.get("review_days", Publication.review_days), "publication.review_days", 1, MAX_WORKING_DAYS
        ),
        objection_days=_int(
            table.get("objection_days", Publication.objection_days), "publication.objection_days", 1, MAX_WORKING_DAYS
        ),
        rectify_days=_int(
            table.get("rectify_days", Publication.rectify_days), "publication.rectify_days", 1, MAX_WORKING_DAYS
        ),
        reinspect=reinspect,
    )


def _window(value: Any) -> Window:
    table = _table(value, "window", {"start_after_days", "days", "start_time"})
    return Window(
        start_after_days=_int(
            table.get("start_after_days", Window.start_after_days), "window.start_after_days", 0, MAX_DAYS
        ),
        days=_int(table.get("days", Window.days), "window.days", 1, MAX_DAYS),
        start_time=_time(table.get("start_time", Window.start_time), "window.start_time"),
    )


def parse_when(value: Any, path: str, at: str) -> str:
    """A schedule entry as ``YYYY-MM-DDTHH:MM`` local time (a date alone fires at ``at``)."""
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            raise PlanError(path, "date_offset", value=value.isoformat())
        return value.strftime("%Y-%m-%dT%H:%M")
    if isinstance(value, date):
        return f"{value.isoformat()}T{at}"
    text = _string(value, path)
    if not _DATE_TEXT.fullmatch(text):
        raise PlanError(path, "bad_date", value=text)
    try:
        parsed = datetime.fromisoformat(text.replace(" ", "T")) if len(text) > 10 else date.fromisoformat(text)
    except ValueError:
        raise PlanError(path, "bad_date", value=text) from None
    return parse_when(parsed, path, at)


def _schedule(value: Any) -> Schedule:
    table = _table(value, "schedule", {"cron", "dates", "at", "announce_days"})
    at = _time(table.get("at", Schedule.at), "schedule.at")
    if ("cron" in table) == ("dates" in table):
        raise PlanError("schedule", "schedule_one_of")
    cron = None
    dates: tuple[str, ...] = ()
    if "cron" in table:
        cron = " ".join(_string(table["cron"], "schedule.cron").split())
        if len(cron.split()) not in (5, 6):
            raise PlanError("schedule.cron", "bad_cron", value=cron)
    else:
        raw = _list(table["dates"], "schedule.dates", nonempty=True)
        found: list[str] = []
        for i, item in enumerate(raw):
            when = parse_when(item, _join("schedule.dates", i), at)
            if when in found:
                raise PlanError(_join("schedule.dates", i), "duplicate", value=when)
            found.append(when)
        dates = tuple(sorted(found))
    return Schedule(
        cron=cron,
        dates=dates,
        at=at,
        announce_days=_int(table.get("announce_days", Schedule.announce_days), "schedule.announce_days", 0, MAX_DAYS),
    )


TOP_LEVEL = {
    "code",
    "name",
    "description",
    "departments",
    "items",
    "flight",
    "targets",
    "ratios",
    "team",
    "rotation",
    "response",
    "window",
    "schedule",
    "survey",
    "publication",
}
REQUIRED = ("code", "name", "departments", "items", "ratios", "team", "schedule")


def parse_plan(data: Any) -> PlanSpec:
    """Validate a plan given as a dict (from TOML, YAML or :meth:`PlanSpec.to_dict`)."""
    table = _table(data, "", TOP_LEVEL)
    for key in REQUIRED:
        if key not in table:
            raise PlanError(key, "missing")
    code = _string(table["code"], "code")
    _code(code, "code")
    if code.lower() in RESERVED_CODES:
        raise PlanError("code", "reserved_code", value=code)
    departments = _unique_strings(table["departments"], "departments", nonempty=True, check=_code)
    return PlanSpec(
        code=code,
        name=_string(table["name"], "name", max_len=MAX_NAME),
        description=_string(table.get("description", ""), "description", empty=True),
        departments=departments,
        items=_unique_strings(table["items"], "items", nonempty=True, check=_code),
        flight=_bool(table.get("flight", False), "flight"),
        targets=_targets(table.get("targets", {})),
        ratios=_ratios(table["ratios"]),
        team=_team(table["team"], departments),
        rotation=_rotation(table.get("rotation", {})),
        response=_response(table.get("response", {})),
        window=_window(table.get("window", {})),
        schedule=_schedule(table["schedule"]),
        survey_shares=_survey(table.get("survey", {})),
        publication=_publication(table.get("publication", {})),
    )


ANNOUNCE_SLACK = timedelta(hours=6)  # an announcement this late still counts as on time (the scheduler's grace)


def lead_time(spec: PlanSpec) -> timedelta:
    """How far ahead of its time a firing is announced: ``announce_days``, at least one day
    (the scheduler announces that far ahead). A draw is on schedule when its commitment was
    public at least this long before, less :data:`ANNOUNCE_SLACK`."""
    return timedelta(days=max(spec.schedule.announce_days, 1))


def overloaded(spec: PlanSpec, tasks: int, inspectors: int) -> int | None:
    """The load per eligible inspector (tasks shared out, rounded up) when it exceeds the
    plan's ``team.max_per_inspector``; None when within it or when the plan states none."""
    cap = spec.team.max_per_inspector
    if cap is None or tasks == 0:
        return None
    load = -(-tasks // inspectors) if inspectors else tasks
    return load if load > cap else None
