"""Image-quality scores of generated images against their targets: L1, PSNR and SSIM.

PSNR and SSIM come from scikit-image (``skimage.metrics``), per image, then averaged; every
score is computed on images in [0, 1].
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """Images in [-1, 1] (a tanh output) -> [0, 1], clamped."""
    return ((x + 1) / 2).clamp(0, 1)


def image_scores(pred: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
    """Mean per-image ``L1``, ``PSNR`` (dB) and ``SSIM`` of ``pred`` against ``target``.

    Both are ``(N, C, H, W)`` with values in [0, 1].
    """
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    if pred.shape != target.shape:
        raise ValueError(f"shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}")
    p = pred.detach().cpu().double().clamp(0, 1).numpy()
    t = target.detach().cpu().double().clamp(0, 1).numpy()
    with np.errstate(divide="ignore"):  # identical images: PSNR is +inf
        psnr = [peak_signal_noise_ratio(ti, pi, data_range=1.0) for pi, ti in zip(p, t)]
    ssim = [structural_similarity(ti, pi, data_range=1.0, channel_axis=0) for pi, ti in zip(p, t)]
    return {
        "L1": float(np.abs(p - t).mean()),
        "PSNR": float(np.mean(psnr)),
        "SSIM": float(np.mean(ssim)),
    }


def score_table(rows: Mapping[str, Mapping[str, float]]) -> str:
    """A plain-text table: one row per model, one column per score."""
    keys = list(next(iter(rows.values())))
    head = f"{'model':<14}" + "".join(f"{k:>9}" for k in keys)
    lines = [head, "-" * len(head)]
    for name, scores in rows.items():
        lines.append(f"{name:<14}" + "".join(f"{scores[k]:>9.4f}" for k in keys))
    return "\n".join(lines)


def metric_line(name: str, value: float, op: str, target: float) -> str:
    """A headline figure as one parseable line: ``METRIC <name> = <value> (target <op> <target>)``."""
    return f"METRIC {name} = {value:.4g} (target {op} {target:g})"
