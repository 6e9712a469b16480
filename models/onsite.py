"""On site: check-ins, photos, results with their findings, and corrections.

Nothing here is edited once it is on record: a check-in or a photo is a new row each time, a
submitted result is never changed — a coordinator-approved :class:`Correction` adds a new
result that ``supersedes`` it, and the old one is kept with status ``superseded``.
"""

from __future__ import annotations

from enum import Enum

from tortoise import fields
from tortoise.migrations.constraints import CheckConstraint
from tortoise.models import Model

from domain.onsite import ResultStatus, Verdict


class CheckIn(Model):
    """A location an inspector shared on site, with its distance to the entity: on an inspection
    (``assignment``, the inspector's seat) or on its re-inspection (复查, ``rectification``, the order
    the re-inspector was assigned — a re-inspector drawn afresh holds no seat). Exactly one of the two
    is set; the database holds that rule (``checkin_one_target``)."""

    id = fields.IntField(primary_key=True)
    assignment = fields.ForeignKeyField(
        "models.Assignment", related_name="checkins", null=True, on_delete=fields.RESTRICT
    )
    rectification = fields.ForeignKeyField(
        "models.Rectification", related_name="checkins", null=True, on_delete=fields.RESTRICT
    )
    inspection = fields.ForeignKeyField("models.Inspection", related_name="checkins", on_delete=fields.RESTRICT)
    inspector = fields.ForeignKeyField("models.Inspector", related_name="checkins", on_delete=fields.RESTRICT)
    latitude = fields.FloatField()
    longitude = fields.FloatField()
    distance_m = fields.FloatField(null=True)  # None: the entity has no coordinates on record
    radius_m = fields.IntField()  # the radius in force when it was judged
    flagged = fields.BooleanField(default=False)  # farther than radius_m: flagged, never refused
    at = fields.DatetimeField()

    class Meta:
        table = "checkin"
        indexes = (("inspection", "at"), ("inspector", "at"))
        # written into the CREATE TABLE by bot/migrations_tool.py (Tortoise's schema SQL leaves it out)
        constraints = (
            CheckConstraint(
                check='("assignment_id" IS NULL) <> ("rectification_id" IS NULL)', name="checkin_one_target"
            ),
        )


class PhotoStatus(str, Enum):
    PENDING = "pending"  # recorded; the file is still on Telegram's side
    STORED = "stored"  # fetched and stored by its SHA-256
    FAILED = "failed"  # could not be fetched (gave up)


class Photo(Model):
    """A photo sent during an inspection. Recorded at once; the file is fetched later by the
    ``photos`` sweep (never inside the inbound transaction) and stored under the data
    directory by content: ``photos/ab/abcdef….jpg``."""

    id = fields.IntField(primary_key=True)
    inspection = fields.ForeignKeyField("models.Inspection", related_name="photos", on_delete=fields.RESTRICT)
    inspector = fields.ForeignKeyField("models.Inspector", related_name="photos", on_delete=fields.RESTRICT)
    file_id = fields.CharField(max_length=255)  # Telegram's id, valid for getFile
    caption = fields.CharField(max_length=1024, default="")
    status = fields.CharEnumField(PhotoStatus, max_length=16, default=PhotoStatus.PENDING)
    attempts = fields.SmallIntField(default=0)
    last_error = fields.CharField(max_length=64, default="")
    next_attempt_at = fields.DatetimeField()
    sha256 = fields.CharField(max_length=64, null=True, db_index=True)
    size = fields.IntField(null=True)
    path = fields.CharField(max_length=128, null=True)  # relative to the data directory
    received_at = fields.DatetimeField()
    fetched_at = fields.DatetimeField(null=True)

    class Meta:
        table = "photo"
        indexes = (("status", "next_attempt_at"),)


class Result(Model):
    """The findings of one inspection: recorded by the team lead (the lowest seat), submitted
    by the lead, confirmed by another member. ``step``/``cursor`` are where the findings
    conversation stands (domain.onsite.Findings)."""

    id = fields.IntField(primary_key=True)
    inspection = fields.ForeignKeyField("models.Inspection", related_name="results", on_delete=fields.RESTRICT)
    supersedes = fields.ForeignKeyField(
        "models.Result", related_name="superseded_by", null=True, on_delete=fields.RESTRICT
    )
    # a re-inspection (复查) result: the id of its rectification order (models.publication), over the
    # items the order is about; reviewed like any result and never the inspection's published result
    # (services.onsite.followup). A plain column, not a foreign key: the order's own chain
    # (rectification → notice → result) points back at this table, and the schema generator refuses
    # two tables that reference each other. The services write it; None for an inspection's result.
    reinspection_id = fields.IntField(null=True, db_index=True)
    status = fields.CharEnumField(ResultStatus, max_length=16, default=ResultStatus.DRAFT)
    step = fields.CharField(max_length=16)
    cursor = fields.SmallIntField(default=0)
    created_by = fields.ForeignKeyField("models.Inspector", related_name="drafted_results", on_delete=fields.RESTRICT)
    submitted_by = fields.ForeignKeyField(
        "models.Inspector", related_name="submitted_results", null=True, on_delete=fields.RESTRICT
    )
    submitted_at = fields.DatetimeField(null=True)
    confirmed_by = fields.ForeignKeyField(
        "models.Inspector", related_name="confirmed_results", null=True, on_delete=fields.RESTRICT
    )
    confirmed_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField()
    updated_at = fields.DatetimeField()

    class Meta:
        table = "result"
        indexes = (("inspection", "status"),)


class Finding(Model):
    """One checklist item of a result: 合格 / 不合格 / 不涉及 and an optional note."""

    id = fields.IntField(primary_key=True)
    result = fields.ForeignKeyField("models.Result", related_name="findings", on_delete=fields.RESTRICT)
    position = fields.SmallIntField()  # the item's place in the plan's list, from 0
    item_code = fields.CharField(max_length=32)
    verdict = fields.CharEnumField(Verdict, max_length=8, null=True)
    note = fields.TextField(default="")
    # the inspector marked this 不合格 item serious (严重): the inspection is flagged for case referral
    serious = fields.BooleanField(default=False)

    class Meta:
        table = "finding"
        unique_together = (("result", "position"),)


class CorrectionStatus(str, Enum):
    DRAFTING = "drafting"  # the lead gave a reason and is changing the findings
    REQUESTED = "requested"  # sent to the plan's coordinators
    APPROVED = "approved"
    REJECTED = "rejected"


class Correction(Model):
    """A request to replace a submitted result, with its reason, and the coordinator's decision."""

    id = fields.IntField(primary_key=True)
    original = fields.ForeignKeyField("models.Result", related_name="corrections", on_delete=fields.RESTRICT)
    replacement = fields.ForeignKeyField("models.Result", related_name="correction_of", on_delete=fields.RESTRICT)
    reason = fields.TextField()
    status = fields.CharEnumField(CorrectionStatus, max_length=16, default=CorrectionStatus.DRAFTING)
    requested_by = fields.ForeignKeyField("models.Inspector", related_name="corrections", on_delete=fields.RESTRICT)
    opened_at = fields.DatetimeField()
    requested_at = fields.DatetimeField(null=True)
    decided_by = fields.ForeignKeyField(
        "models.ChatBinding", related_name="decided_corrections", null=True, on_delete=fields.RESTRICT
    )
    decided_at = fields.DatetimeField(null=True)

    class Meta:
        table = "correction"
        indexes = (("status",),)
