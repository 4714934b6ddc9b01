"""Store grades in nbgrader's gradebook (SQLite by default, PostgreSQL by URL).

Writes are idempotent: grading the same submission again updates its rows, so a
regrade or a resumed run never duplicates anything. Only the parent grader process
writes, one submission at a time.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import nbformat

from autograder.release import ensure_env_on_path
from autograder.restore import is_test


def default_db_url(root: Path) -> str:
    return f"sqlite:///{Path(root).resolve() / 'gradebook.db'}"


def record(db_url: str, sources: dict[str, Path], results: list[dict]) -> int:
    """Write every graded result; returns the number of submissions stored."""
    from nbgrader.api import Gradebook

    ensure_env_on_path()
    warnings.filterwarnings("ignore", module="nbgrader")
    warnings.filterwarnings("ignore", category=Warning, message=".*not in session.*")
    stored = 0
    with Gradebook(db_url) as gb:
        for assignment, path in sources.items():
            nb = nbformat.read(path, as_version=4)
            gb.update_or_create_assignment(assignment)
            gb.update_or_create_notebook(assignment, assignment)
            for cell in nb.cells:
                if is_test(cell):
                    meta = cell.metadata["nbgrader"]
                    gb.update_or_create_grade_cell(
                        meta["grade_id"],
                        assignment,
                        assignment,
                        max_score=float(meta.get("points", 0)),
                        cell_type="code",
                    )
        for r in results:
            if r["assignment"] not in sources or not r.get("tests"):
                continue
            gb.update_or_create_student(r["student_id"])
            gb.update_or_create_submission(r["assignment"], r["student_id"])
            for gid, t in r["tests"].items():
                grade = gb.find_grade(gid, r["assignment"], r["assignment"], r["student_id"])
                grade.auto_score = float(t["points"])
                grade.needs_manual_grade = False
            gb.db.commit()
            stored += 1
    return stored


def scores(db_url: str) -> dict[tuple[str, str], float]:
    """(student, assignment) -> total score, as the gradebook has it."""
    from nbgrader.api import Gradebook

    out = {}
    with Gradebook(db_url) as gb:
        for assignment in gb.assignments:
            for sub in assignment.submissions:
                out[(sub.student.id, assignment.name)] = float(sub.score)
    return out
