"""helpers.wgan: the critic, the n_critic step and the gradient-norm monitor, against oracles."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from helpers.wgan import Critic, critic_figures, interpolate_grad_norm, wgan_gp_step


def _penalty(critic, real, fake):
    """An independent penalty (autograd on per-sample gradients), as the oracle's student."""
    alpha = torch.rand(real.shape[0], *[1] * (real.dim() - 1))
    x_hat = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    (g,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
    return ((g.flatten(1).norm(dim=1) - 1) ** 2).mean()


def test_critic_scores_each_image_without_normalisation():
    critic = Critic(channels=8)
    assert critic(torch.rand(3, 1, 28, 28)).shape == (3, 1)
    assert not [m for m in critic.modules() if "Norm" in type(m).__name__]
    x = torch.rand(4, 1, 28, 28)
    alone = torch.cat([critic(x[i : i + 1]) for i in range(4)])
    torch.testing.assert_close(critic(x), alone)  # no sample's score depends on the others


def test_interpolate_grad_norm_is_exact_for_a_linear_critic():
    w = torch.randn(1, 1, 4, 4)
    critic = lambda x: (x * w).sum(dim=(1, 2, 3))  # noqa: E731 - gradient w everywhere
    mean, std = interpolate_grad_norm(
        _penalty, critic, torch.rand(6, 1, 4, 4), torch.rand(6, 1, 4, 4)
    )
    assert mean == pytest.approx(float(w.norm()), rel=1e-4)
    assert std == pytest.approx(0.0, abs=1e-2)


def test_interpolate_grad_norm_matches_the_norms_at_the_same_interpolates():
    critic = nn.Sequential(nn.Flatten(), nn.Linear(16, 5), nn.Tanh(), nn.Linear(5, 1))
    real, fake = torch.rand(32, 1, 4, 4), torch.rand(32, 1, 4, 4)
    mean, std = interpolate_grad_norm(_penalty, critic, real, fake, seed=3)
    torch.manual_seed(3)
    alpha = torch.rand(32, 1, 1, 1)
    x_hat = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    (g,) = torch.autograd.grad(critic(x_hat).sum(), x_hat)
    norms = g.flatten(1).norm(dim=1)
    assert mean == pytest.approx(float(norms.mean()), rel=1e-3)
    assert std == pytest.approx(float(norms.std(unbiased=False)), rel=1e-2, abs=1e-3)


def test_step_updates_the_critic_every_batch_and_the_generator_every_n_critic():
    torch.manual_seed(0)
    G = nn.Sequential(nn.Linear(3, 16), nn.Sigmoid(), nn.Unflatten(1, (1, 4, 4)))
    critic = nn.Sequential(nn.Flatten(), nn.Linear(16, 1))
    opt_G = torch.optim.SGD(G.parameters(), lr=0.1)
    opt_C = torch.optim.SGD(critic.parameters(), lr=0.1)
    calls = {"C": 0, "G": 0}

    def loss_C(real, fake, gp, lam):
        calls["C"] += 1
        assert lam == 2.0
        return fake.mean() - real.mean() + lam * gp

    def loss_G(fake):
        calls["G"] += 1
        return -fake.mean()

    step = wgan_gp_step(
        G, critic, opt_G, opt_C, 3, _penalty, loss_C, loss_G, n_critic=3, lambda_gp=2.0
    )
    before = [p.detach().clone() for p in G.parameters()]
    out = step((torch.rand(5, 1, 4, 4), torch.zeros(5)))
    assert set(out) == {"loss_D", "loss_G", "gp", "wasserstein_train"}
    assert all(math.isfinite(v) for v in out.values())
    moved = any(not torch.equal(b, p) for b, p in zip(before, G.parameters()))
    assert moved  # the first call updates G too, so loss_G has a value from the start
    for _ in range(5):
        step((torch.rand(5, 1, 4, 4), torch.zeros(5)))
    assert calls == {"C": 6, "G": 3}  # calls 1, 3 and 6


def test_critic_figures_keep_the_modes_and_report_the_estimate():
    torch.manual_seed(0)
    G = nn.Sequential(nn.Linear(3, 16), nn.Sigmoid(), nn.Unflatten(1, (1, 4, 4))).train()
    critic = nn.Sequential(nn.Flatten(), nn.Linear(16, 1)).eval()
    x_real, z = torch.rand(8, 1, 4, 4), torch.randn(8, 3)
    figures = critic_figures(G, critic, _penalty, x_real, z)
    assert G.training and not critic.training
    with torch.no_grad():
        expected = critic(x_real).mean() - critic(G(z)).mean()
    assert figures["wasserstein"] == pytest.approx(float(expected), rel=1e-5)
    assert figures["grad_norm"] == pytest.approx(float(critic[1].weight.detach().norm()), rel=1e-4)
