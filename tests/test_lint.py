"""The repository stays lint-clean and formatted (ruff, configured in pyproject.toml)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from autograder import paths


@pytest.mark.parametrize(
    "args", [["check", "."], ["format", "--check", "."]], ids=["lint", "format"]
)
def test_ruff(args):
    proc = subprocess.run(
        [sys.executable, "-m", "ruff", *args], capture_output=True, text=True, cwd=paths.ROOT
    )
    assert proc.returncode == 0, (
        f"ruff {' '.join(args)} failed (run `make format`):\n{proc.stdout}{proc.stderr}"
    )
