"""A regulator's override of the engine's class for one firm: what a proposal must say, and when it applies.

Pure rules (standard library only); the use cases are in ``services.risk.overrides``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from domain.errors import ServiceError

MAX_REASON = 500  # as an off-schedule draw's reason: one line a coordinator reads before approving
MAX_MONTHS = 12  # a regulator reviews overrides yearly: none is valid longer than this
NOTICE_DAYS = 7  # an override in force is announced to run out this many days before its end (once)


class OverrideError(ServiceError):
    """A proposal refused as written; ``code`` names a text of ``texts/risk.j2``."""


def clean_reason(reason: str) -> str:
    """The reason on one line without control characters; refused empty or longer than MAX_REASON."""
    reason = " ".join("".join(ch for ch in reason if ch.isprintable() or ch.isspace()).split())
    if not reason:
        raise OverrideError("risk_override_reason_required")
    if len(reason) > MAX_REASON:
        raise OverrideError("risk_override_reason_too_long", limit=MAX_REASON)
    return reason


def latest_until(today: date) -> date:
    """The last day an override proposed ``today`` may run to: the same day MAX_MONTHS months on
    (the month's last day when it has no such day)."""
    month = today.month - 1 + MAX_MONTHS
    year, month = today.year + month // 12, month % 12 + 1
    for day in (today.day, 30, 29, 28):
        try:
            return date(year, month, day)
        except ValueError:
            continue
    raise AssertionError("unreachable")


def check(risk_class: str, classes: Sequence[str], until: date, today: date) -> str:
    """The class, upper-cased, if it is one of the model's and ``until`` is today or later and at most
    MAX_MONTHS ahead; refused otherwise."""
    wanted = risk_class.strip().upper()
    if wanted not in classes:
        raise OverrideError("risk_override_class_unknown", given=risk_class, classes=list(classes))
    if until < today:
        raise OverrideError("risk_override_until_past", until=until.isoformat(), today=today.isoformat())
    latest = latest_until(today)
    if until > latest:
        raise OverrideError(
            "risk_override_until_too_far", until=until.isoformat(), latest=latest.isoformat(), months=MAX_MONTHS
        )
    return wanted
