"""The credit-risk engine's records: indicator values with their history, model versions, assessments.

An indicator value is kept per observation date (a new import adds history, it never overwrites
an older observation). A model version is a whole indicator model (``domain.risk.model``) as
JSON with what training measured; only an approved one classifies. An assessment is an entity's
current class under the version in force, with its score and reasons; the class in force is also
written to ``entity.risk_class``, which the draw reads. Classes and scores are confidential:
nothing here is ever shown on a public page or in a bundle.
"""

from __future__ import annotations

from enum import Enum

from tortoise import fields
from tortoise.models import Model


class VersionStatus(str, Enum):
    PROPOSED = "proposed"
    APPROVED = "approved"
    REJECTED = "rejected"


class IndicatorValue(Model):
    id = fields.BigIntField(primary_key=True)
    entity = fields.ForeignKeyField("models.Entity", related_name="indicator_values", on_delete=fields.CASCADE)
    indicator = fields.CharField(max_length=48)
    value = fields.FloatField()
    observed_on = fields.DateField()

    class Meta:
        table = "indicator_value"
        unique_together = (("entity", "indicator", "observed_on"),)


class RiskModelVersion(Model):
    id = fields.IntField(primary_key=True)
    version = fields.CharField(max_length=64, unique=True)
    status = fields.CharEnumField(VersionStatus, max_length=16, default=VersionStatus.PROPOSED, db_index=True)
    config = fields.JSONField()  # RiskModel.to_dict()
    metrics = fields.JSONField(default=dict)  # training's evaluation against the version in force
    based_on = fields.CharField(max_length=64, default="")
    created_at = fields.DatetimeField()
    created_by = fields.CharField(max_length=64, default="")
    decided_at = fields.DatetimeField(null=True)
    decided_by = fields.CharField(max_length=64, default="")

    class Meta:
        table = "risk_model_version"


class RiskAssessment(Model):
    """An entity's class in force: one row per entity, replaced by each classification."""

    id = fields.BigIntField(primary_key=True)
    entity = fields.OneToOneField("models.Entity", related_name="risk_assessment", on_delete=fields.CASCADE)
    version = fields.CharField(max_length=64)
    risk_class = fields.CharField(max_length=1)
    banded = fields.CharField(max_length=1)  # the class of the score alone, before the rules
    score = fields.FloatField()
    reasons = fields.JSONField(default=list)  # [[indicator, points], …] largest first
    rules = fields.JSONField(default=list)  # codes of the rules that fired
    assessed_at = fields.DatetimeField()

    class Meta:
        table = "risk_assessment"


class RiskRun(Model):
    """One classification of the whole directory: when, by which version, the class counts."""

    id = fields.IntField(primary_key=True)
    version = fields.CharField(max_length=64)
    at = fields.DatetimeField(db_index=True)
    reason = fields.CharField(max_length=32)  # monthly | announce | manual | approve
    counts = fields.JSONField(default=dict)
    entities = fields.IntField(default=0)

    class Meta:
        table = "risk_run"
