"""Evaluation helpers that are not exercises: losses over a loader, probes, sparsity stats."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn


@torch.no_grad()
def mean_over_loader(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], loader) -> float:
    """Average of ``fn(x, y)`` over a loader, weighted by batch size."""
    total, n = 0.0, 0
    for x, y in loader:
        total += float(fn(x, y)) * len(x)
        n += len(x)
    return total / max(n, 1)


@torch.no_grad()
def codes(model: nn.Module, loader) -> tuple[torch.Tensor, torch.Tensor]:
    """Codes ``z`` (on the CPU) of a model whose forward returns ``(x_hat, z)``, and the labels."""
    model.eval()
    device = next(model.parameters()).device
    zs, ys = [], []
    for x, y in loader:
        zs.append(model(x.to(device))[1].cpu())
        ys.append(y)
    return torch.cat(zs), torch.cat(ys)


def linear_probe_accuracy(
    train_xy: tuple[np.ndarray, np.ndarray],
    test_xy: tuple[np.ndarray, np.ndarray],
    max_iter: int = 500,
) -> float:
    """Test accuracy of a logistic regression fitted on the training features."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=max_iter))
    clf.fit(*train_xy)
    return float(clf.score(*test_xy))


def fraction_active(a: torch.Tensor, threshold: float = 0.1) -> float:
    """Share of (sample, unit) activations above ``threshold``."""
    return float((a > threshold).float().mean())
