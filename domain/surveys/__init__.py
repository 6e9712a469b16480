"""Integrity surveys of inspected entities — the pure core (stdlib only, no I/O).

* :mod:`.questions` — the four questions as codes, and :class:`Answers`;
* :mod:`.replies` — :func:`parse_reply` (SMS replies), survey codes, opt-out, :func:`route_reply`;
* :mod:`.flow` — the survey state machine: :func:`step` (a reply) and :func:`tick` (time);
* :mod:`.sampling` — which inspections are surveyed (seeded, exact quotas);
* :mod:`.timing` — quiet hours, reminder and expiry;
* :mod:`.scoring` — alerts, integrity scores, the anonymity rule.

docs/surveys.md describes it all for people.
"""

from domain.surveys.flow import (
    MAX_CLARIFICATIONS,
    Action,
    AskQuestion,
    Clarify,
    ConfirmOptOut,
    OptOutEntity,
    RaiseAlert,
    SendReminder,
    Status,
    SurveyState,
    Thank,
    ThankKind,
    new_survey,
    next_due,
    step,
    tick,
)
from domain.surveys.questions import COMMENT_MAX_CHARS, QUESTIONS, REQUIRED, Answers, Kind, Question
from domain.surveys.replies import (
    CODE_ALPHABET,
    OPT_OUT_KEYWORDS,
    ParseResult,
    Problem,
    Reason,
    Routing,
    is_code,
    make_code,
    parse_reply,
    route_reply,
)
from domain.surveys.sampling import DEFAULT_SHARES, Candidate, quota, rank, sample, share
from domain.surveys.scoring import (
    MIN_PUBLIC_RESPONSES,
    Response,
    Score,
    alert_reasons,
    integrity_scores,
    publishable,
)
from domain.surveys.timing import (
    EXPIRES_AFTER,
    QUIET_HOURS,
    REMINDER_AFTER,
    SHANGHAI,
    expires_at,
    is_quiet,
    next_allowed_send,
    reminder_at,
)

__all__ = [
    "Action", "Answers", "AskQuestion", "CODE_ALPHABET", "COMMENT_MAX_CHARS", "Candidate", "Clarify",
    "ConfirmOptOut", "DEFAULT_SHARES", "EXPIRES_AFTER", "Kind", "MAX_CLARIFICATIONS", "MIN_PUBLIC_RESPONSES",
    "OPT_OUT_KEYWORDS", "OptOutEntity", "ParseResult", "Problem", "QUESTIONS", "QUIET_HOURS", "Question",
    "REMINDER_AFTER", "REQUIRED", "RaiseAlert", "Reason", "Response", "Routing", "SHANGHAI", "Score",
    "SendReminder", "Status", "SurveyState", "Thank", "ThankKind", "alert_reasons", "expires_at",
    "integrity_scores", "is_code", "is_quiet", "make_code", "new_survey", "next_allowed_send", "next_due",
    "parse_reply", "publishable", "quota", "rank", "reminder_at", "route_reply", "sample", "share", "step", "tick",
]  # fmt: skip
