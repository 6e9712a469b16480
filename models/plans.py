"""Inspection plans (抽查计划), as loaded from plan files.

The validated plan is kept whole as ``spec`` (``PlanSpec.to_dict()``); the columns beside it
are the few a list or a scheduler filters on. A firing copies the spec when it is announced, so
changing a plan later never changes a draw that was already committed to.
"""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model


class Plan(Model):
    id = fields.IntField(primary_key=True)
    code = fields.CharField(max_length=32, unique=True)
    name = fields.CharField(max_length=255)
    departments = fields.JSONField(default=list)  # department codes; several = a joint plan
    flight = fields.BooleanField(default=False)
    spec = fields.JSONField(default=dict)  # PlanSpec.to_dict()
    active = fields.BooleanField(default=True)
    source = fields.CharField(max_length=255, default="")  # the file it was loaded from
    created_at = fields.DatetimeField()
    updated_at = fields.DatetimeField()

    class Meta:
        table = "plan"
