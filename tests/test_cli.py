"""The command line a student and an instructor use."""

from __future__ import annotations

import subprocess
import sys

import pytest

from autograder import paths

NAME = "04_sparse_autoencoder"


def _run(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "autograder", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=paths.ROOT,
    )


def test_help_lists_every_command():
    out = _run("--help").stdout
    for command in ("release", "grade", "check", "validate", "demo"):
        assert command in out


def test_grade_requires_an_output_folder():
    proc = _run("grade", "somewhere")
    assert proc.returncode != 0 and "--out" in proc.stderr


@pytest.mark.slow
def test_check_passes_a_solved_notebook_and_fails_a_blank_one():
    solved = _run("check", str(paths.SOLUTIONS / f"{NAME}.ipynb"))
    assert solved.returncode == 0, solved.stdout + solved.stderr
    assert "PASS  kl_sparsity" in solved.stdout and "4/4 exercises pass" in solved.stdout
    blank = _run("check", str(paths.NOTEBOOKS / f"{NAME}.ipynb"))
    assert blank.returncode == 1
    assert "FAIL  kl_sparsity" in blank.stdout and "NotImplementedError" in blank.stdout
    assert "0/4 exercises pass" in blank.stdout
