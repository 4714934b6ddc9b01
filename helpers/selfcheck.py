"""Self-check for students: re-run this notebook's visible tests and summarise them.

Every test cell starts with a ``# Tests: <exercise>`` line. :func:`report`, called
from the last cell of each notebook (Jupyter or Colab), re-runs the latest version
of every such cell the kernel has executed and prints one line per exercise. It
sees only the visible tests; the autograder adds hidden ones.
"""

from __future__ import annotations

import re
import traceback

HEADER = re.compile(r"^#\s*Tests:\s*(?P<name>[\w ,.-]+?)\s*$", re.M)


def strip_hidden(source: str) -> str:
    """The student-visible part of a test cell: hidden blocks (instructors' copies) removed."""
    out, hidden = [], False
    for line in source.splitlines():
        if line.strip() == "### BEGIN HIDDEN TESTS":
            hidden = True
        elif line.strip() == "### END HIDDEN TESTS":
            hidden = False
        elif not hidden:
            out.append(line)
    return "\n".join(out).rstrip()


def test_cells(sources: list[str]) -> dict[str, str]:
    """Latest source of each test cell among executed cell sources, by exercise name."""
    found: dict[str, str] = {}
    for src in sources:
        m = HEADER.match(src.lstrip())
        if m:
            found[m.group("name")] = src
    return found


def run_tests(cells: dict[str, str], namespace: dict) -> dict[str, str]:
    """Execute each test cell; map exercise -> "" when it passed, else the reason."""
    results = {}
    for name, src in cells.items():
        try:
            # Only the visible part: hidden blocks (in instructors' copies) are for the grader.
            exec(compile(strip_hidden(src), f"<tests: {name}>", "exec"), namespace)
            results[name] = ""
        except Exception as exc:  # noqa: BLE001 - reported to the student
            lines = str(exc).strip().splitlines() or [type(exc).__name__]
            results[name] = f"{type(exc).__name__}: {lines[0]}"
            if not isinstance(exc, AssertionError | NotImplementedError | NameError):
                results[name] += "\n" + "".join(traceback.format_exception_only(exc)).strip()
    return results


def report() -> dict[str, str]:
    """Print a per-exercise summary of the visible tests and return it."""
    try:
        from IPython import get_ipython
    except ImportError:
        get_ipython = lambda: None  # noqa: E731
    ip = get_ipython()
    if ip is None:
        print("Run report() inside Jupyter or Colab, after running the notebook.")
        return {}
    cells = test_cells(list(ip.user_ns.get("In", [])))
    if not cells:
        print("No test cell has run yet: run the notebook from the top first.")
        return {}
    results = run_tests(cells, ip.user_ns)
    width = max(map(len, results))
    for name, problem in results.items():
        mark = "PASS" if not problem else "FAIL"
        print(f"{mark}  {name:<{width}}  {problem.splitlines()[0] if problem else ''}")
    passed = sum(not p for p in results.values())
    print(f"\n{passed}/{len(results)} exercises pass their visible tests.", end=" ")
    print("Hidden tests run when the notebook is graded.")
    return results
