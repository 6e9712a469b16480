"""Classify the whole directory with the version in force, and look up one entity's assessment.

The classification reads every active entity's latest indicator values (the newest observation
of each indicator), counts the indicators derived from its published results and the facts the
rules use (``services.risk.history``: published, i.e. reviewed, results only), classifies them all at once
(:mod:`services.risk.matrix`), and in one transaction replaces the assessments, writes the class
in force to ``entity.risk_class`` (which the draw reads) where it changed, and records the run.

An override in force (``services.risk.overrides``: a regulator's class for one firm, approved by a
second coordinator) fixes the final class after the model's rules; the assessment keeps the
model's class (``computed``) and the class of the score alone beside it, and names the override.
The run's class counts are the model's classes (what drift and training compare), with the number
of entities an override fixed beside them. Overrides past their last day end here, in the same
transaction.

The class in force never changes under an announced draw: a classification is skipped while any
firing is announced and not yet drawn (``deferred``), so a draw uses the classes that were in
force when it was announced. The scheduler classifies before each announce and monthly
(:func:`monthly_sweep`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import numpy as np

from core import db
from domain import inputs
from domain.risk.model import RiskModel, parse_model
from models.directory import Entity
from models.draws import Firing, FiringStatus
from models.risk import IndicatorValue, RiskAssessment, RiskRun
from services import fires, people
from services.risk import history, matrix, overrides
from services.risk.versions import RiskError, get, in_force

BATCH = 5_000
PAGE = 20_000  # entities per read of their indicator values


@dataclass(frozen=True)
class RunSummary:
    version: str
    entities: int
    counts: dict[str, int]
    changed: int
    deferred: bool = False
    overridden: int = 0  # entities whose class an override in force fixed (counts are the model's)


async def entity_matrix(model: RiskModel, connection=None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Active entities' ids, their latest value of each indicator of ``model`` (NaN = none), current classes."""
    conn = connection or db.conn()
    _, rows = await conn.execute_query(
        """SELECT "id", "risk_class" FROM "entity" WHERE "status" = 'active' ORDER BY "id" """
    )
    ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    current = [r[1] for r in rows]
    values = np.full((len(ids), len(model.codes)), np.nan)
    column = {code: j for j, code in enumerate(model.codes)}
    # page by entity id, so a city's 40 million observations never sit in memory as Python rows
    query = db.sql(
        'SELECT "entity_id", "indicator", "value" FROM "indicator_value" WHERE "entity_id" >= ? AND "entity_id" <= ? '
        'ORDER BY "entity_id", "indicator", "observed_on"',
        connection=conn,
    )
    for first in range(0, len(ids), PAGE):
        page = ids[first : first + PAGE]
        _, found = await conn.execute_query(query, [int(page[0]), int(page[-1])])
        if not found:
            continue
        ent = np.fromiter((r[0] for r in found), dtype=np.int64, count=len(found))
        col = np.fromiter((column.get(r[1], -1) for r in found), dtype=np.int64, count=len(found))
        val = np.fromiter((r[2] for r in found), dtype=float, count=len(found))
        del found
        row = np.searchsorted(ids, ent)
        keep = (ids[np.minimum(row, len(ids) - 1)] == ent) & (col >= 0)
        # sorted by entity, indicator, date: the last of each (entity, indicator) is the newest
        key = ent * 1000 + np.maximum(col, 0)
        last = np.ones(len(ent), dtype=bool)
        last[:-1] = key[:-1] != key[1:]
        keep &= last
        values[row[keep], col[keep]] = val[keep]
    return ids, values, current


async def derived(model: RiskModel, ids: np.ndarray, values: np.ndarray, now: datetime) -> dict[str, np.ndarray]:
    """Fill ``values``' ``source = "results"`` columns from the published results up to ``now`` (its
    day included), and return the facts the rules read (``last_inspection_problem``)."""
    results = await history.published()
    if model.derived:
        history.fill(model, values, results, ids, now.astimezone(UTC).date().toordinal() + 1)
    return {"last_inspection_problem": history.last_problem(results, ids)}


DEFAULT_ZONE = ZoneInfo("Asia/Shanghai")  # the settings' default; the application passes the settings' zone


async def classify_directory(
    now: datetime, *, reason: str = "manual", force: bool = False, zone: ZoneInfo = DEFAULT_ZONE
) -> RunSummary:
    """Classify every active entity with the version in force (refused without one).

    Deferred (nothing changes) while a firing is announced and not yet drawn, unless ``force``.
    ``zone``: the local dates of what the overrides it ends tell (``overrides.expire_due``)."""
    found = await in_force()
    if found is None:
        raise RiskError("risk_no_model")
    version, model = found
    if not force and await Firing.filter(status=FiringStatus.ANNOUNCED).exists():
        return RunSummary(version, 0, {}, 0, deferred=True)
    ids, values, current = await entity_matrix(model)
    facts = await derived(model, ids, values, now)
    result = matrix.classify(model, values, facts)
    computed = result.class_names(model)
    banded = np.asarray(model.classes)[result.banded]
    codes = model.codes
    fired_codes = [code for code, _ in result.fired]
    fired = np.stack([mask for _, mask in result.fired], axis=1) if result.fired else np.zeros((len(ids), 0), bool)
    stamp = db.timestamp(now)
    counts = Counter(computed.tolist())

    async with db.transaction() as conn:
        in_force_now = await overrides.in_force_at(now, conn)
        names, overridden = matrix.apply_overrides(ids, computed, {e: o["class"] for e, o in in_force_now.items()})
        changed = [(str(c), int(i)) for c, i, old in zip(names, ids, current) if c != old]

        def assessments():
            for n in range(len(ids)):
                reasons = [[codes[j], float(p)] for j, p in zip(result.top[n], result.points[n]) if j >= 0]
                rules = [fired_codes[m] for m in np.flatnonzero(fired[n])] if fired.shape[1] else []
                override = in_force_now[int(ids[n])] if overridden[n] else None
                yield (
                    int(ids[n]),
                    version,
                    str(names[n]),
                    str(banded[n]),
                    str(computed[n]),
                    db.encode(override),
                    round(float(result.scores[n]), 4),
                    db.encode(reasons),
                    db.encode(rules),
                    stamp,
                )

        await conn.execute_query('DELETE FROM "risk_assessment"')
        await db.bulk_insert(
            "risk_assessment",
            (
                "entity_id",
                "version",
                "risk_class",
                "banded",
                "computed",
                "override",
                "score",
                "reasons",
                "rules",
                "assessed_at",
            ),
            assessments(),
            connection=conn,
            encoded=True,
            batch=BATCH,
        )
        update = db.sql('UPDATE "entity" SET "risk_class" = ? WHERE "id" = ?', connection=conn)
        for start in range(0, len(changed), BATCH):
            await conn.execute_many(update, changed[start : start + BATCH])  # type: ignore[arg-type]
        await RiskRun.create(
            version=version,
            at=now,
            reason=reason,
            counts=dict(counts),
            entities=len(ids),
            overridden=int(overridden.sum()),
            using_db=conn,
        )
        # last: its audit records hold PostgreSQL's audit lock to the commit
        await overrides.expire_due(now, conn, zone)
    return RunSummary(version, len(ids), dict(sorted(counts.items())), len(changed), overridden=int(overridden.sum()))


async def monthly_sweep(now: datetime, zone: ZoneInfo, instance: str = "") -> str | None:
    """The scheduler's monthly reclassification: fire ``risk:YYYY-MM`` (once across instances, claimed
    in the classification's transaction) when a version is in force and no announced draw is
    waiting; while one waits, nothing is claimed and the next sweep tries again. After classifying,
    the class mix is measured against the one the version was approved with (``services.risk.drift``):
    beyond the model's tolerance the coordinators are alerted and a retrain is proposed."""
    if await in_force() is None or not await IndicatorValue.exists():  # no values: every firm would score alike
        return None
    if await Firing.filter(status=FiringStatus.ANNOUNCED).exists():
        return None
    local = now.astimezone(zone)
    key = f"risk:{local:%Y-%m}"
    start = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)

    async def work() -> str:
        summary = await classify_directory(now, reason="monthly", force=True, zone=zone)
        from services.risk import drift  # lazy: drift → train → this module (a retrain reads the directory)

        return f"classified:{summary.entities}:{await drift.check(now, zone)}"

    outcome = await fires.run_once(key, "risk", start, work, now=now, instance=instance)
    return None if outcome is None else key


async def before_announce(now: datetime, zone: ZoneInfo = DEFAULT_ZONE) -> RunSummary | None:
    """Called by the scheduler just before an announce: the classes in force are then this
    draw's (deferred if another announced draw is waiting: its classes stay in force for both)."""
    if await in_force() is None or not await IndicatorValue.exists():  # the imported classes stay
        return None
    return await classify_directory(now, reason="announce", zone=zone)


@dataclass(frozen=True)
class Assessed:
    uscc: str
    name: str
    risk_class: str
    banded: str
    score: float
    reasons: list  # [code, name, points]
    rules: list  # [code, name]
    version: str
    assessed_on: str  # local date
    computed: str = ""  # the model's class, when an override fixed risk_class
    override: dict | None = None  # the override that fixed risk_class at this assessment
    open_override: dict | None = None  # the firm's override proposed or in force now (it may not apply yet)


MAX_MATCHES = 5


async def lookup(query: str, zone: ZoneInfo) -> list[Assessed]:
    """Assessments of the entity with this credit code, or of entities whose name contains ``query``."""
    query = query.strip()
    if not query:
        raise RiskError("risk_query_empty")
    if len(query) > 255:
        raise RiskError("risk_query_too_long", max_len=255)
    code = inputs.uscc(query)  # only a code is compared with the credit-code column (18 characters)
    entities = await Entity.filter(uscc=code).limit(1) if code is not None else []
    if not entities:
        entities = await Entity.filter(name__contains=query).order_by("name", "id").limit(MAX_MATCHES + 1)
    if not entities:
        raise RiskError("risk_not_found", query=query)
    if len(entities) > MAX_MATCHES:
        raise RiskError("risk_too_many", query=query, max=MAX_MATCHES)
    rows = {a.entity_id: a for a in await RiskAssessment.filter(entity_id__in=[e.id for e in entities])}
    labels: dict[str, dict[str, str]] = {}
    for version in {a.version for a in rows.values()}:
        model = parse_model((await get(version)).config)
        labels[version] = {i.code: i.name for i in model.indicators} | {r.code: r.name for r in model.rules}
    # who proposed and approved an override the assessment applied, as people read them
    fixed = [a.override for a in rows.values() if a.override]
    whos = await people.whos(o.get(k) or "" for o in fixed for k in ("proposed_by", "approved_by"))
    out = []
    for e in entities:
        a = rows.get(e.id)
        current = await overrides.of_entity(e.id, zone)
        opened = current.context() if current is not None else None
        if a is None:
            out.append(Assessed(e.uscc, e.name, e.risk_class.value, "", 0.0, [], [], "", "", open_override=opened))
            continue
        names = labels[a.version]
        out.append(
            Assessed(
                e.uscc,
                e.name,
                a.risk_class,
                a.banded,
                a.score,
                [[code, names.get(code, code), points] for code, points in a.reasons],
                [[code, names.get(code, code)] for code in a.rules],
                a.version,
                a.assessed_at.astimezone(zone).date().isoformat(),
                a.computed if a.override else "",
                {
                    **a.override,
                    "proposed_by": whos[a.override.get("proposed_by") or ""],
                    "approved_by": whos[a.override.get("approved_by") or ""],
                }
                if a.override
                else None,
                opened,
            )
        )
    return out
