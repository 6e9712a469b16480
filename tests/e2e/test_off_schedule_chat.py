"""Issue 14 item 2 in chat: an off-schedule draw asked for with a typed reason and released by a
second coordinator's button, through the real python-telegram-bot and the Bot API simulator."""

from __future__ import annotations

from models.audit import AuditRecord
from models.draws import Draw, OffScheduleRequest
from models.messaging import Role
from services import audit, plans
from tests.builders import scheduled_draw
from tests.e2e.harness import spine
from tests.e2e.test_coordinator_chat import double_tap, person, two_plans
from tests.services import draw_world as world

ZONE = world.ZONE


async def forge(chat, data: str) -> list:
    """A callback query with data no button of this chat carries (a modified client)."""
    world_chat = chat.s.sim.world.chat_of(chat.user)
    anchor = chat.s.sim.messages(chat.user)[-1]
    payload = {
        "id": "9" * 12,
        "from": world_chat.user.as_user(),
        "message": anchor.data,
        "chat_instance": world_chat.chat_instance,
        "data": data,
    }
    before = await chat._count()
    chat.s.sim.push_update("callback_query", payload)
    await chat.settle(before)
    return chat.new()


async def test_a_second_coordinator_releases_an_off_schedule_draw_once(db, tmp_path):
    async with spine(db, clock=world.clock()) as s:
        await two_plans(s, tmp_path)
        asker = await person(s, Role.COORDINATOR, ["SCJG"], name="王芳")
        other = await person(s, Role.COORDINATOR, ["SCJG"], name="李娜")
        stranger = await person(s, Role.COORDINATOR, ["WSJ"], name="赵强")
        plan_id = (await plans.get_plan("P1")).id
        preview = (await asker.command("draw", "P1"))[-1]
        # the button asks for the reason; the next message is the reason
        prompt = (await asker.press(preview, f"ofs:ask:{plan_id}"))[-1]
        assert "须填写理由" in prompt.text
        sent = (await asker.say("原定批次名录导入错误，需补抽"))[-1]
        request = await OffScheduleRequest.get(plan_id=plan_id)
        assert "计划外抽取申请已发出" in sent.text and "#" not in sent.text and "1 名协调员" in sent.text
        # only the plan's other coordinator is asked, with the buttons
        ask = [m for m in other.new() if "请您确认" in m.text]
        assert len(ask) == 1 and "原定批次名录导入错误，需补抽" in ask[0].text and "王芳" in ask[0].text
        assert ask[0].callback_data == [f"ofs:yes:{request.id}", f"ofs:no:{request.id}"]
        assert not [m for m in stranger.new() if "请您确认" in m.text]
        # the requester cannot confirm their own; a coordinator of another department sees nothing
        mine = (await forge(asker, f"ofs:yes:{request.id}"))[-1]
        assert "须由本计划的另一名协调员确认" in mine.text
        theirs = (await forge(stranger, f"ofs:yes:{request.id}"))[-1]
        assert "没有找到这项计划外抽取申请" in theirs.text
        assert await Draw.filter(plan_id=plan_id).count() == 0
        # the other coordinator confirms, twice in a row: one draw
        replies = await double_tap(other, ask[0], f"ofs:yes:{request.id}")
        texts = [m.text for m in replies]
        assert sum("已抽取 P1/" in t for t in texts) == 1, texts
        assert any("已经处理" in t for t in texts), texts
        [drawn] = await Draw.filter(plan_id=plan_id)
        assert drawn.off_schedule["reason"] == "原定批次名录导入错误，需补抽"
        assert drawn.off_schedule["requested_by"] == request.requested_by
        assert drawn.off_schedule["confirmed_by"] == f"coordinator:{(await other_binding(other)).id}"
        told = [m.text for m in asker.new()]
        assert any(f"已抽取 {drawn.draw_ref}" in t and "已由" in t for t in told), told
        assert any("【计划外抽取】" in t for t in told)  # the alert to the plan's coordinators
        actions = await AuditRecord.filter(subject=f"off_schedule:{request.id}").values_list("action", flat=True)
        assert sorted(actions) == ["off_schedule.confirmed", "off_schedule.requested"]
        assert await AuditRecord.filter(action="draw.off_schedule", subject=f"draw:{drawn.draw_ref}").exists()
        assert (await audit.verify())[1] is None
        # every text the three chats were sent names people, never by their binding's actor string
        seen = [m.text for c in (asker, other, stranger) for m in s.sim.messages(c.user)]
        assert any("已由 李娜 确认" in t for t in seen) and any("申请人 王芳，确认人 李娜" in t for t in seen)
        assert not [t for t in seen if "coordinator:" in t]


async def test_declined_or_typed_on_the_command_line_of_chat(db, tmp_path):
    async with spine(db, clock=world.clock()) as s:
        await two_plans(s, tmp_path)
        asker = await person(s, Role.COORDINATOR, ["SCJG"], name="王芳")
        other = await person(s, Role.COORDINATOR, ["SCJG"], name="李娜")
        first = await scheduled_draw("P1", clock=s.clock, zone=ZONE)
        # /draw PLAN <reason>: a redraw of today's draw asked for in one message
        sent = (await asker.command("draw", "P1 检查组成员回避，需重抽"))[-1]
        request = await OffScheduleRequest.get(status="pending")
        assert request.redraw_of == first.draw_ref and f"重抽 {first.draw_ref}" in sent.text
        again = (await asker.command("draw", "P1 又一次"))[-1]
        assert "已有一项计划外抽取申请在等待" in again.text
        ask = [m for m in other.new() if "请您确认" in m.text][-1]
        done = (await other.press(ask, f"ofs:no:{request.id}"))[-1]
        assert "已拒绝计划 P1 的计划外抽取申请" in done.text
        assert any("被" in m.text and "拒绝" in m.text for m in asker.new())
        assert (await OffScheduleRequest.get(id=request.id)).status == "declined"
        late = (await other.press(ask, f"ofs:yes:{request.id}"))[-1]
        assert "已经处理" in late.text
        assert await Draw.filter(plan__code="P1").count() == 1


async def other_binding(chat):
    from models.messaging import ChatBinding

    return await ChatBinding.get(address=str(chat.user.id))
