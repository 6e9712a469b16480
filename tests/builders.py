"""Test data builders: a tiny directory written through the ORM."""

from __future__ import annotations

from datetime import date

from domain.plans import lead_time, parse_plan
from models.directory import Department, Entity, EntityKind, Inspector, RiskClass, Unit
from models.draws import Firing
from services.draws.announce import announce, pending_firing
from services.draws.write import draw_plan

USCC = ["91370200MA3C5F1X1R", "91370202MA3CBJ3U4E", "91370211MA3D1B7K9Y"]


async def department(code: str = "SCJG", name: str = "市场监督管理局") -> Department:
    found = await Department.get_or_none(code=code)
    return found or await Department.create(code=code, name=name)


async def inspector(
    cert_no: str = "37020001",
    name: str = "张伟",
    *,
    dept: str = "SCJG",
    quals=("SP",),
    jurisdiction: str = "3702",
    mobile: str | None = "+8613800138000",
) -> Inspector:
    d = await department(dept)
    unit = await Unit.get_or_none(department=d, name=f"{d.name}执法支队")
    unit = unit or await Unit.create(department=d, name=f"{d.name}执法支队", jurisdiction=jurisdiction)
    return await Inspector.create(
        cert_no=cert_no,
        name=name,
        department=d,
        unit=unit,
        qualifications=list(quals),
        mobile=mobile,
        cert_expiry=date(2030, 1, 1),
    )


async def entity(
    uscc: str = USCC[0],
    name: str = "青岛海鲜酒楼有限公司",
    *,
    risk: str = "C",
    division: str = "370202",
    mobile: str | None = "+8613900139000",
) -> Entity:
    return await Entity.create(
        uscc=uscc,
        name=name,
        kind=EntityKind.ENTERPRISE,
        division_code=division,
        address="青岛市市南区香港中路1号",
        industry="餐饮",
        risk_class=RiskClass(risk),
        mobile=mobile,
        lat=36.06,
        lon=120.38,
    )


async def scheduled_draw(code: str, beacon: str = "", **kwargs):
    """Draw a plan as its schedule would: when nothing is pending, a firing announced now and
    made to look announced the plan's lead time ahead (its ``announced_at`` set back), so the
    draw is on schedule; then ``draw_plan`` as the CLI runs it. For tests that need *a* draw."""
    clock, zone = kwargs["clock"], kwargs["zone"]
    if await pending_firing(code) is None and not kwargs.get("dry_run"):
        await announced_ahead(code, None, clock=clock, zone=zone)
    return await draw_plan(code, beacon, **kwargs)


async def announced_ahead(code: str, fire_at, *, clock, zone):
    """``announce``, the firing then made to look announced the plan's lead time before its
    time (``announced_at`` set back): a draw of it is on schedule."""
    announced = await announce(code, fire_at, clock=clock, zone=zone)
    firing = await Firing.get(draw_ref=announced.draw_ref)
    await Firing.filter(id=firing.id).update(announced_at=firing.fire_at - lead_time(parse_plan(firing.params)))
    return announced
