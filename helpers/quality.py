"""How good are generated digits? A feature-space distance and class coverage.

The generative notebooks (05-09) report the same three numbers for their samples:

* the **Frechet distance** between generated and held-out real digits, measured in the
  feature space of a small digit classifier (:func:`digit_classifier`);
* the **class coverage**: the share of the 10 classes that the classifier assigns to at
  least ``min_fraction`` of the samples, and the **entropy** of that class histogram
  (``ln 10 = 2.30`` nats when all digits are equally frequent);

each next to two baselines computed the same way and on the same number of images: real
training digits (the *floor*, what a perfect generator would score) and an untrained
generator (the *ceiling*). :func:`quality_report` prints the three rows as a table.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from helpers.data import ImageData, load_digits_data
from helpers.metrics import report_metric
from helpers.models import conv_encoder_layers
from helpers.settings import configure, get_device
from helpers.train import History, fit, load_or_train

Sampler = Callable[[int], torch.Tensor]


class DigitClassifier(nn.Module):
    """Small CNN for (B, 1, 28, 28) digits in [0, 1]; its penultimate layer is the feature space."""

    def __init__(self, channels: int = 16, feature_dim: int = 64, n_classes: int = 10) -> None:
        super().__init__()
        self.body = nn.Sequential(*conv_encoder_layers(channels, feature_dim), nn.ReLU())  # (B, F)
        self.head = nn.Linear(feature_dim, n_classes)  # (B, 10)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, F) activations of the penultimate layer."""
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 10) class logits."""
        return self.head(self.features(x))


@dataclass(frozen=True)
class ClassifierConfig:
    """Settings of the feature classifier; fast mode trains on fewer images for fewer epochs."""

    seed: int = 0
    n_train: int | None = 12_000  # caps MNIST; the embedded digits have 1,437 training images
    num_epochs: int = 12
    batch_size: int = 64
    lr: float = 2e-3
    channels: int = 16
    feature_dim: int = 64


FAST = dict(n_train=1500, num_epochs=3)


@lru_cache(maxsize=1)
def _data() -> ImageData:
    """The course's digits with the notebooks' split (``load_digits_data(seed=0)``), loaded once."""
    return load_digits_data(seed=0)


def _device_of(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def _batched(fn: Callable[[torch.Tensor], torch.Tensor], model: nn.Module, images: torch.Tensor):
    device = _device_of(model)
    return torch.cat([fn(chunk.to(device)).cpu() for chunk in images.split(500)])


def accuracy(classifier: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Share of ``images`` the classifier labels correctly."""
    logits = _batched(classifier, classifier, images)
    return float((logits.argmax(1) == labels).float().mean())


def digit_classifier(
    device: torch.device | str | None = None,
    verbose: bool = True,
    config: ClassifierConfig | None = None,
    directory: Path | str | None = None,
) -> DigitClassifier:
    """The digit classifier whose features the quality figures use, in eval mode, no grad.

    Trained on the course's training digits (:mod:`helpers.data`) with
    :func:`helpers.train.load_or_train`: the checkpoint (under ``directory``, default
    ``checkpoints/``) is hash-checked, and rebuilt when it is missing or corrupt. Training
    takes seconds on a CPU (the embedded digits; a 12,000-image subset of MNIST). In fast
    mode (``COURSE_FAST=1`` or nbgrader) it trains on 1,500 images for 3 epochs (about a second).
    """
    cfg = config or configure(ClassifierConfig(), fast=FAST)
    device = torch.device(device) if device is not None else get_device()
    data = _data()
    x_train, y_train = data.train.tensors
    g = torch.Generator().manual_seed(cfg.seed)
    keep = torch.randperm(len(y_train), generator=g)[: cfg.n_train]  # (n_train,)
    train_loader = DataLoader(
        TensorDataset(x_train[keep], y_train[keep]),
        batch_size=cfg.batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(cfg.seed),
    )
    torch.manual_seed(cfg.seed)
    model = DigitClassifier(cfg.channels, cfg.feature_dim).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)

    def step(batch) -> dict[str, float]:
        x, y = batch[0].to(device), batch[1].to(device)
        model.train()
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return {"loss": loss.item()}

    def train() -> History:
        return fit(step, train_loader, cfg.num_epochs, desc="digit classifier")

    load_or_train(model, f"digit-classifier-{data.source}", train, config=cfg, directory=directory)
    model.eval().requires_grad_(False)
    if verbose:
        x_test, y_test = data.test.tensors
        acc = accuracy(model, x_test, y_test)
        print(
            f"[course] digit classifier ({data.source}): test accuracy {acc:.1%} "
            f"on {len(y_test)} held-out images"
        )
    return model


def frechet_distance(
    feats_a: torch.Tensor | np.ndarray, feats_b: torch.Tensor | np.ndarray
) -> float:
    """Frechet distance between Gaussians fitted to two feature sets ``(N, F)`` and ``(M, F)``.

    ``||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2))`` (Heusel et al., 2017, eq. 6),
    with the matrix square root from :func:`scipy.linalg.sqrtm`.

    This is **not** the Inception FID of the GAN literature: the features come from our
    small digit classifier (:func:`digit_classifier`), not from Inception-v3 trained on
    ImageNet at 299x299, so the values are not comparable with published FIDs, nor between
    different classifiers. The estimate is also biased upwards for small samples, so only
    compare it with baselines computed on as many images (see :func:`quality_report`).
    """
    from scipy import linalg  # imported here: only the quality figures need scipy

    a, b = (
        np.asarray(torch.as_tensor(f).detach().cpu(), dtype=np.float64) for f in (feats_a, feats_b)
    )
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"need two (N, F) feature sets with the same F, got {a.shape}, {b.shape}")
    if min(len(a), len(b)) < 2:
        raise ValueError("need at least two samples per set to estimate a covariance")
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = (np.atleast_2d(np.cov(f, rowvar=False)) for f in (a, b))  # (F, F)
    with warnings.catch_warnings():  # dead ReLU features make the product singular
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(cov_a @ cov_b)
        if not np.isfinite(covmean).all():  # nudge both covariances off singularity
            offset = np.eye(len(cov_a)) * 1e-6
            covmean = linalg.sqrtm((cov_a + offset) @ (cov_b + offset))
    covmean = np.real(covmean)
    diff = mu_a - mu_b
    value = diff @ diff + np.trace(cov_a) + np.trace(cov_b) - 2.0 * np.trace(covmean)
    return max(float(value), 0.0)  # rounding can leave a tiny negative number for equal sets


def class_coverage(
    labels: torch.Tensor | np.ndarray | Sequence[int],
    n_classes: int = 10,
    min_fraction: float = 0.02,
) -> tuple[float, float]:
    """(share of classes holding at least ``min_fraction`` of the samples, entropy in nats).

    A generator that draws every digit equally often scores ``(1.0, ln 10 = 2.30)``; one
    that collapsed onto a single digit scores ``(0.1, 0.0)``.
    """
    y = np.asarray(torch.as_tensor(labels).cpu(), dtype=np.int64).ravel()
    if len(y) == 0:
        raise ValueError("no labels")
    p = np.bincount(y, minlength=n_classes)[:n_classes] / len(y)
    covered = float((p >= min_fraction).sum() / n_classes)
    nz = p[p > 0]
    return covered, float(-(nz * np.log(nz)).sum())


@dataclass(frozen=True)
class Quality:
    """The quality figures of one set of images."""

    name: str
    frechet: float
    coverage: float
    entropy: float
    n: int

    @staticmethod
    def header() -> str:
        return f"{'images':<28} {'Frechet':>9} {'coverage':>9} {'entropy':>8} {'n':>6}"

    def row(self) -> str:
        """One line of the table printed by :func:`quality_report`."""
        return (
            f"{self.name:<28} {self.frechet:>9.2f} {self.coverage:>9.0%} "
            f"{self.entropy:>8.2f} {self.n:>6d}"
        )


@lru_cache(maxsize=8)
def _reference_features(classifier: nn.Module) -> torch.Tensor:
    x_test = _data().test.tensors[0]
    return _batched(classifier.features, classifier, x_test)


def evaluate_images(
    images: torch.Tensor,
    name: str,
    classifier: DigitClassifier | None = None,
    reference: torch.Tensor | None = None,
) -> Quality:
    """Quality figures of ``images`` (N, 1, 28, 28) in [0, 1] against real held-out digits.

    ``reference`` defaults to the course's test digits (the split every notebook uses).
    """
    classifier = classifier or _default_classifier()
    images = images.detach().float().clamp(0.0, 1.0)
    if images.dim() != 4 or tuple(images.shape[1:]) != (1, 28, 28):
        raise ValueError(f"images must be (N, 1, 28, 28), got {tuple(images.shape)}")
    if reference is None:
        ref_feats = _reference_features(classifier)
    else:
        ref_feats = _batched(classifier.features, classifier, reference.float())
    feats = _batched(classifier.features, classifier, images)
    labels = classifier.head(feats.to(_device_of(classifier))).argmax(1).cpu()
    coverage, entropy = class_coverage(labels, n_classes=classifier.head.out_features)
    return Quality(name, frechet_distance(feats, ref_feats), coverage, entropy, len(images))


@lru_cache(maxsize=1)
def _default_classifier() -> DigitClassifier:
    return digit_classifier()


def real_sampler(seed: int = 0) -> Sampler:
    """Draws ``n`` distinct real training digits (seeded): the floor of every comparison."""
    x_train = _data().train.tensors[0]

    def sample(n: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        return x_train[torch.randperm(len(x_train), generator=g)[: min(n, len(x_train))]]

    return sample


def quality_report(
    sample: Sampler,
    name: str,
    n: int = 1000,
    untrained: Sampler | None = None,
    classifier: DigitClassifier | None = None,
) -> list[Quality]:
    """Print and return the quality rows of a generator next to its floor and ceiling.

    ``sample(n)`` (and ``untrained(n)``, an untrained generator of the same kind) returns
    ``n`` images (n, 1, 28, 28) in [0, 1]. Rows: ``"real vs real (floor)"`` (real training
    digits), ``"untrained (ceiling)"`` when ``untrained`` is given, and ``name``. All sets
    have the same size, because the Frechet distance of a small sample is biased upwards.
    """
    classifier = classifier or _default_classifier()
    real = real_sampler()(n)
    n = len(real)  # the embedded digits have fewer than n training images
    sets = [("real vs real (floor)", lambda: real)]
    if untrained is not None:
        sets.append(("untrained (ceiling)", lambda: untrained(n)))
    sets.append((name, lambda: sample(n)))
    print(Quality.header())
    rows = []
    for label, draw in sets:
        with torch.no_grad():
            images = draw()
        rows.append(evaluate_images(images.cpu(), label, classifier))
        print(rows[-1].row())
    return rows


def metric(name: str, value: float, op: str, target: float, unit: str = "") -> bool:
    """Print ``METRIC <name> = <value> (target <op> <target>)`` and return whether it is met.

    The line is :func:`helpers.metrics.report_metric`'s (the benchmark runner parses it); ``op``
    is one of ``<``, ``<=``, ``>``, ``>=``, ``==``.
    """
    ops = {"<": value < target, "<=": value <= target, ">": value > target, ">=": value >= target}
    ops["=="] = value == target
    if op not in ops:
        raise ValueError(f"op must be one of {sorted(ops)}, got {op!r}")
    report_metric(name, value, f"{op} {target:.6g}", unit)
    return bool(ops[op]) and math.isfinite(value)
