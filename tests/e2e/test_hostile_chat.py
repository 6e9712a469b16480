"""What a curious or hostile person types into the coordinators' commands, through the real
python-telegram-bot and the Bot API simulator: huge numbers, long names, full-width digits from a
Chinese phone keyboard. Each case was a defect (docs/messaging.md, "What people read and type"):
every one now gets a clear answer that is delivered, and nothing is lost."""

from __future__ import annotations

from datetime import timedelta

from models.draws import BeaconEntry
from models.messaging import InboundEvent, Outbox, OutboxStatus, Role
from services.draws.announce import announce
from tests.e2e.harness import spine
from tests.e2e.test_coordinator_chat import person, two_plans
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
