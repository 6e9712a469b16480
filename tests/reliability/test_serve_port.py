"""``serve`` whose web port is taken stops at once with one line naming the port and its variable
(issue 13 §4). It used to log "database unavailable at start (OSError: [Errno 98] … address already
in use); retrying" for ever: every OSError counted as a transient database fault. Only real
database faults are retried (``tests/reliability/test_db_outage.py`` keeps proving that).

A real ``python -m bot.cli serve`` process, with a real socket holding its port."""

from __future__ import annotations

import asyncio
import os
import socket
import sys

from tests.reliability.procs import ROOT, SETTINGS_PREFIXES


async def test_serve_on_a_taken_port_stops_with_one_line_naming_port_and_variable(tmp_path):
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(SETTINGS_PREFIXES)}
    env = {
        **inherited,
        "PYTHONPATH": str(ROOT),
        "INSPECTBOT_DATA_DIR": str(tmp_path),
        "DATABASE_URL": f"sqlite://{tmp_path / 'db.sqlite3'}",
        "INSPECTBOT_WEB_HOST": "127.0.0.1",
        "INSPECTBOT_WEB_PORT": str(port),
        "TELEGRAM_TOKEN": "123:fake",  # never reached: the port is bound before any channel starts
        "TELEGRAM_MODE": "polling",
        "INSPECTBOT_LOCALE": "en",
        "INSPECTBOT_BEACON": "none",
        "INSPECTBOT_BEACON_NONE_ACKNOWLEDGED": "yes",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot.cli",
        "serve",
        cwd=str(tmp_path),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 20)
    except TimeoutError:
        proc.kill()
        out, err = await proc.communicate()
    finally:
        holder.close()
    said = (out + err).decode(errors="replace")
    assert proc.returncode == 2, (proc.returncode, said[-2000:])
    assert "database unavailable" not in said and "Traceback" not in said, said[-2000:]
    lines = [line for line in err.decode().splitlines() if str(port) in line]
    assert len(lines) == 1, said[-2000:]
    assert "INSPECTBOT_WEB_PORT" in lines[0] and f"127.0.0.1:{port}" in lines[0], lines
