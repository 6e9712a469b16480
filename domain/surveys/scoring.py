"""What the answers do: alerts, inspectors' integrity scores, the anonymity rule. Pure, stdlib only.

**Alerts** (:func:`alert_reasons`) go to the plan's coordinators, never to the inspectors:
``"improper"`` when Q2 (asked for or accepted anything improper) is *yes*, ``"unfair"`` when
the fairness score is 2 or less. Credentials not shown (Q1 *no*) is **not** an alert: it is a
procedural lapse that a respondent often misremembers, so it lowers the score (and shows in
the per-inspector counts) instead of paging a coordinator about a single answer.

**Score** of an inspector over a rolling window (:func:`integrity_scores`): every survey
response with ``now - window < at <= now`` counts for every inspector of the team (the entity
cannot tell who did what). With, over those responses, ``k = 3`` (prior strength),

* ``I = (number of Q2 = yes) / (number answering Q2 + k)``
* ``C = (number of Q1 = no) / (number answering Q1 + k)``
* ``U = Σ (5 − fairness) / 4 / (number answering Q3 + k)``

``score = 100 − 60·I − 20·C − 20·U``, rounded half-even to one decimal. The ``+ k`` is a
Bayesian prior of ``k`` clean pseudo-responses (a Beta(0, k) shrinkage towards "no problem"):
one bad answer in one response costs at most a quarter of its weight (one *improper* alone →
85.0), and the score approaches ``100 − weights`` only as bad answers accumulate. The prior is
fixed, not the population mean, so one inspector's score never depends on another's.
Late answers (after expiry) count like the others; unanswered questions count nowhere.

**Anonymity**: :func:`publishable` — an aggregate is shown to anyone but coordinators only if
it rests on at least :data:`MIN_PUBLIC_RESPONSES` (5) responses.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from fractions import Fraction
from typing import Protocol

from domain.surveys.questions import SCORE_MAX, SCORE_MIN, Answers
from domain.surveys.timing import utc

IMPROPER = "improper"
UNFAIR = "unfair"
UNFAIR_AT_MOST = 2  # a fairness score of 1 or 2 raises an alert

WEIGHT_IMPROPER = 60
WEIGHT_NO_CREDENTIALS = 20
WEIGHT_UNFAIR = 20
PRIOR_STRENGTH = 3
MIN_PUBLIC_RESPONSES = 5


def alert_reasons(answers: Answers) -> tuple[str, ...]:
    """The reasons these answers raise an alert to coordinators, in a fixed order."""
    reasons = []
    if answers.improper is True:
        reasons.append(IMPROPER)
    if answers.fairness is not None and answers.fairness <= UNFAIR_AT_MOST:
        reasons.append(UNFAIR)
    return tuple(reasons)


@dataclass(frozen=True)
class Response:
    """One survey's recorded answers, with the team it is about."""

    survey: str  # the survey's stable id (each survey counts once)
    inspectors: tuple[str, ...]  # keys of the team's inspectors
    at: datetime  # when the (last) answer was recorded, time-zone aware
    answers: Answers
    late: bool = False


@dataclass(frozen=True)
class Score:
    """An inspector's integrity over a window: the score and what it rests on."""

    n: int  # responses with at least one answer
    score: float  # 0–100, one decimal
    improper: int  # responses with Q2 = yes
    no_credentials: int  # responses with Q1 = no
    unfair: int  # responses with fairness <= 2
    fairness_mean: float | None  # raw mean of the answered scores, two decimals
    alerts: int  # responses that raised an alert


class _Tally:
    """Running counts for one inspector."""

    def __init__(self) -> None:
        self.n = self.improper = self.asked_improper = self.no_credentials = self.asked_credentials = 0
        self.unfair = self.alerts = self.scored = 0
        self.fairness_sum = 0
        self.unfairness = Fraction(0)

    def add(self, a: Answers) -> None:
        self.n += 1
        if a.improper is not None:
            self.asked_improper += 1
            self.improper += a.improper
        if a.credentials is not None:
            self.asked_credentials += 1
            self.no_credentials += not a.credentials
        if a.fairness is not None:
            self.scored += 1
            self.fairness_sum += a.fairness
            self.unfairness += Fraction(SCORE_MAX - a.fairness, SCORE_MAX - SCORE_MIN)
            self.unfair += a.fairness <= UNFAIR_AT_MOST
        self.alerts += bool(alert_reasons(a))

    def score(self) -> Score:
        k = PRIOR_STRENGTH
        penalty = (
            WEIGHT_IMPROPER * Fraction(self.improper, self.asked_improper + k)
            + WEIGHT_NO_CREDENTIALS * Fraction(self.no_credentials, self.asked_credentials + k)
            + WEIGHT_UNFAIR * self.unfairness / (self.scored + k)
        )
        mean = float(round(Fraction(self.fairness_sum, self.scored), 2)) if self.scored else None
        return Score(
            self.n, float(round(100 - penalty, 1)), self.improper, self.no_credentials, self.unfair, mean, self.alerts
        )


def _answered(a: Answers) -> bool:
    return a.credentials is not None or a.improper is not None or a.fairness is not None


def integrity_scores(responses: Iterable[Response], window: timedelta, now: datetime) -> dict[str, Score]:
    """Each inspector's :class:`Score` over ``(now - window, now]``; inspectors without a
    response in the window are absent."""
    end = utc(now)
    start = end - window
    tallies: dict[str, _Tally] = {}
    seen: set[str] = set()
    for r in responses:
        if r.survey in seen:
            raise ValueError(f"survey {r.survey!r} appears twice")
        seen.add(r.survey)
        if not (start < utc(r.at) <= end) or not _answered(r.answers):
            continue
        for inspector in set(r.inspectors):
            tallies.setdefault(inspector, _Tally()).add(r.answers)
    return {key: tally.score() for key, tally in sorted(tallies.items())}


class Counted(Protocol):
    """Anything that says how many responses it rests on (a :class:`Score`, a report row)."""

    @property
    def n(self) -> int: ...


def publishable(aggregate: Counted) -> bool:
    """Whether an aggregate may be shown to anyone but coordinators (inspectors included):
    only if it rests on at least 5 responses, so no single entity's answers can be read off."""
    return aggregate.n >= MIN_PUBLIC_RESPONSES
