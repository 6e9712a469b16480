"""Model versions: load a model file as a proposal, approve or reject it (audited), the one in force.

Only an approved version classifies; the version in force is the most recently approved one.
Every decision is a record in the audit chain (``risk_model_proposed``, ``risk_model_approved``,
``risk_model_rejected``) in the same transaction as the change.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable
from datetime import date, datetime
from pathlib import Path
from typing import Any

from core import db
from domain.errors import ServiceError
from domain.risk.model import RiskModel, RiskModelError, parse_model
from models.risk import RiskModelVersion, RiskRun, VersionStatus
from services import audit, people


class RiskError(ServiceError):
    """A refused risk-engine request; ``code`` names a text of ``texts/risk.j2``."""


def read_model_file(path: Path) -> RiskModel:
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise RiskError("risk_file_unreadable", path=str(path), reason=type(exc).__name__) from None
    except tomllib.TOMLDecodeError as exc:
        raise RiskError("risk_file_toml", path=str(path), reason=str(exc)) from None
    try:
        return parse_model(data)
    except RiskModelError as exc:
        raise RiskError(
            "risk_file_invalid", path=str(path), field=exc.path, problem=exc.code, params=exc.params
        ) from None


async def propose(
    model: RiskModel, *, actor: str, now: datetime, metrics: dict[str, Any] | None = None, based_on: str = ""
) -> RiskModelVersion:
    """Store ``model`` as a proposed version named ``model.name`` (refused if the name is taken)."""
    async with db.transaction() as conn:
        if await RiskModelVersion.filter(version=model.name).using_db(conn).exists():
            raise RiskError("risk_version_exists", version=model.name)
        row = await RiskModelVersion.create(
            version=model.name,
            status=VersionStatus.PROPOSED,
            config=model.to_dict(),
            metrics=metrics or {},
            based_on=based_on,
            created_at=now,
            created_by=actor,
            using_db=conn,
        )
        await audit.append(
            actor, "risk_model_proposed", model.name, {"based_on": based_on, "metrics": metrics or {}}, now, conn
        )
    return row


async def decide(version: str, *, approve: bool, actor: str, now: datetime) -> RiskModelVersion:
    """Approve or reject a proposed version; only a proposal can be decided, once."""
    async with db.transaction() as conn:
        row = await RiskModelVersion.filter(version=version).using_db(conn).select_for_update().first()
        if row is None:
            raise RiskError("risk_version_unknown", version=version)
        if row.status != VersionStatus.PROPOSED:
            raise RiskError("risk_version_decided", version=version, status=row.status.value)
        row.status = VersionStatus.APPROVED if approve else VersionStatus.REJECTED
        row.decided_at, row.decided_by = now, actor
        await row.save(using_db=conn, update_fields=["status", "decided_at", "decided_by"])
        action = "risk_model_approved" if approve else "risk_model_rejected"
        await audit.append(actor, action, version, {"metrics": row.metrics}, now, conn)
    return row


async def in_force(connection=None) -> tuple[str, RiskModel] | None:
    """The version that classifies (the latest approved) and its model, or None."""
    query = RiskModelVersion.filter(status=VersionStatus.APPROVED).order_by("-decided_at", "-id")
    row = await (query.using_db(connection) if connection else query).first()
    return None if row is None else (row.version, parse_model(row.config))


async def approved_run(version: str) -> RiskRun | None:
    """The version's first classification: its class counts are the mix the version was approved with
    (the budget at the plan's ratios; docs/risk.md). None before it has classified."""
    return await RiskRun.filter(version=version).order_by("at", "id").first()


async def decide_by_id(row_id: int, *, approve: bool, actor: str, now: datetime) -> RiskModelVersion:
    """:func:`decide` for a chat button, which carries the version's row id."""
    row = await RiskModelVersion.filter(id=row_id).first()
    if row is None:
        raise RiskError("risk_version_unknown", version=str(row_id))
    return await decide(row.version, approve=approve, actor=actor, now=now)


async def proposals() -> list[dict[str, Any]]:
    """The proposed versions with their comparison, newest first (what a coordinator decides on)."""
    rows = await RiskModelVersion.filter(status=VersionStatus.PROPOSED).order_by("-created_at", "-id").limit(10)
    names = await people.whos(r.created_by for r in rows)  # who proposed each, as people read them
    return [
        {
            "id": r.id,
            "version": r.version,
            "based_on": r.based_on,
            "created_by": names[r.created_by],
            "metrics": r.metrics,
        }
        for r in rows
    ]


async def listing() -> list[RiskModelVersion]:
    return await RiskModelVersion.all().order_by("-created_at", "-id")


async def get(version: str) -> RiskModelVersion:
    row = await RiskModelVersion.filter(version=version).first()
    if row is None:
        raise RiskError("risk_version_unknown", version=version)
    return row


async def indicator_names() -> dict[str, str]:
    """Every name an import may give an indicator (its code, lower-cased code, its name) → its code,
    over all stored versions."""
    names: dict[str, str] = {}
    for config in await RiskModelVersion.all().values_list("config", flat=True):
        for ind in db.decoded(config, {}).get("indicators", []):
            names[ind["code"]] = ind["code"]
            names[ind["code"].lower()] = ind["code"]
            names.setdefault(ind.get("name", ind["code"]), ind["code"])
    return names


async def derived_indicators() -> set[str]:
    """The codes of indicators a stored version counts from published results (``source = "results"``):
    the engine computes them, an import may not give them."""
    found: set[str] = set()
    for config in await RiskModelVersion.all().values_list("config", flat=True):
        for ind in db.decoded(config, {}).get("indicators", []):
            if ind.get("source", "import") == "results":
                found.add(ind["code"])
    return found


UPSERT = (
    'INSERT INTO "indicator_value" ("entity_id", "indicator", "value", "observed_on") VALUES (?, ?, ?, ?) '
    'ON CONFLICT ("entity_id", "indicator", "observed_on") DO UPDATE SET "value" = excluded."value"'
)


async def store_values(rows: Iterable[tuple[int, str, float, date]], batch: int = 5_000) -> int:
    """Add indicator observations in one transaction; the same entity, indicator and date replaces."""
    written = 0
    async with db.transaction() as conn:
        sql = db.sql(UPSERT, connection=conn)
        chunk: list[Any] = []
        for row in rows:
            chunk.append(row)
            if len(chunk) >= batch:
                await conn.execute_many(sql, chunk)
                written += len(chunk)
                chunk = []
        if chunk:
            await conn.execute_many(sql, chunk)
            written += len(chunk)
    return written
