"""/risk in chat (real python-telegram-bot, Bot API simulator): a coordinator sees an entity's class,
score and reasons; an inspector gets the standard refusal; in a group only the hint to ask privately."""

from __future__ import annotations

from domain.risk.model import parse_model
from models.audit import AuditRecord
from models.messaging import ChatBinding, Role
from models.risk import RiskModelVersion, VersionStatus
from services.risk import classify, versions
from tests.domain.test_risk import SMALL
from tests.e2e.harness import spine
from tests.e2e.test_coordinator_chat import last, person
from tests.e2e.test_groups import handled
from tests.e2e.test_inspector_chat import inspector_chat
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
