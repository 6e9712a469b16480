"""Alerts raised for coordinators: undeliverable messages, unstaffable inspections, missed
fires, survey complaints, suspicious recusal rates. Each is also sent as a message: at once, or
(a kind that comes in bulk from one sweep) in the next digest (``services.alerts.send_digests``)."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model


class Alert(Model):
    id = fields.IntField(primary_key=True)
    key = fields.CharField(max_length=200, unique=True)  # one alert per cause
    kind = fields.CharField(max_length=48, db_index=True)  # the template name without .j2
    departments = fields.JSONField(default=list)  # who may see it (empty = admins only)
    context = fields.JSONField(default=dict)
    created_at = fields.DatetimeField(db_index=True)
    acknowledged_at = fields.DatetimeField(null=True)
    # not yet told: its chat message waits for the next digest (raised with ``digest=True``)
    digest_pending = fields.BooleanField(default=False, db_index=True)

    class Meta:
        table = "alert"
