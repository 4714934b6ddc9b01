"""Grade a folder or zip of submissions: in parallel, sandboxed, resumable.

For every assignment found, the solution notebook is first run through the same
harness to record the reference outputs (cached). Each submission is then graded
by its own worker process (``autograder.worker``). Results land in
``OUT/results/`` one file per submission, so an interrupted run resumes where it
stopped and a regrade of an unchanged submission is skipped.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from tqdm.auto import tqdm

from autograder import gradebook, paths, report
from autograder.collect import Submission, collect, extract_zip
from autograder.records import load_records, read_record_files, same_records
from autograder.release import prepare_source
from autograder.sandbox import BASE_UID, REFERENCE_SLOT, Limits, kill_uid
from autograder.worker import empty_result

GRADER_VERSION = "2"


@dataclass
class Options:
    jobs: int = os.cpu_count() or 1
    limits: Limits = Limits()
    db_url: str | None = None
    use_bwrap: bool | None = None
    progress: bool = True
    reference_cache: Path | None = None  # default: OUT/.work/reference


def _sha(*chunks: bytes) -> str:
    h = hashlib.sha256()
    for c in chunks:
        h.update(c)
    return h.hexdigest()


def _helpers_digest() -> bytes:
    return b"".join(p.read_bytes() for p in sorted((paths.ROOT / "helpers").glob("*.py")))


def _records_digest(folder: Path) -> str:
    """The hash of a records folder: every file's name and bytes (links refused, not followed)."""
    files, problems = read_record_files(folder)
    extra = sorted(p.name for p in folder.iterdir() if p.suffix != ".npz" and p.name != "done.json")
    if problems or extra:
        return "unusable: " + "; ".join([*problems, *extra])
    return _sha(*(f"{k}\0{len(v)}\0".encode() + v for k, v in sorted(files.items())))


def _cache_ok(records: Path, key: str) -> bool:
    try:
        done = json.loads((records / "done.json").read_text())
    except (OSError, ValueError):
        return False
    return (
        isinstance(done, dict)
        and done.get("key") == key
        and done.get("sha256") == _records_digest(records)
    )


def max_score(source: Path) -> float:
    """Total points of an assignment's test cells."""
    import nbformat

    from autograder.restore import is_test

    nb = nbformat.read(source, as_version=4)
    return sum(float(c.metadata["nbgrader"].get("points", 0)) for c in nb.cells if is_test(c))


@contextmanager
def _slot(slots: queue.Queue, workdir: str, offset: int = 0):
    """Hold a grading slot (its kernel uid) for one run; clean the run's folder afterwards.

    ``offset``: reference runs add :data:`REFERENCE_SLOT`, so that they never share a uid (and
    with it the right to signal, ptrace or write) with a student's kernel.
    """
    slot = slots.get()
    try:
        yield slot + offset
    finally:
        if os.geteuid() == 0:  # a worker killed at the hard timeout leaves its kernel behind
            try:
                kill_uid(BASE_UID + slot + offset)
            except RuntimeError as exc:  # the next run's worker refuses the slot: grader_error
                print(f"WARNING: {exc}", file=sys.stderr)
        shutil.rmtree(workdir, ignore_errors=True)
        slots.put(slot)


def _worker_command(job: dict, job_file: Path, result_file: Path) -> list[str]:
    """The worker's command line: its own address-space limit and, as root, its own mount
    namespace (where the kernel's working copy gets a size-capped tmpfs that dies with it)."""
    memory = Limits(**job.get("limits", {})).worker_memory_mb
    # A soft limit: the kernel's own chain (unprivileged by then) sets its limits from scratch.
    cmd = ["prlimit", f"--as={memory << 20}:unlimited", "--"]
    if job.get("private_mounts"):
        cmd += ["unshare", "--mount", "--propagation", "private", "--"]
    return [*cmd, sys.executable, "-m", "autograder.worker", str(job_file), str(result_file)]


def _run_worker(
    job: dict, work: Path, slots: queue.Queue, hard_timeout: float, offset: int = 0
) -> dict:
    with _slot(slots, job["workdir"], offset) as slot:
        job = {
            **job,
            "slot": slot,
            "private_mounts": os.geteuid() == 0 and bool(shutil.which("unshare")),
        }
        name = f"{job['student']}__{job['assignment'] or 'unknown'}__{slot}.json"
        job_file = work / "jobs" / name
        job_file.parent.mkdir(parents=True, exist_ok=True)
        job_file.write_text(json.dumps(job))
        result_file = job_file.with_suffix(".result.json")
        result_file.unlink(missing_ok=True)
        try:
            proc = subprocess.run(
                _worker_command(job, job_file, result_file),
                capture_output=True,
                text=True,
                timeout=hard_timeout,
                cwd=paths.ROOT,
            )
            if result_file.exists():
                return json.loads(result_file.read_text())
            reason = f"grader worker exited with {proc.returncode}: {proc.stderr.strip()[-300:]}"
        except subprocess.TimeoutExpired:
            reason = f"grader worker ran past {hard_timeout:.0f} s"
        return empty_result(job, "grader_error", reason)


def _claim_slots(n: int, limit: int = 4000) -> tuple[list[int], list]:
    """``n`` slot numbers that no other grader on this machine holds, with their locks.

    A slot is a kernel uid (``BASE_UID + slot``): limits count per uid and leftovers are
    killed per uid, so two graders (or a grader and the test suite) must never share one.
    """
    slots, locks = [], []
    for i in range(limit):
        f = open(Path(tempfile.gettempdir()) / f"autograder-slot-{i}.lock", "a")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.close()
            continue
        slots.append(i)
        locks.append(f)
        if len(slots) == n:
            return slots, locks
    raise RuntimeError(f"only {len(slots)} free grading slots on this machine")


class Grader:
    def __init__(self, out: Path, options: Options | None = None):
        self.out = Path(out).resolve()
        self.hide: list[str] = []
        self.opt = options or Options()
        self.work = self.out / ".work"
        self.results_dir = self.out / "results"
        # Reference records depend only on the solution, helpers and grader: shareable.
        cache = self.opt.reference_cache or os.environ.get("COURSE_REFERENCE_CACHE")
        self.reference_cache = Path(cache).resolve() if cache else self.work / "reference"
        self.slots: queue.Queue = queue.Queue()
        ids, self._slot_locks = _claim_slots(max(1, self.opt.jobs))  # held while self lives
        self.slot_ids = list(ids)
        for i in ids:
            self.slots.put(i)
        self.hard_timeout = self.opt.limits.notebook_timeout + 180

    def _job(self, **kw) -> dict:
        return {
            "limits": asdict(self.opt.limits),
            "use_bwrap": self.opt.use_bwrap,
            "hide": [str(self.out), str(self.reference_cache), *self.hide],
            **kw,
        }

    def reference(self, assignment: str) -> tuple[Path, Path, str]:
        """(source notebook, reference records folder, its hash), built once and cached.

        The cache is trusted only when its ``done.json`` names this key and the hash of the
        files that are there: a partial or altered cache is rebuilt. It is built by running the
        solution twice, in kernels of reference uids, and only when both runs record the same.
        """
        course = self.work / "course"
        source = prepare_source(assignment, course)
        key = _sha(source.read_bytes(), _helpers_digest(), GRADER_VERSION.encode())[:16]
        records = self.reference_cache / f"{assignment}-{key}"
        if _cache_ok(records, key):
            return source, records, key
        if records.exists():
            print(f"WARNING: reference cache {records} is incomplete or altered: rebuilding")
        runs = [records.parent / f".{records.name}.{os.getpid()}.{i}" for i in range(2)]
        with ThreadPoolExecutor(max_workers=min(2, max(1, self.opt.jobs))) as pool:
            results = list(
                pool.map(lambda i: self._reference_run(assignment, source, runs[i]), (0, 1))
            )
        try:
            for result in results:
                bad = [c for c in result.get("cells", []) if c["status"] != "ok"]
                if result["status"] != "graded" or bad or result.get("flags"):
                    raise RuntimeError(
                        f"the reference solution of {assignment} does not run cleanly: "
                        f"{result.get('reason') or (bad or result.get('flags'))[:1]}"
                    )
            first, _ = load_records(runs[0])
            differ = same_records(first, load_records(runs[1])[0])
            if differ or not first:
                raise RuntimeError(
                    f"the reference solution of {assignment} is not reproducible: two runs "
                    f"recorded differently ({', '.join(differ[:3]) or 'nothing recorded'})"
                )
            shutil.rmtree(records, ignore_errors=True)
            os.rename(runs[0], records)
            (records / "done.json").write_text(
                json.dumps(
                    {"assignment": assignment, "key": key, "sha256": _records_digest(records)}
                )
            )
        finally:
            for r in runs:
                shutil.rmtree(r, ignore_errors=True)
        return source, records, key

    def _reference_run(self, assignment: str, source: Path, out: Path) -> dict:
        shutil.rmtree(out, ignore_errors=True)
        out.parent.mkdir(parents=True, exist_ok=True)
        job = self._job(
            student="_reference",
            assignment=assignment,
            notebook=str(source),
            source=str(source),
            workdir=str(self.work / "run" / f"_reference_{assignment}_{out.name[-1]}"),
            reference=True,
            records_out=str(out),
        )
        # The solution is trusted: generous time limits, so that a loaded machine cannot fail it.
        lim = self.opt.limits
        slow = replace(
            lim,
            cell_timeout=max(lim.cell_timeout, 300),
            notebook_timeout=max(lim.notebook_timeout, 900),
        )
        job["limits"] = asdict(slow)
        hard = slow.notebook_timeout + 180
        return _run_worker(job, self.work, self.slots, hard, REFERENCE_SLOT)

    def run(self, submissions: Path) -> list[dict]:
        submissions = Path(submissions).resolve()
        self.hide = [str(submissions)]
        root = (
            extract_zip(submissions, self.work / "inbox")
            if submissions.suffix == ".zip"
            else submissions
        )
        subs = collect(root, paths.assignments())
        refs, broken = {}, {}
        for a in sorted({s.assignment for s in subs if s.assignment}):
            try:
                refs[a] = self.reference(a)
            except Exception as exc:  # noqa: BLE001 - the instructor's side: report, grade the rest
                broken[a] = f"{type(exc).__name__}: {exc}"[:500]
                print(f"ERROR: cannot grade {a}: {broken[a]}", file=sys.stderr)
        results, todo = [], []
        for s in subs:
            if s.assignment in broken:  # not cached, not saved: a fixed reference regrades it
                job = {"student": s.student, "assignment": s.assignment}
                results.append(empty_result(job, "grader_error", broken[s.assignment]))
                continue
            cached = self._cached(s, refs)
            if cached is not None:
                results.append(cached)
            elif not s.assignment:
                results.append(
                    self._save(
                        s,
                        refs,
                        empty_result(
                            {"student": s.student, "assignment": s.path.stem},
                            "unknown_assignment",
                            s.note,
                        ),
                    )
                )
            else:
                todo.append(s)
        with ThreadPoolExecutor(max_workers=max(1, self.opt.jobs)) as pool:
            futures = {pool.submit(self._grade_one, s, refs): s for s in todo}
            for fut in tqdm(
                as_completed(futures),
                total=len(futures),
                desc="grading",
                unit="nb",
                disable=not self.opt.progress,
            ):
                results.append(fut.result())
        self._write_outputs(results, refs)
        return results

    def _fingerprint(self, s: Submission, refs) -> str:
        ref_key = refs[s.assignment][2] if s.assignment else ""
        return _sha(
            s.path.read_bytes(), ref_key.encode(), json.dumps(asdict(self.opt.limits)).encode()
        )

    def _result_path(self, s: Submission) -> Path:
        return self.results_dir / s.student / f"{s.assignment or s.path.stem}.json"

    def _cached(self, s: Submission, refs) -> dict | None:
        p = self._result_path(s)
        if p.exists():
            data = json.loads(p.read_text())
            if (
                data.get("fingerprint") == self._fingerprint(s, refs)
                and data.get("status") != "grader_error"
            ):
                return data
        return None

    def _save(self, s: Submission, refs, result: dict) -> dict:
        result["fingerprint"] = self._fingerprint(s, refs)
        result["file"] = str(s.path)
        if s.note:
            result["notes"] = [s.note, *result.get("notes", [])]
        p = self._result_path(s)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(result, indent=1))
        return result

    def _grade_one(self, s: Submission, refs) -> dict:
        source, records, _ = refs[s.assignment]
        job = self._job(
            student=s.student,
            assignment=s.assignment,
            notebook=str(s.path),
            source=str(source),
            max_score=max_score(source),
            reference_records=str(records),
            workdir=str(self.work / "run" / f"{s.student}__{s.assignment}"),
            feedback=str(self.out / "feedback" / s.student / f"{s.assignment}.html"),
        )
        return self._save(s, refs, _run_worker(job, self.work, self.slots, self.hard_timeout))

    def _write_outputs(self, results: list[dict], refs) -> None:
        header = {"grader_version": GRADER_VERSION, "sandbox": self.sandbox_description()}
        report.write_all(self.out, results, header)
        db_url = self.opt.db_url or gradebook.default_db_url(self.out)
        gradebook.record(db_url, {a: v[0] for a, v in refs.items()}, results)

    def sandbox_description(self) -> str:
        use = (
            shutil.which("bwrap") is not None if self.opt.use_bwrap is None else self.opt.use_bwrap
        )
        return "bubblewrap" if use else "none (limits only)"
