"""The course notebooks: release pipeline, contract, hygiene, nbgrader validate, grading."""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pytest

from autograder import paths
from autograder.restore import is_test

NAMES = paths.assignments()
SPEC = paths.ROOT.parent / "shared" / "EXERCISES.md"


def _nb(path: Path):
    return nbformat.read(path, as_version=4)


def test_every_solution_has_a_student_version():
    assert NAMES, "no solution notebooks found"
    assert sorted(p.stem for p in paths.NOTEBOOKS.glob("*.ipynb")) == NAMES


@pytest.mark.parametrize(
    "path",
    sorted(paths.SOLUTIONS.glob("*.ipynb")) + sorted(paths.NOTEBOOKS.glob("*.ipynb")),
    ids=lambda p: f"{p.parent.name}/{p.name}",
)
def test_committed_notebooks_carry_no_outputs(path):
    nb = json.loads(path.read_text())
    dirty = [i for i, c in enumerate(nb["cells"]) if c.get("outputs") or c.get("execution_count")]
    assert not dirty, f"{path.name}: cells {dirty} carry outputs; clear them before committing"


@pytest.mark.parametrize("name", NAMES)
def test_student_version_leaks_no_answer_and_no_hidden_test(name):
    text = (paths.NOTEBOOKS / f"{name}.ipynb").read_text()
    for marker in (
        "BEGIN SOLUTION",
        "END SOLUTION",
        "BEGIN HIDDEN TESTS",
        "helpers.grading",
        "mistakes=",
    ):
        assert marker not in text, f"{name}: student version contains {marker!r}"
    solutions = [
        c
        for c in _nb(paths.NOTEBOOKS / f"{name}.ipynb").cells
        if c.metadata.get("nbgrader", {}).get("solution") and c.cell_type == "code"
    ]
    assert solutions and all("raise NotImplementedError()" in c.source for c in solutions)


@pytest.mark.parametrize("name", NAMES)
def test_layout_setup_first_selfcheck_last_tests_headed(name):
    nb = _nb(paths.SOLUTIONS / f"{name}.ipynb")
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert "setup" in code[0].metadata.get("tags", []) and paths.REPO_PLACEHOLDER in code[0].source
    assert "report()" in code[-1].source
    tests = [c for c in nb.cells if is_test(c)]
    assert tests, f"{name} has no autograded test cell"
    for c in tests:
        gid = c.metadata["nbgrader"]["grade_id"]
        assert c.source.lstrip().startswith("# Tests:"), (
            f"{gid}: first line must be '# Tests: <exercise>'"
        )
        assert "### BEGIN HIDDEN TESTS" in c.source and "grade(" in c.source, (
            f"{gid}: no hidden grade() call"
        )
        assert c.metadata["nbgrader"].get("locked") and c.metadata["nbgrader"].get("points", 0) > 0


@pytest.mark.skipif(not SPEC.exists(), reason="../shared/EXERCISES.md not present")
@pytest.mark.parametrize("name", NAMES)
def test_contract_names_are_defined_in_the_solution(name):
    spec = SPEC.read_text()
    section = next(s for s in re.split(r"\n## ", spec)[1:] if s.split()[0] == name)
    wanted = re.findall(r"^- `(?:class )?([A-Za-z_][A-Za-z0-9_]*)", section, re.M)
    text = (paths.SOLUTIONS / f"{name}.ipynb").read_text()
    missing = [n for n in wanted if not re.search(rf"(def|class) {n}\b", text)]
    assert not missing, f"{name}: contract names not defined: {missing}"


@pytest.mark.slow
def test_notebooks_equal_a_fresh_release(tmp_path):
    from autograder.release import release

    written = release(out=tmp_path / "notebooks", root=tmp_path / "course")
    for path in written:
        fresh, committed = path.read_text(), (paths.NOTEBOOKS / path.name).read_text()
        assert fresh == committed, (
            f"notebooks/{path.name} differs from a fresh `make student`: run it"
        )


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_nbgrader_validate_solution_passes_and_student_version_fails(name):
    from autograder.validate import validate

    ok, output = validate(paths.SOLUTIONS / f"{name}.ipynb")
    assert ok, f"solution {name} fails nbgrader validate:\n{output[-3000:]}"
    ok, output = validate(paths.NOTEBOOKS / f"{name}.ipynb", invert=True)
    assert ok, (
        f"student version of {name} passes some graded test with no answer:\n{output[-3000:]}"
    )


@pytest.mark.slow
def test_grader_gives_solutions_full_marks_and_stubs_zero(tmp_path):
    from autograder.grade import Grader, Options

    subs = tmp_path / "subs"
    for name in NAMES:
        for who, folder in (("solved", paths.SOLUTIONS), ("blank", paths.NOTEBOOKS)):
            (subs / who).mkdir(parents=True, exist_ok=True)
            (subs / who / f"{name}.ipynb").write_bytes((folder / f"{name}.ipynb").read_bytes())
    results = Grader(tmp_path / "out", Options(jobs=2, progress=False)).run(subs)
    by = {(r["student_id"], r["assignment"]): r for r in results}
    for name in NAMES:
        solved, blank = by[("solved", name)], by[("blank", name)]
        assert solved["status"] == "graded", (name, solved["reason"], solved["flags"])
        assert solved["score"] == solved["max_score"] > 0, (name, solved["tests"])
        assert blank["score"] == 0 and blank["max_score"] == solved["max_score"], (
            name,
            blank["tests"],
        )
        for gid, t in blank["tests"].items():
            assert not t["passed"] and t["messages"], (name, gid)
