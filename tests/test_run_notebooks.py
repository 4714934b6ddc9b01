"""benchmarks/run_notebooks.py: METRIC lines, discovery and the README table (no kernel)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from helpers.metrics import report_metric

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("run_notebooks", ROOT / "benchmarks/run_notebooks.py")
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)


def test_report_metric_lines_parse_back(capsys):
    report_metric("kl/near_zero", 0.8312, ">= 0.5")
    report_metric("psnr_gain", 14.25, ">=10", unit="dB")
    report_metric("mse", 1.5e-3)
    report_metric("dense_ratio", 0.9, "<= 0.2")
    got = bench.parse_metrics("noise\n" + capsys.readouterr().out + "METRIC bad line\n")
    assert got["kl/near_zero"] == {
        "value": 0.8312,
        "unit": "",
        "op": ">=",
        "target": 0.5,
        "met": True,
    }
    assert got["psnr_gain"]["unit"] == "dB" and got["psnr_gain"]["met"]
    assert got["mse"] == {"value": 0.0015, "unit": ""}
    assert got["dense_ratio"]["met"] is False
    assert len(got) == 4


@pytest.mark.parametrize("bad", [dict(name="a b", value=1.0), dict(name="x", value=1, target="~3")])
def test_report_metric_rejects_what_the_runner_could_not_parse(bad):
    with pytest.raises(ValueError):
        report_metric(**bad)


def test_discovery_finds_every_solution_notebook():
    found = {p.stem for p in bench.discover(None)}
    assert found == {p.stem for p in (ROOT / "solutions").glob("[0-9][0-9]_*.ipynb")}
    assert {p.stem[:2] for p in bench.discover(["04"])} == {"04"}


def test_readme_table_is_regenerated_between_markers_and_keeps_topics(tmp_path):
    stem = bench.discover(["01"])[0].stem
    run = {
        "status": "ok",
        "error": None,
        "wall_s": 95.4,
        "kernel_cpu_s": 80.0,
        "peak_rss_mib": 900.0,
        "metrics": {"mse": {"value": 0.0012, "unit": "", "op": "<=", "target": 0.003, "met": True}},
        "finished": "2026-12-02T16:00:00+00:00",
        "loadavg_after": [3.5, 3.0, 2.0],
    }
    results = {
        "machine": {"cpu": "CPU X", "cores": 2, "memory_gib": 24.0, "torch": "2.x"},
        "notebooks": {stem: {"fast": {**run, "wall_s": 20.0}, "full": run}, "99_gone": {}},
    }
    readme = tmp_path / "README.md"
    readme.write_text(
        f"intro\n{bench.START}\n| # | notebook | topics |\n|---|---|---|\n"
        f"| 01 | [x](notebooks/{stem}.ipynb) | my topics | old |\n{bench.END}\nafter\n"
    )
    bench.update_readme(results, readme)
    text = readme.read_text()
    assert text.startswith("intro\n") and text.endswith(f"{bench.END}\nafter\n")
    assert "my topics" in text and "| 20 s | 1 min 35 s |" in text
    assert "mse 0.0012 (<= 0.003 ✓)" in text and "2 cores" in text and "3.5-3.5" in text
    assert "old" not in text and "99_gone" not in text
    # every solution notebook has a row, measured or not
    assert text.count("](notebooks/") == len(bench.discover(None)) and "| – | – | – |" in text
    bench.update_readme(results, readme)  # idempotent
    assert readme.read_text() == text
