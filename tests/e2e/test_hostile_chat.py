"""What a curious or hostile person types into the coordinators' commands, through the real
python-telegram-bot and the Bot API simulator: huge numbers, long names, full-width digits from a
Chinese phone keyboard. Each case was a defect (docs/messaging.md, "What people read and type"):
every one now gets a clear answer that is delivered, and nothing is lost."""

from __future__ import annotations

from datetime import timedelta

from core.channel import Button, Outgoing
from models.draws import BeaconEntry, OffScheduleRequest
from models.messaging import ChatBinding, InboundEvent, Outbox, OutboxStatus, Role
from services.draws.announce import announce
from tests.e2e.harness import spine
from tests.e2e.test_coordinator_chat import person, two_plans
from tests.e2e.test_groups import handled
from tests.e2e.test_inspector_chat import Chat, inspector_chat
from tests.services import draw_world as world

SOURCES = ["福彩3D 2026340期开奖号码", "体彩排列5 26340期开奖号码"]
LONG_NAME = "青岛市崂山区某某食品经营有限公司第一分公司"  # 21 characters: longer than a credit code


async def test_typed_input_from_a_phone_is_read_or_refused_clearly(db, tmp_path):
    async with spine(db, clock=world.clock()) as s:
        w = await two_plans(s, tmp_path)
        c = await person(s, Role.COORDINATOR, ["SCJG"], name="王芳")
        await person(s, Role.COORDINATOR, ["SCJG"], name="李娜")
        done = await announce(
            "P1", s.clock.now() + timedelta(days=2), clock=s.clock, zone=world.ZONE, beacon_sources=SOURCES
        )
        target = w.entities[1]
        full_width_code = target.uscc.translate({c: c + 0xFEE0 for c in range(0x21, 0x7F)})
        # (command, argument, a fragment of the answer): every answer is delivered
        cases = [
            # a name longer than 18 characters was compared with the credit-code column: internal error
            ("risk", LONG_NAME, "名称包含它的主体"),
            ("risk", full_width_code, target.name),
            # a 4,000-character month was echoed whole: a reply past Telegram's 4,096, dead-lettered
            ("report", "9" * 4000, "不是有效的月份"),
            ("report", "２０２６-１２", "2026-12"),
            ("draw", "Ｐ１", "抽取预览"),
            ("beacon", f"{done.draw_ref} {'1' + '0' * 400} 5", "不是数值"),
            ("beacon", f"{done.draw_ref} ３ ０ ７ ｜ ４ ４ １ ９ ０", "0.3.7"),
        ]
        for command, argument, expected in cases:
            said = [m.text for m in await c.command(command, argument)]
            assert said and expected in said[-1], (command, argument[:40], said)
            assert len(said[-1]) < 1000
        assert not await InboundEvent.filter(outcome__startswith="failed").exists()
        assert not await Outbox.filter(status=OutboxStatus.DEAD).exists()
        assert (await BeaconEntry.get()).values == ["0.3.7", "0.1.4.4.9"]


#: Every command of the second road sent in a group by a coordinator who may use them in private.
GROUP_COMMANDS = [
    ("draw", "P1 原定批次名录导入错误，需补抽"),
    ("beacon", "P1/2026-12-03 3 0 7 | 4 4 1"),
    ("risk", "食品"),
    ("riskmodels", ""),
    ("riskoverride", "91370202MA00000012 A 2027-05-31 信用修复已完成"),
    ("riskwithdraw", "1 复核"),
    ("approve", "P1/2026-12-01/1"),
    ("return", "P1/2026-12-01/1 请补充照片"),
    ("uphold", "P1/2026-12-01/1"),
    ("recheck", "P1/2026-12-01/1 已整改"),
    ("tasks", ""),
    ("alerts", ""),
    ("status", "P1/2026-12-01"),
]


async def test_in_a_group_every_command_is_refused_politely_and_reveals_nothing(db, tmp_path):
    async with spine(db, clock=world.clock()) as s:
        w = await two_plans(s, tmp_path)
        c = await person(s, Role.COORDINATOR, ["SCJG"], name="王芳")
        await person(s, Role.COORDINATOR, ["SCJG"], name="李娜")
        other = s.sim.create_user("群成员")
        group = s.sim.create_group("执法协调群", [c.user, other], supergroup=True)
        for command, argument in GROUP_COMMANDS:
            s.sim.send_command(c.user, command, argument, chat=group)
        s.sim.send_command(other, "risk", "食品", chat=group)
        outcomes = await handled(s, group, len(GROUP_COMMANDS) + 1)
        assert outcomes == ["group_command"] * (len(GROUP_COMMANDS) + 1)
        said = [m.text for m in s.sim.messages(group)]
        # one polite refusal per member however many commands they try, pointing to a private chat
        assert len(said) == 2 and all("私聊" in t for t in said), said
        assert not any(e.name in t or e.uscc in t for e in w.entities for t in said)
        assert not await OffScheduleRequest.exists() and not await BeaconEntry.exists()
        assert c.new() == []  # nothing was run for them in private either


async def test_the_coordinators_commands_refuse_everyone_else_the_same_way(db, tmp_path):
    async with spine(db, clock=world.clock()) as s:
        await two_plans(s, tmp_path)
        inspector = await inspector_chat(s, "S01")
        inspector.new()  # the welcome
        revoked = await person(s, Role.COORDINATOR, ["SCJG"], name="已撤销")
        binding = await ChatBinding.get(address=str(revoked.user.id))
        binding.revoked_at = s.clock.now()
        await binding.save()
        stranger = Chat(s, s.sim.create_user("路人"))
        commands = [(c, a) for c, a in GROUP_COMMANDS if c not in ("recheck", "tasks")]  # the inspector's own
        for command, argument in commands:
            # an inspector was told "not understood" for /approve, /return, /uphold: now the one refusal
            said = [m.text for m in await inspector.command(command, argument)]
            assert said == ["只有协调员可以使用此命令。"], (command, said)
            for chat in (revoked, stranger):  # nobody known: the polite refusal, nothing else
                said = [m.text for m in await chat.command(command, argument)]
                assert len(said) == 1 and "仅供已登记" in said[0], (command, said)
        assert not await OffScheduleRequest.exists() and not await BeaconEntry.exists()


async def test_a_reply_longer_than_a_telegram_message_arrives_in_parts(db):
    """A text past Telegram's 4,096 (UTF-16) was refused whole (bad_request, permanent: the row
    went dead and the person heard nothing); it now arrives as several messages, in order, the
    buttons under the last; an edit, one message by nature, is cut."""
    async with spine(db, clock=world.clock()) as s:
        chat = s.sim.create_group("工作群", [s.sim.create_user("王芳")])  # any chat the bot may write to
        line = "🙂" + "检" * 98 + "\n"  # 101 code points, 102 UTF-16 units: an emoji counts twice
        body = line * 100  # 10,200 units
        accept = Button("接受", "asg:accept:1")
        await s.channel.send(Outgoing(address=str(chat), text=body, buttons=((accept,),)))
        got = s.sim.messages(chat)
        assert len(got) == 3 and "".join(m.text + "\n" for m in got) == body
        assert [m.callback_data for m in got] == [[], [], ["asg:accept:1"]]
        edited = await s.channel.send(Outgoing(address=str(chat), text=body, edit_message_id=str(got[-1].message_id)))
        shown = s.sim.message(chat, int(edited)).text
        assert shown.endswith("…") and len(shown.encode("utf-16-le")) // 2 <= 4096
