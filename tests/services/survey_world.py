"""A drawn plan with inspections and teams, written straight through the ORM, for survey tests.

The draw service is not run: a survey needs only the draw's rows (plan, firing, draw,
inspections, assignments), and building them directly keeps these tests fast and independent
of how the draw chooses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from models.directory import Entity, Inspector
from models.draws import Assignment, AssignmentStatus, Draw, Firing, Inspection
from models.messaging import Channel, ChatBinding, Role
from models.plans import Plan
from tests import builders

# 2026-12-03 10:00 in Shanghai (02:00 UTC): allowed hours.
MORNING = datetime(2026, 12, 3, 2, 0, tzinfo=UTC)
# 2026-12-03 21:00 in Shanghai: quiet hours.
EVENING = datetime(2026, 12, 3, 13, 0, tzinfo=UTC)
MOBILES = [
    "+8613900139000",
    "+8613900139001",
    "+8613900139002",
    "+8613900139003",
    "+8613900139004",
    "+8613900139005",
    "+8613900139006",
    "+8613900139007",
]
DRAW_REF = "P1/2026-12-01"
ZONE = ZoneInfo("Asia/Shanghai")


@dataclass
class World:
    plan: Plan
    draw: Draw
    entities: list[Entity] = field(default_factory=list)
    inspections: list[Inspection] = field(default_factory=list)
    inspectors: list[Inspector] = field(default_factory=list)
    coordinator: ChatBinding | None = None
    inspector_chats: list[ChatBinding] = field(default_factory=list)


async def build(
    risks: str = "D",
    *,
    mobiles: list[str | None] | None = None,
    draw_ref: str = DRAW_REF,
    spec: dict | None = None,
    entities: list[Entity] | None = None,
) -> World:
    """One inspection per letter of ``risks`` (the entity's class), each inspected by 张伟 and
    李娜 (SCJG); a coordinator of SCJG and the two inspectors have Telegram chats. ``entities``
    inspects those entities again (a later draw) instead of creating new ones."""
    dept = await builders.department("SCJG", "青岛市市场监督管理局")
    inspectors = [
        await Inspector.get_or_none(cert_no="37020001") or await builders.inspector("37020001", "张伟"),
        await Inspector.get_or_none(cert_no="37020002") or await builders.inspector("37020002", "李娜"),
    ]
    now = MORNING - timedelta(days=2)
    plan = await Plan.get_or_none(code="P1") or await Plan.create(
        code="P1",
        name="餐饮服务食品安全抽查",
        departments=[dept.code],
        spec=spec or {},
        created_at=now,
        updated_at=now,
        active=False,
    )  # drawn already; inactive, so a scheduler here fires no draws
    firing = await Firing.create(
        draw_ref=draw_ref,
        plan=plan,
        fire_at=now + timedelta(seconds=await Firing.filter(plan=plan).count()),  # one firing per slot
        commitment="0" * 64,
        params=spec or {},
        announced_at=now - timedelta(days=1),
    )
    draw = await Draw.create(
        draw_ref=draw_ref,
        firing=firing,
        plan=plan,
        drawn_at=now,
        pool_digest="0" * 64,
        inspectors_digest="0" * 64,
        inspections_digest="0" * 64,
        window_start=now,
        window_end=now + timedelta(days=30),
        pool_size=len(risks),
        inspector_count=2,
        inspection_count=len(risks),
    )
    w = World(plan=plan, draw=draw, inspectors=inspectors)
    mobiles = mobiles if mobiles is not None else MOBILES
    base = await Entity.all().count()
    for i, risk in enumerate(risks):
        n = base + i
        entity = (
            entities[i]
            if entities
            else await builders.entity(
                f"91370200{n:09d}X",
                f"青岛测试{n}号餐饮有限公司",
                risk=risk,
                mobile=mobiles[i] if i < len(mobiles) else None,
            )
        )
        insp = await Inspection.create(
            draw=draw, no=i + 1, entity=entity, entity_key=entity.uscc, stratum=risk, rank=f"{i:016x}"
        )
        for seat, person in enumerate(inspectors):
            await Assignment.create(
                draw=draw,
                inspection=insp,
                inspector=person,
                seat=seat,
                status=AssignmentStatus.ACCEPTED,
                deadline=now + timedelta(days=3),
                created_at=now,
            )
        w.entities.append(entity)
        w.inspections.append(insp)
    w.coordinator = await ChatBinding.get_or_none(address="900") or await ChatBinding.create(
        channel=Channel.TELEGRAM, address="900", role=Role.COORDINATOR, departments=[dept.code], display_name="协调员"
    )
    for k, person in enumerate(inspectors):
        found = await ChatBinding.get_or_none(address=str(801 + k))
        w.inspector_chats.append(
            found
            or await ChatBinding.create(
                channel=Channel.TELEGRAM, address=str(801 + k), role=Role.INSPECTOR, inspector=person
            )
        )
    return w


async def link_chat(entity: Entity, address: str = "700", locale: str = "zh-CN") -> ChatBinding:
    """The entity linked a Telegram chat."""
    return await ChatBinding.create(
        channel=Channel.TELEGRAM, address=address, role=Role.ENTITY, entity=entity, locale=locale
    )
