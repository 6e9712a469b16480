"""Firings, draws and what they produce: inspections, assignments and the recusal log.

A *firing* is one announced run of a plan (its ``draw_ref``), with the commitment published
ahead. Its 32-byte secret lives in its own table, :class:`FiringSecret`, which only the draw
service reads: no page, list, serializer or log that shows firings or draws can reach it by
accident. A *draw* is the one and only execution of a firing: ``draw_ref`` is unique, so a
second draw of the same firing is refused by the database itself.
"""

from __future__ import annotations

from enum import Enum

from tortoise import fields
from tortoise.models import Model

from models.directory import ConflictType


class FiringStatus(str, Enum):
    ANNOUNCED = "announced"  # commitment published, not drawn yet
    DRAWN = "drawn"
    CANCELLED = "cancelled"
    WITHDRAWN = "withdrawn"  # withdrawn before its draw, with a reason (public); its slot stays taken


class InspectionStatus(str, Enum):
    STAFFED = "staffed"  # a full team has been sent
    UNSTAFFABLE = "unstaffable"  # no complete team could be formed (reason recorded)
    DONE = "done"
    CANCELLED = "cancelled"


class AssignmentStatus(str, Enum):
    SENT = "sent"
    ACCEPTED = "accepted"
    RECUSED = "recused"
    REPLACED = "replaced"  # taken off the team by a coordinator (e.g. no response)
    NO_RESPONSE = "no_response"
    DONE = "done"
    CANCELLED = "cancelled"


# An assignment in one of these states holds its seat on the team.
HOLDING_SEAT = (AssignmentStatus.SENT, AssignmentStatus.ACCEPTED, AssignmentStatus.DONE)


class Firing(Model):
    """One announced run of a plan. ``params`` is the plan spec as it was when announced."""

    id = fields.IntField(primary_key=True)
    draw_ref = fields.CharField(max_length=64, unique=True)
    plan = fields.ForeignKeyField("models.Plan", related_name="firings", on_delete=fields.RESTRICT)
    fire_at = fields.DatetimeField()
    commitment = fields.CharField(max_length=64)  # hex(SHA-256(secret)), public
    params = fields.JSONField(default=dict)
    status = fields.CharEnumField(FiringStatus, max_length=16, default=FiringStatus.ANNOUNCED)
    announced_at = fields.DatetimeField()
    withdrawn_at = fields.DatetimeField(null=True)
    withdrawn_reason = fields.TextField(default="")  # public: shown on the plan's pages
    # The beacon fixed at announce time and published with the commitment (domain.beacon):
    # {"kind": "drand", "chain", "fire_at", "round"} or {"kind": "values", "sources"}; None: no
    # beacon planned (an ad hoc draw, or a deployment with INSPECTBOT_BEACON=none).
    beacon_plan = fields.JSONField(null=True)
    # For a "values" plan, what the coordinators typed before the draw:
    # {"values": [...], "entered_by", "confirmed_by", "at"}; None until then.
    beacon_values = fields.JSONField(null=True)
    # protocol v2 (confidential strata): hex H(pool.tsv) of the pool fixed at announce, whose
    # lines carry salted class commitments; public with the commitment. None: a v1 firing.
    pool_digest = fields.CharField(max_length=64, null=True)

    class Meta:
        table = "firing"
        indexes = (("plan", "status"),)
        # one commitment per slot (a plan's firing for a given time), withdrawn ones included
        unique_together = (("plan", "fire_at"),)


class FiringSecret(Model):
    """The firing's secret (and, once drawn, the seed derived from it). Private until reveal.

    Read only by ``services.draws`` and ``services.recusals`` (a replacement is drawn from the seed);
    never rendered, listed, logged or serialised.
    """

    id = fields.IntField(primary_key=True)
    firing = fields.OneToOneField("models.Firing", related_name="secret_row", on_delete=fields.CASCADE)
    secret = fields.BinaryField()
    seed = fields.BinaryField(null=True)
    # protocol v2: the 32-byte key every entity's class salt derives from (HMAC-SHA256(salt_key,
    # key)); it opens every class of the draw, so only an audited disclosure ever exports it
    salt_key = fields.BinaryField(null=True)

    class Meta:
        table = "firing_secret"

    class PydanticMeta:
        exclude = ("secret", "seed", "salt_key")

    def __repr__(self) -> str:
        return f"<FiringSecret firing={self.firing_id} (hidden)>"  # type: ignore[attr-defined]

    __str__ = __repr__


class FiringPool(Model):
    """Protocol v2: the pool fixed at announce, with every entity's confidential class
    (zlib-compressed ``key TAB class LF`` lines). Private like the secret: the draw reads it, and
    only ``inspectbot draw disclose`` (audited) exports the classes."""

    id = fields.IntField(primary_key=True)
    firing = fields.OneToOneField("models.Firing", related_name="pool_row", on_delete=fields.CASCADE)
    data = fields.BinaryField()

    class Meta:
        table = "firing_pool"

    class PydanticMeta:
        exclude = ("data",)

    def __repr__(self) -> str:
        return f"<FiringPool firing={self.firing_id} (hidden)>"  # type: ignore[attr-defined]

    __str__ = __repr__


class Draw(Model):
    """The single execution of a firing. Public digests only; the secret stays in FiringSecret."""

    id = fields.IntField(primary_key=True)
    draw_ref = fields.CharField(max_length=64, unique=True)
    firing = fields.OneToOneField("models.Firing", related_name="draw", on_delete=fields.RESTRICT)
    plan = fields.ForeignKeyField("models.Plan", related_name="draws", on_delete=fields.RESTRICT)
    drawn_at = fields.DatetimeField(db_index=True)
    beacon = fields.CharField(max_length=255, default="")
    pool_digest = fields.CharField(max_length=64)
    inspectors_digest = fields.CharField(max_length=64)
    inspections_digest = fields.CharField(max_length=64)  # H(canonical inspections list)
    strata = fields.JSONField(default=dict)  # {"A": {"pool": n, "ratio": "0.03", "drawn": k}, …}
    notes = fields.JSONField(default=list)
    flight = fields.BooleanField(default=False)
    window_start = fields.DatetimeField()
    window_end = fields.DatetimeField()
    reveal_at = fields.DatetimeField(null=True)  # flight: when targets and bundle are revealed
    revealed_at = fields.DatetimeField(null=True)
    pool_size = fields.IntField()
    inspector_count = fields.IntField()
    inspection_count = fields.IntField()
    unstaffable_count = fields.IntField(default=0)
    # An off-schedule draw (its commitment not public the plan's lead time ahead: ad hoc, or a
    # redraw): {"reason", "confirmed_by", "requested_by", "redraw_of"}; None for a scheduled one.
    off_schedule = fields.JSONField(null=True)
    # draw.json's "beacon_source" (domain.beacon): the round and its signature, or the values typed
    # for the announced sources; None when the draw had no planned beacon.
    beacon_source = fields.JSONField(null=True)
    # The draw this one redraws; unique, so two racing redraws of one draw cannot both commit.
    redraw_of = fields.CharField(max_length=64, null=True, unique=True)
    # The audit chain's head just after this draw's own records (draw.json's ``audit_head``).
    audit_seq = fields.BigIntField(null=True)
    audit_head = fields.CharField(max_length=64, null=True)

    class Meta:
        table = "draw"


class DrawInput(Model):
    """The draw's inputs as they were at draw time (zlib-compressed), so the bundle can be
    exported and replacements drawn later whatever happens to the directories since."""

    id = fields.IntField(primary_key=True)
    draw = fields.ForeignKeyField("models.Draw", related_name="inputs", on_delete=fields.CASCADE)
    name = fields.CharField(max_length=32)  # "pool.tsv", "inspectors.tsv", "params.json"
    data = fields.BinaryField()

    class Meta:
        table = "draw_input"
        unique_together = (("draw", "name"),)


class Inspection(Model):
    """One drawn entity of a draw, numbered as the protocol numbers it."""

    id = fields.IntField(primary_key=True)
    draw = fields.ForeignKeyField("models.Draw", related_name="inspections", on_delete=fields.RESTRICT)
    no = fields.IntField()
    entity = fields.ForeignKeyField("models.Entity", related_name="inspections", on_delete=fields.RESTRICT)
    entity_key = fields.CharField(max_length=32)  # the public key as drawn (USCC)
    division = fields.CharField(max_length=12, default="")  # as it was at draw time
    stratum = fields.CharField(max_length=8)
    rank = fields.CharField(max_length=16)  # u64 rank, hex
    status = fields.CharEnumField(InspectionStatus, max_length=16, default=InspectionStatus.STAFFED)
    unstaffable_reason = fields.CharField(max_length=64, default="")
    # The team lead when a member took it over (services.onsite.lead: the lead has no chat); None:
    # the lowest seat leads, as drawn.
    lead = fields.ForeignKeyField(
        "models.Inspector", null=True, related_name="led_inspections", on_delete=fields.SET_NULL
    )

    class Meta:
        table = "inspection"
        # (entity, draw) is unique (no entity twice in a draw) and serves "inspections of an entity"
        unique_together = (("draw", "no"), ("entity", "draw"))


class Assignment(Model):
    """One inspector on one seat of an inspection's team. ``ordinal`` 0 = drawn with the draw,
    k = placed by the k-th recusal on this inspection (whose log ordinal is k − 1)."""

    id = fields.IntField(primary_key=True)
    draw = fields.ForeignKeyField("models.Draw", related_name="assignments", on_delete=fields.RESTRICT)
    inspection = fields.ForeignKeyField("models.Inspection", related_name="assignments", on_delete=fields.RESTRICT)
    inspector = fields.ForeignKeyField("models.Inspector", related_name="assignments", on_delete=fields.RESTRICT)
    seat = fields.SmallIntField()
    ordinal = fields.SmallIntField(default=0)
    status = fields.CharEnumField(AssignmentStatus, max_length=16, default=AssignmentStatus.SENT)
    deadline = fields.DatetimeField()
    created_at = fields.DatetimeField()
    responded_at = fields.DatetimeField(null=True)
    reminded_at = fields.DatetimeField(null=True)  # the deadline passed unanswered: reminded
    escalated_at = fields.DatetimeField(null=True)  # still silent after the second period

    class Meta:
        table = "assignment"
        unique_together = (("inspection", "inspector"),)
        indexes = (("inspector", "status"), ("draw", "status"))


class Recusal(Model):
    """The recusal log (回避记录): published with the bundle so replacements can be re-derived."""

    id = fields.IntField(primary_key=True)
    inspection = fields.ForeignKeyField("models.Inspection", related_name="recusals", on_delete=fields.RESTRICT)
    assignment = fields.OneToOneField("models.Assignment", related_name="recusal", on_delete=fields.RESTRICT)
    seat = fields.SmallIntField()
    ordinal = fields.SmallIntField()  # earlier recusals on this inspection (0 for the first), as published
    recusing = fields.ForeignKeyField("models.Inspector", related_name="recusals", on_delete=fields.RESTRICT)
    replacement = fields.ForeignKeyField(
        "models.Inspector", related_name="replacements", null=True, on_delete=fields.RESTRICT
    )
    # A plain foreign key: Tortoise orders a model's one-to-one columns nondeterministically, which
    # would make the generated migration differ from run to run; one o2o per model keeps it stable.
    replacement_assignment = fields.ForeignKeyField(
        "models.Assignment", related_name="replaces", null=True, on_delete=fields.RESTRICT
    )
    reason_type = fields.CharEnumField(ConflictType, max_length=32)  # private: never published
    # hex pair hashes of the exclusions the replacement consulted and found (published, so an
    # auditor can re-derive the replacement without learning the conflicts)
    exclusions = fields.JSONField(default=list)
    unstaffable_reason = fields.CharField(max_length=64, default="")
    at = fields.DatetimeField()
    # A coordinator may reject the recusal (services.recusals.reject_recusal): the inspector
    # is reinstated and the replacement's assignment cancelled. The line stays in the published
    # log (the replacement was drawn); the rejection is recorded here and on the audit chain.
    rejected_at = fields.DatetimeField(null=True)
    rejected_by = fields.CharField(max_length=64, default="")  # "coordinator:<binding id>" (private)
    rejection_note = fields.TextField(default="")  # private: told to the inspector, never published

    class Meta:
        table = "recusal"
        unique_together = (("inspection", "ordinal"),)


class OffScheduleStatus(str, Enum):
    PENDING = "pending"
    CONFIRMED = "confirmed"  # a second coordinator confirmed and the draw was made
    DECLINED = "declined"
    EXPIRED = "expired"  # nobody decided in time
    FAILED = "failed"  # confirmed, but the draw was refused (the slot changed meanwhile)


class OffScheduleRequest(Model):
    """A coordinator's request, from chat, for an off-schedule draw of a plan (ad hoc, or a redraw
    of today's draw): a typed reason, waiting for a second coordinator's confirmation
    (services.draws.offschedule)."""

    id = fields.IntField(primary_key=True)
    plan = fields.ForeignKeyField("models.Plan", related_name="off_schedule_requests", on_delete=fields.RESTRICT)
    requested_by = fields.CharField(max_length=64)  # "coordinator:<binding id>" (or "admin:<id>")
    requester_binding_id = fields.IntField()
    reason = fields.CharField(max_length=500)
    redraw_of = fields.CharField(max_length=64, null=True)  # today's draw of the plan when asked, if any
    status = fields.CharEnumField(OffScheduleStatus, max_length=16, default=OffScheduleStatus.PENDING)
    created_at = fields.DatetimeField()
    expires_at = fields.DatetimeField(db_index=True)
    decided_by = fields.CharField(max_length=64, null=True)
    decided_at = fields.DatetimeField(null=True)
    draw_ref = fields.CharField(max_length=64, null=True)
    failure = fields.CharField(max_length=64, null=True)  # the draw's refusal code, when FAILED

    class Meta:
        table = "off_schedule_request"


class BeaconEntryStatus(str, Enum):
    PENDING = "pending"
    CONFIRMED = "confirmed"  # a second coordinator confirmed: the values are the firing's beacon
    DECLINED = "declined"
    FAILED = "failed"  # confirmed, but refused (values already entered, the firing drawn, proposer revoked)


class BeaconEntry(Model):
    """Values typed in chat for a firing's announced beacon sources (``/beacon DRAW_REF V…``),
    waiting for a second coordinator's confirmation by button (services.draws.beacon)."""

    id = fields.IntField(primary_key=True)
    firing = fields.ForeignKeyField("models.Firing", related_name="beacon_entries", on_delete=fields.RESTRICT)
    values = fields.JSONField()  # one string per announced source, in the announced order
    entered_by = fields.CharField(max_length=64)  # "coordinator:<binding id>"
    entered_binding_id = fields.IntField()
    status = fields.CharEnumField(BeaconEntryStatus, max_length=16, default=BeaconEntryStatus.PENDING)
    created_at = fields.DatetimeField()
    decided_by = fields.CharField(max_length=64, null=True)
    decided_at = fields.DatetimeField(null=True)
    failure = fields.CharField(max_length=64, null=True)

    class Meta:
        table = "beacon_entry"
