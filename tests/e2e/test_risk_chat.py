"""/risk in chat (real python-telegram-bot, Bot API simulator): a coordinator sees an entity's class,
score and reasons; an inspector gets the standard refusal; in a group only the hint to ask privately."""

from __future__ import annotations

from domain.risk.model import parse_model
from models.audit import AuditRecord
from models.messaging import ChatBinding, Role
from models.risk import OverrideStatus, RiskModelVersion, RiskOverride, VersionStatus
from services.risk import classify, versions
from tests.domain.test_risk import SMALL
from tests.e2e.harness import spine
from tests.e2e.test_coordinator_chat import last, person
from tests.e2e.test_groups import handled
from tests.e2e.test_inspector_chat import inspector_chat
from tests.e2e.test_off_schedule_chat import forge
from tests.services import draw_world as world


async def test_risk_for_coordinators_only(db, tmp_path):
    async with spine(db, clock=world.clock()) as s:
        w = await world.build(n_entities=4, n_scjg=2, n_wsj=0)
        now = s.clock.now()
        await versions.propose(parse_model(SMALL), actor="cli", now=now)
        await versions.decide("small", approve=True, actor="cli", now=now)
        target = w.entities[1]
        await versions.store_values([(target.id, "penalties", 10, now.date()), (target.id, "months", 60, now.date())])
        await classify.classify_directory(now, force=True)
        c = await person(s, Role.COORDINATOR, ["SCJG"])
        shown = last(await c.command("risk", target.uscc))
        # penalties 10 → 3 of 4 weight + rating missing 0.5 × 1 → 87.5 → E
        assert target.name in shown and "信用风险等级 E" in shown and "87.5" in shown and "penalties" in shown
        assert "仅限协调员" in shown
        assert "没有信用代码" in last(await c.command("risk", "不存在的公司"))
        assert "用法" in last(await c.command("risk"))
        mix = last(await c.command("riskmodels"))  # the class mix against the approved one: one run, unchanged
        assert "small 的等级构成" in mix and "E  25.0% → 25.0%" in mix and "在容差范围内" in mix
        inspector = await inspector_chat(s, "S01")
        refused = last(await inspector.command("risk", target.uscc))
        assert "87.5" not in refused and target.name not in refused
        group = s.sim.create_group("协调群", [c.user, inspector.user])
        s.sim.send_command(c.user, "risk", target.uscc, chat=group)
        assert await handled(s, group, 1) == ["group_command"]
        [hint] = [m.text for m in s.sim.messages(group)]  # a refusal pointing to a private chat, no class
        assert "私聊" in hint and "87.5" not in hint and target.name not in hint and "E" not in hint


async def test_a_coordinator_approves_a_proposal_with_a_button(db, tmp_path):
    async with spine(db, clock=world.clock()) as s:
        await world.build(n_entities=4, n_scjg=2, n_wsj=0)
        now = s.clock.now()
        await versions.propose(parse_model(SMALL), actor="cli", now=now)
        await versions.propose(parse_model({**SMALL, "name": "other"}), actor="cli", now=now)
        c = await person(s, Role.COORDINATOR, ["SCJG"])
        listed = (await c.command("riskmodels"))[-1]
        assert "small" in listed.text and "other" in listed.text and "待批准" in listed.text
        small = await RiskModelVersion.get(version="small")
        other = await RiskModelVersion.get(version="other")
        assert f"rmv:approve:{small.id}" in listed.callback_data and f"rmv:reject:{other.id}" in listed.callback_data
        inspector = await inspector_chat(s, "S01")
        refused = last(await inspector.command("riskmodels"))
        assert "small" not in refused
        assert (await RiskModelVersion.get(id=small.id)).status == VersionStatus.PROPOSED
        assert "已批准" in last(await c.press(listed, f"rmv:approve:{small.id}"))
        assert "驳回" in last(await c.press(listed, f"rmv:reject:{other.id}"))
        assert "已不是待批准状态" in last(await c.press(listed, f"rmv:reject:{small.id}"))  # a second tap
        assert (await versions.in_force())[0] == "small"
        binding = await ChatBinding.get(address=str(c.user.id))
        decided = await AuditRecord.filter(action__in=["risk_model_approved", "risk_model_rejected"]).order_by("seq")
        assert [(a.action, a.subject, a.actor) for a in decided] == [
            ("risk_model_approved", "small", f"coordinator:{binding.id}"),
            ("risk_model_rejected", "other", f"coordinator:{binding.id}"),
        ]


async def test_an_override_proposed_in_chat_is_approved_by_another_coordinators_button(db, tmp_path):
    async with spine(db, clock=world.clock()) as s:
        w = await world.build(n_entities=4, n_scjg=2, n_wsj=0)
        now = s.clock.now()
        await versions.propose(parse_model(SMALL), actor="cli", now=now)
        await versions.decide("small", approve=True, actor="cli", now=now)
        target = w.entities[1]
        await versions.store_values([(target.id, "penalties", 10, now.date()), (target.id, "months", 60, now.date())])
        await classify.classify_directory(now, force=True)  # → E
        asker = await person(s, Role.COORDINATOR, ["SCJG"], name="王芳")
        other = await person(s, Role.COORDINATOR, ["SCJG"], name="李娜")
        inspector = await inspector_chat(s, "S01")
        refused = last(await inspector.command("riskoverride", f"{target.uscc} A 2027-05-31 信用修复已完成"))
        assert "仅限协调员" not in refused and target.name not in refused
        assert "用法" in last(await asker.command("riskoverride", target.uscc))
        assert "不是日期" in last(await asker.command("riskoverride", f"{target.uscc} A 明年 信用修复已完成"))
        assert "超过 12 个月" in last(await asker.command("riskoverride", f"{target.uscc} A 2028-01-01 信用修复已完成"))
        assert await RiskOverride.all().count() == 0
        sent = last(await asker.command("riskoverride", f"{target.uscc} A 2027-05-31 信用修复已完成"))
        row = await RiskOverride.get()
        assert "已提出人工认定" in sent and "1 名其他协调员" in sent
        # the other coordinator is asked, with the buttons; the proposer cannot approve their own
        [ask] = [m for m in other.new() if "请您批准" in m.text]
        assert "信用修复已完成" in ask.text and "模型现为 E" in ask.text and target.name in ask.text
        assert ask.callback_data == [f"rov:approve:{row.id}", f"rov:reject:{row.id}"]
        mine = last(await forge(asker, f"rov:approve:{row.id}"))
        assert "须由另一名协调员批准" in mine
        assert (await RiskOverride.get(id=row.id)).status == OverrideStatus.PENDING
        shown = last(await asker.command("risk", target.uscc))
        assert "人工认定" in shown and "待批准" in shown and "信用风险等级 E" in shown
        approved = last(await other.press(ask, f"rov:approve:{row.id}"))
        assert "生效中" in approved and "下一次分类" in approved
        assert "已不是待批准状态" in last(await other.press(ask, f"rov:reject:{row.id}"))  # a second tap
        assert any("已由 李娜 批准" in m.text for m in asker.new())  # by name, not coordinator:<id>
        await classify.classify_directory(s.clock.now(), force=True)
        shown = last(await other.command("risk", target.uscc))
        assert "信用风险等级 A" in shown and "人工认定 A（模型：E）" in shown and "信用修复已完成" in shown
        assert "提出 王芳，批准 李娜" in shown
        listed = last(await other.command("riskoverrides"))
        assert f"[{row.id}]" in listed and "生效中" in listed
        approver = await ChatBinding.get(address=str(other.user.id))
        proposer = await ChatBinding.get(address=str(asker.user.id))
        trail = await AuditRecord.filter(subject=f"risk_override:{row.id}").order_by("seq")
        assert [(a.action, a.actor) for a in trail] == [
            ("risk_override_proposed", f"coordinator:{proposer.id}"),
            ("risk_override_approved", f"coordinator:{approver.id}"),
        ]
        # withdrawn by one coordinator, with a reason
        assert "用法" in last(await asker.command("riskwithdraw", str(row.id)))
        assert "已撤回" in last(await asker.command("riskwithdraw", f"{row.id} 复核发现信用修复未完成"))
        # every text either chat was sent names people, never by their binding's actor string
        seen = [m.text for c in (asker, other) for m in s.sim.messages(c.user)]
        assert any("王芳 提出" in t and "已被 王芳 撤回" in t for t in seen), seen  # told to the approver
        assert not [t for t in seen if "coordinator:" in t]
        # in a group: the polite refusal, nothing proposed
        group = s.sim.create_group("协调群", [asker.user, other.user])
        s.sim.send_command(asker.user, "riskoverride", f"{target.uscc} B 2027-05-31 理由", chat=group)
        assert await handled(s, group, 1) == ["group_command"]
        [hint] = [m.text for m in s.sim.messages(group)]
        assert "私聊" in hint and target.name not in hint
        assert await RiskOverride.all().count() == 1
