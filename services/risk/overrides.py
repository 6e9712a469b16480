"""A regulator's override of the engine's class for one firm (人工认定): proposed by one coordinator,
in force once **another** approves it, ended by withdrawal or its date.

- :func:`propose` (``/riskoverride``, ``inspectbot risk override propose``): the firm by its credit
  code, a class of the model in force, a reason, the last day it applies (at most
  ``domain.risk.override.MAX_MONTHS`` ahead). At most one override proposed or in force per firm
  (checked, and a partial unique index). The other live coordinators of the proposer's departments
  (every department's, for an admin or the CLI) get Approve / Reject buttons.
- :func:`decide`: the two-person rule of :mod:`services.draws.two_person` — the proposer cannot
  approve their own proposal, first press wins, a proposer whose coordinator binding was revoked
  meanwhile is not approved (``failed``), a proposal nobody decided by its last day lapses.
- :func:`withdraw`: one person, with a reason — it returns the firm to the engine's class; the
  proposer and every other coordinator of the override's departments are told.
- :func:`in_force_at` and :func:`expire_due`: in the classification's transaction, the overrides in
  force that it applies, and the end (``expired``) of those whose last day has passed; the class
  changes at that classification only, so never between an announcement and its draw (the
  classification defers then).
- :func:`tell_ending` (the ``risk_override_ends`` sweep): an override in force is told to its
  departments' coordinators and its proposer ``NOTICE_DAYS`` before its end and once it has ended,
  each once (``expire_due`` tells the end if its classification comes first).
- :func:`listing`: the newest ``LIST_LIMIT`` of a coordinator's departments' overrides, and how many
  there are.

Each step is a record in the audit chain (``risk_override_proposed`` / ``approved`` / ``rejected`` /
``failed`` / ``withdrawn`` / ``expired``) in the transaction of the change.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from tortoise.exceptions import IntegrityError
from tortoise.expressions import Q
from tortoise.transactions import in_transaction

from core import db
from domain import inputs
from domain.actors import binding_id
from domain.risk import override as rules
from domain.risk.override import OverrideError
from models.directory import Department, Entity, EntityStatus
from models.messaging import ChatBinding
from models.risk import OPEN_OVERRIDE, OverrideStatus, RiskAssessment, RiskOverride
from services import audit, people
from services.draws.common import DrawError
from services.draws.two_person import Rule, confirmers
from services.outbox import enqueue_to_people
from services.risk.versions import RiskError, in_force
from services.scope import Scope, overlap_sql

RULE = Rule(
    model=RiskOverride,
    statuses=OverrideStatus,
    requester="proposed_by",
    requester_binding="proposer_binding_id",
    key="rov",
    request_template="risk_override_request.j2",
    outcome_template="risk_override_outcome.j2",
    decided_code="risk_override_decided",
    named=lambda row: {"override": row.id},
    expires="ends_at",
)


@dataclass(frozen=True)
class Override:
    """An override as coordinators and the CLI are shown it (local dates and times)."""

    id: int
    uscc: str
    name: str
    risk_class: str
    computed: str  # the engine's class now ("" before the firm was classified)
    reason: str
    valid_until: str
    status: str
    proposed_by: dict[str, Any]  # who, as people read them (services.people; the row keeps the actor)
    proposed_at: str
    decided_by: dict[str, Any] | None
    ended_by: dict[str, Any] | None
    end_reason: str
    asked: int = 0  # coordinators asked to approve (a new proposal)

    def context(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _local(at: datetime | None, zone: ZoneInfo) -> str:
    return "" if at is None else at.astimezone(zone).strftime("%Y-%m-%d %H:%M")


def _actors(row: RiskOverride) -> list[str]:
    return [a for a in (row.proposed_by, row.decided_by, row.ended_by) if a]


async def _shown(row: RiskOverride, zone: ZoneInfo, conn=None, asked: int = 0) -> Override:
    names = await people.whos(_actors(row), conn)
    entity = await Entity.get(id=row.entity_id).using_db(conn)
    assessed = await RiskAssessment.get_or_none(entity_id=row.entity_id).using_db(conn)
    return _override(row, entity, assessed, names, zone, asked)


async def _shown_all(rows: list[RiskOverride], zone: ZoneInfo) -> list[Override]:
    """:func:`_shown` of a list's rows, with their firms, classes and people looked up at once."""
    entity_ids = {r.entity_id for r in rows}
    entities = {e.id: e for e in await Entity.filter(id__in=entity_ids)}
    assessed = {a.entity_id: a for a in await RiskAssessment.filter(entity_id__in=entity_ids)}
    names = await people.whos(a for r in rows for a in _actors(r))
    return [_override(r, entities[r.entity_id], assessed.get(r.entity_id), names, zone) for r in rows]


def _override(
    row: RiskOverride,
    entity: Entity,
    assessed: RiskAssessment | None,
    names: dict[str, dict],
    zone: ZoneInfo,
    asked: int = 0,
) -> Override:
    """``names``: the *who* of its actors (``people.whos``)."""
    computed = (assessed.computed or assessed.risk_class) if assessed is not None else ""
    return Override(
        row.id,
        entity.uscc,
        entity.name,
        row.risk_class,
        computed,
        row.reason,
        row.valid_until.isoformat(),
        row.status.value,
        names[row.proposed_by],
        _local(row.proposed_at, zone),
        names[row.decided_by] if row.decided_by else None,
        names[row.ended_by] if row.ended_by else None,
        row.end_reason,
        asked,
    )


def _refused(exc: OverrideError) -> RiskError:
    return RiskError(exc.code, **exc.params)


async def propose(
    credit_code: str,
    risk_class: str,
    reason: str,
    until: date,
    *,
    actor: str,
    departments: frozenset[str] | None,
    now: datetime,
    zone: ZoneInfo,
) -> Override:
    """Propose ``risk_class`` for the firm with this credit code until ``until`` (its last local day).

    ``departments``: the proposing coordinator's (whose other coordinators are asked), or None for
    an admin or the CLI (every department's). Refused, nothing written: no version in force, an
    unknown or inactive firm, a class the model does not have, an empty or too long reason, a day
    past or too far ahead, an override already proposed or in force for the firm, and (in chat) no
    other coordinator to approve it."""
    try:
        reason = rules.clean_reason(reason)
    except OverrideError as exc:
        raise _refused(exc) from None
    found = await in_force()
    if found is None:
        raise RiskError("risk_no_model")
    _, model = found
    today = now.astimezone(zone).date()
    try:
        wanted = rules.check(risk_class, model.classes, until, today)
    except OverrideError as exc:
        raise _refused(exc) from None
    code = inputs.uscc(credit_code)
    entity = await Entity.get_or_none(uscc=code) if code is not None else None
    if entity is None:
        raise RiskError("risk_override_entity_unknown", query=credit_code.strip()[:40])
    if entity.status != EntityStatus.ACTIVE:
        raise RiskError("risk_override_entity_inactive", uscc=entity.uscc, name=entity.name)
    binding = binding_id(actor) if actor.startswith("coordinator:") else None
    if departments is None:
        departments = frozenset(await Department.all().values_list("code", flat=True))
    ends_at = datetime.combine(until + timedelta(days=1), time(), tzinfo=zone).astimezone(UTC)
    try:
        async with in_transaction() as conn:
            await Entity.filter(id=entity.id).using_db(conn).select_for_update().first()
            waiting = await RiskOverride.filter(entity_id=entity.id, status__in=OPEN_OVERRIDE).using_db(conn).first()
            if waiting is not None:
                raise RiskError(
                    "risk_override_open", override=waiting.id, uscc=entity.uscc, status=waiting.status.value
                )
            asked = await confirmers(departments, binding, conn)
            if binding is not None and not asked:
                raise RiskError("risk_override_no_approver", uscc=entity.uscc)
            row = await RiskOverride.create(
                entity_id=entity.id,
                risk_class=wanted,
                reason=reason,
                valid_until=until,
                ends_at=ends_at,
                proposed_by=actor,
                proposer_binding_id=binding,
                departments=sorted(departments),
                proposed_at=now,
                using_db=conn,
            )
            shown = await _shown(row, zone, conn, asked=len(asked))
            await audit.append(
                actor,
                "risk_override_proposed",
                f"risk_override:{row.id}",
                {
                    "entity": entity.uscc,
                    "class": wanted,
                    "computed": shown.computed,
                    "reason": reason,
                    "valid_until": until.isoformat(),
                    "asked": [f"coordinator:{b.id}" for b in asked],
                },
                now,
                conn,
            )
            context = {**shown.context(), "keyboard": ["risk_override_decision", row.id]}
            await RULE.ask(row.id, asked, context, now, conn)
    except IntegrityError:  # two proposals at once: the partial unique index lets one in
        raise RiskError("risk_override_open", override=0, uscc=entity.uscc, status="proposed") from None
    return shown


async def _record(row: RiskOverride, action: str, actor: str, now: datetime, conn, **data: Any) -> None:
    entity = await Entity.get(id=row.entity_id).using_db(conn)
    await audit.append(
        actor,
        action,
        f"risk_override:{row.id}",
        {
            "entity": entity.uscc,
            "class": row.risk_class,
            "valid_until": row.valid_until.isoformat(),
            "proposed_by": row.proposed_by,
            **data,
        },
        now,
        conn,
    )


async def _tell(row: RiskOverride, outcome: str, now: datetime, zone: ZoneInfo, conn, **extra: Any) -> None:
    if "by" in extra:  # the decider, as the proposer reads them
        extra["by"] = await people.who(extra["by"], conn)
    shown = await _shown(row, zone, conn)
    await RULE.tell(row, outcome, {**shown.context(), "outcome": outcome, **extra}, now, conn)


async def _row_in_scope(override_id: int, departments: frozenset[str] | None) -> RiskOverride:
    if not 0 < override_id < 2**63:  # a number no row can have (nor SQLite's or PostgreSQL's integers hold)
        raise RiskError("risk_override_unknown", override=override_id)
    row = await RiskOverride.get_or_none(id=override_id)
    if row is None or (departments is not None and not set(departments) & set(row.departments or ())):
        raise RiskError("risk_override_unknown", override=override_id)  # outside the scope reads as missing
    return row


async def decide(
    override_id: int,
    approve: bool,
    *,
    actor: str,
    departments: frozenset[str] | None,
    now: datetime,
    zone: ZoneInfo,
) -> Override:
    """Approve (it applies from the next classification) or reject a proposal, by someone other
    than its proposer. ``departments``: the deciding coordinator's (a proposal outside them reads as
    unknown), or None for an admin or the CLI. The two-person rule's refusals are raised as its
    ``DrawError`` codes (``confirmer_is_requester``, ``requester_revoked``, ``risk_override_decided``)."""
    row = await _row_in_scope(override_id, departments)

    async def approved(conn) -> None:
        await _record(row, "risk_override_approved", actor, now, conn, reason=row.reason)
        await _tell(row, "approved", now, zone, conn, by=actor)

    async def rejected(conn) -> None:
        await _record(row, "risk_override_rejected", actor, now, conn, reason=row.reason)
        await _tell(row, "rejected", now, zone, conn, by=actor)

    async def failed(conn, exc: DrawError) -> None:
        await _record(row, "risk_override_failed", actor, now, conn, failure=exc.code[:64])
        await _tell(row, "failed", now, zone, conn, by=actor, error=exc.code)

    async def expired(conn) -> None:
        await _record(row, "risk_override_expired", "system", now, conn, status="proposed")
        await _tell(row, "expired", now, zone, conn)

    await RULE.decide(
        row,
        actor,
        approve,
        now,
        departments=row.departments or (),
        confirmed=approved,
        declined=rejected,
        failed=failed,
        expired=expired,
    )
    return await _shown(await RiskOverride.get(id=row.id), zone)


async def withdraw(
    override_id: int, reason: str, *, actor: str, departments: frozenset[str] | None, now: datetime, zone: ZoneInfo
) -> Override:
    """End an override proposed or in force, with a reason, by one person (docs/risk.md: it returns
    the firm to the engine's class at the next classification)."""
    try:
        reason = rules.clean_reason(reason)
    except OverrideError as exc:
        raise _refused(exc) from None
    row = await _row_in_scope(override_id, departments)
    async with in_transaction() as conn:
        n = await (
            RiskOverride.filter(id=row.id, status__in=OPEN_OVERRIDE)
            .using_db(conn)
            .update(status=OverrideStatus.WITHDRAWN, ended_by=actor, ended_at=now, end_reason=reason)
        )
        if not n:
            fresh = await RiskOverride.get(id=row.id).using_db(conn)
            raise RiskError(
                "risk_override_decided",
                override=row.id,
                status=fresh.status.value,
                by=await people.who(fresh.ended_by, conn) if fresh.ended_by else "",
            )
        await _record(row, "risk_override_withdrawn", actor, now, conn, reason=reason, was=row.status.value)
        if actor != row.proposed_by:
            await _tell(row, "withdrawn", now, zone, conn, by=actor, end_reason=reason)
        # One person may withdraw (docs/risk.md), so every other coordinator of its departments sees it:
        # withdrawing an override that raised a firm (E for an investigation) is not done quietly.
        acting = binding_id(actor) if actor.startswith("coordinator:") else None
        others = [
            b
            for b in await confirmers(row.departments or (), acting, conn)
            if b.id != row.proposer_binding_id or actor == row.proposed_by
        ]
        if others:
            shown = await _shown(row, zone, conn)
            context = {**shown.context(), "by": await people.who(actor, conn), "end_reason": reason}
            await enqueue_to_people(
                others, f"rov:{row.id}:withdrawn-told", "risk_override_withdrawn.j2", context, now, connection=conn
            )
        row = await RiskOverride.get(id=row.id).using_db(conn)
        return await _shown(row, zone, conn)


LIST_LIMIT = 200  # the newest shown by /riskoverrides and ``risk override list``; the text says when it cuts


@dataclass(frozen=True)
class Listing:
    """The newest ``items`` of the ``total`` overrides a list asked for."""

    items: list[Override]
    total: int

    @property
    def cut(self) -> bool:
        return self.total > len(self.items)


async def listing(
    zone: ZoneInfo, *, open_only: bool = True, departments: frozenset[str] | None = None, limit: int = LIST_LIMIT
) -> Listing:
    """Overrides proposed or in force (or all), newest first, in ``departments`` if given: the
    newest ``limit`` of them, and how many there are. The departments are part of the query, so
    another department's many overrides never crowd out a coordinator's own."""
    where, params = overlap_sql(Scope(departments or frozenset(), everything=departments is None), "risk_override")
    if open_only:
        where += " AND status IN ({})".format(", ".join(f"'{s}'" for s in OPEN_OVERRIDE))
    client = db.conn()
    total = (await client.execute_query_dict(f"SELECT COUNT(*) AS n FROM risk_override WHERE {where}", params))[0]["n"]
    ids = [
        r["id"]
        for r in await client.execute_query_dict(
            f"SELECT id FROM risk_override WHERE {where} ORDER BY proposed_at DESC, id DESC LIMIT {int(limit)}", params
        )
    ]
    found = {r.id: r for r in await RiskOverride.filter(id__in=ids)}
    return Listing(await _shown_all([found[i] for i in ids], zone), total)


async def of_entity(entity_id: int, zone: ZoneInfo) -> Override | None:
    """The firm's override proposed or in force, if any (what ``/risk`` shows beside its class)."""
    row = await RiskOverride.filter(entity_id=entity_id, status__in=OPEN_OVERRIDE).first()
    return None if row is None else await _shown(row, zone)


async def in_force_at(now: datetime, conn) -> dict[int, dict[str, Any]]:
    """In the classification's transaction: the overrides in force and not past their last day, by
    entity id, as the assessment names them."""
    rows = await RiskOverride.filter(status=OverrideStatus.CONFIRMED, ends_at__gt=now.astimezone(UTC)).using_db(conn)
    return {
        r.entity_id: {
            "id": r.id,
            "class": r.risk_class,
            "reason": r.reason,
            "proposed_by": r.proposed_by,
            "approved_by": r.decided_by or "",
            "until": r.valid_until.isoformat(),
        }
        for r in rows
    }


async def _tell_end(row: RiskOverride, stage: str, now: datetime, zone: ZoneInfo, conn, **extra: Any) -> None:
    """One message to each live coordinator of the override's departments and to its proposer (a
    coordinator still, elsewhere perhaps), keyed ``rov:<id>:<stage>:<binding id>``: ``ending`` (its
    last day is near) or ``ended`` (it has passed)."""
    told = await confirmers(row.departments or (), None, conn)
    if row.proposer_binding_id is not None and all(b.id != row.proposer_binding_id for b in told):
        proposer = await ChatBinding.get_or_none(id=row.proposer_binding_id, revoked_at__isnull=True).using_db(conn)
        if proposer is not None:
            told.append(proposer)
    if not told:
        return
    shown = await _shown(row, zone, conn)
    context = {**shown.context(), "stage": stage, **extra}
    await enqueue_to_people(told, f"rov:{row.id}:{stage}", "risk_override_ending.j2", context, now, connection=conn)


async def _claim_told(row: RiskOverride, stage: str, conn, **still: Any) -> bool:
    """Mark what is told of the override's end (if it is ``still`` so); False when it was told
    already (by another instance, a sweep or the classification) or is no longer so."""
    earlier = ("",) if stage == "ending" else ("", "ending")
    return bool(await RiskOverride.filter(id=row.id, told__in=earlier, **still).using_db(conn).update(told=stage))


async def tell_ending(now: datetime, *, zone: ZoneInfo) -> int:
    """The sweep: an override in force is told to its departments' coordinators and its proposer
    ``rules.NOTICE_DAYS`` days before its end (``ending``: the class then returns to the model's at
    the next classification; to keep it, it is proposed and approved again), and once its last day
    has passed (``ended``; the classification that ends it tells it if it comes first). Each once:
    the row's ``told`` and the outbox keys. Withdrawn, rejected or failed ones are never told here
    (a withdrawal tells its own). Returns how many were told."""
    now = now.astimezone(UTC)  # stored times are compared as UTC (SQLite compares their text)
    due = RiskOverride.filter(status=OverrideStatus.CONFIRMED).filter(
        Q(told="", ends_at__lte=now + timedelta(days=rules.NOTICE_DAYS)) | Q(told="ending", ends_at__lte=now)
    )
    n = 0
    for row in await due.order_by("ends_at", "id"):
        stage = "ended" if row.ends_at <= now else "ending"
        async with in_transaction() as conn:
            if await _claim_told(row, stage, conn, status=OverrideStatus.CONFIRMED):  # not withdrawn meanwhile
                days = max(0, (row.valid_until - now.astimezone(zone).date()).days + 1)  # today included
                await _tell_end(row, stage, now, zone, conn, days_left=days, reclassified=False)
                n += 1
    return n


async def expire_due(now: datetime, conn, zone: ZoneInfo) -> int:
    """In the classification's transaction, last (an audit append holds PostgreSQL's audit lock to the
    commit): end every override past its last day — in force, or a proposal nobody decided — as
    ``expired`` by ``system``, audited. Returns how many.

    Who has not been told is told (``zone``: the texts' local dates): of one in force, its
    departments' coordinators and its proposer, unless the ``tell_ending`` sweep told them already
    (then the firm has the model's class from this classification); of a proposal, its proposer
    (the key a press after its day would use: told once)."""
    now = now.astimezone(UTC)  # stored times are compared as UTC (SQLite compares their text)
    n = 0
    for row in await RiskOverride.filter(status__in=OPEN_OVERRIDE, ends_at__lte=now).using_db(conn).order_by("id"):
        ended = await (
            RiskOverride.filter(id=row.id, status=row.status)
            .using_db(conn)
            .update(status=OverrideStatus.EXPIRED, ended_by="system", ended_at=now)
        )
        if ended:
            if row.status is OverrideStatus.CONFIRMED and await _claim_told(row, "ended", conn):
                await _tell_end(row, "ended", now, zone, conn, days_left=0, reclassified=True)
            elif row.status is OverrideStatus.PENDING:
                await _tell(row, "expired", now, zone, conn)
            await _record(row, "risk_override_expired", "system", now, conn, status=row.status.value)
            n += 1
    return n
