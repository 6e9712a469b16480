"""``inspectbot demo`` on a fresh data directory, twice; and the import command's exit codes."""

import pytest

from bot import cli
from bot.commands.demo import render_outcome, run_demo
from bot.demo import DEMO_ENTITIES, DEMO_INSPECTORS
from core.clock import FakeClock

from .files import ENTITY_HEADER, entity, write_csv


async def test_demo_runs_on_a_fresh_data_dir_and_again(db):
    settings = db.with_(data_dir=db.data_dir / "data")  # an empty data dir; the fixture's database
    first = await run_demo(settings, FakeClock())
    assert first.ok
    assert [r.inserted for r in first.imports] == [10, 32, DEMO_ENTITIES, DEMO_INSPECTORS]
    held = first.summary
    assert (held.departments, held.items) == (10, 32)
    assert held.units == first.imports[3].units_created > held.departments  # city- and district-level units
    assert held.entities_active == DEMO_ENTITIES and sum(held.inspectors_by_status.values()) == DEMO_INSPECTORS
    text = render_outcome(first, "zh-CN")
    assert f"检查对象（在册）{DEMO_ENTITIES} 个" in text and "按信用风险等级：A " in text

    second = await run_demo(settings, FakeClock())
    assert [(r.inserted, r.updated, r.unchanged == r.rows) for r in second.imports] == [(0, 0, True)] * 4
    assert "unchanged" in render_outcome(second, "en")


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no stray .env
    monkeypatch.setenv("INSPECTBOT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("INSPECTBOT_LOCALE", "en")
    return tmp_path


def test_import_command_exits_non_zero_and_explains(env, capsys):
    bad = write_csv(env / "bad.csv", ENTITY_HEADER, [entity(1), entity(2, 信用风险等级="F")])
    assert cli.main(["import", "entities", str(bad)]) == 1
    err = capsys.readouterr().err
    assert 'row 3, column G "信用风险等级", value "F": the credit-risk class must be one of A, B, C, D, E' in err


def test_import_command_succeeds(env, capsys):
    good = write_csv(env / "good.csv", ENTITY_HEADER, [entity(1), entity(2)])
    assert cli.main(["import", "entities", str(good)]) == 0
    assert "2 data rows: 2 inserted, 0 updated, 0 unchanged" in capsys.readouterr().out


def test_generate_city_command(env, capsys):
    assert cli.main(["generate-city", str(env / "c"), "--entities", "50", "--inspectors", "5", "--seed", "3"]) == 0
    assert "50 entities, 5 inspectors" in capsys.readouterr().out
    assert len((env / "c" / "entities.csv").read_text(encoding="utf-8-sig").splitlines()) == 51
