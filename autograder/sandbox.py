"""Containment of a student's kernel: bubblewrap, a private uid and resource limits.

The kernel of every submission runs

* inside ``bwrap`` with no network, a read-only view of the machine, and tmpfs laid over
  everything it must not read: the repository (``solutions/``, ``autograder/`` with the
  gradebook and hidden-test sources, the tests, ``.git``), the submissions and the grading
  output (other students), the reference records, the grader's home (a hidden *file*, such as a
  zip of submissions, gets ``/dev/null`` bound over it); ``helpers/`` and the Python environment
  are bound back read-only and its own working copy writable;
* in a PID namespace of its own (``--unshare-pid``): it sees only its own processes, and when
  the kernel ends, is killed, or the grader dies, the kernel of Linux kills every process in
  the namespace at once, however it forked, whatever session it made. Inside, the kernel runs
  under a tiny parent process (``ipykernel`` quits when its parent is pid 1);
* as a uid of its own (when the grader runs as root: one uid per parallel slot, and another
  range for the reference runs). A slot does not start while any process of its uid exists,
  and after the run every process of the uid is killed at once (``kill(-1)`` as that uid, which
  a forking process cannot outrun) and the grader waits until none is left;
* with every writable place size-capped: the private ``/tmp`` (``bwrap --size``), and, when the
  grader runs as root in a private mount namespace (``autograder.grade`` starts each worker
  so), the working copy and the socket folder on tmpfs of their own with size and inode caps;
* under ``prlimit``: address space (memory), processes, file size, open files and CPU seconds.

The kernel talks to the grader over IPC sockets in a folder bound into the
sandbox. Where bubblewrap is missing the kernel still runs under the limits, and
the grader warns loudly that submissions are *not* isolated.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import zmq
import zmq.asyncio
from jupyter_client.manager import AsyncKernelManager

from autograder import paths

BASE_UID = 61000
REFERENCE_SLOT = 10000  # reference runs use slot REFERENCE_SLOT + n: uids students never get
RUNDIR_MB = 4  # the socket folder holds sockets and the connection file only
# The grader's side of the kernel's sockets: a frame over MAX_MESSAGE_MB closes the channel
# (libzmq drops the peer; the kernel's later outputs are lost), and at most IOPUB_QUEUE messages
# wait there (more stay in the kernel's own queue, or are dropped): at most 1 GiB in all.
MAX_MESSAGE_MB = 64
IOPUB_QUEUE = 16

# The kernel's parent inside the PID namespace: ipykernel exits at once when its parent is
# pid 1 (bwrap's reaper), so the kernel runs as the child of this and this waits for it.
KERNEL_PARENT = (
    "import os, sys\n"
    "pid = os.fork()\n"
    "if pid == 0:\n"
    "    os.execvp(sys.argv[1], sys.argv[1:])\n"
    "os._exit(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) & 255)\n"
)


@dataclass(frozen=True)
class Limits:
    cell_timeout: float = 60.0  # seconds per cell
    notebook_timeout: float = 300.0  # seconds for the whole notebook
    memory_mb: int = 6144  # address space of the kernel (torch maps ~2 GB at import)
    processes: int = 256  # threads count as processes
    file_mb: int = 256  # largest file the kernel may write
    output_kb: int = 512  # outputs kept per notebook; the rest is dropped
    disk_mb: int = 512  # the working copy (a tmpfs of this size when the grader is root)
    tmp_mb: int = 256  # the private /tmp
    worker_memory_mb: int = 6144  # address space of the grader's worker (torch alone maps ~3.5 GB)


@dataclass
class Sandbox:
    """How to wrap one kernel; ``hide`` lists extra paths the kernel must not see.

    ``private_mounts``: this process runs in a mount namespace of its own (the grader starts
    its workers so), so the working copy and the socket folder may get tmpfs of their own.
    """

    workdir: Path
    rundir: Path
    slot: int = 0
    limits: Limits = field(default_factory=Limits)
    hide: list[Path] = field(default_factory=list)
    use_bwrap: bool | None = None  # None: when available
    private_mounts: bool = False
    mounted: list[Path] = field(default_factory=list)

    @property
    def uid(self) -> int | None:
        """The slot's own uid when we are root and in bubblewrap (which makes the Python
        install reachable for it); None otherwise (the kernel keeps the grader's uid)."""
        return BASE_UID + self.slot if os.geteuid() == 0 and self.bwrap_available() else None

    def bwrap_available(self) -> bool:
        return shutil.which("bwrap") is not None if self.use_bwrap is None else self.use_bwrap

    def prepare(self) -> None:
        if self.uid is not None:  # nothing of an earlier run may meet this one
            kill_uid(self.uid)
        for d in (self.workdir, self.rundir):
            d.mkdir(parents=True, exist_ok=True)
        if self.uid is not None and self.private_mounts:
            lim = self.limits
            self._mount(self.workdir, lim.disk_mb, max(1024, lim.disk_mb * 64))
            self._mount(self.rundir, RUNDIR_MB, 64)
        (self.workdir / "tmp").mkdir(exist_ok=True)
        if self.uid is not None:
            for d in (self.workdir, self.rundir, self.workdir / "tmp"):
                os.chown(d, self.uid, self.uid)
            for p in self.workdir.rglob("*"):
                os.lchown(p, self.uid, self.uid)
            self._check_reachable()

    def _mount(self, where: Path, size_mb: int, inodes: int) -> None:
        opts = f"size={size_mb}m,nr_inodes={inodes},mode=0755,uid={self.uid},gid={self.uid}"
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"{opts},nosuid,nodev", "tmpfs", str(where)],
            check=True,
            capture_output=True,
        )
        self.mounted.append(where)

    def finish(self) -> None:
        """After the kernel: every process of the slot's uid dead, the socket folder released."""
        if self.uid is not None:
            kill_uid(self.uid)
        if self.rundir in self.mounted:  # the working copy stays: its records are read next
            subprocess.run(["umount", "-l", str(self.rundir)], check=False, capture_output=True)
            self.mounted.remove(self.rundir)

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
        drop = [*_as_uid(self.uid)[:-1], "--no-new-privs", "--"] if self.uid is not None else []
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
            "--size",
            str(lim.tmp_mb << 20),
            "--tmpfs",
            "/tmp",
            "--unshare-net",
            "--unshare-ipc",
            "--unshare-uts",
            "--unshare-pid",
            "--die-with-parent",
        ]
        if os.geteuid() != 0:
            args.append("--unshare-user")
        keep = [Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve(), paths.ROOT / "helpers"]
        for p in self._hidden_paths():
            if not p.is_dir():  # a file (a zip of submissions): a tmpfs cannot cover it, and
                # a read-only bind is mounted nodev (unreadable): reads empty, writes vanish
                args += ["--dev-bind", "/dev/null", str(p)]
                continue
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
        parent = [interpreter(), "-I", "-S", "-c", KERNEL_PARENT]
        return args + drop + limits + parent + cmd


def uid_processes(uid: int) -> list[int]:
    """Live processes (zombies aside) whose real, effective, saved or file uid is ``uid``."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            status = (proc / "status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        if fields.get("State", "").strip().startswith(("Z", "X")):
            continue
        if str(uid) in fields.get("Uid", "").split():
            found.append(int(proc.name))
    return found


def kill_uid(uid: int, timeout: float = 20.0) -> None:
    """Kill every process of ``uid``, and wait until ``/proc`` lists none.

    ``kill(-1, SIGKILL)`` sent *as that uid* reaches all of its processes in one pass over the
    process table, during which none can fork: a process that keeps changing its pid (fork and
    exit) cannot slip through, as it can between the reads of ``pkill`` or of ``/proc``. So it is
    sent first, every time, and ``/proc`` is only read to see that the dead are gone.
    """
    deadline = time.monotonic() + timeout
    while True:
        subprocess.run(  # as the uid: kill(-1) spares the caller and reaches all the rest
            [*_as_uid(uid), "kill", "-KILL", "--", "-1"], check=False, capture_output=True
        )
        pids = uid_processes(uid)
        if not pids:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{len(pids)} processes of uid {uid} survive SIGKILL: {pids[:5]}")
        time.sleep(0.05)


def _as_uid(uid: int) -> list[str]:
    return ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--"]


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


def client_context() -> zmq.asyncio.Context:
    """A zmq context whose sockets refuse oversized messages and queue few: a kernel that floods
    its sockets (100 MB frames, thousands of messages) cannot fill the grader's memory."""
    ctx = zmq.asyncio.Context()
    ctx.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_MB << 20)
    ctx.setsockopt(zmq.RCVHWM, IOPUB_QUEUE)
    return ctx


class SandboxKernelManager(AsyncKernelManager):
    """A kernel manager whose kernel starts inside :class:`Sandbox`, over IPC."""

    sandbox: Sandbox | None = None
    zmq_context: zmq.asyncio.Context | None = None

    def format_kernel_cmd(self, extra_arguments=None):
        assert self.sandbox is not None and self.kernel_spec is not None
        # Signals do not cross the sandbox reliably: interrupt over the control channel.
        self.kernel_spec.interrupt_mode = "message"
        cmd = super().format_kernel_cmd(extra_arguments)
        if cmd and cmd[0] == sys.executable:
            cmd[0] = interpreter()
        return self.sandbox.wrap(cmd)

    def client(self, **kwargs):
        if self.zmq_context is None:
            self.zmq_context = client_context()
        return super().client(context=self.zmq_context, **kwargs)

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
