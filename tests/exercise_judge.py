"""Judge a notebook's exercises as the grader does, with any implementation standing in.

The hidden block of a solution's test cell runs once with the reference and once with the
implementation under test, exactly as in a kernel (records under ``COURSE_RECORD_DIR``);
``autograder.compare`` judges the two sets of records, the source check is applied as the
grader's worker applies it, and the visible part of the cell runs too. Test modules build one
:class:`ExerciseJudge` per notebook (see tests/test_vae_exercises.py).
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from autograder.compare import Verdict, compare_all, load_records
from autograder.references import cells_of, solution_namespace
from autograder.source_checks import check_definition, definitions
from helpers import grading

IMPORTS = "import math\nimport numpy as np\nimport torch\nimport torch.nn.functional as F\n"


@dataclass
class Outcome:
    verdicts: dict[str, Verdict]
    source_problem: str  # what autograder.source_checks says about the definition
    visible_error: str

    @property
    def failures(self) -> dict[str, str]:
        return {k: v.message for k, v in self.verdicts.items() if not v.passed}

    @property
    def passed(self) -> bool:
        return not self.failures and not self.source_problem and not self.visible_error


def as_cell(obj):
    """``obj`` as if a notebook cell had defined it.

    A class gets ``__module__ == "__main__"`` (what ``check_defined_here`` reads); anything
    else is returned as it is.
    """
    if isinstance(obj, type):
        return type(obj.__name__, (obj,), {"__module__": "__main__"})
    return obj


def assert_feedback(message: str) -> None:
    """A failure message says what was expected, what came back and on what input."""
    for word in ("expected:", "got:", "input:"):
        assert word in message, f"{word!r} missing from feedback:\n{message}"


class ExerciseJudge:
    """The reference and the test cells of ``solutions/<name>.ipynb``.

    ``main``: the namespace is a notebook's ``__main__``, and the reference's functions and
    classes count as defined there (``__module__``, what ``check_defined_here`` reads).
    ``classes_as_cells``: a class under test is re-made as defined by a cell (:func:`as_cell`).
    ``all_names``: the namespace holds everything the reference cells define, not only the
    exercises, and a function under test that has its own globals sees them too (an alternative
    that calls the other exercises by name). ``exercises``: by default every exercise with a
    test cell that the reference defines.
    """

    def __init__(
        self,
        name: str,
        exercises: tuple[str, ...] | None = None,
        imports: str = IMPORTS,
        *,
        main: bool = False,
        classes_as_cells: bool = False,
        all_names: bool = False,
    ) -> None:
        self.name, self.imports = name, imports
        self.main, self.classes_as_cells, self.all_names = main, classes_as_cells, all_names
        self.ref = solution_namespace(name)  # also registers the reference sources in linecache
        if main:  # the reference's functions and classes, as defined by a notebook's cells
            for key, obj in vars(self.ref).items():
                defined = callable(obj) and getattr(obj, "__qualname__", "") == key
                if defined and getattr(obj, "__module__", "") in (None, "builtins"):
                    obj.__module__ = "__main__"
        self.cells: dict[str, tuple[str, str]] = {}  # exercise -> (visible part, hidden block)
        for cell in cells_of(name, "test"):
            exercise = re.match(r"#\s*Tests:\s*(\w+)", cell.source.lstrip()).group(1)
            visible, _, rest = cell.source.partition("### BEGIN HIDDEN TESTS")
            self.cells[exercise] = (visible, rest.partition("### END HIDDEN TESTS")[0])
        # by default: every test cell's exercise that the reference defines
        self.exercises = exercises or tuple(ex for ex in self.cells if hasattr(self.ref, ex))

    def namespace(self, exercise: str, fn, extra: dict | None = None, source: str = "") -> dict:
        """The notebook's namespace: imports, the reference answers, ``fn`` as ``exercise``.

        ``extra`` names are added last; ``source`` (an answer cell's text) then runs in it.
        """
        ns: dict = {"__name__": "__main__"} if self.main else {}
        exec(self.imports, ns)
        names = (
            vars(self.ref) if self.all_names else {k: getattr(self.ref, k) for k in self.exercises}
        )
        ns.update(names)
        ns[exercise] = as_cell(fn) if self.classes_as_cells else fn
        if self.all_names and getattr(fn, "__globals__", None) is not None:
            for k, v in names.items():  # an alternative calls the other exercises by name
                fn.__globals__.setdefault(k, v)
        ns.update(extra or {})
        if source:
            exec(compile(source, f"<answer: {exercise}>", "exec"), ns)
        return ns

    def record(self, exercise: str, ns: dict, directory: Path, mp: pytest.MonkeyPatch) -> dict:
        """Run the hidden block of ``exercise`` in ``ns``; its records, by key."""
        mp.setenv("COURSE_RECORD_DIR", str(directory))
        mp.setattr(grading, "_counts", {})  # occurrence numbers start at 0 for every run
        exec(compile(self.cells[exercise][1], f"<hidden: {exercise}>", "exec"), ns)
        records, problems = load_records(directory)
        assert not problems
        return records

    def reference_records(self, exercise: str, directory: Path) -> dict:
        """The reference's records of ``exercise``."""
        with pytest.MonkeyPatch.context() as mp:
            ns = self.namespace(exercise, getattr(self.ref, exercise))
            return self.record(exercise, ns, directory, mp)

    def references(self, tmp_path_factory) -> dict[str, dict]:
        """The reference's records of every exercise (for a module-scoped fixture)."""
        return {
            ex: self.reference_records(ex, tmp_path_factory.mktemp(f"ref-{ex}"))
            for ex in self.exercises
        }

    def judge(
        self,
        exercise: str,
        fn,
        reference: dict,
        directory: Path,
        mp,
        extra: dict | None = None,
        source: str = "",
    ) -> Outcome:
        """Hidden records compared with ``reference``, the source check, the visible tests.

        ``extra`` and ``source`` as in :meth:`namespace`. The source check reads the solution's
        answer cells for the reference, else ``fn``'s ``__source__`` (set by tests that compile
        alternatives as cells), else ``inspect.getsource``; it is
        skipped ("") when the hidden block names no definition or there is no ``fn``.
        """
        ns = self.namespace(exercise, fn, extra, source)
        verdicts = compare_all(self.record(exercise, ns, directory, mp), reference)
        target = next((r.meta for r in reference.values() if r.meta.get("defines")), None)
        problem = ""
        if target is not None and fn is not None:
            defined = target["defines"]
            if fn is getattr(self.ref, exercise, None):  # as the grader reads the solution
                defs = definitions(cells_of(self.name, "solution"))
            elif getattr(fn, "__source__", None) is not None:
                defs = definitions([{"source": fn.__source__}])
            else:
                defs = {defined: inspect.getsource(fn)} if defined == exercise else {}
            problem = check_definition(defs, defined, bool(target.get("vectorised")))
        try:
            visible = compile(self.cells[exercise][0], f"<visible: {exercise}>", "exec")
            exec(visible, self.namespace(exercise, fn, extra, source))
            visible_error = ""
        except Exception as exc:  # noqa: BLE001 - reported by the assertions
            visible_error = f"{type(exc).__name__}: {exc}"
        return Outcome(verdicts, problem, visible_error)


def judge_fixtures(*judges: ExerciseJudge, pair: bool = False):
    """The ``reference`` (module scope: records by exercise) and ``judge`` fixtures of a module.

    ``judge(exercise, fn, source="", **extra)`` judges ``fn`` (see :meth:`ExerciseJudge.judge`)
    with the judge whose notebook has ``exercise``; it returns the :class:`Outcome`, or with
    ``pair`` the tuple (failure messages of the hidden cases, error of the visible tests or "").
    Use as ``reference, judge = judge_fixtures(JUDGE)``.
    """
    by_exercise = {ex: j for j in judges for ex in j.exercises}

    @pytest.fixture(scope="module")
    def reference(tmp_path_factory) -> dict[str, dict]:
        return {ex: recs for j in judges for ex, recs in j.references(tmp_path_factory).items()}

    @pytest.fixture
    def judge(reference, tmp_path, monkeypatch):
        def run(exercise: str, fn, source: str = "", **extra):
            outcome = by_exercise[exercise].judge(
                exercise, fn, reference[exercise], tmp_path / "student", monkeypatch, extra, source
            )
            return (outcome.failures, outcome.visible_error) if pair else outcome

        return run

    return reference, judge
