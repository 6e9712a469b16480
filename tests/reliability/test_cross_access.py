"""Every role reaching for what is not theirs is refused, learns nothing and changes nothing.

Each attack goes in through the real inbound path (``Runtime.on_event``: stored once, routed,
handled and answered in one transaction, the answers as outbox rows) on SQLite and PostgreSQL.
For each one the test checks

* the refusal: the template it was answered with, and — where the attack names a row by its id —
  that the answer is word for word the answer about a row that does not exist (so it cannot
  even tell "someone else's" from "missing");
* the leak: every answer is composed as the dispatcher would send it (``core.compose``) and none
  contains a victim's name, mobile, credit code, address, survey code, notes, a reason or a plan
  of another department (``Victims.scjg``, ``Victims.wsj``); every answer goes to the attacker,
  never to anyone else;
* the state: around each test's attacks (``unchanged``) every table but ``inbound_event``,
  ``outbox`` and ``chat_state`` is read whole (rows and values) and must be identical after; so
  must the victims' conversations (``chat_state``).

``test_the_victims_data_is_really_shown_to_its_owners`` shows the same strings do reach their
owners, so the leak check can fail.

The world: SCJG's plan P1 with a draw written here row by row (so the teams are known): inspection 1
is the victims' (受害检查员甲 leads, 受害检查员乙 confirms; submitted, and a correction waits for a
coordinator), inspections 2 and 3 are the attacker's (S03 leads both), inspection 4 is another
team's, still unanswered, whose entity answers surveys by Telegram poll. WSJ's plan P2 is drawn by
the real draw service and has a recusal with a note and an alert. Chats are bound with real invites.
"""

from __future__ import annotations

import contextlib
import itertools
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from tortoise import Tortoise

from bot.runtime import Runtime
from core.channel import EventKind, InboundEvent
from core.compose import compose
from core.render import render
from domain.refs import inspection_ref
from models.alerts import Alert
from models.chat import ChatState
from models.directory import Conflict, ConflictSource, ConflictType, Entity, Inspector
from models.draws import Assignment, AssignmentStatus, Draw, Firing, Inspection, Recusal
from models.messaging import ChatBinding, InviteCode, Outbox, Role
from models.messaging import InboundEvent as InboundRow
from models.onsite import Correction, CorrectionStatus, Result
from models.plans import Plan
from models.surveys import Survey
from services import plans, recusals
from services.draws.announce import announce
from services.identity import create_invite
from services.onsite import corrections, findings
from services.surveys.enter import enter_pool
from tests.builders import scheduled_draw
from tests.services import draw_world as world

ZONE = world.ZONE
MISSING = 987654  # an id no row has
MISSING_REF = "P1/2026-12-01/987654"  # a public reference no inspection has


async def public(aid: int) -> str:
    """The public reference an inspector types for assignment ``aid`` (domain.refs)."""
    a = await Assignment.get(id=aid).prefetch_related("draw", "inspection")
    return inspection_ref(a.draw.draw_ref, a.inspection.no)


OTHER_PLAN = "卫健VICTIM专项计划"
W_NOTE = "卫健VICTIM内部说明"
FINDING_NOTE = "VICTIM-FINDING-NOTE 冷藏温度超标"
CORRECTION_REASON = "VICTIM-CORRECTION-REASON 录入有误"

# chats (Telegram user ids) and phones
V_LEAD, V_MATE, ATTACKER, SCJG_COORD, WSJ_COORD = "8001", "8002", "8003", "9001", "9002"
ATTACKER_ENTITY_CHAT, VICTIM_ENTITY_CHAT, STRANGER = "7003", "7001", "6666"
VICTIM_MOBILE, ATTACKER_MOBILE, STRANGER_MOBILE = "+8613911110000", "+8613922220000", "+8613933330000"


@dataclass
class Victims:
    lead_asg: Assignment
    mate_asg: Assignment
    open_asg: Assignment  # inspection 4: still "sent" (accept/recuse would change it)
    result: Result  # inspection 1's submitted result
    correction: Correction  # inspection 1's correction, waiting for an SCJG coordinator
    conflict: Conflict  # the lead's declared standing conflict
    sms_survey: Survey  # inspection 1's entity, by SMS
    poll_survey: Survey  # inspection 4's entity, by Telegram poll
    w_recusal: Recusal  # WSJ's
    w_alert: Alert
    w_plan: Plan
    w_draw_ref: str
    w_firing: Firing  # WSJ's next firing, announced, not drawn
    invite_used: str = ""
    invite_expired: str = ""
    scjg: list[str] = field(default_factory=list)  # what only inspection 1's and 4's people and SCJG may see
    wsj: list[str] = field(default_factory=list)  # what only WSJ's coordinators may see


class Bot:
    """The service's inbound side: one event in, the answers it produced out (composed)."""

    def __init__(self, db, clock):
        self.rt = Runtime(settings=db, clock=clock)
        self.clock = clock
        self.ids = itertools.count(1)

    async def send(self, sender: str, kind: EventKind, channel: str = "telegram", **fields):
        before = await Outbox.all().order_by("-id").values_list("id", flat=True)
        top = before[0] if before else 0
        event = InboundEvent(channel=channel, external_id=f"x{next(self.ids)}", sender=sender, kind=kind, **fields)
        got = await self.rt.on_event(event)
        assert not got.duplicate and not got.outcome.startswith("failed"), got
        rows = await Outbox.filter(id__gt=top).order_by("id")
        return got.outcome, rows

    async def command(self, sender: str, name: str, arg: str = "", channel: str = "telegram"):
        return await self.send(
            sender, EventKind.COMMAND, channel, command=name, argument=arg, text=f"/{name} {arg}".strip()
        )

    async def press(self, sender: str, data: str):
        return await self.send(sender, EventKind.BUTTON, data=data, callback_id="")


def texts(rows) -> list[str]:
    """The answers as sent: body, button labels and poll options."""
    out = []
    for r in rows:
        m = compose(r.template, r.context, r.locale, r.address or "")
        parts = [m.text.strip(), *(b.label + " " + b.data for row in m.buttons for b in row)]
        if m.poll:
            parts += [m.poll.question, *m.poll.options]
        out.append("\n".join(parts))
    return out


async def everything() -> dict:
    """Every table's rows (but the inbound log, the outbox and conversation state), whole."""
    skip = {InboundRow, Outbox, ChatState}
    out = {}
    for name, model in sorted(Tortoise.apps["models"].items()):
        if model in skip:
            continue
        out[name] = [sorted(r.items()) for r in await model.all().order_by(model._meta.pk_attr).values()]
    return out


async def conversations(*addresses: str) -> list:
    return [sorted(r.items()) for r in await ChatState.filter(address__in=list(addresses)).order_by("id").values()]


async def bind(bot: Bot, chat: str, role: Role, **who) -> str:
    code = await create_invite(role, bot.clock, **who)
    outcome, _ = await bot.command(chat, "start", code)
    assert outcome == "bound", outcome
    return code


async def build(db, tmp_path, clock) -> tuple[Bot, Victims]:
    w = await world.build(n_entities=12, n_scjg=6, n_wsj=4)
    await plans.add_plan(world.plan_file(tmp_path, "P1", a="0.5", b="0.5", c="0.5"), clock)
    await plans.add_plan(
        world.plan_file(
            tmp_path, "P2", departments=("WSJ",), items=("WSJ-YL-01",), a="0.5", b="0.5", c="0.5", name=OTHER_PLAN
        ),
        clock,
    )
    other = await scheduled_draw("P2", clock=clock, zone=ZONE)
    w_asg = await Assignment.filter(draw__draw_ref=other.draw_ref, seat=1).order_by("id").first()
    await recusals.recuse(
        w_asg.inspector_id, w_asg.id, ConflictType.OTHER, W_NOTE, clock=clock, zone=ZONE, locale="zh-CN"
    )
    w_firing = await announce("P2", clock.now() + timedelta(days=20), clock=clock, zone=ZONE)

    # P1's draw, row by row: the window is open now
    now = clock.now()
    plan = await Plan.get(code="P1")
    firing = await Firing.create(
        draw_ref="P1/2026-12-01",
        plan=plan,
        fire_at=now,
        commitment="0" * 64,
        params=plan.spec,
        announced_at=now - timedelta(days=1),
    )
    draw = await Draw.create(
        draw_ref="P1/2026-12-01",
        firing=firing,
        plan=plan,
        drawn_at=now,
        pool_digest="0" * 64,
        inspectors_digest="0" * 64,
        inspections_digest="0" * 64,
        window_start=now,
        window_end=now + timedelta(days=30),
        pool_size=12,
        inspector_count=6,
        inspection_count=4,
    )
    e = w.entities
    victim_entity, attacker_entity, attacker_entity2, poll_entity, conflict_entity = e[0], e[1], e[2], e[3], e[4]
    renames = {
        victim_entity: ("受害者VICTIM餐饮有限公司", "青岛市受害路99号", VICTIM_MOBILE),
        poll_entity: ("投票VICTIM酒楼有限公司", "青岛市投票路7号", "+8613944440000"),
        conflict_entity: ("冲突VICTIM对象有限公司", "青岛市冲突路5号", None),
        attacker_entity: (attacker_entity.name, attacker_entity.address, ATTACKER_MOBILE),
    }
    for ent, (name, address, mobile) in renames.items():
        await Entity.filter(id=ent.id).update(name=name, address=address, mobile=mobile)
    people = w.inspectors
    for cert, name, mobile in (
        ("S01", "受害检查员甲", "+8613955550001"),
        ("S02", "受害检查员乙", "+8613955550002"),
        ("S05", "受害检查员丙", "+8613955550005"),
        ("S06", "受害检查员丁", "+8613955550006"),
    ):
        await Inspector.filter(id=people[cert].id).update(name=name, mobile=mobile)
    teams = [
        (victim_entity, "D", ("S01", "S02"), AssignmentStatus.ACCEPTED),
        (attacker_entity, "D", ("S03", "S04"), AssignmentStatus.ACCEPTED),
        (attacker_entity2, "A", ("S03", "S04"), AssignmentStatus.ACCEPTED),
        (poll_entity, "D", ("S05", "S06"), AssignmentStatus.SENT),
    ]
    inspections = []
    for no, (ent, stratum, certs, status) in enumerate(teams, start=1):
        insp = await Inspection.create(
            draw=draw, no=no, entity=ent, entity_key=ent.uscc, stratum=stratum, rank=f"{no:016x}"
        )
        for seat, cert in enumerate(certs, start=1):
            await Assignment.create(
                draw=draw,
                inspection=insp,
                inspector=people[cert],
                seat=seat,
                status=status,
                deadline=now + timedelta(days=3),
                created_at=now,
            )
        inspections.append(insp)

    bot = Bot(db, clock)
    used = await bind(bot, V_LEAD, Role.INSPECTOR, cert_no="S01")
    await bind(bot, V_MATE, Role.INSPECTOR, cert_no="S02")
    await bind(bot, ATTACKER, Role.INSPECTOR, cert_no="S03")
    await bind(bot, SCJG_COORD, Role.COORDINATOR, departments=("SCJG",))
    await bind(bot, WSJ_COORD, Role.COORDINATOR, departments=("WSJ",))
    await bind(bot, ATTACKER_ENTITY_CHAT, Role.ENTITY, uscc=attacker_entity2.uscc)  # its other entity: by SMS
    await bind(bot, VICTIM_ENTITY_CHAT, Role.ENTITY, uscc=poll_entity.uscc)
    expired = await create_invite(Role.INSPECTOR, clock, cert_no="S05", ttl=timedelta(seconds=-1))

    # inspection 1: the lead records and submits (its entity is surveyed by SMS), then asks for a correction
    lead = people["S01"].id
    lead_asg = await Assignment.get(inspection_id=inspections[0].id, seat=1)
    mate_asg = await Assignment.get(inspection_id=inspections[0].id, seat=2)
    _, view = await findings.open_findings(lead, lead_asg.id, now=now)
    rid = view["result"]
    for kind, index, note in (("pass", 0, ""), ("note", None, FINDING_NOTE), ("submit", None, "")):
        done = await findings.act(lead, rid, kind, index=index, text=note, now=now)
    assert done.code == "submitted", done.code
    draft = await corrections.request_correction(lead, rid, CORRECTION_REASON, now=now)
    for kind, index in (("edit", 0), ("fail", 0), ("skip", 0), ("submit", None)):
        done = await findings.act(lead, draft["result"], kind, index=index, now=now)
    assert done.code == "sent_for_approval", done.code
    # the attacker's own entity is surveyed too (by SMS), the poll entity by Telegram
    for insp in inspections[1:2] + inspections[3:4]:
        assert await enter_pool(insp.id, now) in ("survey_sent", "already")
    conflict = await Conflict.create(
        inspector_id=lead, entity_id=conflict_entity.id, type=ConflictType.OTHER, source=ConflictSource.DECLARED
    )

    v = Victims(
        lead_asg=lead_asg,
        mate_asg=mate_asg,
        open_asg=await Assignment.get(inspection_id=inspections[3].id, seat=1),
        result=await Result.get(id=rid),
        correction=await Correction.get(original_id=rid),
        conflict=conflict,
        sms_survey=await Survey.get(inspection_id=inspections[0].id),
        poll_survey=await Survey.get(inspection_id=inspections[3].id),
        w_recusal=await Recusal.get(assignment_id=w_asg.id),
        w_alert=await Alert.get(kind="recusal_recorded"),
        w_plan=await Plan.get(code="P2"),
        w_draw_ref=other.draw_ref,
        w_firing=await Firing.get(draw_ref=w_firing.draw_ref),
        invite_used=used,
        invite_expired=expired,
    )
    assert v.correction.status == CorrectionStatus.REQUESTED
    assert v.sms_survey.channel.value == "sms" and v.poll_survey.channel.value == "telegram"
    # the poll went out: the dispatcher stores the poll's id, which a poll answer names
    await Outbox.filter(dedupe_key=f"survey:{v.poll_survey.id}:poll:credentials").update(provider_id="poll-1")
    w_people = await Inspector.filter(cert_no__startswith="W").values_list("name", "cert_no")
    v.scjg = [
        "受害者VICTIM餐饮有限公司",
        "青岛市受害路99号",
        victim_entity.uscc,
        VICTIM_MOBILE,
        VICTIM_MOBILE[3:],
        "投票VICTIM酒楼有限公司",
        "青岛市投票路7号",
        poll_entity.uscc,
        "+8613944440000",
        "13944440000",
        "冲突VICTIM对象有限公司",
        "青岛市冲突路5号",
        conflict_entity.uscc,
        "受害检查员甲",
        "受害检查员乙",
        "受害检查员丙",
        "受害检查员丁",
        *(f"+861395555000{n}" for n in (1, 2, 5, 6)),
        *(f"1395555000{n}" for n in (1, 2, 5, 6)),
        FINDING_NOTE,
        CORRECTION_REASON,
        v.sms_survey.code,
        v.poll_survey.code,
    ]
    v.wsj = [OTHER_PLAN, W_NOTE, *(name for name, _ in w_people), *(cert for _, cert in w_people)]
    return bot, v


BOTH = ("scjg", "wsj")


def leaks(v: Victims, answers: list[str], against=BOTH, typed: str = "") -> list[str]:
    """The victims' strings found in the answers (but what the attacker typed, echoed back)."""
    strings = [s for group in against for s in getattr(v, group) if s and s not in typed]
    return [s for s in strings for a in answers if s in a]


async def attack(
    bot: Bot,
    v: Victims,
    sender: str,
    do,
    *,
    templates: set[str] | None = None,
    replies: int | None = None,
    against=BOTH,
    typed: str = "",
):
    """Run one attack; assert nothing changed, every answer went to the sender and leaked none of
    the ``against`` groups' strings (what changed in the database is checked by :func:`unchanged`
    around each test's attacks). Returns (outcome, answer texts, templates)."""
    outcome, rows = await do()
    answers = texts(rows)
    found = leaks(v, answers, against, typed)
    assert not found, (outcome, found, answers)
    assert all(r.address == sender for r in rows), [(r.template, r.address) for r in rows]
    if templates is not None:
        used = [r.template for r in rows]
        assert set(used) <= templates and (rows or not templates), (outcome, used)
    if replies is not None:
        assert len(rows) == replies, (outcome, [r.template for r in rows])
    return outcome, answers, [r.template for r in rows]


@contextlib.asynccontextmanager
async def unchanged():
    """Every table (but the inbound log, the outbox and the attackers' conversations) the same after."""
    victims = (V_LEAD, V_MATE, VICTIM_ENTITY_CHAT, SCJG_COORD, WSJ_COORD)
    state, talks = await everything(), await conversations(*victims)
    yield
    after = await everything()
    assert after == state, [name for name in state if after[name] != state[name]]
    assert await conversations(*victims) == talks


async def like_missing(bot: Bot, v: Victims, sender: str, real: int, make, *, template: str, against=BOTH):
    """The attack on row ``real`` answers exactly as the same attack on a row that does not exist."""
    _, theirs, t1 = await attack(bot, v, sender, lambda: make(real), templates={template}, replies=1, against=against)
    _, none, t2 = await attack(bot, v, sender, lambda: make(MISSING), templates={template}, replies=1, against=against)
    assert theirs[0].replace(str(real), "N") == none[0].replace(str(MISSING), "N"), (theirs, none)
    return theirs[0]


@pytest.fixture
async def scene(db, tmp_path):
    clock = world.clock()
    bot, v = await build(db, tmp_path, clock)
    return bot, v


# --- the check can fail: the planted data is there for its owners -----------------------------------


async def test_the_victims_data_is_really_shown_to_its_owners(scene):
    """The leak check is not vacuous: asked by the right people, the answers do hold the strings."""
    bot, v = scene
    _, rows = await bot.command(V_LEAD, "task", await public(v.lead_asg.id))
    assert "受害者VICTIM餐饮有限公司" in texts(rows)[0] and "受害检查员乙" in texts(rows)[0]
    assert leaks(v, texts(rows), ("scjg",))
    _, rows = await bot.press(V_LEAD, f"fnd:open:{v.lead_asg.id}")
    assert CORRECTION_REASON in "\n".join(texts(rows))
    _, rows = await bot.command(V_LEAD, "conflicts")
    assert "冲突VICTIM对象有限公司" in texts(rows)[0] and f"cfl:del:{v.conflict.id}" in texts(rows)[0]
    _, rows = await bot.command(WSJ_COORD, "recusals")
    assert W_NOTE in texts(rows)[0]
    _, rows = await bot.command(WSJ_COORD, "plan", "P2")
    assert OTHER_PLAN in texts(rows)[0]


# --- inspectors ------------------------------------------------------------------------------------


async def test_an_inspector_cannot_see_or_touch_another_teams_task(scene):
    bot, v = scene
    async with unchanged():
        for aid in (v.lead_asg.id, v.mate_asg.id, v.open_asg.id):
            shown = await like_missing_ref(bot, v, ATTACKER, aid, "task", template="refused.j2")
            assert (
                shown == render("messages/refused.j2", code="asg_not_found", params={"ref": await public(aid)}).strip()
            )
            for command in ("accept", "recuse"):
                await like_missing_ref(bot, v, ATTACKER, aid, command, template="refused.j2")
            for action in ("show", "accept", "recuse"):
                await like_missing(
                    bot, v, ATTACKER, aid, lambda n: bot.press(ATTACKER, f"asg:{action}:{n}"), template="refused.j2"
                )
            # the recusal conversation's buttons need the presser's own conversation about that task
            for data in (
                f"rcs:type:{aid}:close_relative",
                f"rcs:skip:{aid}",
                f"rcs:confirm:{aid}",
                f"rcs:cancel:{aid}",
            ):
                _, said, _ = await attack(
                    bot, v, ATTACKER, lambda: bot.press(ATTACKER, data), templates={"refused.j2"}, replies=1
                )
                assert "已失效" in said[0]
            # findings and results of an inspection the attacker is not on
            await like_missing_ref(bot, v, ATTACKER, aid, "result", template="refused.j2")
            await like_missing(
                bot, v, ATTACKER, aid, lambda n: bot.press(ATTACKER, f"fnd:open:{n}"), template="onsite_refused.j2"
            )
    assert (await Assignment.get(id=v.open_asg.id)).status == AssignmentStatus.SENT


async def test_an_inspector_cannot_record_confirm_or_correct_another_teams_result(scene):
    bot, v = scene
    rid, draft = v.result.id, v.correction.replacement_id
    missing = render("messages/onsite_refused.j2", code="result_not_found", params={"id": 0}).strip()
    async with unchanged():
        for result_id in (rid, draft):
            for data in (
                "fnd:pass:{}:0",
                "fnd:fail:{}:0",
                "fnd:skip:{}:0",
                "fnd:edit:{}:0",
                "fnd:submit:{}",
                "fnd:confirm:{}",
                "fnd:fix:{}",
            ):
                said = await like_missing(
                    bot,
                    v,
                    ATTACKER,
                    result_id,
                    lambda n: bot.press(ATTACKER, data.format(n)),
                    template="onsite_refused.j2",
                )
                assert said == missing, (data, said)
        # "no correction, thanks" only ever clears the presser's own conversation
        await attack(
            bot,
            v,
            ATTACKER,
            lambda: bot.press(ATTACKER, f"fnd:nofix:{rid}"),
            templates={"correction_cancelled.j2"},
            replies=1,
        )
        # a coordinator's approval button pressed by an inspector: not for inspectors at all
        await attack(
            bot,
            v,
            ATTACKER,
            lambda: bot.press(ATTACKER, f"cor:ok:{v.correction.id}"),
            templates={"not_understood.j2"},
            replies=1,
        )
    assert (await Result.get(id=rid)).confirmed_by_id is None


async def test_an_inspector_cannot_check_in_or_file_photos_on_another_teams_inspection(scene):
    bot, v = scene
    async with unchanged():
        # the attacker leads two inspections under way, so a location or a photo asks "which one?"…
        outcome, rows = await bot.send(ATTACKER, EventKind.LOCATION, latitude=36.06, longitude=120.38)
        assert outcome == "checkin_choose" and not leaks(v, texts(rows))
        # …and the button pressed names the victims' task instead
        for prefix, kind, fields in (
            ("chk:at", EventKind.LOCATION, {"latitude": 36.06, "longitude": 120.38}),
            ("pho:at", EventKind.PHOTO, {"file_id": "AgACAgIAAxkBAAIB"}),
        ):
            said = await like_missing_after(bot, v, ATTACKER, v.lead_asg.id, prefix, kind, fields)
            assert "不在检查时段内或已不由您负责" in said


async def like_missing_ref(bot: Bot, v: Victims, sender: str, real: int, command: str, *, template: str) -> str:
    """A typed command naming another team's inspection by its public reference answers exactly as
    one naming an inspection that does not exist."""
    shown = await public(real)
    _, theirs, _ = await attack(
        bot, v, sender, lambda: bot.command(sender, command, shown), templates={template}, replies=1
    )
    _, none, _ = await attack(
        bot, v, sender, lambda: bot.command(sender, command, MISSING_REF), templates={template}, replies=1
    )
    assert theirs[0].replace(shown, "N") == none[0].replace(MISSING_REF, "N"), (theirs, none)
    return theirs[0]


async def like_missing_after(
    bot: Bot, v: Victims, sender: str, real: int, prefix: str, kind: EventKind, fields: dict
) -> str:
    """A "which inspection?" button forged with another team's assignment, answered as a missing one."""
    said = []
    for aid in (real, MISSING):
        outcome, _ = await bot.send(sender, kind, **fields)  # asked again: the button clears the question
        assert outcome.endswith("_choose"), outcome
        _, answers, _ = await attack(
            bot, v, sender, lambda: bot.press(sender, f"{prefix}:{aid}"), templates={"onsite_refused.j2"}, replies=1
        )
        said.append(answers[0].replace(str(aid), "N"))
    assert said[0] == said[1], said
    return said[0]


async def test_an_inspector_cannot_withdraw_anothers_conflict(scene):
    bot, v = scene
    async with unchanged():
        said = await like_missing(
            bot,
            v,
            ATTACKER,
            v.conflict.id,
            lambda n: bot.press(ATTACKER, f"cfl:del:{n}"),
            template="conflict_refused.j2",
        )
        assert said == render("messages/conflict_refused.j2", code="conflict_not_found", params={}).strip()
    assert (await Conflict.get(id=v.conflict.id)).withdrawn_at is None


# --- coordinators --------------------------------------------------------------------------------


async def test_a_coordinator_cannot_reach_outside_their_departments(scene):
    bot, v = scene
    c, wsj = SCJG_COORD, ("wsj",)
    plan_id = v.w_plan.id
    async with unchanged():
        for name, arg, missing in (
            ("plan", "P2", "NOPE"),
            ("draw", "P2", "NOPE"),
            ("status", v.w_draw_ref, "P9/2026-12-01"),
            ("verify", v.w_draw_ref, "P9/2026-12-01"),
        ):
            _, theirs, _ = await attack(
                bot, v, c, lambda: bot.command(c, name, arg), templates={"coord_error.j2"}, replies=1, against=wsj
            )
            _, none, _ = await attack(
                bot, v, c, lambda: bot.command(c, name, missing), templates={"coord_error.j2"}, replies=1, against=wsj
            )
            assert theirs[0].replace(arg, "X") == none[0].replace(missing, "X"), (name, theirs, none)
        for data, real in (
            ("pln:show:{}", plan_id),
            ("drw:preview:{}", plan_id),
            ("drw:now:{}:0", plan_id),
            ("drw:now:{}:1", plan_id),
            ("drw:go:{}", v.w_firing.id),
            ("rjt:ask:{}", v.w_recusal.id),
            ("rjt:confirm:{}", v.w_recusal.id),
            ("alr:ack:{}", v.w_alert.id),
        ):
            await like_missing(
                bot, v, c, real, lambda n: bot.press(c, data.format(n)), template="coord_error.j2", against=wsj
            )
        # lists show only their own departments' things, each way round
        for chat, against in ((c, wsj), (WSJ_COORD, ("scjg",))):
            for name in ("plans", "pending", "recusals", "alerts", "integrity"):
                await attack(bot, v, chat, lambda: bot.command(chat, name), replies=1, against=against)
        # WSJ's coordinator and SCJG's correction
        for action in ("ok", "no"):
            said = await like_missing(
                bot,
                v,
                WSJ_COORD,
                v.correction.id,
                lambda n: bot.press(WSJ_COORD, f"cor:{action}:{n}"),
                template="onsite_refused.j2",
                against=("scjg",),
            )
            assert "只能处理您所辖部门的更正" in said
    assert (await Correction.get(id=v.correction.id)).status == CorrectionStatus.REQUESTED
    assert (await Recusal.get(id=v.w_recusal.id)).rejected_at is None
    assert (await Alert.get(id=v.w_alert.id)).acknowledged_at is None
    assert await Draw.filter(plan_id=plan_id).count() == 1


async def test_other_roles_cannot_use_coordinator_commands(scene):
    bot, v = scene
    refused = render("messages/coord_refused.j2").strip()
    async with unchanged():
        for chat in (ATTACKER, ATTACKER_ENTITY_CHAT):
            for name, arg in (
                ("plan", "P2"),
                ("draw", "P2"),
                ("status", v.w_draw_ref),
                ("verify", v.w_draw_ref),
                ("plans", ""),
                ("pending", ""),
                ("recusals", ""),
                ("alerts", ""),
                ("report", ""),
            ):
                _, said, _ = await attack(
                    bot, v, chat, lambda: bot.command(chat, name, arg), templates={"coord_refused.j2"}, replies=1
                )
                assert said == [refused]
            for data in (
                f"rjt:confirm:{v.w_recusal.id}",
                f"alr:ack:{v.w_alert.id}",
                f"drw:go:{v.w_firing.id}",
                f"pln:show:{v.w_plan.id}",
            ):
                await attack(bot, v, chat, lambda: bot.press(chat, data), templates={"coord_refused.j2"}, replies=1)
            await attack(
                bot, v, chat, lambda: bot.command(chat, "integrity"), templates={"integrity_refused.j2"}, replies=1
            )
            await attack(
                bot,
                v,
                chat,
                lambda: bot.press(chat, f"cor:ok:{v.correction.id}"),
                templates={"not_understood.j2", "onsite_refused.j2"},
                replies=1,
            )
        # and an entity's chat is no inspector either
        for name, arg in (
            ("task", str(v.lead_asg.id)),
            ("result", str(v.lead_asg.id)),
            ("tasks", ""),
            ("conflicts", ""),
        ):
            await attack(
                bot,
                v,
                ATTACKER_ENTITY_CHAT,
                lambda: bot.command(ATTACKER_ENTITY_CHAT, name, arg),
                templates={"not_understood.j2"},
                replies=1,
            )


# --- entities ------------------------------------------------------------------------------------


async def test_an_entity_cannot_answer_another_entitys_survey(scene):
    bot, v = scene
    code = v.sms_survey.code
    async with unchanged():
        # by SMS from the attacker's own mobile (which has a survey of its own): "that code is not yours",
        # once per code (an auto-responder cannot start a loop)
        answered = []
        for text in (f"{code} 是 是 5", f"{code} 1 1 5 很好", f"{code.lower()} 是"):
            outcome, said, templates = await attack(
                bot,
                v,
                ATTACKER_MOBILE,
                lambda: bot.send(ATTACKER_MOBILE, EventKind.TEXT, "sms", text=text),
                typed=text.upper(),
            )
            assert outcome == "survey_unknown_code", outcome
            answered += templates
        assert answered == ["survey_unknown_code.j2"]
        # from a number no survey was sent to: nothing to answer, nothing answered (no SMS spent on it)
        outcome, _, _ = await attack(
            bot,
            v,
            STRANGER_MOBILE,
            lambda: bot.send(STRANGER_MOBILE, EventKind.TEXT, "sms", text=f"{code} 是 是 5"),
            replies=0,
            typed=code,
        )
        assert outcome == "survey_none_open"
        # in the attacker entity's Telegram chat (its survey went by SMS): none open here
        outcome, _, templates = await attack(
            bot,
            v,
            ATTACKER_ENTITY_CHAT,
            lambda: bot.send(ATTACKER_ENTITY_CHAT, EventKind.TEXT, text=f"{code} 是 是 5"),
            typed=code,
        )
        assert outcome == "survey_none_open" and templates == ["survey_none_open.j2"]
        # a poll answer from chats not linked to the poll's entity
        for chat, expected in ((ATTACKER_ENTITY_CHAT, "survey_poll_unknown"), (STRANGER, "unknown")):
            outcome, _, _ = await attack(
                bot,
                v,
                chat,
                lambda: bot.send(chat, EventKind.POLL_ANSWER, poll_id="poll-1", option_ids=(0,)),
                replies=0,
            )
            assert outcome == expected
        await attack(
            bot,
            v,
            ATTACKER,
            lambda: bot.send(ATTACKER, EventKind.POLL_ANSWER, poll_id="poll-1", option_ids=(0,)),
            templates={"not_understood.j2"},
            replies=1,
        )
    # the real answers still work afterwards: the attempts used nothing up
    outcome, _ = await bot.send(VICTIM_MOBILE, EventKind.TEXT, "sms", text="是 是 5")
    assert outcome == "survey_answered", outcome
    outcome, _ = await bot.send(VICTIM_ENTITY_CHAT, EventKind.POLL_ANSWER, poll_id="poll-1", option_ids=(0,))
    assert outcome.startswith("survey_") and outcome != "survey_poll_unknown", outcome
    assert (await Survey.get(id=v.poll_survey.id)).polls["ids"] == {"poll-1": "credentials"}


# --- strangers and invites -----------------------------------------------------------------------

EVERY_COMMAND = (
    "start",
    "help",
    "tasks",
    "task",
    "result",
    "checkin",
    "conflicts",
    "plans",
    "plan",
    "draw",
    "status",
    "pending",
    "verify",
    "beacon",
    "recusals",
    "alerts",
    "report",
    "integrity",
    "nonsense",
)


async def test_an_unknown_chat_learns_nothing_from_any_command_or_button(scene):
    bot, v = scene
    refusal = render("messages/unknown_sender.j2").strip()
    args = {
        "task": str(v.lead_asg.id),
        "result": str(v.lead_asg.id),
        "plan": "P1",
        "draw": "P1",
        "status": v.w_draw_ref,
        "verify": v.w_draw_ref,
        "beacon": f"{v.w_draw_ref} 1 2",
        "conflicts": "VICTIM",
    }
    async with unchanged():
        for name in EVERY_COMMAND:
            _, said, _ = await attack(
                bot, v, STRANGER, lambda: bot.command(STRANGER, name, args.get(name, "")), replies=1
            )
            assert said == [refusal], (name, said)
        for data in (
            f"asg:show:{v.lead_asg.id}",
            f"asg:accept:{v.open_asg.id}",
            f"rcs:confirm:{v.lead_asg.id}",
            f"fnd:confirm:{v.result.id}",
            f"fnd:open:{v.lead_asg.id}",
            f"chk:at:{v.lead_asg.id}",
            f"pho:at:{v.lead_asg.id}",
            f"cfl:del:{v.conflict.id}",
            f"cor:ok:{v.correction.id}",
            f"pln:show:{v.w_plan.id}",
            f"drw:go:{v.w_firing.id}",
            f"rjt:confirm:{v.w_recusal.id}",
            f"alr:ack:{v.w_alert.id}",
            "bcn:yes:1",
            "pg:alerts:2",
            "zzz:1:2",
            "garbage",
        ):
            _, said, _ = await attack(bot, v, STRANGER, lambda: bot.press(STRANGER, data), replies=1)
            assert said == [refusal], (data, said)
        for kind, fields in (
            (EventKind.TEXT, {"text": f"{v.sms_survey.code} 是 是 5"}),
            (EventKind.LOCATION, {"latitude": 36.06, "longitude": 120.38}),
            (EventKind.PHOTO, {"file_id": "AgAC"}),
        ):
            _, said, _ = await attack(bot, v, STRANGER, lambda: bot.send(STRANGER, kind, **fields), replies=1)
            assert said == [refusal], (kind, said)


async def test_used_expired_and_forged_invites_bind_nothing_and_say_only_why(scene):
    bot, v = scene
    cases = (
        (v.invite_used, "invite_used"),
        (v.invite_expired, "invite_expired"),
        ("forged-" + v.invite_used[7:], "invite_forged"),
        ("x" * 64, "invite_forged"),
        ("🙂<b>", "invite_forged"),
    )
    async with unchanged():
        for code, reason in cases:
            outcome, said, _ = await attack(
                bot,
                v,
                STRANGER,
                lambda: bot.command(STRANGER, "start", code),
                templates={"invite_refused.j2"},
                replies=1,
            )
            assert outcome == reason and said == [render("messages/invite_refused.j2", reason=reason).strip()]
            assert code not in said[0]
        # the lead's own chat reusing its code: refused too, its binding untouched
        outcome, _, _ = await attack(
            bot,
            v,
            V_LEAD,
            lambda: bot.command(V_LEAD, "start", v.invite_used),
            templates={"invite_refused.j2"},
            replies=1,
        )
        assert outcome == "invite_used"
    assert await ChatBinding.filter(address=STRANGER).count() == 0
    assert await InviteCode.filter(used_at=None).count() == 1  # the expired one, never used
