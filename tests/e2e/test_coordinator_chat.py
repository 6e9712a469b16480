"""A coordinator's chat, through the real python-telegram-bot and the Bot API simulator: every
command once; a draw previewed then confirmed exactly once (double taps included); a recusal
rejected (the right people told, the bundle still verifying); scoping refusals that leak
nothing; paging."""

from __future__ import annotations

from datetime import timedelta

from core.channel import EventKind, InboundEvent
from models.alerts import Alert
from models.directory import Conflict, ConflictSource, ConflictType, Department
from models.draws import Assignment, AssignmentStatus, Draw, Firing, Recusal
from models.messaging import ChatBinding, Role
from models.messaging import InboundEvent as InboundRow
from services import audit, plans, recusals
from services.alerts import raise_alert
from services.draws.announce import announce, withdraw
from services.identity import create_invite
from tests.builders import announced_ahead, scheduled_draw
from tests.e2e.harness import eventually, spine
from tests.e2e.test_inspector_chat import Chat, inspector_chat
from tests.services import draw_world as world

ZONE = world.ZONE
OTHER_PLAN = "卫健专项计划"  # WSJ's plan: a SCJG coordinator must never see its name


async def two_plans(s, tmp_path):
    """SCJG's plan P1 and WSJ's plan P2 (their inspectors are S01… and W01…)."""
    w = await world.build(n_entities=12, n_scjg=6, n_wsj=4)
    await plans.add_plan(world.plan_file(tmp_path, "P1", a="0.5", b="0.5", c="0.5"), s.clock)
    await plans.add_plan(
        world.plan_file(
            tmp_path, "P2", departments=("WSJ",), items=("WSJ-YL-01",), a="0.5", b="0.5", c="0.5", name=OTHER_PLAN
        ),
        s.clock,
    )
    return w


class Slow(Chat):
    """A chat that waits longer for the bot (a draw or a report's chart on a loaded machine);
    the wait ends as soon as the bot has answered."""

    async def settle(self, before: int | None = None):
        await eventually(lambda: _handled(self, before or 0), timeout=30)
        await self.s.deliver()


async def _handled(chat: Chat, before: int) -> bool:
    sender = str(chat.user.id)
    n = await InboundRow.filter(sender=sender).count()
    return n > before and not await InboundRow.filter(sender=sender, outcome="").exists()


async def person(s, role: Role, departments=(), name="协调员") -> Chat:
    user = s.sim.create_user(name)
    code = await create_invite(role, s.clock, departments=tuple(departments))
    s.sim.send_command(user, "start", code)
    await eventually(lambda: ChatBinding.filter(address=str(user.id)).exists())
    chat = Slow(s, user)
    await chat.settle()
    chat.new()
    return chat


async def double_tap(chat: Chat, message, data: str) -> list:
    """Two presses of one button before the bot has answered either."""
    before = await InboundRow.filter(sender=str(chat.user.id)).count()
    chat.s.sim.press_button(chat.user, message.message_id, data=data)
    chat.s.sim.press_button(chat.user, message.message_id, data=data)
    await eventually(lambda: _count(chat, before + 2), timeout=30)
    await chat.settle(before + 1)
    return chat.new()


async def _count(chat: Chat, n: int) -> bool:
    return await InboundRow.filter(sender=str(chat.user.id)).count() >= n


def last(messages) -> str:
    return messages[-1].text


async def test_every_command_once(db, tmp_path):
    async with spine(db, clock=world.clock()) as s:
        await two_plans(s, tmp_path)
        c = await person(s, Role.COORDINATOR, ["SCJG"])
        listed = last(await c.command("plans"))
        assert "P1 测试计划" in listed and "下次执行 2027-01-01 09:00" in listed and OTHER_PLAN not in listed
        shown = last(await c.command("plan", "P1"))
        assert "食品经营许可情况检查" in shown and "A类 0.5" in shown and "暂无已公告的批次" in shown
        assert "回访比例：D类 1，E类 1，其他 1/3" in shown  # the plan names none: the default
        # names, not codes; one field a line
        assert "部门 市场监督管理局" in listed and "部门：市场监督管理局" in shown and "SCJG" not in shown
        assert "\n答复期限：" in shown and "\n提前公告：" in shown and "（任一部门、任一部门）" in shown
        await announced_ahead("P1", s.clock.now(), clock=s.clock, zone=ZONE)
        firing = await Firing.get(draw_ref="P1/2026-12-01")
        shown = last(await c.command("plan", "P1"))
        assert firing.commitment in shown and "P1/2026-12-01" in shown
        preview = (await c.command("draw", "P1"))[-1]
        assert "尚未抽取" in preview.text and "A类" in preview.text and "承诺值已在公告时公布" in preview.text
        assert preview.callback_data == [f"drw:go:{firing.id}", f"drw:cancel:{(await firing.plan).id}"]
        drawn = last(await c.press(preview, f"drw:go:{firing.id}"))
        assert "已抽取 P1/2026-12-01" in drawn and "未能在抽取前提前公布" not in drawn
        status = last(await c.command("status", "P1/2026-12-01"))
        sent = await Assignment.filter(draw__draw_ref="P1/2026-12-01").count()
        assert f"任务：{sent} 项" in status and f"待答复 {sent}" in status
        # nobody bound a chat: every task message is counted undelivered, apart from the answers
        assert f"未送达 {sent}" in status and "已送达 0" in status and "T" not in status.split("抽取时间：")[1][:20]
        assert "没有逾期" in last(await c.command("pending"))
        s.clock.advance(timedelta(days=6))  # past the response deadline (3 working days)
        pending = last(await c.command("pending"))
        assert "已逾期" in pending and "检查员S0" in pending
        # nobody was told (no chat bound): said, with what to do, and no claim that a reminder reached them
        assert "任务通知未送达" in pending and "请绑定（邀请码）或电话通知" in pending and "已提醒" not in pending
        status = last(await c.command("status", "P1/2026-12-01"))
        assert f"（其中 {sent} 项已逾期，{sent} 项的任务通知未送达）" in status
        verified = last(await c.command("verify", "P1/2026-12-01"))
        assert "✓" in verified and "✗" not in verified
        assert "没有预警" in last(await c.command("alerts"))
        assert "您所属部门的抽取中没有回避记录。" in last(await c.command("recusals"))
        await plans.add_plan(world.plan_file(tmp_path, "F1", flight=True, name="飞行计划"), s.clock)
        flight = await scheduled_draw("F1", clock=s.clock, zone=ZONE)
        assert "公布前保密" in last(await c.command("verify", flight.draw_ref))
        assert "尚未公布" in last(await c.command("status", flight.draw_ref))
        assert "不是有效的月份" in last(await c.command("report", "2026-13"))
        # the report and its chart (a photo with its caption) are sent one after the other but may
        # arrive in either order: matched by content, not position
        sent_report = await c.command("report")
        report = [m.text for m in sent_report]
        summaries = [t for t in report if t.startswith("【2026-12 月度报告】")]
        charts = [m for m in sent_report if m.text.startswith("2026-12 各风险等级的检查数与问题发现率")]
        assert len(summaries) == 1 and len(charts) == 1, report
        assert charts[0].photo, "the chart arrives as a picture"
        department = (await Department.get(code="SCJG")).name
        assert f"【2026-12 月度报告】{department}" in summaries[0] and "抽取 2 次" in summaries[0]
        assert list((db.data_dir / "reports").glob("2026-12-*.png"))
        chain = await audit.verify()
        assert chain[1] is None


async def test_confirm_draws_exactly_once_even_on_a_double_tap(db, tmp_path):
    async with spine(db, clock=world.clock()) as s:
        await two_plans(s, tmp_path)
        c = await person(s, Role.COORDINATOR, ["SCJG"])
        # no firing announced ahead: a draw now is off schedule: no Confirm, only a request for one
        preview = (await c.command("draw", "P1"))[-1]
        plan_id = (await plans.get_plan("P1")).id
        assert "计划外抽取" in preview.text and "/draw P1 理由" in preview.text
        assert preview.callback_data == [f"ofs:ask:{plan_id}"]
        assert await Firing.filter(plan_id=plan_id).count() == 0
        # an announced firing whose commitment was published only now: also off schedule, no Confirm
        late = await announce("P1", s.clock.now(), clock=s.clock, zone=ZONE)
        preview = (await c.command("draw", "P1"))[-1]
        assert "计划外抽取" in preview.text and preview.callback_data == [f"ofs:ask:{plan_id}"]
        assert await Draw.filter(plan_id=plan_id).count() == 0
        await withdraw(late.draw_ref, "公示过晚", actor="test", clock=s.clock)
        # a firing announced ahead: a double tap on its Confirm draws it once, the second says so
        s.clock.advance(timedelta(minutes=1))
        await announced_ahead("P1", s.clock.now(), clock=s.clock, zone=ZONE)
        firing = await Firing.get(draw_ref="P1/2026-12-01.2")
        preview = (await c.command("draw", "P1"))[-1]
        replies = await double_tap(c, preview, f"drw:go:{firing.id}")
        assert await Draw.filter(plan_id=plan_id).count() == 1
        texts = [m.text for m in replies]
        assert sum("已抽取 P1/2026-12-01.2" in t for t in texts) == 1
        assert any(f"未抽取：{firing.draw_ref} 已经抽取过（抽取时间 " in t for t in texts), texts
        # a firing announced for later offers no Confirm at all
        await announce("P1", s.clock.now() + timedelta(days=2), clock=s.clock, zone=ZONE)
        preview = (await c.command("draw", "P1"))[-1]
        assert "此前不能抽取" in preview.text and not preview.callback_data
        assert await Assignment.filter(draw__plan_id=plan_id).count() > 0


async def test_rejecting_a_recusal_reinstates_and_tells_the_right_people(db, tmp_path):
    async with spine(db, clock=world.clock()) as s:
        await two_plans(s, tmp_path)
        result = await scheduled_draw("P1", clock=s.clock, zone=ZONE)
        asg = await Assignment.filter(seat=1).order_by("id").prefetch_related("inspector", "inspection").first()
        mate = await Assignment.filter(inspection_id=asg.inspection_id, seat=2).prefetch_related("inspector").first()
        recusing = await inspector_chat(s, asg.inspector.cert_no)
        mate_chat = await inspector_chat(s, mate.inspector.cert_no)
        c = await person(s, Role.COORDINATOR, ["SCJG"])
        done = await recusals.recuse(
            asg.inspector_id,
            asg.id,
            ConflictType.CLOSE_RELATIVE,
            "配偶在该公司任职",
            clock=s.clock,
            zone=ZONE,
            locale="zh-CN",
        )
        recusal = await Recusal.get(assignment_id=asg.id).prefetch_related("replacement")
        replacement = await inspector_chat(s, recusal.replacement.cert_no)
        await s.deliver()
        for chat in (recusing, mate_chat, replacement, c):
            chat.new()
        listed = (await c.command("recusals"))[-1]
        assert "配偶在该公司任职" in listed.text and done.replacement_name in listed.text
        ask = (await c.press(listed, f"rjt:ask:{recusal.id}"))[-1]
        assert "确认驳回回避" in ask.text and f"rjt:confirm:{recusal.id}" in ask.callback_data
        # a recusal is named by who recused from which inspection, never by its row id
        labels = [b["text"] for row in listed.buttons for b in row]
        assert "驳回第 1 项" in labels and "1. " in listed.text
        assert not any(f"#{recusal.id}" in t for t in [listed.text, ask.text, *labels])
        with_note = (await c.say("经核实，亲属已于去年离职"))[-1]
        assert "经核实，亲属已于去年离职" in with_note.text
        replies = await double_tap(c, with_note, f"rjt:confirm:{recusal.id}")
        texts = [m.text for m in replies]
        assert sum("已驳回" in t and asg.inspector.name in t for t in texts) == 1
        # everyone concerned has a chat: the reply says they were told, and nobody is listed as not told
        done_text = next(t for t in texts if "已驳回：" in t)
        assert "并已通知其重新答复" in done_text and "未能通知" not in done_text
        assert f"{asg.inspector.name} 在 {result.draw_ref}/" in done_text and f"#{recusal.id}" not in done_text
        assert any("已被驳回" in t for t in texts)  # the second tap changed nothing
        await s.deliver()
        # the database: rejected, reinstated, cancelled, conflict withdrawn
        row = await Recusal.get(id=recusal.id)
        assert row.rejected_at is not None and row.rejection_note == "经核实，亲属已于去年离职"
        assert row.rejected_by.startswith("coordinator:")
        assert (await Assignment.get(id=asg.id)).status == AssignmentStatus.SENT
        assert (await Assignment.get(id=recusal.replacement_assignment_id)).status == AssignmentStatus.CANCELLED
        conflict = await Conflict.get(inspector_id=asg.inspector_id, source=ConflictSource.RECUSAL)
        assert conflict.withdrawn_at is not None
        # the people: the recusing inspector (with buttons again), the replacement, the team
        back = recusing.new()
        assert any(
            "驳回了您" in m.text and "经核实" in m.text and f"asg:accept:{asg.id}" in m.callback_data for m in back
        )
        assert any("已取消" in m.text and asg.inspector.name in m.text for m in replacement.new())
        told = mate_chat.new()
        assert any("重新加入" in m.text and recusal.replacement.name in m.text for m in told)
        assert not any("配偶" in m.text or "经核实" in m.text for m in told)  # reasons stay private
        # the reinstated inspector can accept with one tap
        card = next(m for m in back if f"asg:accept:{asg.id}" in m.callback_data)
        await recusing.press(card, f"asg:accept:{asg.id}")
        assert (await Assignment.get(id=asg.id)).status == AssignmentStatus.ACCEPTED
        # on the audit chain, and the published bundle (recusal line kept) still verifies
        chain = await audit.verify()
        assert chain[1] is None
        from models.audit import AuditRecord

        assert await AuditRecord.filter(action="recusal.rejected", subject=f"recusal:{recusal.id}").exists()
        verified = last(await c.command("verify", result.draw_ref))
        assert "✗" not in verified and "1" in verified and "回避" in verified
        listed = last(await c.command("recusals"))
        assert "已驳回" in listed


async def test_scoping_refusals_leak_nothing(db, tmp_path):
    async with spine(db, clock=world.clock()) as s:
        await two_plans(s, tmp_path)
        other = await scheduled_draw("P2", clock=s.clock, zone=ZONE)
        w_asg = await Assignment.filter(draw__draw_ref=other.draw_ref, seat=1).order_by("id").first()
        await recusals.recuse(
            w_asg.inspector_id, w_asg.id, ConflictType.OTHER, "卫健内部说明", clock=s.clock, zone=ZONE, locale="zh-CN"
        )
        w_recusal = await Recusal.get(assignment_id=w_asg.id)
        w_alert = await Alert.filter(kind="recusal_recorded").first()
        s.clock.advance(timedelta(days=6))
        c = await person(s, Role.COORDINATOR, ["SCJG"])

        def leaks(text: str) -> bool:
            return OTHER_PLAN in text or "检查员W" in text or "卫健内部说明" in text

        for command, args in (("plan", "P2"), ("draw", "P2"), ("status", other.draw_ref), ("verify", other.draw_ref)):
            outside = last(await c.command(command, args))
            missing = last(await c.command(command, args.replace("P2", "NOPE")))
            assert outside.replace("P2", "X") == missing.replace("NOPE", "X"), (command, outside, missing)
            assert not leaks(outside)
        for command in ("plans", "pending", "recusals", "alerts"):
            shown = last(await c.command(command))
            assert not leaks(shown) and "P2" not in shown, command
        # forged buttons for the other department's things (never shown to this coordinator)
        firing = await Firing.get(draw_ref=other.draw_ref)
        for n, data in enumerate(
            (
                f"rjt:confirm:{w_recusal.id}",
                f"rjt:ask:{w_recusal.id}",
                f"alr:ack:{w_alert.id}",
                f"drw:go:{firing.id}",
                f"pln:show:{(await plans.get_plan('P2')).id}",
            )
        ):
            await s.rt.on_event(
                InboundEvent(
                    channel="telegram",
                    external_id=f"forged-{n}",
                    sender=str(c.user.id),
                    kind=EventKind.BUTTON,
                    data=data,
                )
            )
        await s.deliver()
        answers = c.new()
        assert len(answers) == 5 and not any(leaks(m.text) for m in answers)
        # one refusal per forged button, each saying it found nothing in the coordinator's scope
        # (answers may arrive in any order: matched by content)
        expected = [
            "在您所属部门的抽取中没有找到这项回避记录。",  # rjt:confirm
            "在您所属部门的抽取中没有找到这项回避记录。",  # rjt:ask
            "没有找到您所属部门的这条预警。",  # alr:ack
            "该次抽取不属于您所属部门的计划。",  # drw:go
            "在您所属部门的计划中没有找到计划「",  # pln:show
        ]
        texts = [m.text for m in answers]
        for text in texts:
            match = next((e for e in expected if e in text), None)
            assert match is not None, (text, texts)
            expected.remove(match)
        assert (await Recusal.get(id=w_recusal.id)).rejected_at is None
        assert (await Alert.get(id=w_alert.id)).acknowledged_at is None
        # an inspector and an unknown chat are refused; an admin sees everything
        insp = await inspector_chat(s, "S01")
        insp.new()
        assert "只有协调员" in last(await insp.command("plans"))
        assert "只有协调员" in last(await insp.command("recusals"))
        stranger = Chat(s, s.sim.create_user("路人"))
        refused = last(await stranger.command("plans"))
        assert "仅供已登记" in refused and not leaks(refused) and "P1" not in refused
        admin = await person(s, Role.ADMIN, name="管理员")
        everything = last(await admin.command("plans"))
        assert "P1" in everything and OTHER_PLAN in everything
        assert "卫健内部说明" in last(await admin.command("recusals"))


async def test_long_lists_page_with_buttons(db, tmp_path):
    async with spine(db, clock=world.clock()) as s:
        await two_plans(s, tmp_path)
        for n in range(23):
            await raise_alert(
                f"test:{n}",
                "unstaffable.j2",
                {"plan": "测试计划", "draw_ref": "P1/x", "no": n + 1, "reason": "none_eligible"},
                {"SCJG"},
                s.clock.now(),
            )
        await raise_alert(
            "test:wsj",
            "unstaffable.j2",
            {"plan": OTHER_PLAN, "draw_ref": "P2/x", "no": 99, "reason": "none_eligible"},
            {"WSJ"},
            s.clock.now(),
        )
        c = await person(s, Role.COORDINATOR, ["SCJG"])
        await s.deliver()
        c.new()
        first = (await c.command("alerts"))[-1]
        assert "共 23 条" in first.text and "第 1/3 页" in first.text and "P1/x/23\n" in first.text + "\n"
        assert "P1/x/13\n" not in first.text + "\n" and "P2/x" not in first.text
        assert first.callback_data[-1] == "pg:alerts:2" and len(first.callback_data) == 11
        labels = [b["text"] for row in first.buttons for b in row]  # the list's numbers, not row ids
        assert labels[:2] == ["已知悉第 1 条", "已知悉第 2 条"] and "\n1. " in first.text
        await c.press(first, "pg:alerts:2")
        second = s.sim.message(c.user, first.message_id)  # the same message, edited in place
        assert (
            "第 2/3 页" in second.text and "P1/x/13\n" in second.text + "\n" and "P1/x/23\n" not in second.text + "\n"
        )
        assert second.callback_data[-2:] == ["pg:alerts:1", "pg:alerts:3"]
        await c.press(second, "pg:alerts:3")
        third = s.sim.message(c.user, first.message_id)
        assert (
            "第 3/3 页" in third.text and "P1/x/1\n" in third.text + "\n" and third.callback_data[-1] == "pg:alerts:2"
        )
        alert = await Alert.get(key="test:0")
        acked = last(await c.press(third, f"alr:ack:{alert.id}"))
        # named by its time and what it is about (P1/x/1), never by its row id
        assert "已标记为已知悉" in acked and "P1/x/1" in acked and f"#{alert.id}" not in acked
        assert (await Alert.get(id=alert.id)).acknowledged_at is not None
        again = last(await c.press(third, f"alr:ack:{alert.id}"))
        assert "此前已标记" in again
