"""Datasets: MNIST when it can be had, scikit-learn's digits otherwise.

Both come back in one format, so a notebook never needs to know which one it got:
``TensorDataset`` of images ``(N, 1, 28, 28)`` float32 in [0, 1] and labels int64.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from helpers.settings import is_offline


def data_dir() -> Path:
    """Where datasets are cached: ``COURSE_DATA_DIR`` or ``~/.cache/course-data``."""
    return Path(os.environ.get("COURSE_DATA_DIR", Path.home() / ".cache" / "course-data"))


@dataclass(frozen=True)
class ImageData:
    """A train/test pair of image datasets and where they came from."""

    train: TensorDataset
    test: TensorDataset
    source: str  # "mnist" or "digits"
    classes: tuple[str, ...] = tuple(str(i) for i in range(10))

    @property
    def image_shape(self) -> tuple[int, ...]:
        return tuple(self.train.tensors[0].shape[1:])


def notice(message: str) -> None:
    """The one-line notice shown when a fallback replaces a real resource."""
    print(f"[course] {message}")


def _mnist_tensors(root: Path, train: bool, download: bool):
    from torchvision import datasets  # imported here: torchvision costs seconds

    ds = datasets.MNIST(str(root), train=train, download=download)
    x = ds.data.unsqueeze(1).float().div_(255.0)  # (N, 1, 28, 28)
    return x, ds.targets.long()


def _try_mnist(root: Path) -> tuple[TensorDataset, TensorDataset] | None:
    attempts = [False] if is_offline() else [False, True]
    for download in attempts:
        old = socket.getdefaulttimeout()
        socket.setdefaulttimeout(15)
        try:
            train = _mnist_tensors(root, True, download)
            test = _mnist_tensors(root, False, download)
            return TensorDataset(*train), TensorDataset(*test)
        except Exception:  # missing files, no network, no torchvision: fall back
            continue
        finally:
            socket.setdefaulttimeout(old)
    return None


def digits_28x28() -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's 1,797 digits laid out like MNIST.

    The 8x8 images (values 0-16) are scaled to [0, 1], resized to 20x20 and padded
    by 4 pixels, which is how MNIST centres its digits in a 28x28 frame.
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.from_numpy(digits.images.astype(np.float32) / 16.0).unsqueeze(1)  # (N, 1, 8, 8)
    x = F.interpolate(x, size=(20, 20), mode="bilinear", align_corners=False)  # (N, 1, 20, 20)
    x = F.pad(x, (4, 4, 4, 4)).clamp_(0.0, 1.0)  # (N, 1, 28, 28)
    return x, torch.from_numpy(digits.target.astype(np.int64))


def _split(x: torch.Tensor, y: torch.Tensor, test_fraction: float, seed: int):
    from sklearn.model_selection import train_test_split

    idx_train, idx_test = train_test_split(
        np.arange(len(y)), test_size=test_fraction, random_state=seed, stratify=y.numpy()
    )
    return (
        TensorDataset(x[idx_train], y[idx_train]),
        TensorDataset(x[idx_test], y[idx_test]),
    )


def _subset(ds: TensorDataset, n: int | None, seed: int) -> TensorDataset:
    if n is None or n >= len(ds):
        return ds
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(ds), generator=g)[:n]
    return TensorDataset(*(t[idx] for t in ds.tensors))


def load_digits_data(
    n_train: int | None = None,
    n_test: int | None = None,
    source: str = "auto",
    test_fraction: float = 0.2,
    seed: int = 0,
) -> ImageData:
    """MNIST (28x28) when on disk or downloadable, else the embedded digits.

    ``source`` is ``"auto"``, ``"mnist"`` (fail if unavailable) or ``"digits"``.
    ``n_train``/``n_test`` take a seeded random subset, e.g. in fast mode.
    No download is attempted in fast or offline mode.
    """
    if source not in {"auto", "mnist", "digits"}:
        raise ValueError(f"source must be 'auto', 'mnist' or 'digits', got {source!r}")
    pair = _try_mnist(data_dir()) if source in {"auto", "mnist"} else None
    if pair is None and source == "mnist":
        raise RuntimeError(f"MNIST is neither in {data_dir()} nor downloadable")
    if pair is not None:
        train, test, name = *pair, "mnist"
    else:
        if source == "auto":
            notice(
                "MNIST unavailable (offline or not downloaded): using scikit-learn's "
                "1,797 digits resized to 28x28."
            )
        train, test = _split(*digits_28x28(), test_fraction, seed)
        name = "digits"
    return ImageData(_subset(train, n_train, seed), _subset(test, n_test, seed + 1), name)


def make_loaders(
    data: ImageData, batch_size: int = 128, seed: int = 0, num_workers: int = 0
) -> tuple[DataLoader, DataLoader]:
    """``(train_loader, test_loader)``: the train loader shuffles with a seeded generator."""
    g = torch.Generator().manual_seed(seed)
    train_loader = DataLoader(
        data.train, batch_size=batch_size, shuffle=True, generator=g, num_workers=num_workers
    )
    test_loader = DataLoader(data.test, batch_size=batch_size, shuffle=False)
    return train_loader, test_loader


def as_numpy(ds: TensorDataset) -> tuple[np.ndarray, np.ndarray]:
    """Flattened images ``(N, D)`` float64 and labels ``(N,)``, e.g. for PCA or sklearn."""
    x, y = ds.tensors
    return x.reshape(len(x), -1).double().numpy(), y.numpy()
