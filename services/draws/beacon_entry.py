"""Beacon values typed in chat, confirmed by a second coordinator's button.

``/beacon DRAW_REF V1 V2 …`` (:func:`propose`): a coordinator of the plan types the results of the
sources named when the firing was announced; every *other* live coordinator of the plan's
departments gets them with Confirm / Decline buttons (outbox rows, in the same transaction). The
first Confirm (:func:`decide`) records them through :func:`services.draws.beacon.enter_values`
— exactly as ``inspectbot beacon enter … --confirmed-by`` — so they become the firing's beacon,
once only. The proposer cannot confirm their own values; a proposer whose binding was revoked
meanwhile cannot have them confirmed; a second press finds the entry decided. Every step is on
the audit chain (``beacon.values_proposed`` / ``beacon.values_declined`` / ``beacon.values_failed``;
the confirmation is ``beacon.values_entered``, by enter_values) and the proposer is told the outcome. The rule itself (who may confirm, first press wins) is
:mod:`services.draws.two_person`'s.

Several proposals may wait for one firing (a typo corrected by proposing again): the first
confirmed wins; confirming another afterwards fails with ``beacon_values_entered``. No sweep
expires them: the firing's own missing-beacon policy (alert, then missed past the grace) bounds
how long they matter.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from tortoise.transactions import in_transaction

from core.clock import Clock
from domain import beacon as beacons
from domain import inputs
from domain.actors import binding_id
from models.draws import BeaconEntry, BeaconEntryStatus, Firing
from services import audit, people
from services.draws.beacon import Entered, enter_values, values_plan
from services.draws.common import DrawError
from services.draws.two_person import Rule, confirmers
from services.scope import Scope

RULE = Rule(
    model=BeaconEntry,
    statuses=BeaconEntryStatus,
    requester="entered_by",
    requester_binding="entered_binding_id",
    key="bcn",
    request_template="beacon_values_request.j2",
    outcome_template="beacon_values_outcome.j2",
    decided_code="beacon_entry_decided",
    named=lambda row: {"draw_ref": row.firing.draw_ref},
)


@dataclass(frozen=True)
class Proposed:
    id: int
    draw_ref: str
    sources: list[str]
    values: list[str]
    asked: int

    def context(self) -> dict:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Decided:
    entry: int
    draw_ref: str
    outcome: str  # "confirmed", "declined"
    entered: Entered | None = None


def split_values(text: str) -> list[str]:
    """The values of ``/beacon REF …``: one per source. Separated by "|" or new lines when the
    text has any (then a value may hold spaces: "7 3 0"), else by white space. Full-width forms
    (a phone's "｜", "３") are read as ASCII."""
    text = inputs.half_width(text)
    if "|" in text or "\n" in text:
        parts = text.replace("\n", "|").split("|")
    else:
        parts = text.split()
    return [p.strip() for p in parts if p.strip()]


async def propose(scope: Scope, draw_ref: str, values: Sequence[str], *, clock: Clock) -> Proposed:
    """Record typed values for ``draw_ref``'s announced sources and ask the plan's other
    coordinators to confirm them. Refused: a firing outside the scope (as missing), no values
    beacon planned, already drawn or entered, values that do not parse or do not match the
    number of sources, nobody else to ask."""
    proposer = binding_id(scope.actor)
    now = clock.now()
    async with in_transaction() as conn:
        firing = await Firing.filter(draw_ref=draw_ref).using_db(conn).prefetch_related("plan").first()
        if firing is None or proposer is None or not scope.covers(firing.plan.departments):
            raise DrawError("draw_ref_not_found", draw_ref=draw_ref)
        plan = values_plan(firing)
        try:  # the values checked now (count, format), not at the confirmation
            _, source = beacons.values_source(plan, values, entered_by=scope.actor, confirmed_by="?")
        except beacons.BeaconError as exc:
            raise DrawError(exc.code, **exc.params) from None
        others = await confirmers(firing.plan.departments or (), proposer, conn)
        if not others:
            raise DrawError("no_other_coordinator", plan=firing.plan.code)
        row = await BeaconEntry.create(
            firing_id=firing.id,
            values=list(source["values"]),
            entered_by=scope.actor,
            entered_binding_id=proposer,
            created_at=now,
            using_db=conn,
        )
        data = {"sources": plan["sources"], "values": row.values, "asked": [f"coordinator:{b.id}" for b in others]}
        await audit.append(scope.actor, "beacon.values_proposed", f"draw:{draw_ref}", data, now, conn)
        context = {
            "entry": row.id,
            "draw_ref": draw_ref,
            "plan": {"code": firing.plan.code, "name": firing.plan.name},
            "sources": plan["sources"],
            "values": row.values,
            "proposer": await people.who(scope.actor, conn),
            "keyboard": ["beacon_decision", row.id],
        }
        await RULE.ask(row.id, others, context, now, conn)
    return Proposed(row.id, draw_ref, list(plan["sources"]), list(row.values), len(others))


async def _tell(row: BeaconEntry, draw_ref: str, outcome: str, now: datetime, conn, **extra) -> None:
    if "by" in extra:  # the decider, as the proposer reads them
        extra["by"] = await people.who(extra["by"], conn)
    context = {"entry": row.id, "draw_ref": draw_ref, "outcome": outcome, "values": row.values, **extra}
    await RULE.tell(row, outcome, context, now, conn)


async def _audit(row: BeaconEntry, action: str, draw_ref: str, actor: str, now: datetime, conn, **data) -> None:
    data = {"entry": row.id, "values": row.values, "entered_by": row.entered_by, **data}
    await audit.append(actor, action, f"draw:{draw_ref}", data, now, conn)


async def decide(scope: Scope, entry_id: int, confirm: bool, *, clock: Clock) -> Decided:
    """Confirm (the values become the firing's beacon) or decline waiting values. Only another
    live coordinator of the plan; nothing is done twice."""
    now = clock.now()
    row = await BeaconEntry.get_or_none(id=entry_id).prefetch_related("firing__plan")
    if row is None or not scope.covers(row.firing.plan.departments):
        raise DrawError("beacon_entry_not_found")  # no number: outside the scope reads as missing
    draw_ref, actor = row.firing.draw_ref, scope.actor

    async def declined(conn) -> None:
        await _audit(row, "beacon.values_declined", draw_ref, actor, now, conn)
        await _tell(row, draw_ref, "declined", now, conn, by=actor)

    async def confirmed(conn) -> Entered:
        # audited by enter_values (beacon.values_entered), as the CLI's entry is
        confirmer = binding_id(actor)
        entered = await enter_values(
            draw_ref, row.values, confirmed_by=confirmer if confirmer is not None else -1,
            entered_by=row.entered_by, clock=clock,
        )  # fmt: skip
        await _tell(row, draw_ref, "confirmed", now, conn, by=actor, beacon=entered.beacon)
        return entered

    async def failed(conn, exc: DrawError) -> None:
        await _audit(row, "beacon.values_failed", draw_ref, actor, now, conn, failure=exc.code)
        await _tell(row, draw_ref, "failed", now, conn, by=actor, error=exc.code, params=exc.params)

    entered = await RULE.decide(
        row,
        actor,
        confirm,
        now,
        departments=row.firing.plan.departments or (),
        confirmed=confirmed,
        declined=declined,
        failed=failed,
    )
    return Decided(row.id, draw_ref, "confirmed", entered) if confirm else Decided(row.id, draw_ref, "declined")
