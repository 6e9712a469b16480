"""The console: `inspectbot plan add|list|show`, `announce`, `draw`, `draw export` (SQLite)."""

from __future__ import annotations

import asyncio
import json

import pytest

from bot.cli import main
from core import db
from core.settings import Settings
from domain import bundle
from models.draws import FiringSecret
from models.messaging import Channel, ChatBinding, Role
from tests.services import draw_world as world


@pytest.fixture
def cli(tmp_path, monkeypatch):
    """A data directory with a small directory imported; the CLI speaks English."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("INSPECTBOT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("INSPECTBOT_LOCALE", "en")
    monkeypatch.delenv("DATABASE_URL", raising=False)
    settings = Settings.from_env()

    async def seed():
        async with db.opened(settings):
            await world.build(n_entities=30)

    asyncio.run(seed())
    return settings


def coordinators(settings, n: int = 2) -> list[int]:
    """``n`` coordinator bindings of SCJG (the test plans' department): their binding ids."""

    async def make():
        async with db.opened(settings):
            return [
                (
                    await ChatBinding.create(
                        channel=Channel.TELEGRAM, address=f"90{i}", role=Role.COORDINATOR, departments=["SCJG"]
                    )
                ).id
                for i in range(n)
            ]

    return asyncio.run(make())


def secrets_of(settings) -> list[str]:
    async def read():
        async with db.opened(settings):
            return [bytes(r.secret).hex() for r in await FiringSecret.all()]

    return asyncio.run(read())


def test_plan_add_list_show(cli, tmp_path, capsys):
    assert main(["plan", "add", str(world.plan_file(tmp_path, "P1"))]) == 0
    assert 'Added plan P1 "测试计划"' in capsys.readouterr().out
    assert main(["plan", "add", str(world.plan_file(tmp_path, "P1", name="新名称"))]) == 0
    assert "Updated plan P1" in capsys.readouterr().out
    assert main(["plan", "list"]) == 0
    assert "P1  新名称  [SCJG]" in capsys.readouterr().out
    assert main(["plan", "show", "P1"]) == 0
    out = capsys.readouterr().out
    assert "Ratios: A 0.25, B 0.25, C 0.5, D 1, E 1" in out and "Team: 2 seats" in out
    assert main(["plan", "show", "NOPE"]) == 1
    assert 'No plan with code "NOPE"' in capsys.readouterr().err


@pytest.mark.parametrize(
    "edit, expected",
    [
        (lambda t: t.replace('C = "0.5"', "C = 0.1"), "ratios.C: 0.1 is a floating-point number"),
        (lambda t: t.replace('C = "0.5"', 'F = "0.5"'), 'ratios.F: unknown risk class "F"'),
        (lambda t: t.replace("size = 2", "size = 1"), "team.size: must be at least 2, not 1"),
        (lambda t: t.replace('items = ["SCJG-SP-01"]', 'items = ["NOPE"]'), 'items[0]: no inspection item "NOPE"'),
        (lambda t: t + "\n[extra\n", "P1.toml: syntax error"),
    ],
)
def test_bad_plan_file_exits_2_naming_the_field(cli, tmp_path, capsys, edit, expected):
    path = world.plan_file(tmp_path, "P1")
    path.write_text(edit(path.read_text(encoding="utf-8")), encoding="utf-8")
    assert main(["plan", "add", str(path)]) == 2
    assert expected in capsys.readouterr().err
    assert main(["plan", "list"]) == 0
    assert "No plans yet" in capsys.readouterr().out


def test_announce_dry_run_draw_export(cli, tmp_path, capsys):
    assert main(["plan", "add", str(world.plan_file(tmp_path, "P1"))]) == 0
    capsys.readouterr()
    assert main(["draw", "P1", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "Dry run of plan P1: nothing was drawn or written." in out and "C: 3 of 6 (ratio 0.5)" in out

    assert main(["announce", "P1", "--at", "2099-01-01 09:00"]) == 0
    out = capsys.readouterr().out
    assert "Announced P1/2099-01-01" in out and "Commitment" in out
    assert main(["draw", "P1"]) == 1
    assert "cannot be drawn before then" in capsys.readouterr().err

    assert main(["plan", "add", str(world.plan_file(tmp_path, "P2"))]) == 0
    capsys.readouterr()
    # nothing announced ahead: an ad hoc draw is off schedule, refused without reason and confirmation
    assert main(["draw", "P2", "--beacon", "drand:99"]) == 1
    assert "no firing announced ahead" in capsys.readouterr().err
    second = coordinators(cli)[1]
    assert main(["draw", "P2", "--beacon", "drand:99", "--reason", "空缺补抽", "--confirmed-by", str(second)]) == 0
    out = capsys.readouterr().out
    draw_ref = out.splitlines()[0]
    assert draw_ref.startswith("P2/") and "announced just now" in out and "inspections from a pool of 30" in out
    assert "OFF-SCHEDULE DRAW" in out and "空缺补抽" in out
    # who asked and confirmed, as a person reads it (a binding without a display name: its number)
    assert f"confirmed by coordinator #{second}" in out and "requested by an operator at the command line" in out

    assert main(["draw", "export", draw_ref, str(tmp_path / "bundle")]) == 0
    assert "Wrote the bundle" in capsys.readouterr().out
    files = {p.name: p.read_bytes() for p in (tmp_path / "bundle").iterdir()}
    assert all(line.ok for line in bundle.verify(files))
    assert json.loads(files["draw.json"])["beacon"] == "drand:99"
    assert json.loads(files["draw.json"])["off_schedule"] == {
        "reason": "空缺补抽",
        "confirmed_by": f"coordinator:{second}",
        "requested_by": "cli",
        "redraw_of": None,
    }


def test_flight_draw_prints_only_the_seal(cli, tmp_path, capsys):
    assert main(["plan", "add", str(world.plan_file(tmp_path, "F1", flight=True))]) == 0
    capsys.readouterr()
    second = coordinators(cli)[1]
    assert main(["draw", "F1", "--reason", "ad hoc flight", "--confirmed-by", f"coordinator:{second}"]) == 0
    out = capsys.readouterr().out
    draw_ref = out.splitlines()[0]
    assert "Flight inspection" in out and "sealed" in out
    assert main(["draw", "export", draw_ref, str(tmp_path / "sealed")]) == 0
    out += capsys.readouterr().out
    assert "--force" in out and [p.name for p in (tmp_path / "sealed").iterdir()] == ["sealed.json"]
    secret = secrets_of(cli)[0]
    sealed = (tmp_path / "sealed" / "sealed.json").read_text()
    assert secret not in out and secret not in sealed
    assert main(["draw", "export", draw_ref, str(tmp_path / "full"), "--force"]) == 0
    assert "BEFORE its reveal" in capsys.readouterr().out
    assert json.loads((tmp_path / "full" / "draw.json").read_text())["secret"] == secret


def test_draw_usage_errors(cli, capsys):
    assert main(["draw", "export", "P1/2026-12-01"]) == 2
    assert "usage: inspectbot draw export" in capsys.readouterr().err
    assert main(["draw", "P1", "extra"]) == 2
    assert main(["draw", "NOPE"]) == 1
    assert 'No plan with code "NOPE"' in capsys.readouterr().err
    assert main(["announce", "NOPE", "--at", "tomorrow"]) == 2
    assert "is not a date-time" in capsys.readouterr().err
    assert main(["draw", "export", "P9/2026-01-01", "out"]) == 1
    assert 'No firing "P9/2026-01-01"' in capsys.readouterr().err


def test_announce_twice_withdraw_and_draw_twice_from_the_cli(cli, tmp_path, capsys):
    assert main(["plan", "add", str(world.plan_file(tmp_path, "P1"))]) == 0
    assert main(["announce", "P1", "--at", "2099-01-01 09:00"]) == 0
    commitment = capsys.readouterr().out.strip().split()[-1]
    assert main(["announce", "P1", "--at", "2099-01-01 09:00"]) == 1
    err = capsys.readouterr().err
    assert "already has its commitment: P1/2099-01-01" in err and commitment in err
    assert main(["announce", "P1", "--at", "2000-01-01 09:00"]) == 1
    assert "is in the past" in capsys.readouterr().err
    assert main(["withdraw", "P1/2099-01-01", "--reason", "directory errors"]) == 0
    assert "Withdrew P1/2099-01-01" in capsys.readouterr().out
    assert main(["announce", "P1", "--at", "2099-01-01 09:00"]) == 1
    assert "withdrawn (reason: directory errors)" in capsys.readouterr().err
    # an off-schedule draw needs both flags
    assert main(["draw", "P1", "--reason", "why"]) == 2
    assert "needs both --reason" in capsys.readouterr().err
    second = coordinators(cli)[1]
    assert main(["draw", "P1", "--reason", "ad hoc", "--confirmed-by", str(second)]) == 0
    draw_ref = capsys.readouterr().out.splitlines()[0]
    assert main(["draw", "P1"]) == 1  # the same day again: refused, naming the draw
    err = capsys.readouterr().err
    assert f"has already been drawn today: {draw_ref}, drawn at" in err and f"--redraw {draw_ref}" in err
    assert main(["audit", "verify"]) == 0
    # the plan's addition, announce, withdraw, and the off-schedule draw's announcement, mark and
    # draw: all on the chain, its head also in the checkpoint file
    out = capsys.readouterr().out
    assert "all 6 records verified" in out and "the log's head is 6:" in out


def test_disclose_from_the_cli_and_verify_with_it(cli, tmp_path, capsys):
    assert main(["plan", "add", str(world.plan_file(tmp_path, "P2"))]) == 0
    second = coordinators(cli)[1]
    assert main(["announce", "P2", "--at", "2099-01-01 09:00"]) == 0
    out = capsys.readouterr().out
    assert "Pool digest" in out and "Commitment" in out
    assert main(["draw", "disclose", "P2/2099-01-01", "--out", str(tmp_path / "a.tsv"), "--reason", "r"]) == 1
    assert "not drawn yet" in capsys.readouterr().err
    assert main(["withdraw", "P2/2099-01-01", "--reason", "改期"]) == 0
    capsys.readouterr()
    assert main(["draw", "P2", "--reason", "临时任务", "--confirmed-by", str(second)]) == 0
    ref = capsys.readouterr().out.splitlines()[0]
    assert main(["draw", "export", ref, str(tmp_path / "bundle")]) == 0
    capsys.readouterr()
    # the audit disclosure needs --out and a reason; usage errors exit 2
    assert main(["draw", "disclose", ref, "--out", str(tmp_path / "a.tsv")]) == 2
    assert "usage: inspectbot draw disclose" in capsys.readouterr().err
    assert main(["draw", "disclose", ref, "--out", str(tmp_path / "a.tsv"), "--reason", "监督检查"]) == 0
    assert "audit disclosure" in capsys.readouterr().out
    assert main(["verify", str(tmp_path / "bundle"), "--disclosure", str(tmp_path / "a.tsv")]) == 0
    assert "✓ classes" in capsys.readouterr().out
    # one entity's own line, to the terminal
    assert main(["draw", "disclose", ref, "--entity", world.uscc(2)]) == 0
    line = capsys.readouterr().out
    assert line.startswith("inspectbot/disclosure/v2\tentity\t") and line.count("\n") == 1
    (tmp_path / "mine.tsv").write_text(line, encoding="utf-8")
    assert main(["verify", str(tmp_path / "bundle"), "--disclosure", str(tmp_path / "mine.tsv")]) == 0
    assert f"✓ entity {world.uscc(2)}" in capsys.readouterr().out
    assert main(["draw", "disclose", ref, "--entity", "NOT-IN-POOL"]) == 1
    assert "is not in the pool" in capsys.readouterr().err
