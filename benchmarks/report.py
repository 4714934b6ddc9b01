"""``bench/results.json`` -> ``bench/report.md`` with its plots, every figure next to its target.

    python benchmarks/report.py [--results bench/results.json]

Reads what the three benchmarks merged into the results file (``notebooks`` from
``run_notebooks.py``, ``grading`` from ``bench_grading.py``, ``vectorised`` from
``bench_sparsity.py``), whichever are present, and writes a Markdown report with a pass/fail
mark beside every figure that has a target, the machine it ran on (cores, load, GPU or "no
GPU") and two plots: notebook run times per mode, grading throughput against plain nbgrader.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def mark(met: bool | None) -> str:
    return "" if met is None else ("pass" if met else "**FAIL**")


def machine_lines(results: dict) -> list[str]:
    m = results.get("machine", {})
    gpu = m.get("gpu") or "no GPU"
    lines = [
        f"- machine: {m.get('cpu', '?')}, {m.get('cores', '?')} cores, "
        f"{m.get('memory_gib', '?')} GiB, {gpu}; torch {m.get('torch', '?')}"
    ]
    if "grading" in results:
        load = results["grading"].get("load_average")
        lines.append(f"- load average during the grading benchmark: {load}")
    return lines


def notebook_section(results: dict, out: Path) -> list[str]:
    notebooks = results.get("notebooks", {})
    if not notebooks:
        return []
    lines = [
        "## Notebooks",
        "",
        "| notebook | mode | wall s | CPU s | peak RSS MiB | figure | value | target | |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for stem, runs in sorted(notebooks.items()):
        for mode, run in sorted(runs.items()):
            metrics = run.get("metrics", {}) or {"-": {}}
            for i, (name, m) in enumerate(sorted(metrics.items())):
                head = (
                    f"{stem} | {mode} | {run.get('wall_s', '')} | {run.get('kernel_cpu_s', '')} | "
                    f"{run.get('peak_rss_mib', '')}"
                    if i == 0
                    else " | | | |"
                )
                target = f"{m['op']} {m['target']:g}" if "op" in m else ""
                value = f"{m['value']:g} {m.get('unit', '')}".strip() if "value" in m else ""
                lines.append(f"| {head} | {name} | {value} | {target} | {mark(m.get('met'))} |")
    fig, ax = plt.subplots(figsize=(8, 0.4 * len(notebooks) + 1.5))
    stems = sorted(notebooks)
    for k, mode in enumerate(("fast", "full")):
        walls = [notebooks[s].get(mode, {}).get("wall_s", 0) or 0 for s in stems]
        ax.barh([i + 0.4 * k for i in range(len(stems))], walls, height=0.4, label=mode)
    ax.axvline(300, color="k", ls="--", lw=1, label="full-mode target (5 min)")
    ax.set(
        yticks=[i + 0.2 for i in range(len(stems))],
        yticklabels=stems,
        xlabel="wall time (s)",
        title="Notebook run time per mode",
    )
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "notebooks.png", dpi=100)
    plt.close(fig)
    return [*lines, "", "![notebook run times](notebooks.png)", ""]


def grading_section(results: dict, out: Path) -> list[str]:
    g = results.get("grading")
    if not g:
        return []
    runs = {k: v for k, v in g.items() if isinstance(v, dict) and "seconds" in v}
    t = g["target"]
    lines = [
        "## Grading throughput",
        "",
        f"{g['submissions']} submissions of {len(g['assignments'])} assignments "
        "(perfect, untouched and partial), one run.",
        "",
        "| grader | seconds | submissions / min | ratio to nbgrader |",
        "|---|---|---|---|",
        *(
            f"| {k} | {v['seconds']} | {v['per_minute']} | {v['ratio_to_nbgrader']} |"
            for k, v in runs.items()
        ),
        "",
        f"Target: at least {t['ratio_to_nbgrader']}x plain nbgrader's throughput with the sandbox "
        f"on; measured {t['measured']}x: {mark(t['met'])}. Sandbox overhead (bubblewrap on / "
        f"off): {g.get('sandbox_overhead', 'n/a')}.",
        "",
        "![grading throughput](grading.png)",
        "",
    ]
    fig, ax = plt.subplots(figsize=(7, 3))
    ax.bar(list(runs), [v["per_minute"] for v in runs.values()], color="tab:blue")
    base = runs["nbgrader"]["per_minute"]
    ax.axhline(
        base * t["ratio_to_nbgrader"], color="k", ls="--", lw=1, label="target (2x nbgrader)"
    )
    ax.set(ylabel="submissions per minute", title="Grading throughput, same class")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "grading.png", dpi=100)
    plt.close(fig)
    return lines


def vectorised_section(results: dict) -> list[str]:
    v = results.get("vectorised")
    if not v:
        return []
    lines = [
        "## Vectorised exercises",
        "",
        f"Forward + backward on a {tuple(v['batch'])} batch, {v['threads']} torch thread, best of N.",
        "",
        "| exercise | vectorised ms | loop ms | speed-up | target | | peak MiB (vec / loop) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, f in v.items():
        if not isinstance(f, dict):
            continue
        target = f">= {f['target']:g}x" if f.get("target") else "(information)"
        lines.append(
            f"| {name} | {f['vectorised_ms']} | {f['loop_ms']} | {f['speedup']}x | {target} | "
            f"{mark(f.get('met'))} | {f.get('peak_mib')} / {f.get('peak_mib_loop')} |"
        )
    return [*lines, ""]


def write_report(results_path: Path) -> Path:
    results = json.loads(results_path.read_text())
    out = results_path.parent
    lines = ["# Benchmark report", "", "Written by `make bench` from `results.json`.", ""]
    lines += machine_lines(results) + [""]
    lines += notebook_section(results, out)
    lines += grading_section(results, out)
    lines += vectorised_section(results)
    report = out / "report.md"
    report.write_text("\n".join(lines) + "\n")
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", type=Path, default=ROOT / "bench" / "results.json")
    args = ap.parse_args(argv)
    if not args.results.exists():
        print(f"{args.results} does not exist: run `make bench` first", file=sys.stderr)
        return 1
    print(write_report(args.results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
