"""Issue 13 §1, a role belongs to a person, not to a chat: through the real python-telegram-bot
and the Bot API simulator's groups and supergroups, on SQLite and PostgreSQL.

Invites open only in a private chat (in a group: nothing bound, one hint per group); a group acts
for nobody, so a member never sees an inspector's tasks nor presses their buttons (the press is
refused on the presser's screen and changes nothing; a command is answered, once a member, only
with the hint to use a private chat); a command addressed to another bot is ignored; and the bindings made in groups before all this are listed and revoked by a CLI
command, audited."""

from __future__ import annotations

import argparse

from bot.commands import bindings as bindings_cli
from core import db as dbmod
from core.channel import Button, EventKind, Outgoing
from core.render import text
from models.audit import AuditRecord
from models.draws import Assignment, AssignmentStatus
from models.messaging import Channel, ChatBinding, InboundEvent, InviteCode, Outbox, OutboxStatus, Role
from services.identity import create_invite
from tests.e2e.harness import eventually, spine
from tests.e2e.test_inspector_chat import inspector_chat, setup_draw
from tests.services import draw_world as world


async def handled(s, sender: int, count: int) -> list[str]:
    """Wait until ``count`` events from chat ``sender`` are stored and handled; send the replies;
    return their outcomes, oldest first. The bot's own membership updates (the simulator's group
    adds the bot, a ``my_chat_member`` update) are no one's event and are left out."""

    async def done():
        rows = (
            await InboundEvent.filter(sender=str(sender))
            .exclude(kind=EventKind.MEMBERSHIP.value)
            .order_by("id")
            .values_list("outcome", flat=True)
        )
        return rows if len(rows) >= count and all(rows) else None

    outcomes = await eventually(done)
    await s.deliver()
    return list(outcomes)


async def legacy_group_binding(group: int, inspector_id: int) -> ChatBinding:
    """A binding of a group's chat, as an invite opened in a group made one before issue 13."""
    return await ChatBinding.create(
        channel=Channel.TELEGRAM, address=str(group), role=Role.INSPECTOR, inspector_id=inspector_id
    )


async def test_an_invite_opened_in_a_group_binds_nothing_and_hints_once(db, tmp_path):
    async with spine(db, clock=world.clock()) as s:
        w = await world.build(n_entities=4, n_scjg=2, n_wsj=0)
        inspector, member = s.sim.create_user("检查员S01"), s.sim.create_user("群成员")
        group = s.sim.create_group("执法一队工作群", [inspector, member])
        code = await create_invite(Role.INSPECTOR, s.clock, cert_no="S01")
        s.sim.send_command(inspector, "start", code, chat=group)
        s.sim.send_command(member, "start", code, chat=group)  # the same code again, by someone else
        s.sim.send_command(inspector, "start", chat=group)
        assert await handled(s, group, 3) == ["group_start"] * 3
        assert not await ChatBinding.exists()
        said = s.sim.messages(group)
        assert len(said) == 1 and "私聊" in said[0].text  # the hint, once for the group, however often asked
        assert (await InviteCode.get()).used_at is None  # the invite is still good, in a private chat
        chat = await inspector_chat_with_code(s, inspector, code)
        binding = await ChatBinding.get()
        assert binding.address == str(inspector.id) and binding.inspector_id == w.inspectors["S01"].id
        assert any("绑定" in m.text for m in chat)


async def inspector_chat_with_code(s, user, code):
    s.sim.send_command(user, "start", code)
    await handled(s, user.id, 1)
    return s.sim.messages(user)


async def test_a_group_member_cannot_see_the_inspectors_tasks(db, tmp_path):
    async with spine(db, clock=world.clock()) as s:
        await setup_draw(s, tmp_path)
        asg = await Assignment.filter(seat=1).order_by("id").prefetch_related("inspector").first()
        inspector, member = s.sim.create_user("检查员"), s.sim.create_user("群成员")
        group = s.sim.create_group("某某群", [inspector, member], supergroup=True)
        await legacy_group_binding(group, asg.inspector_id)
        s.sim.send_command(member, "tasks", chat=group)
        s.sim.send_command(member, "task", str(asg.id), chat=group)
        s.sim.send_text(member, "你好", chat=group)
        s.sim.send_command(inspector, "tasks", chat=group)  # a group acts for nobody, the inspector included
        assert await handled(s, group, 4) == ["group_command", "group_command", "group_ignored", "group_command"]
        # no task and none of the inspector's own messages: each person is told once to ask privately
        said = [m.text for m in s.sim.messages(group)]
        assert len(said) == 2 and all("私聊" in t and "P1/" not in t for t in said), said
        assert await Outbox.filter(recipient_id=asg.inspector_id, status=OutboxStatus.NO_ADDRESS).exists()


async def test_a_press_by_someone_else_is_refused_and_changes_nothing(db, tmp_path):
    async with spine(db, clock=world.clock()) as s:
        await setup_draw(s, tmp_path)
        inspector, member = s.sim.create_user("检查员"), s.sim.create_user("群成员")
        group = s.sim.create_group("某某群", [inspector, member])
        asg = await Assignment.filter(seat=1).order_by("id").prefetch_related("inspector").first()
        await legacy_group_binding(group, asg.inspector_id)
        # a card the bot posted in the group before issue 13, buttons and all
        accept = Button("接受", f"asg:accept:{asg.id}")
        await s.channel.send(Outgoing(address=str(group), text="任务", buttons=((accept,),)))
        card = next(m for m in s.sim.messages(group) if f"asg:accept:{asg.id}" in m.callback_data)
        before = len(s.sim.messages(group))
        s.sim.press_button(member, card.message_id, data=f"asg:accept:{asg.id}", chat=group)
        assert await handled(s, group, 1) == ["foreign_press"]
        answers = await eventually(lambda: s.sim.callback_answers(member))
        assert answers[0]["text"] == text("button_not_yours")
        assert (await Assignment.get(id=asg.id)).status == AssignmentStatus.SENT
        assert len(s.sim.messages(group)) == before  # nothing said into the group
        assert not await AuditRecord.filter(action="assignment.accepted").exists()


async def test_a_command_for_another_bot_is_ignored(db, tmp_path):
    async with spine(db, clock=world.clock()) as s:
        await world.build(n_entities=4, n_scjg=2, n_wsj=0)
        stranger = s.sim.create_user("路人")
        group = s.sim.create_group("别人的群", [stranger], supergroup=True)
        s.sim.send_command(stranger, "report@some_other_bot", "42", chat=group)
        assert await handled(s, group, 1) == ["other_bot"]
        assert s.sim.messages(group) == []  # nothing posted into someone else's group
        s.sim.send_command(stranger, "help@Some_Other_Bot")
        s.sim.send_command(stranger, f"help@{s.channel.username}")  # addressed to us: answered
        assert await handled(s, stranger.id, 2) == ["other_bot", "unknown"]
        assert len(s.sim.messages(stranger)) == 1
        event = await InboundEvent.filter(sender=str(group)).exclude(kind=EventKind.MEMBERSHIP.value).first()
        assert event.payload["addressee"] == "some_other_bot" and event.payload["chat_type"] == "supergroup"
        assert event.payload["user"] == str(stranger.id)


async def test_bindings_groups_lists_and_revokes_the_old_group_bindings(db, tmp_path, capsys):
    async with spine(db, clock=world.clock()) as s:
        w = await world.build(n_entities=4, n_scjg=2, n_wsj=0)
        inspector, member = s.sim.create_user("检查员"), s.sim.create_user("群成员")
        group = s.sim.create_group("某某群", [inspector, member])
        old = await legacy_group_binding(group, w.inspectors["S01"].id)
        await inspector_chat(s, "S02")  # a person's own binding, made in a private chat
    await dbmod.close()
    try:
        assert await bindings_cli.groups(argparse.Namespace(revoke=False), db) == 0
        listed = capsys.readouterr().out
        assert f"#{old.id}" in listed and str(group) in listed and w.inspectors["S01"].name in listed
        assert "1" in listed.splitlines()[-1]
        assert await bindings_cli.groups(argparse.Namespace(revoke=True), db) == 0
        assert f"#{old.id}" in capsys.readouterr().out
        assert await bindings_cli.groups(argparse.Namespace(revoke=False), db) == 0
        assert "#" not in capsys.readouterr().out
    finally:
        await dbmod.init(db)
    assert (await ChatBinding.get(id=old.id)).revoked_at is not None
    assert await ChatBinding.filter(revoked_at__isnull=True).count() == 1  # the private one stays
    record = await AuditRecord.get(action="binding.revoked")
    assert record.subject == f"binding:{old.id}" and record.data["reason"] == "group_chat"
