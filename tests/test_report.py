"""What the instructor reads: grade tables in notebook order, the class report, safe exports."""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys

from autograder import gradebook, paths, report

A = "04_sparse_autoencoder"
ORDER = ["test_l1_sparsity", "test_unit_activation", "test_kl_sparsity", "test_sparse_ae_loss"]
POINTS = dict(zip(ORDER, (2.0, 1.0, 3.0, 2.0)))


def _result(student, failed=(), mistakes=None, status="graded", reason=""):
    tests = {
        gid: {
            "points": 0.0 if gid in failed else POINTS[gid],
            "max_points": POINTS[gid],
            "passed": gid not in failed,
            "messages": [],
            "mistakes": (mistakes or {}).get(gid, []),
        }
        for gid in ORDER
    }
    score = sum(t["points"] for t in tests.values())
    return {
        "student_id": student,
        "assignment": A,
        "status": status,
        "reason": reason,
        "score": score,
        "max_score": 8.0,
        "tests": tests,
        "notes": [],
        "flags": [],
    }


AVG = "averaged over the units instead of summed"


def _class():
    return [
        _result("ann"),
        _result("bob", ["test_kl_sparsity"], {"test_kl_sparsity": [AVG]}),
        _result("cem", ["test_kl_sparsity"], {"test_kl_sparsity": [AVG]}),
        _result("dan", ["test_l1_sparsity"], {"test_l1_sparsity": ["summed instead of averaged"]}),
        _result("eve", ORDER, status="timeout", reason="cell 12 did not stop when interrupted"),
        {
            "student_id": "fay",
            "assignment": A,
            "status": "invalid_notebook",
            "reason": "not a readable notebook",
            "score": 0.0,
            "max_score": 8.0,
            "tests": {},
            "notes": [],
            "flags": [],
        },
    ]


def test_grade_columns_follow_the_notebook(tmp_path):
    report.write_all(tmp_path, _class(), {})
    for path in (tmp_path / "grades.csv", tmp_path / "grades" / f"{A}.csv"):
        header = next(csv.reader(open(path)))
        assert header[-4:] == ORDER, header


def test_class_report_shows_distribution_pass_rates_mistakes_and_problems(tmp_path):
    report.write_all(tmp_path, _class(), {})
    page = (tmp_path / "class_report.html").read_text()
    assert 'alt="score distribution" src="data:image/png;base64,' in page
    rates = re.findall(r"<tr><td>(test_\w+)</td><td>(\d+)%</td>", page)
    assert rates == [
        ("test_l1_sparsity", "60"),
        ("test_unit_activation", "80"),
        ("test_kl_sparsity", "40"),
        ("test_sparse_ae_loss", "80"),
    ]
    top = page.index(AVG)
    assert top < page.index("summed instead of averaged</td>"), "commonest mistake first"
    assert "<td>2</td><td>test_kl_sparsity</td>" in page and "bob, cem" in page
    for who, why in (("eve", "did not stop"), ("fay", "not a readable notebook")):
        assert re.search(rf"<td>{who}</td><td>\w+</td><td>[^<]*{why}", page), who
    rows = list(csv.DictReader(open(tmp_path / "class_report.csv")))
    mistake = next(r for r in rows if r["section"] == "mistake")
    assert mistake["item"] == f"test_kl_sparsity: {AVG}" and mistake["count"] == "2"
    assert mistake["students"] == "bob; cem"
    assert {r["item"] for r in rows if r["section"] == "needs a person"} == {"eve", "fay"}


def _readme_export_command() -> str:
    text = (paths.ROOT / "README.md").read_text()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip().startswith("nbgrader export")]
    assert len(lines) == 1, lines
    return lines[0]


def test_the_readme_export_command_works_and_keeps_grades_csv(tmp_path):
    out = tmp_path / "out" / "week4"
    results = _class()
    report.write_all(out, results, {})
    gradebook.record(gradebook.default_db_url(out), {A: paths.SOLUTIONS / f"{A}.ipynb"}, results)
    before = (out / "grades.csv").read_bytes()
    command = _readme_export_command()
    env = {
        **os.environ,
        "PATH": f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ['PATH']}",
    }
    for cwd in (tmp_path, out):  # from where the README says, and from inside OUT
        run_in = (
            command
            if cwd == tmp_path
            else command.replace("out/week4/", "").replace("$PWD/out/week4", "$PWD")
        )
        done = subprocess.run(run_in, shell=True, cwd=cwd, env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-2000:]
        assert (out / "grades.csv").read_bytes() == before
    rows = list(csv.DictReader(open(out / "nbgrader_grades.csv")))
    assert {r["student_id"]: float(r["score"]) for r in rows}["bob"] == 5.0
