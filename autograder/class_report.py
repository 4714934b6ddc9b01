"""The class at a glance: ``OUT/class_report.html`` and ``OUT/class_report.csv``.

Per assignment: the score distribution (a histogram), each test's pass rate in notebook
order, the most frequent named classic mistakes with counts and example students, and the
submissions that need a person (flagged, timed out, dead kernels, unreadable files) with why.
"""

from __future__ import annotations

import base64
import csv
import html
import io
from collections import Counter, defaultdict
from pathlib import Path

TOP_MISTAKES = 10
EXAMPLES = 3


def summarise(results: list[dict]) -> dict[str, dict]:
    """assignment -> scores, per-test pass counts, named mistakes and problem submissions."""
    out: dict[str, dict] = {}
    for r in results:
        a = out.setdefault(
            r["assignment"],
            {
                "scores": [],
                "max_score": 0.0,
                "tests": {},
                "mistakes": Counter(),
                "examples": defaultdict(list),
                "problems": [],
            },
        )
        if r.get("tests"):
            a["scores"].append(float(r["score"]))
            a["max_score"] = max(a["max_score"], float(r["max_score"]))
        for gid, t in r.get("tests", {}).items():
            passed, total = a["tests"].get(gid, (0, 0))
            a["tests"][gid] = (passed + bool(t["passed"]), total + 1)
            for label in t.get("mistakes", []):
                a["mistakes"][(gid, label)] += 1
                if len(a["examples"][(gid, label)]) < EXAMPLES:
                    a["examples"][(gid, label)].append(r["student_id"])
        if r["status"] != "graded":
            why = r.get("reason") or "; ".join(r.get("notes", []) + r.get("flags", []))
            a["problems"].append((r["student_id"], r["status"], why))
    return out


def _histogram(scores: list[float], max_score: float) -> str:
    """A PNG histogram of the scores, base64-encoded ("" without scores)."""
    if not scores:
        return ""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5, 2.4), dpi=80)
    ax = fig.subplots()
    top = max(max_score, max(scores), 1.0)
    bins = [x * top / 10 for x in range(11)]
    ax.hist(scores, bins=bins, color="#4a6fa5", edgecolor="white")
    ax.set_xlabel(f"score (out of {max_score:g})")
    ax.set_ylabel("students")
    ax.set_xlim(0, top)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return base64.b64encode(buf.getvalue()).decode()


def write(out: Path, results: list[dict]) -> None:
    e = html.escape
    sections, rows = [], []
    for assignment, a in sorted(summarise(results).items()):
        scores = a["scores"]
        mean = sum(scores) / len(scores) if scores else 0.0
        rows.append([assignment, "submissions", "graded", len(scores), "", ""])
        rows.append([assignment, "submissions", "mean score", f"{mean:.2f}", "", ""])
        parts = [
            f"<h2>{e(assignment)}</h2>",
            f"<p>{len(scores)} graded submission(s), mean score {mean:.2f} / "
            f"{a['max_score']:g}.</p>",
        ]
        png = _histogram(scores, a["max_score"])
        if png:
            parts.append(f'<img alt="score distribution" src="data:image/png;base64,{png}">')
        test_rows = ""
        for gid, (passed, total) in a["tests"].items():
            rate = passed / total if total else 0.0
            rows.append([assignment, "test pass rate", gid, f"{rate:.3f}", total, ""])
            test_rows += f"<tr><td>{e(gid)}</td><td>{rate:.0%}</td><td>{passed} / {total}</td></tr>"
        if test_rows:
            parts.append(
                "<h3>Tests</h3><table><tr><th>test</th><th>pass rate</th><th>passed</th></tr>"
                f"{test_rows}</table>"
            )
        mistake_rows = ""
        for (gid, label), n in a["mistakes"].most_common(TOP_MISTAKES):
            who = a["examples"][(gid, label)]
            rows.append([assignment, "mistake", f"{gid}: {label}", "", n, "; ".join(who)])
            mistake_rows += (
                f"<tr><td>{n}</td><td>{e(gid)}</td><td>{e(label)}</td>"
                f"<td>{e(', '.join(who))}</td></tr>"
            )
        parts.append(
            "<h3>Most frequent mistakes</h3>"
            + (
                "<table><tr><th>students</th><th>test</th><th>mistake</th><th>for example</th>"
                f"</tr>{mistake_rows}</table>"
                if mistake_rows
                else "<p>No listed mistake was recognised.</p>"
            )
        )
        problem_rows = ""
        for student, status, why in a["problems"]:
            rows.append([assignment, "needs a person", student, status, "", why])
            problem_rows += f"<tr><td>{e(student)}</td><td>{e(status)}</td><td>{e(why)}</td></tr>"
        parts.append(
            "<h3>Submissions that need a person</h3>"
            + (
                f"<table><tr><th>student</th><th>status</th><th>why</th></tr>{problem_rows}</table>"
                if problem_rows
                else "<p>None.</p>"
            )
        )
        sections.append("".join(parts))
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>Class report</title>'
        "<style>body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;"
        "padding:0 1rem}table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid "
        "#ccc;padding:.25rem .6rem;text-align:left}</style></head>\n<body><h1>Class report</h1>"
        + "".join(sections)
        + "</body></html>\n"
    )
    (out / "class_report.html").write_text(page, encoding="utf-8")
    with open(out / "class_report.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["assignment", "section", "item", "value", "count", "students"])
        w.writerows(rows)
