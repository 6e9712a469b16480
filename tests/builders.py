"""Test data builders: a tiny directory written through the ORM."""

from __future__ import annotations

from datetime import date

from models.directory import Department, Entity, EntityKind, Inspector, RiskClass, Unit

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
