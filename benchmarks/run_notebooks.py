"""Run every solution notebook in fast and full mode; record time, memory and quality.

    python benchmarks/run_notebooks.py                   # every notebook, both modes
    python benchmarks/run_notebooks.py --only 04 --modes full

Notebooks are discovered (``solutions/NN_*.ipynb``), never listed here. Each run executes a
fresh copy of the notebook with nbclient in an empty working folder (no checkpoints: full mode
really trains), with ``COURSE_FAST=1`` (fast) or ``COURSE_FAST=0`` (full) and no
``NBGRADER_EXECUTION``, the variables the notebooks read. It records the wall time (kernel
start included), the CPU time and peak resident memory of the kernel's process tree (sampled
every 0.2 s with psutil), and the headline figures the notebook prints as ``METRIC`` lines
(see ``helpers.metrics.report_metric`` and autograder/AUTHORING.md). Results are merged into
``bench/results.json`` and the README's notebook table is regenerated from them, between the
``<!-- notebook-table:start -->`` and ``<!-- notebook-table:end -->`` markers.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import sys
import tempfile
import threading
import time
from pathlib import Path

import nbformat
import psutil
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
START, END = "<!-- notebook-table:start -->", "<!-- notebook-table:end -->"
METRIC = re.compile(
    r"^METRIC[ \t]+(?P<name>[\w.\-/]+)[ \t]*=[ \t]*"
    r"(?P<value>[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|nan|inf))"
    r"[ \t]*(?P<unit>[^\s(]*)"
    r"(?:[ \t]*\(target[ \t]*(?P<op><=|>=|<|>|==)[ \t]*"
    r"(?P<target>[-+]?\d+\.?\d*(?:[eE][-+]?\d+)?)[ \t]*\))?",
    re.MULTILINE,
)
OPS = {
    "<=": lambda a, b: a <= b,
    ">=": lambda a, b: a >= b,
    "<": lambda a, b: a < b,
    ">": lambda a, b: a > b,
    "==": lambda a, b: a == b,
}


def parse_metrics(text: str) -> dict[str, dict]:
    """``METRIC name = value [unit] [(target OP value)]`` lines -> {name: {value, unit, ...}}."""
    found = {}
    for m in METRIC.finditer(text):
        value = float(m["value"])
        entry: dict = {"value": value, "unit": m["unit"] or ""}
        if m["op"]:
            target = float(m["target"])
            entry.update(op=m["op"], target=target, met=bool(OPS[m["op"]](value, target)))
        found[m["name"]] = entry
    return found


def discover(only: list[str] | None) -> list[Path]:
    paths = sorted((ROOT / "solutions").glob("[0-9][0-9]_*.ipynb"))
    if only:
        paths = [p for p in paths if any(p.stem.startswith(o) or p.stem == o for o in only)]
    return paths


class TreeSampler(threading.Thread):
    """Peak RSS and CPU time of a process and its descendants, sampled in the background."""

    def __init__(self, get_pid, interval: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.get_pid, self.interval = get_pid, interval
        self.peak_rss, self.cpu_s, self._halt = 0, 0.0, threading.Event()
        self._cpu: dict[int, float] = {}

    def run(self) -> None:
        while not self._halt.is_set():
            pid = self.get_pid()
            if pid:
                try:
                    root = psutil.Process(pid)
                    procs = [root, *root.children(recursive=True)]
                except psutil.Error:
                    procs = []
                rss = 0
                for p in procs:
                    try:
                        rss += p.memory_info().rss
                        t = p.cpu_times()
                        self._cpu[p.pid] = t.user + t.system
                    except psutil.Error:
                        continue
                self.peak_rss = max(self.peak_rss, rss)
                self.cpu_s = sum(self._cpu.values())
            self._halt.wait(self.interval)

    def stop(self) -> None:
        self._halt.set()
        self.join()


def _kernel_pid(client: NotebookClient) -> int | None:
    km = getattr(client, "km", None)
    provisioner = getattr(km, "provisioner", None) if km is not None else None
    return getattr(provisioner, "pid", None)


def run_notebook(path: Path, mode: str, timeout: int, keep: Path | None = None) -> dict:
    nb = nbformat.read(path, as_version=4)
    env = {k: v for k, v in os.environ.items() if k != "NBGRADER_EXECUTION"}
    env.update(COURSE_FAST="1" if mode == "fast" else "0")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    with tempfile.TemporaryDirectory(prefix=f"bench-{path.stem}-") as work:
        client = NotebookClient(
            nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": work}}
        )
        sampler = TreeSampler(lambda: _kernel_pid(client))
        sampler.start()
        start, error = time.perf_counter(), None
        try:
            client.execute(env=env, cwd=work)
        except Exception as exc:  # a failing notebook is a result, not a crash of the runner
            lines = str(exc).strip().splitlines()
            error = f"{type(exc).__name__}: {lines[-1] if lines else 'no message (did the kernel die?)'}"
        wall = time.perf_counter() - start
        sampler.stop()
    if keep is not None:  # the executed notebook, outputs included, for reading the figures
        keep.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, keep / f"{path.stem}-{mode}.ipynb")
    text = "\n".join(
        out.get("text", "")
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
        if out.get("output_type") == "stream"
    )
    return {
        "status": "error" if error else "ok",
        "error": error,
        "wall_s": round(wall, 1),
        "kernel_cpu_s": round(sampler.cpu_s, 1),
        "peak_rss_mib": round(sampler.peak_rss / 2**20, 1),
        "metrics": parse_metrics(text),
        "finished": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
    }


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import torch

    return {
        "platform": platform.platform(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "torch": torch.__version__,
    }


# --------------------------------------------------------------------------- README table
def _duration(run: dict | None) -> str:
    if not run:
        return "–"
    if run["status"] != "ok":
        return "fails"
    s = run["wall_s"]
    return f"{s:.0f} s" if s < 60 else f"{int(s // 60)} min {s % 60:02.0f} s"


def _figure(name: str, m: dict) -> str:
    unit = f" {m['unit']}" if m.get("unit") else ""
    text = f"{name} {m['value']:.4g}{unit}"
    if "op" in m:
        text += f" ({m['op']} {m['target']:g} {'✓' if m['met'] else '✗'})"
    return text


def _old_topics(readme: str) -> dict[str, str]:
    """Topics column of the current table, by notebook stem, so hand-written topics survive."""
    topics = {}
    if START in readme and END in readme:
        block = readme.split(START, 1)[1].split(END, 1)[0]
        for line in block.splitlines():
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            link = re.search(r"\((?:notebooks|solutions)/(\d\d_[\w-]+)\.ipynb\)", line)
            if link and len(cells) > 2:
                topics[link[1]] = cells[2]
    return topics


def _title(path: Path) -> str:
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            m = re.search(r"^#\s+(?:\d+\s*·\s*)?(.+)$", cell.source, re.MULTILINE)
            if m:
                return m[1].strip()
    return path.stem


def render_table(results: dict, readme: str, repo_url: str) -> str:
    topics = _old_topics(readme)
    rows = [
        "| # | notebook | topics | fast run | full run | full-mode figures (target) | Colab |",
        "|---|---|---|---|---|---|---|",
    ]
    for path in discover(None):  # every notebook gets a row, measured or not ("–")
        stem, runs = path.stem, results["notebooks"].get(path.stem, {})
        full = runs.get("full") or {}
        figures = "; ".join(_figure(k, v) for k, v in full.get("metrics", {}).items()) or "–"
        colab = f"{repo_url}/blob/main/notebooks/{stem}.ipynb".replace(
            "https://github.com/", "https://colab.research.google.com/github/"
        )
        rows.append(
            f"| {stem[:2]} | [{_title(path)}](notebooks/{stem}.ipynb) | {topics.get(stem, '')} "
            f"| {_duration(runs.get('fast'))} | {_duration(full)} | {figures} | [open]({colab}) |"
        )
    m = results["machine"]
    loads = [r["loadavg_after"][0] for runs in results["notebooks"].values() for r in runs.values()]
    when = max(r["finished"] for runs in results["notebooks"].values() for r in runs.values())
    note = (
        f"\nGenerated by `make bench-notebooks` (`benchmarks/run_notebooks.py`, raw data in "
        f"`bench/results.json`) on {when[:10]}: {m['cpu']}, {m['cores']} cores, "
        f"{m['memory_gib']} GiB, torch {m['torch']}; 1-minute load average "
        f"{min(loads):.1f}-{max(loads):.1f} while it ran (other jobs shared the cores, so the "
        "times are upper bounds). Times are wall clock from kernel start, about 7 s of which "
        "is starting the kernel and importing torch; each run starts without checkpoints. "
        "Peak memory and kernel CPU time are in the JSON. Fast mode is `COURSE_FAST=1`, "
        "which nbgrader also switches on."
    )
    if "| – |" in "\n".join(rows):
        note += (
            " A dash: not measured in this run (not attempted, or cut short); "
            "`make bench-notebooks ONLY=NN` fills it in."
        )
    note += "\n"
    return "\n".join(rows) + "\n" + note


def update_readme(results: dict, readme_path: Path) -> None:
    readme = readme_path.read_text()
    if START not in readme or END not in readme:
        raise SystemExit(f"{readme_path} has no {START} ... {END} markers")
    repo = _repo_url()
    head, rest = readme.split(START, 1)
    _, tail = rest.split(END, 1)
    table = render_table(results, readme, repo)
    readme_path.write_text(f"{head}{START}\n{table}{END}{tail}")


def _repo_url() -> str:
    text = (ROOT / "pyproject.toml").read_text()
    m = re.search(r'^Repository\s*=\s*"([^"]+)"', text, re.MULTILINE)
    return m[1].rstrip("/") if m else "https://github.com/generative-dl-course/course"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="*", help="notebook prefixes, e.g. 01 04")
    parser.add_argument("--modes", nargs="+", default=["fast", "full"], choices=["fast", "full"])
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results.json")
    parser.add_argument("--readme", type=Path, default=ROOT / "README.md")
    parser.add_argument("--no-readme", action="store_true", help="do not rewrite the README")
    parser.add_argument("--timeout", type=int, default=3600, help="per-cell limit in seconds")
    parser.add_argument("--keep", type=Path, help="save the executed notebooks in this folder")
    args = parser.parse_args(argv)

    results = {"notebooks": {}}
    if args.out.exists():
        results = json.loads(args.out.read_text())
    results["machine"] = machine()
    failed = False
    for path in discover(args.only):
        for mode in args.modes:
            load = os.getloadavg()[0]
            print(f"{path.stem} [{mode}] (load {load:.1f}) ...", end=" ", flush=True)
            run = run_notebook(path, mode, args.timeout, args.keep)
            run["loadavg_before"] = round(load, 2)
            results["notebooks"].setdefault(path.stem, {})[mode] = run
            figures = ", ".join(_figure(k, v) for k, v in run["metrics"].items())
            print(f"{run['status']} {run['wall_s']} s, {run['peak_rss_mib']} MiB {figures}")
            if run["error"]:
                print(f"  {run['error']}")
                failed = True
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n")
    if not args.no_readme:
        update_readme(results, args.readme)
        print(f"updated the notebook table of {args.readme}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
