"""The sandbox's parts, without a Jupyter kernel: process containment, record reading, caches,
redaction. The whole grader against hostile notebooks is tests/test_hostile.py."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import nbformat
import numpy as np
import pytest

from autograder import grade, redact
from autograder.records import load_records, read_record_files
from autograder.sandbox import BASE_UID, REFERENCE_SLOT, Limits, Sandbox, kill_uid, uid_processes
from helpers.grading import Record, save_record

ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="per-slot uids exist only as root")
BWRAP = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap not installed")
TEST_SLOT = 3900  # far from the slots a grader claims first
HOPPER = """
import os, sys, time
if os.fork():
    os._exit(0)
os.setsid()
if os.fork():
    os._exit(0)
end = time.time() + 120
while time.time() < end:
    if os.fork():  # a new pid every few ms: a scan of /proc sees only the dead ones
        os._exit(0)
    with open(sys.argv[1], "a") as f:
        f.write(f"{os.getpid()}\\n")
    time.sleep(0.005)
"""


def _wait_for(predicate, seconds: float = 10.0) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def _record(folder: Path, key: str, value: float) -> None:
    save_record(folder / f"{key}.npz", Record({"out": np.array(value)}, {"name": key}))


def test_records_are_plain_files_of_the_folder_or_nothing(tmp_path):
    recs, elsewhere = tmp_path / "records", tmp_path / "classmate"
    recs.mkdir()
    elsewhere.mkdir()
    _record(recs, "good#0#0", 1.0)
    _record(elsewhere, "x#0#0", 2.0)
    (recs / "link#0#0.npz").symlink_to(elsewhere / "x#0#0.npz")
    (recs / "shadow#0#0.npz").symlink_to("/etc/shadow")
    (recs / "missing#0#0.npz").symlink_to("/nonexistent/file")
    os.mkfifo(recs / "fifo#0#0.npz")  # opening it for reading would block
    os.link(elsewhere / "x#0#0.npz", recs / "hard#0#0.npz")
    (recs / "dir#0#0.npz").mkdir()
    start = time.monotonic()
    records, problems = load_records(recs)
    assert time.monotonic() - start < 5
    assert list(records) == ["good#0#0"] and float(records["good#0#0"].arrays["out"]) == 1.0
    why = {p.split()[1]: p.split(" refused: ")[1] for p in problems}
    assert why == {
        "dir#0#0.npz": "a folder (tampering)",
        "fifo#0#0.npz": "a FIFO (tampering)",
        "hard#0#0.npz": "a hard link (2 names) (tampering)",
        "link#0#0.npz": "a symbolic link (tampering)",
        "missing#0#0.npz": "a symbolic link (tampering)",
        "shadow#0#0.npz": "a symbolic link (tampering)",
    }


def test_a_linked_record_folder_is_refused(tmp_path):
    (tmp_path / "real").mkdir()
    _record(tmp_path / "real", "a#0#0", 1.0)
    (tmp_path / "records").symlink_to(tmp_path / "real")
    assert load_records(tmp_path / "records") == (
        {},
        ["record folder refused: a symbolic link (tampering)"],
    )
    assert load_records(tmp_path / "absent") == ({}, [])


@ROOT_ONLY
def test_records_of_another_owner_are_refused(tmp_path):
    _record(tmp_path, "mine#0#0", 1.0)
    _record(tmp_path, "theirs#0#0", 2.0)
    os.chown(tmp_path, 61234, 61234)
    os.chown(tmp_path / "mine#0#0.npz", 61234, 61234)
    files, problems = read_record_files(tmp_path, owner=61234)
    assert list(files) == ["mine#0#0"]
    assert problems == [
        "record theirs#0#0.npz refused: owned by uid 0, not the kernel's (tampering)"
    ]
    assert read_record_files(tmp_path, owner=61235)[1] == [
        "record folder refused: owned by uid 61234 (tampering)"
    ]


@ROOT_ONLY
def test_kill_uid_catches_a_process_that_keeps_changing_its_pid():
    uid = BASE_UID + TEST_SLOT
    kill_uid(uid)
    folder = Path(tempfile.mkdtemp(dir="/var/tmp" if os.access("/var/tmp", os.W_OK) else None))
    folder.chmod(0o777)
    beats = folder / "pids"
    try:
        cmd = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--"]
        python = shutil.which("python3", path="/usr/bin:/bin") or sys.executable  # runnable by uid
        subprocess.run(
            [*cmd, python, "-I", "-S", "-c", HOPPER, str(beats)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=True,
            timeout=30,
        )

        def pids() -> list[str]:
            return beats.read_text().split() if beats.exists() else []

        assert _wait_for(lambda: len(set(pids())) > 20), "the hopper is not changing its pid"
        kill_uid(uid)
        assert uid_processes(uid) == []
        count = len(pids())
        time.sleep(0.5)
        assert len(pids()) == count, "the hopper is still running"
    finally:
        kill_uid(uid)
        shutil.rmtree(folder)


def _sandbox(tmp_path: Path, **kw) -> Sandbox:
    tmp_path.chmod(0o755)
    rundir = tmp_path / "run"
    return Sandbox(workdir=tmp_path / "home", rundir=rundir, slot=TEST_SLOT, limits=Limits(), **kw)


@ROOT_ONLY
@BWRAP
def test_every_process_dies_with_the_sandbox_without_being_killed(tmp_path):
    """The PID namespace: what the command leaves behind (a new session, a sleeper) is killed by
    the kernel of Linux when the command ends; nobody has to find it."""
    sb = _sandbox(tmp_path)
    sb.prepare()
    script = "setsid sleep 600 & (sleep 600 &) ; echo started"
    out = subprocess.run(sb.wrap(["sh", "-c", script]), capture_output=True, text=True, timeout=60)
    assert "started" in out.stdout, out.stderr
    assert _wait_for(lambda: not uid_processes(sb.uid), 5), uid_processes(sb.uid)


@ROOT_ONLY
@BWRAP
def test_hidden_files_read_empty_and_writable_places_are_capped(tmp_path):
    outside = Path(tempfile.mkdtemp(dir="/var/tmp" if os.access("/var/tmp", os.W_OK) else None))
    try:
        _check_hidden_file(tmp_path, outside)
    finally:
        shutil.rmtree(outside)


def _check_hidden_file(tmp_path: Path, outside: Path) -> None:
    outside.chmod(0o755)  # readable by anyone on the host: only the sandbox may hide it
    secret = outside / "submissions.zip"
    with zipfile.ZipFile(secret, "w") as zf:
        zf.writestr("ann/04.ipynb", "{}")
    sb = _sandbox(tmp_path, hide=[secret])
    sb.prepare()
    probe = f"wc -c < {secret}; df -m /tmp | tail -1; cat /proc/1/cmdline; echo x > {secret}"
    args = sb.wrap(["sh", "-c", probe])
    assert ["--dev-bind", "/dev/null", str(secret)] == args[args.index(str(secret)) - 2 :][:3]
    out = subprocess.run(args, capture_output=True, text=True, timeout=60)
    lines = out.stdout.splitlines()
    assert lines[0].strip() == "0", out  # the zip is there, empty
    assert lines[1].split()[1] == str(Limits().tmp_mb), out  # /tmp's size in MB
    assert "bwrap" in lines[2], "the sandbox has its own pid 1"
    assert zipfile.ZipFile(secret).namelist() == ["ann/04.ipynb"], "the zip is intact"
    assert sb.uid == BASE_UID + TEST_SLOT
    assert Sandbox(tmp_path, tmp_path, slot=REFERENCE_SLOT + TEST_SLOT).uid != sb.uid


def test_reference_cache_is_trusted_only_when_complete_and_unchanged(tmp_path):
    recs = tmp_path / "04-abc"
    recs.mkdir()
    _record(recs, "a#0#0", 1.0)
    _record(recs, "a#0#1", 2.0)
    done = {"assignment": "04", "key": "abc", "sha256": grade._records_digest(recs)}
    (recs / "done.json").write_text(json.dumps(done))
    assert grade._cache_ok(recs, "abc") and not grade._cache_ok(recs, "abd")
    _record(recs, "a#0#1", 3.0)  # poisoned after the fact
    assert not grade._cache_ok(recs, "abc")
    _record(recs, "a#0#1", 2.0)
    assert grade._cache_ok(recs, "abc")
    (recs / "a#0#1.npz").unlink()  # partial
    assert not grade._cache_ok(recs, "abc")


def _notebook(*cells) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    for source, test, outputs in cells:
        cell = nbformat.v4.new_code_cell(source)
        if test:
            cell.metadata["nbgrader"] = {"grade": True, "solution": False, "grade_id": "t"}
        cell.outputs = outputs
        nb.cells.append(cell)
    return nb


def test_outputs_that_reproduce_hidden_tests_are_removed_and_flagged():
    hidden = "grade('f', f, [case(x=uniform(3, seed=11))], hint='a long enough hint')"
    test_src = f"check(f)\n### BEGIN HIDDEN TESTS\n{hidden}\n### END HIDDEN TESTS"
    mine = "print('my own line of code, long enough')"
    leak = nbformat.v4.new_output("stream", name="stdout", text=f"In = ['x', {test_src!r}]")
    own = nbformat.v4.new_output("stream", name="stdout", text=mine)
    source = _notebook((test_src, True, []))
    nb = _notebook((mine, False, [own, leak]), (test_src, True, []))
    result = {"status": "graded", "tests": {"t": {"messages": [f"got {hidden}"]}}, "notes": []}
    assert redact.redact(result, nb, source) == 2
    assert nb.cells[0].outputs[0] == own and redact.NOTICE in nb.cells[0].outputs[1]["text"]
    assert result["tests"]["t"]["messages"] == [redact.NOTICE.strip()]
    assert result["status"] == "flagged" and "hidden test code" in result["flags"][0]
    clean = {"status": "graded", "tests": {}, "notes": []}
    assert redact.redact(clean, _notebook((mine, False, [own])), source) == 0
    assert clean["status"] == "graded" and "flags" not in clean
