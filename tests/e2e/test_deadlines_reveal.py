"""Deadlines (reminder, then escalation or replacement) and flight reveals, driven by the
scheduler's sweeps with a controllable clock, seen through the real PTB and the simulator."""

from __future__ import annotations

from datetime import timedelta

from core.compose import compose
from core.render import text
from models.alerts import Alert
from models.directory import ConflictType
from models.draws import Assignment, AssignmentStatus, Draw, Recusal
from scheduler import Scheduler
from services import audit, plans
from services.draws import status
from services.scope import Scope
from tests.builders import scheduled_draw
from tests.e2e.harness import spine
from tests.e2e.test_inspector_chat import inspector_chat
from tests.e2e.test_references_chat import public_ref
from tests.services import draw_world as world

ZONE = world.ZONE


async def _draw(s, tmp_path, **plan_kw):
    await world.build(n_entities=12, n_scjg=6, n_wsj=0)
    path = world.plan_file(
        tmp_path, "P1", a="0.5", b="0.5", c="0.5", **{k: v for k, v in plan_kw.items() if k != "on_silence"}
    )
    if plan_kw.get("on_silence"):
        path.write_text(
            path.read_text().replace("[response]\n", f'[response]\non_silence = "{plan_kw["on_silence"]}"\n')
        )
    await plans.add_plan(path, s.clock)
    return await scheduled_draw("P1", clock=s.clock, zone=ZONE)


async def test_silence_gets_a_reminder_then_an_alert(db, tmp_path):
    async with spine(db, clock=world.clock()) as s:
        await _draw(s, tmp_path)
        asg = await Assignment.filter(seat=1).order_by("id").prefetch_related("inspector").first()
        chat = await inspector_chat(s, asg.inspector.cert_no)
        chat.new()
        sched = Scheduler(s.rt)
        await sched.run_due()
        assert (await Assignment.get(id=asg.id)).reminded_at is None  # not yet due
        s.clock.set(asg.deadline + timedelta(minutes=1))
        await sched.run_due()
        await sched.run_due()  # a second sweep reminds nobody twice
        await s.deliver()
        shown = await public_ref(asg.id)
        reminders = [m for m in chat.new() if "提醒" in m.text and shown in m.text and f"#{asg.id}" not in m.text]
        assert len(reminders) == 1 and f"asg:accept:{asg.id}" in reminders[0].callback_data
        s.clock.set(asg.deadline + (asg.deadline - asg.created_at) + timedelta(minutes=1))
        await sched.run_due()
        alert = await Alert.get(key=f"no_response:{asg.id}")
        assert alert.context["cert_no"] == asg.inspector.cert_no and alert.context["replace"] is False
        # told and reminded (their chat is bound): "despite a reminder"
        assert alert.context["undelivered"] == ""
        assert "经提醒后仍未答复" in compose("no_response.j2", alert.context, "zh-CN", "900").text
        # an inspector with no chat was never told: the alert says so, not that they ignored a reminder
        other = await Assignment.exclude(inspector_id=asg.inspector_id).order_by("id").first()
        unbound = await Alert.get(key=f"no_response:{other.id}")
        assert unbound.context["undelivered"] == "no_address"
        zh = compose("no_response.j2", unbound.context, "zh-CN", "900").text
        assert "任务通知未能送达（未绑定聊天）" in zh and "经提醒" not in zh and "请绑定聊天或电话通知" in zh
        en = compose("no_response.j2", unbound.context, "en", "900").text
        assert "never reached" in en and "(no chat bound)" in en and "despite a reminder" not in en
        summary = text("alert_summary", "zh-CN", kind="no_response", c=unbound.context)  # as digests and /alerts
        assert summary.endswith("（任务通知未能送达：未绑定聊天）")
        assert "未能送达" not in text("alert_summary", "zh-CN", kind="no_response", c=alert.context)
        assert (await Assignment.get(id=asg.id)).status == AssignmentStatus.SENT  # only alerted
        # /pending: the told one is marked reminded, the unbound one as never delivered
        page = await status.pending_page(Scope(frozenset(), everything=True), 1, s.clock.now(), ZONE)
        told = {item["assignment"]: item["told"] for item in page.items}
        assert told[asg.id] is True and told[other.id] is False
        actions = await audit.verify()
        assert actions[1] is None


async def test_silence_replaced_when_the_plan_says_so(db, tmp_path):
    async with spine(db, clock=world.clock()) as s:
        await _draw(s, tmp_path, on_silence="replace")
        asg = await Assignment.filter(seat=1).order_by("id").first()
        sched = Scheduler(s.rt)
        s.clock.set(asg.deadline + timedelta(minutes=1))
        await sched.run_due()
        s.clock.set(asg.deadline + (asg.deadline - asg.created_at) + timedelta(minutes=1))
        await sched.run_due()
        recusal = await Recusal.get(assignment_id=asg.id)
        assert recusal.reason_type == ConflictType.NO_RESPONSE
        assert (await Assignment.get(id=asg.id)).status == AssignmentStatus.RECUSED


async def test_flight_targets_revealed_at_the_start_in_one_message_for_all(db, tmp_path):
    async with spine(db, clock=world.clock()) as s:
        await _draw(s, tmp_path, flight=True)
        draw = await Draw.get()
        team = (
            await Assignment.filter(draw_id=draw.id, inspection__no=1)
            .order_by("seat")
            .prefetch_related("inspector", "inspection__entity")
        )
        chats = [await inspector_chat(s, a.inspector.cert_no) for a in team]
        entity = team[0].inspection.entity.name
        before = [m.text for c in chats for m in c.new()]
        assert before and not any(entity in t for t in before)  # the card names no target
        sched = Scheduler(s.rt)
        s.clock.set(draw.reveal_at - timedelta(minutes=1))
        await sched.run_due()
        await s.deliver()
        assert not any(entity in m.text for c in chats for m in c.new())
        s.clock.set(draw.reveal_at + timedelta(minutes=1))
        await sched.run_due()
        await s.deliver()
        reveals = [[m.text for m in c.new() if entity in m.text] for c in chats]
        assert all(len(r) == 1 for r in reveals) and reveals[0] == reveals[1]
        assert (await Draw.get(id=draw.id)).revealed_at is not None
