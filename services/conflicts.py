"""Standing conflicts of interest an inspector declares in advance (and may withdraw).

A declared conflict excludes the pair from every later draw and replacement. Conflicts that
came from a recusal or a coordinator are listed but cannot be withdrawn by the inspector.
"""

from __future__ import annotations

from datetime import datetime

from tortoise.expressions import Q

from domain import inputs
from domain.errors import ServiceError
from models.directory import Conflict, ConflictSource, ConflictType, Entity, EntityStatus
from services import audit

SEARCH_LIMIT = 8
MIN_QUERY = 2


class ConflictError(ServiceError):
    """Refused; ``code`` names a text of this feature's templates."""


def _active(now: datetime):
    return Q(withdrawn_at=None) & (Q(expires_at=None) | Q(expires_at__gt=now))


async def listing(inspector_id: int, now: datetime) -> list[dict]:
    rows = await (
        Conflict.filter(_active(now), inspector_id=inspector_id)
        .order_by("id")
        .values("id", "type", "source", "entity__name", "entity__uscc")
    )
    return [
        {
            "id": r["id"],
            "type": _v(r["type"]),
            "source": _v(r["source"]),
            "entity": r["entity__name"],
            "uscc": r["entity__uscc"],
            "withdrawable": _v(r["source"]) == ConflictSource.DECLARED.value,
        }
        for r in rows
    ]


def _v(x) -> str:
    return x.value if hasattr(x, "value") else x


async def search(query: str) -> list[dict]:
    """Entities by exact credit code or by part of the name (active ones, a few at most). The
    query is read by :func:`domain.inputs.search`: from :data:`MIN_QUERY` to
    :data:`domain.inputs.SEARCH_MAX` characters (a full company name fits), else refused."""
    q = inputs.search(query)
    if q is None or len(q) < MIN_QUERY:
        raise ConflictError("conflict_query_bad", min=MIN_QUERY, max=inputs.SEARCH_MAX)
    if inputs.looks_like_uscc(q):  # only a code is compared with the credit-code column
        exact = await Entity.filter(uscc=q.upper()).values("id", "name", "uscc", "address")
        if exact:
            return exact
    return await (
        Entity.filter(name__contains=q, status=EntityStatus.ACTIVE)
        .order_by("name")
        .limit(SEARCH_LIMIT)
        .values("id", "name", "uscc", "address")
    )


async def declare(inspector_id: int, entity_id: int, type_: ConflictType, now: datetime, conn=None) -> Conflict:
    entity = await Entity.get_or_none(id=entity_id)
    if entity is None:
        raise ConflictError("conflict_entity_missing")
    existing = await Conflict.filter(_active(now), inspector_id=inspector_id, entity_id=entity_id).first()
    if existing is not None:
        raise ConflictError("conflict_exists", entity=entity.name)
    row = await Conflict.create(
        inspector_id=inspector_id, entity_id=entity_id, type=type_, source=ConflictSource.DECLARED, using_db=conn
    )
    await audit.append(
        f"inspector:{inspector_id}",
        "conflict.declared",
        f"conflict:{row.id}",
        {"entity": entity.uscc, "type": type_.value},
        now,
        connection=conn,
    )
    return row


async def withdraw(inspector_id: int, conflict_id: int, now: datetime, conn=None) -> str:
    row = await Conflict.filter(id=conflict_id, inspector_id=inspector_id).prefetch_related("entity").first()
    if row is None:
        raise ConflictError("conflict_not_found")
    if row.source != ConflictSource.DECLARED:
        raise ConflictError("conflict_not_withdrawable")
    if row.withdrawn_at is not None:
        return "already_withdrawn"
    await Conflict.filter(id=row.id).update(withdrawn_at=now)
    await audit.append(
        f"inspector:{inspector_id}",
        "conflict.withdrawn",
        f"conflict:{row.id}",
        {"entity": row.entity.uscc},
        now,
        connection=conn,
    )
    return "withdrawn"
