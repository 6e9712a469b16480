"""Whether a chat or number can be reached: the mark a channel's permanent refusal sets, what
clears it, and the messages held meanwhile (docs/messaging.md, "Unreachable: held, not thrown
away").

- :func:`mark_unreachable` — a send refused for good (403 blocked, 400 chat not found, an invalid
  number) or a ``my_chat_member`` update showing the bot blocked. One ``unreachable`` row per
  episode; when the address is an inspector's chat their coordinators are told once (in their
  next alert digest: one fan-out can bounce off many chats at once, services.alerts).
- :func:`clear_unreachable` — any inbound event from the address (the inbound path calls it for
  every event a person sent), or ``my_chat_member`` showing the bot a member again. It ends the
  episode (the coordinators told once more, if they were told of its start) and releases the
  held messages.
- :func:`release_held` — the held messages of an address: those still current go out, the others
  are dead-lettered with ``dropped:<reason>`` (``domain.held`` says which is which).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

from tortoise.expressions import Q

from core import db
from core.channel import EventKind
from domain import held
from models.alerts import Alert
from models.directory import Inspector
from models.draws import Assignment, AssignmentStatus, InspectionStatus
from models.messaging import Channel, ChatBinding, Outbox, OutboxStatus, RecipientKind
from models.surveys import Survey, SurveyStatus
from services.alerts import raise_alert

#: Channels whose messages to an unreachable address are held rather than dead-lettered: a
#: Telegram user can unblock the bot or write again; an invalid or unsubscribed number stays so
#: (an SMS survey invitation that is dead-lettered falls back to Telegram, services/surveys/sweep.py).
HOLD_CHANNELS = frozenset({Channel.TELEGRAM.value, Channel.WECOM.value})

#: Events that say nothing about whether the person can be reached: a provider's delivery
#: receipt, and a membership change (its own handler reads it: :func:`membership_changed`).
NOT_FROM_PERSON = frozenset({EventKind.DELIVERY, EventKind.MEMBERSHIP})

#: ``my_chat_member`` statuses of the bot: a member again, or blocked / removed.
REACHABLE_STATUSES = frozenset({"member", "administrator", "creator"})
UNREACHABLE_STATUSES = frozenset({"kicked", "left"})

_LIVE_SURVEY = (SurveyStatus.PENDING, SurveyStatus.SENT)


@dataclass(frozen=True)
class Marked:
    new: bool  # this call started the episode (the address was not marked yet)
    alerted: bool  # the coordinators were told of it (an inspector's chat)


@dataclass(frozen=True)
class Released:
    sent: int  # due again now
    dropped: int  # dead-lettered with ``dropped:<reason>``


_MARK = "INSERT INTO unreachable (channel, address, reason, at, episode) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING id"
_EPISODE = "UPDATE unreachable SET episode = ? WHERE id = ?"
_CLEAR = "DELETE FROM unreachable WHERE channel = ? AND address = ? RETURNING episode"


async def mark_unreachable(channel: str, address: str, reason: str, now: datetime, connection=None) -> Marked:
    """Mark ``address`` unreachable on ``channel`` (nothing if it is already) and, when it is an
    inspector's chat, tell their coordinators once for this episode."""
    async with db.transaction(connection) as conn:
        rows = await conn.execute_query_dict(db.sql(_MARK, connection=conn), [channel, address, reason[:64], now, ""])
        if not rows:
            return Marked(new=False, alerted=False)
        await ChatBinding.filter(channel=channel, address=address).using_db(conn).update(reachable=False)
        who = await _inspectors_at(channel, address, conn)
        if who is None:
            return Marked(new=True, alerted=False)
        episode = secrets.token_hex(8)
        await conn.execute_query(db.sql(_EPISODE, connection=conn), [episode, rows[0]["id"]])
        label, departments = who
        await raise_alert(
            f"unreachable:{episode}",
            "alert_unreachable.j2",
            {"recipient": label, "reason": reason, "via": channel},  # the inspector's channel, not the reader's
            departments,
            now,
            connection=conn,
            digest=True,
        )
        return Marked(new=True, alerted=True)


async def clear_unreachable(channel: str, address: str, now: datetime, connection=None) -> Released | None:
    """End the address's episode, if it has one: the mark is deleted, its bindings are reachable
    again, the coordinators told of its start are told of its end, and the held messages are
    released. None when the address was not marked (one statement: this runs for every event)."""
    async with db.transaction(connection) as conn:
        rows = await conn.execute_query_dict(db.sql(_CLEAR, connection=conn), [channel, address])
        if not rows:
            return None
        await ChatBinding.filter(channel=channel, address=address).using_db(conn).update(reachable=True)
        episode = rows[0]["episode"]
        who = await _inspectors_at(channel, address, conn) if episode else None
        if episode and who is not None:
            label, departments = who
            await raise_alert(
                f"reachable:{episode}",
                "alert_reachable.j2",
                {"recipient": label, "via": channel},
                departments,
                now,
                connection=conn,
                digest=True,
            )
        return await release_held(channel, address, now, conn)


async def membership_changed(channel: str, address: str, status: str, now: datetime, connection=None) -> str:
    """A ``my_chat_member`` update: the bot's status in the chat ``address`` is now ``status``.
    Returns the outcome recorded on the event."""
    if status in UNREACHABLE_STATUSES:
        marked = await mark_unreachable(channel, address, "blocked", now, connection)
        return "blocked" if marked.new else "unchanged"
    if status in REACHABLE_STATUSES:
        released = await clear_unreachable(channel, address, now, connection)
        return "unblocked" if released is not None else "unchanged"
    return "ignored"


async def release_held(channel: str, address: str, now: datetime, connection=None) -> Released:
    """The held messages for ``address`` (sent there as replies, or to a person bound to it):
    those still current are due now, the others dead-lettered with ``dropped:<reason>``."""
    async with db.transaction(connection) as conn:
        bindings = await ChatBinding.filter(channel=channel, address=address, revoked_at=None).using_db(conn)
        which = Q(address=address)
        for b in bindings:
            if b.inspector_id:
                which |= Q(address=None, recipient_kind=RecipientKind.INSPECTOR, recipient_id=b.inspector_id)
            elif b.entity_id:
                which |= Q(address=None, recipient_kind=RecipientKind.ENTITY, recipient_id=b.entity_id)
            else:
                kinds = [RecipientKind.COORDINATOR, RecipientKind.PERSON]
                which |= Q(address=None, recipient_kind__in=kinds, recipient_id=b.id)
        rows = (
            await Outbox.filter(which, status=OutboxStatus.HELD, channel=channel)
            .using_db(conn)
            .values_list("id", "dedupe_key", "created_at")
        )
        if not rows:
            return Released(0, 0)
        subjects = {rid: held.subject(key) for rid, key, _ in rows}
        live = await _live(subjects.values(), conn)
        send: list[int] = []
        dropped: dict[str, list[int]] = {}
        for rid, _, created in rows:
            kind, subject_id = subjects[rid]
            reason = held.drop_reason(kind, (kind, subject_id) in live, now - (db.moment(created) or now))
            if reason:
                dropped.setdefault(reason, []).append(rid)
            else:
                send.append(rid)
        if send:
            await (
                Outbox.filter(id__in=send, status=OutboxStatus.HELD)
                .using_db(conn)
                .update(status=OutboxStatus.PENDING, next_attempt_at=now, last_error="")
            )
        for reason, ids in dropped.items():
            await (
                Outbox.filter(id__in=ids, status=OutboxStatus.HELD)
                .using_db(conn)
                .update(status=OutboxStatus.DEAD, last_error=f"dropped:{reason}")
            )
        return Released(len(send), sum(len(ids) for ids in dropped.values()))


async def _live(subjects, conn) -> set[tuple[str, int]]:
    """Which of the (kind, id) subjects are still open: one query per kind."""
    wanted: dict[str, set[int]] = {}
    for kind, sid in subjects:
        if kind in (held.ASSIGNMENT, held.SURVEY, held.ALERT):
            wanted.setdefault(kind, set()).add(sid)
    live: set[tuple[str, int]] = set()
    if ids := wanted.get(held.ASSIGNMENT):
        for aid, status, inspection in await (
            Assignment.filter(id__in=sorted(ids)).using_db(conn).values_list("id", "status", "inspection__status")
        ):
            status, inspection = getattr(status, "value", status), getattr(inspection, "value", inspection)
            if status == AssignmentStatus.SENT.value or (
                status == AssignmentStatus.ACCEPTED.value and inspection == InspectionStatus.STAFFED.value
            ):
                live.add((held.ASSIGNMENT, aid))
    if ids := wanted.get(held.SURVEY):
        found = (
            await Survey.filter(id__in=sorted(ids), status__in=_LIVE_SURVEY).using_db(conn).values_list("id", flat=True)
        )
        live.update((held.SURVEY, i) for i in found)
    if ids := wanted.get(held.ALERT):
        found = await Alert.filter(id__in=sorted(ids), acknowledged_at=None).using_db(conn).values_list("id", flat=True)
        live.update((held.ALERT, i) for i in found)
    return live


async def _inspectors_at(channel: str, address: str, conn) -> tuple[str, list[str]] | None:
    """The inspectors bound to ``address`` as one label ("name (cert no)") and their departments;
    None when no inspector is."""
    ids = await (
        ChatBinding.filter(channel=channel, address=address, revoked_at=None, inspector_id__not_isnull=True)
        .using_db(conn)
        .values_list("inspector_id", flat=True)
    )
    if not ids:
        return None
    people = await (
        Inspector.filter(id__in=sorted(set(ids)))
        .using_db(conn)
        .order_by("id")
        .values_list("name", "cert_no", "department__code")
    )
    if not people:
        return None
    label = ", ".join(f"{name} ({cert})" for name, cert, _ in people)
    return label, sorted({code for _, _, code in people})
