"""Given GAN training code for the notebooks after 06: one step, one loop, one history.

06 asks students to write the losses and the training step themselves; from 07 on the
step is given here, loss-agnostic: :func:`gan_step` takes the discriminator's and the
generator's loss functions as arguments, so 07 trains the very same loop with least-squares
losses. :func:`train_gan` runs any such ``step`` over a loader with
:func:`helpers.train.fit`, steps the learning-rate schedulers once per epoch and keeps, per
epoch, a fixed-noise sample grid and whatever ``evaluate`` measures (Frechet distance,
class coverage, D's mean output on real and fake images). Plotting it is the job of
:mod:`helpers.gan_plots`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from helpers.train import History, fit, load_or_train

LossD = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
LossG = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class GANHistory(History):
    """A :class:`~helpers.train.History` plus one image tensor per epoch (``snapshots``)."""

    snapshots: list[torch.Tensor] = field(default_factory=list)


def train_gan(
    step: Callable[[Any], dict[str, float]],
    train_loader: Iterable,
    num_epochs: int,
    *,
    schedulers: Sequence[Any] = (),
    snapshot: Callable[[], torch.Tensor] | None = None,
    evaluate: Callable[[], dict[str, float]] | None = None,
    desc: str = "GAN",
) -> GANHistory:
    """Run ``step(batch)`` on every ``(x, y)`` batch for ``num_epochs`` epochs.

    After each epoch the ``schedulers`` are stepped (once each), the learning rate of the
    first one is stored as ``lr``, ``snapshot()`` (e.g. G on fixed noise) is kept in
    ``history.snapshots`` and the figures of ``evaluate()`` are stored per epoch under their
    own names. ``step`` returns per-step floats (``loss_D``, ``loss_G``, ...), averaged per
    epoch as in :func:`helpers.train.fit`.
    """
    history = GANHistory()

    def end_of_epoch() -> dict[str, float]:
        for scheduler in schedulers:
            scheduler.step()
        figures: dict[str, float] = {}
        if schedulers:
            figures["lr"] = float(schedulers[0].get_last_lr()[0])
        if snapshot is not None:
            with torch.no_grad():
                history.snapshots.append(snapshot().detach().cpu().float())
        if evaluate is not None:
            figures.update(evaluate())
        return figures

    fit(step, train_loader, num_epochs, end_of_epoch, desc=desc, history=history)
    return history


def gan_step(
    G: nn.Module,
    D: nn.Module,
    x_real: torch.Tensor,
    opt_G: torch.optim.Optimizer,
    opt_D: torch.optim.Optimizer,
    latent_dim: int,
    loss_D_fn: LossD,
    loss_G_fn: LossG,
    *,
    activation: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> dict[str, float]:
    """One alternating update: D on real and detached fake images, then G through the new D.

    ``loss_D_fn(real_scores, fake_scores)`` and ``loss_G_fn(fake_scores)`` get D's raw
    outputs. Returns ``loss_D``, ``loss_G`` and D's mean output on the real and the fake
    batch (``D_real``, ``D_fake``), passed through ``activation`` first when given (e.g.
    ``torch.sigmoid`` for a BCE discriminator, so that they read as probabilities).
    """
    G.train()
    D.train()
    z = torch.randn(x_real.shape[0], latent_dim, device=x_real.device)  # (B, latent_dim)
    x_fake = G(z)  # (B, 1, 28, 28)

    # 1. Discriminator: real -> 1, fake -> 0. detach(): this loss must not reach G.
    real_scores = D(x_real)  # (B, 1)
    fake_scores = D(x_fake.detach())  # (B, 1)
    loss_D = loss_D_fn(real_scores, fake_scores)
    opt_D.zero_grad()
    loss_D.backward()
    opt_D.step()

    # 2. Generator: make the updated D call the same fakes real.
    loss_G = loss_G_fn(D(x_fake))
    opt_G.zero_grad()
    loss_G.backward()
    opt_G.step()

    act = activation or (lambda t: t)
    return {
        "loss_D": loss_D.item(),
        "loss_G": loss_G.item(),
        "D_real": act(real_scores.detach()).mean().item(),
        "D_fake": act(fake_scores.detach()).mean().item(),
    }


@torch.no_grad()
def discriminator_outputs(
    G: nn.Module,
    D: nn.Module,
    x_real: torch.Tensor,
    z: torch.Tensor,
    activation: Callable[[torch.Tensor], torch.Tensor] | None = torch.sigmoid,
) -> dict[str, float]:
    """D's mean output (after ``activation``) on ``x_real`` and on ``G(z)``, in eval mode."""
    was = G.training, D.training
    G.eval()
    D.eval()
    try:
        act = activation or (lambda t: t)
        real = act(D(x_real)).mean().item()
        fake = act(D(G(z))).mean().item()
    finally:
        G.train(was[0])
        D.train(was[1])
    return {"D_real": real, "D_fake": fake}


@torch.no_grad()
def generate(G: nn.Module, z: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """``G(z)`` in eval mode, in chunks, on the CPU; G's mode is restored afterwards."""
    was = G.training
    G.eval()
    try:
        device = next(G.parameters()).device
        return torch.cat([G(chunk.to(device)).cpu() for chunk in z.split(batch_size)])
    finally:
        G.train(was)


def sampler(G: nn.Module, latent_dim: int, seed: int = 0) -> Callable[[int], torch.Tensor]:
    """``sample(n)``: n images of G from seeded noise (the same noise on every call)."""

    def sample(n: int) -> torch.Tensor:
        z = torch.randn(n, latent_dim, generator=torch.Generator().manual_seed(seed))
        return generate(G, z)

    return sample


def quality_figures(
    G: nn.Module, latent_dim: int, classifier: nn.Module, n: int = 500, seed: int = 0
) -> dict[str, float]:
    """Frechet distance, class coverage and entropy of ``n`` seeded samples of G.

    The figures of :func:`helpers.quality.evaluate_images` against the course's held-out
    digits, as floats for a history: ``frechet``, ``coverage``, ``entropy``.
    """
    from helpers.quality import evaluate_images

    q = evaluate_images(sampler(G, latent_dim, seed)(n), "G", classifier)
    return {"frechet": q.frechet, "coverage": q.coverage, "entropy": q.entropy}


class _Snapshots(nn.Module):
    """Holds a history's snapshots as one 8-bit buffer, so that they travel in the checkpoint."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("images", torch.zeros(0, dtype=torch.uint8))

    def keep(self, snapshots: Sequence[torch.Tensor]) -> None:
        if snapshots:
            pixels = torch.stack([s.detach().cpu().float().clamp(0, 1) for s in snapshots])
            self.images = (pixels * 255).round().to(torch.uint8)  # (epochs, *snapshot shape)

    def restore(self) -> list[torch.Tensor]:
        return list(self.images.float() / 255)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        stored = state_dict.get(prefix + "images")
        if stored is not None:  # any number of epochs: take the stored shape first
            self.images = torch.zeros_like(stored)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


def load_or_train_gan(
    G: nn.Module,
    D: nn.Module,
    name: str,
    train: Callable[[], GANHistory],
    config: Any = None,
    directory: Path | None = None,
) -> GANHistory:
    """:func:`helpers.train.load_or_train` for a (G, D) pair, snapshots included.

    One checkpoint holds G, D and the per-epoch sample grids (as 8-bit images), so a
    loaded run shows the same figures as the run that trained it.
    """
    holder = _Snapshots()

    def train_and_keep() -> GANHistory:
        history = train()
        holder.keep(history.snapshots)
        return history

    pair = nn.ModuleDict({"G": G, "D": D, "snapshots": holder})
    history = load_or_train(pair, name, train_and_keep, config=config, directory=directory)
    if isinstance(history, GANHistory):
        return history
    loaded = GANHistory(epochs=history.epochs, steps=history.steps)
    loaded.snapshots = holder.restore()
    return loaded
