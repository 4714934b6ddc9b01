"""Run a notebook in a sandboxed kernel, cell by cell, under time and output limits."""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError

from autograder.sandbox import Sandbox, make_kernel_manager

TIMEOUT_ERROR = {
    "ename": "CellTimeoutError",
    "evalue": "the cell ran past the grader's time limit and was interrupted",
    "traceback": ["CellTimeoutError: the cell ran past the grader's time limit"],
}


@dataclass
class CellResult:
    index: int
    status: str  # "ok", "error", "timeout", "not_run"
    error: str = ""
    records: list[str] = field(default_factory=list)  # record files written while this cell ran


@dataclass
class RunResult:
    cells: list[CellResult] = field(default_factory=list)
    status: str = "ok"  # "ok", "timeout", "kernel_died", "kernel_failed"
    reason: str = ""
    truncated: bool = False
    seconds: float = 0.0
    peak_mb: int = 0  # the grader's own peak memory (RSS) while it ran the kernel
    late_records: list[str] = field(default_factory=list)  # written after the last cell ended


class CappedClient(NotebookClient):
    """A NotebookClient that keeps at most ``output_bytes`` of outputs per notebook.

    The outputs of ``trusted`` cells (the grader's own probe) are always kept. ``timed_out`` and
    ``idle`` tell, after each cell, whether nbclient had to interrupt it and whether the kernel then
    reported the cell finished: interrupted but never idle means the cell ignored the interrupt.
    """

    def __init__(self, nb, output_bytes: int, trusted: frozenset[int] = frozenset(), **kw):
        super().__init__(nb, **kw)
        self.output_budget = output_bytes
        self.truncated = False
        self.trusted = trusted
        self.timed_out = False
        self.idle = False

    async def _async_handle_timeout(self, timeout, cell=None):
        self.timed_out = True
        return await super()._async_handle_timeout(timeout, cell)

    def process_message(self, msg, cell, cell_index):
        if (
            msg.get("msg_type") == "status"
            and msg.get("content", {}).get("execution_state") == "idle"
        ):
            self.idle = True
        return super().process_message(msg, cell, cell_index)

    def output(self, outs, msg, display_id, cell_index):
        if cell_index in self.trusted:
            return super().output(outs, msg, display_id, cell_index)
        content = msg.get("content", {})
        size = len(str(content.get("text", ""))) + sum(
            len(str(v)) for v in content.get("data", {}).values()
        )
        if msg.get("msg_type") == "error":  # errors always kept (short), they decide statuses
            content["traceback"] = [str(t)[:2000] for t in content.get("traceback", [])[-20:]]
            return super().output(outs, msg, display_id, cell_index)
        self.output_budget -= size
        if self.output_budget < 0:
            if not self.truncated:
                self.truncated = True
                outs.append(
                    nbformat.v4.new_output(
                        "stream",
                        name="stderr",
                        text="[grader] output limit reached: further output dropped\n",
                    )
                )
            return None
        return super().output(outs, msg, display_id, cell_index)


def _error_text(cell) -> str:
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error":
            return f"{out.get('ename', '')}: {out.get('evalue', '')}"[:1000]
    return ""


def _records_state(directory: Path) -> dict[str, tuple[int, ...]]:
    """Name -> (mtime, ctime, size) of the record files, read without following any link.

    ctime too: a kernel can set a file's mtime back (os.utime), never its ctime."""
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError:
        return {}
    try:
        with os.scandir(fd) as entries:
            return {
                e.name[: -len(".npz")]: (st.st_mtime_ns, st.st_ctime_ns, st.st_size)
                for e in entries
                if e.name.endswith(".npz") and (st := e.stat(follow_symlinks=False))
            }
    except OSError:
        return {}
    finally:
        os.close(fd)


async def _answers(client: CappedClient, timeout: float = 10.0) -> bool:
    """Whether an interrupted kernel answers on its shell channel again, i.e. the cell stopped.

    The idle status on iopub says so too, unless a flood closed that channel (an oversized
    message makes the grader's side drop it): the shell channel is the kernel's own word.
    """
    try:
        await client.kc.kernel_info(reply=True, timeout=timeout)
        return True
    except Exception:  # noqa: BLE001 - a timeout, or a kernel gone
        return False


def _stop(result: RunResult, last: CellResult, rest: list[int], status: str, reason: str) -> None:
    """End the run at ``last``: the remaining cells are marked not run."""
    result.cells.append(last)
    result.cells += [CellResult(j, "not_run") for j in rest]
    result.status, result.reason = status, reason


async def _run(nb, sandbox: Sandbox, trusted: frozenset[int] = frozenset()) -> RunResult:
    lim = sandbox.limits
    km = make_kernel_manager(sandbox)
    records_dir = sandbox.workdir / ".records"
    client = CappedClient(
        nb,
        output_bytes=lim.output_kb << 10,
        trusted=trusted,
        km=km,
        timeout=int(lim.cell_timeout),
        startup_timeout=120,
        allow_errors=True,
        interrupt_on_timeout=True,
        error_on_timeout=TIMEOUT_ERROR,
        record_timing=False,
        kernel_name="python3",
    )
    result = RunResult()
    start = time.monotonic()
    code_cells = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    # Every change to the records between two snapshots is laid at the door of the cell that
    # ran in between (a thread may write between cells), and the changes after the last one
    # at nobody's (late_records).
    state = _records_state(records_dir)
    try:
        async with client.async_setup_kernel(cwd=str(sandbox.workdir), env=sandbox.env()):
            for pos, i in enumerate(code_cells):
                remaining = lim.notebook_timeout - (time.monotonic() - start)
                if remaining <= 0:
                    result.status, result.reason = (
                        "timeout",
                        f"notebook time limit ({lim.notebook_timeout:.0f} s)",
                    )
                    result.cells += [CellResult(j, "not_run") for j in code_cells[pos:]]
                    break
                cell = nb.cells[i]
                client.timed_out = client.idle = False
                before = state
                try:
                    # A hard deadline on top of nbclient's own (interrupting) cell timeout.
                    await asyncio.wait_for(
                        client.async_execute_cell(cell, i),
                        timeout=min(remaining, lim.cell_timeout * 2 + 10),
                    )
                except (asyncio.TimeoutError, CellTimeoutError):
                    _stop(
                        result,
                        CellResult(i, "timeout", "time limit"),
                        code_cells[pos + 1 :],
                        "timeout",
                        f"cell {i} did not stop when interrupted",
                    )
                    break
                except DeadKernelError:
                    _stop(
                        result,
                        CellResult(i, "error", "the kernel died"),
                        code_cells[pos + 1 :],
                        "kernel_died",
                        f"the kernel died in cell {i} (os._exit, a crash, or the memory limit)",
                    )
                    break
                if client.timed_out and not client.idle and not await _answers(client):
                    _stop(
                        result,
                        CellResult(i, "timeout", "did not stop when interrupted"),
                        code_cells[pos + 1 :],
                        "timeout",
                        f"cell {i} did not stop when interrupted",
                    )
                    break
                err = _error_text(cell)
                status = (
                    "timeout"
                    if client.timed_out or err.startswith("CellTimeoutError")
                    else ("error" if err else "ok")
                )
                after = state = _records_state(records_dir)
                written = sorted(k for k, v in after.items() if before.get(k) != v)
                result.cells.append(CellResult(i, status, err, written))
    except Exception as exc:  # noqa: BLE001 - kernel start failures and the like
        if not result.cells:
            result.status, result.reason = "kernel_failed", f"{type(exc).__name__}: {exc}"[:500]
        elif result.status == "ok":
            result.status, result.reason = "kernel_died", f"{type(exc).__name__}: {exc}"[:500]
        done = {c.index for c in result.cells}
        result.cells += [CellResult(j, "not_run") for j in code_cells if j not in done]
    finally:
        try:
            if km.has_kernel:
                await km.shutdown_kernel(now=True)
        except Exception:  # noqa: BLE001
            pass
        sandbox.finish()  # every process of the run gone, provably, before anything else
        if km.zmq_context is not None:
            with contextlib.suppress(Exception):
                if client.kc is not None:
                    client.kc.stop_channels()
            km.zmq_context.destroy(linger=0)
    final = _records_state(records_dir)
    result.late_records = sorted(k for k, v in final.items() if state.get(k) != v)
    result.truncated = client.truncated
    result.seconds = time.monotonic() - start
    result.peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss >> 10
    return result


def run_notebook(nb, sandbox: Sandbox, trusted: frozenset[int] = frozenset()) -> RunResult:
    """Execute ``nb`` in place (outputs are added to its cells) and report each cell.

    ``trusted``: indices of the grader's own cells, whose outputs never count against the limit.
    """
    return asyncio.run(_run(nb, sandbox, trusted))
