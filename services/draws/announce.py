"""Announce a firing of a plan: its secret, kept apart, and the public commitment to it.

:func:`announce` makes a fresh 32-byte secret (OS CSPRNG), keeps it in its own table and
publishes ``hex(SHA-256(secret))``. A *slot* (a plan's firing for a given time) has exactly one
commitment: announcing it again is refused with the existing one named (``(plan, fire_at)`` is
unique in the table), and a time already past is refused. :func:`withdraw` withdraws an
announced firing with a public reason, on the audit chain; its slot is never announced again.
:func:`pending_firing` and :func:`pending_firings` find the firings announced and not yet drawn.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from core.clock import Clock, utc
from core.clock import local_minute as _local
from domain import draw as engine
from models.draws import Firing, FiringSecret, FiringStatus
from services import audit
from services.draws import fixed
from services.draws.beacon import NO_BEACON, BeaconConfig, plan_for
from services.draws.common import DrawError, find_plan
from services.draws.common import pending_firing as pending_firing  # re-exported: callers find it here
from services.plans import spec_of

MAX_REASON = 500
CLI_ACTOR = "cli"  # the operator at the command line, as the audit chain names them
SYSTEM_ACTOR = "system"  # the scheduler


@dataclass(frozen=True)
class Announced:
    draw_ref: str
    plan_code: str
    fire_at: datetime
    commitment: str
    beacon_plan: dict | None = None
    pool_digest: str | None = None  # v2: H(public pool.tsv) of the pool fixed now, published


def _slot_taken(firing: Firing, zone: ZoneInfo) -> DrawError:
    return DrawError(
        "slot_taken",
        draw_ref=firing.draw_ref,
        fire_at=_local(firing.fire_at, zone),
        commitment=firing.commitment,
        status=firing.status.value,
        reason=firing.withdrawn_reason,
    )


async def announce(
    plan_code: str,
    fire_at: datetime | None,
    *,
    clock: Clock,
    zone: ZoneInfo,
    actor: str = SYSTEM_ACTOR,
    defer_audit: bool = False,
    beacon: BeaconConfig = NO_BEACON,
    beacon_sources: Sequence[str] = (),
) -> Announced:
    """Announce a firing of a plan: generate its secret and publish the commitment.

    The draw_ref is ``<plan code>/<local date of fire_at>`` (``.2``, ``.3``… when that day
    already has one); it is unique for ever. The slot ``(plan, fire_at)`` takes one commitment
    only (``slot_taken`` names the one it has, withdrawn or not); ``fire_at`` in the past is
    refused (``at_in_past``). Every announcement goes on the audit chain, as ``actor``'s; with
    ``defer_audit`` the caller appends :func:`announced_record` itself (an ad hoc draw does, at the
    end of its write: an append holds PostgreSQL's audit lock until the transaction commits).
    ``beacon`` (the deployment's) or ``beacon_sources`` (named for this firing) fix the beacon
    published with the commitment (services.draws.beacon.plan_for).
    """
    plan = await find_plan(plan_code)
    spec = spec_of(plan)
    now = clock.now()
    if fire_at is not None and fire_at < now.replace(second=0, microsecond=0):
        raise DrawError("at_in_past", fire_at=_local(fire_at, zone), now=_local(now, zone))
    fire_at = utc(fire_at or now)  # stored and compared in UTC (SQLite compares the text)
    existing = await Firing.filter(plan=plan, fire_at=fire_at).first()
    if existing is not None:
        raise _slot_taken(existing, zone)
    day = fire_at.astimezone(zone).date().isoformat()
    beacon_plan = plan_for(beacon, fire_at, zone, beacon_sources)
    # v2 (every plan stratifies by risk class): the pool and its classes are fixed now, before
    # any beacon exists, and only their digest is published (docs/draw-protocol.md §15.4)
    pool = await fixed.fix_pool(spec, now)
    secret = secrets.token_bytes(32)
    commitment = engine.commitment(secret)
    for n in range(1, 1000):
        draw_ref = f"{plan.code}/{day}" if n == 1 else f"{plan.code}/{day}.{n}"
        if await Firing.filter(draw_ref=draw_ref).exists():
            continue
        try:
            async with in_transaction() as conn:
                firing = await Firing.create(
                    draw_ref=draw_ref,
                    plan=plan,
                    fire_at=fire_at,
                    commitment=commitment,
                    params=spec.to_dict(),
                    status=FiringStatus.ANNOUNCED,
                    announced_at=now,
                    beacon_plan=beacon_plan,
                    pool_digest=pool.pool_digest,
                    using_db=conn,
                )
                await FiringSecret.create(firing=firing, secret=secret, salt_key=pool.salt_key, using_db=conn)
                await fixed.store(firing, pool, conn)
                if not defer_audit:
                    await audit.append(*announced_record(firing, plan.code, actor), now, conn)
        except IntegrityError:  # announced concurrently: the same slot (refused) or the same name (next)
            existing = await Firing.filter(plan=plan, fire_at=fire_at).first()
            if existing is not None:
                raise _slot_taken(existing, zone) from None
            if await Firing.filter(draw_ref=draw_ref).exists():
                continue
            raise
        return Announced(draw_ref, plan.code, fire_at, commitment, beacon_plan, pool.pool_digest)
    raise DrawError("no_free_ref", plan=plan.code, day=day)


def announced_record(firing: Firing, plan_code: str, actor: str) -> tuple[str, str, str, dict]:
    """The ``firing.announced`` audit record's actor, action, subject and data."""
    data = {"plan": plan_code, "fire_at": utc(firing.fire_at).isoformat(), "commitment": firing.commitment}
    if firing.beacon_plan:
        data["beacon"] = firing.beacon_plan
    if firing.pool_digest:
        data["pool_digest"] = firing.pool_digest
    return actor or SYSTEM_ACTOR, "firing.announced", f"draw:{firing.draw_ref}", data


@dataclass(frozen=True)
class Withdrawn:
    draw_ref: str
    plan_code: str
    fire_at: datetime
    commitment: str
    reason: str


async def withdraw(draw_ref: str, reason: str, *, actor: str, clock: Clock) -> Withdrawn:
    """Withdraw an announced firing before its draw: a typed reason (public), on the audit
    chain. The firing stays listed as withdrawn; its slot is never announced again."""
    reason = reason.strip()
    if not reason:
        raise DrawError("reason_required")
    if len(reason) > MAX_REASON:
        raise DrawError("reason_too_long", limit=MAX_REASON)
    now = clock.now()
    async with in_transaction() as conn:
        firing = await Firing.filter(draw_ref=draw_ref).using_db(conn).select_for_update().first()
        if firing is None:
            raise DrawError("draw_ref_not_found", draw_ref=draw_ref)
        if firing.status is not FiringStatus.ANNOUNCED:
            raise DrawError("not_withdrawable", draw_ref=draw_ref, status=firing.status.value)
        await (
            Firing.filter(id=firing.id, status=FiringStatus.ANNOUNCED)
            .using_db(conn)
            .update(status=FiringStatus.WITHDRAWN, withdrawn_at=now, withdrawn_reason=reason)
        )
        code = draw_ref.rsplit("/", 1)[0]  # a plan code has no "/" (domain.plans)
        await audit.append(
            actor,
            "firing.withdrawn",
            f"draw:{draw_ref}",
            {"plan": code, "fire_at": firing.fire_at.isoformat(), "commitment": firing.commitment, "reason": reason},
            now,
            conn,
        )
    return Withdrawn(draw_ref, code, firing.fire_at, firing.commitment, reason)


async def firing_at(plan_code: str, fire_at: datetime) -> Firing | None:
    """The firing announced for this plan's draw at ``fire_at``, if any (withdrawn ones too)."""
    return await Firing.filter(plan__code=plan_code, fire_at=fire_at.astimezone(UTC)).first()


async def firings(plan_code: str) -> list[Firing]:
    plan = await find_plan(plan_code)
    return await Firing.filter(plan=plan).order_by("fire_at", "id")


async def pending_firings(plan_ids: list[int]) -> dict[int, Firing]:
    """Each plan's earliest announced, not yet drawn firing."""
    out: dict[int, Firing] = {}
    for f in await Firing.filter(plan_id__in=plan_ids, status=FiringStatus.ANNOUNCED).order_by("fire_at", "id"):
        out.setdefault(f.plan_id, f)
    return out
