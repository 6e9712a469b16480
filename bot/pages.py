"""The public pages (aiohttp + jinja2): plans, draws and their bundles, entity lookup, reports.

Each view reads its parameters, calls one query function of ``services.public`` (or
``services.reports``) and renders ``templates/<locale>/pages/<name>.html``; the locale is
zh-CN unless ``?lang=en`` or the browser's Accept-Language prefers English. Templates are
autoescaped (``.html``), and every page is sent with a Content-Security-Policy that allows no
script at all. What is published and what never is: docs/public-pages.md.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from pathlib import Path
from urllib.parse import quote, urlencode

from aiohttp import web
from markdown_it import MarkdownIt
from markupsafe import Markup

from bot.runtime import RUNTIME
from core.pdf import notice_pdf
from core.render import DEFAULT_LOCALE, render
from core.settings import LOCALES
from domain import inputs
from domain.onsite import REASON_LIMIT
from services import public, reports
from services.onsite import notice as notice_service
from services.onsite import objection as objection_service
from services.onsite.shared import OnsiteError

DOCS = Path(__file__).resolve().parent.parent / "docs"
# CommonMark with tables; raw HTML in a document is shown as text, never passed through
_MARKDOWN = MarkdownIt("commonmark", {"html": False}).enable("table")
PUBLISHED_DOCS = ("draw-protocol.md", "public-pages.md")
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
NOT_FOUND = {
    "draw_not_found",
    "draw_announced",
    "draw_withdrawn",
    "page_not_found",
    "entity_not_found",
    "file_not_found",
    "month_not_found",
    "notice_not_found",
}
#: Refusals that are not "bad input" (400).
REFUSED_STATUS = {"notice_not_found": 404, "code_locked": 429, "cross_site": 403}
#: Pages whose address or form carries a notice code: never kept by a browser or a proxy.
WITH_CODE = ("/notice", "/objection")
REPORT_TTL = 60.0
_REPORTS = web.AppKey("public_reports", dict)
MIME = {
    ".json": "application/json",
    ".tsv": "text/tab-separated-values",
    ".zip": "application/zip",
    ".png": "image/png",
    ".md": "text/markdown",
}


def _runtime(request: web.Request):
    return request.app[RUNTIME]


def _now(request: web.Request) -> datetime:
    return _runtime(request).clock.now()


def _data_dir(request: web.Request) -> Path:
    return Path(_runtime(request).settings.data_dir)


def negotiate(request: web.Request) -> tuple[str, bool]:
    """(locale, chosen explicitly by ``?lang=``). Otherwise the first of zh / en in the
    Accept-Language header by quality; zh-CN when it names neither."""
    lang = request.query.get("lang", "")
    if lang in LOCALES:
        return lang, True
    ranked = []
    for i, part in enumerate(request.headers.get("Accept-Language", "").split(",")):
        tag, _, params = part.strip().partition(";")
        try:
            q = float(params.strip()[2:]) if params.strip().startswith("q=") else 1.0
        except ValueError:
            q = 0.0
        ranked.append((-q, i, tag.strip().lower()))
    for _, _, tag in sorted(ranked):
        if tag.startswith("zh"):
            return "zh-CN", False
        if tag.startswith("en"):
            return "en", False
    return DEFAULT_LOCALE, False


class Links:
    """URLs for the templates; keeps an explicit ``?lang=`` on every link."""

    def __init__(self, request: web.Request, locale: str, explicit: bool) -> None:
        self.request, self.locale, self.explicit = request, locale, explicit

    def __call__(self, path: str, **params) -> str:
        query = {k: v for k, v in params.items() if v not in (None, "")}
        if self.explicit:
            query["lang"] = self.locale
        return quote(path, safe="/") + ("?" + urlencode(query) if query else "")

    def draw(self, draw_ref: str, suffix: str = "", **params) -> str:
        return self(f"/draws/{draw_ref}{suffix}", **params)

    def switch(self, locale: str) -> str:
        """This page in another locale."""
        query = {k: v for k, v in self.request.query.items() if k != "lang"}
        query["lang"] = locale
        return quote(self.request.path, safe="/") + "?" + urlencode(query)


def page(request: web.Request, template: str, *, status: int = 200, **context) -> web.Response:
    """Render a page in the request's locale, with the common context and headers."""
    locale, explicit = negotiate(request)
    zone = _runtime(request).settings.zone

    def when(moment: datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
        return moment.astimezone(zone).strftime(fmt) if moment else ""

    body = render(
        f"pages/{template}", locale, link=Links(request, locale, explicit), when=when, path=request.path, **context
    )
    return web.Response(text=body, status=status, content_type="text/html", charset="utf-8", headers=HEADERS)


def _page(request: web.Request, name: str) -> int:
    """A page number from the query string (``domain.inputs.page``: absent, unreadable or out of
    range is page 1, as the first page is for a malformed one)."""
    return inputs.page(request.query.get(name))


def _after(request: web.Request) -> int:
    """The keyset cursor of the entity search: a row id, 0 (the start) when unreadable."""
    return inputs.number(request.query.get("after")) or 0


def _file(path: Path, filename: str) -> web.FileResponse:
    headers = {
        **HEADERS,
        "Content-Disposition": f'attachment; filename="{filename}"',
        "Content-Type": MIME.get(path.suffix, "application/octet-stream"),
        "Cache-Control": "max-age=60",
    }
    return web.FileResponse(path, headers=headers)


# --- views ------------------------------------------------------------------------------------


async def home(request: web.Request) -> web.Response:
    return page(request, "home.html", home=await public.home(_now(request)))


async def plans(request: web.Request) -> web.Response:
    number = _page(request, "page")
    plan_page, firings = await public.plans(number), await public.announced(_page(request, "next"))
    return page(request, "plans.html", plans=plan_page, firings=firings)


async def draws(request: web.Request) -> web.Response:
    return page(request, "draws.html", draws=await public.draws(_now(request), _page(request, "page")))


async def draw(request: web.Request) -> web.Response:
    ref = request.match_info["ref"]
    try:
        found = await public.draw_page(ref, _now(request), _page(request, "page"))
    except public.PublicError as exc:
        # an announced ref (its commitment is on /plans) is not "no such draw": say when it is drawn
        firing = await public.firing_of(ref) if exc.code == "draw_not_found" else None
        if firing is None:
            raise
        zone = _runtime(request).settings.zone
        at = (firing.withdrawn_at or firing.fire_at).astimezone(zone).strftime("%Y-%m-%d %H:%M")
        code = "draw_withdrawn" if firing.withdrawn_at else "draw_announced"
        raise public.PublicError(code, draw_ref=ref, at=at, reason=firing.reason) from exc
    return page(request, "draw.html", d=found, s=found.summary, zip_name=public.zip_name(found.summary.draw_ref))


async def bundle_file(request: web.Request) -> web.FileResponse:
    ref, name = request.match_info["ref"], request.match_info["name"]
    path = await public.bundle_file(ref, name, _data_dir(request), _runtime(request).clock)
    return _file(path, name)


async def bundle_zip(request: web.Request) -> web.FileResponse:
    ref = request.match_info["ref"]
    path = await public.bundle_file(ref, "bundle.zip", _data_dir(request), _runtime(request).clock)
    return _file(path, public.zip_name(ref))


async def entities(request: web.Request) -> web.StreamResponse:
    q = public.normalise_query(request.query.get("q", ""))
    if q and public.looks_like_code(q) and (found := await public.entity_by_code(q)):
        raise web.HTTPFound(Links(request, *negotiate(request)).__call__(f"/entities/{found.uscc}"))
    results, error = None, None
    if q:
        try:
            results = await public.search_entities(q, _after(request), now=_now(request))
        except public.PublicError as exc:
            error = exc
    return page(request, "entities.html", q=q, results=results, error=error, minimum=public.MIN_QUERY)


async def entity(request: web.Request) -> web.Response:
    found = await public.entity_page(request.match_info["uscc"], _now(request), _page(request, "page"))
    return page(request, "entity.html", e=found.entity, inspections=found.inspections)


async def notice(request: web.Request) -> web.Response:
    """The printable notice of a result (PDF), for the holder of its code (``?code=``)."""
    uscc, code = request.match_info["uscc"], request.query.get("code", "")
    try:
        doc = await notice_service.notice_document(uscc, code[:64], _now(request), client=request.remote or "")
    except OnsiteError as exc:
        raise public.PublicError(exc.code, uscc=uscc, **exc.params) from exc
    body = await asyncio.to_thread(notice_pdf, doc)
    headers = {**HEADERS, "Content-Disposition": f'inline; filename="notice-{doc["code"]}.pdf"'}
    return web.Response(body=body, content_type="application/pdf", headers=headers)


def _same_site(request: web.Request) -> bool:
    """A form posted from our own pages: the browser says so (``Sec-Fetch-Site``), or its
    ``Origin`` is this site (the address asked, or the public URL behind a proxy). A request that
    carries neither header (an old browser, a script) is let through: the code is the key."""
    fetch_site = request.headers.get("Sec-Fetch-Site", "")
    if fetch_site:
        return fetch_site in ("same-origin", "none")
    origin = request.headers.get("Origin", "")
    if not origin:
        return True
    ours = {f"{request.scheme}://{request.host}", _runtime(request).settings.public_url.rstrip("/")}
    return origin.rstrip("/") in ours


async def objection(request: web.Request) -> web.Response:
    """The firm's objection, posted from its result page with the notice's code. A refusal shows
    the form again with what was typed, so nothing is lost."""
    uscc = request.match_info["uscc"]
    shown = {"uscc": uscc, "limit": REASON_LIMIT}
    if not _same_site(request):
        return page(request, "objection.html", status=403, ok=False, error="cross_site", params={}, **shown)
    try:
        form = await request.post()
    except (UnicodeDecodeError, ValueError):
        return page(request, "objection.html", status=400, ok=False, error="form_unreadable", params={}, **shown)
    code, reason = str(form.get("code", ""))[:64], str(form.get("reason", ""))[: REASON_LIMIT * 4]
    rt = _runtime(request)
    try:
        found = await objection_service.lodge(
            code, reason, _now(request), channel="web", uscc=uscc, client=request.remote or "", zone=rt.settings.zone
        )
    except OnsiteError as exc:
        status = REFUSED_STATUS.get(exc.code, 400)
        return page(
            request,
            "objection.html",
            status=status,
            ok=False,
            error=exc.code,
            params=exc.params,
            typed_code=code,
            reason=reason,
            **shown,
        )
    return page(request, "objection.html", ok=True, code=found["code"], **shown)


async def report(request: web.Request) -> web.Response:
    rt, now = _runtime(request), _now(request)
    latest = reports.last_month(now, rt.settings.zone)
    first, last = await reports.months_with_data(rt.settings.zone) or ("", "")
    # /reports alone: the latest month with data (the current one so far, when it is that), not
    # an empty last month
    month = request.match_info.get("month") or last or latest
    data = await _public_report(request, month, chart=False)
    before, following = reports.shift_month(month, -1), reports.shift_month(month, 1)
    return page(  # links stop at the first and the last month with data
        request,
        "report.html",
        r=data,
        month=month,
        prev_month=before if first and first <= before else None,
        next_month=following if following <= min(last, reports.shift_month(latest, 1)) else None,
    )


async def report_chart(request: web.Request) -> web.FileResponse:
    data = await _public_report(request, request.match_info["month"])
    return _file(_data_dir(request) / data.chart_path, f"report-{data.month}.png")


async def _public_report(request: web.Request, month: str, chart: bool = True) -> reports.MonthlyReport:
    """The public edition, kept for :data:`REPORT_TTL` seconds (a report costs ~0.2 s of queries
    on a city-scale database; a popular page should not run them per view)."""
    rt = _runtime(request)
    locale, _ = negotiate(request)
    cache = request.app[_REPORTS]
    key = (month, locale, chart)
    hit = cache.get(key)
    if hit and hit[0] > time.monotonic():
        return hit[1]
    made = await reports.monthly_report(
        month,
        None,
        _now(request),
        data_dir=rt.settings.data_dir,
        zone=rt.settings.zone,
        locale=locale,
        personal=False,
        chart=chart,
    )
    cache[key] = (time.monotonic() + REPORT_TTL, made)
    return made


async def published_doc(request: web.Request) -> web.StreamResponse:
    """A published document as a page in the reader's language: the zh-CN summary
    (``docs/zh-CN/<name>``, linking the precise English text) or the English text itself;
    ``?raw=1`` is the Markdown file."""
    name = request.match_info["name"]
    if name not in PUBLISHED_DOCS:
        raise web.HTTPNotFound()
    if request.query.get("raw"):
        return web.FileResponse(DOCS / name, headers={**HEADERS, "Content-Type": "text/markdown; charset=utf-8"})
    locale, _ = negotiate(request)
    source = DOCS / locale / name
    summary = source.is_file()
    markdown = (source if summary else DOCS / name).read_text(encoding="utf-8")
    return page(request, "doc.html", name=name, summary=summary, body=Markup(_MARKDOWN.render(markdown)))


# --- errors and routes ------------------------------------------------------------------------


@web.middleware
async def refusals(request: web.Request, handler):
    """A refused request (unknown draw, bad month, …) becomes a page saying so, 404 or 400."""
    try:
        return await handler(request)
    except (public.PublicError, reports.ReportError) as exc:
        status = 404 if exc.code in NOT_FOUND else REFUSED_STATUS.get(exc.code, 400)
        return page(request, "error.html", status=status, code=exc.code, params=exc.params)
    except web.HTTPNotFound:
        if request.method not in ("GET", "HEAD"):
            raise
        # a mistyped address gets a page in the reader's language, not aiohttp's "404: Not Found"
        return page(request, "error.html", status=404, code="page_not_found", params={"path": request.path})


async def _no_store(request: web.Request, response: web.StreamResponse) -> None:
    """A page with a notice code (the PDF, the objection's answer, their refusals) is kept by no
    cache: a shared computer's history or a proxy would otherwise hand the notice to the next one."""
    if request.path.endswith(WITH_CODE):
        response.headers["Cache-Control"] = "no-store"


def setup_routes(app: web.Application) -> None:
    """Add the public pages to the service's one aiohttp app (``bot.web.make_app``)."""
    app[_REPORTS] = {}
    app.on_response_prepare.append(_no_store)
    app.middlewares.append(refusals)
    app.router.add_get("/", home)
    app.router.add_get("/plans", plans)
    app.router.add_get("/draws", draws)
    app.router.add_get(r"/draws/{ref:.+}/bundle/{name}", bundle_file)
    app.router.add_get(r"/draws/{ref:.+}/bundle.zip", bundle_zip)
    app.router.add_get(r"/draws/{ref:.+}", draw)
    app.router.add_get("/entities", entities)
    app.router.add_get("/entities/{uscc}", entity)
    app.router.add_get("/entities/{uscc}/notice", notice)
    app.router.add_post("/entities/{uscc}/objection", objection)
    app.router.add_get("/reports", report)
    app.router.add_get(r"/reports/{month:\d{4}-\d{2}}", report)
    app.router.add_get(r"/reports/{month:\d{4}-\d{2}}/chart.png", report_chart)
    app.router.add_get("/docs/{name}", published_doc)
