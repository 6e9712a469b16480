"""``inspectbot bindings coordinators``: the ids an off-schedule draw's ``--confirmed-by`` names."""

from __future__ import annotations

import argparse

from bot.commands import bindings as bindings_cli
from core import db as dbmod
from models.messaging import Channel, ChatBinding, Role


async def test_coordinators_lists_live_coordinators_with_their_ids_and_filters_by_department(db, capsys):
    scjg = await ChatBinding.create(
        channel=Channel.TELEGRAM, address="1001", role=Role.COORDINATOR, departments=["370200SCJG"], display_name="王芳"
    )
    both = await ChatBinding.create(
        channel=Channel.TELEGRAM,
        address="1002",
        role=Role.COORDINATOR,
        departments=["370200SCJG", "370200WSJ"],
        display_name="李强",
    )
    gone = await ChatBinding.create(
        channel=Channel.TELEGRAM, address="1003", role=Role.COORDINATOR, departments=["370200WSJ"], display_name="赵敏"
    )
    await ChatBinding.filter(id=gone.id).update(revoked_at=scjg.created_at)
    await ChatBinding.create(channel=Channel.TELEGRAM, address="1004", role=Role.ADMIN, display_name="管理员")
    await dbmod.close()
    try:
        assert await bindings_cli.coordinators(argparse.Namespace(department=None), db) == 0
        lines = capsys.readouterr().out.splitlines()
        assert lines[:2] == [
            f"#{scjg.id} 王芳（telegram）：370200SCJG",
            f"#{both.id} 李强（telegram）：370200SCJG、370200WSJ",
        ]
        assert lines[2].startswith("已绑定的协调员：2 人") and len(lines) == 3  # not the revoked one, not the admin
        assert await bindings_cli.coordinators(argparse.Namespace(department="370200WSJ"), db) == 0
        lines = capsys.readouterr().out.splitlines()
        assert lines[0] == f"#{both.id} 李强（telegram）：370200SCJG、370200WSJ" and lines[1].startswith(
            "已绑定的协调员：1 人"
        )
    finally:
        await dbmod.init(db)


async def test_wecom_coordinator_binds_a_userid_without_an_invite(db, capsys):
    from models.audit import AuditRecord
    from models.directory import Department

    await Department.create(code="370200SCJG", name="市场监督管理局")
    await dbmod.close()
    try:
        args = argparse.Namespace(userid="wang.fang", department=["370200SCJG"], name="王芳")
        assert await bindings_cli.wecom_coordinator(args, db) == 0
        assert "王芳（wecom）：370200SCJG" in capsys.readouterr().out
        bad = argparse.Namespace(userid="li", department=["NOPE"], name="")
        assert await bindings_cli.wecom_coordinator(bad, db) == 2
        assert "NOPE" in capsys.readouterr().err
        for userid in ("_li", "li si", ""):  # WeCom's rules, as the import checks them
            refused = argparse.Namespace(userid=userid, department=["370200SCJG"], name="")
            assert await bindings_cli.wecom_coordinator(refused, db) == 2
            assert "企业微信账号" in capsys.readouterr().err
    finally:
        await dbmod.init(db)
    b = await ChatBinding.get(channel=Channel.WECOM, address="wang.fang")
    assert b.role == Role.COORDINATOR and b.departments == ["370200SCJG"] and b.display_name == "王芳"
    assert not await ChatBinding.filter(address="li").exists()
    assert await AuditRecord.filter(action="binding.created").count() == 1


async def test_wecom_mobiles_needs_the_setting_then_matches(db, capsys):
    import dataclasses

    from models.directory import Inspector
    from simulators.wecom import WecomSimulator
    from tests import builders
    from tests.e2e.wecom_harness import wecom_settings

    inspector = await builders.inspector(mobile="+8613800000001")
    sim = WecomSimulator(enforce_limits=False)
    await sim.start()
    sim.member("li.si").mobile = "13800000001"
    await dbmod.close()
    try:
        assert await bindings_cli.wecom_mobiles(argparse.Namespace(), db) == 2  # not enabled: nothing asked
        assert "WECOM_BIND_BY_MOBILE" in capsys.readouterr().err and "/cgi-bin/user/getuserid" not in sim.calls
        enabled = dataclasses.replace(wecom_settings(db, sim.url), wecom_bind_by_mobile=True)
        assert await bindings_cli.wecom_mobiles(argparse.Namespace(), enabled) == 0
        assert "匹配 1 人" in capsys.readouterr().out
    finally:
        await sim.stop()
        await dbmod.init(db)
    assert (await Inspector.get(id=inspector.id)).wecom_userid == "li.si"
