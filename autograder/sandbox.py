"""Containment of a student's kernel: bubblewrap, a private uid and resource limits.

The kernel of every submission runs

* inside ``bwrap`` with no network, a read-only view of the machine, a private
  ``/tmp``, and tmpfs laid over everything it must not read: the repository
  (``solutions/``, ``autograder/`` with the gradebook and hidden-test sources, the
  tests, ``.git``), the submissions and the grading output (other students), the
  grader's home; ``helpers/`` and the Python environment are bound back read-only
  and its own working copy writable;
* as a uid of its own (when the grader runs as root: one uid per parallel slot, so
  a process bomb exhausts only its own quota and ``pkill -u`` cleans up after it);
* under ``prlimit``: address space (memory), processes, file size, open files
  and CPU seconds.

The kernel talks to the grader over IPC sockets in a folder bound into the
sandbox. Where bubblewrap is missing the kernel still runs under the limits, and
the grader warns loudly that submissions are *not* isolated.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from jupyter_client.manager import AsyncKernelManager

from autograder import paths

BASE_UID = 61000


@dataclass(frozen=True)
class Limits:
    cell_timeout: float = 60.0  # seconds per cell
    notebook_timeout: float = 300.0  # seconds for the whole notebook
    memory_mb: int = 6144  # address space of the kernel (torch maps ~2 GB at import)
    processes: int = 256  # threads count as processes
    file_mb: int = 256  # largest file the kernel may write
    output_kb: int = 512  # outputs kept per notebook; the rest is dropped


@dataclass
class Sandbox:
    """How to wrap one kernel; ``hide`` lists extra paths the kernel must not see."""

    workdir: Path
    rundir: Path
    slot: int = 0
    limits: Limits = field(default_factory=Limits)
    hide: list[Path] = field(default_factory=list)
    use_bwrap: bool | None = None  # None: when available

    @property
    def uid(self) -> int | None:
        """The slot's own uid when we are root and in bubblewrap (which makes the Python
        install reachable for it); None otherwise (the kernel keeps the grader's uid)."""
        return BASE_UID + self.slot if os.geteuid() == 0 and self.bwrap_available() else None

    def bwrap_available(self) -> bool:
        return shutil.which("bwrap") is not None if self.use_bwrap is None else self.use_bwrap

    def prepare(self) -> None:
        for d in (self.workdir, self.rundir, self.workdir / "tmp"):
            d.mkdir(parents=True, exist_ok=True)
        if self.uid is not None:
            for d in (self.workdir, self.rundir, self.workdir / "tmp"):
                os.chown(d, self.uid, self.uid)
            for p in self.workdir.rglob("*"):
                os.lchown(p, self.uid, self.uid)
            self._check_reachable()

    def _check_reachable(self) -> None:
        """Fail early, and say why, when the kernel's uid cannot reach its working copy.

        Folders laid over with a tmpfs are made traversable inside the sandbox; every other
        ancestor is the host's own and must let other users through (e.g. not a 0700 mkdtemp).
        """
        # Paths under a tmpfs layer (the hidden ones, and /tmp) are recreated traversable.
        hidden = [*self._hidden_paths(), Path("/tmp")] if self.bwrap_available() else []
        for parent in self.workdir.resolve().parents:
            if any(parent.is_relative_to(h) for h in hidden):
                continue
            st = parent.stat()
            if not st.st_mode & 0o001 and st.st_uid != self.uid:
                raise PermissionError(
                    f"{parent} (mode {st.st_mode & 0o777:o}) does not let the sandbox uid "
                    f"{self.uid} through to {self.workdir}: chmod o+x it or grade elsewhere"
                )

    def env(self) -> dict[str, str]:
        keep = {k: v for k, v in os.environ.items() if k in {"PATH", "LANG", "LC_ALL", "TZ"}}
        bindir = str(Path(interpreter()).parent)
        return {
            **keep,
            "PATH": bindir + os.pathsep + keep.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.workdir),
            "TMPDIR": str(self.workdir / "tmp"),
            "MPLBACKEND": "module://matplotlib_inline.backend_inline",  # figures as PNG outputs
            "MPLCONFIGDIR": str(self.workdir / "tmp"),
            "NBGRADER_EXECUTION": "autograde",
            "COURSE_FAST": "1",
            "COURSE_OFFLINE": "1",
            "COURSE_RECORD_DIR": str(self.workdir / ".records"),
            "COURSE_DATA_DIR": str(self.workdir / "data"),
            "OMP_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
            "OPENBLAS_NUM_THREADS": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONNOUSERSITE": "1",
        }

    def _hidden_paths(self) -> list[Path]:
        # The whole repository (solutions, tests, .git, ...) goes; helpers/ and the
        # environment are bound back read-only in wrap().
        hidden = [paths.ROOT, paths.COURSE, Path.home(), *self.hide]
        out = {Path(p).resolve() for p in hidden if Path(p).exists()} - {Path("/")}
        return sorted(out, key=lambda q: len(q.parts))  # parents first; workdir bound back last

    def wrap(self, cmd: list[str]) -> list[str]:
        """The kernel command line, wrapped in the sandbox and the limits."""
        lim = self.limits
        limits = [
            "prlimit",
            f"--as={lim.memory_mb << 20}",
            f"--nproc={lim.processes if self.uid is not None else lim.processes + _user_processes()}",
            f"--fsize={lim.file_mb << 20}",
            "--nofile=1024",
            f"--cpu={int(lim.notebook_timeout * 4) + 60}",
            "--core=0",
            "--",
        ]
        drop = []
        if self.uid is not None:
            drop = [
                "setpriv",
                f"--reuid={self.uid}",
                f"--regid={self.uid}",
                "--clear-groups",
                "--no-new-privs",
                "--",
            ]
        if not self.bwrap_available():
            return drop + limits + cmd
        args = [
            "bwrap",
            "--ro-bind",
            "/",
            "/",
            "--dev",
            "/dev",
            "--proc",
            "/proc",
            "--perms",
            "1777",
            "--tmpfs",
            "/tmp",
            "--unshare-net",
            "--unshare-ipc",
            "--unshare-uts",
            "--die-with-parent",
        ]
        if os.geteuid() != 0:
            args.append("--unshare-user")
        keep = [Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve(), paths.ROOT / "helpers"]
        for p in self._hidden_paths():
            args += ["--perms", "0755", "--tmpfs", str(p)]
            for k in keep:
                if k.is_relative_to(p) and k != p:
                    for parent in reversed(k.relative_to(p).parents[:-1]):
                        args += ["--perms", "0755", "--dir", str(p / parent)]
                    args += ["--ro-bind", str(k), str(k)]
        for d in (self.workdir.resolve(), self.rundir.resolve()):
            for parent in reversed(d.parents[:-1]):  # traversable, inside the tmpfs layers too
                args += ["--perms", "0755", "--dir", str(parent)]
            args += ["--bind", str(d), str(d)]
        args += ["--chdir", str(self.workdir), "--"]
        return args + drop + limits + cmd

    def kill_leftovers(self) -> None:
        """Kill every process of this slot's uid (daemons a submission left behind)."""
        if self.uid is not None and shutil.which("pkill"):
            subprocess.run(["pkill", "-KILL", "-U", str(self.uid)], check=False)


def interpreter() -> str:
    """This environment's Python, reached through its resolved folder.

    The sandbox binds the environment back by its real path; a virtual environment that is a
    symlink (say ``.venv`` in the hidden repository, pointing elsewhere) must start from there.
    """
    exe, prefix = Path(sys.executable), Path(sys.prefix)
    try:
        return str(prefix.resolve() / exe.relative_to(prefix))
    except ValueError:
        return str(exe)


def _user_processes() -> int:
    try:
        out = subprocess.run(
            ["ps", "-U", str(os.getuid()), "-L", "--no-headers"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        return len(out.splitlines())
    except OSError:
        return 0


class SandboxKernelManager(AsyncKernelManager):
    """A kernel manager whose kernel starts inside :class:`Sandbox`, over IPC."""

    sandbox: Sandbox | None = None

    def format_kernel_cmd(self, extra_arguments=None):
        assert self.sandbox is not None and self.kernel_spec is not None
        # Signals do not cross the sandbox reliably: interrupt over the control channel.
        self.kernel_spec.interrupt_mode = "message"
        cmd = super().format_kernel_cmd(extra_arguments)
        if cmd and cmd[0] == sys.executable:
            cmd[0] = interpreter()
        return self.sandbox.wrap(cmd)

    def write_connection_file(self, **kwargs):
        result = super().write_connection_file(**kwargs)
        uid = self.sandbox.uid if self.sandbox else None
        if uid is not None:  # the kernel must read it, or it silently falls back to TCP
            os.chown(self.connection_file, uid, uid)
        return result


def make_kernel_manager(sandbox: Sandbox) -> SandboxKernelManager:
    sandbox.prepare()
    km = SandboxKernelManager(kernel_name="python3", transport="ipc")
    km.sandbox = sandbox
    km.ip = str(sandbox.rundir / "kernel")
    km.connection_file = str(sandbox.rundir / "kernel.json")
    return km
