"""Command line: ``python -m autograder {release,grade,check,validate,demo}``."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from autograder import paths


def cmd_release(args) -> int:
    from autograder.release import release

    for p in release(args.names or None):
        print(f"released {p.relative_to(paths.ROOT)}")
    return 0


def print_table(results: list[dict]) -> None:
    print(f"\n{'student':<18} {'assignment':<26} {'score':>11}  status")
    for r in sorted(results, key=lambda r: (r["student_id"], r["assignment"])):
        score = f"{r['score']:g}/{r['max_score']:g}"
        why = f"  ({r['reason'][:70]})" if r.get("reason") else ""
        print(f"{r['student_id']:<18} {r['assignment']:<26} {score:>11}  {r['status']}{why}")


def cmd_grade(args) -> int:
    from autograder.grade import Grader, Options
    from autograder.sandbox import Limits

    limits = Limits(
        cell_timeout=args.cell_timeout, notebook_timeout=args.timeout, memory_mb=args.memory_mb
    )
    opt = Options(
        jobs=args.jobs, limits=limits, db_url=args.db, use_bwrap=False if args.no_sandbox else None
    )
    grader = Grader(Path(args.out), opt)
    if grader.sandbox_description().startswith("none"):
        print(
            "WARNING: bubblewrap (bwrap) is not installed: student code runs WITHOUT isolation "
            "(resource limits only). Install it: apt-get install bubblewrap",
            file=sys.stderr,
        )
    results = grader.run(Path(args.submissions))
    print_table(results)
    print(
        f"\ngrades:   {Path(args.out) / 'grades.csv'}\nreport:   {Path(args.out) / 'report.json'}"
        f"\nfeedback: {Path(args.out) / 'feedback'}/<student>/<assignment>.html"
    )
    return 0


def cmd_check(args) -> int:
    from autograder.selfcheck import check

    return check(Path(args.notebook))


def cmd_validate(args) -> int:
    from autograder.validate import validate_all

    return validate_all()


def cmd_demo(args) -> int:
    from autograder.demo import demo

    return demo(Path(args.out), jobs=args.jobs)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m autograder`` and of the ``course-grader`` command."""
    os.umask(0o022)  # outputs readable by the sandbox uid and by whoever hands them out
    p = argparse.ArgumentParser(prog="python -m autograder", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("release", help="solutions/ -> notebooks/ (student versions)")
    r.add_argument("names", nargs="*", help="assignments (default: all)")
    r.set_defaults(func=cmd_release)
    g = sub.add_parser("grade", help="grade a folder or LMS zip of submissions")
    g.add_argument("submissions", help="folder or .zip")
    g.add_argument(
        "--out", required=True, help="output folder (grades.csv, report.json, feedback/)"
    )
    g.add_argument(
        "--jobs", type=int, default=os.cpu_count() or 1, help="submissions graded at once"
    )
    g.add_argument("--timeout", type=float, default=300.0, help="seconds per notebook")
    g.add_argument("--cell-timeout", type=float, default=60.0, help="seconds per cell")
    g.add_argument("--memory-mb", type=int, default=6144, help="address space per kernel")
    g.add_argument(
        "--db", default=None, help="gradebook URL (default: sqlite in OUT; postgresql://...)"
    )
    g.add_argument(
        "--no-sandbox", action="store_true", help="run without bubblewrap (trusted input only)"
    )
    g.set_defaults(func=cmd_grade)
    c = sub.add_parser("check", help="a student's self-check of a notebook before submitting")
    c.add_argument("notebook")
    c.set_defaults(func=cmd_check)
    v = sub.add_parser("validate", help="solutions pass, student versions fail every graded test")
    v.set_defaults(func=cmd_validate)
    d = sub.add_parser("demo", help="release, fabricate submissions, grade them, print the table")
    d.add_argument("--out", default=str(paths.ROOT / "out" / "demo"))
    d.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    d.set_defaults(func=cmd_demo)
    args = p.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
