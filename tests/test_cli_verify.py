"""`inspectbot verify DIR`: a line per check, exit 0 / 1 / 2, texts in the chosen locale."""

from __future__ import annotations

import json
import zipfile

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
    assert "neither a downloaded zip nor a folder" in capsys.readouterr().err
    (tmp_path / "cut.zip").write_bytes(b"PK\x03\x04 truncated")
    assert main(["verify", str(tmp_path / "cut.zip")]) == 2


def test_the_downloaded_zip_and_the_folder_it_unpacks_to_both_verify(tmp_path, monkeypatch, capsys):
    """The zip the draw page offers holds its files in a subfolder: verify takes the zip itself,
    the unpacked folder, and the subfolder, and says it all in Chinese."""
    monkeypatch.setenv("INSPECTBOT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("INSPECTBOT_LOCALE", "zh-CN")
    files = _files()
    archive = tmp_path / "SCJG-FOOD_2026-12-02.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for name, data in files.items():
            zf.writestr(f"SCJG-FOOD_2026-12-02/{name}", data)
    with zipfile.ZipFile(archive) as zf:
        zf.extractall(tmp_path / "unpacked")
    for given in (archive, tmp_path / "unpacked", tmp_path / "unpacked" / "SCJG-FOOD_2026-12-02"):
        assert main(["verify", str(given)]) == 0, given
        out = capsys.readouterr().out
        assert "全部 15 项核验通过" in out
        assert "pool_digest" not in out and "H(" not in out  # said in Chinese, not as a formula


def test_a_sealed_flight_bundle_says_it_is_sealed_until_its_reveal(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("INSPECTBOT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("INSPECTBOT_LOCALE", "zh-CN")
    sealed = {
        "draw_ref": "FLY/2026-12-02",
        "flight": True,
        "inspections_digest": "ab" * 32,
        "reveal_at": "2026-12-05T02:00:00+00:00",
    }
    folder = _write(tmp_path / "s", {"sealed.json": json.dumps(sealed).encode()})
    assert main(["verify", str(folder)]) == 2
    out = capsys.readouterr().out
    assert "飞行检查" in out and "2026-12-05 10:00 揭晓前保密" in out and "draw.json" not in out
