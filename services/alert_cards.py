"""The cards of a request sent as an alert, once it no longer waits for anyone.

A request that any one of several coordinators decides — a result to review (``review:<id>``), a
correction to approve (``correction:<id>``) — reaches them through its alert: one message each,
keyed ``alert:<alert>:<binding>``, with the buttons that decide it. Whoever decides it (a button,
a typed command) or whatever closes it, every such card already delivered is replaced by what
became of the request, without buttons — an edit of that message (``edit_of``), the way a press
replaces the message it is on. On Telegram the message is edited in place; on WeCom a card can be
updated only with the response code of a press on it, so the other members get the text as a new
message and their card keeps its buttons (a press on it is answered "already decided"). A card
not yet delivered is left alone: it arrives as it was, and a press is answered the same way.
"""

from __future__ import annotations

from datetime import datetime

from models.alerts import Alert
from models.messaging import REACHED, Outbox, RecipientKind
from services.outbox import Message, enqueue
from services.people import who

#: The requests decided this way: the alert's key prefix, the message that asks (with its
#: buttons) and the one that replaces it.
REVIEW = ("review", "review_requested.j2", "review_closed.j2")
CORRECTION = ("correction", "correction_requested.j2", "correction_closed.j2")


async def close_cards(
    kind: tuple[str, str, str], row_id: int, status: str, actor: str | None, now: datetime, conn
) -> int:
    """Replace the delivered cards of the request ``<kind>:<row_id>`` by its outcome ``status``
    (``approved``, ``returned``, ``rejected``, ``closed``) decided by ``actor`` (an actor string;
    None when nobody decided it: closed by a newer result). Returns the edits queued."""
    prefix, asking, closed = kind
    alert = await Alert.filter(key=f"{prefix}:{row_id}").using_db(conn).values_list("id", flat=True)
    if not alert:
        return 0
    cards = await (
        Outbox.filter(dedupe_key__startswith=f"alert:{alert[0]}:", template=asking, status__in=REACHED)
        .using_db(conn)
        .order_by("id")
    )
    if not cards:
        return 0
    by = await who(actor, conn) if actor else None
    await enqueue(
        [
            Message(
                dedupe_key=f"{card.dedupe_key}:closed",
                recipient_kind=RecipientKind(card.recipient_kind),
                recipient_id=card.recipient_id,
                template=closed,
                context={
                    **{k: v for k, v in (card.context or {}).items() if k not in ("keyboard", "buttons")},
                    "status": status,
                    "by": by,
                    "edit_of": card.dedupe_key,
                },
                channel=card.channel,
                locale=card.locale,
                priority=-1,
            )
            for card in cards
        ],
        now,
        connection=conn,
    )
    return len(cards)
