"""The WeCom fan-out benchmark (``benchmarks/bench_wecom_fanout.py``) in miniature, so that its
three senders keep working: the dispatcher, the bare aiohttp loop and the floor (the least
durable sender, docs/benchmarks.md "Fifth look") each send their share, every outbox row ends
``sent``, and the throttled phase holds WeCom's limits. The ratios themselves are figures for
docs/benchmarks.md, not assertions: they depend on the machine."""

from __future__ import annotations

import subprocess
import sys

from tests.reliability.test_soak_smoke import ROOT, phases

SCRIPT = ROOT / "benchmarks" / "bench_wecom_fanout.py"


def test_a_small_wecom_fan_out_sends_every_row_through_each_sender():
    proc = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--messages",
            "120",
            "--members",
            "40",
            "--segment",
            "40",
            "--throttled-messages",
            "20",
            "--throttled-members",
            "10",
        ],
        capture_output=True,
        text=True,
        timeout=150,
        cwd=ROOT,
    )
    found = phases(proc.stdout)
    assert "unthrottled" in found and "throttled" in found, proc.stdout[-2000:] + proc.stderr[-3000:]
    u = found["unthrottled"]
    # both the dispatcher's and the floor's rows (one queue of 2 x 120), and the bare loop's
    assert u["sent"] == 240 and u["raw_errors"] == 0
    assert u["dispatcher_per_s"] > 0 and u["floor_per_s"] > 0 and u["raw_aiohttp_per_s"] > 0
    assert u["cpu_ms_per_msg_floor"] > 0
    t = found["throttled"]
    assert t["sent"] == 20 and t["limit_errors_45009"] == 0
