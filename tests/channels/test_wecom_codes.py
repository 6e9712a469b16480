"""A card's ResponseCode kept in the database: another instance (or this one after a restart)
updates the card; the code is used once and not after WeCom's 72 hours."""

from __future__ import annotations

from bot.channels.wecom import WecomChannel
from core.channel import Button, Outgoing
from core.settings import Settings
from models.messaging import WecomResponseCode
from services.wecom_codes import TTL, DbResponseCodes
from simulators.wecom import WecomSimulator
from tests.channels.test_wecom import Clock
from tests.e2e.wecom_harness import wecom_settings


async def test_another_instance_updates_the_card_once(db, tmp_path):
    clock = Clock()
    sim = WecomSimulator(members=("alice", "bob"), enforce_limits=False, now=clock)
    await sim.start()
    settings = wecom_settings(Settings(data_dir=tmp_path), sim.url)
    pressed = WecomChannel(settings, now=clock, codes=DbResponseCodes())  # the instance the press reached
    other = WecomChannel(settings, now=clock, codes=DbResponseCodes())  # the one that sends the answer
    try:
        task_id = await pressed.send(Outgoing("alice", "任务", ((Button("接受", "a:1"), Button("回避", "r:1")),)))
        sim.response_codes["c0de"] = ("alice", task_id, clock() + TTL.total_seconds())
        await pressed.remember_press(task_id, "alice", "c0de")
        await pressed.remember_press(task_id, "alice", "c0de")  # WeCom's retry of the same event: one row
        assert await WecomResponseCode.filter(task_id=task_id).count() == 1
        await other.send(Outgoing("alice", "已接受", ((Button("回避", "r:1"),),), edit_message_id=task_id))
        update = sim.member("alice").received[-1]
        assert update["msgtype"] == "update" and [b["key"] for b in update["card"]["button_list"]] == ["r:1"]
        assert await WecomResponseCode.filter(task_id=task_id).count() == 0  # used: gone
        await pressed.send(Outgoing("alice", "再改一次", edit_message_id=task_id))  # no code left: sent anew
        assert sim.member("alice").received[-1]["text"] == "再改一次"
    finally:
        await pressed.stop()
        await other.stop()
        await sim.stop()


async def test_a_code_is_not_used_after_72_hours_nor_for_another_member(db):
    codes = DbResponseCodes()
    now = 1_800_000_000.0
    await codes.remember("t1", "alice", "c1", now)
    await codes.remember("t2", "alice", "c2", now)
    assert await codes.take("t1", "bob", now + 1) is None  # not bob's card
    assert await codes.take("t1", "alice", now + TTL.total_seconds() + 1) is None  # expired
    assert await codes.take("t2", "alice", now + TTL.total_seconds() - 1) == "c2"
    assert await codes.take("t2", "alice", now + 2) is None  # once
    await codes.remember("t3", "bob", "c3", now + TTL.total_seconds() + 5)  # sweeps the expired ones
    assert await WecomResponseCode.all().values_list("task_id", flat=True) == ["t3"]
