"""The name behind an actor string, as a chat message or a CLI text shows it (zh-CN and en)."""

from __future__ import annotations

from datetime import UTC, datetime

from core.render import text
from models.messaging import Channel, ChatBinding, Role
from services import people
from tests import builders


def shown(who, locale="zh-CN") -> str:
    return text("who", locale=locale, p=who)


async def binding(address: str, name: str = "", role=Role.COORDINATOR, **kw) -> ChatBinding:
    return await ChatBinding.create(
        channel=Channel.TELEGRAM, address=address, role=role, departments=["SCJG"], display_name=name, **kw
    )


async def test_every_actor_form(db):
    named = await binding("1001", "王芳")
    blank = await binding("1002", "  ")
    admin = await binding("1003", "李主任", role=Role.ADMIN)
    insp = await builders.inspector()
    insp_binding = await binding("1004", "tg name", role=Role.INSPECTOR, inspector=insp)
    actors = [
        f"coordinator:{named.id}",
        f"coordinator:{blank.id}",
        f"admin:{admin.id}",
        f"coordinator:{insp_binding.id}",
        f"inspector:{insp.id}",
        "coordinator:999999",
        "system",
        "scheduler:risk_mix",
        "cli",
        "张三",
    ]
    found = await people.whos([*actors, "", actors[0]])
    assert set(found) == {*actors, ""}
    assert shown(found[""]) == "（未署名）"
    zh = [shown(found[a]) for a in actors]
    assert zh == [
        "王芳",
        f"协调员（#{blank.id}）",
        "李主任",
        "张伟",  # an inspector's binding: the directory's name, not the chat's
        "张伟",
        "协调员（#999999）",  # no such binding (deleted, or never was)
        "系统",
        "定时任务",
        "命令行操作员",
        "张三",
    ]
    en = [shown(found[a], "en") for a in actors]
    assert en[1] == f"coordinator #{blank.id}"
    assert en[5:9] == ["coordinator #999999", "the system", "a scheduled task", "an operator at the command line"]
    assert en[0] == "王芳" and en[9] == "张三"
    assert all("coordinator:" not in s for s in zh + en)


async def test_a_revoked_binding_keeps_its_name(db):
    b = await binding("2001", "赵敏", revoked_at=datetime(2026, 12, 1, tzinfo=UTC))
    assert shown(await people.who(f"coordinator:{b.id}")) == "赵敏"


async def test_many_at_once(db):
    bs = [await binding(str(3000 + i), f"协调员{i}") for i in range(30)]
    found = await people.whos(f"coordinator:{b.id}" for b in bs)
    assert [found[f"coordinator:{b.id}"]["name"] for b in bs] == [f"协调员{i}" for i in range(30)]


def test_a_raw_string_shows_as_it_is():
    # an outbox row written before names were resolved still renders
    assert shown("coordinator:12") == "coordinator:12"


async def test_an_id_no_column_can_hold_is_a_name_not_a_query(db):
    # a CLI --by can be anything: PostgreSQL would refuse the query of a 30-digit id
    odd = "coordinator:" + "9" * 30
    assert shown(await people.who(odd)) == odd
