"""A small directory for plan and draw tests, written through the ORM, and plan files.

Two departments (market regulation SCJG, health WSJ), each with a city-wide unit and a district
unit; items needing qualifications SP (food) and YL (medical); entities spread over two
districts and the five risk classes; inspectors with known quirks by certificate number.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from core.clock import FakeClock
from models.directory import (
    Department,
    Entity,
    EntityKind,
    Inspector,
    InspectorStatus,
    Item,
    RiskClass,
    Unit,
)

ZONE = ZoneInfo("Asia/Shanghai")
# 2026-12-01 10:00 Beijing time, a Tuesday (chinese_calendar covers 2026).
START = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
RISKS = "ABCDE"


def clock() -> FakeClock:
    return FakeClock(START)


def uscc(n: int) -> str:
    """An 18-character entity key; sorted order = numeric order."""
    return f"91370200{n:09d}X"


@dataclass
class World:
    depts: dict[str, Department] = field(default_factory=dict)
    units: dict[str, Unit] = field(default_factory=dict)
    items: dict[str, Item] = field(default_factory=dict)
    entities: list[Entity] = field(default_factory=list)
    inspectors: dict[str, Inspector] = field(default_factory=dict)


async def build(n_entities: int = 40, n_scjg: int = 8, n_wsj: int = 4, *, risks: str = RISKS) -> World:
    """Entities alternate between districts 370202 and 370203 and cycle through ``risks``;
    inspectors S01… (SCJG, qualified SP) and W01… (WSJ, qualified YL) sit in city-wide units."""
    w = World()
    w.depts["SCJG"] = await Department.create(code="SCJG", name="市场监督管理局")
    w.depts["WSJ"] = await Department.create(code="WSJ", name="卫生健康委员会")
    w.units["SCJG"] = await Unit.create(department=w.depts["SCJG"], name="市场监管执法支队", jurisdiction="3702")
    w.units["SCJG-S"] = await Unit.create(department=w.depts["SCJG"], name="市南区市场监管局", jurisdiction="370202")
    w.units["WSJ"] = await Unit.create(department=w.depts["WSJ"], name="卫生监督所", jurisdiction="3702")
    w.items["SP"] = await Item.create(
        code="SCJG-SP-01",
        name="食品经营许可情况检查",
        department=w.depts["SCJG"],
        qualifications=["SP"],
        target_kinds=["enterprise"],
    )
    w.items["YL"] = await Item.create(
        code="WSJ-YL-01",
        name="医疗机构执业情况检查",
        department=w.depts["WSJ"],
        qualifications=["YL"],
        target_kinds=["enterprise"],
    )
    await Entity.bulk_create(
        [
            Entity(
                uscc=uscc(i),
                name=f"青岛测试{i}号有限公司",
                kind=EntityKind.ENTERPRISE,
                division_code="370202001" if i % 2 == 0 else "370203002",
                address=f"青岛市测试路{i}号",
                industry="餐饮" if i % 3 else "零售",
                risk_class=RiskClass(risks[i % len(risks)]),
            )
            for i in range(n_entities)
        ]
    )
    w.entities = await Entity.all().order_by("uscc")
    for i in range(1, n_scjg + 1):
        await inspector(w, f"S{i:02d}", "SCJG", ["SP"])
    for i in range(1, n_wsj + 1):
        await inspector(w, f"W{i:02d}", "WSJ", ["YL"])
    return w


async def inspector(
    w: World,
    cert: str,
    dept: str,
    quals: list[str],
    *,
    unit: str | None = None,
    status: InspectorStatus = InspectorStatus.ACTIVE,
    expiry: date | None = date(2030, 1, 1),
) -> Inspector:
    row = await Inspector.create(
        cert_no=cert,
        name=f"检查员{cert}",
        department=w.depts[dept],
        unit=w.units[unit or dept],
        qualifications=sorted(quals),
        status=status,
        cert_expiry=expiry,
    )
    w.inspectors[cert] = row
    return row


PLAN_TOML = """\
code = "{code}"
name = "{name}"
departments = {departments}
items = {items}
flight = {flight}

[targets]
kinds = ["enterprise"]
divisions = {divisions}

[ratios]
A = "{a}"
B = "{b}"
C = "{c}"
D = "1"
E = "1"

[team]
size = {size}

[rotation]
entity_days = {entity_days}
inspector_days = {inspector_days}

[response]
working_days = 3

[window]
start_after_days = 1
days = 30

[schedule]
cron = "0 9 1 * *"
"""


def plan_file(
    tmp: Path,
    code: str = "P1",
    *,
    departments=("SCJG",),
    items=("SCJG-SP-01",),
    flight=False,
    divisions=("3702",),
    a="0.25",
    b="0.25",
    c="0.5",
    size=2,
    entity_days=0,
    inspector_days=0,
    name="测试计划",
) -> Path:
    def toml_list(values) -> str:
        return "[" + ", ".join(f'"{v}"' for v in values) + "]"

    path = tmp / f"{code}.toml"
    path.write_text(
        PLAN_TOML.format(
            code=code,
            name=name,
            departments=toml_list(departments),
            items=toml_list(items),
            flight=str(flight).lower(),
            divisions=toml_list(divisions),
            a=a,
            b=b,
            c=c,
            size=size,
            entity_days=entity_days,
            inspector_days=inspector_days,
        ),
        encoding="utf-8",
    )
    return path
