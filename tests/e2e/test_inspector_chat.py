"""An inspector's week in chat, through the real python-telegram-bot and the Bot API simulator:
the assignment arrives with two buttons; accept; recuse with a drawn replacement; stale and
double taps; another inspector's task; standing conflicts."""

from __future__ import annotations

from domain.refs import inspection_ref
from models.alerts import Alert
from models.directory import Conflict, ConflictSource
from models.draws import Assignment, AssignmentStatus, Recusal
from models.messaging import ChatBinding, Role
from services import audit, plans
from services.identity import create_invite
from tests.builders import scheduled_draw
from tests.e2e.harness import eventually, spine
from tests.services import draw_world as world

ZONE = world.ZONE


async def setup_draw(s, tmp_path, **plan):
    w = await world.build(n_entities=12, n_scjg=6, n_wsj=0)
    await plans.add_plan(world.plan_file(tmp_path, "P1", a="0.5", b="0.5", c="0.5", **plan), s.clock)
    result = await scheduled_draw("P1", clock=s.clock, zone=ZONE)
    return w, result


async def bind(s, cert: str):
    user = s.sim.create_user(f"检查员{cert}")
    code = await create_invite(Role.INSPECTOR, s.clock, cert_no=cert)
    s.sim.send_command(user, "start", code)
    await eventually(lambda: ChatBinding.filter(address=str(user.id)).exists())
    return user


class Chat:
    """One virtual inspector: act, then wait until the bot has handled it and answered."""

    def __init__(self, s, user):
        self.s, self.user, self.seen = s, user, 0

    async def settle(self, before: int | None = None):
        """Wait until the bot has stored and handled our last action, then send its replies."""
        from models.messaging import InboundEvent

        async def handled() -> bool:
            n = await InboundEvent.filter(sender=str(self.user.id)).count()
            pending = await InboundEvent.filter(sender=str(self.user.id), outcome="").exists()
            return n > (before or 0) and not pending

        await eventually(handled)
        await self.s.deliver()

    async def _count(self) -> int:
        from models.messaging import InboundEvent

        return await InboundEvent.filter(sender=str(self.user.id)).count()

    def new(self):
        msgs = self.s.sim.messages(self.user)
        out, self.seen = msgs[self.seen :], len(msgs)
        return out

    async def command(self, command, arg=""):
        before = await self._count()
        self.s.sim.send_command(self.user, command, arg)
        await self.settle(before)
        return self.new()

    async def press(self, message, data):
        before = await self._count()
        self.s.sim.press_button(self.user, message.message_id, data=data)
        await self.settle(before)
        return self.new()

    async def say(self, text):
        before = await self._count()
        self.s.sim.send_text(self.user, text)
        await self.settle(before)
        return self.new()


async def inspector_chat(s, cert):
    user = await bind(s, cert)
    chat = Chat(s, user)
    await chat.settle()
    return chat


async def test_assignment_accept_and_double_tap(db, tmp_path):
    async with spine(db, clock=world.clock()) as s:
        w, result = await setup_draw(s, tmp_path)
        asg = (
            await Assignment.filter(seat=1)
            .order_by("id")
            .prefetch_related("inspector", "inspection__entity", "draw")
            .first()
        )
        ref = inspection_ref(asg.draw.draw_ref, asg.inspection.no)
        chat = await inspector_chat(s, asg.inspector.cert_no)
        msgs = chat.new()
        card = next(m for m in msgs if ref in m.text and m.buttons)
        assert f"#{asg.id}" not in card.text
        assert asg.inspection.entity.name in card.text
        assert card.callback_data == [f"asg:accept:{asg.id}", f"asg:recuse:{asg.id}"]
        replies = await chat.press(card, f"asg:accept:{asg.id}")
        assert any(f"已接受任务 {ref}" in m.text for m in replies)
        assert (await Assignment.get(id=asg.id)).status == AssignmentStatus.ACCEPTED
        assert s.sim.message(chat.user, card.message_id).buttons[0][0]["callback_data"] == f"asg:recuse:{asg.id}"
        again = await chat.press(s.sim.message(chat.user, card.message_id), f"asg:recuse:{asg.id}")
        assert any("利益冲突类型" in m.text for m in again)
        tasks = await chat.command("tasks")
        line = next(x for x in tasks[-1].text.splitlines() if x.startswith(ref))
        assert asg.inspection.entity.name in line and "已接受" in line and f"#{asg.id}" not in tasks[-1].text
        chain = await audit.verify()
        assert chain[1] is None and chain[0] >= 1


async def test_recusal_draws_a_replacement_and_tells_everyone(db, tmp_path):
    async with spine(db, clock=world.clock()) as s:
        w, result = await setup_draw(s, tmp_path)
        asg = await Assignment.filter(seat=1).order_by("id").prefetch_related("inspector", "inspection").first()
        mate = await Assignment.filter(inspection_id=asg.inspection_id, seat=2).prefetch_related("inspector").first()
        chat = await inspector_chat(s, asg.inspector.cert_no)
        mate_chat = await inspector_chat(s, mate.inspector.cert_no)
        card = next(m for m in chat.new() if m.callback_data == [f"asg:accept:{asg.id}", f"asg:recuse:{asg.id}"])
        mate_chat.new()
        step1 = (await chat.press(card, f"asg:recuse:{asg.id}"))[-1]
        assert f"rcs:type:{asg.id}:close_relative" in step1.callback_data
        step2 = (await chat.press(step1, f"rcs:type:{asg.id}:close_relative"))[-1]
        assert "近亲属" in step2.text
        step3 = (await chat.say("配偶在该公司任财务"))[-1]
        assert "配偶在该公司任财务" in step3.text and f"rcs:confirm:{asg.id}" in step3.callback_data
        done = await chat.press(step3, f"rcs:confirm:{asg.id}")
        assert any("替补" in m.text for m in done), [m.text for m in done]
        recusal = await Recusal.get(assignment_id=asg.id).prefetch_related("replacement")
        assert recusal.replacement is not None and recusal.replacement_id != asg.inspector_id
        assert await Conflict.filter(
            inspector_id=asg.inspector_id, entity_id=(await asg.inspection).entity_id, source=ConflictSource.RECUSAL
        ).exists()
        told = mate_chat.new()
        assert any(asg.inspector.name in m.text and recusal.replacement.name in m.text for m in told)
        note_alert = await Alert.get(kind="recusal_recorded")
        assert note_alert.context["note"] == "配偶在该公司任财务"
        # the note never reaches the team
        assert not any("配偶" in m.text for m in told)
        # a stale tap on the old card changes nothing and says so
        stale = await chat.press(s.sim.message(chat.user, card.message_id), f"asg:accept:{asg.id}")
        assert any("已回避" in m.text for m in stale)
        assert (await Assignment.get(id=asg.id)).status == AssignmentStatus.RECUSED


async def test_no_eligible_replacement_flags_unstaffable(db, tmp_path):
    async with spine(db, clock=world.clock()) as s:
        # two inspectors for teams of two: nobody is left to replace a recusal
        await world.build(n_entities=4, n_scjg=2, n_wsj=0)
        await plans.add_plan(world.plan_file(tmp_path, "P1", a="0.25", b="0.25", c="0.25"), s.clock)
        await scheduled_draw("P1", clock=s.clock, zone=ZONE)
        asg = await Assignment.filter(seat=1).order_by("id").prefetch_related("inspector").first()
        chat = await inspector_chat(s, asg.inspector.cert_no)
        card = next(m for m in chat.new() if f"asg:recuse:{asg.id}" in m.callback_data)
        step1 = (await chat.press(card, f"asg:recuse:{asg.id}"))[-1]
        step2 = (await chat.press(step1, f"rcs:type:{asg.id}:financial_interest"))[-1]
        step3 = (await chat.press(step2, f"rcs:skip:{asg.id}"))[-1]
        done = await chat.press(step3, f"rcs:confirm:{asg.id}")
        assert any("暂无符合条件的替补" in m.text for m in done)
        assert await Alert.filter(kind="unstaffable").exists()


async def test_inspector_cannot_see_or_touch_someone_elses_task(db, tmp_path):
    async with spine(db, clock=world.clock()) as s:
        w, result = await setup_draw(s, tmp_path)
        mine = await Assignment.filter(seat=1).order_by("id").prefetch_related("inspector").first()
        other = (
            await Assignment.exclude(inspector_id=mine.inspector_id)
            .exclude(
                inspection_id__in=[a.inspection_id for a in await Assignment.filter(inspector_id=mine.inspector_id)]
            )
            .prefetch_related("inspection__entity", "draw")
            .first()
        )
        chat = await inspector_chat(s, mine.inspector.cert_no)
        chat.new()
        shown = await chat.command("task", inspection_ref(other.draw.draw_ref, other.inspection.no))
        assert "没有找到" in shown[-1].text and other.inspection.entity.name not in shown[-1].text
        # a forged button press for someone else's assignment (data not on any of our messages)
        card = next(m for m in s.sim.messages(chat.user) if m.buttons)
        await chat.press(card, f"asg:accept:{mine.id}")  # the real button works…
        assert (await Assignment.get(id=mine.id)).status == AssignmentStatus.ACCEPTED
        assert (await Assignment.get(id=other.id)).status == AssignmentStatus.SENT


async def test_conflicts_declare_list_withdraw(db, tmp_path):
    async with spine(db, clock=world.clock()) as s:
        w = await world.build(n_entities=6, n_scjg=2, n_wsj=0)
        chat = await inspector_chat(s, "S01")
        chat.new()
        found = (await chat.command("conflicts", "测试3号"))[-1]
        entity = next(e for e in w.entities if e.name == "青岛测试3号有限公司")
        assert f"cfl:pick:{entity.id}" in found.callback_data
        types = (await chat.press(found, f"cfl:pick:{entity.id}"))[-1]
        confirm = (await chat.press(types, f"cfl:type:{entity.id}:former_employment"))[-1]
        assert not await Conflict.exists()  # nothing is registered before the confirmation
        assert f"cfl:ok:{entity.id}:former_employment" in confirm.callback_data
        declared = (await chat.press(confirm, f"cfl:ok:{entity.id}:former_employment"))[-1]
        assert "青岛测试3号有限公司" in declared.text
        row = await Conflict.get(inspector_id=w.inspectors["S01"].id, entity_id=entity.id)
        assert row.source == ConflictSource.DECLARED
        listed = (await chat.command("conflicts"))[-1]
        assert "曾在该单位任职" in listed.text and f"cfl:del:{row.id}" in listed.callback_data
        gone = (await chat.press(listed, f"cfl:del:{row.id}"))[-1]
        assert "已撤回" in gone.text
        assert (await Conflict.get(id=row.id)).withdrawn_at is not None
        too_short = (await chat.command("conflicts", "青"))[-1]
        assert "至少" in too_short.text
