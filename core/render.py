"""Rendering of every user-facing text: messages, pages, CLI reports.

Templates live in ``templates/<locale>/`` (zh-CN is the default, en the second locale).
Short texts (error reasons, button labels, one-line replies) are jinja2 macros in the files
``templates/<locale>/texts/*.j2`` (one file per area), called by name with :func:`text`;
longer messages and pages are whole templates rendered with :func:`render`. No user-facing
string lives in Python. A macro name must be unique across a locale's text files.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, Template, select_autoescape

from core.settings import LOCALES
from domain.refs import inspection_ref

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
DEFAULT_LOCALE = "zh-CN"


@cache
def environment(locale: str) -> Environment:
    if locale not in LOCALES:
        raise ValueError(f"unknown locale {locale!r}")
    env = Environment(
        loader=FileSystemLoader([TEMPLATES / locale, TEMPLATES / "common"]),
        autoescape=select_autoescape(["html", "htm", "xml"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
        # templates ship with the code: no stat() of the file at every render (3 % of a fan-out's CPU)
        auto_reload=False,
    )
    env.globals["text"] = lambda code, **kw: text(code, locale=locale, **kw)
    env.filters["percent"] = percent
    env.filters["minute"] = minute
    env.globals["inspection_ref"] = inspection_ref  # an inspection as people see and type it: P1/2026-12-01/7
    # The channel a message goes out on ("telegram", "wecom", "sms"), given by core.compose from
    # the outbox row: a text that tells people what to tap says it the way their app does. A
    # render that knows no channel (a CLI report, a test) gets "" and the templates' general words.
    env.globals["channel"] = ""
    return env


def percent(ratio: object) -> str:
    """A ratio as a person reads it: "0.03" → "3%", "1" → "100%", "1/3" → "33.3%"; what is not
    a number is shown as it is."""
    raw = str(ratio).strip()
    try:
        if "/" in raw:
            top, _, bottom = raw.partition("/")
            value = Decimal(top) / Decimal(bottom)
        else:
            value = Decimal(raw)
    except (InvalidOperation, ZeroDivisionError):
        return raw
    shown = (value * 100).quantize(Decimal("0.1")).normalize()
    return f"{shown:f}%"


def minute(stamp: object) -> str:
    """An ISO local time as written in a plan ("2026-12-02T10:00") without its ``T``."""
    return str(stamp).replace("T", " ")


@cache
def _template(name: str, locale: str) -> Template:
    """``name`` compiled for ``locale``, looked up once (the templates ship with the code:
    ``auto_reload`` is off, so Jinja's own lookup would find the same object every time). Its
    globals, a ``ChainMap`` over the environment's, are flattened into one dict: every render
    copies them into its context, and copying a ChainMap runs in Python (≈ 15 % of a short
    message's rendering, docs/benchmarks.md "WeCom fan-out"). The environment's globals are all
    set in :func:`environment`, before any template is loaded, and never change after."""
    found = environment(locale).get_template(name)
    found.globals = dict(found.globals)
    return found


def render(template: str, /, locale: str = DEFAULT_LOCALE, **context: Any) -> str:
    return _template(template, locale).render(locale=locale, **context)


@cache
def _texts(locale: str) -> dict[str, Any]:
    env = environment(locale)
    macros: dict[str, Any] = {}
    for path in sorted((TEMPLATES / locale / "texts").glob("*.j2")):
        module = env.get_template(f"texts/{path.name}").module
        for name in dir(module):
            if name.startswith("_"):
                continue
            if name in macros:
                raise ValueError(f"text {name!r} defined twice in templates/{locale}/texts/")
            macros[name] = getattr(module, name)
    return macros


def text(code: str, /, locale: str = DEFAULT_LOCALE, **params: Any) -> str:
    """One short text by its code, e.g. ``text("uscc_bad_check", value="…")``."""
    macro = _texts(locale).get(code)
    if macro is None:
        raise KeyError(f"no text {code!r} in templates/{locale}/texts/")
    return str(macro(**params)).strip()


def text_codes(locale: str) -> set[str]:
    return set(_texts(locale))
