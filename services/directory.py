"""What the 一单两库 holds, in numbers: the demo prints it, coordinators can ask for it."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from tortoise.functions import Count

from models.directory import Department, Entity, EntityStatus, Inspector, Item, Unit


@dataclass(frozen=True)
class DirectorySummary:
    departments: int
    units: int
    items: int
    entities_by_risk: dict[str, int]  # active entities per class A–E
    entities_by_kind: dict[str, int]  # active entities per kind
    entities_inactive: int
    inspectors_by_status: dict[str, int]
    certificates_expired: int  # inspectors not retired whose certificate ran out before ``today``

    @property
    def entities_active(self) -> int:
        return sum(self.entities_by_risk.values())


async def _counts(query, field: str) -> dict[str, int]:
    rows = await query.annotate(n=Count("id")).group_by(field).values_list(field, "n")
    return {getattr(key, "value", key): n for key, n in sorted(rows, key=lambda r: str(r[0]))}


async def summary(today: dt.date) -> DirectorySummary:
    active = Entity.filter(status=EntityStatus.ACTIVE)
    return DirectorySummary(
        departments=await Department.all().count(),
        units=await Unit.all().count(),
        items=await Item.all().count(),
        entities_by_risk=await _counts(active, "risk_class"),
        entities_by_kind=await _counts(Entity.filter(status=EntityStatus.ACTIVE), "kind"),
        entities_inactive=await Entity.filter(status=EntityStatus.INACTIVE).count(),
        inspectors_by_status=await _counts(Inspector.all(), "status"),
        certificates_expired=await Inspector.filter(cert_expiry__lt=today).exclude(status="retired").count(),
    )


async def department_names(codes, conn=None) -> dict[str, str]:
    """Each department code's name (a code nobody has maps to itself), for texts people read."""
    codes = list(dict.fromkeys(codes))
    q = Department.filter(code__in=codes)
    if conn is not None:
        q = q.using_db(conn)
    names = dict(await q.values_list("code", "name"))
    return {c: names.get(c) or c for c in codes}
