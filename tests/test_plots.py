"""Every figure of helpers.plots can be read: title, labelled axes, colour bars for images."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from helpers import plots, train  # noqa: E402


def _history(v):
    return train.History.from_dict({"epochs": {"loss": [v, v / 2], "test_mse": [v, v / 3]}})


FIGURES = {
    "image_grid": lambda: plots.image_grid(torch.rand(12, 1, 28, 28), nrow=4),
    "image_rows": lambda: plots.image_rows({"in": torch.rand(5, 1, 8, 8), "out": torch.rand(5, 8, 8)}, n=5),
    "loss_curves": lambda: plots.loss_curves(_history(1.0)),
    "loss_curves_dict": lambda: plots.loss_curves({"a": _history(1), "b": _history(2)}, ["test_mse"]),
    "latent_scatter": lambda: plots.latent_scatter(np.random.randn(40, 2), np.arange(40) % 10),
    "histograms": lambda: plots.activation_histograms({"a": torch.rand(50, 8), "b": np.zeros(9)}, vline=0.05),
    "scree_plot": lambda: plots.scree_plot(np.array([0.5, 0.3, 0.2]), threshold=0.9),
    "curves": lambda: plots.curves(np.arange(5), {"y": np.arange(5)}, "x", "y", title="t"),
    "image_panels": lambda: plots.image_panels([np.eye(8)] * 3, list("abc"), ncols=2, row_labels=["r0", "r1"]),
    "twin_curves": lambda: plots.twin_curves(np.array([0.1, 1, 10]), {"mse": np.ones(3)}, {"s": np.arange(3)}, "lambda", "MSE", "sparsity", "sweep", logx=True),
}  # fmt: skip


def _is_colorbar(ax) -> bool:
    return ax.get_label() == "<colorbar>"


@pytest.mark.parametrize("name", FIGURES)
def test_figure_has_title_labels_and_colour_bar_for_images(name):
    fig = FIGURES[name]()
    try:
        fig.canvas.draw()
        titles = [fig._suptitle.get_text() if fig._suptitle else ""]
        titles += [ax.get_title() for ax in fig.axes]
        assert any(titles), f"{name}: no title"
        plotted = [ax for ax in fig.axes if not _is_colorbar(ax) and ax.axison]
        images = [ax for ax in plotted if ax.images]
        for ax in plotted:
            if ax.images:
                continue
            assert ax.get_ylabel(), f"{name}: unlabelled y axis"
            if ax.get_shared_x_axes().get_siblings(ax) == [ax] and not ax.get_xlabel():
                assert any(o.get_xlabel() for o in plotted), f"{name}: unlabelled x axis"
        if images and any(im.get_array().ndim == 2 for ax in images for im in ax.images):
            bars = [ax for ax in fig.axes if _is_colorbar(ax)]
            assert bars and all(b.get_ylabel() for b in bars), f"{name}: image without colour bar"
        legend = [ax.get_legend() for ax in plotted if ax.get_legend()]
        if name == "loss_curves_dict":  # one key: the legend names the models, the axis the key
            assert [t.get_text() for t in legend[0].get_texts()] == ["a", "b"]
            assert plotted[0].get_ylabel() == "test_mse"
    finally:
        plt.close(fig)
