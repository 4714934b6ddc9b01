"""Grading throughput, side by side in one run: plain nbgrader against this grader.

    python benchmarks/bench_grading.py                 # every assignment, 4 submissions each
    python benchmarks/bench_grading.py --only 04 --per-assignment 8

One class is fabricated from the notebooks present (discovered, never listed): for every
assignment a perfect submission (the solution), an untouched one (the student version) and
two partial ones (the first, then the last, answer left unwritten): a realistic mix of
perfect, partial and wrong work, at least 40 notebooks with the whole course. The same class
is then graded

* by plain ``nbgrader autograde``, serially, without a sandbox (what a course uses today);
* by this grader at ``--jobs 1``, and at the default number of jobs (one per core);
* by this grader at the default jobs without bubblewrap (the sandbox's own overhead).

Each of our runs starts from an empty output folder and an empty reference cache, so the
reference runs (one per assignment) are paid for, as in a real first grading. Results are
merged into ``bench/results.json`` under ``"grading"``: seconds, submissions per minute, the
ratio to nbgrader, and the target (at least 2x nbgrader's throughput with the sandbox on).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from autograder import paths  # noqa: E402

TARGET_RATIO = 2.0
KINDS = ("perfect", "untouched", "first_missing", "last_missing")


def _answer_cells(nb) -> list[int]:
    return [
        i
        for i, c in enumerate(nb.cells)
        if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("solution")
    ]


def fabricate(dest: Path, names: list[str], per_assignment: int) -> int:
    """Write ``per_assignment`` submissions of each assignment as ``<student>/<name>.ipynb``."""
    shutil.rmtree(dest, ignore_errors=True)
    count = 0
    for name in names:
        solved = nbformat.read(paths.SOLUTIONS / f"{name}.ipynb", as_version=4)
        blank = nbformat.read(paths.NOTEBOOKS / f"{name}.ipynb", as_version=4)
        answers = _answer_cells(solved)
        stubs = {
            c.metadata["nbgrader"]["grade_id"]: c.source
            for c in blank.cells
            if c.metadata.get("nbgrader", {}).get("solution")
        }
        for k in range(per_assignment):
            kind = KINDS[k % len(KINDS)]
            nb = (
                blank if kind == "untouched" else nbformat.from_dict(json.loads(json.dumps(solved)))
            )
            if kind in ("first_missing", "last_missing") and answers:
                cell = nb.cells[answers[0] if kind == "first_missing" else answers[-1]]
                cell.source = stubs.get(cell.metadata["nbgrader"]["grade_id"], cell.source)
            student = f"s{k:02d}_{kind}"
            (dest / student).mkdir(parents=True, exist_ok=True)
            nbformat.write(nb, dest / student / f"{name}.ipynb")
            count += 1
    return count


def plain_nbgrader(subs: Path, names: list[str], work: Path) -> float:
    """Seconds for ``nbgrader autograde`` of every submission, serially, no sandbox."""
    from nbgrader.apps import NbGraderAPI

    from autograder.release import ensure_env_on_path, nbgrader_config, release

    ensure_env_on_path()
    course = work / "nbgrader_course"
    release(names, out=work / "released", root=course)  # source/ and the gradebook's cells
    config = nbgrader_config(root=course)
    for student_dir in sorted(p for p in subs.iterdir() if p.is_dir()):
        for nb in student_dir.glob("*.ipynb"):
            dest = course / "submitted" / student_dir.name / nb.stem / nb.name
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(nb, dest)
    api = NbGraderAPI(config=config)
    start = time.perf_counter()
    for name in names:
        for student_dir in sorted((course / "submitted").iterdir()):
            if (student_dir / name).is_dir():
                result = api.autograde(name, student_dir.name, force=True, create=True)
                if not result.get("success"):
                    print(f"nbgrader autograde {name} {student_dir.name} failed", file=sys.stderr)
    return time.perf_counter() - start


def ours(subs: Path, work: Path, jobs: int, use_bwrap: bool | None) -> tuple[float, list[dict]]:
    from autograder.grade import Grader, Options

    out = work / f"ours_jobs{jobs}_{'bwrap' if use_bwrap is not False else 'nobwrap'}"
    shutil.rmtree(out, ignore_errors=True)
    options = Options(
        jobs=jobs, use_bwrap=use_bwrap, progress=False, reference_cache=out / "reference"
    )
    start = time.perf_counter()
    results = Grader(out, options).run(subs)
    return time.perf_counter() - start, results


def summarise(n: int, seconds: dict[str, float]) -> dict:
    base = seconds["nbgrader"]
    rows = {
        label: {
            "seconds": round(s, 1),
            "per_minute": round(60 * n / s, 1),
            "ratio_to_nbgrader": round(base / s, 2),
        }
        for label, s in seconds.items()
    }
    default = next(
        k for k in rows if k.startswith("ours_jobs") and "nobwrap" not in k and k != "ours_jobs1"
    )
    rows["target"] = {
        "ratio_to_nbgrader": TARGET_RATIO,
        "measured": rows[default]["ratio_to_nbgrader"],
        "met": rows[default]["ratio_to_nbgrader"] >= TARGET_RATIO,
    }
    nobwrap = next((k for k in rows if "nobwrap" in k), None)
    if nobwrap:
        rows["sandbox_overhead"] = round(seconds[default] / seconds[nobwrap], 2)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", help="assignment name prefixes (default: all)")
    ap.add_argument("--per-assignment", type=int, default=4)
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="our default jobs")
    ap.add_argument("--results", type=Path, default=ROOT / "bench" / "results.json")
    args = ap.parse_args(argv)
    names = [n for n in paths.assignments() if not args.only or n.startswith(tuple(args.only))]
    with tempfile.TemporaryDirectory(prefix="bench-grading-") as tmp:
        work = Path(tmp)
        subs = work / "submissions"
        n = fabricate(subs, names, args.per_assignment)
        print(f"class: {n} submissions of {len(names)} assignments")
        seconds = {"nbgrader": plain_nbgrader(subs, names, work)}
        print(f"plain nbgrader autograde (serial, no sandbox): {seconds['nbgrader']:.1f} s")
        for label, jobs, bwrap in (
            ("ours_jobs1", 1, None),
            (f"ours_jobs{args.jobs}", args.jobs, None),
            (f"ours_jobs{args.jobs}_nobwrap", args.jobs, False),
        ):
            seconds[label], results = ours(subs, work, jobs, bwrap)
            bad = [r for r in results if r["status"] == "grader_error"]
            print(
                f"{label}: {seconds[label]:.1f} s" + (f" ({len(bad)} grader errors)" if bad else "")
            )
    summary = summarise(n, seconds)
    summary.update(
        submissions=n,
        assignments=names,
        cores=os.cpu_count(),
        load_average=[round(x, 2) for x in os.getloadavg()],
    )
    data = json.loads(args.results.read_text()) if args.results.exists() else {}
    data["grading"] = summary
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(data, indent=1))
    print(json.dumps(summary, indent=1))
    return 0 if summary["target"]["met"] else 1


if __name__ == "__main__":
    sys.exit(main())
