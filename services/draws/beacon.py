"""The beacon of a scheduled draw: planned at announce time, obtained at draw time.

:class:`BeaconConfig` (built from the settings by the caller) says which source a deployment
uses. :func:`plan_for` is what an announcement fixes and publishes with the commitment (the drand
chain and round, or the sources named in advance). :func:`enter_values` records the values a
coordinator typed for the named sources, confirmed by a second coordinator, on the audit chain.
:func:`resolve` gives the draw its beacon string and draw.json's ``beacon_source``, or refuses
with ``beacon_unavailable``: a planned beacon is never replaced by an empty one
(docs/draw-protocol.md §3.3).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from tortoise.transactions import in_transaction

from core import drand
from core.clock import Clock
from domain import beacon as beacons
from models.draws import Firing, FiringStatus
from models.messaging import ChatBinding, Role
from services import audit
from services.draws.common import DrawError


@dataclass(frozen=True)
class BeaconConfig:
    """A deployment's beacon: ``kind`` "none", "drand" or "values"; the drand chain; the source
    names (``{date}``: the draw's local date) for "values"."""

    kind: str = "none"
    chain: beacons.Chain = beacons.QUICKNET
    sources: tuple[str, ...] = ()

    @classmethod
    def from_settings(cls, settings: Any) -> BeaconConfig:
        sources = tuple(s.strip() for s in settings.beacon_sources.split("|") if s.strip())
        return cls(settings.beacon, settings.chain, sources)


NO_BEACON = BeaconConfig()


def describe(plan: Mapping[str, Any] | None, zone: ZoneInfo, typed: Mapping[str, Any] | None = None) -> dict | None:
    """A planned (or used) beacon as chat shows it: the drand round, its time and whether the chain
    is a test chain; or the named sources and the values entered (``typed``), if any."""
    if not plan:
        return None
    if plan.get("kind") == beacons.KIND_DRAND:
        chain = beacons.Chain.from_dict(plan["chain"])
        at = datetime.fromtimestamp(beacons.round_time(chain, plan["round"]), zone)
        return {
            "kind": "drand",
            "beacon_id": chain.beacon_id,
            "round": plan["round"],
            "at": at.strftime("%Y-%m-%d %H:%M:%S"),
            "test": not chain.public,
        }
    values = (typed or {}).get("values") or plan.get("values") or []
    return {"kind": "values", "sources": list(plan.get("sources", [])), "values": list(values)}


def plan_for(config: BeaconConfig, fire_at: datetime, zone: ZoneInfo, sources: Sequence[str] = ()) -> dict | None:
    """What the announcement of a draw at ``fire_at`` fixes: ``sources`` given (the CLI's
    ``--beacon-source``) name values in advance whatever the deployment's kind."""
    try:
        if sources:
            return beacons.values_plan(sources)
        if config.kind == beacons.KIND_DRAND:
            return beacons.drand_plan(config.chain, fire_at)
        if config.kind == beacons.KIND_VALUES:
            day = fire_at.astimezone(zone).date().isoformat()
            return beacons.values_plan([s.replace("{date}", day) for s in config.sources])
    except beacons.BeaconError as exc:
        raise DrawError(exc.code, **exc.params) from None
    return None


async def coordinator_actor(binding_id: int, departments: Sequence[str]) -> str:
    """``"coordinator:<id>"`` for a live coordinator binding of one of ``departments``; refused
    as ``confirmer_not_coordinator`` otherwise."""
    b = await ChatBinding.get_or_none(id=binding_id, role=Role.COORDINATOR, revoked_at=None)
    if b is None or not set(b.departments or ()) & set(departments):
        raise DrawError("confirmer_not_coordinator", confirmer=str(binding_id))
    return f"coordinator:{b.id}"


@dataclass(frozen=True)
class Entered:
    draw_ref: str
    sources: tuple[str, ...]
    values: tuple[str, ...]
    beacon: str
    confirmed_by: str


def values_plan(firing: Firing) -> dict:
    """The firing's planned values beacon, while it still takes the values: refused when it has no
    values beacon planned, is no longer announced (drawn, missed) or has its values already."""
    plan = firing.beacon_plan
    if not plan or plan.get("kind") != beacons.KIND_VALUES:
        raise DrawError("beacon_not_values", draw_ref=firing.draw_ref)
    if firing.status is not FiringStatus.ANNOUNCED:
        raise DrawError("beacon_values_too_late", draw_ref=firing.draw_ref, status=firing.status.value)
    if firing.beacon_values is not None:
        raise DrawError(
            "beacon_values_entered", draw_ref=firing.draw_ref, values=" / ".join(firing.beacon_values["values"])
        )
    return plan


async def enter_values(
    draw_ref: str, values: Sequence[str], *, confirmed_by: int, entered_by: str, clock: Clock
) -> Entered:
    """Record the values typed for a firing's announced sources (in the announced order), with
    the second coordinator who confirms them; once only, before the draw, on the audit chain."""
    async with in_transaction() as conn:
        firing = await Firing.filter(draw_ref=draw_ref).using_db(conn).select_for_update().first()
        if firing is None:
            raise DrawError("draw_ref_not_found", draw_ref=draw_ref)
        await firing.fetch_related("plan", using_db=conn)
        plan = values_plan(firing)
        confirmer = await coordinator_actor(confirmed_by, firing.plan.departments)
        try:
            beacon, source = beacons.values_source(plan, values, entered_by=entered_by, confirmed_by=confirmer)
        except beacons.BeaconError as exc:
            raise DrawError(exc.code, **exc.params) from None
        now = clock.now()
        record = {"values": source["values"], "entered_by": entered_by, "confirmed_by": confirmer}
        await Firing.filter(id=firing.id).using_db(conn).update(beacon_values=record)
        await audit.append(
            entered_by,
            "beacon.values_entered",
            f"draw:{draw_ref}",
            {"sources": plan["sources"], **record, "beacon": beacon},
            now,
            conn,
        )
    return Entered(draw_ref, tuple(plan["sources"]), tuple(source["values"]), beacon, confirmer)


def _unavailable(firing: Firing, plan: Mapping[str, Any]) -> DrawError:
    if plan["kind"] == beacons.KIND_DRAND:
        return DrawError("beacon_unavailable", draw_ref=firing.draw_ref, kind="drand", round=plan["round"], sources="")
    return DrawError(
        "beacon_unavailable", draw_ref=firing.draw_ref, kind="values", round="", sources=" | ".join(plan["sources"])
    )


async def resolve(firing: Firing, fetch: drand.Fetch | None) -> tuple[str, dict | None]:
    """The draw's beacon string and ``beacon_source``: ``("", None)`` when no beacon was planned;
    refused as ``beacon_unavailable`` while the planned round (or the typed values) is missing."""
    plan = firing.beacon_plan
    if not plan:
        return "", None
    if plan["kind"] == beacons.KIND_VALUES:
        typed = firing.beacon_values
        if typed is None:
            raise _unavailable(firing, plan)
        beacon, source = beacons.values_source(
            plan, typed["values"], entered_by=typed["entered_by"], confirmed_by=typed["confirmed_by"]
        )
        return beacon, source
    chain = beacons.Chain.from_dict(plan["chain"])
    signature = await fetch(chain, plan["round"]) if fetch is not None else None
    if signature is None or not drand.verify_signature(chain.public_key, plan["round"], signature):
        raise _unavailable(firing, plan)
    return beacons.drand_source(plan, signature)
