"""Scheduler fires: one row per fire key, so a fire runs once across instances."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model


class Fire(Model):
    """A fire that ran (or was found missed). ``key`` is unique: ``draw:P0042:2026-12-01T09:00+08:00``.

    The row is inserted in the same transaction as the fire's work; a second instance's insert
    waits on the unique index and then finds the key taken, so it skips. If the work fails and
    rolls back, the key is free again and a later attempt may run it."""

    id = fields.IntField(primary_key=True)
    key = fields.CharField(max_length=160, unique=True)
    kind = fields.CharField(max_length=32)
    scheduled_for = fields.DatetimeField(db_index=True)
    fired_at = fields.DatetimeField()
    outcome = fields.CharField(max_length=64, default="")
    detail = fields.TextField(default="")
    instance = fields.CharField(max_length=64, default="")

    class Meta:
        table = "scheduler_fire"
