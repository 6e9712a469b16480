"""One public reference per inspection in chat (``P1/2026-12-01/7``, domain.refs): shown in the
task messages and /tasks, accepted by /task, /accept, /recuse, /result and /checkin, a bare
number only when it is unambiguous; /tasks pages ten lines at a time with ◀ ▶."""

from __future__ import annotations

import re

from domain.refs import inspection_ref
from models.draws import Assignment, AssignmentStatus
from services import plans
from tests.builders import scheduled_draw
from tests.e2e.harness import spine
from tests.e2e.test_inspector_chat import inspector_chat
from tests.services import draw_world as world

ZONE = world.ZONE
_INTERNAL = re.compile(r"#\d")  # an internal id as the old texts showed it (任务 #14)


async def two_plans(s, tmp_path):
    """Two inspectors on teams of two: both are on every inspection of both draws."""
    await world.build(n_entities=12, n_scjg=2, n_wsj=0)
    for code in ("P1", "P2"):
        await plans.add_plan(world.plan_file(tmp_path, code, a="1", b="1", c="1"), s.clock)
        await scheduled_draw(code, clock=s.clock, zone=ZONE)


async def mine(cert: str) -> list[Assignment]:
    rows = await Assignment.filter(inspector__cert_no=cert).prefetch_related("inspection__entity", "draw")
    return sorted(rows, key=lambda a: (a.draw.draw_ref, a.inspection.no))


def ref(a: Assignment) -> str:
    return inspection_ref(a.draw.draw_ref, a.inspection.no)


async def public_ref(assignment_id: int) -> str:
    """What an inspector types for an assignment: its inspection's public reference."""
    return ref(await Assignment.get(id=assignment_id).prefetch_related("draw", "inspection"))


async def test_tasks_pages_one_line_each_and_no_internal_ids(db, tmp_path):
    async with spine(db, clock=world.clock()) as s:
        await two_plans(s, tmp_path)
        cert = "S01"
        tasks = await mine(cert)
        assert len(tasks) > 10  # more than a page
        chat = await inspector_chat(s, cert)
        cards = chat.new()
        assert all(not _INTERNAL.search(m.text) for m in cards)
        first = (await chat.command("tasks"))[-1]
        assert f"共 {len(tasks)} 项" in first.text and "第 1/" in first.text
        lines = [x for x in first.text.splitlines() if " · " in x]
        assert len(lines) == 10
        assert first.callback_data == ["pg:tasks:2"]  # ▶ only: no wall of per-task buttons
        for line in lines:
            a = next(t for t in tasks if line.startswith(ref(t) + " "))
            assert a.inspection.entity.name in line
        await chat.press(first, "pg:tasks:2")
        second = s.sim.message(chat.user, first.message_id)  # the page is edited in place
        assert "第 2/" in second.text
        assert "pg:tasks:1" in second.callback_data
        shown = {x.split(" ")[0] for x in first.text.splitlines() + second.text.splitlines() if " · " in x}
        if len(tasks) <= 20:
            assert shown == {ref(t) for t in tasks}
        assert not _INTERNAL.search(first.text + second.text)


async def test_every_command_takes_the_reference(db, tmp_path):
    async with spine(db, clock=world.clock()) as s:
        await two_plans(s, tmp_path)
        tasks = await mine("S01")
        a, b = tasks[0], tasks[1]
        chat = await inspector_chat(s, "S01")
        chat.new()
        shown = (await chat.command("task", ref(a)))[-1]
        assert ref(a) in shown.text and a.inspection.entity.name in shown.text
        # typed on a phone: full-width slash and digits
        wide = ref(a).replace("/", "／")
        assert a.inspection.entity.name in (await chat.command("task", wide))[-1].text
        accepted = (await chat.command("accept", ref(a)))[-1]
        assert f"已接受任务 {ref(a)}" in accepted.text
        assert (await Assignment.get(id=a.id)).status == AssignmentStatus.ACCEPTED
        again = await chat.command("accept", ref(a))
        assert any("此前已接受" in m.text for m in again)
        recuse = (await chat.command("recuse", ref(b)))[-1]
        assert ref(b) in recuse.text and f"rcs:type:{b.id}:close_relative" in recuse.callback_data
        result = (await chat.command("result", ref(a)))[-1]
        assert ref(a) in result.text or "检查时段" in result.text  # the window may not be open yet
        checkin = (await chat.command("checkin", ref(a)))[-1]
        assert ref(a) in checkin.text


async def test_bare_numbers_and_bad_references(db, tmp_path):
    async with spine(db, clock=world.clock()) as s:
        await two_plans(s, tmp_path)
        tasks = await mine("S01")
        chat = await inspector_chat(s, "S01")
        chat.new()
        # number 1 exists in both draws: the reply lists both full references, nothing is done
        both = (await chat.command("accept", "1"))[-1]
        ones = [ref(t) for t in tasks if t.inspection.no == 1]
        assert len(ones) == 2 and all(r in both.text for r in ones)
        assert await Assignment.filter(inspector__cert_no="S01", status=AssignmentStatus.ACCEPTED).count() == 0
        # the old internal id is not a reference
        missing = (await chat.command("task", "P9/2026-12-01/1"))[-1]
        assert "没有找到" in missing.text and "P9/2026-12-01/1" in missing.text
        bad = (await chat.command("task", "abc"))[-1]
        assert "用法" in bad.text
        empty = (await chat.command("task"))[-1]
        assert "用法" in empty.text
        # once only one draw's number 1 is open, the bare number means that one
        first = next(t for t in tasks if t.inspection.no == 1)
        await Assignment.filter(id=first.id).update(status=AssignmentStatus.DONE)
        other = next(t for t in tasks if t.inspection.no == 1 and t.id != first.id)
        shown = (await chat.command("task", "第1号"))[-1]
        assert ref(other) in shown.text
