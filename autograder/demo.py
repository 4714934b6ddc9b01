"""``make demo``: the instructor's main job, end to end, on embedded data.

Releases the student notebooks, fabricates a small class from the solutions
(perfect, partial, broken and hostile submissions, laid out as a Canvas download
and as nbgrader folders), grades them in parallel in the sandbox, and prints the
grade table and where the feedback is.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nbformat

from autograder import paths
from autograder.release import release

HEADLINE = "04_sparse_autoencoder"

PARTIAL = """def kl_sparsity(a, rho, eps=1e-6):
    rho_hat = a.reshape(a.shape[0], -1).mean(dim=1).clamp(eps, 1 - eps)  # over units: a classic mistake
    return (rho * torch.log(rho / rho_hat) + (1 - rho) * torch.log((1 - rho) / (1 - rho_hat))).sum()
"""

HOSTILE = """import torch, numpy
torch.allclose = lambda *args, **kwargs: True      # "every comparison passes"
numpy.allclose = lambda *args, **kwargs: True
def l1_sparsity(z):
    return torch.zeros((), dtype=z.dtype, requires_grad=True)
"""


def _with_answer(nb, grade_id: str, source: str):
    nb = nbformat.from_dict(json.loads(nbformat.writes(nb)))
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == grade_id:
            cell.source = source
    return nb


def fabricate(dest: Path) -> Path:
    """A folder of submissions covering the cases an instructor meets."""
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    for name in paths.assignments():  # everyone hands in every notebook perfectly...
        solved = nbformat.read(paths.SOLUTIONS / f"{name}.ipynb", as_version=4)
        nbformat.write(solved, dest / f"ada_1001_5001_{name}.ipynb")  # Canvas flat name
    solved = nbformat.read(paths.SOLUTIONS / f"{HEADLINE}.ipynb", as_version=4)
    student = nbformat.read(paths.NOTEBOOKS / f"{HEADLINE}.ipynb", as_version=4)
    (dest / "ben" / HEADLINE).mkdir(parents=True)  # ...ben: one classic mistake
    nbformat.write(
        _with_answer(solved, "kl_sparsity", PARTIAL), dest / "ben" / HEADLINE / f"{HEADLINE}.ipynb"
    )
    (dest / "cleo").mkdir()  # cleo: handed in the untouched student version
    nbformat.write(student, dest / "cleo" / f"{HEADLINE}.ipynb")
    (dest / "dan").mkdir()  # dan: a file that is not a notebook any more
    (dest / "dan" / f"{HEADLINE}.ipynb").write_text('{"cells": [ oops')
    (dest / "eve").mkdir()  # eve: patches the comparisons and deletes a test cell
    hostile = _with_answer(solved, "l1_sparsity", HOSTILE)
    hostile.cells = [
        c
        for c in hostile.cells
        if c.metadata.get("nbgrader", {}).get("grade_id") != "test_unit_activation"
    ]
    nbformat.write(hostile, dest / "eve" / f"{HEADLINE}.ipynb")
    return dest


def demo(out: Path, jobs: int = 2) -> int:
    from autograder.__main__ import print_table
    from autograder.grade import Grader, Options

    print("1. release: solutions/ -> notebooks/")
    for p in release():
        print(f"   {p.relative_to(paths.ROOT)}")
    print("2. fabricate submissions (perfect, partial, untouched, broken, hostile)")
    subs = fabricate(out / "submissions")
    print(f"   {subs}")
    print(f"3. grade them, {jobs} at a time, each kernel in the sandbox")
    grader = Grader(out / "graded", Options(jobs=jobs))
    print(f"   sandbox: {grader.sandbox_description()}")
    results = grader.run(subs)
    print_table(results)
    print(f"\ngrades:   {out / 'graded' / 'grades.csv'}")
    print(f"report:   {out / 'graded' / 'report.json'}")
    print(f"feedback: {out / 'graded' / 'feedback'}/<student>/<assignment>.html")
    return 0
