"""Given code for the WGAN-GP notebook (09): a critic without batch norm, the n_critic step, monitors.

Nothing here answers an exercise. The step takes the student's ``gradient_penalty``,
``critic_loss`` and ``wgan_generator_loss`` as arguments, and the monitor reads the
mean gradient norm at the interpolates from two calls of the student's own penalty
(see :func:`interpolate_grad_norm`), so no penalty code lives in this module.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import contextmanager

import torch
from torch import nn

Penalty = Callable[[Callable, torch.Tensor, torch.Tensor], torch.Tensor]


class Critic(nn.Module):
    """image -> two strided convs -> (B, 128, 7, 7) -> fc -> (B, 1) scores, without batch norm.

    06's ``ConvDiscriminator`` (:mod:`helpers.gan_models`) minus its batch norm. The gradient
    penalty constrains the gradient of *each* sample's score with respect to that sample;
    batch norm would make every score depend on the whole batch, so Gulrajani et al. (2017,
    section 4) leave it out of the critic. The output is an unbounded score, not a logit.
    """

    def __init__(self, channels: int = 32) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(1, channels, 4, stride=2, padding=1),  # (B, C, 14, 14)
            nn.LeakyReLU(0.2),
            nn.Conv2d(channels, 128, 4, stride=2, padding=1),  # (B, 128, 7, 7)
            nn.LeakyReLU(0.2),  # no batch norm anywhere in a critic
        )
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(128 * 7 * 7, 1))  # (B, 1): a score

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(x))


@contextmanager
def _same_draws(seed: int, device: torch.device):
    """Run a block with the global RNG (CPU and ``device``) seeded, then restore it."""
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def interpolate_grad_norm(
    penalty: Penalty,
    critic: Callable[[torch.Tensor], torch.Tensor],
    real: torch.Tensor,
    fake: torch.Tensor,
    seed: int = 0,
) -> tuple[float, float]:
    """Mean and standard deviation of the critic's gradient norm at the interpolates.

    With n the per-sample norms, ``penalty`` returns mean((s n - 1)^2) = s^2 m2 - 2 s m1 + 1
    for the critic scaled by s. Two calls on the same draws (s = 1 and s = 2) give
    m1 = (3 - 4 P(1) + P(2)) / 4 and m2 = P(1) - 1 + 2 m1.
    """
    values = []
    for scale in (1.0, 2.0):
        with _same_draws(seed, real.device):
            gp = penalty(lambda x, s=scale: s * critic(x), real, fake)
        values.append(float(gp.detach()))
    p1, p2 = values
    m1 = (3.0 - 4.0 * p1 + p2) / 4.0
    m2 = p1 - 1.0 + 2.0 * m1
    return m1, math.sqrt(max(m2 - m1 * m1, 0.0))


def wgan_gp_step(
    G: nn.Module,
    critic: nn.Module,
    opt_G: torch.optim.Optimizer,
    opt_C: torch.optim.Optimizer,
    latent_dim: int,
    penalty: Penalty,
    loss_C_fn: Callable[..., torch.Tensor],
    loss_G_fn: Callable[[torch.Tensor], torch.Tensor],
    n_critic: int = 5,
    lambda_gp: float = 10.0,
) -> Callable[[tuple[torch.Tensor, ...]], dict[str, float]]:
    """A ``step(batch)`` for ``helpers.gan.train_gan``: Algorithm 1 of Gulrajani et al. (2017).

    Every batch updates the critic once (real batch, detached fakes, penalty at the
    interpolates); the first and every ``n_critic``-th batch update the generator once as well. Each
    call returns the critic loss (``loss_D``, the name the GAN figures use), the latest generator
    loss, the penalty and the critic's Wasserstein estimate on that batch (``wasserstein_train``).
    """
    device = next(critic.parameters()).device
    state = {"calls": 0, "loss_G": float("nan")}

    def step(batch: tuple[torch.Tensor, ...]) -> dict[str, float]:
        x_real = batch[0].to(device)
        b = x_real.shape[0]
        G.train()
        critic.train()
        z = torch.randn(b, latent_dim, device=device)
        x_fake = G(z).detach()  # the critic step does not update G
        real_scores, fake_scores = critic(x_real), critic(x_fake)
        gp = penalty(critic, x_real, x_fake)
        loss_C = loss_C_fn(real_scores, fake_scores, gp, lambda_gp)
        opt_C.zero_grad(set_to_none=True)
        loss_C.backward()
        opt_C.step()
        state["calls"] += 1
        if state["calls"] % n_critic == 0 or state["calls"] == 1:
            z = torch.randn(b, latent_dim, device=device)
            loss_G = loss_G_fn(critic(G(z)))
            opt_G.zero_grad(set_to_none=True)
            loss_G.backward()
            opt_G.step()
            state["loss_G"] = loss_G.item()
        return {
            "loss_D": loss_C.item(),  # the critic's loss, under the name GAN figures use
            "loss_G": state["loss_G"],
            "gp": gp.item(),
            "wasserstein_train": (real_scores.mean() - fake_scores.mean()).item(),
        }

    return step


@torch.no_grad()
def _scores(critic: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return critic(x)


def critic_figures(
    G: nn.Module,
    critic: nn.Module,
    penalty: Penalty,
    x_real: torch.Tensor,
    z: torch.Tensor,
    seed: int = 0,
) -> dict[str, float]:
    """The critic's figures on held-out digits ``x_real`` and the fakes ``G(z)``, for a history.

    ``wasserstein``: mean(critic(x_real)) - mean(critic(G(z))), the critic's estimate of the
    distance; ``grad_norm`` and ``grad_norm_std``: the gradient norm at the interpolates
    (:func:`interpolate_grad_norm`, from two calls of ``penalty``). Both networks are left in
    the mode they were in.
    """
    device = next(critic.parameters()).device
    was = G.training, critic.training
    G.eval()
    critic.eval()
    try:
        with torch.no_grad():
            x_fake = G(z.to(device))
        x_real = x_real.to(device)
        estimate = _scores(critic, x_real).mean() - _scores(critic, x_fake).mean()
        mean, std = interpolate_grad_norm(penalty, critic, x_real, x_fake, seed)
    finally:
        G.train(was[0])
        critic.train(was[1])
    return {"wasserstein": float(estimate), "grad_norm": mean, "grad_norm_std": std}
