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


def engine_url(db_url: str) -> str:
    """``postgresql://`` means psycopg 3 to SQLAlchemy >= 2.1; use psycopg2 when only it is here."""
    import importlib.util

    if (
        db_url.startswith("postgresql://")
        and importlib.util.find_spec("psycopg") is None
        and importlib.util.find_spec("psycopg2") is not None
    ):
        return "postgresql+psycopg2://" + db_url[len("postgresql://") :]
    return db_url


def record(db_url: str, sources: dict[str, Path], results: list[dict]) -> int:
    """Write every graded result; returns the number of submissions stored."""
    from nbgrader.api import Grade, Gradebook, MissingEntry

    ensure_env_on_path()
    warnings.filterwarnings("ignore", module="nbgrader")
    warnings.filterwarnings("ignore", category=Warning, message=".*not in session.*")
    stored = 0
    with Gradebook(engine_url(db_url)) as gb:
        for assignment, path in sources.items():
            nb = nbformat.read(path, as_version=4)
            gb.update_or_create_assignment(assignment)
            notebook = gb.update_or_create_notebook(assignment, assignment)
            wanted = {c.metadata["nbgrader"]["grade_id"] for c in nb.cells if is_test(c)}
            for cell in list(notebook.grade_cells):  # test cells the source no longer has
                if cell.name not in wanted:
                    for grade in list(cell.grades):
                        gb.db.delete(grade)
                    gb.db.delete(cell)
            gb.db.commit()
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
                try:
                    grade = gb.find_grade(gid, r["assignment"], r["assignment"], r["student_id"])
                except MissingEntry:  # a test cell added since this submission was first stored
                    grade = Grade(
                        cell_id=gb.find_grade_cell(gid, r["assignment"], r["assignment"]).id,
                        notebook=gb.find_submission_notebook(
                            r["assignment"], r["assignment"], r["student_id"]
                        ),
                    )
                    gb.db.add(grade)
                grade.auto_score = float(t["points"])
                grade.needs_manual_grade = False
            gb.db.commit()
            stored += 1
    return stored


def scores(db_url: str) -> dict[tuple[str, str], float]:
    """(student, assignment) -> total score, as the gradebook has it."""
    from nbgrader.api import Gradebook

    ensure_env_on_path()
    out = {}
    with Gradebook(engine_url(db_url)) as gb:
        for assignment in gb.assignments:
            for sub in assignment.submissions:
                out[(sub.student.id, assignment.name)] = float(sub.score)
    return out
