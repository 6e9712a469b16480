"""A team lead nobody can reach in chat: a member takes the lead over.

The lead (the lowest seat, as drawn) records and submits the findings. A lead who never bound a
chat would leave the team stuck, so a member who has accepted the task is offered the lead when
the lead has no chat bound: taking it sets ``inspection.lead`` (services.onsite.results orders the
team by it), goes on the audit chain, and the plan's coordinators get an alert that says what
happened — the lead could not be told, the member took over — rather than that the lead was told.
"""

from __future__ import annotations

from datetime import datetime

from core.clock import utc as _utc
from core.db import transaction as _transaction
from domain.refs import inspection_ref
from models.draws import Assignment, Inspection
from services import alerts, audit
from services.identity import inspectors_with_chat
from services.onsite.results import _is_lead, _member, _team
from services.onsite.shared import OnsiteError


async def has_chat(inspector_id: int, conn=None) -> bool:
    """Whether the inspector has a live chat binding (something sent to them can arrive)."""
    return inspector_id in await inspectors_with_chat([inspector_id], conn)


async def take_lead(inspector_id: int, assignment_id: int, *, now: datetime, conn=None) -> tuple[str, dict]:
    """The member of ``assignment_id`` becomes the team lead, if the lead has no chat. Returns
    (``lead_taken`` | ``already_lead``, {"ref", "old"}); refused when the lead can be reached
    (``lead_reachable``), or the presser is not an accepted member of the team."""
    now = _utc(now)
    async with _transaction(conn) as c:
        asg = await (
            Assignment.filter(id=assignment_id, inspector_id=inspector_id)
            .using_db(c)
            .prefetch_related("draw__plan", "inspection", "inspector")
            .first()
        )
        if asg is None:
            raise OnsiteError("asg_not_found")
        ref = inspection_ref(asg.draw.draw_ref, asg.inspection.no)
        await Inspection.filter(id=asg.inspection_id).using_db(c).select_for_update().first()  # one taker
        team = await _team(asg.inspection_id, c)
        if _member(team, inspector_id) is None:
            raise OnsiteError("not_accepted", ref=ref, status=asg.status.value)
        old = team[0].inspector
        if _is_lead(team, inspector_id):
            return "already_lead", {"ref": ref, "old": old.name}
        if await has_chat(old.id, c):
            raise OnsiteError("lead_reachable", lead=old.name)
        await Inspection.filter(id=asg.inspection_id).using_db(c).update(lead_id=inspector_id)
        await audit.append(
            f"inspector:{inspector_id}",
            "team.lead_taken",
            f"inspection:{asg.inspection_id}",
            {"draw": asg.draw.draw_ref, "no": asg.inspection.no, "from": old.cert_no, "to": asg.inspector.cert_no},
            now,
            connection=c,
        )
        await alerts.raise_alert(
            f"lead_taken:{asg.inspection_id}:{inspector_id}",
            "lead_taken.j2",
            {
                "plan": asg.draw.plan.name,
                "draw_ref": asg.draw.draw_ref,
                "no": asg.inspection.no,
                "old": old.name,
                "new": asg.inspector.name,
            },
            set(asg.draw.plan.departments),
            now,
            connection=c,
        )
        return "lead_taken", {"ref": ref, "old": old.name}
