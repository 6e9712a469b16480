"""No input a person can type makes a handler or a page fail (issue 13 §4).

Hypothesis drives

* **every** registered chat command (``handlers.router.COMMANDS``) with arbitrary Unicode arguments
  — and the arguments people were seen to type: ``²``, ``①``, twenty nines, a full company name, a
  month in the year 9999 —, as each role (inspector, coordinator, entity, a stranger);
* **every** button prefix (``handlers.router.BUTTONS``) with arbitrary data and with well-formed data
  whose id and argument are anything from 0 to twenty digits;

through the real inbound path (``Runtime.on_event``: stored, routed, answered in one transaction),
and asserts that no event is recorded ``failed:*`` (the user would read "系统处理这条消息时出错")
and every one gets an answer or is deliberately ignored; and

* **every** GET route of the service's aiohttp app (``bot.web.make_app``: the public pages, their
  files, health) with arbitrary path parameters and query strings: no answer is 5xx.

On SQLite and PostgreSQL (PostgreSQL's INTEGER columns refuse what SQLite stores). One database per
test function; the examples are bounded so the module runs in CI's time.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
from urllib.parse import quote, urlencode

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bot.runtime import Runtime
from bot.web import make_app
from core import callbacks
from core.callbacks import Family
from core.channel import EventKind, InboundEvent
from handlers import router
from models.messaging import Outbox
from services.reports import months_with_data
from tests.reliability import test_cross_access as scene_world
from tests.web import world as web_world

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

SENDERS = {
    "inspector": scene_world.ATTACKER,
    "lead": scene_world.V_LEAD,
    "coordinator": scene_world.SCJG_COORD,
    "entity": scene_world.VICTIM_ENTITY_CHAT,
    "stranger": scene_world.STRANGER,
}
TYPED = [
    "²",
    "①",
    "٣",
    "#²",
    "99999999999999999999",
    "9223372036854775807",
    "2147483648",
    "-1",
    "0",
    "1e5",
    "青岛市市南区某某餐饮管理有限公司第一分公司",
    "P" * 33,
    "x" * 65,
    "9999-12",
    "0000-01",
    "1999-12",
    "2026-13",
    "２０２６-１２",
    "P1",
    "P1/2026-12-01",
    "1 2",
    "\u202e",
    "<b>",
]
NUMBERS = st.integers(0, 10**20).map(str) | st.sampled_from(["9223372036854775807", "2147483647", "2147483648"])
ARGUMENTS = st.sampled_from(TYPED) | st.text(max_size=80) | NUMBERS


def families() -> dict[str, set[str]]:
    """Every button prefix with the actions its family knows (a prefix without a family: none)."""
    known = {f.prefix: set(f.actions) for f in vars(callbacks).values() if isinstance(f, Family)}
    return {prefix: known.get(prefix, set()) | {"x"} for prefix in router.BUTTONS}


@st.composite
def button_data(draw) -> str:
    prefix = draw(st.sampled_from(sorted(router.BUTTONS)))
    if draw(st.integers(0, 3)) == 0:
        return prefix + ":" + draw(st.text(max_size=70))
    action = draw(st.sampled_from(sorted(families()[prefix] | {"show", "open", "now", "ack", "plans", "pending"})))
    parts = [prefix, action, draw(NUMBERS)]
    if draw(st.booleans()):
        parts.append(draw(NUMBERS | st.sampled_from(["close_relative", "other", "a-b_c"]) | st.text(max_size=10)))
    return ":".join(parts)


class Driver:
    def __init__(self, bot) -> None:
        self.bot = bot
        self.ids = itertools.count(1)

    async def send(self, sender: str, kind: EventKind, **fields) -> str:
        top = await Outbox.all().order_by("-id").values_list("id", flat=True)
        event = InboundEvent(
            channel="telegram", external_id=f"fuzz{next(self.ids)}", sender=sender, kind=kind, **fields
        )
        got = await self.bot.rt.on_event(event)
        assert not got.outcome.startswith("failed"), (fields, got.outcome)
        answered = await Outbox.filter(id__gt=top[0] if top else 0).count()
        assert answered or got.outcome in QUIET, (fields, got.outcome)
        return got.outcome


QUIET = {"edit_ignored", "unknown"}  # ignored on purpose (nothing to answer)


@pytest.fixture
async def chat(db, tmp_path):
    bot, v = await scene_world.build(db, tmp_path, scene_world.world.clock())
    return Driver(bot)


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(name=st.sampled_from(sorted(router.COMMANDS)), who=st.sampled_from(sorted(SENDERS)), argument=ARGUMENTS)
@example(name="task", who="inspector", argument="²")
@example(name="task", who="inspector", argument="①")
@example(name="task", who="inspector", argument="99999999999999999999")
@example(name="result", who="inspector", argument="²")
@example(name="integrity", who="coordinator", argument="①")
@example(name="conflicts", who="inspector", argument="青岛市市南区某某餐饮管理有限公司第一分公司")
@example(name="plan", who="coordinator", argument="P" * 33)
@example(name="draw", who="coordinator", argument="P" * 33)
@example(name="status", who="coordinator", argument="x" * 65)
@example(name="verify", who="coordinator", argument="x" * 65)
@example(name="report", who="coordinator", argument="9999-12")
async def test_no_command_argument_makes_a_handler_fail(chat, name, who, argument):
    text = f"/{name} {argument}".strip()
    await chat.send(SENDERS[who], EventKind.COMMAND, command=name, argument=argument, text=text)


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(data=button_data(), who=st.sampled_from(sorted(SENDERS)))
@example(data="asg:show:99999999999999999", who="inspector")
@example(data="pg:plans:999999999999999999", who="coordinator")
@example(data="drw:now:1:999999999999999999999999", who="coordinator")
@example(data="fnd:pass:1:99999999999999999999", who="lead")
async def test_no_button_data_makes_a_handler_fail(chat, data, who):
    await chat.send(SENDERS[who], EventKind.BUTTON, data=data, callback_id="cb")


# --- the web --------------------------------------------------------------------------------------


def get_routes(app: web.Application) -> list[tuple[str, re.Pattern | None]]:
    """(formatter, pattern) of every GET route of the app."""
    out = []
    for resource in app.router.resources():
        if not any(r.method in ("GET", "*") for r in resource):
            continue
        info = resource.get_info()
        out.append((info.get("formatter") or info.get("path") or "", info.get("pattern")))
    return sorted(out, key=lambda r: r[0])


def fill(formatter: str, params: dict[str, str]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: quote(params.get(m.group(1), "x"), safe=""), formatter)


QUERY_NAMES = ["page", "next", "after", "q", "lang", "month", "ref"]
QUERY_VALUES = st.sampled_from(TYPED + ["", "9223372036854775807", "-9223372036854775809"]) | st.text(max_size=60)
PARAM_VALUES = (
    st.sampled_from(["9999-12", "0000-00", "2000-01", "1999-12", "P1/2026-12-01", "draw.json", "bundle.zip"])
    | st.from_regex(r"[0-9]{4}-[0-9]{2}", fullmatch=True)
    | st.text(min_size=1, max_size=80)
)


@pytest.fixture
async def site(db, tmp_path):
    w = await web_world.build(tmp_path)
    app = make_app(Runtime(settings=db, clock=w.clock))
    async with TestClient(TestServer(app)) as client:
        yield client, get_routes(app)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(
    which=st.integers(0, 100),
    params=st.dictionaries(st.sampled_from(["ref", "name", "uscc", "month"]), PARAM_VALUES, max_size=4),
    query=st.lists(st.tuples(st.sampled_from(QUERY_NAMES) | st.text(max_size=8), QUERY_VALUES), max_size=4),
)
@example(which=-1, params={}, query=[("page", "9223372036854775807")])
@example(which=-1, params={}, query=[("next", "99999999999999999999")])
@example(which=-2, params={"month": "9999-12"}, query=[])
@example(which=-3, params={"month": "9999-12"}, query=[])
@example(which=-4, params={}, query=[("q", "某某"), ("after", "99999999999999999999")])
async def test_no_query_string_or_path_makes_a_page_fail(site, which, params, query):
    client, routes = site
    named = {-1: "/plans", -2: "/reports/{month}", -3: "/reports/{month}/chart.png", -4: "/entities"}
    formatter = named[which] if which < 0 else routes[which % len(routes)][0]
    path = fill(formatter, params) + ("?" + urlencode(query) if query else "")
    response = await client.get(path, allow_redirects=False)
    body = await response.read()
    assert response.status < 500, (path, response.status, body[:300])


def test_every_route_and_every_handler_is_driven():
    """The strategies reach every command, every button prefix and every GET route."""
    assert {"task", "result", "integrity", "conflicts", "plan", "draw", "status", "verify", "report"} <= set(
        router.COMMANDS
    )
    assert {"asg", "pg", "drw", "fnd", "cfl"} <= set(router.BUTTONS)
    assert set(families()) == set(router.BUTTONS)


async def test_a_request_line_over_the_limit_is_one_warning_not_an_error(sqlite_db, caplog):
    """aiohttp refuses a request line over 8190 bytes with 400; the log says so once, at WARNING,
    without the traceback it used to print at ERROR."""
    server = TestServer(make_app(Runtime(settings=sqlite_db)))
    await server.start_server()
    try:
        with caplog.at_level(logging.DEBUG, logger="aiohttp.server"):
            reader, writer = await asyncio.open_connection(server.host, server.port)
            writer.write(b"GET /entities?q=" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
            await writer.drain()
            status = await reader.readline()
            writer.close()
            await asyncio.sleep(0.1)
    finally:
        await server.close()
    assert b" 400 " in status, status
    logged = [r for r in caplog.records if r.name == "aiohttp.server"]
    assert [(r.levelno, r.exc_info) for r in logged] == [(logging.WARNING, None)], [r.getMessage() for r in logged]
    assert "8190" in logged[0].getMessage() and "Traceback" not in caplog.text


async def test_month_links_stop_at_the_first_and_last_month_with_data(site):
    """Following "previous month" from the latest report ends at the first month with a draw (it
    used to chain back past any data to 1999-12, which then said the month was badly formatted);
    no page links past the data at either end."""
    client, _ = site
    first, last = await months_with_data(web_world.ZONE)
    seen, path = [], "/reports"
    while path and len(seen) < 40:
        response = await client.get(path)
        body = await response.text()
        assert response.status == 200, (path, response.status)
        seen.append(path)
        links = sorted(set(re.findall(r'href="/reports/(\d{4}-\d{2})"', body)))
        assert all(first <= m <= max(last, seen[0][-7:] if seen[0] != "/reports" else last) for m in links), links
        earlier = [m for m in links if path == "/reports" or m < path[-7:]]
        path = f"/reports/{earlier[0]}" if earlier else None
    # /reports opens the latest month with data; with one month of data that is already the first
    shown = seen[-1] if seen[-1] != "/reports" else "/reports/" + (last if first == last else "")
    assert path is None and shown == f"/reports/{first}", seen
    body = await (await client.get("/reports/2000-01")).text()
    assert "/reports/1999-12" not in body
