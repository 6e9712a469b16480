"""Assignment deadlines (:func:`sweep_deadlines`) and flight reveals (:func:`reveal_due`), called
by the scheduler's ``deadlines`` and ``flight_reveals`` sweeps.

Deadlines: an assignment still ``sent`` at its deadline gets one reminder; still silent
after a second period as long as the first (deadline − sent), the plan's coordinators are
alerted and, when the plan says ``on_silence = "replace"``, the assignment is treated as a
recusal of type "no response" and a replacement is drawn. Those alerts come in bulk (a city
onboarding leaves hundreds unanswered), so they are raised for the coordinators' next digest
(``services.alerts.send_digests``), not a chat message each. Each step is guarded by a
conditional UPDATE on ``reminded_at``/``escalated_at``, so two instances never do it twice.

Flight reveals: at the window's start every team member gets the same message naming the
entity, and the draw is marked revealed (its full bundle becomes public).
"""

from __future__ import annotations

import logging
from datetime import datetime

from tortoise.transactions import in_transaction

from core.clock import Clock
from core.clock import local_minute as _local
from domain.plans import parse_plan
from models.directory import ConflictType
from models.draws import HOLDING_SEAT, Assignment, AssignmentStatus, Draw, Firing
from models.messaging import REACHED, Outbox, OutboxStatus, RecipientKind
from services import assignments, audit, recusals
from services.alerts import raise_alert
from services.draws.write import task_message_key
from services.outbox import Message, enqueue

log = logging.getLogger(__name__)
BATCH = 500


async def remind_due(now: datetime, zone, locale: str) -> int:
    """Remind every assignment whose deadline passed unanswered (once each)."""
    due = await (
        Assignment.filter(status=AssignmentStatus.SENT, deadline__lte=now, reminded_at=None)
        .order_by("id")
        .limit(BATCH)
        .prefetch_related("inspection", "draw__plan")
    )
    done = 0
    for asg in due:
        async with in_transaction() as conn:
            n = (
                await Assignment.filter(id=asg.id, status=AssignmentStatus.SENT, reminded_at=None)
                .using_db(conn)
                .update(reminded_at=now)
            )
            if not n:
                continue
            second = asg.deadline + (asg.deadline - asg.created_at)
            context = {
                "assignment": asg.id,
                "no": asg.inspection.no,
                "draw_ref": asg.draw.draw_ref,
                "plan": asg.draw.plan.name,
                "deadline": _local(second, zone),
                "keyboard": ["assignment_offer", asg.id],
            }
            await enqueue(
                [
                    Message(
                        dedupe_key=f"asg:{asg.id}:reminder",
                        recipient_kind=RecipientKind.INSPECTOR,
                        recipient_id=asg.inspector_id,
                        template="deadline_reminder.j2",
                        context=context,
                        locale=locale,
                    )
                ],
                now,
                connection=conn,
            )
            await audit.append(
                "system",
                "assignment.reminded",
                f"assignment:{asg.id}",
                {"draw": asg.draw.draw_ref, "no": asg.inspection.no},
                now,
                connection=conn,
            )
            done += 1
    return done


async def escalate_due(clock: Clock, zone, locale: str) -> int:
    """Alert (and, if the plan says so, replace) assignments silent after the second period."""
    now = clock.now()
    candidates = await (
        Assignment.filter(
            status=AssignmentStatus.SENT, reminded_at__not_isnull=True, escalated_at=None, deadline__lte=now
        )
        .order_by("id")
        .limit(BATCH)
        .prefetch_related("inspection", "inspector", "draw__plan")
    )
    undelivered = await _undelivered([asg.id for asg in candidates])
    done = 0
    for asg in candidates:
        second = asg.deadline + (asg.deadline - asg.created_at)
        if now < second:
            continue
        firing = await Firing.get(id=asg.draw.firing_id)
        spec = parse_plan(firing.params)
        async with in_transaction() as conn:
            n = (
                await Assignment.filter(id=asg.id, status=AssignmentStatus.SENT, escalated_at=None)
                .using_db(conn)
                .update(escalated_at=now)
            )
            if not n:
                continue
            context = {
                "no": asg.inspection.no,
                "draw_ref": asg.draw.draw_ref,
                "plan": asg.draw.plan.name,
                "name": asg.inspector.name,
                "cert_no": asg.inspector.cert_no,
                "replace": spec.response.on_silence == "replace",
                # the task message never went out: no reminder reached them either
                "undelivered": undelivered.get(asg.id, ""),
            }
            # many at once when inspectors are not yet bound: told in the next digest, not one by one
            await raise_alert(
                f"no_response:{asg.id}",
                "no_response.j2",
                context,
                set(asg.draw.plan.departments),
                now,
                connection=conn,
                digest=True,
            )
            await audit.append(
                "system",
                "assignment.escalated",
                f"assignment:{asg.id}",
                {"draw": asg.draw.draw_ref, "no": asg.inspection.no, "action": spec.response.on_silence},
                now,
                connection=conn,
            )
            if spec.response.on_silence == "replace":
                try:
                    await recusals.recuse(
                        asg.inspector_id,
                        asg.id,
                        ConflictType.NO_RESPONSE,
                        "",
                        clock=clock,
                        zone=zone,
                        locale=locale,
                        actor="system",
                        digest=True,
                    )
                except assignments.AssignmentError as exc:  # e.g. the team is locked: the alert stands
                    log.info("assignment %s not replaced: %s", asg.id, exc.code)
        done += 1
    return done


async def _undelivered(ids: list[int]) -> dict[int, str]:
    """Of these assignments, those whose task message the channel has not taken, and why:
    ``no_address`` (no chat bound), ``unreachable`` (held or dead) or ``queued`` (not sent yet)."""
    keys = {task_message_key(i): i for i in ids}
    rows = await Outbox.filter(dedupe_key__in=list(keys)).values_list("dedupe_key", "status") if keys else []
    out = {}
    for key, status in rows:
        s = getattr(status, "value", status)
        if s not in REACHED:
            out[keys[key]] = _WHY.get(s, "queued")
    return out


_WHY = {
    OutboxStatus.NO_ADDRESS.value: "no_address",
    OutboxStatus.HELD.value: "unreachable",
    OutboxStatus.DEAD.value: "unreachable",
}


async def reveal_due(now: datetime, zone, locale: str) -> int:
    """Reveal flight draws whose window has started: one message, the same for every member."""

    draws = await Draw.filter(flight=True, revealed_at=None, reveal_at__lte=now).prefetch_related("plan")
    for draw in draws:
        async with in_transaction() as conn:
            n = await Draw.filter(id=draw.id, revealed_at=None).using_db(conn).update(revealed_at=now)
            if not n:
                continue
            rows = await (
                Assignment.filter(draw_id=draw.id, status__in=list(HOLDING_SEAT))
                .using_db(conn)
                .values(
                    "id",
                    "inspector_id",
                    "inspection__no",
                    "inspection__entity__name",
                    "inspection__entity__address",
                    "inspection__entity_key",
                )
            )
            teams: dict[int, list[str]] = {}
            for r in await (
                Assignment.filter(draw_id=draw.id, status__in=list(HOLDING_SEAT))
                .using_db(conn)
                .order_by("seat")
                .values("inspection__no", "inspector__name")
            ):
                teams.setdefault(r["inspection__no"], []).append(r["inspector__name"])
            await enqueue(
                [
                    Message(
                        dedupe_key=f"reveal:{draw.id}:{r['id']}",
                        recipient_kind=RecipientKind.INSPECTOR,
                        recipient_id=r["inspector_id"],
                        template="flight_reveal.j2",
                        locale=locale,
                        priority=-1,
                        context={
                            "draw_ref": draw.draw_ref,
                            "plan": draw.plan.name,
                            "no": r["inspection__no"],
                            "entity": {
                                "name": r["inspection__entity__name"],
                                "address": r["inspection__entity__address"],
                                "uscc": r["inspection__entity_key"],
                            },
                            "team": teams.get(r["inspection__no"], []),
                            "window": {"start": _local(draw.window_start, zone), "end": _local(draw.window_end, zone)},
                        },
                    )
                    for r in rows
                ],
                now,
                connection=conn,
            )
            await audit.append(
                "system",
                "draw.revealed",
                f"draw:{draw.id}",
                {"draw": draw.draw_ref, "inspections": draw.inspection_count},
                now,
                connection=conn,
            )
    return len(draws)


async def sweep_deadlines(now: datetime, *, clock: Clock, zone, locale: str) -> int:
    """The scheduler's ``deadlines`` sweep: the reminders due by ``now``, then the escalations
    due by the clock."""
    reminded = await remind_due(now, zone, locale)
    return reminded + await escalate_due(clock, zone, locale)
