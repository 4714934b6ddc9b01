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

from helpers.selfcheck import HEADER


def _summaries(nb) -> list[tuple[str, str]]:
    rows = []
    for cell in nb.cells:
        m = HEADER.match(cell.source.lstrip()) if cell.cell_type == "code" else None
        if not m:
            continue
        errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        if cell.get("execution_count") is None and not cell.get("outputs"):
            rows.append((m.group("name"), "not run (an earlier cell failed or timed out)"))
        elif errors:
            first = str(errors[0].get("evalue", "")).strip().splitlines()
            rows.append((m.group("name"), f"{errors[0].get('ename')}: {first[0] if first else ''}"))
        else:
            rows.append((m.group("name"), ""))
    return rows


def check(path: Path, timeout: int = 120) -> int:
    """Execute ``path`` (a copy; the file is untouched) and print the per-exercise summary."""
    nb = nbformat.read(path, as_version=4)
    env = {**os.environ, "COURSE_FAST": "1"}
    client = NotebookClient(
        nb,
        timeout=timeout,
        allow_errors=True,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent.resolve())}},
    )
    print(f"Checking {path} (fast mode, visible tests only)...")
    old = dict(os.environ)
    os.environ.update(env)
    try:
        client.execute()
    finally:
        os.environ.clear()
        os.environ.update(old)
    rows = _summaries(nb)
    width = max((len(n) for n, _ in rows), default=10)
    for name, problem in rows:
        print(f"{'PASS' if not problem else 'FAIL'}  {name:<{width}}  {problem}")
    passed = sum(not p for _, p in rows)
    print(f"\n{passed}/{len(rows)} exercises pass their visible tests.")
    return 0 if rows and passed == len(rows) else 1
