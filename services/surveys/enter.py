"""Entering the survey pool: an inspection's result was submitted, so the draw's sample is
drawn once (with a recorded seed) and, if this inspection is in it, the survey is created and its
first message queued (SMS to the entity's mobile, or a Telegram poll if the entity linked a chat),
never in quiet hours."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from datetime import datetime, timedelta, tzinfo

from tortoise.expressions import Q

from core import db
from core.clock import utc as _utc
from core.db import transaction as _transaction
from core.settings import Settings
from domain.surveys import (
    DEFAULT_SHARES,
    SHANGHAI,
    Candidate,
    Question,
    expires_at,
    make_code,
    reminder_at,
    sample,
    share,
)
from models.directory import Department, Entity
from models.draws import HOLDING_SEAT, Assignment, Draw, Firing, Inspection
from models.messaging import Channel
from models.plans import Plan
from models.surveys import Survey, SurveyOptOut, SurveySample, SurveyStatus
from services.outbox import enqueue
from services.surveys.shared import (
    LATE_WINDOW,
    OPEN,
    SurveyError,
    _allowed,
    _message,
    _poll,
    _poll_sent,
    _telegram_binding,
)


def sign_for(settings: Settings) -> str | None:
    """The ``sign`` for :func:`enter_pool` from the settings: none in the text with Alibaba Cloud
    (its platform prefixes the approved signature), ``SMS_SIGN_NAME`` if set, else None (the
    plan's first department's name)."""
    if settings.sms_provider == "aliyun":
        return ""
    return settings.sms_sign_name or None


def shares_of(spec: Mapping | None) -> dict[str, str]:
    """The plan's survey shares (``[survey] shares = {D = "1", "*" = "1/3"}``, normalised by
    ``domain.plans``: the named classes, then ``"*"``) if it has them, else the default: all of
    class D and E, a third of the rest. ``spec`` is the plan's spec as the firing recorded it."""
    shares = ((spec or {}).get("survey") or {}).get("shares") if isinstance(spec, Mapping) else None
    if not isinstance(shares, Mapping) or not shares:
        return dict(DEFAULT_SHARES)
    for value in shares.values():
        share(value)  # refuses floats and values outside [0, 1]
    return {str(k): str(v) for k, v in shares.items()}


async def _sample_for(draw: Draw, now: datetime, conn) -> SurveySample:
    """The draw's sample, drawn once over all its inspections with a fresh recorded seed."""
    found = await SurveySample.get_or_none(draw_id=draw.id).using_db(conn)
    if found is not None:
        return found
    firing = await Firing.filter(id=draw.firing_id).using_db(conn).first()
    plan = await Plan.filter(id=draw.plan_id).using_db(conn).first()
    shares = shares_of((firing.params if firing else None) or (plan.spec if plan else None))
    pool = await Inspection.filter(draw_id=draw.id).using_db(conn).values_list("no", "stratum")
    seed = secrets.token_bytes(32)
    chosen = sample([Candidate(f"{draw.draw_ref}/{no}", stratum) for no, stratum in pool], shares, seed)
    selected = sorted(int(c.key.rsplit("/", 1)[1]) for c in chosen)
    await db.bulk_insert(
        "survey_sample",
        ("draw_id", "seed", "shares", "pool", "selected", "created_at"),
        [(draw.id, seed, shares, len(pool), selected, now)],
        ignore_conflicts=True,
        connection=conn,
    )
    return await SurveySample.get(draw_id=draw.id).using_db(conn)


async def _opted_out(entity: Entity, conn) -> bool:
    q = Q(entity_id=entity.id)
    if entity.mobile:
        q |= Q(mobile=entity.mobile)
    return await SurveyOptOut.filter(q).using_db(conn).exists()


async def _fresh_code(entity_id: int, address: str, now: datetime, conn) -> str:
    """A code no survey of this entity or this address used lately (so a code names one survey)."""
    recent = now - LATE_WINDOW - timedelta(days=30)
    q = Q(entity_id=entity_id) | (Q(address=address) if address else Q(id=-1))
    taken = set(await Survey.filter(q, created_at__gte=recent).using_db(conn).values_list("code", flat=True))
    while True:
        code = make_code(secrets.token_bytes(16))
        if code not in taken:
            return code


async def _context(insp: Inspection, now: datetime, zone: tzinfo, sign: str | None, conn) -> dict:
    """What the survey's messages and alerts show, fixed when it is created."""
    draw = insp.draw
    plan = await Plan.get(id=draw.plan_id).using_db(conn)
    names = dict(await Department.filter(code__in=list(plan.departments)).using_db(conn).values_list("code", "name"))
    departments = [names.get(code, code) for code in plan.departments]
    team = await (
        Assignment.filter(inspection_id=insp.id, status__in=list(HOLDING_SEAT))
        .using_db(conn)
        .order_by("seat")
        .values_list("inspector__name", flat=True)
    )
    return {
        "date": now.astimezone(zone).date().isoformat(),
        "departments": departments,
        "dept_codes": list(plan.departments),
        "team": list(team),
        "entity": insp.entity.name,
        "plan": plan.name,
        "plan_code": plan.code,
        "draw_ref": draw.draw_ref,
        "no": insp.no,
        "sign": sign if sign is not None else (departments[0] if departments else ""),
    }


async def enter_pool(
    inspection_id: int,
    now: datetime,
    *,
    zone: tzinfo = SHANGHAI,
    locale: str = "zh-CN",
    sign: str | None = None,
    connection=None,
) -> str:
    """An inspection's result was submitted: survey it if the draw's sample selected it.

    Returns the outcome: ``survey_sent`` / ``survey_scheduled`` (quiet hours) / ``not_sampled`` / ``opted_out`` /
    ``undeliverable`` / ``already``. ``sign`` is the SMS signature (``【…】``); None = the plan's
    first department, "" = none (a provider such as Alibaba Cloud adds its own)."""
    now = _utc(now)
    async with _transaction(connection) as conn:
        # locked: a result submitted twice at once still makes one survey
        insp = await (
            Inspection.filter(id=inspection_id)
            .using_db(conn)
            .select_for_update()
            .prefetch_related("draw", "entity")
            .first()
        )
        if insp is None:
            raise SurveyError("survey_unknown_inspection", id=inspection_id)
        if await Survey.filter(inspection_id=insp.id).using_db(conn).exists():
            return "already"
        smp = await _sample_for(insp.draw, now, conn)
        if insp.no not in smp.selected:
            return "not_sampled"
        return await _create(insp, smp, now, zone, locale, sign, conn)


async def _create(
    insp: Inspection, smp: SurveySample, now: datetime, zone: tzinfo, locale: str, sign: str | None, conn
) -> str:
    entity = insp.entity
    binding = await _telegram_binding(entity.id, conn)
    if binding is not None:
        channel, address, locale = Channel.TELEGRAM, binding.address, binding.locale
    else:
        channel, address = Channel.SMS, entity.mobile or ""
    status = SurveyStatus.PENDING
    if await _opted_out(entity, conn):
        status = SurveyStatus.OPTED_OUT
    elif not address:
        status = SurveyStatus.UNDELIVERABLE
    row = await Survey.create(
        inspection_id=insp.id,
        entity_id=entity.id,
        sample_id=smp.id,
        code=await _fresh_code(entity.id, address, now, conn),
        channel=channel,
        address=address,
        status=status,
        locale=locale,
        context=await _context(insp, now, zone, sign, conn),
        created_at=now,
        completed_at=None if status == SurveyStatus.PENDING else now,
        using_db=conn,
    )
    if status != SurveyStatus.PENDING:
        return status.value
    return await _start(row, now, zone, conn)


async def _start(row: Survey, now: datetime, zone: tzinfo, conn) -> str:
    """Queue the survey's first message at the first allowed moment (its ``sent_at``)."""
    sent = _allowed(now, zone)
    others = await (
        Survey.filter(channel=row.channel, address=row.address, status__in=list(OPEN))
        .using_db(conn)
        .exclude(id=row.id)
        .exists()
    )
    row.context = {**(row.context or {}), "show_code": others}
    row.sent_at, row.reminder_at, row.expires_at = sent, _utc(reminder_at(sent, zone)), expires_at(sent)
    row.status = SurveyStatus.SENT if sent <= now else SurveyStatus.PENDING
    if row.channel == Channel.TELEGRAM:
        row.poll_question = Question.CREDENTIALS.value
        _poll_sent(row, Question.CREDENTIALS)
        first = _poll(row, Question.CREDENTIALS, intro=True, not_before=sent)
    else:
        first = _message(row, "invite", "survey_sms.j2", {}, not_before=sent)
    await row.save(using_db=conn)
    await enqueue([first], now, connection=conn)
    return "survey_sent" if row.status == SurveyStatus.SENT else "survey_scheduled"


async def sample_of(draw_ref: str) -> SurveySample | None:
    """The recorded sample of a draw (seed included): for coordinators' and auditors' tools only."""
    return await SurveySample.filter(draw__draw_ref=draw_ref).first()
