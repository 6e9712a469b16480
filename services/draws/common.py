"""What the draw's modules share: the refusal (:class:`DrawError`), raw SQL reads, a plan by code.

A draw reads and writes a million rows: these helpers keep them plain tuples, not ORM objects.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

from core import db
from domain.draw import parse_pool_tsv
from domain.errors import ServiceError
from models.draws import HOLDING_SEAT, Firing, FiringPool, FiringStatus
from models.plans import Plan
from services.plans import PlanNotFound, get_plan

COUNTED_STATUSES = tuple(s.value for s in HOLDING_SEAT)  # an assignment that "inspected" its entity


class DrawError(ServiceError):
    """A use case refused; ``code`` names the reason: ``draw_error`` in ``texts/draws.j2`` (the
    CLI's), or ``coord_error`` in ``texts/coordinator.j2`` for a coordinator's request from chat
    (services.draws.confirm, services.draws.status)."""


def marks(n: int) -> str:
    """``?, ?, …``: ``n`` placeholders for an ``IN (…)`` (``db.sql`` numbers them for PostgreSQL)."""
    return ", ".join("?" * n)


async def fetch_rows(sql: str, params: Sequence = (), connection=None) -> list:
    client = connection or db.conn()
    return list((await client.execute_query(db.sql(sql, connection=client), list(params)))[1])


async def fetch_tuples(sql: str, params: Sequence = (), connection=None) -> list:
    """Like :func:`fetch_rows` for reads of a million rows: on SQLite plain tuples, not the
    ``sqlite3.Row`` Tortoise's connection makes of each row (asyncpg's records index alike)."""
    client = connection or db.conn()
    if db.dialect() == "postgres":
        return await fetch_rows(sql, params, connection)
    async with client.acquire_connection() as raw:
        cursor = await raw.cursor()
        cursor.row_factory = None
        try:
            await cursor.execute(sql, list(params))
            return await cursor.fetchall()
        finally:
            await cursor.close()


async def find_plan(code: str) -> Plan:
    """The plan ``code``; refused as ``plan_not_found`` when there is none."""
    try:
        return await get_plan(code)
    except PlanNotFound:
        raise DrawError("plan_not_found", plan=code) from None


async def pending_firing(plan_code: str) -> Firing | None:
    """The plan's earliest announced, not yet drawn firing."""
    plan = await find_plan(plan_code)
    return await Firing.filter(plan=plan, status=FiringStatus.ANNOUNCED).order_by("fire_at", "id").first()


async def fixed_pool(firing: Firing) -> tuple[list[str], list[str]] | None:
    """The keys and classes a v2 firing fixed at its announcement (services.draws.fixed); None
    for a v1 firing."""
    row = await FiringPool.get_or_none(firing_id=firing.id)
    if row is None:
        return None
    columns = parse_pool_tsv(zlib.decompress(bytes(row.data)))
    return columns.keys, columns.strata
