"""The notice of the result to the firm (结果告知书): made when a result is published
(services.onsite.review), sent as a short SMS through the outbox by the survey's rules — the
sender signature, never in quiet hours, never to a firm that opted out — naming the department,
the date, the outcome and the link to the firm's result page; and printable as a PDF from that
page with the notice's code (:func:`notice_document` gives its content, core.pdf draws it).
On the audit chain: ``notice.issued``."""

from __future__ import annotations

import secrets
from datetime import datetime, tzinfo

from tortoise.expressions import Q

from core.clock import utc as _utc
from domain.onsite import NOTICE_CODE_CHARS, NOTICE_CODE_LEN, credit_outcome
from domain.plans import PlanSpec
from domain.surveys import next_allowed_send
from models.directory import Department, Entity, Item
from models.draws import Draw, Inspection
from models.messaging import Channel, RecipientKind
from models.onsite import Finding, Result
from models.plans import Plan
from models.publication import Notice, NoticeDelivery, Publication
from models.surveys import SurveyOptOut
from services import audit
from services.onsite import codes, followup
from services.onsite.shared import SHANGHAI
from services.outbox import Message, enqueue
from services.plans import add_working_days

CODE_ALPHABET = NOTICE_CODE_CHARS  # no 0/O, 1/I: read aloud and typed from paper
CODE_LENGTH = NOTICE_CODE_LEN  # "G" and seven: 32**7 ≈ 3.4e10, with the attempt limits of services.onsite.codes


def new_code() -> str:
    return "G" + "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH - 1))


async def _opted_out(entity: Entity, conn) -> bool:
    q = Q(entity_id=entity.id)
    if entity.mobile:
        q |= Q(mobile=entity.mobile)
    return await SurveyOptOut.filter(q).using_db(conn).exists()


async def _departments(plan: Plan, conn) -> list[str]:
    names = dict(await Department.filter(code__in=list(plan.departments)).using_db(conn).values_list("code", "name"))
    return [names.get(code, code) for code in plan.departments]


async def issue_notice(
    insp: Inspection,
    result: Result,
    spec: PlanSpec,
    now: datetime,
    *,
    zone: tzinfo = SHANGHAI,
    sign: str | None = None,
    base_url: str = "",
    conn,
) -> Notice:
    """The published result's notice and its SMS (``sign``: the SMS signature; None = the plan's
    first department, "" = none, as for surveys). Once per result."""
    found = await Notice.filter(result_id=result.id).using_db(conn).first()
    if found is not None:
        return found
    entity = await Entity.get(id=insp.entity_id).using_db(conn)
    draw = await Draw.get(id=insp.draw_id).using_db(conn)
    plan = await Plan.get(id=draw.plan_id).using_db(conn)
    verdicts = await Finding.filter(result_id=result.id).using_db(conn).values_list("verdict", flat=True)
    outcome = credit_outcome(verdicts)
    today = now.astimezone(zone).date()
    if await _opted_out(entity, conn):
        delivery = NoticeDelivery.OPTED_OUT
    elif not entity.mobile:
        delivery = NoticeDelivery.NO_MOBILE
    else:
        delivery = NoticeDelivery.QUEUED
    taken = True
    while taken:
        code = new_code()
        taken = await Notice.filter(code=code).using_db(conn).exists()
    notice = await Notice.create(
        code=code,
        inspection_id=insp.id,
        result_id=result.id,
        issued_on=today,
        objection_until=add_working_days(today, spec.publication.objection_days),
        rectify_by=add_working_days(today, spec.publication.rectify_days) if outcome == "problems" else None,
        delivery=delivery,
        created_at=now,
        using_db=conn,
    )
    departments = await _departments(plan, conn)
    pub = await Publication.filter(inspection_id=insp.id).using_db(conn).first()
    if delivery == NoticeDelivery.QUEUED:
        context = {
            "sign": sign if sign is not None else (departments[0] if departments else ""),
            "entity": entity.name,
            "departments": departments,
            "date": (pub.ended_on if pub else today).isoformat(),
            "outcome": outcome,
            "code": code,
            "objection_until": notice.objection_until.isoformat(),
            "rectify_by": notice.rectify_by.isoformat() if notice.rectify_by else "",
            "link": f"{base_url.rstrip('/')}/entities/{entity.uscc}",
        }
        await enqueue(
            [
                Message(
                    dedupe_key=f"notice:{notice.id}:sms",
                    recipient_kind=RecipientKind.ENTITY,
                    recipient_id=entity.id,
                    template="notice_sms.j2",
                    context=context,
                    channel=Channel.SMS,
                    locale="zh-CN",
                    not_before=_utc(next_allowed_send(now, zone)),
                    address=entity.mobile,
                )
            ],
            now,
            connection=conn,
        )
    await followup.supersede(insp.id, now, conn)
    if notice.rectify_by is not None:
        await followup.order(notice, now, conn)
    await audit.append(
        "system",
        "notice.issued",
        f"notice:{notice.id}",
        {"result": result.id, "inspection": insp.id, "outcome": outcome, "delivery": delivery.value},
        now,
        connection=conn,
    )
    return notice


async def notice_document(uscc: str, code: str, now: datetime, *, client: str = "") -> dict:
    """What the printed notice shows, for the firm ``uscc`` holding notice ``code``, asked from
    ``client`` (a wrong pair is refused as missing and counts towards the attempt limits: the code
    is the firm's key to its notice; services.onsite.codes)."""
    found = await codes.on_page(uscc, code, now, client=client)
    notice = await Notice.filter(id=found.id).prefetch_related("inspection__entity").get()
    insp = notice.inspection
    draw = await Draw.get(id=insp.draw_id).prefetch_related("plan")
    rows = await Finding.filter(result_id=notice.result_id).order_by("position")
    items = {i.code: i for i in await Item.filter(code__in=[f.item_code for f in rows])}
    pub = await Publication.filter(inspection_id=insp.id).first()
    return {
        "code": notice.code,
        "entity": insp.entity.name,
        "uscc": insp.entity.uscc,
        "address": insp.entity.address or "",
        "departments": await _departments(draw.plan, None),
        "plan": draw.plan.name,
        "draw_ref": draw.draw_ref,
        "date": (pub.ended_on if pub else notice.issued_on).isoformat(),
        "issued_on": notice.issued_on.isoformat(),
        "objection_until": notice.objection_until.isoformat(),
        "rectify_by": notice.rectify_by.isoformat() if notice.rectify_by else "",
        "outcome": credit_outcome([f.verdict for f in rows]),
        "items": [
            {
                "no": f.position + 1,
                "name": items[f.item_code].name if f.item_code in items else f.item_code,
                "basis": items[f.item_code].legal_basis if f.item_code in items else "",
                "verdict": f.verdict.value if f.verdict else "",
            }
            for f in rows
        ],
    }
