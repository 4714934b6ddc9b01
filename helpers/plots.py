"""Figures for the notebooks. Every function returns a matplotlib ``Figure``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from helpers.train import History


def _grid(images: torch.Tensor, nrow: int) -> np.ndarray:
    from torchvision.utils import make_grid  # imported here: torchvision costs seconds

    images = images.detach().cpu().float()
    if images.dim() == 3:
        images = images.unsqueeze(1)  # (B, 1, H, W)
    grid = make_grid(images.clamp(0, 1), nrow=nrow, padding=2, pad_value=1.0)  # (C, H', W')
    return grid.permute(1, 2, 0).numpy()


def image_grid(images: torch.Tensor, nrow: int = 8, title: str = "", scale: float = 1.0) -> Figure:
    """A grid of images ``(B, C, H, W)`` with values in [0, 1]."""
    grid = _grid(images, nrow)
    h, w = grid.shape[:2]
    fig, ax = plt.subplots(figsize=(scale * w / 40, scale * h / 40 + 0.4))
    ax.imshow(grid.squeeze(-1) if grid.shape[-1] == 1 else grid, cmap="gray", vmin=0, vmax=1)
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def image_rows(rows: Mapping[str, torch.Tensor], n: int = 10, title: str = "") -> Figure:
    """One labelled row per entry, e.g. ``{"noisy": x_noisy, "denoised": x_hat, "clean": x}``."""
    fig, axes = plt.subplots(len(rows), 1, figsize=(n * 0.9, 1.1 * len(rows) + 0.3), squeeze=False)
    for ax, (label, images) in zip(axes[:, 0], rows.items()):
        grid = _grid(images[:n], nrow=n)
        ax.imshow(grid.squeeze(-1) if grid.shape[-1] == 1 else grid, cmap="gray", vmin=0, vmax=1)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_ylabel(label, rotation=0, ha="right", va="center")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def loss_curves(
    histories: History | Mapping[str, History],
    keys: Sequence[str] | None = None,
    title: str = "Training curves",
    logy: bool = False,
) -> Figure:
    """Per-epoch curves of one history, or of several labelled ones on shared axes."""
    if isinstance(histories, History):
        histories = {"": histories}
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for label, h in histories.items():
        for key in keys or list(h.epochs):
            values = h.epochs[key]
            name = f"{label} {key}".strip()
            ax.plot(range(1, len(values) + 1), values, marker="o", ms=3, label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    if logy:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(frameon=False)
    ax.set_title(title)
    fig.tight_layout()
    return fig


def latent_scatter(z2: np.ndarray, labels: np.ndarray, title: str = "2-D latent space") -> Figure:
    """Scatter of 2-D codes coloured by class (seaborn)."""
    import seaborn as sns

    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    order = [str(c) for c in sorted(np.unique(labels))]
    sns.scatterplot(
        x=z2[:, 0],
        y=z2[:, 1],
        hue=labels.astype(str),
        hue_order=order,
        palette="tab10",
        s=12,
        linewidth=0,
        ax=ax,
        legend="full",
    )
    ax.legend(title="class", bbox_to_anchor=(1.02, 1), loc="upper left", frameon=False)
    ax.set_title(title)
    fig.tight_layout()
    return fig


def activation_histograms(
    activations: Mapping[str, torch.Tensor | np.ndarray],
    bins: int = 40,
    title: str = "Code activations",
) -> Figure:
    """Overlaid histograms (share of values) of several activation sets."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for label, a in activations.items():
        a = a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
        ax.hist(
            a.ravel(), bins=bins, alpha=0.55, label=label, weights=np.full(a.size, 100.0 / a.size)
        )
    ax.set_xlabel("activation")
    ax.set_ylabel("% of values")
    ax.legend(frameon=False)
    ax.set_title(title)
    fig.tight_layout()
    return fig


def scree_plot(
    explained_variance_ratio: np.ndarray, threshold: float | None = None, title: str = "Scree plot"
) -> Figure:
    """Bars of each component's share of variance and the cumulative curve."""
    r = np.asarray(explained_variance_ratio)
    k = np.arange(1, len(r) + 1)
    fig, ax = plt.subplots(figsize=(6.5, 3.5))
    ax.bar(k, r, color="tab:blue", alpha=0.6, label="per component")
    ax2 = ax.twinx()
    ax2.plot(k, np.cumsum(r), color="tab:red", marker=".", label="cumulative")
    ax2.set_ylim(0, 1.02)
    if threshold is not None:
        ax2.axhline(threshold, color="gray", ls="--", lw=1)
        ax2.text(k[-1], threshold, f"{threshold:.0%}", va="bottom", ha="right", color="gray")
    ax.set_xlabel("component")
    ax.set_ylabel("explained variance ratio")
    ax2.set_ylabel("cumulative")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def curves(
    x: np.ndarray,
    ys: Mapping[str, np.ndarray],
    xlabel: str,
    ylabel: str,
    title: str = "",
    vline: float | None = None,
) -> Figure:
    """Several labelled curves over one x axis, with an optional marker line."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for label, y in ys.items():
        ax.plot(x, y, label=label)
    if vline is not None:
        ax.axvline(vline, color="gray", ls="--", lw=1)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(frameon=False)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def image_panels(
    images: Sequence[np.ndarray],
    titles: Sequence[str],
    ncols: int = 5,
    cmap: str = "viridis",
    title: str = "",
) -> Figure:
    """Small 2-D arrays side by side (e.g. mean activation per class)."""
    n = len(images)
    nrows = (n + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(1.6 * ncols, 1.7 * nrows), squeeze=False)
    for ax in axes.ravel():
        ax.set_axis_off()
    for ax, img, t in zip(axes.ravel(), images, titles):
        ax.imshow(img, cmap=cmap)
        ax.set_title(t, fontsize=9)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
