"""A team lead with no chat: the member who asks to record the findings is offered the lead, takes
it (audited), and the coordinators are told that the lead could not be reached, not that they
were told."""

from __future__ import annotations

from models.alerts import Alert
from models.audit import AuditRecord
from models.draws import Assignment, Inspection
from models.messaging import Role
from tests.e2e.harness import spine
from tests.e2e.test_coordinator_chat import person
from tests.e2e.test_onsite_chat import accept, join, last_with, on_site_now, setup
from tests.e2e.test_references_chat import public_ref
from tests.services import draw_world as world


async def test_member_takes_over_a_lead_without_chat(db, tmp_path):
    async with spine(db, clock=world.clock()) as s:
        await setup(s, tmp_path)
        coordinator = await person(s, Role.COORDINATOR, ["SCJG"])
        lead = await Assignment.filter(seat=1).order_by("id").prefetch_related("inspector").first()
        mate = await Assignment.filter(inspection_id=lead.inspection_id, seat=2).prefetch_related("inspector").first()
        chat = await join(s, mate.inspector.cert_no)  # the lead never binds a chat
        await accept(chat, mate.id)
        await on_site_now(s, mate)
        chat.new()
        ref = await public_ref(mate.id)
        offer = (await chat.command("result", ref))[-1]
        assert lead.inspector.name in offer.text and "未绑定聊天" in offer.text
        assert offer.callback_data == [f"fnd:lead:{mate.id}"]
        taken = (await chat.press(offer, f"fnd:lead:{mate.id}"))[-1]
        assert f"您已接任 {ref} 的组长" in taken.text
        assert (await Inspection.get(id=lead.inspection_id)).lead_id == mate.inspector_id
        assert await AuditRecord.filter(action="team.lead_taken").count() == 1
        alert = await Alert.get(kind="lead_taken")
        assert alert.context["old"] == lead.inspector.name and alert.context["new"] == mate.inspector.name
        await s.deliver()
        told = [m.text for m in coordinator.new()]
        assert any("组长变更" in t and "未绑定聊天" in t and mate.inspector.name in t for t in told), told
        # a second tap changes nothing; the new lead records the findings
        again = (await chat.press(offer, f"fnd:lead:{mate.id}"))[-1]
        assert "您已是" in again.text and await AuditRecord.filter(action="team.lead_taken").count() == 1
        first = (await chat.command("result", ref))[-1]
        assert "第 1/2 项" in first.text


async def test_a_lead_with_chat_cannot_be_taken_over(db, tmp_path):
    async with spine(db, clock=world.clock()) as s:
        await setup(s, tmp_path)
        lead = await Assignment.filter(seat=1).order_by("id").prefetch_related("inspector").first()
        mate = await Assignment.filter(inspection_id=lead.inspection_id, seat=2).prefetch_related("inspector").first()
        chat = await join(s, mate.inspector.cert_no)
        await accept(chat, mate.id)
        await on_site_now(s, mate)
        offer = (await chat.command("result"))[-1]
        await join(s, lead.inspector.cert_no)  # the lead binds in the meantime: the offer is stale
        refused = (await chat.press(last_with([offer], f"fnd:lead:{mate.id}"), f"fnd:lead:{mate.id}"))[-1]
        assert "已绑定聊天" in refused.text
        assert (await Inspection.get(id=lead.inspection_id)).lead_id is None
        plain = (await chat.command("result"))[-1]
        assert "由组长" in plain.text and not plain.callback_data
