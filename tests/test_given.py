"""One mistake, one deduction: ``grade(..., given=...)`` and the grader's reference prelude.

The fast tests check how the grader rewrites the test cells (hidden block first, a prelude with
the reference versions of earlier exercises only). The slow one grades a small class through the
real grader: a wrong ``kl_sparsity`` costs its own test and nothing else, and a submission that
reads the injected prelude from an IPython hook to rewrite its earlier records gains nothing.
"""

from __future__ import annotations

import ast
import re

import nbformat
import pytest

from autograder import paths
from autograder.restore import given_names, prepare_tests, restore

NAME = "04_sparse_autoencoder"
GIVEN = ["l1_sparsity", "unit_activation", "kl_sparsity"]


def _source():
    return nbformat.read(paths.SOLUTIONS / f"{NAME}.ipynb", as_version=4)


def _gid(cell) -> str:
    return cell.metadata.get("nbgrader", {}).get("grade_id", "")


def _prelude_args(src: str):
    m = re.search(r"^__course_prelude\((.*)\)$", src, re.M)
    return ast.literal_eval(f"({m.group(1)})") if m else None


def test_sparse_ae_loss_is_graded_with_the_reference_parts():
    src = _source()
    cell = next(c for c in src.cells if _gid(c) == "test_sparse_ae_loss")
    assert given_names(cell.source) == GIVEN


def test_only_the_dependent_test_cell_gets_a_prelude_and_hidden_checks_run_first():
    src = _source()
    nb, _ = restore(src, src)
    originals, notes = prepare_tests(nb, src)
    assert not notes
    for i, original in originals.items():
        cell = nb.cells[i]
        hidden_at = cell.source.index("### END HIDDEN TESTS")
        visible_at = cell.source.index("# Tests:")
        assert hidden_at < visible_at, _gid(cell)
        assert original.lstrip().startswith("# Tests:")
        args = _prelude_args(cell.source)
        if _gid(cell) != "test_sparse_ae_loss":
            assert args is None, _gid(cell)
            continue
        names, code = args
        assert names == GIVEN
        defined = {n.name for n in ast.parse(code).body if isinstance(n, ast.FunctionDef)}
        assert defined == set(GIVEN), "the prelude must not carry the exercise under test"
        compile(cell.source, "<test>", "exec")


def test_a_reference_is_never_given_before_its_own_test_cell_ran():
    src = _source()
    nb, _ = restore(src, src)
    ids = [_gid(c) for c in nb.cells]
    sae = nb.cells.pop(ids.index("test_sparse_ae_loss"))
    nb.cells.insert(ids.index("test_kl_sparsity"), sae)  # moved above the kl_sparsity test
    originals, notes = prepare_tests(nb, src)
    names, code = _prelude_args(next(c.source for c in nb.cells if _gid(c) == _gid(sae)))
    assert names == ["l1_sparsity", "unit_activation"] and "def kl_sparsity" not in code
    assert any("kl_sparsity" in n and "own version" in n for n in notes)


def test_an_answer_cell_that_also_defines_a_later_exercise_is_refused():
    src = _source()
    kl = next(c for c in src.cells if _gid(c) == "kl_sparsity")
    kl.source += "\n\ndef sparse_ae_loss(*args):\n    return 0\n"
    nb, _ = restore(src, src)
    with pytest.raises(ValueError, match="answer cell of its own"):
        prepare_tests(nb, src)


HOOK = r"""
import ast as _ast
import re as _re

import helpers.grading as _grading
import torch as _torch
import torch.nn.functional as _F

_seen = {}


def _pre(info):
    if 'grade(\n    "kl_sparsity"' in info.raw_cell:
        _seen["kl"] = info.raw_cell


def _post(result):
    # The cell that grades sparse_ae_loss carries the references: take kl_sparsity's, then
    # rerun kl_sparsity's hidden checks with it to overwrite that exercise's records.
    m = _re.search(r"^__course_prelude\((.*)\)$", result.info.raw_cell, _re.M)
    if not m or "kl" not in _seen:
        return
    names, source = _ast.literal_eval("(" + m.group(1) + ")")
    ref = {"torch": _torch, "F": _F}
    exec(source, ref)
    user = get_ipython().user_ns
    user["kl_sparsity"] = ref["kl_sparsity"]
    hidden = _seen["kl"].split("### BEGIN HIDDEN TESTS")[1].split("### END HIDDEN TESTS")[0]
    _grading._counts["kl_sparsity"] = 0
    exec(hidden, user)


get_ipython().events.register("pre_run_cell", _pre)
get_ipython().events.register("post_run_cell", _post)
"""


def _submission(hook: bool):
    nb = _source()
    kl = next(c for c in nb.cells if _gid(c) == "kl_sparsity")
    assert "return kl.sum()" in kl.source
    kl.source = kl.source.replace("return kl.sum()", "return kl.mean()")
    if hook:
        at = next(i for i, c in enumerate(nb.cells) if _gid(c) == "l1_sparsity")
        nb.cells.insert(at, nbformat.v4.new_code_cell(HOOK))
    return nb


@pytest.mark.slow
def test_an_earlier_mistake_costs_once_and_the_prelude_earns_nothing(tmp_path):
    from autograder.grade import Grader, Options

    subs = tmp_path / "subs"
    for who, hook in (("wrong_kl", False), ("hooked", True)):
        (subs / who).mkdir(parents=True)
        nbformat.write(_submission(hook), subs / who / f"{NAME}.ipynb")
    out = tmp_path / "out"
    results = Grader(out, Options(jobs=2, progress=False)).run(subs)
    by = {r["student_id"]: r for r in results}
    for who in ("wrong_kl", "hooked"):
        tests = by[who]["tests"]
        assert tests["test_sparse_ae_loss"]["passed"], (who, tests["test_sparse_ae_loss"])
        assert tests["test_l1_sparsity"]["passed"] and tests["test_unit_activation"]["passed"]
        kl = tests["test_kl_sparsity"]
        assert not kl["passed"] and kl["points"] == 0, (who, kl)
        html = (out / "feedback" / who / f"{NAME}.html").read_text()
        secrets = ["return kl.sum()"] + ["__course_prelude"] * (who == "wrong_kl")
        for secret in secrets:  # the hooked submission's own code names the prelude
            assert secret not in html, (who, secret)
    named = by["wrong_kl"]["tests"]["test_kl_sparsity"]["messages"][0]
    assert named == "Classic mistake: averaged over the units instead of summed"
    assert by["hooked"]["score"] == by["wrong_kl"]["score"] == by["wrong_kl"]["max_score"] - 3
    assert by["wrong_kl"]["status"] == "graded" and by["hooked"]["status"] == "flagged"
    assert any("outside their own test cell" in f for f in by["hooked"]["flags"])
    hooked = by["hooked"]["tests"]["test_kl_sparsity"]["messages"]
    assert any("not recorded by this test cell" in m for m in hooked), hooked
