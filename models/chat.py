"""Conversation state of multi-step chat flows (recusal reason, findings, conflicts).

Kept in our tables, not in python-telegram-bot's memory: a restart or a second instance
continues the conversation where it was."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model


class ChatState(Model):
    id = fields.IntField(primary_key=True)
    channel = fields.CharField(max_length=16)
    address = fields.CharField(max_length=64)
    flow = fields.CharField(max_length=32)  # "recusal", "findings", "conflict", "checkin"
    step = fields.CharField(max_length=32)
    data = fields.JSONField(default=dict)
    updated_at = fields.DatetimeField()

    class Meta:
        table = "chat_state"
        unique_together = (("channel", "address"),)
