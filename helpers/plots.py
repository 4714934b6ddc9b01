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


def image_grid(
    images: torch.Tensor, nrow: int = 8, title: str = "Images", scale: float = 1.0
) -> Figure:
    """A grid of images ``(B, C, H, W)`` with values in [0, 1] and a pixel-value colour bar."""
    grid = _grid(images, nrow)
    h, w = grid.shape[:2]
    fig, ax = plt.subplots(figsize=(scale * w / 40 + 0.8, scale * h / 40 + 0.4))
    im = ax.imshow(grid.squeeze(-1) if grid.shape[-1] == 1 else grid, cmap="gray", vmin=0, vmax=1)
    ax.set_axis_off()
    ax.set_title(title)
    if grid.shape[-1] == 1:
        fig.colorbar(im, ax=ax, fraction=0.04, pad=0.02, label="pixel value")
    fig.tight_layout()
    return fig


def image_rows(rows: Mapping[str, torch.Tensor], n: int = 10, title: str = "Images") -> Figure:
    """One labelled row per entry, e.g. ``{"noisy": x_noisy, "denoised": x_hat, "clean": x}``.

    Grey-scale rows share one pixel-value scale, [0, 1], shown by a colour bar.
    """
    fig, axes = plt.subplots(
        len(rows), 1, figsize=(n * 0.9 + 1.0, 1.1 * len(rows) + 0.4), squeeze=False
    )
    im = None
    for ax, (label, images) in zip(axes[:, 0], rows.items()):
        grid = _grid(images[:n], nrow=n)
        im = ax.imshow(
            grid.squeeze(-1) if grid.shape[-1] == 1 else grid, cmap="gray", vmin=0, vmax=1
        )
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_ylabel(label, rotation=0, ha="right", va="center")
    axes[-1, 0].set_xlabel(f"{n} test images, left to right")
    fig.suptitle(title)
    fig.tight_layout()
    if im is not None and im.get_array().ndim == 2:
        fig.colorbar(im, ax=list(axes[:, 0]), fraction=0.02, pad=0.01, label="pixel value")
    return fig


def loss_curves(
    histories: History | Mapping[str, History],
    keys: Sequence[str] | None = None,
    title: str = "Training curves",
    logy: bool = False,
    ylabel: str | None = None,
) -> Figure:
    """Per-epoch curves of one history, or of several labelled ones on shared axes.

    With one key, the legend names the histories and ``ylabel`` (default: the key) names
    the quantity, so that title, axis and legend say the same thing.
    """
    if isinstance(histories, History):
        histories = {"": histories}
    fig, ax = plt.subplots(figsize=(6, 3.5))
    shown = set()
    for label, h in histories.items():
        for key in keys or list(h.epochs):
            values = h.epochs[key]
            shown.add(key)
            name = label if keys is not None and len(keys) == 1 and label else f"{label} {key}"
            ax.plot(range(1, len(values) + 1), values, marker="o", ms=3, label=name.strip())
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel or (next(iter(shown)) if len(shown) == 1 else "loss"))
    if logy:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(frameon=False)
    ax.set_title(title)
    fig.tight_layout()
    return fig


def latent_scatter(
    z2: np.ndarray,
    labels: np.ndarray,
    title: str = "2-D latent space",
    xlabel: str = "$z_1$",
    ylabel: str = "$z_2$",
) -> Figure:
    """Scatter of 2-D codes coloured by class (seaborn), with labelled axes."""
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
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    fig.tight_layout()
    return fig


def activation_histograms(
    activations: Mapping[str, torch.Tensor | np.ndarray],
    bins: int | np.ndarray = 40,
    title: str = "Code activations",
    xlabel: str = "activation",
    ylabel: str = "% of values",
    vline: float | None = None,
    vline_label: str = "",
) -> Figure:
    """Overlaid histograms (share of values) of several activation sets, on shared bins."""
    arrays = {
        k: (a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)).ravel()
        for k, a in activations.items()
    }
    if isinstance(bins, int):
        values = np.concatenate(list(arrays.values()))
        bins = np.linspace(values.min(), max(values.max(), values.min() + 1e-6), bins + 1)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for label, a in arrays.items():
        ax.hist(a, bins=bins, alpha=0.55, label=label, weights=np.full(a.size, 100.0 / a.size))
    if vline is not None:
        ax.axvline(vline, color="k", ls="--", lw=1, label=vline_label or None)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
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
    title: str = "Panels",
    colorbar_label: str = "value",
    vmin: float | None = None,
    vmax: float | None = None,
    row_labels: Sequence[str] = (),
) -> Figure:
    """Small 2-D arrays side by side on one shared colour scale, with one colour bar.

    ``vmin``/``vmax`` default to the range of all panels, so equal colours mean equal
    values across panels (e.g. mean activation per class, model by model). ``row_labels``
    name the rows (e.g. one model per row).
    """
    n = len(images)
    nrows = (n + ncols - 1) // ncols
    lo = min(float(np.nanmin(i)) for i in images) if vmin is None else vmin
    hi = max(float(np.nanmax(i)) for i in images) if vmax is None else vmax
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(1.6 * ncols + 1.2, 1.7 * nrows + 0.3), squeeze=False
    )
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_visible(False)
    im = None
    for ax, img, t in zip(axes.ravel(), images, titles):
        im = ax.imshow(img, cmap=cmap, vmin=lo, vmax=hi)
        ax.set_title(t, fontsize=9)
    for ax in axes.ravel()[n:]:
        ax.set_axis_off()
    for ax, label in zip(axes[:, 0], row_labels):
        ax.set_ylabel(label)
    fig.suptitle(title)
    fig.tight_layout()
    if im is not None:
        fig.colorbar(im, ax=axes.ravel().tolist(), fraction=0.03, pad=0.02, label=colorbar_label)
    return fig


def twin_curves(
    x: np.ndarray,
    left: Mapping[str, np.ndarray],
    right: Mapping[str, np.ndarray],
    xlabel: str,
    left_label: str,
    right_label: str,
    title: str,
    logx: bool = False,
    logy_left: bool = False,
) -> Figure:
    """Curves on two y axes over one x axis (e.g. error and sparsity against lambda)."""
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    ax2 = ax.twinx()
    colours = iter(plt.rcParams["axes.prop_cycle"].by_key()["color"])
    lines = []
    for axis, series, style in ((ax, left, "o-"), (ax2, right, "s--")):
        for label, y in series.items():
            lines += axis.plot(x, y, style, color=next(colours), label=label, ms=4)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(left_label)
    ax2.set_ylabel(right_label)
    if logx:
        ax.set_xscale("log")
    if logy_left:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(lines, [line.get_label() for line in lines], frameon=False, fontsize=8, loc="best")
    ax.set_title(title)
    fig.tight_layout()
    return fig
