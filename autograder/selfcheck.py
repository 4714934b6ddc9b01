"""``python -m autograder check NOTEBOOK``: a student's self-check before submitting.

Runs the notebook in fast mode on the student's own machine (their own code, so no
sandbox) and prints one line per exercise from the visible tests. Hidden tests are
not in the student's copy; the real grade may differ.
"""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from helpers.selfcheck import HEADER, calls, describe_error, summary


def _summaries(nb) -> dict[str, str]:
    """exercise -> "" when its test cell passed, else what the grader would say about it."""
    rows = {}
    for cell in nb.cells:
        m = HEADER.match(cell.source.lstrip()) if cell.cell_type == "code" else None
        if not m:
            continue
        errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        if cell.get("execution_count") is None and not cell.get("outputs"):
            rows[m.group("name")] = "not run (an earlier cell failed or timed out)"
        elif errors:
            rows[m.group("name")] = describe_error(
                f"{errors[0].get('ename', '')}: {errors[0].get('evalue', '')}"
            )
        else:
            rows[m.group("name")] = ""
    return rows


def uses(nb) -> dict[str, set[str]]:
    """exercise -> the names its answer reads, from the notebook's own answer cells."""
    from autograder.source_checks import definitions

    code = [c for c in nb.cells if c.cell_type == "code" and not HEADER.match(c.source.lstrip())]
    return {name: calls(src) for name, src in definitions(code).items()}


def execute(path: Path, timeout: int = 120):
    """Run a copy of the notebook at ``path`` in fast mode (the file is untouched); return it."""
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        timeout=timeout,
        allow_errors=True,
        kernel_name="python3",
        # The kernel's own log (e.g. "running over TCP without encryption") is not for students.
        extra_arguments=["--Application.log_level=CRITICAL"],
        resources={"metadata": {"path": str(path.parent.resolve())}},
    )
    old = dict(os.environ)
    os.environ["COURSE_FAST"] = "1"
    try:
        client.execute()
    finally:
        os.environ.clear()
        os.environ.update(old)
    return nb


def check(path: Path, timeout: int = 120) -> int:
    """Execute ``path`` and print the per-exercise summary; 0 when every exercise passes."""
    print(f"Checking {path} (fast mode, visible tests only)...")
    nb = execute(path, timeout)
    rows = _summaries(nb)
    print(summary(rows, uses(nb)))
    return 0 if rows and all(not p for p in rows.values()) else 1
