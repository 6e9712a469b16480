"""After the visit: the review of a submitted result (审核) and the inspection's publication
(公示) with its deadline in Chinese working days.

A :class:`Review` is opened for every result that becomes the result of record (a first
submission, an approved correction); a coordinator of the plan's departments who was not on
the team approves or returns it. Only an approved result is published: :class:`Publication`
(one per inspection) names the result shown on the public page, and when it was published
against its deadline.
"""

from __future__ import annotations

from enum import Enum

from tortoise import fields
from tortoise.models import Model


class ReviewStatus(str, Enum):
    PENDING = "pending"  # waiting for a reviewer
    APPROVED = "approved"  # published
    RETURNED = "returned"  # sent back to the team with a comment (the lead corrects and resubmits)
    CLOSED = "closed"  # its result was superseded before a decision


class Review(Model):
    """A result waiting for, or given, a reviewer's decision."""

    id = fields.IntField(primary_key=True)
    result = fields.OneToOneField("models.Result", related_name="review", on_delete=fields.RESTRICT)
    inspection = fields.ForeignKeyField("models.Inspection", related_name="reviews", on_delete=fields.RESTRICT)
    status = fields.CharEnumField(ReviewStatus, max_length=16, default=ReviewStatus.PENDING)
    comment = fields.TextField(default="")
    opened_at = fields.DatetimeField()
    remind_at = fields.DatetimeField()  # halfway to the deadline: the coordinators are reminded
    due_at = fields.DatetimeField()  # the review deadline: escalated to the admins
    reminded_at = fields.DatetimeField(null=True)
    escalated_at = fields.DatetimeField(null=True)
    decided_by = fields.ForeignKeyField(
        "models.ChatBinding", related_name="reviews", null=True, on_delete=fields.RESTRICT
    )
    decided_at = fields.DatetimeField(null=True)

    class Meta:
        table = "review"
        indexes = (("status", "remind_at"), ("status", "due_at"))


class Publication(Model):
    """One inspection's publication: due ``working_days`` Chinese working days after the day the
    inspection ended (its result was first submitted); ``result`` is the approved result shown."""

    id = fields.IntField(primary_key=True)
    inspection = fields.OneToOneField("models.Inspection", related_name="publication", on_delete=fields.RESTRICT)
    ended_on = fields.DateField()
    due_on = fields.DateField()
    result = fields.ForeignKeyField("models.Result", related_name="publications", null=True, on_delete=fields.RESTRICT)
    published_at = fields.DatetimeField(null=True)  # first published
    on_time = fields.BooleanField(null=True)  # published on or before due_on (local date)
    warned_at = fields.DatetimeField(null=True)  # the deadline is near: coordinators alerted
    missed_at = fields.DatetimeField(null=True)  # the deadline passed unpublished: alerted

    class Meta:
        table = "publication"
        indexes = (("published_at", "due_on"),)
