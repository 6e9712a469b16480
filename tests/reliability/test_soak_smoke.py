"""The soak (``benchmarks/soak.py``) in miniature: 15 s of its mixed traffic against a real
``inspectbot serve`` process, the Bot API and SMS simulators, on SQLite; it must exit 0 with a
passing JSON verdict (every webhook 200, the outbox drained, every effect in the database).

The 30-minute run itself is a benchmark (docs/benchmarks.md, "Soak"), not a test. The verdict's
own rules are checked here too, on made-up samples, so that a passing smoke run means something.
"""

from __future__ import annotations

import json
import subprocess
import sys
from argparse import Namespace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "soak.py"


def phases(stdout: str) -> dict[str, dict]:
    out = {}
    for line in stdout.splitlines():
        if line.startswith("{"):
            obj = json.loads(line)
            out[obj["phase"]] = obj
    return out


def test_a_short_soak_exits_0_with_its_verdict(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--minutes",
            "0.25",
            "--sample",
            "2",
            "--drain",
            "20",
            "--inspectors",
            "100",
            "--keep",
            str(tmp_path / "soak"),
        ],
        capture_output=True,
        text=True,
        timeout=150,
        cwd=ROOT,
    )
    found = phases(proc.stdout)
    assert "verdict" in found, proc.stdout[-2000:] + proc.stderr[-3000:]
    verdict = found["verdict"]
    assert proc.returncode == 0, json.dumps(verdict, ensure_ascii=False)
    assert verdict["ok"] is True
    assert verdict["database"]["problems"] == []
    assert verdict["outbox"]["after_drain"] == 0 and verdict["outbox"]["dead"] == 0
    assert verdict["database"]["telegram_events"] == found["load"]["telegram_updates"] > 0
    assert found["load"]["assignments"] > 0 and verdict["database"]["cards"] == {"sent": found["load"]["assignments"]}
    assert verdict["latency"]["page"]["n"] > 0
    assert verdict["memory"]["judged"] is False  # 15 s is all warm-up: memory is judged from 5 minutes
    assert verdict["memory"]["peak_mb"] > 50  # the service's RSS was really sampled


def _sample(t: float, rss: float, depth: int, phase: str = "sample") -> dict:
    return {
        "phase": phase,
        "t": t,
        "rss_mb": rss,
        "outbox_depth": depth,
        "outbox_dead": 0,
        "inbound_unprocessed": 0,
        "inflight": 0,
    }


def test_the_verdict_fails_on_growing_memory_or_a_stuck_outbox():
    sys.path.insert(0, str(SCRIPT.parent))
    import soak

    args = Namespace(minutes=30, max_slope=0.5)
    load = {"kinds": {"press": {"n": 1, "p50_ms": 1, "p99_ms": 1, "max_ms": 1, "statuses": {"200": 1}}}}
    ok_db = {"ok": True}
    flat = [_sample(t, 120 + (t % 10) / 10, 5) for t in range(5, 1800, 5)]
    drained = [_sample(1802, 120, 0, "drain")]
    assert soak.verdict(flat, drained, load, ok_db, args, 6)["ok"] is True

    leaking = [_sample(t, 120 + t / 60, 5) for t in range(5, 1800, 5)]  # 1 MB a minute
    v = soak.verdict(leaking, drained, load, ok_db, args, 6)
    assert v["ok"] is False and v["memory"]["ok"] is False and 0.99 < v["memory"]["slope_mb_per_min"] < 1.01

    stuck = soak.verdict(flat, [_sample(1920, 120, 3, "drain")], load, ok_db, args, 6)
    assert stuck["ok"] is False and stuck["outbox"]["after_drain"] == 3

    flooded = soak.verdict([*flat, _sample(1799, 120, 1000)], drained, load, ok_db, args, 6)
    assert flooded["outbox"]["ok"] is False and flooded["outbox"]["bound"] == 360

    refused = {"kinds": {"press": {**load["kinds"]["press"], "statuses": {"200": 1, "503": 1}}}}
    assert soak.verdict(flat, drained, refused, ok_db, args, 6)["answers"]["ok"] is False
