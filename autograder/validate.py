"""nbgrader's own check of the course: solutions pass, student versions fail.

``nbgrader validate`` runs each solution notebook and must report success; with
``--invert`` each student notebook (no answers filled in) must fail every graded
test cell.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from autograder import paths
from autograder.release import CONFIG_FILE

PASS = "Success! Your notebook passes all the tests."
INVERT_PASS = "Success! The notebook does not pass any tests."


def validate(notebook: Path, invert: bool = False) -> tuple[bool, str]:
    """(ok, nbgrader's output) for one notebook."""
    cmd = [str(Path(sys.executable).parent / "nbgrader"), "validate", str(notebook.resolve())]
    cmd.append(f"--JupyterApp.config_file={CONFIG_FILE}")
    if invert:
        cmd.append("--invert")
    env = {
        **os.environ,
        "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""),
    }
    proc = subprocess.run(
        cmd, capture_output=True, text=True, env=env, cwd=notebook.parent, timeout=900
    )
    output = proc.stdout + proc.stderr
    return (INVERT_PASS if invert else PASS) in output, output


def validate_all() -> int:
    failures = 0
    for name in paths.assignments():
        for path, invert in (
            (paths.SOLUTIONS / f"{name}.ipynb", False),
            (paths.NOTEBOOKS / f"{name}.ipynb", True),
        ):
            ok, output = validate(path, invert)
            label = "student version fails every test" if invert else "solution passes"
            print(f"{'ok  ' if ok else 'FAIL'} {path.relative_to(paths.ROOT)}: {label}")
            if not ok:
                failures += 1
                print(output[-3000:])
    return 1 if failures else 0
