"""The firm's statement of case or objection (陈述申辩 / 异议) to a published result: lodged with
the notice's code by SMS (``异议 <code> <reason>``) or on the firm's result page, within the
notice's period; it reaches the plan's coordinators, who uphold it (the team lead is asked to
correct the result, which then goes through review again) or reject it with reasons sent to the
firm. While it is pending the public page says so. On the audit chain: ``objection.lodged`` /
``.upheld`` / ``.rejected`` (the sender's number is never put on it)."""

from __future__ import annotations

from datetime import datetime, tzinfo

from core.clock import utc as _utc
from core.db import transaction as _transaction
from domain.onsite import REASON_LIMIT, clean_reason
from domain.refs import Ref, inspection_ref
from domain.surveys import next_allowed_send
from models.directory import Entity
from models.draws import Inspection
from models.messaging import Channel, ChatBinding, RecipientKind, Role
from models.publication import Notice, Objection, ObjectionStatus
from services import audit
from services.alerts import raise_alert
from services.onsite import codes
from services.onsite.results import _team
from services.onsite.shared import SHANGHAI, OnsiteError, inspection_context, pending_or_latest
from services.outbox import Message, enqueue


def _sms(key: str, entity_id: int, address: str, template: str, context: dict, now: datetime, zone: tzinfo) -> Message:
    return Message(
        dedupe_key=key,
        recipient_kind=RecipientKind.ENTITY,
        recipient_id=entity_id,
        template=template,
        context=context,
        channel=Channel.SMS,
        locale="zh-CN",
        not_before=_utc(next_allowed_send(now, zone)),
        address=address,
    )


async def lodge(
    code: str,
    reason: str,
    now: datetime,
    *,
    channel: str,
    sender: str = "",
    uscc: str | None = None,
    client: str = "",
    zone: tzinfo = SHANGHAI,
    sign: str | None = None,
    conn=None,
) -> dict:
    """Record an objection to the result of notice ``code`` (on the web, only on the page of the
    firm it belongs to: ``uscc``, from the visitor's address ``client``). Refused: an unknown code
    (``notice_not_found``) or too many wrong ones (``code_locked``: services.onsite.codes), an
    empty or too long reason, after the period (``objection_late``), one already pending
    (``objection_pending``) — unless it is this very one sent again (a double click, an SMS
    resent), which is answered as lodged and recorded once. Control characters are dropped from
    the reason. An SMS objection is acknowledged to its sender."""
    now = _utc(now)
    reason = clean_reason(reason)
    if uscc is not None:
        found = await codes.on_page(uscc, code, now, client=client, conn=conn)
    else:
        found = await codes.by_sms(code, now, sender=sender, conn=conn)
    async with _transaction(conn) as c:
        notice = await Notice.filter(id=found.id).using_db(c).select_for_update().get()
        insp = await Inspection.get(id=notice.inspection_id).using_db(c)
        entity = await Entity.get(id=insp.entity_id).using_db(c)
        lodged = {"code": notice.code, "entity": entity.name, "uscc": entity.uscc}
        if not reason:
            raise OnsiteError("objection_empty", notice=notice.code)
        if len(reason) > REASON_LIMIT:
            raise OnsiteError("reason_too_long", limit=REASON_LIMIT)
        if now.astimezone(zone).date() > notice.objection_until:
            raise OnsiteError("objection_late", until=notice.objection_until.isoformat())
        pending = await Objection.filter(notice_id=notice.id, status=ObjectionStatus.PENDING).using_db(c).first()
        if pending is not None:
            if pending.reason == reason and pending.channel == channel:
                return {"objection": pending.id, **lodged, "again": True}
            raise OnsiteError("objection_pending", notice=notice.code)
        objection = await Objection.create(
            notice_id=notice.id,
            inspection_id=insp.id,
            channel=channel,
            reply_to=sender if channel == "sms" else "",
            reason=reason,
            received_at=now,
            using_db=c,
        )
        await audit.append(
            f"entity:{entity.id}",
            "objection.lodged",
            f"objection:{objection.id}",
            {"notice": notice.id, "channel": channel, "reason": reason},
            now,
            connection=c,
        )
        context = {
            **await inspection_context(insp, c),
            "objection": objection.id,
            "code": notice.code,
            "reason": reason,
        }
        await raise_alert(
            f"objection:{objection.id}",
            "objection_received.j2",
            context,
            set(context["departments"]),
            now,
            connection=c,
        )
        if channel == "sms" and sender:
            ack = {"sign": sign or "", "code": notice.code, "entity": entity.name}
            await enqueue(
                [_sms(f"objection:{objection.id}:ack", entity.id, sender, "objection_ack.j2", ack, now, zone)],
                now,
                connection=c,
            )
        return {"objection": objection.id, **lodged, "again": False}


def _may_decide(binding: ChatBinding, departments: set[str]) -> bool:
    if binding.role == Role.ADMIN:
        return True
    return binding.role == Role.COORDINATOR and bool(departments & set(binding.departments))


async def objection_on(ref: Ref, conn=None) -> int:
    """The objection the commands mean by an inspection's public reference: the oldest pending one
    (one per notice; two only when a corrected result got a new notice while an objection to the old
    one was still pending: they are decided in the order received, each command taking the next),
    else the latest (answered "already decided"). None at all: ``objection_not_found``."""
    return await pending_or_latest(Objection, ObjectionStatus.PENDING, ref, "objection_not_found", conn)


async def decide(
    binding: ChatBinding,
    objection_id: int,
    upheld: bool,
    decision: str,
    *,
    now: datetime,
    zone: tzinfo = SHANGHAI,
    locale: str = "zh-CN",
    sign: str | None = None,
    conn=None,
) -> tuple[str, dict]:
    """Uphold (the team lead is asked to correct the result through the correction flow, and the
    corrected result is reviewed again) or reject (``decision`` — the reasons — is required and
    sent to the firm). The firm is told either way, by SMS where it objected or to its mobile."""
    now = _utc(now)
    decision = decision.strip()
    if not upheld and not decision:
        raise OnsiteError("objection_reasons_empty")
    if len(decision) > REASON_LIMIT:
        raise OnsiteError("reason_too_long", limit=REASON_LIMIT)
    async with _transaction(conn) as c:
        objection = await Objection.filter(id=objection_id).using_db(c).select_for_update().first()
        if objection is None:
            raise OnsiteError("objection_not_found", ref="")
        insp = await Inspection.get(id=objection.inspection_id).using_db(c)
        context = await inspection_context(insp, c)
        if not _may_decide(binding, set(context["departments"])):
            raise OnsiteError("objection_not_found", ref=inspection_ref(context["draw_ref"], insp.no))
        notice = await Notice.get(id=objection.notice_id).using_db(c)
        shown = {**context, "objection": objection.id, "code": notice.code, "decision": decision or objection.decision}
        if objection.status != ObjectionStatus.PENDING:
            return "already_decided", {**shown, "status": objection.status.value}
        status = ObjectionStatus.UPHELD if upheld else ObjectionStatus.REJECTED
        await (
            Objection.filter(id=objection.id)
            .using_db(c)
            .update(status=status, decision=decision, decided_by_id=binding.id, decided_at=now)
        )
        await audit.append(
            f"binding:{binding.id}",
            f"objection.{status.value}",
            f"objection:{objection.id}",
            {"notice": notice.id, "decision": decision},
            now,
            connection=c,
        )
        entity = await Entity.get(id=insp.entity_id).using_db(c)
        messages = []
        address = objection.reply_to or entity.mobile or ""
        if address:
            told = {
                "sign": sign or "",
                "entity": entity.name,
                "code": notice.code,
                "upheld": upheld,
                "decision": decision,
            }
            messages.append(
                _sms(f"objection:{objection.id}:decided", entity.id, address, "objection_decided.j2", told, now, zone)
            )
        team = await _team(insp.id, c)
        if upheld and team:
            messages.append(
                Message(
                    dedupe_key=f"objection:{objection.id}:lead",
                    recipient_kind=RecipientKind.INSPECTOR,
                    recipient_id=team[0].inspector_id,
                    template="objection_upheld.j2",
                    context={**shown, "reason": objection.reason},
                    locale=locale,
                )
            )
        await enqueue(messages, now, connection=c)
        return status.value, {**shown, "status": status.value}


async def pending_for(inspection_ids: list[int]) -> set[int]:
    """Which of these inspections have an objection pending (the public page says so)."""
    if not inspection_ids:
        return set()
    rows = await Objection.filter(inspection_id__in=inspection_ids, status=ObjectionStatus.PENDING).values_list(
        "inspection_id", flat=True
    )
    return {int(i) for i in rows}
