"""What the grader hands over: grade tables for the LMS and the full JSON report."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from autograder import class_report
from autograder.collect import slug

COLUMNS = ["student_id", "assignment", "score", "max_score", "status", "flags"]


def write_csv(path: Path, results: list[dict]) -> None:
    """One row per (student, assignment), the required columns, then one column per test cell."""
    # In notebook order (the order of each result's tests), assignment by assignment.
    test_ids = list(
        dict.fromkeys(
            gid
            for r in sorted(results, key=lambda r: r["assignment"])
            for gid in r.get("tests", {})
        )
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow([*COLUMNS, *test_ids])
        for r in results:
            tests = r.get("tests", {})
            w.writerow(
                [
                    r["student_id"],
                    r["assignment"],
                    f"{r['score']:g}",
                    f"{r['max_score']:g}",
                    r["status"],
                    "; ".join([*r.get("notes", []), *r.get("flags", [])]),
                    *(f"{tests[t]['points']:g}" if t in tests else "" for t in test_ids),
                ]
            )


def write_all(out: Path, results: list[dict], header: dict) -> None:
    """``grades.csv`` (everything), ``grades/<assignment>.csv`` (one LMS column set each), and
    ``report.json`` (every test's outcome and message), ``class_report.html`` and ``.csv``."""
    results.sort(key=lambda r: (r["student_id"], r["assignment"]))
    write_csv(out / "grades.csv", results)
    for assignment in sorted({r["assignment"] for r in results}):
        write_csv(
            out / "grades" / f"{slug(assignment)}.csv",
            [r for r in results if r["assignment"] == assignment],
        )
    (out / "report.json").write_text(json.dumps({**header, "submissions": results}, indent=1))
    class_report.write(out, results)
