"""A hostile corpus for the autograder, as one table: what each submission does, and what it must get.

Every submission of ``04_sparse_autoencoder`` is built from the solution notebook (perfect answers) by
changing a few cells with nbformat. ``tests/test_hostile.py`` grades the whole corpus in one run and
checks every row of :data:`CASES`.

Most hostile submissions use :func:`lean`, the solution without the data, training and plotting cells
(they earn no points and cost ~8 s of kernel time each); the two controls and the student version are
the full notebooks. A row whose ``bug`` is set describes what the grader *must* do but does not do yet:
the test of that row is a strict xfail, so it starts failing (XPASS) the day the bug is fixed.

Cases h29-h35 attack the grader itself rather than the comparison: a process that outlives its
kernel (new session, double fork, pid hopping) and deletes other kernels' records; records
replaced by symbolic links (to a classmate's working folder, to ``/etc/shadow``) or by FIFOs; a
flood of the iopub socket; a disk filled through every writable place; hidden-test source printed
back. ``tests/test_hostile.py`` also checks that no process of any slot's uid is left.
"""

from __future__ import annotations

import copy
import json
import os
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
ASSIGNMENT = "04_sparse_autoencoder"
SOLUTION = ROOT / "solutions" / f"{ASSIGNMENT}.ipynb"
POINTS = {
    "test_l1_sparsity": 2.0,
    "test_unit_activation": 1.0,
    "test_kl_sparsity": 3.0,
    "test_sparse_ae_loss": 2.0,
}
FULL = sum(POINTS.values())
KERNEL_STATUSES = {"graded", "flagged", "timeout", "kernel_died", "kernel_failed"}


@dataclass(frozen=True)
class Ctx:
    """Where the corpus lives; some hostile cells need to know the grader's paths."""

    subs: Path  # the submissions folder
    out: Path  # the grading output folder
    marker: str  # unique to this run: names of files a hostile kernel tries to create

    def submission(self, student: str) -> Path:
        return self.subs / student / f"{ASSIGNMENT}.ipynb"

    def write_targets(self) -> list[Path]:
        """Places outside the working copy that a kernel must not be able to write to."""
        m = self.marker
        return [
            ROOT / "helpers" / f"x_{m}.py",
            ROOT / "solutions" / f"x_{m}.txt",
            ROOT / f"x_{m}.txt",
            self.out / f"x_{m}.txt",
            self.out / "results" / f"x_{m}.json",
            self.out / ".work" / "run" / f"x_{m}.txt",
            self.subs / f"x_{m}.ipynb",
            self.subs.parent / f"x_{m}.txt",
            Path("/var/tmp") / f"x_{m}.txt",
            Path.home() / f"x_{m}.txt",
        ]

    def delete_targets(self) -> list[Path]:
        """Files of the course and of another student that a kernel must not be able to delete."""
        return [ROOT / "helpers" / "__init__.py", self.submission("a00_control_first")]

    def secrets(self) -> list[Path]:
        """Files a kernel must not be able to read: the solutions, the grader, other students."""
        home = [p for p in (Path.home() / ".bashrc", Path.home() / ".gitconfig") if p.exists()]
        return [
            SOLUTION,
            ROOT / "autograder" / "grade.py",
            ROOT / ".git" / "HEAD" if (ROOT / ".git").is_dir() else ROOT / ".git",  # a worktree
            ROOT / "tests" / "hostile_cases.py",
            self.submission("a00_control_first"),
            self.out / "results" / "a00_control_first" / f"{ASSIGNMENT}.json",
            self.out / ".work" / "course" / "source" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb",
            *home[:1],
        ]

    def secret_dirs(self) -> list[Path]:
        """Folders in which a kernel must find no file at all, its environment, helpers/ and its own
        working copy aside: the repository, submissions, output, reference records, grader's home."""
        cache = os.environ.get("COURSE_REFERENCE_CACHE")
        return [ROOT, self.subs, self.out, *([Path(cache)] if cache else []), Path.home()]


Files = dict[str, bytes]  # path relative to the submissions folder -> content


@dataclass(frozen=True)
class Case:
    """One submission: how to build it and what the grader must make of it."""

    student: str
    what: str
    build: Callable[[Ctx], Files]
    status: frozenset[str]
    score: float | Callable[[float], bool] | None = None
    tests: dict[str, float] | None = None  # expected points per test cell (None: not checked)
    notes: tuple[str, ...] = ()  # substrings of the result's notes
    flags: tuple[str, ...] = ()  # substrings of the result's flags
    messages: dict[str, str] = field(default_factory=dict)  # test id -> substring of its messages
    check: Callable[[dict, Ctx], None] | None = None  # more assertions on (result, ctx)
    assignment: str = ASSIGNMENT
    bug: str = ""  # a grader bug: the row says what must happen; its test is a strict xfail
    observed: str = ""  # what the grader does today, for a row with a bug


# ---------------------------------------------------------------------------------------------
# Building notebooks


def load(path: Path = SOLUTION) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


def grade_id(cell) -> str | None:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return meta.get("grade_id") if isinstance(meta, dict) else None


def find(nb, gid: str) -> int:
    return next(i for i, c in enumerate(nb.cells) if grade_id(c) == gid)


def lean(nb=None) -> nbformat.NotebookNode:
    """The solution up to its last test cell, without the data cell: answers and tests only."""
    nb = copy.deepcopy(nb) if nb is not None else load()
    last = find(nb, "test_sparse_ae_loss")
    nb.cells = [c for c in nb.cells[: last + 1] if "load_digits_data(" not in c.source]
    return nb


def new_cell(code: str):
    cell = nbformat.v4.new_code_cell(code)
    cell["id"] = "h" + uuid.uuid4().hex[:12]
    return cell


def set_answer(nb, gid: str, code: str) -> nbformat.NotebookNode:
    nb.cells[find(nb, gid)].source = code.strip("\n")
    return nb


def prepend(nb, gid: str, code: str) -> nbformat.NotebookNode:
    cell = nb.cells[find(nb, gid)]
    cell.source = code.strip("\n") + "\n\n\n" + cell.source
    return nb


def append(nb, gid: str, code: str) -> nbformat.NotebookNode:
    cell = nb.cells[find(nb, gid)]
    cell.source = cell.source + "\n\n\n" + code.strip("\n")
    return nb


def insert_before(nb, gid: str, code: str) -> nbformat.NotebookNode:
    nb.cells.insert(find(nb, gid), new_cell(code.strip("\n")))
    return nb


def insert_after(nb, gid: str, code: str) -> nbformat.NotebookNode:
    nb.cells.insert(find(nb, gid) + 1, new_cell(code.strip("\n")))
    return nb


def dumps(nb) -> bytes:
    return nbformat.writes(nb).encode("utf-8")


def one(student: str, nb, name: str = f"{ASSIGNMENT}.ipynb") -> Files:
    return {f"{student}/{name}": dumps(nb)}


def nb_case(student: str, make: Callable[[Ctx], nbformat.NotebookNode]) -> Callable[[Ctx], Files]:
    return lambda ctx: one(student, make(ctx))


def full(ctx: Ctx | None = None) -> nbformat.NotebookNode:
    return load()


# Answers that several cases reuse.

L1_IF = '''
def l1_sparsity(z: torch.Tensor) -> torch.Tensor:
    """Right only when {cond} holds; otherwise the sum (a named mistake)."""
    return z.abs().mean() if {cond} else z.abs().sum()
'''

L1_SUM = """
def l1_sparsity(z: torch.Tensor) -> torch.Tensor:
    return z.abs().sum()  # wrong: summed instead of averaged
"""

KL_MEAN = """
def kl_sparsity(a: torch.Tensor, rho: float, eps: float = 1e-6) -> torch.Tensor:
    rho_hat = a.reshape(a.shape[0], -1).mean(dim=0).clamp(eps, 1 - eps)
    kl = rho * torch.log(rho / rho_hat) + (1 - rho) * torch.log((1 - rho) / (1 - rho_hat))
    return kl.mean()  # wrong: averaged over the units instead of summed
"""

# sparse_ae_loss written without calling the other answers, so that a wrong answer above does not
# cost this exercise its points too.
LOSS_INLINE = """
def sparse_ae_loss(x_hat, x, z, lambda_s, penalty="l1", rho=0.05):
    if penalty == "l1":
        sparsity = z.abs().mean()
    elif penalty == "kl":
        act = 2 * (torch.sigmoid(z.abs()) - 0.5)
        rho_hat = act.reshape(act.shape[0], -1).mean(dim=0).clamp(1e-6, 1 - 1e-6)
        sparsity = (rho * torch.log(rho / rho_hat) + (1 - rho) * torch.log((1 - rho) / (1 - rho_hat))).sum()
    else:
        raise ValueError(f"penalty must be 'l1' or 'kl', got {penalty!r}")
    return F.mse_loss(x_hat, x) + lambda_s * sparsity
"""

# A correct but looped KL, and the hidden test's five cases (a student can read them in the
# kernel: the hidden block runs there), to forge records with.
FORGE = """
from helpers.grading import case, grade, uniform


def _kl_loop(a, rho, eps=1e-6):
    a2 = a.reshape(a.shape[0], -1)
    total = torch.zeros((), dtype=a.dtype)
    for j in range(a2.shape[1]):
        r = a2[:, j].mean().clamp(eps, 1 - eps)
        total = total + rho * torch.log(rho / r) + (1 - rho) * torch.log((1 - rho) / (1 - r))
    return total


def _dead_sat(seed):
    t = uniform(32, 12, seed=seed, high=0.3)
    t[:, 2] = 0.0
    t[:, 7] = 1.0
    return t


grade("kl_sparsity", _kl_loop, [
    case(a=uniform(64, 32, high=0.2, seed=21), rho=0.05),
    case(a=uniform(16, 4, 3, 3, seed=22), rho=0.1),
    case(a=_dead_sat(23), rho=0.05),
    case(a=uniform(9, 5, dtype=torch.float64, seed=24), rho=0.3),
    case(a=uniform(40, 6, high=0.2, seed=25), rho=0.05, eps=1e-3),
], grad=["a"])
"""


def with_points(**points: float) -> dict[str, float]:
    return {**POINTS, **points}


# ---------------------------------------------------------------------------------------------
# The cases


def _invalid_json(ctx: Ctx) -> Files:
    return {f"h01_invalid_json/{ASSIGNMENT}.ipynb": dumps(lean())[:4000]}


def _no_cells(ctx: Ctx) -> Files:
    nb = {"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    return {f"h03_no_cells/{ASSIGNMENT}.ipynb": json.dumps(nb).encode()}


def _too_large(ctx: Ctx) -> Files:
    nb = lean()
    cell = nb.cells[find(nb, "l1_sparsity")]
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="z" * (21 << 20))]
    return one("h04_too_large", nb)


def _renamed(ctx: Ctx) -> Files:
    return {f"h05_renamed/{ASSIGNMENT}/Untitled.ipynb": dumps(lean())}


def _unknown(ctx: Ctx) -> Files:
    return {"h06_unknown_assignment/99_gan_basics.ipynb": dumps(lean())}


def student_version(ctx: Ctx | None = None) -> nbformat.NotebookNode:
    """What the release makes of the current solution: answer stubs, no hidden tests.

    Built here rather than read from ``notebooks/``, which lags behind while the solution is being
    edited (its stale test cells would then be restored and noted: another case altogether).
    """
    nb = load()
    for cell in nb.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if meta.get("solution"):
            cell.source = re.sub(
                r"(?ms)^([ \t]*)### BEGIN SOLUTION\n.*?^[ \t]*### END SOLUTION[ \t]*$",
                lambda m: f"{m[1]}# YOUR CODE HERE\n{m[1]}raise NotImplementedError()",
                cell.source,
            )
        elif meta.get("grade"):
            cell.source = re.sub(
                r"(?ms)^### BEGIN HIDDEN TESTS$.*?^### END HIDDEN TESTS$\n?", "", cell.source
            )
    return nb


def _loop_answer(ctx: Ctx):
    return prepend(
        lean(), "sparse_ae_loss", "while True:  # endless; the cell timeout interrupts it\n    pass"
    )


def _loop_ignores_interrupt(ctx: Ctx):
    code = """
import time

while True:  # endless, and deaf to KeyboardInterrupt
    try:
        time.sleep(1)
    except KeyboardInterrupt:
        pass
"""
    return prepend(lean(), "sparse_ae_loss", code)


def _loop_in_test_call(ctx: Ctx):
    code = """
def _spin():
    while True:
        pass


def kl_sparsity(a: torch.Tensor, rho: float, eps: float = 1e-6) -> torch.Tensor:
    if a.shape[0] == 64:  # only the hidden test's first case has a batch of 64
        _spin()
    rho_hat = a.reshape(a.shape[0], -1).mean(dim=0).clamp(eps, 1 - eps)
    kl = rho * torch.log(rho / rho_hat) + (1 - rho) * torch.log((1 - rho) / (1 - rho_hat))
    return kl.sum()
"""
    return set_answer(lean(), "kl_sparsity", code)


def _memory_bomb(ctx: Ctx):
    nb = lean()
    cell = nb.cells[find(nb, "sparse_ae_loss")]
    marker = "    ### BEGIN SOLUTION\n"
    bomb = "    _ballast = bytearray(50 * 10**9)  # 50 GB, on every call\n"
    assert marker in cell.source
    cell.source = cell.source.replace(marker, marker + bomb)
    return nb


def _memory_growth(ctx: Ctx):
    code = """
_hoard = []
try:
    while True:  # touch 64 MB more at every step until the address-space limit stops it
        _hoard.append(b"x" * (64 << 20))
finally:
    print(f"MEMORY grew to {len(_hoard) * 64} MB before failing")
    _hoard.clear()
"""
    return prepend(lean(), "sparse_ae_loss", code)


def _fork_bomb(ctx: Ctx):
    code = '''
import subprocess
import sys

# The bomb runs in a small Python process (forking the kernel itself, torch and all, is slow):
# it forks until the sandbox refuses, kills all but 20 of its children and exits, leaving
# 20 orphans asleep for the grader to clean up.
_BOMB = """
import os, signal, time
children, error = [], None
try:
    for _ in range(2000):
        pid = os.fork()
        if pid == 0:
            time.sleep(600)
            os._exit(0)
        children.append(pid)
except OSError as exc:
    error = f"{type(exc).__name__}: {exc}"
for pid in children[20:]:
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
with open("fork_report.txt", "w") as f:
    f.write(f"{len(children)} {error is not None} {error}")
"""
subprocess.run([sys.executable, "-c", _BOMB], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
               stderr=subprocess.DEVNULL, timeout=120, check=True)
_forks, _capped, _fork_error = open("fork_report.txt").read().split(" ", 2)
FORK_CAPPED = _capped == "True"
print(f"FORKBOMB forks={_forks} capped={FORK_CAPPED} error={_fork_error}")
'''
    nb = insert_before(lean(), "l1_sparsity", code)
    return set_answer(nb, "l1_sparsity", L1_IF.format(cond="FORK_CAPPED"))


def _os_exit(ctx: Ctx):
    return append(lean(), "sparse_ae_loss", "import os\n\nos._exit(0)")


def _network(ctx: Ctx):
    code = """
import socket
import urllib.request

_net = []
for _url in ("http://1.1.1.1/", "https://pypi.org/simple/"):
    try:
        urllib.request.urlopen(_url, timeout=5).read(64)
        _net.append(f"{_url} REACHED")
    except Exception as _exc:
        _net.append(f"{_url} blocked ({type(_exc).__name__})")
try:
    socket.create_connection(("1.1.1.1", 53), timeout=5).close()
    _net.append("tcp 1.1.1.1:53 REACHED")
except OSError as _exc:
    _net.append(f"tcp 1.1.1.1:53 blocked ({type(_exc).__name__})")
NET_BLOCKED = not any("REACHED" in s for s in _net)
with open("network_outcome.txt", "w") as _f:  # in the working copy: allowed
    _f.write("\\n".join(_net))
print("NETWORK " + "; ".join(_net))
"""
    nb = insert_before(lean(), "l1_sparsity", code)
    return set_answer(nb, "l1_sparsity", L1_IF.format(cond="NET_BLOCKED"))


def _read_secrets(ctx: Ctx):
    files = [str(p) for p in ctx.secrets()]
    dirs = [str(p) for p in ctx.secret_dirs()]
    code = f"""
import os
import sys

_leaks = []
for _p in {files!r}:
    try:
        with open(_p, "rb") as _f:
            _f.read(1)
        _leaks.append(_p)
    except OSError:
        pass
# Folders: any file in them is a leak, except the Python environment, helpers/ and this kernel's
# own working copy, which the sandbox binds back on purpose.
_allowed = tuple(os.path.realpath(p) for p in
                 (sys.prefix, sys.base_prefix, {str(ROOT / "helpers")!r}, os.path.dirname(os.getcwd())))
for _d in {dirs!r}:
    for _root, _subdirs, _names in os.walk(_d):
        if os.path.realpath(_root).startswith(_allowed):
            _subdirs[:] = []
            continue
        if _names:
            _leaks.append(os.path.join(_root, _names[0]))
            break
NOTHING_READ = not _leaks
print(f"SECRETS read={{_leaks}}")
"""
    nb = insert_before(lean(), "l1_sparsity", code)
    return set_answer(nb, "l1_sparsity", L1_IF.format(cond="NOTHING_READ"))


def _write_outside(ctx: Ctx):
    targets = [str(p) for p in ctx.write_targets()]
    victims = [str(p) for p in ctx.delete_targets()]
    code = f"""
import os

_written = []
for _p in {targets!r}:
    try:
        with open(_p, "a") as _f:
            _f.write("written by a hostile kernel\\n")
        _written.append(_p)
    except OSError:
        pass
for _p in {victims!r}:
    try:
        os.remove(_p)
        _written.append("deleted " + _p)
    except OSError:
        pass
with open("inside.txt", "w") as _f:  # the working copy itself is writable
    _f.write("fine")
NOTHING_WRITTEN = not _written and open("inside.txt").read() == "fine"
print(f"WRITES succeeded={{_written}}")
"""
    nb = insert_before(lean(), "l1_sparsity", code)
    return set_answer(nb, "l1_sparsity", L1_IF.format(cond="NOTHING_WRITTEN"))


def _giant_output(ctx: Ctx):
    # 40 MB in all: under the grader's 64 MB frame cap even when the kernel sends it as one message
    code = (
        'print("x" * 20_000_000)  # 20 MB at once\nfor _ in range(20):\n    print("y" * 1_000_000)'
    )
    return append(lean(), "l1_sparsity", code)


def _deleted_test(ctx: Ctx):
    nb = lean()
    del nb.cells[find(nb, "test_kl_sparsity")]
    return nb


def _edited_test(ctx: Ctx):
    nb = set_answer(set_answer(lean(), "l1_sparsity", L1_SUM), "sparse_ae_loss", LOSS_INLINE)
    nb.cells[find(nb, "test_l1_sparsity")].source = "pass"
    return nb


def _duplicated_test(ctx: Ctx):
    nb = lean()
    dup = copy.deepcopy(nb.cells[find(nb, "test_unit_activation")])
    dup["id"] = "dup-test-unit-activation"
    nb.cells.append(dup)
    return nb


def _always_equal_float(ctx: Ctx):
    code = """
class _AlwaysEqual(float):
    def __eq__(self, other):
        return True

    def __ne__(self, other):
        return False

    __hash__ = float.__hash__


def kl_sparsity(a: torch.Tensor, rho: float, eps: float = 1e-6) -> torch.Tensor:
    return _AlwaysEqual(0.0)
"""
    return set_answer(set_answer(lean(), "kl_sparsity", code), "sparse_ae_loss", LOSS_INLINE)


def _always_equal_tensor(ctx: Ctx):
    code = """
class _AlwaysEqualTensor(torch.Tensor):
    def __eq__(self, other):
        return True

    def __ne__(self, other):
        return False

    __hash__ = torch.Tensor.__hash__


def kl_sparsity(a: torch.Tensor, rho: float, eps: float = 1e-6) -> torch.Tensor:
    return (a.sum() * 0).as_subclass(_AlwaysEqualTensor)
"""
    return set_answer(set_answer(lean(), "kl_sparsity", code), "sparse_ae_loss", LOSS_INLINE)


PATCH_COMPARISONS = """
import numpy

import helpers.checks

torch.allclose = lambda *args, **kwargs: True
numpy.allclose = lambda *args, **kwargs: True
helpers.checks.check_close = lambda *args, **kwargs: None
"""


def _patched_compare(ctx: Ctx):
    nb = set_answer(lean(), "l1_sparsity", PATCH_COMPARISONS + L1_SUM)
    return set_answer(set_answer(nb, "kl_sparsity", KL_MEAN), "sparse_ae_loss", LOSS_INLINE)


def _no_helpers(ctx: Ctx):
    nb = lean()
    nb.cells = [
        c for c in nb.cells if c.cell_type != "code" or grade_id(c)
    ]  # setup and imports gone
    prepend(nb, "l1_sparsity", "import torch")
    return prepend(nb, "sparse_ae_loss", "import torch.nn.functional as F")


def _fake_records_shift(ctx: Ctx):
    nb = set_answer(lean(), "kl_sparsity", KL_MEAN)
    nb = set_answer(nb, "sparse_ae_loss", LOSS_INLINE)
    patch = "\nimport helpers.checks\n\nhelpers.checks.check_close = lambda *args, **kwargs: None\n"
    return insert_before(nb, "test_kl_sparsity", FORGE + patch)


def _fake_records_silent(ctx: Ctx):
    nb = set_answer(lean(), "kl_sparsity", KL_MEAN)
    nb = set_answer(nb, "sparse_ae_loss", LOSS_INLINE)
    before = (
        FORGE
        + """
import os

import helpers.checks

# The hidden test's own call (occurrence #1) records somewhere nobody looks, and the visible
# checks of that one cell are switched off; both are put back right after it.
_record_dir, _check_close = os.environ["COURSE_RECORD_DIR"], helpers.checks.check_close
os.environ["COURSE_RECORD_DIR"] = os.path.join(_record_dir, os.pardir, "elsewhere")
helpers.checks.check_close = lambda *args, **kwargs: None
"""
    )
    after = """
os.environ["COURSE_RECORD_DIR"] = _record_dir
helpers.checks.check_close = _check_close
"""
    return insert_after(insert_before(nb, "test_kl_sparsity", before), "test_kl_sparsity", after)


def _inplace_unseen(ctx: Ctx):
    code = """
torch.equal = lambda *args, **kwargs: True  # in-place changes now go unseen inside the kernel


def l1_sparsity(z: torch.Tensor) -> torch.Tensor:
    out = z.clone().abs().mean()
    z.data.zero_()  # wipes the caller's tensor
    return out
"""
    return set_answer(set_answer(lean(), "l1_sparsity", code), "sparse_ae_loss", LOSS_INLINE)


# Attacks on the grader itself: processes that outlive the kernel, records that are not plain
# files, floods of the sockets, full disks, hidden-test source printed back.

SURVIVOR = r"""
import os, glob, time
if os.fork():
    os._exit(0)
os.setsid()  # a session of its own, then a second fork: no longer the kernel's child at all
if os.fork():
    os._exit(0)
home = os.getcwd()
me = os.stat(home)
deadline = time.time() + 900
while time.time() < deadline:
    if os.fork():  # a new pid every few ms: whoever lists the pids to kill is always late
        os._exit(0)
    with open(os.path.join(home, "survivor.pid.tmp"), "w") as f:
        f.write(str(os.getpid()))
    os.replace(os.path.join(home, "survivor.pid.tmp"), os.path.join(home, "survivor.pid"))
    for cwd in glob.glob("/proc/[0-9]*/cwd"):  # any kernel of this uid, later ones included
        try:
            st = os.stat(cwd)
            if (st.st_dev, st.st_ino) == (me.st_dev, me.st_ino):
                continue
            for rec in glob.glob(cwd + "/.records/*.npz"):
                os.remove(rec)
        except OSError:
            pass
    time.sleep(0.01)
"""


def survivor(nb=None):
    """The lean solution plus a cell that starts :data:`SURVIVOR` and moves on."""
    code = f"""
import subprocess
import sys

_SURVIVOR = {SURVIVOR!r}
subprocess.Popen([sys.executable, "-c", _SURVIVOR], stdin=subprocess.DEVNULL,
                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
import time

_pids = []
for _ in range(100):  # the survivor is up and hopping before the cell ends
    time.sleep(0.1)
    try:
        _pids.append(open("survivor.pid").read())
    except OSError:
        continue
    if len(set(_pids)) > 2:
        break
print("SURVIVOR hopping", len(set(_pids)) > 2)
"""
    return insert_before(nb if nb is not None else lean(), "l1_sparsity", code)


def _survivor(ctx: Ctx):
    return survivor()


def _replace_records(prefix: str, target: str) -> str:
    """A cell that replaces this kernel's records ``prefix*`` with ``target`` (code making a
    path from the record's name ``_n``), run after the last test cell."""
    return f"""
import glob
import os

_dir = os.environ["COURSE_RECORD_DIR"]
_done = []
for _p in sorted(glob.glob(os.path.join(_dir, {prefix!r} + "*.npz"))):
    _n = os.path.basename(_p)
    os.remove(_p)
    {target}
    _done.append(_n)
print("REPLACED", _done)
"""


NO_VISIBLE_CHECKS = """
import helpers.checks

helpers.checks.check_close = lambda *args, **kwargs: None
"""


def _symlink_classmate(ctx: Ctx):
    home = ctx.out / ".work" / "run" / f"a00_control_first__{ASSIGNMENT}" / "home"
    nb = set_answer(set_answer(lean(), "l1_sparsity", L1_SUM), "sparse_ae_loss", LOSS_INLINE)
    # The visible checks switched off, so that the hidden block records the wrong answer.
    nb = insert_before(nb, "test_l1_sparsity", NO_VISIBLE_CHECKS)
    target = f"os.symlink(os.path.join({str(home / '.records')!r}, _n), _p)"
    return insert_after(nb, "test_sparse_ae_loss", _replace_records("l1_sparsity#", target))


def _symlink_probe(ctx: Ctx):
    nb = lean()
    missing = f"/nonexistent_{ctx.marker}"
    target = f"os.symlink('/etc/shadow' if _n.endswith('#0.npz') else {missing!r}, _p)"
    return insert_after(nb, "test_sparse_ae_loss", _replace_records("kl_sparsity#", target))


def _fifo_record(ctx: Ctx):
    code = _replace_records("unit_activation#", "os.mkfifo(_p)")
    code += '\nos.mkfifo(os.path.join(_dir, "zz_extra#0#0.npz"))\n'
    return insert_after(lean(), "test_sparse_ae_loss", code)


FLOOD = """
_kernel = get_ipython().kernel
_session, _parent = _kernel.session, _kernel.get_parent("shell")
_big = b'{"name": "stdout", "text": "' + b"x" * (100 << 20) + b'"}'
_frames = _session.serialize(_session.msg("stream", _big, parent=_parent), ident=b"stream")
for _ in range(20):  # 2 GB in well-formed 100 MB messages, straight to the iopub socket
    _kernel.iopub_socket.send_multipart(_frames, copy=False)
_small = _session.serialize(_session.msg("stream", {"name": "stdout", "text": "flood "},
                                         parent=_parent), ident=b"stream")
for _ in range(50_000):  # and a long queue of small ones
    _kernel.iopub_socket.send_multipart(_small)
print("FLOOD sent")
"""


def _iopub_flood(ctx: Ctx):
    return insert_after(lean(), "test_l1_sparsity", FLOOD)


DISK = """
import os
import sys


def _fill(folder, step=32 << 20):
    written, i = 0, 0
    try:
        while written < (4 << 30):  # stop at 4 GB: the caps are far below
            with open(os.path.join(folder, f"fill_{i}.bin"), "wb") as f:
                f.write(b"\\0" * step)
            written, i = written + step, i + 1
    except OSError:
        pass
    for j in range(i + 1):
        try:
            os.remove(os.path.join(folder, f"fill_{j}.bin"))
        except OSError:
            pass
    return written >> 20


_sockets = os.path.dirname(sys.argv[sys.argv.index("-f") + 1])  # the connection file's folder
_written = {"/tmp": _fill("/tmp"), "home": _fill(os.getcwd()), "sockets": _fill(_sockets),
            "/dev/shm": _fill("/dev/shm")}
DISK_CAPPED = _written["/tmp"] <= 256 and _written["home"] <= 512 and _written["sockets"] <= 4 \\
    and _written["/dev/shm"] == 0
print(f"DISK written_mb={_written} capped={DISK_CAPPED}")
"""


def _disk_fill(ctx: Ctx):
    nb = insert_before(lean(), "l1_sparsity", DISK)
    return set_answer(nb, "l1_sparsity", L1_IF.format(cond="DISK_CAPPED"))


def _print_hidden(ctx: Ctx):
    code = """
print("\\n".join(In))  # every executed cell, the hidden blocks of the test cells included
raise RuntimeError(_ih[-2])
"""
    nb = insert_after(lean(), "test_sparse_ae_loss", code)
    return insert_after(nb, "test_kl_sparsity", "_ih[-2:]  # shown as the cell's result")


# ---------------------------------------------------------------------------------------------
# Extra checks on a result (ctx gives the paths)


def feedback_path(ctx: Ctx, student: str, assignment: str = ASSIGNMENT) -> Path:
    return ctx.out / "feedback" / student / f"{assignment}.html"


def feedback_text(path: Path) -> str:
    """The visible text of a feedback page (tags, styles and scripts removed, entities decoded)."""
    import html

    raw = path.read_text(encoding="utf-8")
    raw = re.sub(r"(?is)<(style|script)\b.*?</\1\s*>", " ", raw)
    return html.unescape(re.sub(r"(?s)<[^>]+>", "", raw))


def _printed(ctx: Ctx, student: str, pattern: str) -> re.Match:
    text = feedback_text(feedback_path(ctx, student))
    m = re.search(pattern, text)
    assert m, f"{student}: the feedback does not show the cell's report ({pattern!r})"
    return m


def _check_fork(result: dict, ctx: Ctx) -> None:
    m = _printed(ctx, result["student_id"], r"FORKBOMB forks=(\d+) capped=(\w+) error=([^\n]*)")
    assert int(m[1]) < 2000 and m[2] == "True", m[0]


def _check_network(result: dict, ctx: Ctx) -> None:
    m = _printed(ctx, result["student_id"], r"NETWORK http[^\n]*")
    assert "REACHED" not in m[0] and m[0].count("blocked") == 3, m[0]


def _check_secrets(result: dict, ctx: Ctx) -> None:
    m = _printed(ctx, result["student_id"], r"SECRETS read=\[[^\]]*\]")
    assert m[0] == "SECRETS read=[]", m[0]
    for p in [*ctx.secrets(), *ctx.secret_dirs()]:  # they are there: the sandbox hid them
        assert p.exists(), f"{p} should exist on the host, or the case proves nothing"


def _check_writes(result: dict, ctx: Ctx) -> None:
    m = _printed(ctx, result["student_id"], r"WRITES succeeded=\[[^\]]*\]")
    assert m[0] == "WRITES succeeded=[]", m[0]
    leftovers = [p for p in ctx.write_targets() if p.exists()]
    assert not leftovers, f"a kernel wrote outside its working copy: {leftovers}"
    assert all(p.exists() for p in ctx.delete_targets())


def _check_giant(result: dict, ctx: Ctx) -> None:
    assert result.get("output_truncated") is True
    path = feedback_path(ctx, result["student_id"])
    assert path.stat().st_size < 3 << 20, f"feedback of {path.stat().st_size} bytes"
    assert "output limit reached" in feedback_text(path)


def _check_memory(result: dict, ctx: Ctx) -> None:
    tests = result["tests"]
    assert all(
        tests[t]["passed"] for t in ("test_l1_sparsity", "test_unit_activation", "test_kl_sparsity")
    )
    assert not tests["test_sparse_ae_loss"]["passed"]
    if result["status"] == "graded":
        assert result["score"] == FULL - 2


def _check_student_version(result: dict, ctx: Ctx) -> None:
    for gid, t in result["tests"].items():
        assert any("NotImplementedError" in m for m in t["messages"]), (gid, t["messages"])


def _check_survivor(result: dict, ctx: Ctx) -> None:
    _printed(
        ctx, result["student_id"], r"SURVIVOR hopping True"
    )  # it ran: the case proves something


def _check_refused_links(result: dict, ctx: Ctx) -> None:
    refused = [f for f in result["flags"] if "refused" in f]
    assert refused and all("a symbolic link (tampering)" in f for f in refused), result["flags"]
    # The flags read the same whatever the link points to: no probing of host paths.
    assert len({re.sub(r"record \S+ ", "", f) for f in refused}) == 1, refused
    assert not any("Error" in f for f in result["flags"]), result["flags"]


def _check_fifo(result: dict, ctx: Ctx) -> None:
    assert any("a FIFO (tampering)" in f for f in result["flags"]), result["flags"]
    assert result["seconds"] < 60, f"the FIFO cost {result['seconds']} s"


def _check_flood(result: dict, ctx: Ctx) -> None:
    assert 0 < result["worker_peak_mb"] < 1500, (
        f"grader worker peaked at {result['worker_peak_mb']} MB"
    )


def _check_disk(result: dict, ctx: Ctx) -> None:
    m = _printed(ctx, result["student_id"], r"DISK written_mb=\{[^}]*\} capped=(\w+)")
    assert m[1] == "True", m[0]


def _check_hidden_redacted(result: dict, ctx: Ctx) -> None:
    text = feedback_text(feedback_path(ctx, result["student_id"]))
    assert "output removed: it reproduced hidden test code" in text


# ---------------------------------------------------------------------------------------------
# The table

G, F_, T, K = (
    frozenset({"graded"}),
    frozenset({"flagged"}),
    frozenset({"timeout"}),
    frozenset({"kernel_died"}),
)

CASES: list[Case] = [
    Case(
        "a00_control_first",
        "a perfect copy of the solution, graded before every hostile case",
        nb_case("a00_control_first", full),
        G,
        FULL,
        dict(POINTS),
    ),
    Case(
        "h01_invalid_json",
        "a notebook cut off in the middle: not JSON",
        _invalid_json,
        frozenset({"invalid_notebook"}),
        0.0,
    ),
    Case(
        "h02_empty_file",
        "an empty file",
        lambda ctx: {f"h02_empty_file/{ASSIGNMENT}.ipynb": b""},
        frozenset({"empty_notebook"}),
        0.0,
    ),
    Case(
        "h03_no_cells",
        "a valid notebook with no cells",
        _no_cells,
        frozenset({"empty_notebook"}),
        0.0,
    ),
    Case(
        "h04_too_large",
        "a 21 MB notebook (a huge stored output)",
        _too_large,
        frozenset({"too_large"}),
        0.0,
    ),
    Case(
        "h05_renamed",
        "nbgrader layout, notebook renamed to Untitled.ipynb",
        _renamed,
        G,
        FULL,
        dict(POINTS),
        notes=("notebook renamed to 'Untitled.ipynb'",),
    ),
    Case(
        "h06_unknown_assignment",
        "a notebook for an assignment that does not exist",
        _unknown,
        frozenset({"unknown_assignment"}),
        0.0,
        assignment="99_gan_basics",
    ),
    Case(
        "h07_student_version",
        "the student version: every answer a stub raising NotImplementedError",
        nb_case("h07_student_version", student_version),
        G,
        0.0,
        {t: 0.0 for t in POINTS},
        check=_check_student_version,
    ),
    Case(
        "h08_loop_answer",
        "while True: pass in the sparse_ae_loss answer cell",
        nb_case("h08_loop_answer", _loop_answer),
        G,
        FULL - 2,
        with_points(test_sparse_ae_loss=0.0),
    ),
    Case(
        "h09_loop_ignores_interrupt",
        "an endless loop that swallows KeyboardInterrupt",
        nb_case("h09_loop_ignores_interrupt", _loop_ignores_interrupt),
        T,
        FULL - 2,
        with_points(test_sparse_ae_loss=0.0),
    ),
    Case(
        "h10_loop_in_test_call",
        "kl_sparsity loops forever on the hidden test's batch of 64 only",
        nb_case("h10_loop_in_test_call", _loop_in_test_call),
        G,
        FULL - 3,
        with_points(test_kl_sparsity=0.0),
    ),
    Case(
        "h11_memory_bomb",
        "sparse_ae_loss allocates a 50 GB bytearray on every call",
        nb_case("h11_memory_bomb", _memory_bomb),
        G | K,
        None,
        None,
        check=_check_memory,
    ),
    Case(
        "h12_memory_growth",
        "a list grows by 64 MB steps until memory runs out",
        nb_case("h12_memory_growth", _memory_growth),
        G | K,
        None,
        None,
        check=_check_memory,
    ),
    Case(
        "h13_fork_bomb",
        "a helper process os.fork()s in a loop (try/except) until refused and leaves 20 children "
        "asleep; l1_sparsity is right only if fork was refused",
        nb_case("h13_fork_bomb", _fork_bomb),
        G,
        FULL,
        dict(POINTS),
        check=_check_fork,
    ),
    Case(
        "h14_os_exit",
        "os._exit(0) in the sparse_ae_loss answer cell",
        nb_case("h14_os_exit", _os_exit),
        K,
        FULL - 2,
        with_points(test_sparse_ae_loss=0.0),
    ),
    Case(
        "h15_network",
        "urllib to 1.1.1.1 and pypi.org, TCP to 1.1.1.1:53; l1_sparsity is right only if all fail",
        nb_case("h15_network", _network),
        G,
        FULL,
        dict(POINTS),
        check=_check_network,
    ),
    Case(
        "h16_read_secrets",
        "reads the solutions, the grader, .git, another student's submission and result, "
        "the reference records; l1_sparsity is right only if every read fails",
        nb_case("h16_read_secrets", _read_secrets),
        G,
        FULL,
        dict(POINTS),
        check=_check_secrets,
    ),
    Case(
        "h17_write_outside",
        "writes to helpers/, solutions/, the output and submissions folders, /var/tmp, "
        "the grader's home; deletes a course file and another student's notebook",
        nb_case("h17_write_outside", _write_outside),
        G,
        FULL,
        dict(POINTS),
        check=_check_writes,
    ),
    Case(
        "h18_giant_output",
        "prints 20 MB at once, then 20 MB in 1 MB lines",
        nb_case("h18_giant_output", _giant_output),
        G,
        FULL,
        dict(POINTS),
        check=_check_giant,
    ),
    Case(
        "h19_deleted_test",
        "the test_kl_sparsity cell deleted",
        nb_case("h19_deleted_test", _deleted_test),
        F_,
        FULL,
        dict(POINTS),
        notes=("deleted test cell 'test_kl_sparsity' restored",),
    ),
    Case(
        "h20_edited_test",
        "test_l1_sparsity's body replaced by `pass`, l1_sparsity summed instead of averaged",
        nb_case("h20_edited_test", _edited_test),
        F_,
        FULL - 2,
        with_points(test_l1_sparsity=0.0),
        notes=("edited test cell 'test_l1_sparsity' restored",),
        messages={"test_l1_sparsity": "l1_sparsity is wrong"},
    ),
    Case(
        "h21_duplicated_test",
        "test_unit_activation duplicated at the end",
        nb_case("h21_duplicated_test", _duplicated_test),
        F_,
        FULL,
        dict(POINTS),
        notes=("duplicated test cell 'test_unit_activation' removed",),
    ),
    Case(
        "h22_always_equal_float",
        "kl_sparsity returns a float subclass whose __eq__ is always True",
        nb_case("h22_always_equal_float", _always_equal_float),
        G,
        FULL - 3,
        with_points(test_kl_sparsity=0.0),
        messages={"test_kl_sparsity": "kl_sparsity is wrong"},
    ),
    Case(
        "h23_always_equal_tensor",
        "kl_sparsity returns a torch.Tensor subclass whose __eq__ is always True",
        nb_case("h23_always_equal_tensor", _always_equal_tensor),
        G,
        FULL - 3,
        with_points(test_kl_sparsity=0.0),
    ),
    Case(
        "h24_patched_compare",
        "torch.allclose, numpy.allclose and helpers.checks.check_close patched; "
        "l1_sparsity and kl_sparsity wrong",
        nb_case("h24_patched_compare", _patched_compare),
        F_,
        FULL - 5,
        with_points(test_l1_sparsity=0.0, test_kl_sparsity=0.0),
        flags=(
            "torch.allclose was replaced",
            "numpy.allclose was replaced",
            "helpers.checks.check_close was replaced",
        ),
        messages={
            "test_l1_sparsity": "summed instead of averaged",
            "test_kl_sparsity": "averaged over the units instead of summed",
        },
    ),
    Case(
        "h25_no_helpers_import",
        "setup and imports cells removed; answers import torch themselves",
        nb_case("h25_no_helpers_import", _no_helpers),
        G,
        FULL,
        dict(POINTS),
    ),
    Case(
        "h26_fake_records_shift",
        "kl_sparsity wrong; grade('kl_sparsity', <correct looped KL>, <the hidden "
        "cases>) called before the test cell so that the forged records take occurrence #0; check_close off",
        nb_case("h26_fake_records_shift", _fake_records_shift),
        F_,
        FULL - 3,
        with_points(test_kl_sparsity=0.0),
        flags=("records that no hidden test asked for",),
    ),
    Case(
        "h27_fake_records_silent",
        "as h26, but the hidden call records into another folder and the "
        "patches are undone after the test cell: no flag at all",
        nb_case("h27_fake_records_silent", _fake_records_silent),
        G | F_,
        FULL - 3,
        with_points(test_kl_sparsity=0.0),
    ),
    Case(
        "h28_inplace_unseen",
        "l1_sparsity zeroes its input in place and torch.equal is patched so the "
        "kernel-side in-place check sees nothing",
        nb_case("h28_inplace_unseen", _inplace_unseen),
        F_,
        FULL - 2,
        with_points(test_l1_sparsity=0.0),
        flags=("torch.equal was replaced",),
        messages={"test_l1_sparsity": "modified its input in place"},
    ),
    Case(
        "h29_survivor",
        "starts a process that forks, makes a session of its own, forks again and changes its pid "
        "every few ms, deleting the records of every other kernel it can reach through /proc",
        nb_case("h29_survivor", _survivor),
        G,
        FULL,
        dict(POINTS),
        check=_check_survivor,
    ),
    Case(
        "h30_symlink_classmate",
        "l1_sparsity wrong, check_close off; after the tests its records are replaced by "
        "symlinks to the records of a classmate (a00_control_first) at their predictable path",
        nb_case("h30_symlink_classmate", _symlink_classmate),
        F_,
        FULL - 2,
        with_points(test_l1_sparsity=0.0),
        flags=("a symbolic link (tampering)", "helpers.checks.check_close was replaced"),
        check=_check_refused_links,
    ),
    Case(
        "h31_symlink_probe",
        "kl_sparsity right, but its records replaced by symlinks to /etc/shadow and to a "
        "missing path: no points, and the flags must not tell which exists",
        nb_case("h31_symlink_probe", _symlink_probe),
        F_,
        FULL - 3,
        with_points(test_kl_sparsity=0.0),
        check=_check_refused_links,
    ),
    Case(
        "h32_fifo_record",
        "unit_activation's records replaced by FIFOs, and one more FIFO named like a record",
        nb_case("h32_fifo_record", _fifo_record),
        F_,
        FULL - 1,
        with_points(test_unit_activation=0.0),
        check=_check_fifo,
    ),
    Case(
        "h33_iopub_flood",
        "20 messages of 100 MB, then 50 000 small ones, sent straight to the iopub socket",
        nb_case("h33_iopub_flood", _iopub_flood),
        F_,  # the first frame over the cap closes the output channel: the probe's report is lost
        FULL,
        dict(POINTS),
        flags=("integrity probe did not run",),
        check=_check_flood,
    ),
    Case(
        "h34_disk_fill",
        "fills /tmp, the working copy, the socket folder and /dev/shm; l1_sparsity is right only "
        "if every one is capped",
        nb_case("h34_disk_fill", _disk_fill),
        G,
        FULL,
        dict(POINTS),
        check=_check_disk,
    ),
    Case(
        "h35_print_hidden",
        "prints In (the hidden blocks included), shows _ih[-2:] as a result, raises one as an "
        "error",
        nb_case("h35_print_hidden", _print_hidden),
        F_,
        FULL,
        dict(POINTS),
        flags=("hidden test code reproduced",),
        check=_check_hidden_redacted,
    ),
    Case(
        "zz_control_last",
        "a perfect copy of the solution, graded after every hostile case",
        nb_case("zz_control_last", full),
        G,
        FULL,
        dict(POINTS),
    ),
]


def build_corpus(ctx: Ctx) -> dict[str, Path]:
    """Write every case's files under ``ctx.subs``; returns student -> its main file."""
    written = {}
    for c in CASES:
        files = c.build(ctx)
        assert files, c.student
        for rel, data in files.items():
            path = ctx.subs / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            written.setdefault(c.student, path)
    return written
