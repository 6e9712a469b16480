"""The survey's questions and answers, as data. Pure, stdlib only.

The wording of every question lives in the templates (``texts/surveys.j2``); here each
question is a code, a number (the one printed in front of it in the survey text, which a
respondent may repeat in a labelled reply such as ``1是 2否 3 5``) and the kind of answer it
takes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum
from typing import Any


class Kind(Enum):
    """What a question accepts."""

    YES_NO = "yes_no"  # 是/否, Y/N, yes/no, or 1 (yes) / 2 (no) in its slot
    SCORE = "score"  # an integer 1–5
    TEXT = "text"  # free text, optional


class Question(Enum):
    """The four questions, in the order they are asked and answered."""

    CREDENTIALS = "credentials"  # Q1 did the inspectors show their enforcement credentials?
    IMPROPER = "improper"  # Q2 did anyone ask for or accept anything improper (meals, gifts, money, fees, a supplier)?
    FAIRNESS = "fairness"  # Q3 how fair was the inspection, 1 (unfair) … 5 (fair)?
    COMMENT = "comment"  # Q4 optional free comment

    @property
    def number(self) -> int:
        """The question's number as printed in the survey (1–4)."""
        return _NUMBERS[self]

    @property
    def kind(self) -> Kind:
        return _KINDS[self]


_NUMBERS = {Question.CREDENTIALS: 1, Question.IMPROPER: 2, Question.FAIRNESS: 3, Question.COMMENT: 4}
_KINDS = {
    Question.CREDENTIALS: Kind.YES_NO,
    Question.IMPROPER: Kind.YES_NO,
    Question.FAIRNESS: Kind.SCORE,
    Question.COMMENT: Kind.TEXT,
}

#: Every question, in survey order.
QUESTIONS: tuple[Question, ...] = tuple(Question)
#: The questions a survey needs answered to be complete (the comment is optional).
REQUIRED: tuple[Question, ...] = (Question.CREDENTIALS, Question.IMPROPER, Question.FAIRNESS)

SCORE_MIN, SCORE_MAX = 1, 5
#: Longest comment kept, in code points; the rest is cut off (the raw SMS stays in the inbound log).
COMMENT_MAX_CHARS = 500


@dataclass(frozen=True)
class Answers:
    """What is known of one survey's answers; ``None`` means "not answered (yet)"."""

    credentials: bool | None = None
    improper: bool | None = None
    fairness: int | None = None
    comment: str | None = None

    def get(self, q: Question) -> bool | int | str | None:
        value: bool | int | str | None = getattr(self, q.value)
        return value

    def open(self) -> tuple[Question, ...]:
        """The required questions still unanswered, in survey order."""
        return tuple(q for q in REQUIRED if self.get(q) is None)

    def filled_from(self, new: Answers) -> Answers:
        """These answers with ``new``'s filled in where still empty — an answer once recorded is
        never overwritten; comments are appended (newline-separated, capped)."""
        changes: dict[str, Any] = {}
        for q in REQUIRED:
            if self.get(q) is None and new.get(q) is not None:
                changes[q.value] = new.get(q)
        if new.comment:
            joined = f"{self.comment}\n{new.comment}" if self.comment else new.comment
            changes["comment"] = joined[:COMMENT_MAX_CHARS]
        return replace(self, **changes) if changes else self
