"""Binding WeCom members by mobile number through the contacts API (``user/getuserid``), where
the deployment allows it: a member whose number is an inspector's is bound on their first event;
a number WeCom does not know, or a member whose number is nobody's in the directory, changes
nothing and gets the polite refusal."""

from __future__ import annotations

import pytest

from core.channel import SendError
from core.render import text as render_text
from models.audit import AuditRecord
from models.directory import Inspector
from models.messaging import ChatBinding, Role
from services.identity import match_wecom_by_mobile
from tests.e2e.wecom_harness import Member, text, wecom_spine
from tests.services import draw_world as world


async def test_an_inspector_is_matched_by_mobile_and_bound_on_the_first_event(db):
    async with wecom_spine(db, clock=world.clock()) as s:
        w = await world.build(n_entities=2, n_scjg=3, n_wsj=0)
        known, absent, clash = w.inspectors["S01"], w.inspectors["S02"], w.inspectors["S03"]
        await Inspector.all().update(mobile=None)
        await Inspector.filter(id=known.id).update(mobile="+8613800000001")
        await Inspector.filter(id=absent.id).update(mobile="+8613800000002")  # not in WeCom's contacts
        await Inspector.filter(id=clash.id).update(mobile="+8613800000003", wecom_userid="zhang.san")
        s.sim.member("li.si").mobile = "13800000001"
        s.sim.member("stranger").mobile = "13900000009"  # in WeCom, not in our directory

        found = await match_wecom_by_mobile(s.channel.userid_by_mobile, s.clock)
        assert (found.matched, found.not_found, found.taken) == (1, 1, 0)
        assert await Inspector.get(id=known.id).values_list("wecom_userid", flat=True) == "li.si"
        assert await Inspector.get(id=absent.id).values_list("wecom_userid", flat=True) is None
        assert await AuditRecord.filter(action="inspector.wecom_matched").count() == 1
        again = await match_wecom_by_mobile(s.channel.userid_by_mobile, s.clock)  # nothing left to do
        assert (again.matched, again.not_found) == (0, 1)

        member = Member(s, "li.si")
        assert "/tasks" in text((await member.enter())[-1])  # bound from the directory: the help
        binding = await ChatBinding.get(address="li.si")
        assert binding.role == Role.INSPECTOR and binding.inspector_id == known.id

        stranger = Member(s, "stranger")
        got = await stranger.enter()
        assert len(got) == 1 and "尚未登记" in text(got[0])
        assert not await ChatBinding.filter(address="stranger").exists()


async def test_a_userid_already_taken_is_left_alone(db):
    async with wecom_spine(db, clock=world.clock()) as s:
        w = await world.build(n_entities=2, n_scjg=2, n_wsj=0)
        first, second = w.inspectors["S01"], w.inspectors["S02"]
        await Inspector.all().update(mobile=None)
        await Inspector.filter(id=first.id).update(wecom_userid="li.si")
        await Inspector.filter(id=second.id).update(mobile="+8613800000001")
        s.sim.member("li.si").mobile = "13800000001"
        found = await match_wecom_by_mobile(s.channel.userid_by_mobile, s.clock)
        assert (found.matched, found.taken) == (0, 1)
        assert await Inspector.get(id=second.id).values_list("wecom_userid", flat=True) is None


async def test_without_contacts_permission_nothing_changes(db):
    async with wecom_spine(db, clock=world.clock(), contacts_api=False) as s:
        w = await world.build(n_entities=2, n_scjg=1, n_wsj=0)
        await Inspector.filter(id=w.inspectors["S01"].id).update(mobile="+8613800000001")
        s.sim.member("li.si").mobile = "13800000001"
        with pytest.raises(SendError) as refused:
            await match_wecom_by_mobile(s.channel.userid_by_mobile, s.clock)
        assert refused.value.kind == "config" and not refused.value.retryable
        assert not await Inspector.exclude(wecom_userid=None).exists()


async def test_a_number_two_inspectors_have_names_neither(db):
    """Defect: inspectors were matched in id order, so when two directory rows had the same mobile
    number (one of them mistyped) the first was given the WeCom account of the number's owner and
    acted as them on their first event. Such a number now names neither, and is counted."""
    async with wecom_spine(db, clock=world.clock()) as s:
        w = await world.build(n_entities=2, n_scjg=3, n_wsj=0)
        await Inspector.all().update(mobile=None)
        owner, typo = w.inspectors["S02"], w.inspectors["S01"]  # S01 has the lower id
        await Inspector.filter(id__in=[owner.id, typo.id]).update(mobile="+8613800000001")
        s.sim.member("li.si").mobile = "13800000001"
        found = await match_wecom_by_mobile(s.channel.userid_by_mobile, s.clock)
        assert (found.matched, found.shared) == (0, 2)
        assert not await Inspector.filter(wecom_userid="li.si").exists()
        said = render_text("wecom_mobiles_done", "zh-CN", matched=0, missing=0, taken=0, shared=2)
        assert "手机号与其他检查人员相同 2 人" in said
