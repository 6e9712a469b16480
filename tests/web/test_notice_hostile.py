"""The firm's notice and objection pages tried as a curious or hostile visitor would (hostile2):
guessing codes (a limit per firm and per client, each wrong code audited, the code never), a
double click, control characters and markup, a non-UTF-8 body, a post from another site, a
100,000-character reason, and the caching and referrer headers of every page with a code."""

from __future__ import annotations

from datetime import timedelta

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.runtime import Runtime
from bot.web import make_app
from core.settings import Settings, SettingsError
from domain.onsite import CLIENT_ATTEMPTS, CODE_ATTEMPTS
from models.alerts import Alert
from models.audit import AuditRecord
from models.publication import Notice, Objection
from services import audit
from tests.web import world
from tests.web.test_pages import get, site  # noqa: F401 (the fixture)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
WRONG = "G2345678"


async def _open(w) -> str:
    """The world's notice with its objection period still open; the firm's objection URL."""
    await Notice.filter(code=world.NOTICE_CODE).update(objection_until=w.clock.now().date() + timedelta(days=10))
    return f"/entities/{w.markup.uscc}/objection"


async def _notice(client, uscc: str, code: str):
    return await client.get(f"/entities/{uscc}/notice", params={"code": code})


@pytest.mark.parametrize("by", ["firm", "client"])
async def test_guessing_codes_is_locked_out_audited_and_lifted_after_the_window(site, by):  # noqa: F811
    client, w = site
    url = await _open(w)
    other = f"/entities/{w.markup.uscc}".replace("03X", "05X")  # another firm, on the same client
    tries = CODE_ATTEMPTS if by == "firm" else CLIENT_ATTEMPTS
    for i in range(tries):
        target = w.markup.uscc if by == "firm" else f"91370200000{i:07d}"
        if i % 2:
            response = await _notice(client, target, WRONG)
        else:
            response = await client.post(f"/entities/{target}/objection", data={"code": WRONG, "reason": "x"})
        assert response.status == 404, i
    # the right code is refused too while locked: with a clear message, for the PDF and the form
    locked = await _notice(client, w.markup.uscc, world.NOTICE_CODE)
    assert locked.status == 429 and "输错次数过多" in await locked.text()
    response = await client.post(url, data={"code": world.NOTICE_CODE, "reason": "理由"})
    assert response.status == 429 and "60 分钟后再试" in await response.text()
    assert await Objection.all().count() == 0
    # per firm: another firm's page is not locked by this firm's guessers; per client: it is
    assert (await _notice(client, other.rsplit("/", 1)[1], WRONG)).status == (404 if by == "firm" else 429)
    refused = await AuditRecord.filter(action="notice.code_refused").values("actor", "subject", "data")
    assert len(refused) == tries + (by == "firm")
    assert all(r["actor"] == "web:127.0.0.1" and WRONG not in str(r) for r in refused)  # never the code tried
    if by == "firm":
        assert sum(r["subject"] == f"entity:{w.markup.id}" for r in refused) == CODE_ATTEMPTS
    w.clock.set(w.clock.now() + timedelta(minutes=61))
    assert (await _notice(client, w.markup.uscc, world.NOTICE_CODE)).status == 200
    assert (await audit.verify())[1] is None


async def test_a_double_click_lodges_one_objection_and_one_alert(site):  # noqa: F811
    client, w = site
    url = await _open(w)
    for _ in range(2):
        response = await client.post(url, data={"code": world.NOTICE_CODE.lower(), "reason": "冷柜当日已修复"})
        assert response.status == 200 and "已收到" in await response.text()
    assert await Objection.all().count() == 1 and await Alert.filter(kind="objection_received").count() == 1
    response = await client.post(url, data={"code": world.NOTICE_CODE, "reason": "另一条理由"})
    assert response.status == 400 and "正在处理中" in await response.text()


async def test_control_characters_are_dropped_and_markup_is_shown_as_text(site):  # noqa: F811
    client, w = site
    url = await _open(w)
    reason = "温度计故障\x00\x07<script>alert(1)</script>"
    response = await client.post(url, data={"code": world.NOTICE_CODE, "reason": reason})
    assert response.status == 200  # PostgreSQL refused the NUL: a 500 and nothing lodged
    kept = await Objection.get()
    assert kept.reason == "温度计故障<script>alert(1)</script>"
    alert = await Alert.get(kind="objection_received")
    assert alert.context["reason"] == kept.reason and "<script>" not in await response.text()


@pytest.mark.parametrize(
    ("headers", "status", "says"),
    [
        ({"Origin": "https://evil.example"}, 403, "请在本网站的结果公示页面提交"),
        ({"Sec-Fetch-Site": "cross-site"}, 403, "请在本网站的结果公示页面提交"),
        ({"Sec-Fetch-Site": "same-origin"}, 200, "已收到"),
        ({"Origin": "{self}"}, 200, "已收到"),
        ({}, 200, "已收到"),
    ],
)
async def test_a_post_from_another_site_is_refused(site, headers, status, says):  # noqa: F811
    client, w = site
    url = await _open(w)
    if headers.get("Origin") == "{self}":
        headers = {"Origin": str(client.make_url("/")).rstrip("/")}
    response = await client.post(url, data={"code": world.NOTICE_CODE, "reason": "理由"}, headers=headers)
    assert response.status == status and says in await response.text()
    assert await Objection.all().count() == (status == 200)


async def test_a_body_that_is_not_utf8_is_a_clear_refusal(site):  # noqa: F811
    client, w = site
    url = await _open(w)
    body = b"code=GTEST234&reason=\xff\xfe\xc3"
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    response = await client.post(url, data=body, headers=headers)
    assert response.status == 400 and "编码有误" in await response.text()  # was a 500
    assert await Objection.all().count() == 0


async def test_a_reason_too_long_is_refused_with_the_form_filled_again(site):  # noqa: F811
    client, w = site
    url = await _open(w)
    response = await client.post(url, data={"code": world.NOTICE_CODE, "reason": "长" * 100_000})
    page = await response.text()
    assert response.status == 400 and "不超过 500 字" in page
    assert "长" * 1000 in page and f'value="{world.NOTICE_CODE}"' in page  # nothing typed is lost
    response = await client.post(url, data={"code": world.NOTICE_CODE, "reason": "<b>x</b>" + "长" * 600})
    assert "&lt;b&gt;x&lt;/b&gt;" in await response.text()  # filled again, escaped


async def test_pages_with_a_code_are_never_cached_nor_sent_as_referrer_and_are_stable(site):  # noqa: F811
    client, w = site
    url = await _open(w)
    first = await _notice(client, w.markup.uscc, world.NOTICE_CODE)
    w.clock.set(w.clock.now() + timedelta(minutes=1))
    again = await _notice(client, w.markup.uscc, world.NOTICE_CODE)
    assert await first.read() == await again.read()  # the same notice a minute later, byte for byte
    refused = await _notice(client, w.markup.uscc, WRONG)
    lodged = await client.post(url, data={"code": world.NOTICE_CODE, "reason": "理由"})
    for response in (first, refused, lodged):
        assert response.headers["Cache-Control"] == "no-store", response.url
        assert response.headers["Referrer-Policy"] == "same-origin"
    entity_page = await client.get(f"/entities/{w.markup.uscc}")
    assert "Cache-Control" not in entity_page.headers  # a page without a code may be cached
    assert await get(client, f"/entities/{w.markup.uscc}") == await get(client, f"/entities/{w.markup.uscc}")


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/entities/%00", 404),  # PostgreSQL refused the NUL in the query: a 500
        ("GET", "/entities/%00/notice?code=GTEST234", 404),
        ("GET", "/entities/" + "9" * 5000 + "/notice?code=GTEST234", 404),  # longer than the column: a 500
        ("POST", "/entities/%00/objection", 404),
        ("POST", "/entities/" + "9" * 5000 + "/objection", 404),
    ],
)
async def test_an_address_that_is_no_credit_code_is_a_404(site, method, path, status):  # noqa: F811
    client, _ = site
    response = await client.request(
        method, path, data={"code": "GTEST234", "reason": "x"} if method == "POST" else None
    )
    assert response.status == status and "没有" in await response.text()


@pytest.fixture
async def proxied(db, tmp_path):
    """The site behind a reverse proxy we trust (the test client connects from 127.0.0.1)."""
    w = await world.build(tmp_path)
    rt = Runtime(settings=db.with_(trusted_proxies="127.0.0.1"), clock=w.clock)
    async with TestClient(TestServer(make_app(rt))) as client:
        yield client, w


async def _guess_on_other_firms(client, visitor: str, n: int) -> list[int]:
    return [
        (await client.get(f"/entities/91370200000{i:07d}/notice", params={"code": WRONG}, headers=visitor)).status
        for i in range(n)
    ]


async def test_behind_a_trusted_proxy_each_visitor_has_their_own_guessing_limit(proxied):
    client, w = proxied
    guesser, neighbour = {"X-Forwarded-For": "203.0.113.1"}, {"X-Forwarded-For": "198.51.100.7, 203.0.113.2"}
    assert set(await _guess_on_other_firms(client, guesser, CLIENT_ATTEMPTS)) == {404}
    assert (await _notice_as(client, w.markup.uscc, WRONG, guesser)).status == 429
    # the next visitor behind the same proxy is not locked out by the guesser
    assert (await _notice_as(client, w.markup.uscc, world.NOTICE_CODE, neighbour)).status == 200
    actors = set(await AuditRecord.filter(action="notice.code_refused").values_list("actor", flat=True))
    assert actors == {"web:203.0.113.1"}


async def test_without_trusted_proxies_a_forged_forwarded_for_does_not_escape_the_limit(site):  # noqa: F811
    client, w = site
    statuses = [
        (
            await client.get(
                f"/entities/91370200000{i:07d}/notice",
                params={"code": WRONG},
                headers={"X-Forwarded-For": f"203.0.113.{i}"},  # a new address each time: not believed
            )
        ).status
        for i in range(CLIENT_ATTEMPTS + 1)
    ]
    assert statuses == [404] * CLIENT_ATTEMPTS + [429]
    actors = set(await AuditRecord.filter(action="notice.code_refused").values_list("actor", flat=True))
    assert actors == {"web:127.0.0.1"}


async def _notice_as(client, uscc: str, code: str, headers: dict):
    return await client.get(f"/entities/{uscc}/notice", params={"code": code}, headers=headers)


def test_the_trusted_proxies_setting_is_read_and_a_wrong_one_refused_by_name():
    s = Settings.from_env({"INSPECTBOT_TRUSTED_PROXIES": "10.0.0.5, 10.1.0.0/16"}, dotenv=False)
    assert [str(n) for n in s.proxies] == ["10.0.0.5/32", "10.1.0.0/16"]
    with pytest.raises(SettingsError, match="INSPECTBOT_TRUSTED_PROXIES: 'nginx' is not an IP address"):
        Settings.from_env({"INSPECTBOT_TRUSTED_PROXIES": "nginx"}, dotenv=False)
