"""The mistake library of every notebook, and what its hidden cases can tell apart.

Generic over ``solutions/``: a new notebook gets these tests for free.

* every exercise lists classic mistakes, written as a student would write the exercise;
* every listed mistake fails the hidden cases and is named (judged by ``autograder.compare``);
* every argument of every exercise changes the outcome of some hidden case: replaced by its
  default, or frozen to the first value it is called with, the exercise must fail;
* (slow) every listed mistake, submitted through the real grader, is named first in its test's
  feedback. The mistakes are batched: submission k carries the k-th mistake of every exercise.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import nbformat
import pytest

from autograder import paths
from autograder.compare import _matching_mistake, load_records
from tests.notebook_harness import (
    gid,
    graded_cells,
    judge,
    mistakes,
    namespace,
    notebook,
    record,
)

NAMES = paths.assignments()

# Notebooks whose hidden tests still grade through a probe *function* (``grade(name, _probe,
# defines=...)``, the form AUTHORING.md described before ``probe=``): their mistakes are written
# at the probe's level, so they cannot be submitted as a student's answer here. Each notebook's
# own tests/test_<topic>_exercises.py checks that its mistakes fail and are named. Strict: the
# day a notebook moves to ``probe=``, its xfail turns into a failure that asks to drop it here.
PROBE_FUNCTIONS = {
    "05_vae",
    "06_gan",
    "08_cgan",
    "09_wgan_gp",
    "10_pix2pix",
    "11_style_transfer",
}
STUDENT_LEVEL = [
    pytest.param(
        n,
        marks=pytest.mark.xfail(
            strict=True, reason="mistakes at a probe function's level; see PROBE_FUNCTIONS"
        ),
    )
    if n in PROBE_FUNCTIONS
    else n
    for n in NAMES
]


def _exercises(name):
    """(test cell, grade call) for every graded exercise: a grade() named after a name that an
    answer cell defines (not, e.g., 07's check that the student's own losses were trained)."""
    answers = namespace(name)
    return [
        (c, g)
        for c in graded_cells(name)
        for g in c.graded
        if g.name.isidentifier() and g.name in answers
    ]


@pytest.mark.parametrize("name", STUDENT_LEVEL)
def test_every_exercise_lists_classic_mistakes_at_the_students_level(name):
    found = _exercises(name)
    assert found, name
    for _cell, g in found:
        assert g.mistakes, f"{name}: {g.name} lists no classic mistake"
        assert g.fn == g.name, (
            f"{name}: grade({g.name!r}, {g.fn}, ...): pass the exercise itself and put the harness "
            "in probe=, so that the mistakes are written as a student would write the exercise"
        )


def _reference(name, cell, tmp_path: Path) -> Path:
    folder = tmp_path / f"ref-{cell.gid}"
    record(name, cell.hidden, folder)
    records, problems = load_records(folder)
    broken = {k: r.meta["error"] for k, r in records.items() if "error" in r.meta}
    assert records and not problems and not broken, f"{name}: the reference fails: {broken}"
    return folder


@pytest.mark.parametrize("name", STUDENT_LEVEL)
def test_every_listed_mistake_fails_and_is_named(name, tmp_path):
    for cell, g in _exercises(name):
        ref = _reference(name, cell, tmp_path)
        reference, _ = load_records(ref)
        for i, (label, wrong) in enumerate(mistakes(name, cell, g).items()):
            folder = tmp_path / f"{cell.gid}-{i}"
            record(name, cell.hidden, folder, {g.name: wrong})
            verdicts = {k: v for k, v in judge(folder, ref).items() if k.startswith(f"{g.name}#")}
            failed = [k for k, v in verdicts.items() if not v.passed]
            assert failed, f"{name}: the mistake {label!r} of {g.name} passes every hidden case"
            got, _ = load_records(folder)
            named = {_matching_mistake(got[k], reference[k]) for k in failed if k in got}
            assert label in named, f"{name}: {g.name} mistake {label!r} is not named: {named}"


_MISSING = inspect.Parameter.empty


def _freeze(fn, pname: str):
    """``fn`` with argument ``pname`` replaced by its default, or by the first value it gets."""
    target = fn.__init__ if inspect.isclass(fn) else fn
    sig = inspect.signature(target)
    default = sig.parameters[pname].default
    first: list = []

    def fixed(b):
        if default is not _MISSING:
            b.arguments[pname] = default
        elif pname in b.arguments:
            if not first:
                first.append(b.arguments[pname])
            b.arguments[pname] = first[0]
        return b

    if inspect.isclass(fn):

        def __init__(self, *args, **kwargs):
            b = fixed(sig.bind(self, *args, **kwargs))
            fn.__init__(*b.args, **b.kwargs)

        return type(fn.__name__, (fn,), {"__init__": __init__})

    def frozen(*args, **kwargs):
        b = fixed(sig.bind(*args, **kwargs))
        return fn(*b.args, **b.kwargs)

    return frozen


def _arguments(fn) -> list[str]:
    target = fn.__init__ if inspect.isclass(fn) else fn
    return [
        p.name
        for p in inspect.signature(target).parameters.values()
        if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]


@pytest.mark.parametrize("name", NAMES)
def test_every_argument_of_every_exercise_changes_some_hidden_case(name, tmp_path):
    ns = namespace(name)
    ignored = []
    for cell, g in _exercises(name):
        ref = _reference(name, cell, tmp_path)
        fn = ns[g.name]
        for pname in _arguments(fn):
            folder = tmp_path / f"{cell.gid}-{pname}"
            record(name, cell.hidden, folder, {g.name: _freeze(fn, pname)})
            verdicts = [v for k, v in judge(folder, ref).items() if k.startswith(f"{g.name}#")]
            if all(v.passed for v in verdicts):
                ignored.append(f"{g.name}({pname})")
    assert not ignored, f"{name}: no hidden case depends on {ignored}"


def _answer_cell(name: str, cell, g, label: str, wrong) -> str:
    """An answer cell that makes exercise ``g.name`` commit the listed mistake ``label``."""
    alias = f"_WRONG_{g.name}"
    if inspect.isclass(wrong):
        definition = f"class {g.name}({alias}):\n    pass\n"
    else:
        definition = f"def {g.name}(*args, **kwargs):\n    return {alias}(*args, **kwargs)\n"
    return f"{cell.helpers}\n\n{alias} = ({g.mistakes})[{label!r}]\n\n\n{definition}"


def _mistake_submissions(name: str) -> list[tuple[object, dict[str, str]]]:
    """Submission k carries the k-th listed mistake of every exercise: (notebook, gid -> label)."""
    listed = [(c, g, list(mistakes(name, c, g).items())) for c, g in _exercises(name)]
    out = []
    for k in range(max(len(m) for *_, m in listed)):
        nb, expect = notebook(name), {}
        for cell, g, items in listed:
            if k >= len(items):
                continue
            label, wrong = items[k]
            answer = next(c for c in nb.cells if gid(c) == g.name)
            answer.source = _answer_cell(name, cell, g, label, wrong)
            expect[cell.gid] = label
        out.append((nb, expect))
    return out


@pytest.mark.slow
def test_every_listed_mistake_is_named_first_in_the_graders_feedback(tmp_path):
    from autograder.grade import Grader, Options

    subs, expected = tmp_path / "subs", {}
    for name in [n for n in NAMES if n not in PROBE_FUNCTIONS]:
        for k, (nb, expect) in enumerate(_mistake_submissions(name)):
            student = f"m{k}"
            (subs / student).mkdir(parents=True, exist_ok=True)
            nbformat.write(nb, subs / student / f"{name}.ipynb")
            expected[(student, name)] = expect
    results = Grader(tmp_path / "out", Options(jobs=2, progress=False)).run(subs)
    by = {(r["student_id"], r["assignment"]): r for r in results}
    unnamed = []
    for key, expect in expected.items():
        tests = by[key]["tests"]
        for test_id, label in expect.items():
            t = tests[test_id]
            if t["passed"] or not t["messages"] or t["messages"][0] != f"Classic mistake: {label}":
                unnamed.append((key, test_id, label, t["messages"][:2]))
    assert not unnamed, unnamed
