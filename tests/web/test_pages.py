"""The public pages through aiohttp's test client, on SQLite and PostgreSQL: every page renders,
nothing private leaks, lookup and pagination work, flight draws stay sealed until revealed,
bundles download and verify, /metrics (on its own app) exposes its series."""

from __future__ import annotations

import io
import json
import re
import zipfile
from datetime import UTC, datetime, timedelta

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.metrics import make_metrics_app
from bot.runtime import RUNTIME, Runtime
from bot.web import make_app
from domain import bundle
from models.draws import Assignment, Draw, Inspection
from models.scheduling import Fire
from services import public
from services.recusals import record_and_replace
from tests.web import world

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture
async def site(db, tmp_path):
    w = await world.build(tmp_path)
    rt = Runtime(settings=db, clock=w.clock)
    async with TestClient(TestServer(make_app(rt))) as client:
        yield client, w


async def get(client, path: str, status: int = 200, **headers) -> str:
    response = await client.get(path, headers=headers, allow_redirects=False)
    body = await response.text()
    assert response.status == status, (path, response.status, body[:500])
    return body


def pages(w) -> list[str]:
    return [
        "/",
        "/plans",
        "/draws",
        f"/draws/{w.p1}",
        f"/draws/{w.f1}",
        "/entities",
        "/entities?q=青岛测试",
        "/entities?q=海鲜",
        f"/entities/{w.markup.uscc}",
        "/reports",
        "/reports/2026-12",
    ]


async def test_every_page_renders_in_both_locales(site):
    client, w = site
    for path in pages(w):
        zh = await get(client, path)
        assert '<html lang="zh-CN">' in zh and "抽查" in zh
        en = await get(client, path + ("&" if "?" in path else "?") + "lang=en")
        assert '<html lang="en">' in en and "lang=en" in en  # links keep the chosen language
    assert '<html lang="en">' in await get(client, "/draws", **{"Accept-Language": "en-GB,en;q=0.9,zh;q=0.5"})
    assert '<html lang="zh-CN">' in await get(client, "/draws", **{"Accept-Language": "fr,zh-CN;q=0.8,en;q=0.3"})
    protocol = await get(client, "/docs/draw-protocol.md")
    assert "inspectbot/draw/v1" in protocol
    assert (await client.get("/healthz")).status == 200
    # the public report: nothing personal, a chart, clear refusals
    html = await get(client, "/reports/2026-12")
    assert "本月结束后公布" in html and "投诉率" not in html  # the month is not over: no survey figure yet
    assert "检查员S0" not in html  # no inspector is named
    assert "任务通知未能送达" not in html  # 1 December: no response deadline has passed yet
    png = await client.get("/reports/2026-12/chart.png")
    assert png.status == 200 and (await png.read()).startswith(b"\x89PNG")
    assert "2030-01 尚未开始" in await get(client, "/reports/2030-01", status=400)
    assert "不是有效的月份" in await get(client, "/reports/2026-13", status=400)


async def test_public_report_counts_tasks_never_reached_apart_and_no_people(site):
    """The 31st: every response deadline has passed, and no task message went out here (nothing
    is dispatched): none counts as a missed deadline; the tasks never reached are counted apart,
    but not how many inspectors (docs/public-pages.md, "The monthly report")."""
    client, w = site
    w.clock.set(datetime(2026, 12, 31, 4, 0, tzinfo=UTC))
    zh = await get(client, "/reports/2026-12")
    assert "（0 / 0 项已送达的任务）" in zh and re.search(r"<dt>任务通知未能送达</dt><dd>\d+ 项", zh)
    assert "名检查人员" not in zh and "未绑定聊天" not in zh
    en = await get(client, "/reports/2026-12?lang=en")
    assert "(0 / 0 tasks delivered)" in en and re.search(r"<dt>Task messages not delivered</dt><dd>\d+ tasks", en)


async def test_nothing_private_is_ever_shown_and_markup_stays_text(site):
    client, w = site
    seen = [await get(client, path) for path in pages(w)]
    seen += [await get(client, path + ("&" if "?" in path else "?") + "lang=en") for path in pages(w)]
    seen.append(await get(client, f"/draws/{w.f1}/bundle/sealed.json"))
    html = "\n".join(seen)
    private = [
        world.PHONE,
        world.PHONE[3:],
        world.INSPECTOR_PHONE,
        world.CONFLICT_NOTE,
        world.RECUSAL_NOTE,
        world.SURVEY_COMMENT,
        world.FINDING_NOTE,
        w.secrets[w.f1],
        w.secrets[w.p2],
        "近亲属关系",
        "close relative",
        "经济利益关系",
        "K7QX",
    ]
    for secret in private:
        assert secret not in html, secret
    # and the planted things are really there to be leaked (the check above can fail)
    assert world.SURVEY_COMMENT in str(await _survey_comment()) and w.secrets[w.p2]
    for path in (f"/entities/{w.markup.uscc}", "/entities?q=海鲜酒楼", f"/draws/{w.p1}"):
        html = await get(client, path)
        assert "&lt;script&gt;alert(1)&lt;/script&gt;海鲜酒楼" in html  # markup in a name is shown as text
        assert "<script>" not in html
    csp = (await client.get("/")).headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "script-src" not in csp  # and no script may run at all


async def _survey_comment():
    from models.surveys import Survey

    return await Survey.all().values_list("comment", flat=True)


async def test_lookup_by_code_and_by_name_and_pagination(site):
    client, w = site
    response = await client.get(f"/entities?q={w.markup.uscc.lower()}", allow_redirects=False)
    assert response.status == 302 and response.headers["Location"] == f"/entities/{w.markup.uscc}"
    page = await get(client, f"/entities/{w.markup.uscc}")
    assert "餐饮食品安全抽查" in page and "发现问题" in page and "食品经营许可情况检查" in page
    assert "不合格" in page
    other = await get(client, f"/entities/{w.markup.uscc}".replace("03X", "05X"))
    assert "待公示" in other  # drawn, no result yet: pending
    assert "请至少输入名称中的 2 个字" in await get(client, "/entities?q=海")
    assert "没有找到名称包含“<bdi>不存在的公司</bdi>”的主体" in await get(client, "/entities?q=不存在的公司")
    assert "查询内容不能超过" in await get(client, "/entities?q=" + "长" * 51)
    await get(client, "/entities/91370200999999999X", status=404)
    # LIKE wildcards are matched literally
    assert "没有找到" in await get(client, "/entities?q=%25%25")

    # name search pages with a keyset (the id after which the next page starts)
    first = await public.search_entities("青岛测试")
    assert len(first.rows) == public.PAGE and first.has_next
    second = await public.search_entities("青岛测试", first.after)
    assert not second.has_next
    ids = [e.id for e in first.rows + second.rows]
    assert len(ids) == len(set(ids)) == 39  # 40 test entities, one renamed to the markup name
    html = await get(client, "/entities?q=青岛测试")
    assert f"after={first.after}" in html
    html2 = await get(client, f"/entities?q=青岛测试&after={first.after}")
    assert second.rows[0].name in html2 and "更多结果" not in html2

    # the other lists page by number
    now = w.clock.now()
    one = await public.draws(now, 1, size=1)
    two = await public.draws(now, 2, size=1)
    assert one.has_next and two.has_prev and one.rows[0].draw_ref != two.rows[0].draw_ref
    listed = await public.drawn_entities((await Draw.get(draw_ref=w.p1)).id, 2, size=15)
    assert [e.no for e in listed.rows] == list(range(16, 31)) and listed.has_next
    last = await public.drawn_entities((await Draw.get(draw_ref=w.p1)).id, 3, size=15)
    assert [e.no for e in last.rows] == list(range(31, 41)) and not last.has_next
    plans = await public.plans(1, size=2)
    assert [p.code for p in plans.rows] == ["F1", "P1"] and plans.has_next
    html = await get(client, "/plans?page=2")
    assert "P2" in html and w.p2 in html  # P2's announced commitment is listed before its draw


async def test_flight_draw_is_sealed_then_revealed(site):
    client, w = site
    page = await get(client, f"/draws/{w.f1}")
    assert "未揭晓" in page and "sealed.json" in page and "draw.json" not in page
    assert world.MARKUP.replace("<", "&lt;").replace(">", "&gt;") not in page
    await get(client, f"/draws/{w.f1}/bundle/draw.json", status=404)
    await get(client, f"/draws/{w.f1}/bundle/pool.tsv", status=404)
    sealed = json.loads(await get(client, f"/draws/{w.f1}/bundle/sealed.json"))
    assert "secret" not in sealed and sealed["flight"] is True
    entity = await get(client, f"/entities/{w.markup.uscc}")
    assert w.f1 not in entity  # its target is not shown under its name before the reveal

    w.clock.set(w.reveal_at + timedelta(minutes=1))
    page = await get(client, f"/draws/{w.f1}")
    assert "未揭晓" not in page and "draw.json" in page and "&lt;script&gt;" in page
    doc = json.loads(await get(client, f"/draws/{w.f1}/bundle/draw.json"))
    assert doc["secret"] == w.secrets[w.f1] and doc["inspections_digest"] == sealed["inspections_digest"]
    assert w.f1 in await get(client, f"/entities/{w.markup.uscc}")


async def test_bundle_downloads_verifies_and_follows_recusals(site, tmp_path):
    client, w = site
    response = await client.get(f"/draws/{w.p1}/bundle.zip")
    assert response.status == 200 and response.headers["Content-Disposition"].endswith('.zip"')
    files = _unzip(await response.read())
    assert sorted(files) == ["draw.json", "inspectors.tsv", "pool.tsv", "recusals.tsv"]
    assert all(line.ok for line in bundle.verify(files))
    single = await client.get(f"/draws/{w.p1}/bundle/recusals.tsv")
    assert await single.read() == files["recusals.tsv"]
    await get(client, f"/draws/{w.p1}/bundle/secret.txt", status=404)
    await get(client, "/draws/NOPE/2026-12-01", status=404)
    # a second recusal changes the bundle: a new version is exported
    insp = await Inspection.get(draw__draw_ref=w.p1, no=2)
    asg = await Assignment.filter(inspection_id=insp.id, status="sent").order_by("seat").first()
    await record_and_replace(asg.id, "other", "", clock=w.clock, zone=world.ZONE)
    again = _unzip(await (await client.get(f"/draws/{w.p1}/bundle.zip")).read())
    assert again["recusals.tsv"].count(b"\n") == files["recusals.tsv"].count(b"\n") + 1
    assert all(line.ok for line in bundle.verify(again))


def _unzip(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {name.rsplit("/", 1)[-1]: zf.read(name) for name in zf.namelist()}


async def test_metrics_exposes_the_series(site):
    client, w = site
    now = w.clock.now()
    await Fire.create(
        key="draw:P1:x", kind="draw", scheduled_for=now - timedelta(seconds=42), fired_at=now, outcome="drawn"
    )
    from models.messaging import Outbox

    await Outbox.filter(id=(await Outbox.first()).id).update(status="dead", last_error="gave_up:timeout")
    assert (await client.get("/metrics")).status == 404  # not on the public port
    async with TestClient(
        TestServer(make_metrics_app(Runtime(settings=client.app[RUNTIME].settings, clock=w.clock)))
    ) as m:
        response = await m.get("/metrics")
        assert response.status == 200 and response.headers["Content-Type"].startswith("text/plain")
        text = await response.text()
    pending = await Outbox.filter(status="pending").count()
    assert f'inspectbot_outbox_messages{{channel="telegram",status="pending"}} {float(pending)}' in text
    assert f'inspectbot_outbox_depth{{status="pending"}} {float(pending)}' in text
    assert "inspectbot_outbox_sent_total 0.0" in text  # nothing was dispatched in this world
    assert 'inspectbot_outbox_errors{channel="telegram",kind="timeout",status="dead"} 1.0' in text
    assert 'inspectbot_draws_total{flight="false"} 1.0' in text
    assert 'inspectbot_draws_total{flight="true"} 1.0' in text
    assert 'inspectbot_scheduler_lag_seconds{kind="draw"} 42.0' in text
    assert 'inspectbot_scheduler_fires_total{kind="draw",outcome="drawn"} 1.0' in text
    assert "inspectbot_outbox_oldest_due_seconds" in text and "inspectbot_inbound_events_total" in text
    assert 'inspectbot_surveys{status="out"} 1.0' in text  # answered, but no answer moves a series
    assert "process_cpu_seconds_total" in text or "python_info" in text
