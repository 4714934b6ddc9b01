"""Put the instructor's test cells back into a submission, and say what was changed.

nbgrader identifies cells by ``grade_id``. A submission may have edited, deleted,
duplicated or re-typed its test cells, or invented graded cells of its own; every
one of those is repaired from the source notebook (which holds the hidden tests)
and reported, so a person can look at it.
"""

from __future__ import annotations

import ast
import copy
import re

import nbformat

from helpers.selfcheck import strip_hidden

__all__ = ["is_test", "prepare_tests", "restore", "strip_hidden"]


def _meta(cell) -> dict:
    m = cell.get("metadata", {}).get("nbgrader", {})
    return m if isinstance(m, dict) else {}


def is_test(cell) -> bool:
    m = _meta(cell)
    return bool(m.get("grade")) and not m.get("solution")


def _norm(src) -> str:
    text = "".join(src) if isinstance(src, list) else str(src)
    return "\n".join(line.rstrip() for line in text.strip().splitlines())


def restore(submission, source) -> tuple[nbformat.NotebookNode, list[str]]:
    """A copy of ``submission`` whose test cells are exactly the source's; and the notes."""
    notes: list[str] = []
    src_tests = [c for c in source.cells if is_test(c)]
    wanted = {_meta(c)["grade_id"]: c for c in src_tests}
    cells, seen = [], set()
    for cell in submission.cells:
        gid = _meta(cell).get("grade_id")
        if gid in wanted:
            if gid in seen:
                notes.append(f"duplicated test cell '{gid}' removed")
                continue
            seen.add(gid)
            ref = wanted[gid]
            if cell.get("cell_type") != "code" or _norm(
                strip_hidden(cell.get("source", ""))
            ) != _norm(strip_hidden(ref.source)):
                notes.append(f"edited test cell '{gid}' restored")
            elif _meta(cell).get("points") != _meta(ref).get("points"):
                notes.append(f"points of test cell '{gid}' restored")
            cells.append(_fresh(ref))
        elif is_test(cell) or _meta(cell).get("points"):
            notes.append(f"unknown graded cell '{gid}' ignored (not part of the assignment)")
            cell = copy.deepcopy(cell)
            cell["metadata"].pop("nbgrader", None)
            cells.append(cell)
        else:
            cells.append(copy.deepcopy(cell))  # ids and outputs are reset below: not the caller's
    # Deleted test cells go back after the cell that precedes them in the source.
    order = [_meta(c).get("grade_id") for c in source.cells]
    for gid, ref in wanted.items():
        if gid in seen:
            continue
        notes.append(f"deleted test cell '{gid}' restored")
        pos = len(cells)
        prev = order[: order.index(gid)]
        for anchor in reversed(prev):
            idx = [i for i, c in enumerate(cells) if anchor and _meta(c).get("grade_id") == anchor]
            if idx:
                pos = idx[0] + 1
                break
        cells.insert(pos, _fresh(ref))
    nb = nbformat.v4.new_notebook(metadata=copy.deepcopy(source.metadata))
    nb.cells = cells
    for i, c in enumerate(nb.cells):  # unique, valid ids whatever the submission held
        c["id"] = f"c{i:04d}"
        if c.get("cell_type") == "code":
            c["outputs"], c["execution_count"] = [], None
    return nb, notes


def _fresh(cell):
    c = copy.deepcopy(cell)
    c["outputs"], c["execution_count"] = [], None
    return c


# --- What the kernel runs for a test cell at grading time -----------------------------------
#
# A restored test cell is run as: [given prelude] hidden block, then the visible checks. The
# hidden checks thus record their verdicts even when a visible check fails (the visible error
# still fails the cell, so the points still need every check). The prelude binds the earlier
# exercises named in ``grade(..., given=...)`` to the reference versions, compiled from the
# source notebook's answer cells in a private namespace, for this one cell only (see AUTHORING.md,
# "One mistake, one deduction"). The feedback shows the cell as the student saw it.

_HIDDEN = re.compile(
    r"^[ \t]*### BEGIN HIDDEN TESTS[ \t]*\n(.*?)^[ \t]*### END HIDDEN TESTS[ \t]*$", re.M | re.S
)
_SOLUTION_MARKER = re.compile(r"^\s*### (BEGIN|END) SOLUTION\s*$", re.M)

PRELUDE = """\
def __course_prelude(names, source):
    import numpy as np
    import torch
    import torch.nn.functional as F
    from torch import nn

    private = {"__name__": "__course_reference__", "np": np, "torch": torch, "F": F, "nn": nn}
    exec(compile(source, "<reference>", "exec"), private)
    given = {n: private[n] for n in names}
    user, missing = globals(), object()
    saved = {n: user.get(n, missing) for n in names}
    ip = get_ipython()

    def unbind(*_):
        ip.events.unregister("post_run_cell", unbind)
        for n, v in saved.items():
            if v is missing:
                user.pop(n, None)
            else:
                user[n] = v
        user.pop("__course_given__", None)

    user.update(given)
    user["__course_given__"] = given
    ip.events.register("post_run_cell", unbind)


__course_prelude(__NAMES__, __SOURCE__)
del __course_prelude
"""


def given_names(test_source: str) -> list[str]:
    """Names listed in the ``given=`` of the ``grade(...)`` calls of a test cell, in order."""
    try:
        tree = ast.parse(test_source)
    except SyntaxError:
        return []
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "grade":
            for kw in node.keywords:
                if kw.arg == "given":
                    value = ast.literal_eval(kw.value)  # authors write a literal tuple of names
                    names += [value] if isinstance(value, str) else list(value)
    return list(dict.fromkeys(names))


def _top_level_names(source: str) -> set[str]:
    names = set()
    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    return names


def reference_source(source_nb, names: list[str], forbidden: set[str]) -> str:
    """The answer cells of ``source_nb`` that define ``names``, solution markers removed.

    ``forbidden``: exercises graded in this cell or later; an answer cell that defines one of
    them (as well as a given name) would hand its answer to the kernel, so it is refused.
    """
    chunks, found = [], set()
    for cell in source_nb.cells:
        m = _meta(cell)
        if cell.get("cell_type") != "code" or not m.get("solution"):
            continue
        src = _SOLUTION_MARKER.sub("", str(cell.source))
        defined = _top_level_names(src)
        if not defined & set(names):
            continue
        leak = defined & forbidden
        if leak:
            raise ValueError(
                f"answer cell '{m.get('grade_id')}' defines {sorted(leak)} next to a given "
                "exercise: put each graded exercise in an answer cell of its own"
            )
        chunks.append(src)
        found |= defined
    missing = [n for n in names if n not in found]
    if missing:
        raise ValueError(f"given={missing} is not defined by any answer cell of the source")
    return "\n\n".join(chunks)


def prepare_tests(nb, source) -> tuple[dict[int, str], list[str]]:
    """Rewrite the test cells of a restored notebook for grading, in place.

    Returns the original sources by cell index (to put back before the feedback is written) and
    notes for the instructor.
    """
    from autograder.source_checks import graded_calls

    notes: list[str] = []
    originals: dict[int, str] = {}
    tests = [i for i, c in enumerate(nb.cells) if c.get("cell_type") == "code" and is_test(c)]
    graded_at = {i: graded_calls(nb.cells[i].source) for i in tests}
    for i in tests:
        cell = nb.cells[i]
        src = str(cell.source)
        hidden = "\n".join(m.group(1) for m in _HIDDEN.finditer(src))
        if not hidden.strip():
            continue
        names = given_names(hidden)
        later = {n for j in tests if j >= i for n in graded_at[j]}
        # Only exercises whose own test cell has already run: a reference seen here could never
        # reach their records (a kernel never sees a later cell, and records count only when
        # their own test cell wrote them last).
        moved = [n for n in names if n in later]
        if moved:
            notes.append(
                f"test cell '{_meta(cell)['grade_id']}' comes before the test of {moved}: "
                "graded with your own version of it"
            )
        names = [n for n in names if n not in later]
        prelude = ""
        if names:
            code = reference_source(source, names, later)
            prelude = PRELUDE.replace("__NAMES__", repr(names)).replace("__SOURCE__", repr(code))
        originals[i] = src
        cell.source = (
            "### BEGIN HIDDEN TESTS\n"
            + prelude
            + hidden.strip("\n")
            + "\n### END HIDDEN TESTS\n"
            + strip_hidden(src)
        )
    return originals, notes
