"""``serve`` never drifts into seeds without an outside beacon (issue 14, brief 14d §1): with
INSPECTBOT_BEACON unset, or ``none`` without INSPECTBOT_BEACON_NONE_ACKNOWLEDGED=yes, it stops at
once with one line naming the variable; acknowledged, it starts. A real ``python -m bot.cli serve``."""

from __future__ import annotations

import asyncio
import os
import socket
import sys

import pytest

from tests.reliability.procs import ROOT, SETTINGS_PREFIXES


async def _serve(tmp_path, extra: dict[str, str]) -> tuple[int, str, str]:
    holder = socket.socket()  # holds the web port: a start that got past the check stops there
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(SETTINGS_PREFIXES)}
    env = {
        **inherited,
        "PYTHONPATH": str(ROOT),
        "INSPECTBOT_DATA_DIR": str(tmp_path),
        "DATABASE_URL": f"sqlite://{tmp_path / 'db.sqlite3'}",
        "INSPECTBOT_WEB_HOST": "127.0.0.1",
        "INSPECTBOT_WEB_PORT": str(holder.getsockname()[1]),
        "INSPECTBOT_METRICS_PORT": "0",
        "TELEGRAM_TOKEN": "123:fake",
        "INSPECTBOT_LOCALE": "en",
        **extra,
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli", "serve", cwd=str(tmp_path), env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 30)
    except TimeoutError:
        proc.kill()
        out, err = await proc.communicate()
    finally:
        holder.close()
    return proc.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace")


@pytest.mark.parametrize(
    "extra",
    [{}, {"INSPECTBOT_BEACON": "none"}, {"INSPECTBOT_BEACON": "none", "INSPECTBOT_BEACON_NONE_ACKNOWLEDGED": "no"}],
    ids=["unset", "none", "none-not-acknowledged"],
)
async def test_serve_without_a_beacon_refuses_with_one_line_naming_the_variable(tmp_path, extra):
    code, out, err = await _serve(tmp_path, extra)
    assert code == 2, (code, out, err)
    lines = [line for line in err.splitlines() if "INSPECTBOT_BEACON" in line]
    assert len(lines) == 1 and "INSPECTBOT_BEACON_NONE_ACKNOWLEDGED=yes" in lines[0], err
    assert "Traceback" not in err and not (tmp_path / "db.sqlite3").exists()  # refused before anything started


@pytest.mark.parametrize(
    "extra",
    [{"INSPECTBOT_BEACON": "none", "INSPECTBOT_BEACON_NONE_ACKNOWLEDGED": "yes"}, {"INSPECTBOT_BEACON": "drand"}],
    ids=["none-acknowledged", "drand"],
)
async def test_serve_with_a_beacon_or_the_acknowledgement_gets_past_the_check(tmp_path, extra):
    code, out, err = await _serve(tmp_path, extra)
    # it goes on to bind the web port, which this test made impossible: the port's line, not the beacon's
    assert code == 2 and "INSPECTBOT_WEB_PORT" in err, (code, out, err)
    assert "INSPECTBOT_BEACON" not in err, err
