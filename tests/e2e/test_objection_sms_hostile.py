"""Objections by SMS tried as a hostile or careless phone would (hostile2), over the signed
webhooks of the SMS simulator: codes typed in full-width forms, lower case and groups; two
objections in one text; a stranger's number guessing codes until it is locked out (the firm's
own phone unaffected, each wrong code audited without the number); control characters."""

from __future__ import annotations

from domain.onsite import CLIENT_ATTEMPTS
from models.audit import AuditRecord
from models.directory import Entity
from models.publication import Notice, Objection, Review
from services import audit
from services.onsite import review
from tests.e2e.test_surveys_sms import PHONE, gateway
from tests.services.publication_world import coordinator, inspections, submitted
from tests.services.survey_world import MOBILES

STRANGER = MOBILES[1]
FULL_WIDTH = {c: chr(ord(c) + 0xFEE0) for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"}


async def _published(g, tmp_path) -> list[Notice]:
    found = []
    reviewer = await coordinator("900")
    for insp in await inspections(tmp_path):
        await Entity.filter(id=insp.entity_id).update(mobile=PHONE)
        result = await submitted(insp, g.clock.now())
        pending = await Review.get(result_id=result.id)
        await review.decide_review(reviewer, pending.id, True, now=g.clock.now())
        found.append(await Notice.get(result_id=result.id))
    await g.deliver()
    return found


async def test_two_objections_in_one_text_with_codes_as_phones_type_them(db, tmp_path):
    async with gateway(db) as g:
        first, second = await _published(g, tmp_path)
        typed_first = "".join(FULL_WIDTH.get(c, c) for c in first.code.lower())
        typed_second = f"{second.code[:4]}-{second.code[4:]}".lower()
        text = f"异议　{typed_first}　冷柜已维修\x00\n附发票\n异议 {typed_second} 当日不在营业"
        assert (await g.sim.reply(PHONE, text)).status == 200
        await g.deliver()
        # the second used to be swallowed into the first's reason; full-width codes went to the survey
        lodged = {o.notice_id: o.reason for o in await Objection.all()}
        assert lodged == {first.id: "冷柜已维修\n附发票", second.id: "当日不在营业"}
        acks = [t for t in g.texts() if "陈述申辩已收到" in t]
        assert len(acks) == 2 and first.code in acks[0] and second.code in acks[1]


async def test_a_number_guessing_codes_is_locked_out_and_the_firm_is_not(db, tmp_path):
    async with gateway(db) as g:
        notice, _ = await _published(g, tmp_path)
        for i in range(CLIENT_ATTEMPTS):
            await g.sim.reply(STRANGER, f"异议 G{i + 2:07d}".replace("0", "Z").replace("1", "Y") + " 试试")
        await g.deliver()
        assert sum("没有找到这份告知书" in t for t in g.texts(STRANGER)) == CLIENT_ATTEMPTS
        # locked: even the right code from this number, for the window
        await g.sim.reply(STRANGER, f"异议 {notice.code} 理由")
        await g.deliver()
        assert "输错次数过多" in g.texts(STRANGER)[-1] and await Objection.all().count() == 0
        # one text is one guess: many codes in one text stop at the first wrong one
        many = "\n".join(f"异议 G{c * 7} 理由" for c in "ABCDEFGH")
        await g.sim.reply(MOBILES[2], many)
        await g.deliver()
        assert sum("没有找到这份告知书" in t for t in g.texts(MOBILES[2])) == 1
        refused = await AuditRecord.filter(action="notice.code_refused").values("actor", "data")
        assert len(refused) == CLIENT_ATTEMPTS + 1
        assert all(r["actor"] == "sms" and STRANGER not in str(r) and PHONE not in str(r) for r in refused)
        # the firm's own phone is not locked by someone else's guessing
        await g.sim.reply(PHONE, f"异议 {notice.code} 理由")
        await g.deliver()
        assert "陈述申辩已收到" in g.texts()[-1] and await Objection.filter(notice_id=notice.id).count() == 1
        assert (await audit.verify())[1] is None
