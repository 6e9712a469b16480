"""What a process pays to start: the bot and the CLI load no learning or plotting library.

scikit-learn (with SciPy) costs ≈ 0.6 s of imports with compiled bytecode and ≈ 2 s without, and
matplotlib about as much; every ``inspectbot`` command, ``inspectbot serve`` and every test
subprocess would pay it. They are imported where they are used: ``services/risk/estimator.py`` by
what learns, ``core/charts.py`` by what draws.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("sklearn", "scipy", "matplotlib")


def loaded_after(statement: str) -> list[str]:
    code = f"import sys; {statement}; print(__import__('json').dumps(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_bot_and_the_cli_start_without_learning_or_plotting_libraries():
    modules = loaded_after("import bot.app, bot.cli, scheduler")
    assert "services.risk.learn" in modules  # the risk services are imported: the check means something
    assert [m for m in modules if m.split(".")[0] in HEAVY] == []


def test_learning_loads_scikit_learn_where_it_learns():
    modules = loaded_after(
        "import numpy as np; from services.risk import learn; from tests.domain.test_risk import EXAMPLE; "
        "rng = np.random.default_rng(1); v = rng.random((200, len(EXAMPLE.codes))); "
        "learn.fit(EXAMPLE, v, (rng.random(200) < v[:, 0]).astype(int), name='t')"
    )
    assert "sklearn" in modules and "services.risk.estimator" in modules
