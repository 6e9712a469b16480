"""`inspectbot verify DIR`: a line per check, exit 0 / 1 / 2, texts in the chosen locale."""

from __future__ import annotations

import dataclasses
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


def _v2():
    inputs = dataclasses.replace(example_inputs(), salt_key=bytes(range(32, 64)))
    return inputs, bundle.build_bundle(inputs, run_draw(inputs))


def test_a_v2_bundle_verifies_publicly_with_the_audit_and_with_one_entity(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("INSPECTBOT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("INSPECTBOT_LOCALE", "en")
    inputs, files = _v2()
    directory = _write(tmp_path / "b", files)
    assert main(["verify", str(directory)]) == 0
    public = capsys.readouterr().out
    assert "✓ list" in public and "✓ classes" not in public and "class A" not in public
    (tmp_path / "audit.tsv").write_bytes(bundle.audit_disclosure(inputs))
    assert main(["verify", str(directory), "--disclosure", str(tmp_path / "audit.tsv")]) == 0
    audited = capsys.readouterr().out
    assert "✓ classes" in audited and "✓ cuts" in audited and "✓ selection" in audited
    (tmp_path / "one.tsv").write_bytes(bundle.entity_disclosure(inputs, "913702007180000011"))
    assert main(["verify", str(directory), "--disclosure", str(tmp_path / "one.tsv")]) == 0
    own = capsys.readouterr().out.splitlines()
    assert own[-2].startswith("✓ entity 913702007180000011 (class A): not selected")
    # copied by hand: CR LF, or no final line break, still reads
    line = bundle.entity_disclosure(inputs, "913702007180000066").rstrip(b"\n")
    (tmp_path / "copied.tsv").write_bytes(line + b"\r\n")
    assert main(["verify", str(directory), "--disclosure", str(tmp_path / "copied.tsv")]) == 0
    assert "(class A): selected" in capsys.readouterr().out
    (tmp_path / "copied.tsv").write_bytes(line)
    assert main(["verify", str(directory), "--disclosure", str(tmp_path / "copied.tsv")]) == 0
    capsys.readouterr()


def test_a_disclosure_with_a_changed_class_fails(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("INSPECTBOT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("INSPECTBOT_LOCALE", "zh-CN")
    inputs, files = _v2()
    directory = _write(tmp_path / "b", files)
    disclosure = bundle.audit_disclosure(inputs).replace(b"913702007180000011\tA\n", b"913702007180000011\tE\n")
    (tmp_path / "audit.tsv").write_bytes(disclosure)
    assert main(["verify", str(directory), "--disclosure", str(tmp_path / "audit.tsv")]) == 1
    assert "✗ 风险等级" in capsys.readouterr().out
    (tmp_path / "bad.tsv").write_bytes(b"not a disclosure\n")
    assert main(["verify", str(directory), "--disclosure", str(tmp_path / "bad.tsv")]) == 2
    assert "披露文件格式错误" in capsys.readouterr().err
    v1 = _write(tmp_path / "v1", _files())
    assert main(["verify", str(v1), "--disclosure", str(tmp_path / "audit.tsv")]) == 2
