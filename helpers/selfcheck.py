"""Self-check for students: re-run this notebook's visible tests and summarise them.

Every test cell starts with a ``# Tests: <exercise>`` line. :func:`report`, called
from the last cell of each notebook (Jupyter or Colab), re-runs the latest version
of every such cell the kernel has executed and prints one line per exercise. It
sees only the visible tests; the autograder adds hidden ones.
"""

from __future__ import annotations

import ast
import contextlib
import inspect
import io
import re
import textwrap
import traceback
import warnings

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


def describe_error(text: str) -> str:
    """What a student reads about a test cell that stopped with ``text`` ("Name: message").

    One wording for the self-check, ``report()`` and the grader's feedback.
    """
    text = text.strip()
    if text.startswith("NotImplementedError"):
        return "NotImplementedError: the answer above is not written yet"
    return text or "the cell raised an error"


def calls(source: str) -> set[str]:
    """Names a function's source reads (the exercises it may build on)."""
    try:
        tree = ast.parse(textwrap.dedent(source))
    except SyntaxError:
        return set()
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}


def summary(results: dict[str, str], uses: dict[str, set[str]] | None = None) -> str:
    """One line per exercise, each failure's whole message (expected, got, input, hint) under it.

    ``uses`` maps an exercise to the names its answer reads: a failure that may come from an
    earlier failing exercise says so (the grader judges it with a correct earlier exercise).
    """
    width = max(map(len, results), default=10)
    lines, failing = [], []
    for name, problem in results.items():
        if not problem:
            lines.append(f"PASS  {name}")
            continue
        first, *rest = problem.splitlines()
        lines.append(f"FAIL  {name:<{width}}  {first}")
        lines += [f"      {line}" for line in rest]
        earlier = [n for n in failing if n in (uses or {}).get(name, set())]
        if earlier:
            lines.append(
                f"      note: {name} calls {', '.join(earlier)}, which fails above: fix that first"
                f" (the grader judges {name} with correct versions of them)"
            )
        failing.append(name)
    passed = sum(not p for p in results.values())
    lines.append(f"\n{passed}/{len(results)} exercises pass their visible tests.")
    return "\n".join(lines)


def run_tests(cells: dict[str, str], namespace: dict) -> dict[str, str]:
    """Execute each test cell (its output silenced); map exercise -> "" or the reason."""
    results = {}
    for name, src in cells.items():
        try:
            # Only the visible part: hidden blocks (in instructors' copies) are for the grader.
            with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                exec(compile(strip_hidden(src), f"<tests: {name}>", "exec"), namespace)
            results[name] = ""
        except Exception as exc:  # noqa: BLE001 - reported to the student
            text = "".join(traceback.format_exception_only(exc)).strip()
            results[name] = describe_error(text.removeprefix("helpers.checks."))
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
    uses = {}
    for name in results:
        try:
            uses[name] = calls(inspect.getsource(ip.user_ns[name]))
        except (KeyError, OSError, TypeError):
            pass
    print(summary(results, uses), "Hidden tests run when the notebook is graded.")
    return results


_LOOPS = (
    ast.For,
    ast.AsyncFor,
    ast.While,
    ast.ListComp,
    ast.SetComp,
    ast.DictComp,
    ast.GeneratorExp,
)


def loops_in_source(source: str) -> list[str]:
    """Descriptions of the loops and comprehensions in ``source`` (empty when vectorised)."""
    tree = ast.parse(textwrap.dedent(source))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, _LOOPS):
            found.append(f"{type(node).__name__} at line {node.lineno}")
    return found
