"""A notice's code as the firm's key: to its printed notice and to objecting in its name.

Guessing is bounded by attempt limits (domain.onsite: :data:`CODE_ATTEMPTS` wrong codes per firm,
:data:`CLIENT_ATTEMPTS` per client address on the web or per SMS sender, per
:data:`ATTEMPT_WINDOW_MINUTES`). Each wrong code is on the audit chain (``notice.code_refused``:
the firm's page it was tried on, the channel, the client address on the web; never the code tried
— it may be a near miss of the real one — and never a sender's number: an SMS sender's wrong
codes are counted from the stored inbound events instead). Once a limit is reached every code,
the right one too, is refused with ``code_locked`` until the window has passed; a firm whose page
is locked by someone else's guessing can still object by SMS reply from its own phone.

A wrong code, a firm without a notice and a firm that does not exist are the same answer
(``notice_not_found``), and on a firm's page the codes are compared in constant time.
"""

from __future__ import annotations

import hmac
from datetime import datetime, timedelta

from core.clock import utc as _utc
from core.db import transaction as _transaction
from domain import inputs
from domain.onsite import ATTEMPT_WINDOW_MINUTES, CLIENT_ATTEMPTS, CODE_ATTEMPTS, notice_code_text
from models.audit import AuditRecord
from models.directory import Entity
from models.messaging import Channel, InboundEvent
from models.publication import Notice
from services import audit
from services.onsite.shared import OnsiteError

REFUSED = "notice.code_refused"
WINDOW = timedelta(minutes=ATTEMPT_WINDOW_MINUTES)
#: The outcomes of an SMS objection that count as a wrong code (handlers/surveys.py returns the code).
SMS_WRONG = ("notice_not_found",)


def _since(now: datetime) -> str:
    return (_utc(now) - WINDOW).isoformat(timespec="microseconds")  # as audit.append writes ``at``


async def _locked(conn, *, entity_id: int | None = None, client: str = "", now: datetime) -> bool:
    refused = AuditRecord.filter(action=REFUSED, at__gte=_since(now)).using_db(conn)
    if entity_id is not None and await refused.filter(subject=f"entity:{entity_id}").count() >= CODE_ATTEMPTS:
        return True
    return bool(client) and await refused.filter(actor=f"web:{client}").count() >= CLIENT_ATTEMPTS


async def on_page(uscc: str, code: str, now: datetime, *, client: str = "", conn=None) -> Notice:
    """The notice of firm ``uscc`` whose code is ``code`` (as typed), for a visitor of its page
    from ``client`` (its address). Refused: ``code_locked`` (too many wrong codes for this firm or
    from this client), ``notice_not_found`` (recorded, so it counts). ``conn``: only to read; a
    refusal is recorded in a transaction of its own, so it stays when the caller's rolls back."""
    credit = inputs.uscc(uscc)  # only a credit code is compared with the column (NUL, 5,000 characters: a 500)
    entity = await Entity.filter(uscc=credit).using_db(conn).first() if credit else None
    if await _locked(conn, entity_id=entity.id if entity else None, client=client, now=now):
        raise OnsiteError("code_locked", minutes=ATTEMPT_WINDOW_MINUTES)
    typed = notice_code_text(code)[:32].encode()
    found = None
    if entity is not None:
        notices = await Notice.filter(inspection__entity_id=entity.id).using_db(conn).order_by("id")
        for notice in notices:  # every one compared, in constant time: no early exit on a match
            if hmac.compare_digest(notice.code.encode(), typed):
                found = notice
    if found is None:
        async with _transaction(None) as c:
            data = {"channel": "web", "client": client}
            subject = f"entity:{entity.id}" if entity else "entity:"
            await audit.append(f"web:{client}"[:64], REFUSED, subject, data, now, connection=c)
        raise OnsiteError("notice_not_found")
    return found


async def by_sms(code: str, now: datetime, *, sender: str, conn) -> Notice:
    """The notice named by ``code`` in an SMS from ``sender``. Refused: ``code_locked`` (the
    sender's wrong codes, counted from its stored replies), ``notice_not_found`` (recorded on the
    caller's transaction: the handler answers the refusal and the event is kept)."""
    if sender:
        wrong = await (
            InboundEvent.filter(
                channel=Channel.SMS, sender=sender, outcome__in=SMS_WRONG, received_at__gte=_utc(now) - WINDOW
            )
            .using_db(conn)
            .count()
        )
        if wrong >= CLIENT_ATTEMPTS:
            raise OnsiteError("code_locked", minutes=ATTEMPT_WINDOW_MINUTES)
    found = await Notice.filter(code=notice_code_text(code)[:32]).using_db(conn).first()
    if found is None:
        await audit.append("sms", REFUSED, "entity:", {"channel": "sms"}, now, connection=conn)
        raise OnsiteError("notice_not_found")
    return found
