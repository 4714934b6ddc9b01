"""Grade one submission: restore, run sandboxed, compare outside, report.

Run as ``python -m autograder.worker JOB.json RESULT.json`` by the grader, one
process per submission, so that nothing a submission does to this process (a flood
of output, a crash in a library) can reach the others.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
import warnings
from dataclasses import asdict
from pathlib import Path

import nbformat

from autograder import feedback
from autograder.compare import _matching_mistake, compare_all, load_records
from autograder.execute import run_notebook
from autograder.records import save_records
from autograder.redact import redact_submission
from autograder.restore import is_test, prepare_tests, restore
from autograder.sandbox import Limits, Sandbox
from autograder.source_checks import check_definition, definitions, graded_calls
from helpers.selfcheck import describe_error

MAX_NOTEBOOK_BYTES = 20 << 20

INTEGRITY_PROBE = r"""
import json as _j, sys as _s
_m = {}


def _where(f):
    c = getattr(f, "__code__", None)
    return getattr(f, "__module__", None), getattr(c, "co_filename", "builtin")
for _mod, _names in {"torch": ["allclose", "equal", "isclose"], "numpy": ["allclose", "isclose", "array_equal"],
                     "helpers.grading": ["grade", "run_case", "save_record"],
                     "helpers.checks": ["check_close", "fail"]}.items():
    _mm = _s.modules.get(_mod)
    for _n in _names:
        if _mm is not None and hasattr(_mm, _n):
            _m[f"{_mod}.{_n}"] = _where(getattr(_mm, _n))
print("__INTEGRITY__" + _j.dumps(_m))
"""


def empty_result(job: dict, status: str, reason: str = "", **extra) -> dict:
    return {
        "student_id": job["student"],
        "assignment": job["assignment"],
        "status": status,
        "reason": reason,
        "score": 0.0,
        "max_score": job.get("max_score", 0.0),
        "tests": {},
        "notes": [],
        "flags": [],
        "seconds": 0.0,
        **extra,
    }


def _integrity(nb) -> list[str]:
    """Comparison functions that a submission replaced from its own code (a heuristic flag)."""
    for out in nb.cells[-1].get("outputs", []):
        text = out.get("text", "")
        if "__INTEGRITY__" not in text:
            continue
        try:
            found = json.loads(text.split("__INTEGRITY__", 1)[1].strip().splitlines()[0])
            bad = [
                name
                for name, (module, filename) in found.items()
                if not str(module or "torch").startswith(("torch", "numpy", "helpers"))
                or "ipykernel_" in str(filename)
                or str(filename).startswith("<")
            ]
        except (ValueError, IndexError, TypeError):
            return ["integrity probe output unreadable"]
        return [f"{name} was replaced by code from the notebook" for name in bad]
    return ["integrity probe did not run"]


def grade_submission(job: dict) -> tuple[dict, nbformat.NotebookNode | None]:
    start = time.monotonic()
    path = Path(job["notebook"])
    try:
        raw = path.read_bytes()
    except OSError as exc:
        return empty_result(job, "unreadable", str(exc)), None
    if len(raw) > MAX_NOTEBOOK_BYTES:
        return empty_result(
            job, "too_large", f"{len(raw)} bytes (limit {MAX_NOTEBOOK_BYTES})"
        ), None
    if not raw.strip():
        return empty_result(job, "empty_notebook", "the file is empty"), None
    try:
        submitted = nbformat.reads(raw.decode("utf-8", errors="replace"), as_version=4)
        cells = submitted.get("cells")
        if not isinstance(cells, list) or not all(isinstance(c, dict) for c in cells):
            raise ValueError("no list of cells")
        for c in cells:
            c.setdefault("metadata", {})
            c.setdefault("source", "")
            if isinstance(c["source"], list):
                c["source"] = "".join(map(str, c["source"]))
    except Exception as exc:  # noqa: BLE001 - any malformed file
        return empty_result(
            job, "invalid_notebook", f"not a readable notebook: {type(exc).__name__}: {exc}"[:300]
        ), None
    if not any(c.get("cell_type") == "code" for c in cells):
        return empty_result(job, "empty_notebook", "the notebook has no code cell"), None

    source = nbformat.read(job["source"], as_version=4)
    nb, notes = restore(submitted, source)
    originals, order_notes = prepare_tests(nb, source)
    notes += order_notes
    nb.cells.append(nbformat.v4.new_code_cell(INTEGRITY_PROBE))
    workdir = Path(job["workdir"])
    shutil.rmtree(workdir, ignore_errors=True)
    # The kernel's IPC sockets live in rundir, and an AF_UNIX path holds at most 107 bytes:
    # not below --out and an (up to 80-character) student id, then.
    rundir = Path(tempfile.mkdtemp(prefix="agk-"))
    sandbox = Sandbox(
        workdir=workdir / "home",
        rundir=rundir,
        slot=int(job.get("slot", 0)),
        limits=Limits(**job.get("limits", {})),
        hide=[Path(p) for p in job.get("hide", [])],
        use_bwrap=job.get("use_bwrap"),
        private_mounts=bool(job.get("private_mounts")),
    )
    try:
        run = run_notebook(nb, sandbox, trusted=frozenset({len(nb.cells) - 1}))
    finally:
        shutil.rmtree(rundir, ignore_errors=True)
    by_index = {c.index: c for c in run.cells}
    flags = [] if job.get("reference") else _integrity(nb)
    nb.cells.pop()  # the probe is the grader's, not part of the feedback
    for i, src in originals.items():  # the test cells as the student saw them
        nb.cells[i].source = src

    records, problems = load_records(workdir / "home" / ".records", owner=sandbox.uid)
    flags += problems
    if job.get("reference"):
        result = empty_result(job, "graded" if run.status == "ok" else run.status, run.reason)
        result["cells"] = [asdict(c) for c in run.cells]
        result["flags"] = flags
        if job.get("records_out"):
            save_records(records, Path(job["records_out"]))
        return result, nb
    reference, _ = load_records(Path(job["reference_records"]))
    verdicts = compare_all(records, reference)
    extra = sorted(set(records) - set(reference))
    if extra:
        flags.append(f"records that no hidden test asked for: {', '.join(extra[:5])}")
    defs = definitions([c for c in nb.cells if c.get("cell_type") == "code" and not is_test(c)])

    # A record counts only when its own test cell wrote it last: a later cell (which may have
    # seen reference versions of earlier exercises, see prepare_tests) cannot rewrite it.
    last_writer = {key: c.index for c in run.cells for key in c.records}
    last_writer.update({key: -1 for key in run.late_records})
    tests, occurrences, rewritten = {}, {}, []
    for i, cell in enumerate(nb.cells):
        if not is_test(cell):
            continue
        meta = cell.metadata["nbgrader"]
        gid, points = meta["grade_id"], float(meta.get("points", 0))
        named, messages, passed = [], [], True
        state = by_index.get(i)
        status = state.status if state is not None else "not_run"
        stopped = status in ("not_run", "timeout")  # the cell never reached its end
        stub = False
        if status != "ok":
            passed = False
            why = {
                "not_run": "not run (an earlier cell stopped the notebook)",
                "timeout": "the cell ran past the time limit",
            }.get(status, state.error if state else "")
            stub = why.startswith("NotImplementedError")
            messages.append(describe_error(why))
        for name in graded_calls(cell.source):
            occ = occurrences.get(name, 0)
            occurrences[name] = occ + 1
            prefix = f"{name}#{occ}#"
            mine = [v for k, v in verdicts.items() if k.startswith(prefix)]
            refs = [r for k, r in reference.items() if k.startswith(prefix)]
            # Only records that this very cell wrote count: a grade() call of the notebook's own,
            # or a hidden call redirected elsewhere, must not stand in for the hidden test.
            for v in mine:
                if v.passed and last_writer.get(v.key) != i:
                    v.passed = False
                    v.message = f"{v.key}: not recorded by this test cell's own hidden checks"
                    rewritten.append(v.key)
            failed = [v for v in mine if not v.passed]
            if failed:
                passed = False
            recorded = [v for v in failed if v.key in records]
            if failed and not recorded:
                why = "the cell stopped before them" if stopped or status != "ok" else "no record"
                messages.append(f"{name}: the hidden checks did not run ({why})")
            elif failed:
                named += _named_mistakes(recorded, records, reference)
                errors = [str(records[v.key].meta.get("error", "")) for v in recorded]
                if not (stub and all(e.startswith("NotImplementedError") for e in errors)):
                    messages += _hidden_messages(name, failed, len(mine))
            target = next((r.meta for r in refs if r.meta.get("defines")), None)
            if target:
                problem = check_definition(defs, target["defines"], bool(target.get("vectorised")))
                if problem:
                    passed = False
                    messages.append(problem)
        tests[gid] = {
            "points": points if passed else 0.0,
            "max_points": points,
            "passed": passed,
            "mistakes": _dedupe(named),
            "messages": _dedupe([f"Classic mistake: {m}" for m in _dedupe(named)] + messages),
        }
    if rewritten:
        flags.append(f"records written outside their own test cell: {', '.join(rewritten[:5])}")
    score = sum(t["points"] for t in tests.values())
    status = run.status if run.status != "ok" else ("flagged" if notes or flags else "graded")
    reason = run.reason or ("; ".join(notes + flags)[:500] if status == "flagged" else "")
    result = empty_result(
        job,
        status,
        reason,
        score=score,
        max_score=sum(t["max_points"] for t in tests.values()),
        tests=tests,
        notes=notes,
        flags=flags,
    )
    result["seconds"] = round(time.monotonic() - start, 1)
    result["output_truncated"] = run.truncated
    result["worker_peak_mb"] = run.peak_mb
    return result, nb


def _named_mistakes(failed, records, reference) -> list[str]:
    """Labels of the listed classic mistakes that the failing cases match, commonest first."""
    found = [_matching_mistake(records[v.key], reference[v.key]) for v in failed]
    counts: dict[str, int] = {}
    for label in found:
        if label:
            counts[label] = counts.get(label, 0) + 1
    return sorted(counts, key=lambda k: -counts[k])


def _hidden_messages(name: str, failed, total: int) -> list[str]:
    """Every failing hidden case: the first in full (expected, got, input, hint), the others in
    one line each."""
    head = f"{name}: {len(failed)} of {total} hidden cases fail"
    rest = [v.message.splitlines()[0] + _input_of(v.message) for v in failed[1:]]
    return [head, failed[0].message, *rest]


def _input_of(message: str) -> str:
    for line in message.splitlines():
        if line.strip().startswith("input:"):
            return f" (on {line.split('input:', 1)[1].strip()})"
    return ""


def _dedupe(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def main(argv: list[str]) -> int:
    warnings.filterwarnings("ignore")
    job = json.loads(Path(argv[0]).read_text())
    try:
        result, nb = grade_submission(job)
    except Exception as exc:  # noqa: BLE001 - reported as this submission's status
        result, nb = empty_result(job, "grader_error", f"{type(exc).__name__}: {exc}"[:500]), None
    if nb is not None and not job.get("reference"):  # before anything a student sees is written
        redact_submission(result, nb, job["source"])
    if job.get("feedback") and not job.get("reference"):
        feedback.write(Path(job["feedback"]), result, nb)
    Path(argv[1]).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
