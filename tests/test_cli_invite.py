"""`inspectbot invite` prints a one-time deep link, or a clear refusal."""

from __future__ import annotations

import asyncio
import re

from bot.cli import main
from core import db
from core.settings import Settings
from models.messaging import InviteCode
from tests import builders


def _seed(settings):
    async def go():
        async with db.opened(settings):
            await builders.inspector()

    asyncio.run(go())


def test_invite_prints_a_deep_link_and_stores_only_a_hash(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("INSPECTBOT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("INSPECTBOT_LOCALE", "en")
    settings = Settings.from_env()
    _seed(settings)
    assert main(["invite", "inspector", "37020001", "--bot", "qd_inspect_bot"]) == 0
    out = capsys.readouterr().out
    code = re.search(r"https://t\.me/qd_inspect_bot\?start=([A-Za-z0-9_\-]+)", out).group(1)
    assert len(code) <= 64

    async def stored():
        async with db.opened(settings):
            return await InviteCode.all().values_list("code_hash", flat=True)

    hashes = asyncio.run(stored())
    assert len(hashes) == 1 and code not in hashes


def test_invite_for_unknown_certificate_fails_clearly(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("INSPECTBOT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("INSPECTBOT_LOCALE", "en")
    assert main(["invite", "inspector", "X999", "--bot", "b"]) == 2
    assert "No inspector has certificate number X999" in capsys.readouterr().err
