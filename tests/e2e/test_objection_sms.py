"""The firm's side after publication, over the SMS gateway simulator (signed Twilio webhooks):
the notice SMS arrives; an objection by SMS reply with the notice code is acknowledged, reaches
the coordinators, shows as pending on the public page, and its rejection with reasons reaches the
phone; an objection on the result page with the code; late or unknown codes are refused clearly."""

from __future__ import annotations

from datetime import timedelta

import aiohttp

from domain import refs
from domain.onsite import parse_objection
from models.alerts import Alert
from models.directory import Entity
from models.draws import Inspection
from models.publication import Notice, Objection, ObjectionStatus, Review
from services import audit, public
from services.onsite import objection, review
from tests.e2e.test_surveys_sms import PHONE, gateway
from tests.services.publication_world import coordinator, inspections, submitted


def test_objection_texts_are_recognised_and_survey_replies_are_not():
    assert parse_objection("异议 g7k3q9m2 冷柜当日已修复") == ("G7K3Q9M2", "冷柜当日已修复")
    assert parse_objection("陈述申辩：G7K3Q9M2，检查时不在营业") == ("G7K3Q9M2", "检查时不在营业")
    assert parse_objection("异议G7K3Q9M2理由") == ("G7K3Q9M2", "理由")
    assert parse_objection("异议 G7K3Q9M2") == ("G7K3Q9M2", "")
    assert parse_objection("1 2 5") is None and parse_objection("是，否，5") is None and parse_objection("TD") is None
    assert parse_objection("异议 G0O1I234 x") is None  # not a notice code: left to the survey
    assert parse_objection("异议") is None


async def test_objection_by_sms_and_on_the_page(db, tmp_path):
    async with gateway(db) as g:
        insp, other = await inspections(tmp_path)
        await Entity.filter(id=insp.entity_id).update(mobile=PHONE)
        result = await submitted(insp, g.clock.now())
        reviewer = await coordinator("900")
        pending = await Review.get(result_id=result.id)
        await review.decide_review(reviewer, pending.id, True, now=g.clock.now(), sign="青岛市市场监督管理局")
        await g.deliver()
        notice = await Notice.get(result_id=result.id)
        [sms] = g.texts()
        assert sms.startswith("【青岛市市场监督管理局】") and notice.code in sms and "发现问题" in sms

        reply = await g.sim.reply(PHONE, f"异议 {notice.code.lower()} 检查当日冷柜温度计故障，已更换")
        assert reply.status == 200
        await g.deliver()
        assert "陈述申辩已收到" in g.texts()[-1]
        lodged = await Objection.get(notice_id=notice.id)
        assert lodged.status == ObjectionStatus.PENDING and lodged.reason == "检查当日冷柜温度计故障，已更换"
        alert = await Alert.get(kind="objection_received")
        assert alert.departments == ["SCJG"] and alert.context["objection"] == lodged.id
        entity = await Entity.get(id=insp.entity_id)
        rows = (await public.entity_page(entity.uscc, g.clock.now())).inspections.rows
        assert rows[0].objection and rows[0].result == "problems"
        # a second while the first is pending is refused, by SMS
        await g.sim.reply(PHONE, f"异议 {notice.code} 再说一遍")
        await g.deliver()
        assert "正在处理中" in g.texts()[-1] and await Objection.filter(notice_id=notice.id).count() == 1

        # the coordinators name it by the inspection's public reference (no internal id in chat)
        drawn = await Inspection.get(id=insp.id).prefetch_related("draw")
        ref = refs.parse(f"{drawn.draw.draw_ref}/{drawn.no}")
        assert ref is not None and await objection.objection_on(ref) == lodged.id

        # rejected with reasons: the phone is told, the page no longer says pending
        code, _ = await objection.decide(
            reviewer, await objection.objection_on(ref), False, "照片显示冷柜温度 12℃", now=g.clock.now()
        )
        assert code == "rejected"
        await g.deliver()
        assert "不予采纳" in g.texts()[-1] and "照片显示冷柜温度 12℃" in g.texts()[-1]
        assert not (await public.entity_page(entity.uscc, g.clock.now())).inspections.rows[0].objection

        # on the page: the right code on the right firm's page; a wrong code, another firm
        url = g.settings.public_url + f"/entities/{entity.uscc}/objection"
        async with aiohttp.ClientSession() as http:
            async with http.post(url, data={"code": notice.code, "reason": "补充：维修发票已上传"}) as resp:
                assert resp.status == 200 and "已收到" in await resp.text()
            async with http.post(url, data={"code": "G2345678", "reason": "x"}) as resp:
                assert resp.status == 404 and "没有找到这份告知书" in await resp.text()
            other_entity = await Entity.get(id=other.entity_id)
            elsewhere = g.settings.public_url + f"/entities/{other_entity.uscc}/objection"
            async with http.post(elsewhere, data={"code": notice.code, "reason": "x"}) as resp:
                assert resp.status == 404
        web = await Objection.filter(notice_id=notice.id, channel="web").get()
        assert web.reply_to == "" and web.reason == "补充：维修发票已上传"
        assert await objection.objection_on(ref) == web.id  # the pending one, not the decided one
        code, _ = await objection.decide(reviewer, web.id, True, "", now=g.clock.now())
        assert await objection.objection_on(ref) == web.id  # none pending: the latest ("already decided")
        assert code == "upheld"
        # after the period: refused by SMS, nothing recorded
        g.clock.set(g.clock.now() + timedelta(days=30))
        await g.sim.reply(PHONE, f"异议 {notice.code} 太晚了")
        await g.deliver()
        assert "期限已于" in g.texts()[-1] and await Objection.filter(notice_id=notice.id).count() == 2
        assert (await audit.verify())[1] is None
