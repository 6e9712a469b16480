"""The console's messages a person meets (issue 18): draws and firings listed, a draw's teams,
pending commitments in `plan show`, an unknown department refused, TOML errors in Chinese with
their line, 企业 in a plan file, a mass deactivation asked about, and a closed pipe left quietly."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from bot.cli import main
from core import db
from core.settings import Settings
from domain import bundle
from domain.draw import run_draw
from domain.plans import parse_plan
from tests.domain.draw_cases import example_inputs
from tests.services import draw_world as world
from tests.services.test_draws_cli import coordinators


@pytest.fixture
def cli(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("INSPECTBOT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("INSPECTBOT_LOCALE", "zh-CN")
    monkeypatch.delenv("DATABASE_URL", raising=False)
    settings = Settings.from_env()

    async def seed():
        async with db.opened(settings):
            await world.build(n_entities=30)

    asyncio.run(seed())
    return settings


def test_draws_list_show_firings_list_and_plan_show_pending(cli, tmp_path, capsys):
    assert main(["plan", "add", str(world.plan_file(tmp_path, "P1"))]) == 0
    assert main(["draws", "list"]) == 0 and "还没有抽取批次" in capsys.readouterr().out
    assert main(["announce", "P1", "--at", "2099-01-01 09:00"]) == 0
    commitment = capsys.readouterr().out.split("：")[-1].strip()
    assert main(["firings", "list"]) == 0
    out = capsys.readouterr().out
    assert "P1/2099-01-01" in out and "2099-01-01 09:00" in out and commitment in out
    assert main(["plan", "show", "P1"]) == 0
    out = capsys.readouterr().out
    assert "已公示、待抽取" in out and commitment in out and "P1/2099-01-01" in out

    assert main(["plan", "add", str(world.plan_file(tmp_path, "P2"))]) == 0
    second = coordinators(cli)[1]
    capsys.readouterr()
    assert main(["draw", "P2", "--reason", "补抽", "--confirmed-by", str(second)]) == 0
    draw_ref = capsys.readouterr().out.splitlines()[0]
    assert main(["draws", "list"]) == 0
    out = capsys.readouterr().out
    assert draw_ref in out and "测试计划" in out and "T" not in out.split(draw_ref)[1].split()[0]
    assert main(["draws", "show", draw_ref]) == 0
    out = capsys.readouterr().out
    assert "第 1 号" in out and "待答复" in out  # firms and their teams, in words
    assert main(["draws", "show", "NOPE/1"]) == 1
    assert "没有批次“NOPE/1”" in capsys.readouterr().err


def test_report_for_an_unknown_department_is_an_error(cli, capsys):
    assert main(["report", "2026-12", "--department", "NOPE"]) == 2
    err = capsys.readouterr().err
    assert "没有部门“NOPE”" in err


def test_a_toml_syntax_error_is_in_chinese_with_its_line(cli, tmp_path, capsys):
    path = world.plan_file(tmp_path, "P1")
    lines = path.read_text(encoding="utf-8").splitlines()
    lines.insert(3, "kinds = [企业]")  # unquoted text: line 4
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert main(["plan", "add", str(path)]) == 2
    err = capsys.readouterr().err
    assert "语法错误，第 4 行" in err and "引号" in err and "Invalid" not in err


def test_a_plan_file_accepts_the_importers_kind_words():
    spec = parse_plan(_plan_dict(kinds=["企业", "事业单位"]))
    assert spec.targets.kinds == ("enterprise", "institution")


def test_a_full_import_that_would_retire_most_rows_asks_first(cli, tmp_path, capsys):
    from tests.importers.files import ENTITY_HEADER, entity, write_csv

    # the world holds 30 active entities: a one-row file is surely a partial export
    one = write_csv(tmp_path / "one.csv", ENTITY_HEADER, [entity(1)])
    assert main(["import", "entities", str(one)]) == 1
    err = capsys.readouterr().err
    assert "--partial" in err and "--yes" in err and "停用" in err
    assert main(["import", "entities", str(one), "--yes"]) == 0


def test_a_closed_pipe_ends_quietly(tmp_path):
    """`inspectbot verify … | head -1`: the reader goes away; no traceback, the shell's 141."""
    inputs = example_inputs()
    folder = tmp_path / "b"
    folder.mkdir()
    for name, data in bundle.build_bundle(inputs, run_draw(inputs)).items():
        (folder / name).write_bytes(data)
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; from bot.cli import main; sys.exit(main())", "verify", str(folder)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={"INSPECTBOT_DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"},
        cwd=str(tmp_path),
    )
    proc.stdout.close()  # the reader is gone before the first line is written
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141
    assert "Traceback" not in err and "BrokenPipe" not in err


def _plan_dict(**targets):
    return {
        "code": "K1",
        "name": "类型",
        "departments": ["SCJG"],
        "items": ["SCJG-SP-01"],
        "targets": targets,
        "ratios": {"A": "0.1"},
        "team": {"size": 2, "seats": ["*", "*"]},
        "schedule": {"dates": ["2027-01-01 09:00"]},
    }
