"""Grader runs that start no kernel: what an instructor sees when something is off."""

from __future__ import annotations

import csv
import shutil

from autograder import paths
from autograder.grade import Grader, Options


def test_a_broken_reference_is_reported_and_the_rest_is_graded(tmp_path, monkeypatch):
    subs = tmp_path / "subs"
    (subs / "ann").mkdir(parents=True)
    shutil.copy(paths.SOLUTIONS / "01_pca.ipynb", subs / "ann" / "01_pca.ipynb")
    (subs / "bob").mkdir()
    (subs / "bob" / "essay.ipynb").write_text("{}")

    def broken(self, assignment):
        raise RuntimeError(f"the reference solution of {assignment} does not run cleanly")

    monkeypatch.setattr(Grader, "reference", broken)
    out = tmp_path / "out"
    results = Grader(out, Options(jobs=1, progress=False)).run(subs)
    by = {r["student_id"]: r for r in results}
    assert by["ann"]["status"] == "grader_error"
    assert "01_pca does not run cleanly" in by["ann"]["reason"]
    assert by["bob"]["status"] == "unknown_assignment"
    rows = list(csv.DictReader(open(out / "grades.csv")))
    assert sorted((r["student_id"], r["status"]) for r in rows) == [
        ("ann", "grader_error"),
        ("bob", "unknown_assignment"),
    ]
    # Not cached: once the reference is fixed, ann is graded for real.
    assert not (out / "results" / "ann").exists()
