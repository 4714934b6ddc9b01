"""WGAN-GP (09) across seeds: does any seed collapse? Prints METRIC lines per seed.

Runs the solution notebook's own cells (settings, data, reference answers, models, training)
in one namespace for each seed, in full mode unless ``COURSE_FAST=1``, with checkpoints in a
temporary folder, then measures 1,000 samples with the quality toolkit. The data split stays
the notebook's (seed 0); the seed changes the initialisation, the noise and the batch order.

    python benchmarks/wgan_seeds.py            # seeds 0 1 2
    python benchmarks/wgan_seeds.py 3 4        # other seeds
"""

from __future__ import annotations

import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from autograder.references import _MARKERS, cells_of  # noqa: E402

NAME = "09_wgan_gp"
LAST_CELL = "train_wgan_gp()"  # run the notebook up to the cell that trains WGAN-GP


def run_seed(seed: int) -> dict[str, float]:
    import matplotlib.pyplot as plt

    from helpers.gan import sampler
    from helpers.quality import evaluate_images, metric

    plt.show = lambda *a, **k: plt.close("all")
    ns: dict = {"__name__": "__main__"}
    for cell in cells_of(NAME, "code")[1:]:  # the setup cell installs helpers: skip it
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("grade"):  # test cells: the answers are the reference already
            continue
        exec(compile(_MARKERS.sub("", cell.source), f"<{NAME}:{cell.id}>", "exec"), ns)
        if "train_loader, test_loader" in cell.source:  # after the data split: change the seed
            ns["cfg"] = dataclasses.replace(ns["cfg"], seed=seed)
        if LAST_CELL in cell.source:
            break
    cfg, G = ns["cfg"], ns["G"]
    q = evaluate_images(sampler(G, cfg.noise_dim)(1000), f"WGAN-GP seed {seed}", ns["classifier"])
    print(q.row())
    metric(f"09_wgan_gp_seed{seed}_coverage", q.coverage, ">=", 0.8)
    return {"coverage": q.coverage, "frechet": q.frechet}


def main(seeds: list[int]) -> int:
    os.chdir(tempfile.mkdtemp(prefix="wgan-seeds-"))  # fresh checkpoints: every seed trains
    ok = True
    for seed in seeds:
        started, cpu = time.perf_counter(), time.process_time()
        result = run_seed(seed)
        print(
            f"seed {seed}: {time.perf_counter() - started:.0f} s wall, "
            f"{time.process_time() - cpu:.0f} s CPU"
        )
        ok &= result["coverage"] >= 0.8
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main([int(s) for s in sys.argv[1:]] or [0, 1, 2]))
