"""Integrity surveys of inspected entities: the sample per draw, one survey per sampled
inspection, the opt-outs, and the public survey figures of each closed month (frozen when first
published).

Respondent protection: the answers live only on the :class:`Survey` row, which is keyed by
inspection and entity. No table keyed by inspector holds them; an inspector's integrity score
is computed on demand from these rows and the team of each inspection, and shown to anyone but
coordinators only when it rests on at least five responses (``domain.surveys.publishable``).
The sample's seed (:class:`SurveySample`) is for coordinators and auditors: whoever holds it
knows which visits will be surveyed, so nothing an inspector reaches shows it.
"""

from __future__ import annotations

from enum import Enum

from tortoise import fields
from tortoise.models import Model

from models.messaging import Channel


class SurveyStatus(str, Enum):
    PENDING = "pending"  # created; its first message waits (quiet hours, or another poll survey on that chat)
    SENT = "sent"  # out and open: waiting for answers
    ANSWERED = "answered"  # every required question answered
    INCOMPLETE = "incomplete"  # a question stayed unreadable after two clarifications
    EXPIRED = "expired"  # 7 days passed first (what was answered is kept)
    OPTED_OUT = "opted_out"  # the entity opted out (before or during this survey)
    UNDELIVERABLE = "undeliverable"  # no mobile and no linked chat, or the SMS was not delivered


class SurveySample(Model):
    """Which inspections of one draw are surveyed, drawn once with a recorded seed
    (``domain.surveys.sample``: anyone with the seed and the draw's inspections re-derives it)."""

    id = fields.IntField(primary_key=True)
    draw = fields.OneToOneField("models.Draw", related_name="survey_sample", on_delete=fields.RESTRICT)
    seed = fields.BinaryField()  # 32 random bytes; coordinators and auditors only, never inspectors
    shares = fields.JSONField(default=dict)  # {"D": "1", "E": "1", "*": "1/3"} as used
    pool = fields.IntField()  # inspections the sample was drawn from
    selected = fields.JSONField(default=list)  # inspection numbers (Inspection.no) surveyed
    created_at = fields.DatetimeField()

    class Meta:
        table = "survey_sample"

    def __repr__(self) -> str:
        return f"<SurveySample draw={self.draw_id} (seed hidden)>"  # type: ignore[attr-defined]

    __str__ = __repr__


class Survey(Model):
    """One sampled inspection's survey: where it went, and the state the pure state machine
    (``domain.surveys.step`` / ``tick``) needs. ``answers`` holds only ``credentials``,
    ``improper`` and ``fairness``; the free comment is ``comment``."""

    id = fields.IntField(primary_key=True)
    inspection = fields.OneToOneField("models.Inspection", related_name="survey", on_delete=fields.RESTRICT)
    entity = fields.ForeignKeyField("models.Entity", related_name="surveys", on_delete=fields.RESTRICT)
    sample = fields.ForeignKeyField("models.SurveySample", related_name="surveys", on_delete=fields.RESTRICT)
    code = fields.CharField(max_length=8)  # domain.surveys.make_code: unique among the entity's live surveys
    channel = fields.CharEnumField(Channel, max_length=16)
    address = fields.CharField(max_length=64, default="")  # the mobile or chat it was sent to
    status = fields.CharEnumField(SurveyStatus, max_length=16, default=SurveyStatus.PENDING)
    locale = fields.CharField(max_length=8, default="zh-CN")
    context = fields.JSONField(default=dict)  # what its messages show: date, departments, team, signature
    answers = fields.JSONField(default=dict)
    comment = fields.TextField(null=True)
    clarifications = fields.JSONField(default=dict)  # {question code: clarifications sent}
    alerted = fields.JSONField(default=list)  # alert reasons already raised
    poll_question = fields.CharField(max_length=16, null=True)  # Telegram: the question whose poll is out
    polls = fields.JSONField(default=dict)  # Telegram: {"sent": [question codes], "ids": {poll id: code}}
    created_at = fields.DatetimeField()
    sent_at = fields.DatetimeField(null=True)  # when its first message goes (went) out
    reminder_at = fields.DatetimeField(null=True)
    reminded_at = fields.DatetimeField(null=True)
    expires_at = fields.DatetimeField(null=True)
    answered_at = fields.DatetimeField(null=True)  # the last time an answer was recorded (the score's clock)
    completed_at = fields.DatetimeField(null=True)  # closed: answered, incomplete, expired, opted out
    late = fields.BooleanField(default=False)  # something was recorded after expiry

    class Meta:
        table = "survey"
        indexes = (
            ("channel", "address", "status"),
            ("status", "reminder_at"),
            ("status", "expires_at"),
            ("entity", "status"),
            ("answered_at",),
        )


class SurveyOptOut(Model):
    """An entity (or a mobile number) that said TD / 退订 / STOP: never surveyed again."""

    id = fields.IntField(primary_key=True)
    entity = fields.OneToOneField("models.Entity", null=True, related_name="survey_opt_out", on_delete=fields.CASCADE)
    mobile = fields.CharField(max_length=64, null=True, unique=True)  # an SMS sender (E.164)
    channel = fields.CharEnumField(Channel, max_length=16)
    keyword = fields.CharField(max_length=64, default="")  # the message that opted out, trimmed
    at = fields.DatetimeField()

    class Meta:
        table = "survey_opt_out"


class SurveyFigures(Model):
    """The survey figures of one closed month as the public first saw them, frozen.

    Written once, the first time the public report of a month that is over is made (insert or
    nothing: the first instance wins), and read ever after, so a late answer never moves a
    published figure (docs/surveys.md, "Respondents are protected"). ``figures`` holds the
    public edition's ``surveys`` and ``integrity`` parts, withheld ones included."""

    id = fields.IntField(primary_key=True)
    key = fields.CharField(max_length=200, unique=True)  # "2026-12:all" (month, departments)
    figures = fields.JSONField(default=dict)
    published_at = fields.DatetimeField()

    class Meta:
        table = "survey_figures"
