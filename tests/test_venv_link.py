"""Grading works when the virtual environment is a symlink to a folder elsewhere."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

SCRIPT = r"""
import sys
from pathlib import Path

import nbformat

from autograder.execute import run_notebook
from autograder.grade import _claim_slots
from autograder.sandbox import Sandbox

work = Path(sys.argv[1])
(slot,), locks = _claim_slots(1)
nb = nbformat.v4.new_notebook()
nb.cells = [nbformat.v4.new_code_cell("import sys, helpers\nprint('PREFIX', sys.prefix)")]
run = run_notebook(nb, Sandbox(workdir=work / "home", rundir=work / "run", slot=slot))
print("STATUS", run.status, run.reason, [c.status for c in run.cells])
print("".join(o.get("text", "") for o in nb.cells[0].outputs))
"""


def test_a_kernel_starts_from_an_environment_reached_through_a_symlink():
    if not shutil.which("bwrap"):
        pytest.skip("no bubblewrap: without the sandbox every path is visible anyway")
    # Not under /tmp, which the sandbox lays a private tmpfs over: the kernel's uid must reach it.
    work = Path(tempfile.mkdtemp(prefix="venvlink-", dir="/var/tmp"))
    try:
        os.chmod(work, 0o755)
        link = Path(tempfile.mkdtemp(prefix="venvlink-")) / "venv"  # under /tmp: hidden in there
        link.symlink_to(Path(sys.prefix).resolve(), target_is_directory=True)
        done = subprocess.run(
            [str(link / "bin" / "python"), "-c", SCRIPT, str(work)],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=Path("/"),  # and from outside the repository
        )
        assert "STATUS ok" in done.stdout and "['ok']" in done.stdout, done.stdout + done.stderr
        assert f"PREFIX {Path(sys.prefix).resolve()}" in done.stdout
    finally:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(link.parent, ignore_errors=True)
