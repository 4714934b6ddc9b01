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
from autograder.source_checks import check_definition
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


class ExerciseJudge:
    """The reference and the test cells of ``solutions/<name>.ipynb``."""

    def __init__(self, name: str, exercises: tuple[str, ...], imports: str = IMPORTS) -> None:
        self.name, self.exercises, self.imports = name, exercises, imports
        self.ref = solution_namespace(name)
        self.cells: dict[str, tuple[str, str]] = {}  # exercise -> (visible part, hidden block)
        for cell in cells_of(name, "test"):
            exercise = re.match(r"#\s*Tests:\s*(\w+)", cell.source.lstrip()).group(1)
            visible, _, rest = cell.source.partition("### BEGIN HIDDEN TESTS")
            self.cells[exercise] = (visible, rest.partition("### END HIDDEN TESTS")[0])

    def namespace(self, exercise: str, fn, extra: dict | None = None) -> dict:
        """The notebook's namespace: imports, the reference answers, ``fn`` as ``exercise``."""
        ns: dict = {}
        exec(self.imports, ns)
        ns.update({k: getattr(self.ref, k) for k in self.exercises})
        ns[exercise] = fn
        ns.update(extra or {})
        return ns

    def record(self, exercise: str, ns: dict, directory: Path, mp: pytest.MonkeyPatch) -> dict:
        """Run the hidden block of ``exercise`` in ``ns``; its records, by key."""
        mp.setenv("COURSE_RECORD_DIR", str(directory))
        mp.setattr(grading, "_counts", {})  # occurrence numbers start at 0 for every run
        exec(compile(self.cells[exercise][1], f"<hidden: {exercise}>", "exec"), ns)
        records, problems = load_records(directory)
        assert not problems
        return records

    def references(self, tmp_path_factory) -> dict[str, dict]:
        """The reference's records of every exercise (for a module-scoped fixture)."""
        with pytest.MonkeyPatch.context() as mp:
            return {
                ex: self.record(
                    ex,
                    self.namespace(ex, getattr(self.ref, ex)),
                    tmp_path_factory.mktemp(f"ref-{ex}"),
                    mp,
                )
                for ex in self.exercises
            }

    def judge(self, exercise: str, fn, reference: dict, directory: Path, mp) -> Outcome:
        """Hidden records compared with ``reference``, the source check, the visible tests."""
        ns = self.namespace(exercise, fn)
        verdicts = compare_all(self.record(exercise, ns, directory, mp), reference)
        target = next(r.meta for r in reference.values() if r.meta.get("defines"))
        source = {target["defines"]: inspect.getsource(fn)} if target["defines"] == exercise else {}
        problem = check_definition(source, target["defines"], bool(target.get("vectorised")))
        try:
            visible = compile(self.cells[exercise][0], f"<visible: {exercise}>", "exec")
            exec(visible, self.namespace(exercise, fn))
            visible_error = ""
        except Exception as exc:  # noqa: BLE001 - reported by the assertions
            visible_error = f"{type(exc).__name__}: {exc}"
        return Outcome(verdicts, problem, visible_error)
