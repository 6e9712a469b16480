"""Lint, formatting and types are part of the test command (``uv run pytest``, which CI runs).

ruff checks and formats the whole tree; mypy checks ``domain/`` and ``core/`` strictly (the
``[tool.mypy]`` section of pyproject.toml), with its cache in ``.mypy_cache`` so a re-run is fast.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

CHECKS = {
    "ruff check": ["ruff", "check", "."],
    "ruff format": ["ruff", "format", "--check", "."],
    "mypy": ["mypy"],  # files, strictness and cache from pyproject.toml
}


@pytest.mark.parametrize("name", list(CHECKS))
def test_static_check_passes(name: str) -> None:
    done = subprocess.run([sys.executable, "-m", *CHECKS[name]], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{name} failed (exit {done.returncode}):\n{done.stdout}\n{done.stderr}"
