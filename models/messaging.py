"""The messaging spine's tables: the outbox, inbound events, chat identities and invite codes."""

from __future__ import annotations

from enum import Enum

from tortoise import fields
from tortoise.functions import Lower
from tortoise.indexes import Index
from tortoise.models import Model


class Channel(str, Enum):
    TELEGRAM = "telegram"
    SMS = "sms"
    WECOM = "wecom"  # WeCom (企业微信) self-built application; the address is the member's userid


#: Chat channels: a person's messages go to the newest live binding on any of them (a row is
#: enqueued for ``telegram`` and sent where the person is bound, bot/dispatcher.py).
CHAT_CHANNELS = (Channel.TELEGRAM.value, Channel.WECOM.value)


class RecipientKind(str, Enum):
    INSPECTOR = "inspector"
    ENTITY = "entity"
    COORDINATOR = "coordinator"
    PERSON = "person"  # any bound chat identity (admins, coordinators without a directory row)


class OutboxStatus(str, Enum):
    PENDING = "pending"  # due at next_attempt_at
    SENDING = "sending"  # claimed by a dispatcher (claimed_until guards a crashed claimer)
    SENT = "sent"  # the channel accepted it (provider id recorded)
    DELIVERED = "delivered"  # a delivery receipt came back (SMS)
    DEAD = "dead"  # permanent error, attempts exhausted, or a held message dropped (last_error says why)
    HELD = "held"  # waits: its Telegram address is marked unreachable (released when the mark clears)
    NO_ADDRESS = "no_address"  # the recipient has no usable address on this channel yet


#: The statuses of a message the channel took (sent, or an SMS receipted delivered): it reached
#: its recipient's chat or phone. Every other status means it has not (yet).
REACHED = (OutboxStatus.SENT.value, OutboxStatus.DELIVERED.value)


class Role(str, Enum):
    INSPECTOR = "inspector"
    COORDINATOR = "coordinator"
    ADMIN = "admin"
    ENTITY = "entity"


class Outbox(Model):
    """One outgoing message, written in the same transaction as the change that caused it.

    The text is rendered at dispatch time from ``template`` + ``context`` in ``locale``, so a
    write of 100,000 assignments stays a bulk insert. ``dedupe_key`` makes enqueueing the same
    logical message twice a no-op (a unique key, not a check-then-insert).
    """

    id = fields.BigIntField(primary_key=True)
    dedupe_key = fields.CharField(max_length=200, unique=True)
    channel = fields.CharEnumField(Channel, max_length=16)
    recipient_kind = fields.CharEnumField(RecipientKind, max_length=16)
    recipient_id = fields.IntField()
    address = fields.CharField(max_length=64, null=True)  # set = send here (replies to a chat/number)
    template = fields.CharField(max_length=100)
    context = fields.JSONField(default=dict)
    locale = fields.CharField(max_length=8, default="zh-CN")
    status = fields.CharEnumField(OutboxStatus, max_length=16, default=OutboxStatus.PENDING)
    priority = fields.SmallIntField(default=0)  # lower first
    attempts = fields.SmallIntField(default=0)
    next_attempt_at = fields.DatetimeField()
    claimed_until = fields.DatetimeField(null=True)
    provider_id = fields.CharField(max_length=100, null=True)
    last_error = fields.CharField(max_length=255, default="")
    created_at = fields.DatetimeField(auto_now_add=True)
    sent_at = fields.DatetimeField(null=True)
    delivered_at = fields.DatetimeField(null=True)

    class Meta:
        table = "outbox"
        # (channel, provider_id): a delivery receipt finds its row by the provider's message id
        indexes = (("status", "next_attempt_at"), ("channel", "provider_id"))


class InboundEvent(Model):
    """Every inbound event, keyed by the provider's id: a duplicate delivery changes nothing."""

    id = fields.BigIntField(primary_key=True)
    channel = fields.CharEnumField(Channel, max_length=16)
    external_id = fields.CharField(max_length=100)  # Telegram update_id, SMS MessageSid
    sender = fields.CharField(max_length=64)  # chat id / E.164 number
    kind = fields.CharField(max_length=32)
    payload = fields.JSONField(default=dict)
    received_at = fields.DatetimeField(auto_now_add=True)
    processed_at = fields.DatetimeField(null=True)
    outcome = fields.CharField(max_length=64, default="")

    class Meta:
        table = "inbound_event"
        unique_together = (("channel", "external_id"),)


class WaitingReceipt(Model):
    """An inbound event that names a provider id on no outbox row yet, kept until the dispatcher
    records that id: a delivery receipt (a gateway may post it before the dispatcher has stored
    the id of the send it answers), or a Telegram poll answer (``status`` ``poll_answer``: an
    entity may vote before the poll's id is stored; ``address`` is the answering chat and
    ``options`` its choice). Its event is in ``inbound_event``, keyed by ``event_key``; it is
    applied when the dispatcher records that id, in the same transaction
    (services/surveys/receipts.py); one left unmatched for
    :data:`services.surveys.receipts.WAIT` is expired by the ``receipts`` sweep."""

    id = fields.BigIntField(primary_key=True)
    channel = fields.CharEnumField(Channel, max_length=16)
    provider_id = fields.CharField(max_length=100)
    event_key = fields.CharField(max_length=100)  # the event's inbound_event.external_id
    status = fields.CharField(max_length=32)  # the receipt's status, or "poll_answer"
    error_code = fields.CharField(max_length=32, default="")
    address = fields.CharField(max_length=64, default="")  # a poll answer's chat
    options = fields.JSONField(default=list)  # a poll answer's option ids
    received_at = fields.DatetimeField()

    class Meta:
        table = "waiting_receipt"
        unique_together = (("channel", "event_key"),)
        indexes = (("channel", "provider_id"), ("received_at",))


class ChatBinding(Model):
    """A chat (Telegram) or phone (SMS) bound to a person of the directory, with a role."""

    id = fields.IntField(primary_key=True)
    channel = fields.CharEnumField(Channel, max_length=16)
    address = fields.CharField(max_length=64)  # Telegram chat id or E.164 number
    role = fields.CharEnumField(Role, max_length=16)
    inspector = fields.ForeignKeyField("models.Inspector", null=True, related_name="bindings", on_delete=fields.CASCADE)
    entity = fields.ForeignKeyField("models.Entity", null=True, related_name="bindings", on_delete=fields.CASCADE)
    departments = fields.JSONField(default=list)  # department codes a coordinator is scoped to
    display_name = fields.CharField(max_length=64, default="")
    locale = fields.CharField(max_length=8, default="zh-CN")
    reachable = fields.BooleanField(default=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    revoked_at = fields.DatetimeField(null=True)

    class Meta:
        table = "chat_binding"
        unique_together = (("channel", "address", "role"),)
        # an inspector's bindings (and their cascade on delete); a WeCom member's in any case
        # (services.identity.bindings_of compares LOWER(address), as WeCom compares userids)
        indexes = (("inspector",), Index(Lower("address"), name="chat_binding_address_nocase"))


class InviteCode(Model):
    """A one-time code that binds a chat to a person (``/start <code>``). Only its hash is stored."""

    id = fields.IntField(primary_key=True)
    code_hash = fields.CharField(max_length=64, unique=True)
    role = fields.CharEnumField(Role, max_length=16)
    inspector = fields.ForeignKeyField("models.Inspector", null=True, related_name="invites", on_delete=fields.CASCADE)
    entity = fields.ForeignKeyField("models.Entity", null=True, related_name="invites", on_delete=fields.CASCADE)
    departments = fields.JSONField(default=list)
    expires_at = fields.DatetimeField()
    used_at = fields.DatetimeField(null=True)
    used_by = fields.CharField(max_length=64, null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "invite_code"


class Unreachable(Model):
    """An address a channel refused permanently (blocked the bot, no such chat, invalid number):
    one row per episode, deleted when the address shows it is reachable again.

    Telegram messages to it are held (``OutboxStatus.HELD``) until the row is cleared — any
    inbound event from the chat, or ``my_chat_member`` showing the bot a member again — and
    then released or dropped (services/reachability.py); SMS messages are dead-lettered.
    ``episode`` names the alert raised for it (empty: none was), so its end is told once too."""

    id = fields.IntField(primary_key=True)
    channel = fields.CharEnumField(Channel, max_length=16)
    address = fields.CharField(max_length=64)
    reason = fields.CharField(max_length=64)
    at = fields.DatetimeField()
    episode = fields.CharField(max_length=32, default="")

    class Meta:
        table = "unreachable"
        unique_together = (("channel", "address"),)


class WecomResponseCode(Model):
    """The ``ResponseCode`` of the last press on a WeCom template card: it lets the card be
    updated (``update_template_card``) once, within 72 hours of the press (WeCom's message
    documentation). Stored, so that another instance or a restarted one can still update the
    card; taken (deleted) when used, so it is used once (bot/channels/wecom.py)."""

    id = fields.IntField(primary_key=True)
    task_id = fields.CharField(max_length=128, unique=True)
    userid = fields.CharField(max_length=64)
    code = fields.CharField(max_length=128)
    expires_at = fields.DatetimeField(db_index=True)

    class Meta:
        table = "wecom_response_code"


class ChannelQuota(Model):
    """Messages a channel's daily quota has granted (``day``: the provider's calendar day,
    ``YYYY-MM-DD``), counted by the dispatchers of every instance (services/quota.py)."""

    id = fields.IntField(primary_key=True)
    channel = fields.CharField(max_length=16)
    day = fields.CharField(max_length=10)
    used = fields.IntField(default=0)
    last_grant = fields.IntField(default=0)  # what the last reservation granted (read back atomically)

    class Meta:
        table = "channel_quota"
        unique_together = (("channel", "day"),)
