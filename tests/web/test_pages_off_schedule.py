"""Issue 14: an off-schedule draw carries a visible banner linking the draw it redoes (and that
draw links its redraw); a withdrawn firing stays on the home page with its reason. Both locales,
SQLite and PostgreSQL."""

from __future__ import annotations

import html
from datetime import timedelta

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.runtime import Runtime
from bot.web import make_app
from models.messaging import Channel, ChatBinding, Role
from services import plans
from services.draws.announce import announce, withdraw
from services.draws.write import OffSchedule, draw_plan
from tests.builders import scheduled_draw
from tests.services import draw_world

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
ZONE = draw_world.ZONE


async def test_off_schedule_banner_and_withdrawn_firing_are_public(db, tmp_path):
    await draw_world.build(n_entities=20)
    clock = draw_world.clock()
    await plans.add_plan(draw_world.plan_file(tmp_path, "P1"), clock)
    first = await scheduled_draw("P1", clock=clock, zone=ZONE)
    other = await ChatBinding.create(
        channel=Channel.TELEGRAM, address="901", role=Role.COORDINATOR, departments=["SCJG"], display_name="李娜"
    )
    clock.advance(timedelta(hours=1))
    off = OffSchedule("名录导入错误，<重抽>", confirmed_by=other.id, redraw=first.draw_ref)
    again = await draw_plan("P1", clock=clock, zone=ZONE, off_schedule=off)
    later = await announce("P1", clock.now() + timedelta(days=3), clock=clock, zone=ZONE)
    await withdraw(later.draw_ref, "节假日调整", actor="cli", clock=clock)

    rt = Runtime(settings=db, clock=clock)
    async with TestClient(TestServer(make_app(rt))) as client:

        async def get(path: str) -> str:
            response = await client.get(path)
            assert response.status == 200, path
            return await response.text()

        page = await get(f"/draws/{again.draw_ref}")
        assert 'class="banner off-schedule"' in page and "计划外抽取" in page
        assert f'href="/draws/{first.draw_ref}"' in page
        assert html.escape("名录导入错误，<重抽>", quote=False) in page and "<重抽>" not in page
        # the confirmer as draw.json names them, a pseudonymous number: no name in public
        assert f"coordinator:{other.id}" in page and "李娜" not in page
        page_en = await get(f"/draws/{again.draw_ref}?lang=en")
        assert "Off-schedule draw." in page_en and f'redraws <a href="/draws/{first.draw_ref}' in page_en
        earlier = await get(f"/draws/{first.draw_ref}")
        assert f'href="/draws/{again.draw_ref}"' in earlier and "已被计划外重抽" in earlier
        listing = await get("/draws")
        assert listing.count('class="tag off-schedule"') == 1
        home = await get("/")
        assert later.draw_ref in home and "已撤回，理由：节假日调整" in home and later.commitment in home
        assert "reason: 节假日调整" in await get("/?lang=en")
