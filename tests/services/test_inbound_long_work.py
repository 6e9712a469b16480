"""Commands and buttons join group commit, except those the router declares may start long work
(handlers.router.long_work): those get a transaction of their own, never batched."""

from __future__ import annotations

import asyncio

from core import db as dbmod
from core.channel import EventKind, InboundEvent
from handlers.router import BUTTONS, COMMANDS, LONG_BUTTONS, LONG_COMMANDS, long_work, route
from models.audit import AuditRecord
from models.draws import Assignment, AssignmentStatus
from models.messaging import InboundEvent as InboundRow
from models.messaging import Outbox, Role
from services import plans
from services.identity import create_invite
from services.inbound import receive
from tests.builders import scheduled_draw
from tests.services import draw_world as world

_ids = iter(range(50_000, 60_000))


def tg(sender: str, kind: EventKind, **kw) -> InboundEvent:
    return InboundEvent(channel="telegram", external_id=str(next(_ids)), sender=sender, kind=kind, **kw)


def cmd(sender: str, name: str, argument: str = "") -> InboundEvent:
    return tg(sender, EventKind.COMMAND, command=name, argument=argument, text=f"/{name} {argument}".strip())


def press(sender: str, data: str) -> InboundEvent:
    return tg(sender, EventKind.BUTTON, data=data, callback_id=f"cb{next(_ids)}")


async def _inspectors_with_assignments(tmp_path, clock, n: int = 2) -> list[tuple[str, Assignment]]:
    """``n`` inspectors bound to chats "601", "602", …, each with an open (sent) assignment."""
    await world.build(n_entities=12, n_scjg=6, n_wsj=0)
    await plans.add_plan(world.plan_file(tmp_path, "P1", a="0.5", b="0.5", c="0.5"), clock)
    await scheduled_draw("P1", clock=clock, zone=world.ZONE)
    out = []
    for i, asg in enumerate(await Assignment.filter(status=AssignmentStatus.SENT).prefetch_related("inspector")):
        if i == n:
            break
        chat = str(601 + i)
        code = await create_invite(Role.INSPECTOR, clock, cert_no=asg.inspector.cert_no)
        assert (await receive(cmd(chat, "start", code), route, clock)).outcome == "bound"
        out.append((chat, asg))
    assert len(out) == n
    return out


def test_the_declared_long_work_names_exist_and_only_they_are_long():
    assert LONG_COMMANDS <= COMMANDS.keys() and LONG_BUTTONS <= BUTTONS.keys()  # no typo slips through
    assert {c for c in COMMANDS if long_work(cmd("1", c))} == LONG_COMMANDS
    assert {b for b in BUTTONS if long_work(press("1", f"{b}:x:1"))} == LONG_BUTTONS
    assert not long_work(tg("1", EventKind.TEXT, text="draw"))


async def test_a_long_command_is_not_batched_and_a_short_one_is(db, tmp_path):
    clock = world.clock()
    [(chat, _)] = await _inspectors_with_assignments(tmp_path, clock, n=1)
    group = dbmod.group()
    before = group.items
    for name in ("verify", "draw", "report"):  # refused (not a coordinator), but each in its own transaction
        assert (await receive(cmd(chat, name, "X"), route, clock, long_work=long_work)).outcome == "coord_refused"
    assert group.items == before
    assert (await receive(cmd(chat, "tasks"), route, clock, long_work=long_work)).outcome == "tasks"
    assert group.items == before + 1
    # without the router's word every command keeps a transaction of its own (the safe default)
    assert (await receive(cmd(chat, "tasks"), route, clock)).outcome == "tasks"
    assert group.items == before + 1


async def test_a_button_press_in_a_batch_with_a_failing_event_still_commits(db, tmp_path):
    clock = world.clock()
    (chat_a, asg_a), (chat_b, _) = await _inspectors_with_assignments(tmp_path, clock, n=2)

    async def poisoned(ctx):
        if ctx.event.text == "poison":
            raise RuntimeError("a handler bug")
        return await route(ctx)

    events = [press(chat_a, f"asg:accept:{asg_a.id}"), tg(chat_b, EventKind.TEXT, text="poison"), cmd(chat_b, "tasks")]
    group = dbmod.group()
    batches, items = group.batches, group.items
    results = await asyncio.gather(*(receive(e, poisoned, clock, long_work=long_work) for e in events))
    assert [r.outcome for r in results] == ["accepted", "failed:RuntimeError", "tasks"]
    # one shared transaction for the three, then one for the failed event's record
    assert (group.batches - batches, group.items - items) == (2, 4)
    assert (await Assignment.get(id=asg_a.id)).status == AssignmentStatus.ACCEPTED
    assert await AuditRecord.filter(action="assignment.accepted", subject=f"assignment:{asg_a.id}").count() == 1
    stored = {r.external_id: r for r in await InboundRow.filter(external_id__in=[e.external_id for e in events])}
    assert stored[events[0].external_id].outcome == "accepted" and stored[events[0].external_id].processed_at
    assert stored[events[2].external_id].outcome == "tasks"
    assert [o.template for o in await Outbox.filter(address=chat_a).order_by("id")][-2:] == ["accepted.j2", "task.j2"]
    assert "internal_error.j2" in [o.template for o in await Outbox.filter(address=chat_b)]
