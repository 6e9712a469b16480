"""/conflicts 群英 in chat: every match reachable with ◀ ▶, firms of the same name told apart by
their credit code, and nothing registered until the inspector confirms."""

from __future__ import annotations

from models.directory import Conflict, ConflictSource, Entity, EntityKind, RiskClass
from tests.e2e.harness import spine
from tests.e2e.test_inspector_chat import inspector_chat
from tests.services import draw_world as world


async def firms(n: int) -> list[Entity]:
    """``n`` firms whose names hold 群英; the first two share one name."""
    rows = []
    for i in range(n):
        name = "青岛群英00餐饮有限公司" if i < 2 else f"青岛群英{i:02d}号商贸有限公司"
        rows.append(
            await Entity.create(
                uscc=f"91370200MA3Q{i:05d}X",
                name=name,
                kind=EntityKind.ENTERPRISE,
                division_code="370202",
                address=f"青岛市市南区群英路{i}号",
                industry="餐饮",
                risk_class=RiskClass.C,
            )
        )
    return rows


async def test_search_pages_labels_and_confirms(db, tmp_path):
    async with spine(db, clock=world.clock()) as s:
        await world.build(n_entities=2, n_scjg=2, n_wsj=0)
        found = await firms(23)
        chat = await inspector_chat(s, "S01")
        chat.new()
        first = (await chat.command("conflicts", "群英"))[-1]
        assert "共 23 个" in first.text and "第 1/3 页" in first.text
        picks = [d for d in first.callback_data if d.startswith("cfl:pick:")]
        assert len(picks) == 10 and first.callback_data[-1] == "pg:cfs:2"
        labels = [b["text"] for row in first.buttons for b in row]
        twins = [x for x in labels if x.startswith("青岛群英00餐饮有限公司")]
        assert len(twins) == 2 and len(set(twins)) == 2  # told apart by the credit code
        assert all(found[i].uscc in " ".join(twins) for i in (0, 1))
        # every match is reachable: page through to the last
        await chat.press(first, "pg:cfs:2")
        await chat.press(s.sim.message(chat.user, first.message_id), "pg:cfs:3")
        last = s.sim.message(chat.user, first.message_id)
        assert "第 3/3 页" in last.text and "pg:cfs:2" in last.callback_data
        shown = {int(d.split(":")[2]) for d in last.callback_data if d.startswith("cfl:pick:")}
        assert len(shown) == 3 and shown <= {e.id for e in found}
        # pick → kind → confirmation; cancel registers nothing
        target = next(e for e in found if e.id == min(shown))
        types = (await chat.press(last, f"cfl:pick:{target.id}"))[-1]
        assert target.name in types.text and f"cfl:cancel:{target.id}" in types.callback_data
        confirm = (await chat.press(types, f"cfl:type:{target.id}:close_relative"))[-1]
        assert target.uscc in confirm.text and "近亲属" in confirm.text and not await Conflict.exists()
        cancelled = (await chat.press(confirm, f"cfl:cancel:{target.id}"))[-1]
        assert "未登记" in cancelled.text and not await Conflict.exists()
        done = (await chat.press(confirm, f"cfl:ok:{target.id}:close_relative"))[-1]
        assert target.name in done.text
        row = await Conflict.get(entity_id=target.id)
        assert row.source == ConflictSource.DECLARED
        again = (await chat.press(confirm, f"cfl:ok:{target.id}:close_relative"))[-1]
        assert "已经登记过了" in again.text and await Conflict.filter(entity_id=target.id).count() == 1
