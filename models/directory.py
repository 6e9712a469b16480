"""一单两库: the checklist of inspection items and the two directories (entities, inspectors).

Keys are the public identifiers regulators use: the unified social credit code for an entity,
the certificate number for an inspector, the item code for an inspection item. Rows are never
deleted by an import; they are marked inactive.
"""

from __future__ import annotations

from enum import Enum

from tortoise import fields
from tortoise.migrations.constraints import UniqueConstraint
from tortoise.models import Model

#: How SQL compares an inspector's WeCom userid (``LOWER(…) = LOWER(?)`` or ``= ?`` with
#: ``domain.wecom.fold_userid``): the expression of the unique index, so lookups use it.
WECOM_USERID_KEY = 'LOWER("wecom_userid")'


class Level(str, Enum):
    CITY = "city"
    DISTRICT = "district"
    TOWN = "town"


class EntityKind(str, Enum):
    ENTERPRISE = "enterprise"  # 企业
    INSTITUTION = "institution"  # 事业单位
    SOCIAL_ORG = "social_org"  # 社会组织
    LEGAL_SERVICE = "legal_service"  # 法律服务机构


class RiskClass(str, Enum):
    A = "A"
    B = "B"
    C = "C"
    D = "D"
    E = "E"


class EntityStatus(str, Enum):
    ACTIVE = "active"
    INACTIVE = "inactive"  # missing from the latest full export, deregistered, …


class InspectorStatus(str, Enum):
    ACTIVE = "active"
    ON_LEAVE = "on_leave"
    RETIRED = "retired"


class ConflictType(str, Enum):
    CLOSE_RELATIVE = "close_relative"
    FORMER_EMPLOYMENT = "former_employment"
    FINANCIAL_INTEREST = "financial_interest"
    PERSONAL_RELATIONSHIP = "personal_relationship"
    OTHER = "other"
    NO_RESPONSE = "no_response"  # an unanswered assignment treated as a recusal


class ConflictSource(str, Enum):
    DECLARED = "declared"
    RECUSAL = "recusal"
    COORDINATOR = "coordinator"


class Department(Model):
    id = fields.IntField(primary_key=True)
    code = fields.CharField(max_length=32, unique=True)
    name = fields.CharField(max_length=128)
    level = fields.CharEnumField(Level, max_length=16, default=Level.CITY)
    division_code = fields.CharField(max_length=12, default="")

    class Meta:
        table = "department"


class Unit(Model):
    """执法单位: an enforcement unit of a department, with a territorial jurisdiction."""

    id = fields.IntField(primary_key=True)
    department: fields.ForeignKeyRelation[Department] = fields.ForeignKeyField(
        "models.Department", related_name="units", on_delete=fields.RESTRICT
    )
    name = fields.CharField(max_length=128)
    # Administrative-division code prefix the unit covers: "3702" = the whole city of Qingdao,
    # "370202" = one district, "370202001" = one town (trailing zero pairs stripped).
    jurisdiction = fields.CharField(max_length=12, db_index=True)

    class Meta:
        table = "unit"
        unique_together = (("department", "name"),)


class Item(Model):
    """抽查事项: an inspection item of the checklist."""

    id = fields.IntField(primary_key=True)
    code = fields.CharField(max_length=32, unique=True)
    name = fields.CharField(max_length=255)
    department: fields.ForeignKeyRelation[Department] = fields.ForeignKeyField(
        "models.Department", related_name="items", on_delete=fields.RESTRICT
    )
    legal_basis = fields.TextField(default="")
    target_kinds = fields.JSONField(default=list)  # list[EntityKind value]
    method = fields.CharField(max_length=64, default="")
    qualifications = fields.JSONField(default=list)  # required qualification codes
    content_hash = fields.CharField(max_length=32, default="")

    class Meta:
        table = "item"


class Entity(Model):
    """检查对象: a regulated entity."""

    id = fields.IntField(primary_key=True)
    uscc = fields.CharField(max_length=18, unique=True)  # 统一社会信用代码
    name = fields.CharField(max_length=255, db_index=True)
    kind = fields.CharEnumField(EntityKind, max_length=16)
    division_code = fields.CharField(max_length=12, db_index=True)
    address = fields.CharField(max_length=255, default="")
    industry = fields.CharField(max_length=64, default="", db_index=True)
    risk_class = fields.CharEnumField(RiskClass, max_length=1, db_index=True)
    mobile = fields.CharField(max_length=20, null=True, db_index=True)  # E.164; an SMS sender is looked up by it
    lat = fields.FloatField(null=True)
    lon = fields.FloatField(null=True)
    status = fields.CharEnumField(EntityStatus, max_length=16, default=EntityStatus.ACTIVE, db_index=True)
    content_hash = fields.CharField(max_length=32, default="")
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "entity"


class Inspector(Model):
    """执法检查人员: a certified inspector."""

    id = fields.IntField(primary_key=True)
    cert_no = fields.CharField(max_length=32, unique=True)  # 执法证号
    name = fields.CharField(max_length=64)
    department: fields.ForeignKeyRelation[Department] = fields.ForeignKeyField(
        "models.Department", related_name="inspectors", on_delete=fields.RESTRICT
    )
    unit: fields.ForeignKeyRelation[Unit] = fields.ForeignKeyField(
        "models.Unit", related_name="inspectors", on_delete=fields.RESTRICT
    )
    qualifications = fields.JSONField(default=list)  # sorted qualification codes
    expertise = fields.CharField(max_length=255, default="")
    mobile = fields.CharField(max_length=20, null=True)  # E.164
    # WeCom (企业微信) userid from the directory import: binds them on WeCom without an invite. Kept
    # as the directory spells it; compared, and unique, without regard to case as WeCom compares
    # userids (LOWER(): the index below; domain.wecom.fold_userid in Python)
    wecom_userid = fields.CharField(max_length=64, null=True)
    cert_expiry = fields.DateField(null=True)
    status = fields.CharEnumField(InspectorStatus, max_length=16, default=InspectorStatus.ACTIVE, db_index=True)
    content_hash = fields.CharField(max_length=32, default="")
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "inspector"
        # an expression index (bot/migrations_tool.py): ZhangSan and zhangsan are one WeCom member
        constraints = [UniqueConstraint(fields=(WECOM_USERID_KEY,), name="inspector_wecom_userid_nocase")]


class Conflict(Model):
    """A conflict of interest between an inspector and an entity (回避事由)."""

    id = fields.IntField(primary_key=True)
    inspector: fields.ForeignKeyRelation[Inspector] = fields.ForeignKeyField(
        "models.Inspector", related_name="conflicts", on_delete=fields.CASCADE
    )
    entity: fields.ForeignKeyRelation[Entity] = fields.ForeignKeyField(
        "models.Entity", related_name="conflicts", on_delete=fields.CASCADE
    )
    type = fields.CharEnumField(ConflictType, max_length=32)
    source = fields.CharEnumField(ConflictSource, max_length=16)
    note = fields.TextField(default="")  # never shown publicly
    created_at = fields.DatetimeField(auto_now_add=True)
    expires_at = fields.DatetimeField(null=True)
    withdrawn_at = fields.DatetimeField(null=True)

    class Meta:
        table = "conflict"
        indexes = (("inspector", "entity"),)
