"""Run a solution notebook's hidden blocks in this process, as the grader's kernel would.

For tests that need many variants of an answer judged quickly (no kernel): the namespace is the
notebook's settings cell plus its answer cells (fast mode); a hidden block runs in a copy of it,
recording under a folder, and ``autograder.compare`` judges the records against the reference's.
"""

from __future__ import annotations

import ast
import os
import re
import sys
import types
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import nbformat

from autograder import paths
from autograder.compare import compare_all, load_records
from autograder.restore import is_test
from helpers import grading

_HIDDEN = re.compile(r"### BEGIN HIDDEN TESTS\n(.*?)### END HIDDEN TESTS", re.S)
_SOLUTION = re.compile(r"^\s*### (BEGIN|END) SOLUTION\s*$", re.M)


def notebook(name: str):
    return nbformat.read(paths.SOLUTIONS / f"{name}.ipynb", as_version=4)


def gid(cell) -> str:
    return cell.metadata.get("nbgrader", {}).get("grade_id", "")


@dataclass
class Graded:
    """One ``grade(...)`` call of a hidden block."""

    name: str
    fn: str  # source of the graded callable
    mistakes: str = ""  # source of the mistakes= expression
    has_probe: bool = False


@dataclass
class GradedCell:
    gid: str
    visible: str
    hidden: str
    helpers: str  # the hidden block without its grade() calls
    graded: list[Graded] = field(default_factory=list)


def _is_grade(node) -> bool:
    return (
        isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Call)
        and getattr(node.value.func, "id", None) == "grade"
    )


def graded_cells(name: str) -> list[GradedCell]:
    cells = []
    for cell in notebook(name).cells:
        if cell.cell_type != "code" or not is_test(cell):
            continue
        hidden = "\n".join(_HIDDEN.findall(cell.source))
        visible = _HIDDEN.sub("", cell.source)
        tree = ast.parse(hidden)
        helpers = "\n\n".join(
            ast.get_source_segment(hidden, n) for n in tree.body if not _is_grade(n)
        )
        graded = []
        for n in tree.body:
            if _is_grade(n):
                call = n.value
                kws = {k.arg: k.value for k in call.keywords}
                m = kws.get("mistakes")
                graded.append(
                    Graded(
                        call.args[0].value,
                        ast.get_source_segment(hidden, call.args[1]),
                        ast.get_source_segment(hidden, m) if m is not None else "",
                        "probe" in kws,
                    )
                )
        cells.append(GradedCell(gid(cell), visible, hidden, helpers, graded))
    return cells


@cache
def namespace(name: str) -> dict:
    """The settings cell (the first code cell after the setup cell) and every answer cell."""
    os.environ["COURSE_FAST"] = "1"
    os.environ.setdefault("MPLBACKEND", "Agg")
    code = [c for c in notebook(name).cells if c.cell_type == "code"]
    module = types.ModuleType(f"course_{name}")  # dataclasses look their module up
    sys.modules[module.__name__] = module
    ns = module.__dict__
    for cell in [code[1]] + [c for c in code if c.metadata.get("nbgrader", {}).get("solution")]:
        exec(compile(_SOLUTION.sub("", cell.source), f"<{name}:{cell.id}>", "exec"), ns)
    return ns


def record(name: str, hidden: str, folder: Path, replace: dict | None = None) -> None:
    """Run ``hidden`` in a copy of the notebook's namespace, ``replace`` bound first."""
    ns = dict(namespace(name))
    ns.update(replace or {})
    grading._counts.clear()
    old = os.environ.get("COURSE_RECORD_DIR")
    os.environ["COURSE_RECORD_DIR"] = str(folder)
    try:
        exec(compile(hidden, f"<hidden {name}>", "exec"), ns)
    finally:
        if old is None:
            os.environ.pop("COURSE_RECORD_DIR", None)
        else:
            os.environ["COURSE_RECORD_DIR"] = old


def judge(folder: Path, reference: Path) -> dict:
    """Verdicts of the records in ``folder`` against those in ``reference``."""
    mine, _ = load_records(folder)
    ref, _ = load_records(reference)
    return compare_all(mine, ref)


def mistakes(name: str, cell: GradedCell, graded: Graded) -> dict:
    """The listed mistakes of one grade() call, as a student would write them."""
    if not graded.mistakes:
        return {}
    ns = dict(namespace(name))
    exec(compile(cell.helpers, "<helpers>", "exec"), ns)
    return eval(graded.mistakes, ns)  # noqa: S307 - trusted course source
