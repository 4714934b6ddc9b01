"""Figures of GAN training (06-09). Every function returns a matplotlib ``Figure``.

They read a :class:`helpers.gan.GANHistory` (or several, labelled, to compare runs):
per-epoch losses, D's mean output on real and fake images, the quality figures of
:mod:`helpers.quality` and the fixed-noise sample grids kept after every epoch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from helpers.gan import GANHistory


def grid_image(images: torch.Tensor, nrow: int = 8) -> np.ndarray:
    """``(B, C, H, W)`` images in [0, 1] as one ``(H', W')`` or ``(H', W', 3)`` array."""
    from torchvision.utils import make_grid  # imported here: torchvision costs seconds

    images = images.detach().cpu().float().clamp(0, 1)
    grid = make_grid(images, nrow=nrow, padding=2, pad_value=1.0)  # (3, H', W')
    grid = grid.permute(1, 2, 0).numpy()
    return grid[..., 0] if images.shape[1] == 1 else grid


def grid_panels(
    panels: Mapping[str, torch.Tensor], nrow: int = 8, title: str = "", size: float = 2.6
) -> Figure:
    """One titled sample grid per entry, side by side (e.g. epochs, or BCE vs LSGAN)."""
    fig, axes = plt.subplots(
        1, len(panels), figsize=(size * len(panels), size + 0.5), squeeze=False
    )
    for ax, (label, images) in zip(axes[0], panels.items()):
        ax.imshow(grid_image(images, nrow), cmap="gray", vmin=0, vmax=1)
        ax.set_title(label, fontsize=10)
        ax.set_axis_off()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def snapshot_epochs(num_epochs: int, count: int = 6) -> list[int]:
    """``count`` epochs (1-based) spread from the first to the last, the last one included."""
    return sorted({int(round(e)) for e in np.linspace(1, num_epochs, min(count, num_epochs))})


def snapshots_figure(
    history: GANHistory, count: int = 6, nrow: int = 6, n: int = 36, title: str = ""
) -> Figure:
    """The fixed-noise grid after ``count`` epochs spread over the run: watch G learn."""
    epochs = snapshot_epochs(len(history.snapshots), count)
    panels = {f"epoch {e}": history.snapshots[e - 1][:n] for e in epochs}
    return grid_panels(panels, nrow=nrow, title=title or "Fixed noise, epoch by epoch")


_PANELS = (
    ("losses", ("loss_D", "loss_G"), "loss"),
    ("D's mean output", ("D_real", "D_fake"), "D(x)"),
    ("Frechet distance (lower is better)", ("frechet",), "Frechet distance"),
    ("class coverage (higher is better)", ("coverage",), "share of 10 classes"),
)


def gan_curves(
    histories: GANHistory | Mapping[str, GANHistory],
    floor: float | None = None,
    ceiling: float | None = None,
    title: str = "",
) -> Figure:
    """Per-epoch panels: G and D losses, D's mean output on real and fake, quality figures.

    Panels whose keys no history has are left out. ``floor``/``ceiling`` (real-vs-real and
    untrained Frechet distances) are drawn as dashed lines on the Frechet panel. Several
    labelled histories share the axes, one colour per run, solid/dashed per key.
    """
    if isinstance(histories, GANHistory):
        histories = {"": histories}
    present = {k for h in histories.values() for k, v in h.epochs.items() if v}
    panels = [p for p in _PANELS if any(k in present for k in p[1])]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4), squeeze=False)
    for ax, (name, keys, ylabel) in zip(axes[0], panels):
        for i, (label, h) in enumerate(histories.items()):
            for j, key in enumerate(k for k in keys if h.epochs.get(k)):
                values = h.epochs[key]
                ax.plot(
                    range(1, len(values) + 1),
                    values,
                    color=f"C{i if len(histories) > 1 else j}",
                    ls="-" if j == 0 else "--",
                    marker="o" if len(values) < 40 else None,
                    ms=3,
                    label=f"{label} {key}".strip(),
                )
        if keys == ("frechet",):
            _reference_lines(ax, floor, ceiling)
        if keys == ("D_real", "D_fake"):
            ax.axhline(0.5, color="gray", lw=0.8, ls=":")
        if keys == ("coverage",):
            ax.set_ylim(-0.02, 1.05)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(frameon=False, fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def _reference_lines(ax, floor: float | None, ceiling: float | None) -> None:
    if ceiling is not None:
        ax.axhline(ceiling, color="tab:red", ls="--", lw=1, label="untrained (ceiling)")
    if floor is not None:
        ax.axhline(floor, color="tab:green", ls="--", lw=1, label="real vs real (floor)")
    if floor is not None or ceiling is not None:
        ax.set_yscale("log")


def class_histogram(
    labels: Mapping[str, Sequence[int] | torch.Tensor], n_classes: int = 10, title: str = ""
) -> Figure:
    """Share of samples per predicted class, one bar group per labelled set of labels."""
    fig, ax = plt.subplots(figsize=(6.5, 3.2))
    width = 0.8 / max(len(labels), 1)
    for i, (name, y) in enumerate(labels.items()):
        y = np.asarray(torch.as_tensor(y).cpu(), dtype=np.int64).ravel()
        share = np.bincount(y, minlength=n_classes)[:n_classes] / max(len(y), 1)
        ax.bar(np.arange(n_classes) + (i - (len(labels) - 1) / 2) * width, share, width, label=name)
    ax.axhline(1 / n_classes, color="gray", ls=":", lw=1)
    ax.set_xticks(range(n_classes))
    ax.set_xlabel("class predicted by the digit classifier")
    ax.set_ylabel("share of samples")
    ax.legend(frameon=False)
    ax.set_title(title or "Which digits does G draw?")
    fig.tight_layout()
    return fig
