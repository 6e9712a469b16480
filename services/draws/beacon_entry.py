"""Beacon values typed in chat, confirmed by a second coordinator's button.

``/beacon DRAW_REF V1 V2 …`` (:func:`propose`): a coordinator of the plan types the results of the
sources named when the firing was announced; every *other* live coordinator of the plan's
departments gets them with Confirm / Decline buttons (outbox rows, in the same transaction). The
first Confirm (:func:`decide`) records them through :func:`services.draws.beacon.enter_values`
— exactly as ``inspectbot beacon enter … --confirmed-by`` — so they become the firing's beacon,
once only. The proposer cannot confirm their own values; a proposer whose binding was revoked
meanwhile cannot have them confirmed; a second press finds the entry decided. Every step is on
the audit chain (``beacon.values_proposed`` / ``beacon.values_declined`` / ``beacon.values_failed``;
the confirmation is ``beacon.values_entered``, by enter_values) and the proposer is told the outcome.

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
from models.draws import BeaconEntry, BeaconEntryStatus, Firing, FiringStatus
from models.messaging import Channel, ChatBinding, RecipientKind, Role
from services import audit
from services.draws.beacon import Entered, enter_values
from services.draws.common import DrawError
from services.outbox import Message, enqueue
from services.scope import Scope

REQUEST_TEMPLATE = "beacon_values_request.j2"  # to the other coordinators, with the buttons
OUTCOME_TEMPLATE = "beacon_values_outcome.j2"  # to the proposer


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


def _binding_id(actor: str) -> int | None:
    kind, _, digits = actor.partition(":")
    return int(digits) if kind in ("coordinator", "admin") and digits.isdigit() else None


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


async def _live(binding_id: int | None, departments: Sequence[str], conn) -> ChatBinding | None:
    b = await ChatBinding.get_or_none(id=binding_id, role=Role.COORDINATOR, revoked_at__isnull=True).using_db(conn)
    return b if b is not None and set(b.departments or ()) & set(departments) else None


async def propose(scope: Scope, draw_ref: str, values: Sequence[str], *, clock: Clock) -> Proposed:
    """Record typed values for ``draw_ref``'s announced sources and ask the plan's other
    coordinators to confirm them. Refused: a firing outside the scope (as missing), no values
    beacon planned, already drawn or entered, values that do not parse or do not match the
    number of sources, nobody else to ask."""
    proposer = _binding_id(scope.actor)
    now = clock.now()
    async with in_transaction() as conn:
        firing = await Firing.filter(draw_ref=draw_ref).using_db(conn).prefetch_related("plan").first()
        if firing is None or proposer is None or not scope.covers(firing.plan.departments):
            raise DrawError("draw_ref_not_found", draw_ref=draw_ref)
        plan = firing.beacon_plan
        if not plan or plan.get("kind") != beacons.KIND_VALUES:
            raise DrawError("beacon_not_values", draw_ref=draw_ref)
        if firing.status is not FiringStatus.ANNOUNCED:
            raise DrawError("beacon_values_too_late", draw_ref=draw_ref, status=firing.status.value)
        if firing.beacon_values is not None:
            raise DrawError(
                "beacon_values_entered", draw_ref=draw_ref, values=" / ".join(firing.beacon_values["values"])
            )
        try:  # the values checked now (count, format), not at the confirmation
            _, source = beacons.values_source(plan, values, entered_by=scope.actor, confirmed_by="?")
        except beacons.BeaconError as exc:
            raise DrawError(exc.code, **exc.params) from None
        found = await ChatBinding.filter(role=Role.COORDINATOR, revoked_at__isnull=True).using_db(conn).order_by("id")
        wanted = set(firing.plan.departments or ())
        others = [b for b in found if b.id != proposer and wanted & set(b.departments or ())]
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
        me = await ChatBinding.get_or_none(id=proposer).using_db(conn)
        context = {
            "entry": row.id,
            "draw_ref": draw_ref,
            "plan": {"code": firing.plan.code, "name": firing.plan.name},
            "sources": plan["sources"],
            "values": row.values,
            "proposer": me.display_name if me is not None else scope.actor,
            "entered_by": scope.actor,
            "keyboard": ["beacon_decision", row.id],
        }
        await enqueue(
            [
                Message(
                    dedupe_key=f"bcn:{row.id}:ask:{b.id}",
                    recipient_kind=RecipientKind.PERSON,
                    recipient_id=b.id,
                    template=REQUEST_TEMPLATE,
                    context=context,
                    channel=Channel(b.channel),
                    locale=b.locale,
                    priority=-1,
                )
                for b in others
            ],
            now,
            connection=conn,
        )
    return Proposed(row.id, draw_ref, list(plan["sources"]), list(row.values), len(others))


async def _tell(row: BeaconEntry, draw_ref: str, outcome: str, now: datetime, conn, **extra) -> None:
    proposer = await ChatBinding.get_or_none(id=row.entered_binding_id, revoked_at__isnull=True).using_db(conn)
    if proposer is None:
        return
    await enqueue(
        [
            Message(
                dedupe_key=f"bcn:{row.id}:{outcome}",
                recipient_kind=RecipientKind.PERSON,
                recipient_id=proposer.id,
                template=OUTCOME_TEMPLATE,
                context={"entry": row.id, "draw_ref": draw_ref, "outcome": outcome, "values": row.values, **extra},
                channel=Channel(proposer.channel),
                locale=proposer.locale,
                priority=-1,
            )
        ],
        now,
        connection=conn,
    )


async def _close(row: BeaconEntry, status: BeaconEntryStatus, actor: str, now: datetime, conn, **data) -> bool:
    n = await (
        BeaconEntry.filter(id=row.id, status=BeaconEntryStatus.PENDING)
        .using_db(conn)
        .update(status=status, decided_by=actor, decided_at=now, **data)
    )
    return bool(n)


async def decide(scope: Scope, entry_id: int, confirm: bool, *, clock: Clock) -> Decided:
    """Confirm (the values become the firing's beacon) or decline waiting values. Only another
    live coordinator of the plan; nothing is done twice."""
    now = clock.now()
    row = await BeaconEntry.get_or_none(id=entry_id).prefetch_related("firing__plan")
    if row is None or not scope.covers(row.firing.plan.departments):
        raise DrawError("beacon_entry_not_found")  # no number: outside the scope reads as missing
    draw_ref, departments = row.firing.draw_ref, row.firing.plan.departments or ()
    if row.status is not BeaconEntryStatus.PENDING:
        raise DrawError("beacon_entry_decided", draw_ref=draw_ref, status=row.status.value, by=row.decided_by or "")
    if scope.actor == row.entered_by:
        raise DrawError("confirmer_is_requester", confirmer=scope.actor)
    if not confirm:
        async with in_transaction() as conn:
            if not await _close(row, BeaconEntryStatus.DECLINED, scope.actor, now, conn):
                raise DrawError("beacon_entry_decided", draw_ref=draw_ref, status="", by="")
            data = {"entry": row.id, "values": row.values, "entered_by": row.entered_by}
            await audit.append(scope.actor, "beacon.values_declined", f"draw:{draw_ref}", data, now, conn)
            await _tell(row, draw_ref, "declined", now, conn, by=scope.actor)
        return Decided(row.id, draw_ref, "declined")
    confirmer = _binding_id(scope.actor)
    try:
        async with in_transaction() as conn:
            if not await _close(row, BeaconEntryStatus.CONFIRMED, scope.actor, now, conn):
                raise DrawError("beacon_entry_decided", draw_ref=draw_ref, status="", by="")
            if await _live(row.entered_binding_id, departments, conn) is None:
                raise DrawError("requester_revoked", requester=row.entered_by)
            entered = await enter_values(
                draw_ref, row.values, confirmed_by=confirmer if confirmer is not None else -1,
                entered_by=row.entered_by, clock=clock,
            )  # fmt: skip
            await _tell(row, draw_ref, "confirmed", now, conn, by=scope.actor, beacon=entered.beacon)
    except DrawError as exc:
        if exc.code == "beacon_entry_decided":
            fresh = await BeaconEntry.get(id=row.id)
            raise DrawError(
                "beacon_entry_decided", draw_ref=draw_ref, status=fresh.status.value, by=fresh.decided_by or ""
            ) from None
        if exc.code in ("confirmer_not_coordinator", "confirmer_is_requester"):
            raise  # this presser may not confirm; the values still wait for someone who may
        async with in_transaction() as conn:  # refused: the entry ends, saying why
            if await _close(row, BeaconEntryStatus.FAILED, scope.actor, now, conn, failure=exc.code[:64]):
                data = {"entry": row.id, "values": row.values, "entered_by": row.entered_by, "failure": exc.code}
                await audit.append(scope.actor, "beacon.values_failed", f"draw:{draw_ref}", data, now, conn)
                await _tell(row, draw_ref, "failed", now, conn, by=scope.actor, error=exc.code, params=exc.params)
        raise
    return Decided(row.id, draw_ref, "confirmed", entered)
