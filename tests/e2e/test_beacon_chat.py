"""Brief 14d §3 in chat: beacon values typed with /beacon and confirmed by a second coordinator's
button, through the real python-telegram-bot and the Bot API simulator; /plan shows them."""

from __future__ import annotations

from datetime import timedelta

from models.draws import BeaconEntry, Firing
from models.messaging import Role
from services.draws.announce import announce
from tests.e2e.harness import spine
from tests.e2e.test_coordinator_chat import double_tap, person, two_plans
from tests.services import draw_world as world

ZONE = world.ZONE
SOURCES = ["福彩3D 2026340期开奖号码", "体彩排列5 26340期开奖号码"]


async def test_beacon_values_typed_in_chat_and_confirmed_by_a_button(db, tmp_path):
    async with spine(db, clock=world.clock()) as s:
        await two_plans(s, tmp_path)
        asker = await person(s, Role.COORDINATOR, ["SCJG"], name="王芳")
        other = await person(s, Role.COORDINATOR, ["SCJG"], name="李娜")
        done = await announce("P1", s.clock.now() + timedelta(days=2), clock=s.clock, zone=ZONE, beacon_sources=SOURCES)
        plan = (await asker.command("plan", "P1"))[-1]
        assert "信标：以下来源的数值 1. 福彩3D 2026340期开奖号码" in plan.text and "尚未录入" in plan.text
        usage = (await asker.command("beacon", done.draw_ref))[-1]
        assert "/beacon 批次 数值" in usage.text
        wrong = (await asker.command("beacon", f"{done.draw_ref} 307"))[-1]
        assert await BeaconEntry.all().count() == 0 and wrong.text
        sent = (await asker.command("beacon", f"{done.draw_ref} 3 0 7 | 4 4 1 9 0"))[-1]
        entry = await BeaconEntry.get()
        assert f"{done.draw_ref} 的信标数值已发送" in sent.text and "福彩3D 2026340期开奖号码 = 0.3.7" in sent.text
        assert "#" not in sent.text  # named by the draw's public reference, not a row id
        ask = [m for m in other.new() if "请您确认" in m.text]
        assert len(ask) == 1 and ask[0].callback_data == [f"bcn:yes:{entry.id}", f"bcn:no:{entry.id}"]
        replies = await double_tap(other, ask[0], f"bcn:yes:{entry.id}")
        texts = [m.text for m in replies]
        assert sum("已确认" in t and "0.3.7/0.1.4.4.9/" in t for t in texts) == 1, texts
        assert any(f"{done.draw_ref} 的这组信标数值已处理（已确认，李娜）" in t for t in texts), texts
        assert not any("#" in t or "confirmed" in t for t in texts), texts  # no row id, no raw status
        firing = await Firing.get(draw_ref=done.draw_ref)
        assert firing.beacon_values["values"] == ["0.3.7", "0.1.4.4.9"]
        told = [m.text for m in asker.new() if "已由" in m.text and "确认" in m.text]
        assert told and "0.3.7 | 0.1.4.4.9" in told[0] and "#" not in told[0] and "已由 李娜 确认" in told[0]
        assert "王芳录入了" in ask[0].text and "coordinator:" not in ask[0].text + "".join(texts + told)
        plan = (await asker.command("plan", "P1"))[-1]
        assert "福彩3D 2026340期开奖号码 = 0.3.7" in plan.text and "尚未录入" not in plan.text
