"""The append-only audit log; see domain/audit.py for the chain."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model


class AuditRecord(Model):
    id = fields.BigIntField(primary_key=True)
    seq = fields.BigIntField(unique=True)
    at = fields.CharField(max_length=40)  # ISO 8601 UTC, exactly as hashed
    actor = fields.CharField(max_length=64)
    action = fields.CharField(max_length=64, db_index=True)
    subject = fields.CharField(max_length=64, db_index=True)
    data = fields.JSONField(default=dict)
    prev_hash = fields.CharField(max_length=64, unique=True)  # a fork cannot be written
    hash = fields.CharField(max_length=64, unique=True)

    class Meta:
        table = "audit_record"


class AuditCheckpoint(Model):
    """The chain's head as it was at a draw or at the day's sweep (one of its anchors; the others
    live outside the database: the checkpoint file, draw.json, the public pages)."""

    id = fields.BigIntField(primary_key=True)
    seq = fields.BigIntField(db_index=True)
    head = fields.CharField(max_length=64)
    at = fields.DatetimeField(db_index=True)
    reason = fields.CharField(max_length=80)  # "draw:<draw_ref>", "daily"

    class Meta:
        table = "audit_checkpoint"


class AuditFileState(Model):
    """What the checkpoint file held right after an append to it: its number of complete lines and
    the hash chain over them (``domain.audit.file_chain``). ``audit verify`` checks that the file
    still begins with every state recorded here, so a deleted, truncated or edited file is itself
    detected (docs/reliability.md, "The audit log")."""

    id = fields.BigIntField(primary_key=True)
    lines = fields.IntField()
    hash = fields.CharField(max_length=64)
    at = fields.DatetimeField()

    class Meta:
        table = "audit_file_state"
