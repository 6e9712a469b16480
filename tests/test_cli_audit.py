"""`inspectbot audit verify` against its anchors, and `inspectbot plan retire` (SQLite, the CLI
as an operator runs it)."""

from __future__ import annotations

import asyncio
import json

from bot.cli import main
from core import db
from models.audit import AuditRecord
from services import audit
from tests.services import draw_world as world
from tests.services.test_draws_cli import cli, coordinators  # noqa: F401  (the fixture)


def delete_newest(settings, n: int) -> int:
    async def run():
        async with db.opened(settings):
            last = (await audit.head())[0]
            await AuditRecord.filter(seq__gt=last - n).delete()
            return last

    return asyncio.run(run())


def test_verify_names_a_log_cut_short_by_the_file_a_head_and_a_bundle(cli, tmp_path, capsys):  # noqa: F811
    assert main(["plan", "add", str(world.plan_file(tmp_path, "P1"))]) == 0
    capsys.readouterr()
    second = coordinators(cli)[1]
    assert main(["draw", "P1", "--reason", "补抽", "--confirmed-by", str(second)]) == 0
    draw_ref = capsys.readouterr().out.splitlines()[0]
    assert main(["draw", "export", draw_ref, str(tmp_path / "bundle")]) == 0
    head = json.loads((tmp_path / "bundle" / "draw.json").read_text())["audit_head"]
    assert (tmp_path / "audit" / "checkpoints.tsv").read_text().startswith(f"{head['seq']}\t{head['hash']}\t")
    capsys.readouterr()
    assert (
        main(["audit", "verify", "--head", f"{head['seq']}:{head['hash']}", "--bundle", str(tmp_path / "bundle")]) == 0
    )
    out = capsys.readouterr().out
    assert f"all {head['seq']} records verified" in out and f"head is {head['seq']}:{head['hash']}" in out

    last = delete_newest(cli, 2)
    assert last == head["seq"]
    assert main(["audit", "verify", "--bundle", str(tmp_path / "bundle")]) == 1
    out = capsys.readouterr().out
    assert f"TRUNCATED: the log ends at {last - 2} but the checkpoint" in out
    assert f"saw {last} records, head {head['hash']}" in out
    for source in ("(db)", "(file)", f"(draw:{draw_ref})", f"(bundle:{draw_ref})"):
        assert source in out, source

    # the checkpoint file deleted as well: that is said too, in one line of its own
    (tmp_path / "audit" / "checkpoints.tsv").unlink()
    assert main(["audit", "verify"]) == 1
    out = capsys.readouterr().out
    assert "CHECKPOINT FILE CUT: audit/checkpoints.tsv has 0 complete lines, but on " in out
    assert "it had 1: it was deleted or truncated." in out

    assert main(["audit", "verify", "--head", "12:nothex"]) == 2
    assert "is not a head" in capsys.readouterr().err
    assert main(["audit", "verify", "--bundle", str(tmp_path / "nowhere")]) == 2
    assert "holds no draw.json" in capsys.readouterr().err


def test_plan_retire(cli, tmp_path, capsys):  # noqa: F811
    assert main(["plan", "add", str(world.plan_file(tmp_path, "P1"))]) == 0
    assert main(["plan", "retire", "P1", "--reason", "  "]) == 1
    assert "A reason is required" in capsys.readouterr().err
    assert main(["plan", "retire", "P1", "--reason", "年度计划结束"]) == 0
    assert "Retired plan P1" in capsys.readouterr().out
    assert main(["plan", "retire", "P1", "--reason", "again"]) == 1
    assert "already retired" in capsys.readouterr().err
    assert main(["plan", "retire", "NOPE", "--reason", "x"]) == 1
