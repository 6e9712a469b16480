"""Issue 14 item 5: the audit chain's head is public: on the home page (the head now) and on each
draw's page (the head just after the draw, as in its draw.json). Both locales, SQLite and
PostgreSQL."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.runtime import Runtime
from bot.web import make_app
from services import audit, plans
from tests.builders import scheduled_draw
from tests.services import draw_world

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
ZONE = draw_world.ZONE


async def test_home_and_draw_pages_show_the_audit_head(db, tmp_path):
    await draw_world.build(n_entities=10)
    clock = draw_world.clock()
    await plans.add_plan(draw_world.plan_file(tmp_path, "P1"), clock)
    drawn = await scheduled_draw("P1", clock=clock, zone=ZONE)
    seq, head = drawn.audit_head
    await audit.append("system", "later.act", "s", {}, clock.now())
    now_seq, now_head = await audit.head()
    assert now_seq == seq + 1

    rt = Runtime(settings=db, clock=clock)
    async with TestClient(TestServer(make_app(rt))) as client:

        async def get(path: str) -> str:
            response = await client.get(path)
            assert response.status == 200, path
            return await response.text()

        page = await get(f"/draws/{drawn.draw_ref}")
        assert "审计日志链头" in page and f"{seq}:{head}" in page and now_head not in page
        assert "Audit log head" in await get(f"/draws/{drawn.draw_ref}?lang=en")
        home = await get("/")
        assert f"{now_seq}:{now_head}" in home and "审计日志链头" in home
        assert f"{now_seq}:{now_head}" in await get("/?lang=en")
