"""Every reason the importer can give has words in both locales."""

import re
from pathlib import Path

import pytest

from core.render import text_codes

SOURCES = Path(__file__).resolve().parents[2] / "importers"


def used_codes() -> set[str]:
    found = set()
    for path in SOURCES.glob("*.py"):
        found |= set(re.findall(r'"(import_[a-z_]+)"', path.read_text(encoding="utf-8")))
    return found


@pytest.mark.parametrize("locale", ["zh-CN", "en"])
def test_every_code_has_a_text(locale):
    codes = used_codes()
    assert len(codes) > 30
    assert codes <= text_codes(locale)
