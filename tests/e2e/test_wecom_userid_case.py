"""WeCom userids are case-insensitive (user/create: "系统进行唯一性检查时会忽略大小写"): a directory's
``ZhangSan`` is the member WeCom calls ``zhangsan`` — bound from their callback, reached by the
dispatcher at the address WeCom gave, followed by the directory, matched by mobile — through the
WeCom simulator (which treats userids as WeCom does), the real WecomChannel and the callback route.

Defect: every comparison was exact, so a regulator's spreadsheet spelling the userid otherwise
than WeCom left that inspector refused, and two rows ``zhangsan`` / ``ZhangSan`` were two people."""

from __future__ import annotations

import aiohttp
import pytest

from benchmarks.bench_wecom_fanout import context_for
from core import db as dbmod
from models.audit import AuditRecord
from models.directory import Inspector, InspectorStatus
from models.messaging import Channel, ChatBinding, Outbox, OutboxStatus, RecipientKind, Role
from services.identity import bind_coordinator, match_wecom_by_mobile
from services.outbox import enqueue_many
from simulators.wecom import DEV_AGENT_ID, DEV_CORP_ID, DEV_SECRET, WecomSimulator
from tests.e2e.wecom_harness import Member, text, wecom_spine
from tests.services import draw_world as world

NOT_REGISTERED = "尚未登记"


async def notify(s, inspector_id: int, key: str) -> None:
    """A notice to the inspector, and one already moved to WeCom (the two ways a row is addressed)."""
    for channel in (Channel.TELEGRAM, Channel.WECOM):
        await enqueue_many(
            [(f"{key}:{channel.value}", inspector_id, dbmod.encode(context_for(1)))],
            s.clock.now(),
            recipient_kind=RecipientKind.INSPECTOR,
            template="team_changed.j2",
            channel=channel,
        )
    await s.deliver()


async def statuses(key: str) -> set[OutboxStatus]:
    return {r.status for r in await Outbox.filter(dedupe_key__startswith=f"{key}:")}


@pytest.mark.parametrize(("directory", "wecom"), [("ZhangSan", "zhangsan"), ("zhangsan", "ZhangSan")])
async def test_the_directorys_userid_in_another_case_is_bound_and_reached(db, directory, wecom):
    async with wecom_spine(db, clock=world.clock(), members=(wecom,)) as s:  # WeCom knows only this member
        w = await world.build(n_entities=2, n_scjg=2, n_wsj=0)
        who = w.inspectors["S01"]
        await Inspector.filter(id=who.id).update(wecom_userid=directory)
        member = Member(s, wecom)
        assert "/tasks" in text((await member.enter())[-1])  # bound from the directory: the help
        [binding] = await ChatBinding.filter(channel=Channel.WECOM)
        assert (binding.address, binding.role, binding.inspector_id) == (wecom, Role.INSPECTOR, who.id)
        assert (await Inspector.get(id=who.id)).wecom_userid == directory  # the directory's spelling is kept

        await notify(s, who.id, "hello")
        got = member.new()
        assert len(got) == 2 and {m["touser"] for m in got} == {wecom}  # sent as WeCom spelt the member
        assert await statuses("hello") == {OutboxStatus.SENT}

        # the test typing the directory's spelling is the same member: WeCom's callback carries its own
        assert NOT_REGISTERED not in text((await Member(s, directory).say("/tasks"))[-1])
        assert await ChatBinding.filter(channel=Channel.WECOM).count() == 1
        assert await AuditRecord.filter(action="binding.created").count() == 1


async def test_the_binding_follows_the_directory_in_any_case(db):
    async with wecom_spine(db, clock=world.clock()) as s:
        w = await world.build(n_entities=2, n_scjg=3, n_wsj=0)
        first, other = w.inspectors["S01"], w.inspectors["S02"]
        await Inspector.filter(id=first.id).update(wecom_userid="ZhangWei")
        member = Member(s, "zhangwei")
        await member.enter()
        member.new()
        # the directory gives the userid, in another case, to another inspector (the first left)
        await Inspector.filter(id=first.id).update(wecom_userid=None)
        await Inspector.filter(id=other.id).update(wecom_userid="ZHANGWEI")
        await notify(s, first.id, "left")
        assert not member.new() and await statuses("left") == {OutboxStatus.NO_ADDRESS}  # not the first's now
        assert NOT_REGISTERED not in text((await member.say("/tasks"))[-1])
        binding = await ChatBinding.get(channel=Channel.WECOM, address="zhangwei")
        assert binding.inspector_id == other.id and binding.revoked_at is None
        await notify(s, other.id, "joined")
        assert len(member.new()) == 2 and await statuses("joined") == {OutboxStatus.SENT}
        # the directory spells it otherwise again: still theirs; another userid: nobody's
        await Inspector.filter(id=other.id).update(wecom_userid="zhangWei")
        assert NOT_REGISTERED not in text((await member.say("/tasks"))[-1])
        await notify(s, other.id, "respelt")
        assert await statuses("respelt") == {OutboxStatus.SENT}
        await Inspector.filter(id=other.id).update(wecom_userid="zhangwei2")
        assert NOT_REGISTERED in text((await member.say("/tasks"))[-1])
        await Inspector.filter(id=other.id).update(wecom_userid="ZhangWei", status=InspectorStatus.RETIRED)
        assert NOT_REGISTERED in text((await member.say("/tasks"))[-1])
        await Inspector.filter(id=other.id).update(status=InspectorStatus.ACTIVE)
        assert NOT_REGISTERED not in text((await member.say("/tasks"))[-1])
        assert await ChatBinding.filter(channel=Channel.WECOM).count() == 1


async def test_mobile_matching_sees_a_userid_in_any_case(db):
    async with wecom_spine(db, clock=world.clock()) as s:
        w = await world.build(n_entities=2, n_scjg=3, n_wsj=0)
        holder, second, third = w.inspectors["S01"], w.inspectors["S02"], w.inspectors["S03"]
        await Inspector.all().update(mobile=None)
        await Inspector.filter(id=holder.id).update(wecom_userid="Li.Si")
        await Inspector.filter(id=second.id).update(mobile="+8613800000001")
        await Inspector.filter(id=third.id).update(mobile="+8613800000002")
        s.sim.member("li.si").mobile = "13800000001"  # WeCom's spelling of the holder's userid
        s.sim.member("Wang.Wu").mobile = "13800000002"
        found = await match_wecom_by_mobile(s.channel.userid_by_mobile, s.clock)
        assert (found.matched, found.taken) == (1, 1)  # li.si is the holder's Li.Si: left alone
        assert await Inspector.get(id=second.id).values_list("wecom_userid", flat=True) is None
        assert await Inspector.get(id=third.id).values_list("wecom_userid", flat=True) == "Wang.Wu"
        assert "/tasks" in text((await Member(s, "Wang.Wu").enter())[-1])
        assert "/tasks" in text((await Member(s, "li.si").enter())[-1])  # the holder, as WeCom spells them
        bound = await ChatBinding.filter(channel=Channel.WECOM).order_by("id").values_list("address", "inspector_id")
        assert bound == [("Wang.Wu", third.id), ("li.si", holder.id)]


async def test_the_simulator_finds_a_member_by_any_spelling_as_wecom_does():
    """What the tests above rely on: message/send reaches ``ZhangSan`` written ``ZHANGSAN``, and
    returns an unknown userid lower-cased in ``invaliduser`` (WeCom's message/send: "返回包中的
    userid，不区分大小写，统一转为小写")."""
    sim = WecomSimulator(members=("ZhangSan",), enforce_limits=False)
    await sim.start()
    try:
        async with aiohttp.ClientSession() as session:
            query = {"corpid": DEV_CORP_ID, "corpsecret": DEV_SECRET}
            async with session.get(f"{sim.url}/cgi-bin/gettoken", params=query) as resp:
                token = (await resp.json())["access_token"]
            body = {"touser": "ZHANGSAN|Ghost", "msgtype": "text", "agentid": DEV_AGENT_ID, "text": {"content": "hi"}}
            async with session.post(f"{sim.url}/cgi-bin/message/send", params={"access_token": token}, json=body) as r:
                answer = await r.json()
        assert (answer["errcode"], answer["invaliduser"]) == (0, "ghost")
        [got] = sim.member("zhangsan").received
        assert (got["text"], got["touser"]) == ("hi", "ZHANGSAN")
        assert [m.userid for m in sim.members.values()] == ["ZhangSan"]  # one member, spelt as first given
    finally:
        await sim.stop()


async def test_a_coordinator_bound_in_another_case_is_the_member(db):
    """An administrator types the coordinator's userid (``inspectbot bindings wecom-coordinator``);
    WeCom's callbacks spell it their way. The binding is found either way, and binding them again
    in another case updates it instead of making a second."""
    async with wecom_spine(db, clock=world.clock()) as s:
        await world.build(n_entities=2, n_scjg=1, n_wsj=0)
        first = await bind_coordinator(Channel.WECOM, "ZhangSan", ("SCJG",), "张三", s.clock)
        coordinator = Member(s, "zhangsan")
        said = text((await coordinator.say("/alerts"))[-1])
        assert NOT_REGISTERED not in said, said
        again = await bind_coordinator(Channel.WECOM, "ZHANGSAN", ("SCJG",), "张三", s.clock)
        assert again.id == first.id
        assert await ChatBinding.filter(channel=Channel.WECOM).values_list("address", flat=True) == ["ZhangSan"]
