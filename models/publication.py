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
    referred_at = fields.DatetimeField(null=True)  # a serious finding: flagged for case referral (移送立案)
    referral_reason = fields.TextField(default="")  # for the coordinators; never published

    class Meta:
        table = "publication"
        indexes = (("published_at", "due_on"),)


class NoticeDelivery(str, Enum):
    QUEUED = "queued"  # the SMS is in the outbox (quiet hours respected)
    OPTED_OUT = "opted_out"  # the firm opted out of our SMS: the notice is on its result page only
    NO_MOBILE = "no_mobile"  # no mobile number on record


class Notice(Model):
    """The notice of the result to the firm (结果告知书), made when a result is published. Its
    ``code`` opens the printable PDF from the firm's result page; ``objection_until`` is the last
    day (local) the firm may state its case or object; ``rectify_by`` the rectification deadline
    when an item is 不合格 (else None)."""

    id = fields.IntField(primary_key=True)
    code = fields.CharField(max_length=16, unique=True)
    inspection = fields.ForeignKeyField("models.Inspection", related_name="notices", on_delete=fields.RESTRICT)
    result = fields.OneToOneField("models.Result", related_name="notice", on_delete=fields.RESTRICT)
    issued_on = fields.DateField()
    objection_until = fields.DateField()
    rectify_by = fields.DateField(null=True)
    delivery = fields.CharEnumField(NoticeDelivery, max_length=16)
    created_at = fields.DatetimeField()

    class Meta:
        table = "notice"


class ObjectionStatus(str, Enum):
    PENDING = "pending"
    UPHELD = "upheld"  # the result is to be corrected (through the correction flow and a new review)
    REJECTED = "rejected"  # with reasons, sent to the firm


class Objection(Model):
    """The firm's statement of its case or objection (陈述申辩 / 异议) to a published result,
    made with the notice's code by SMS or on its result page, and the coordinators' decision."""

    id = fields.IntField(primary_key=True)
    notice = fields.ForeignKeyField("models.Notice", related_name="objections", on_delete=fields.RESTRICT)
    inspection = fields.ForeignKeyField("models.Inspection", related_name="objections", on_delete=fields.RESTRICT)
    channel = fields.CharField(max_length=16)  # "sms" | "web"
    reply_to = fields.CharField(max_length=64, default="")  # the SMS sender, answered there (never shown)
    reason = fields.TextField()
    status = fields.CharEnumField(ObjectionStatus, max_length=16, default=ObjectionStatus.PENDING)
    received_at = fields.DatetimeField()
    decision = fields.TextField(default="")  # the reasons given with the decision
    decided_by = fields.ForeignKeyField(
        "models.ChatBinding", related_name="objections", null=True, on_delete=fields.RESTRICT
    )
    decided_at = fields.DatetimeField(null=True)

    class Meta:
        table = "objection"
        indexes = (("inspection", "status"),)


class RectificationStatus(str, Enum):
    OPEN = "open"  # ordered; the firm has until due_on
    REINSPECTING = "reinspecting"  # the deadline came: a re-inspection (复查) is assigned
    RECTIFIED = "rectified"  # the re-inspection found it put right
    UNRECTIFIED = "unrectified"  # not put right: flagged for case referral (移送立案)
    SUPERSEDED = "superseded"  # the result was corrected and published again: the new notice's order stands


class Rectification(Model):
    """A rectification order (责令整改) on a result with 不合格 items, its deadline (the notice's
    ``rectify_by``), the reminder to the firm, the re-inspection and its outcome."""

    id = fields.IntField(primary_key=True)
    notice = fields.OneToOneField("models.Notice", related_name="rectification", on_delete=fields.RESTRICT)
    inspection = fields.ForeignKeyField("models.Inspection", related_name="rectifications", on_delete=fields.RESTRICT)
    due_on = fields.DateField()
    status = fields.CharEnumField(RectificationStatus, max_length=16, default=RectificationStatus.OPEN)
    reminded_at = fields.DatetimeField(null=True)
    assigned_at = fields.DatetimeField(null=True)
    inspector = fields.ForeignKeyField(
        "models.Inspector", related_name="reinspections", null=True, on_delete=fields.RESTRICT
    )
    note = fields.TextField(default="")  # the re-inspector's finding
    decided_at = fields.DatetimeField(null=True)
    referred_at = fields.DatetimeField(null=True)  # flagged for case referral

    class Meta:
        table = "rectification"
        indexes = (("status", "due_on"),)
