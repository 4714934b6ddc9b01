"""Evaluation helpers that are not exercises: losses over a loader, probes, sparsity stats."""

from __future__ import annotations

import re
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


def fraction_near_zero(a: torch.Tensor, threshold: float = 0.01) -> float:
    """Share of (sample, unit) activations below ``threshold`` (in absolute value)."""
    return float((a.abs() < threshold).float().mean())


def treves_rolls_sparsity(a: torch.Tensor, dim: int) -> torch.Tensor:
    """Sparsity of non-negative activations along ``dim``, in [0, 1] (Treves & Rolls, 1991).

    ``S = (1 - (mean a)^2 / mean(a^2)) / (1 - 1/n)`` with ``n = a.shape[dim]`` (Willmore &
    Tolhurst, 2001): 0 when every value is equal (uniformly weak activity is *not* sparse),
    1 when a single value is non-zero. All-zero slices give NaN (sparsity is undefined).
    """
    a = a.abs().double()
    n = a.shape[dim]
    ratio = a.mean(dim) ** 2 / (a**2).mean(dim)
    return ((1 - ratio) / (1 - 1 / n)).float()


def lifetime_sparsity(a: torch.Tensor) -> torch.Tensor:
    """Per unit: how selective it is over the samples ``(B, H) -> (H,)``; 1 = fires for few."""
    return treves_rolls_sparsity(a.reshape(len(a), -1), dim=0)


def population_sparsity(a: torch.Tensor) -> torch.Tensor:
    """Per sample: how few units carry it ``(B, H) -> (B,)``; 1 = one unit does all the work."""
    return treves_rolls_sparsity(a.reshape(len(a), -1), dim=1)


_TARGET = re.compile(r"^\s*(<=|>=|<|>|==)\s*([-+]?\d+\.?\d*(?:[eE][-+]?\d+)?)\s*$")


def report_metric(name: str, value: float, target: str | None = None, unit: str = "") -> str:
    """Print (and return) a headline figure as one line the benchmark runner parses.

    ``report_metric("kl_near_zero", 0.83, ">= 0.5")`` prints
    ``METRIC kl_near_zero = 0.83 (target >= 0.5)``; see autograder/AUTHORING.md.
    """
    if not re.fullmatch(r"[\w.\-/]+", name):
        raise ValueError(f"metric names are letters, digits, _ . - /: got {name!r}")
    line = f"METRIC {name} = {float(value):.6g}" + (f" {unit}" if unit else "")
    if target is not None:
        m = _TARGET.match(target)
        if m is None:
            raise ValueError(f"target must look like '>= 0.5', got {target!r}")
        line += f" (target {m[1]} {m[2]})"
    print(line)
    return line
