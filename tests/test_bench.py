"""The benchmark's structure: every notebook covered, every figure beside its target."""

from __future__ import annotations

import importlib.util
import json
import sys

import nbformat

from autograder import paths

BENCH = paths.ROOT / "benchmarks"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_grading_class_covers_every_assignment_with_a_mix(tmp_path):
    bench = _load("bench_grading")
    n = bench.fabricate(tmp_path, paths.assignments(), per_assignment=4)
    assert n == 4 * len(paths.assignments())
    for name in paths.assignments():
        subs = sorted(tmp_path.glob(f"*/{name}.ipynb"))
        assert len(subs) == 4
        sources = {p.parent.name: nbformat.read(p, as_version=4) for p in subs}
        unwritten = {
            who: sum("raise NotImplementedError()" in c.source for c in nb.cells)
            for who, nb in sources.items()
        }
        perfect = next(v for k, v in unwritten.items() if k.endswith("perfect"))
        untouched = next(v for k, v in unwritten.items() if k.endswith("untouched"))
        partial = [v for k, v in unwritten.items() if k.endswith("missing")]
        assert perfect == 0 and untouched >= 1 and all(v == 1 for v in partial), (name, unwritten)


def test_grading_summary_ratios_and_target():
    bench = _load("bench_grading")
    s = bench.summarise(
        40, {"nbgrader": 80.0, "ours_jobs1": 100.0, "ours_jobs2": 40.0, "ours_jobs2_nobwrap": 32.0}
    )
    assert s["ours_jobs2"]["ratio_to_nbgrader"] == 2.0 and s["target"]["met"]
    assert s["ours_jobs1"]["per_minute"] == 24.0 and s["sandbox_overhead"] == 1.25
    s = bench.summarise(40, {"nbgrader": 80.0, "ours_jobs1": 100.0, "ours_jobs2": 50.0})
    assert not s["target"]["met"] and s["target"]["measured"] == 1.6


def test_report_marks_every_figure_that_has_a_target(tmp_path):
    report = _load("report")
    results = {
        "machine": {"cpu": "test cpu", "cores": 2, "memory_gib": 24, "torch": "x"},
        "notebooks": {
            "05_vae": {
                "fast": {"wall_s": 12.0, "kernel_cpu_s": 9.0, "peak_rss_mib": 900, "metrics": {}},
                "full": {
                    "wall_s": 200.0,
                    "kernel_cpu_s": 300.0,
                    "peak_rss_mib": 1200,
                    "metrics": {
                        "nelbo": {
                            "value": 95.0,
                            "unit": "nats",
                            "op": "<=",
                            "target": 120.0,
                            "met": True,
                        },
                        "coverage": {
                            "value": 7.0,
                            "unit": "",
                            "op": ">=",
                            "target": 8.0,
                            "met": False,
                        },
                    },
                },
            }
        },
        "vectorised": {
            "batch": [256, 1024],
            "threads": 1,
            "kl_sparsity": {
                "vectorised_ms": 1,
                "loop_ms": 100,
                "speedup": 100.0,
                "target": 20.0,
                "met": True,
                "peak_mib": 1,
                "peak_mib_loop": 2,
            },
        },
    }
    (tmp_path / "results.json").write_text(json.dumps(results))
    text = report.write_report(tmp_path / "results.json").read_text()
    assert "| nelbo | 95 nats | <= 120 | pass |" in text
    assert "| coverage | 7 | >= 8 | **FAIL** |" in text
    assert "| kl_sparsity |" in text and ">= 20x | pass" in text
    assert "no GPU" in text and (tmp_path / "notebooks.png").stat().st_size > 1000
