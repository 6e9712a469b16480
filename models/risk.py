"""The credit-risk engine's records: indicator values with their history, model versions, assessments.

An indicator value is kept per observation date (a new import adds history, it never overwrites
an older observation). A model version is a whole indicator model (``domain.risk.model``) as
JSON with what training measured; only an approved one classifies. An assessment is an entity's
current class under the version in force, with its score and reasons; the class in force is also
written to ``entity.risk_class``, which the draw reads. An override is a regulator's class for one
firm, proposed by one coordinator and put in force by another (``services.risk.overrides``); it
fixes the final class after the model's rules until its date. Classes, scores and overrides are
confidential: nothing here is ever shown on a public page or in a bundle.
"""

from __future__ import annotations

from enum import Enum

from tortoise import fields
from tortoise.migrations.constraints import UniqueConstraint
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
    computed = fields.CharField(max_length=1, default="")  # the model's class (score and rules), before an override
    override = fields.JSONField(null=True)  # the override in force that fixed risk_class: id, class, reason, who, until
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
    counts = fields.JSONField(default=dict)  # the model's classes (before overrides): what drift and training compare
    entities = fields.IntField(default=0)
    overridden = fields.IntField(default=0)  # entities whose class an override in force fixed

    class Meta:
        table = "risk_run"


class OverrideStatus(str, Enum):
    """Member names are the two-person rule's (``services.draws.two_person``): PENDING → CONFIRMED
    or DECLINED (or FAILED: confirmed, but the proposer was no longer a coordinator)."""

    PENDING = "proposed"
    CONFIRMED = "in_force"
    DECLINED = "rejected"
    FAILED = "failed"
    WITHDRAWN = "withdrawn"
    EXPIRED = "expired"


OPEN_OVERRIDE = ("proposed", "in_force")  # at most one of these per entity (a partial unique index)


class RiskOverride(Model):
    """A regulator's class for one entity (人工认定), with a reason, until a date: proposed by one
    coordinator, in force once another approves it, ended by withdrawal or its date."""

    id = fields.IntField(primary_key=True)
    entity = fields.ForeignKeyField("models.Entity", related_name="risk_overrides", on_delete=fields.RESTRICT)
    risk_class = fields.CharField(max_length=1)
    reason = fields.CharField(max_length=500)
    valid_until = fields.DateField()  # the last local day it applies
    ends_at = fields.DatetimeField()  # the end of that day (a proposal nobody decided lapses then too)
    status = fields.CharEnumField(OverrideStatus, max_length=16, default=OverrideStatus.PENDING, db_index=True)
    proposed_by = fields.CharField(max_length=64)  # "coordinator:<binding id>", or the CLI's --by
    proposer_binding_id = fields.IntField(null=True)  # the proposer's chat binding (None from the CLI)
    departments = fields.JSONField(default=list)  # whose coordinators are asked to approve
    proposed_at = fields.DatetimeField()
    decided_by = fields.CharField(max_length=64, null=True)
    decided_at = fields.DatetimeField(null=True)
    failure = fields.CharField(max_length=64, null=True)
    ended_by = fields.CharField(max_length=64, null=True)  # withdrawn by, or "system" (expired)
    ended_at = fields.DatetimeField(null=True)
    end_reason = fields.CharField(max_length=500, default="")
    # what its departments' coordinators were told of its end: "" nothing yet, "ending" (days ahead),
    # "ended" (its last day passed); each once (services.risk.overrides.tell_ending)
    told = fields.CharField(max_length=8, default="")

    class Meta:
        table = "risk_override"
        constraints = [
            UniqueConstraint(
                fields=("entity_id",),
                name="risk_override_one_open",
                condition="\"status\" IN ('proposed', 'in_force')",
            )
        ]
