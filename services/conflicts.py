"""Standing conflicts of interest an inspector declares in advance (and may withdraw).

A declared conflict excludes the pair from every later draw and replacement. Conflicts that
came from a recusal or a coordinator are listed but cannot be withdrawn by the inspector.
"""

from __future__ import annotations

from datetime import datetime

from tortoise.expressions import Q
from tortoise.functions import Count

from domain import inputs
from domain.errors import ServiceError
from models.directory import Conflict, ConflictSource, ConflictType, Entity, EntityStatus
from services import audit
from services.scope import PAGE_SIZE, Page, clamp

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


def search_query(query: str) -> str:
    """The query as searched, read by :func:`domain.inputs.search`: from :data:`MIN_QUERY` to
    :data:`domain.inputs.SEARCH_MAX` characters (a full company name fits), else refused."""
    q = inputs.search(query)
    if q is None or len(q) < MIN_QUERY:
        raise ConflictError("conflict_query_bad", min=MIN_QUERY, max=inputs.SEARCH_MAX)
    return q


async def search(query: str, page: int = 1) -> Page:
    """Entities by exact credit code or by part of the name (active ones), a page of
    :data:`services.scope.PAGE_SIZE` at a time, every match reachable. Each item says whether
    its name is shared (``same_name``) with another active entity, so its label carries the
    credit code."""
    q = search_query(query)
    fields = ("id", "name", "uscc", "address")
    if inputs.looks_like_uscc(q):  # only a code is compared with the credit-code column
        exact = await Entity.filter(uscc=q.upper()).values(*fields)
        if exact:
            return Page([{**e, "same_name": False} for e in exact], 1, 1, len(exact))
    matches = Entity.filter(name__contains=q, status=EntityStatus.ACTIVE)
    page, pages, offset = clamp(page, total := await matches.count())
    rows = await matches.order_by("name", "uscc").offset(offset).limit(PAGE_SIZE).values(*fields)
    names = {r["name"] for r in rows}
    shared = set(
        await Entity.filter(name__in=list(names), status=EntityStatus.ACTIVE)
        .annotate(n=Count("id"))
        .group_by("name")
        .filter(n__gt=1)
        .values_list("name", flat=True)
    )
    return Page([{**r, "same_name": r["name"] in shared} for r in rows], page, pages, total)


async def entity_label(entity_id: int) -> dict:
    """The entity a conflict is about to be declared with, as the confirmation shows it."""
    entity = await Entity.get_or_none(id=entity_id)
    if entity is None:
        raise ConflictError("conflict_entity_missing")
    return {"id": entity.id, "name": entity.name, "uscc": entity.uscc, "address": entity.address}


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
