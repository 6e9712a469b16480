"""Risk classes, scores and reasons are confidential: nothing public reads them.

The public pages (``bot/pages.py`` over ``services/public.py`` and ``services/reports.py``' public
queries), the bundles (``services/draws/export.py``, ``domain/bundle.py``) and their templates never
touch the risk engine's tables or modules, the overrides of classes (``risk_override``) included. (Which class a drawn entity was drawn in — the draw's
stratum — is the draw protocol's business: its v2 hides it, issue 14b.)
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PUBLIC = [
    "bot/pages.py",
    "services/public.py",
    "services/draws/export.py",
    "domain/bundle.py",
    *sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "templates").glob("*/pages/*")),
]
SECRET = re.compile(
    r"risk_assessment|RiskAssessment|indicator_value|IndicatorValue|risk_model_version|risk_override|RiskOverride"
    r"|services\.risk|models\.risk"
)


@pytest.mark.parametrize("path", PUBLIC)
def test_public_code_never_reads_the_risk_engine(path: str) -> None:
    source = (ROOT / path).read_text(encoding="utf-8")
    assert not SECRET.search(source), f"{path} reads the risk engine's confidential data"


def test_the_risk_engine_is_read_only_by_coordinators_and_the_cli() -> None:
    readers = set()
    for path in [*ROOT.glob("handlers/*.py"), *ROOT.glob("bot/**/*.py")]:
        if re.search(r"services\.risk|services import .*\brisk\b", path.read_text(encoding="utf-8")):
            readers.add(path.relative_to(ROOT).as_posix())
    assert readers == {"handlers/risk.py", "bot/commands/risk.py"}
    handler = (ROOT / "handlers/risk.py").read_text(encoding="utf-8")
    assert "@coordinators_only" in handler and '@command("risk", roles=None)' in handler


def test_overrides_are_confidential_too() -> None:
    """The override table is among what nothing public may read, and only coordinators' commands
    (behind ``@coordinators_only``) and the CLI reach it."""
    assert SECRET.search('SELECT * FROM "risk_override"') and SECRET.search("RiskOverride.all()")
    handler = (ROOT / "handlers/risk.py").read_text(encoding="utf-8")
    for name in ("riskoverride", "riskoverrides", "riskwithdraw"):
        at = handler.index(f'@command("{name}", roles=None)')
        assert handler[at:].split("\n")[1] == "@coordinators_only", name
    at = handler.index('@button("rov", roles=None)')
    assert handler[at:].split("\n")[1] == "@coordinators_only"
