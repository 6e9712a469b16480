"""The 【待审核】 cards of a review, once it no longer waits for anyone.

A review asks the plan's coordinators through its alert (``review:<id>``): one message each, keyed
``alert:<alert>:<binding>``, with the 「审核通过」 button. Whoever decides it — the button, a typed
``/approve`` or ``/return`` — or a newer result that closes it, the cards in the other chats (and
the decider's own) are replaced by what became of the review, without the button
(``review_closed.j2``), the way a press replaces the message it is on.
"""

from __future__ import annotations

from datetime import datetime

from models.alerts import Alert
from models.messaging import REACHED, Outbox, RecipientKind
from models.publication import ReviewStatus
from services.outbox import Message, enqueue
from services.people import who

#: The messages that ask for a review with its 「审核通过」 button (``keyboard: review_decision``).
REVIEW_CARDS = ("review_requested.j2",)


async def close_review_cards(review_id: int, status: ReviewStatus, actor: str | None, now: datetime, conn) -> int:
    """A review decided (``/approve``, ``/return``, the button) or closed no longer asks anyone:
    each 【待审核】 card its alert put in a coordinator's chat (``alert:<alert>:<binding>``) is
    replaced by what became of it, without the button — an edit of that message (``edit_of``), as a
    press replaces the message it is on (Telegram: edited in place; WeCom: the card updated when
    the member's press left a response code, else the text comes as a message). Cards not yet
    delivered are left: a press on one is answered "already decided". ``actor``: who decided
    (an actor string), None when it was closed by a newer result. Returns the edits queued."""
    alert = await Alert.filter(key=f"review:{review_id}").using_db(conn).values_list("id", flat=True)
    if not alert:
        return 0
    cards = await (
        Outbox.filter(dedupe_key__startswith=f"alert:{alert[0]}:", template__in=REVIEW_CARDS, status__in=REACHED)
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
                template="review_closed.j2",
                context={
                    **{k: v for k, v in (card.context or {}).items() if k not in ("keyboard", "buttons")},
                    "status": status.value,
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
