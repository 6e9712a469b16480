"""One survey's life after it was sent, as pure functions. Stdlib only, no I/O.

``step(state, reply, now)`` applies one parsed reply; ``tick(state, now)`` applies the passage of
time (the reminder, the expiry). Both return the new state and a tuple of *actions* — plain
values the service layer turns into outbox rows and alerts. Rules:

* Answers fill in; an answer once recorded is never overwritten. Comments are appended.
* A reply that is readable but leaves questions open → :class:`AskQuestion` for the next one
  (the one-answer-per-SMS flow); all required questions answered → ``COMPLETE`` + thanks.
* A reply with something unreadable → :class:`Clarify` naming the first unreadable question
  and what is expected — at most :data:`MAX_CLARIFICATIONS` (2) per question; the third
  failure on the same question closes the survey as ``INCOMPLETE`` (with a closing thanks).
* An answer that raises an alert (Q2 yes, fairness ≤ 2) → :class:`RaiseAlert` at once, once
  per reason per survey, whatever the survey's status (late or after opt-out too).
* Opt-out (in any state) → ``OPTED_OUT``, :class:`OptOutEntity` (never survey this entity
  again, close its other open surveys) and one :class:`ConfirmOptOut`; again → nothing.
* After expiry (7 days after sending) a reply is recorded as late (what it answers is kept)
  and the first late reply is thanked; it asks nothing. A closed survey never asks anything again; ``INCOMPLETE`` may still be completed.
* After completion (or after we stopped asking) a new comment is recorded and thanked as
  recorded; a mere courtesy ("谢谢", "好的", :func:`domain.surveys.replies.is_courtesy`) is not
  recorded and gets a short polite answer — both at most :data:`MAX_ACKNOWLEDGEMENTS` times a
  survey. A first reply with no readable answer keeps its text as the comment (and is clarified).
* ``tick``: the survey expires at ``sent_at + 7 d``; one reminder of the open questions at
  ``sent_at + 48 h`` moved out of quiet hours, and only while the local time is allowed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, time, tzinfo
from enum import Enum

from domain.surveys.questions import Answers, Question
from domain.surveys.replies import ParseResult, Reason
from domain.surveys.scoring import alert_reasons
from domain.surveys.timing import QUIET_HOURS, SHANGHAI, expires_at, is_quiet, reminder_at, utc

MAX_CLARIFICATIONS = 2


class Status(Enum):
    OPEN = "open"  # sent, waiting for answers
    COMPLETE = "complete"  # every required question answered
    INCOMPLETE = "incomplete"  # a question stayed unreadable after two clarifications
    EXPIRED = "expired"  # 7 days passed first (answers so far are kept)
    OPTED_OUT = "opted_out"

    @property
    def closed(self) -> bool:
        return self is not Status.OPEN


class ThankKind(Enum):
    COMPLETE = "complete"
    INCOMPLETE = "incomplete"  # we stop asking
    LATE = "late"  # the answer came after expiry
    COMMENT = "comment"  # a comment after the survey was over: recorded, and said so
    COURTESY = "courtesy"  # "谢谢" after the survey was over: nothing recorded, answered politely


#: Acknowledgements of later comments and courtesies, per survey: a person writing back gets an
#: answer, an auto-responder cannot start an endless exchange. Counted in ``clarifications`` under
#: :data:`Question.COMMENT` (a question never clarified), so the stored row needs no new column.
MAX_ACKNOWLEDGEMENTS = 3


@dataclass(frozen=True)
class AskQuestion:
    """Send the prompt of the next open question."""

    question: Question


@dataclass(frozen=True)
class Clarify:
    """Send one short clarification: ``question`` could not be read because of ``reason``
    (which names what is expected). ``attempt`` is 1 or 2."""

    question: Question
    reason: Reason
    attempt: int


@dataclass(frozen=True)
class Thank:
    kind: ThankKind


@dataclass(frozen=True)
class SendReminder:
    """The one reminder, naming the questions still open."""

    questions: tuple[Question, ...]


@dataclass(frozen=True)
class RaiseAlert:
    """Alert the plan's coordinators (never the inspectors) with the survey's answers."""

    reasons: tuple[str, ...]
    answers: Answers


@dataclass(frozen=True)
class OptOutEntity:
    """Record the entity as opted out: no survey message to it ever again."""


@dataclass(frozen=True)
class ConfirmOptOut:
    """Send the one opt-out confirmation."""


Action = AskQuestion | Clarify | Thank | SendReminder | RaiseAlert | OptOutEntity | ConfirmOptOut


@dataclass(frozen=True)
class SurveyState:
    """What the service stores for one sent survey."""

    sent_at: datetime  # time-zone aware
    status: Status = Status.OPEN
    answers: Answers = field(default_factory=Answers)
    clarifications: Mapping[Question, int] = field(default_factory=dict)  # sent per question
    reminded_at: datetime | None = None
    closed_at: datetime | None = None
    late: bool = False  # something was recorded after expiry
    alerted: frozenset[str] = frozenset()  # alert reasons already raised

    @property
    def open_questions(self) -> tuple[Question, ...]:
        """What a reply is parsed against (``parse_reply(text, state.open_questions)``)."""
        return self.answers.open()


def new_survey(sent_at: datetime) -> SurveyState:
    if sent_at.tzinfo is None:
        raise ValueError("sent_at must be time-zone aware")
    return SurveyState(sent_at=sent_at)


def _with_alerts(state: SurveyState, answers: Answers) -> tuple[SurveyState, tuple[Action, ...]]:
    """Record ``answers`` and raise an alert for each reason not raised before."""
    fresh = tuple(r for r in alert_reasons(answers) if r not in state.alerted)
    state = replace(state, answers=answers, alerted=state.alerted | frozenset(fresh))
    return state, ((RaiseAlert(fresh, answers),) if fresh else ())


def _expire(state: SurveyState, now: datetime) -> SurveyState:
    if state.status is Status.OPEN and utc(now) >= expires_at(state.sent_at):
        return replace(state, status=Status.EXPIRED, closed_at=expires_at(state.sent_at))
    return state


def _clarify(state: SurveyState, reply: ParseResult, now: datetime) -> tuple[SurveyState, tuple[Action, ...]]:
    """One clarification for the first unreadable question, or close as incomplete."""
    problem = reply.problems[0]
    question = problem.question
    if question is None or question not in state.answers.open():
        open_ = state.answers.open()
        if not open_:
            return state, ()
        question = open_[0]
    sent = state.clarifications.get(question, 0)
    if sent >= MAX_CLARIFICATIONS:
        return replace(state, status=Status.INCOMPLETE, closed_at=now), (Thank(ThankKind.INCOMPLETE),)
    counts = {**state.clarifications, question: sent + 1}
    return replace(state, clarifications=counts), (Clarify(question, problem.reason, sent + 1),)


def _acknowledge(
    state: SurveyState, actions: tuple[Action, ...], progressed: bool, courtesy: bool
) -> tuple[SurveyState, tuple[Action, ...]]:
    """After a closed survey: a new comment is thanked as recorded, a courtesy answered politely,
    each at most :data:`MAX_ACKNOWLEDGEMENTS` times a survey."""
    sent = state.clarifications.get(Question.COMMENT, 0)
    if not (progressed or courtesy) or sent >= MAX_ACKNOWLEDGEMENTS:
        return state, actions
    state = replace(state, clarifications={**state.clarifications, Question.COMMENT: sent + 1})
    return state, actions + (Thank(ThankKind.COMMENT if progressed else ThankKind.COURTESY),)


def step(state: SurveyState, reply: ParseResult, now: datetime) -> tuple[SurveyState, tuple[Action, ...]]:
    """Apply one reply to the survey; see the module docstring for the rules."""
    if now.tzinfo is None:
        raise ValueError("now must be time-zone aware")
    if reply.opt_out:
        if state.status is Status.OPTED_OUT:
            return state, ()
        return replace(state, status=Status.OPTED_OUT, closed_at=now), (OptOutEntity(), ConfirmOptOut())
    state = _expire(state, now)
    before = state.answers
    state, actions = _with_alerts(state, before.filled_from(reply.answers))
    progressed = state.answers != before
    if state.status is Status.EXPIRED:  # recorded as late; the first late reply is thanked
        return replace(state, late=True), actions + (() if state.late else (Thank(ThankKind.LATE),))
    if state.status is Status.OPTED_OUT:
        return state, actions  # answers after opting out: kept, and we stay silent as promised
    if state.status is Status.COMPLETE:  # a comment (kept) or a courtesy (not kept) after the survey
        return _acknowledge(state, actions, progressed, reply.courtesy)
    if not state.answers.open():
        return replace(state, status=Status.COMPLETE, closed_at=now), actions + (Thank(ThankKind.COMPLETE),)
    if state.status is Status.INCOMPLETE:  # we stopped asking; answers still count
        return _acknowledge(state, actions, progressed, reply.courtesy)
    if reply.problems:
        state, more = _clarify(state, reply, now)
        return state, actions + more
    if progressed:
        return state, actions + (AskQuestion(state.answers.open()[0]),)
    return state, actions


def tick(
    state: SurveyState, now: datetime, tz: tzinfo = SHANGHAI, quiet: tuple[time, time] = QUIET_HOURS
) -> tuple[SurveyState, tuple[Action, ...]]:
    """Apply the passage of time: expiry at 7 days, the one reminder at 48 h (allowed hours)."""
    if now.tzinfo is None:
        raise ValueError("now must be time-zone aware")
    state = _expire(state, now)
    if state.status is not Status.OPEN or state.reminded_at is not None:
        return state, ()
    if utc(now) < utc(reminder_at(state.sent_at, tz, quiet)) or is_quiet(now, tz, quiet):
        return state, ()
    return replace(state, reminded_at=now), (SendReminder(state.answers.open()),)


def next_due(state: SurveyState, tz: tzinfo = SHANGHAI, quiet: tuple[time, time] = QUIET_HOURS) -> datetime | None:
    """When :func:`tick` next has something to do (reminder or expiry), in UTC, for the scheduler."""
    if state.status is not Status.OPEN:
        return None
    if state.reminded_at is None:
        return min(utc(reminder_at(state.sent_at, tz, quiet)), expires_at(state.sent_at))
    return expires_at(state.sent_at)
