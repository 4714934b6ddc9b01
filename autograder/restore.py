"""Put the instructor's test cells back into a submission, and say what was changed.

nbgrader identifies cells by ``grade_id``. A submission may have edited, deleted,
duplicated or re-typed its test cells, or invented graded cells of its own; every
one of those is repaired from the source notebook (which holds the hidden tests)
and reported, so a person can look at it.
"""

from __future__ import annotations

import copy

import nbformat

from helpers.selfcheck import strip_hidden

__all__ = ["is_test", "restore", "strip_hidden"]


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
