"""Announce a firing of a plan: its secret, kept apart, and the public commitment to it.

:func:`announce` makes a fresh 32-byte secret (OS CSPRNG), keeps it in its own table and
publishes ``hex(SHA-256(secret))``; :func:`pending_firing` and :func:`pending_firings` find the
firings announced and not yet drawn.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from core.clock import Clock
from domain import draw as engine
from models.draws import Firing, FiringSecret, FiringStatus
from services.draws.common import DrawError, find_plan
from services.plans import spec_of


@dataclass(frozen=True)
class Announced:
    draw_ref: str
    plan_code: str
    fire_at: datetime
    commitment: str


async def announce(plan_code: str, fire_at: datetime | None, *, clock: Clock, zone: ZoneInfo) -> Announced:
    """Announce a firing of a plan: generate its secret and publish the commitment.

    The draw_ref is ``<plan code>/<local date of fire_at>`` (``.2``, ``.3``… when that day
    already has one); it is unique for ever.
    """
    plan = await find_plan(plan_code)
    spec = spec_of(plan)
    now = clock.now()
    fire_at = fire_at or now
    day = fire_at.astimezone(zone).date().isoformat()
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
                    using_db=conn,
                )
                await FiringSecret.create(firing=firing, secret=secret, using_db=conn)
        except IntegrityError:  # announced concurrently under the same name: take the next
            continue
        return Announced(draw_ref, plan.code, fire_at, commitment)
    raise DrawError("no_free_ref", plan=plan.code, day=day)


async def pending_firing(plan_code: str) -> Firing | None:
    """The plan's earliest announced, not yet drawn firing."""
    plan = await find_plan(plan_code)
    return await Firing.filter(plan=plan, status=FiringStatus.ANNOUNCED).order_by("fire_at", "id").first()


async def firings(plan_code: str) -> list[Firing]:
    plan = await find_plan(plan_code)
    return await Firing.filter(plan=plan).order_by("fire_at", "id")


async def pending_firings(plan_ids: list[int]) -> dict[int, Firing]:
    """Each plan's earliest announced, not yet drawn firing."""
    out: dict[int, Firing] = {}
    for f in await Firing.filter(plan_id__in=plan_ids, status=FiringStatus.ANNOUNCED).order_by("fire_at", "id"):
        out.setdefault(f.plan_id, f)
    return out
