"""`inspectbot verify DIR`: a line per check, exit 0 / 1 / 2, texts in the chosen locale."""

from __future__ import annotations

import json

from bot.cli import main
from domain import bundle
from domain.draw import run_draw
from tests.domain.draw_cases import example_inputs


def _write(directory, files):
    directory.mkdir()
    for name, data in files.items():
        (directory / name).write_bytes(data)
    return directory


def _files():
    inputs = example_inputs()
    return bundle.build_bundle(inputs, run_draw(inputs))


def test_a_good_bundle_passes_line_by_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("INSPECTBOT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("INSPECTBOT_LOCALE", "en")
    assert main(["verify", str(_write(tmp_path / "b", _files()))]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("✓ commitment")
    assert sum(line.startswith("✓ ") for line in out) == 15
    assert any(line.startswith("✓ beacon: ") for line in out)  # which beacon entered the seed
    assert out[-1].startswith("All 15 checks passed")
    assert "000102030405" not in "\n".join(out)  # the secret is not echoed


def test_a_tampered_team_fails_with_exit_1_and_says_where(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("INSPECTBOT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("INSPECTBOT_LOCALE", "zh-CN")
    files = _files()
    doc = json.loads(files["draw.json"])
    doc["inspections"][0]["team"][0] = "370200001"
    files["draw.json"] = bundle.canonical_json(doc) + b"\n"
    assert main(["verify", str(_write(tmp_path / "b", files))]) == 1
    out = capsys.readouterr().out
    assert "✗ 检查组" in out and "第 1 项" in out
    assert "未通过" in out.splitlines()[-1]


def test_an_unreadable_bundle_exits_2(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("INSPECTBOT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("INSPECTBOT_LOCALE", "en")
    files = _files()
    del files["pool.tsv"]
    assert main(["verify", str(_write(tmp_path / "b", files))]) == 2
    assert "pool.tsv is missing" in capsys.readouterr().err
    assert main(["verify", str(tmp_path / "nowhere")]) == 2
    assert "is not a directory" in capsys.readouterr().err
