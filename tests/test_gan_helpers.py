"""Given GAN code (helpers.gan, helpers.gan_models, helpers.gan_plots), against oracles.

The oracle for :func:`helpers.gan.gan_step` is the alternating update written out by hand
(D on real and detached fakes, then G through the updated D) on tiny seeded networks.
"""

from __future__ import annotations

import copy

import matplotlib
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from helpers.gan import (
    GANHistory,
    discriminator_outputs,
    gan_step,
    generate,
    load_or_train_gan,
    sampler,
    train_gan,
)
from helpers.gan_models import ConvDiscriminator, ConvGenerator, FCDiscriminator, FCGenerator

matplotlib.use("Agg")


def bce_D(real, fake):
    return F.binary_cross_entropy_with_logits(
        real, torch.ones_like(real)
    ) + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake))


def bce_G(fake):
    return F.binary_cross_entropy_with_logits(fake, torch.ones_like(fake))


def ls_D(real, fake):
    return 0.5 * ((real - 1) ** 2).mean() + 0.5 * (fake**2).mean()


def ls_G(fake):
    return 0.5 * ((fake - 1) ** 2).mean()


def _tiny(seed=0):
    torch.manual_seed(seed)
    G = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 4), nn.Sigmoid())
    D = nn.Sequential(nn.Linear(4, 6), nn.LeakyReLU(0.2), nn.Linear(6, 1))
    return G, D


def _opts(G, D):
    return torch.optim.Adam(G.parameters(), lr=0.05), torch.optim.Adam(D.parameters(), lr=0.05)


def _flat(module):
    return torch.cat([p.detach().flatten() for p in module.parameters()])


def _oracle_step(G, D, x, opt_G, opt_D, latent_dim, loss_D_fn, loss_G_fn):
    z = torch.randn(x.shape[0], latent_dim)
    fake = G(z)
    opt_D.zero_grad()
    loss_D_fn(D(x), D(fake.detach())).backward()
    opt_D.step()
    opt_G.zero_grad()
    loss_G_fn(D(fake)).backward()
    opt_G.step()


# ----------------------------------------------------------------------------- models
@pytest.mark.parametrize("noise_dim", [100, 16])
def test_conv_pair_shapes_range_and_the_128x7x7_maps(noise_dim):
    torch.manual_seed(0)
    G, D = ConvGenerator(noise_dim), ConvDiscriminator()
    seen = []
    for module in (G, D):
        for m in module.modules():
            m.register_forward_hook(lambda m, a, out: seen.append(tuple(out.shape)))
    x = G(10 * torch.randn(5, noise_dim))
    assert x.shape == (5, 1, 28, 28) and 0 <= x.min() and x.max() <= 1
    scores = D(torch.rand(5, 1, 28, 28))
    assert scores.shape == (5, 1)
    assert seen.count((5, 128, 7, 7)) >= 2  # in G after the fc, in D before the fc
    assert (scores < 0).any() or (scores > 1).any(), "D must return logits, not probabilities"


def test_fc_pair_shapes_and_range():
    torch.manual_seed(0)
    G, D = FCGenerator(noise_dim=8, hidden_dim=16), FCDiscriminator(hidden_dim=16)
    x = G(5 * torch.randn(7, 8))
    assert x.shape == (7, 1, 28, 28) and 0 <= x.min() and x.max() <= 1
    assert D(x).shape == (7, 1)


# -------------------------------------------------------------------------- gan_step
@pytest.mark.parametrize("losses", [(bce_D, bce_G), (ls_D, ls_G)], ids=["bce", "lsgan"])
def test_gan_step_equals_the_alternating_update_written_out(losses):
    x = torch.rand(5, 4)
    G1, D1 = _tiny()
    G2, D2 = copy.deepcopy(G1), copy.deepcopy(D1)
    oG1, oD1 = _opts(G1, D1)
    oG2, oD2 = _opts(G2, D2)
    for _ in range(2):  # two steps: gradients must be cleared in between
        torch.manual_seed(7)
        out = gan_step(G1, D1, x, oG1, oD1, 3, *losses)
        torch.manual_seed(7)
        _oracle_step(G2, D2, x, oG2, oD2, 3, *losses)
        torch.testing.assert_close(_flat(G1), _flat(G2))
        torch.testing.assert_close(_flat(D1), _flat(D2))
    assert set(out) == {"loss_D", "loss_G", "D_real", "D_fake"}
    assert all(isinstance(v, float) for v in out.values())


def test_gan_step_detaches_fakes_in_the_D_step():
    G, D = _tiny()
    oG, oD = _opts(G, D)
    calls = []

    def count_backward_passes(module, args, out):
        out.register_hook(lambda grad: calls.append(1))

    G.register_forward_hook(count_backward_passes)
    gan_step(G, D, torch.rand(4, 4), oG, oD, 3, bce_D, bce_G)
    assert len(calls) == 1, "only the generator loss may back-propagate into G"


def test_gan_step_uses_the_given_losses_and_reports_D_outputs():
    G, D = _tiny()
    oG, oD = _opts(G, D)
    x = torch.rand(6, 4)
    seen = []

    def loss_D(real, fake):
        seen.append(("D", real.shape, fake.shape, fake.requires_grad))
        return bce_D(real, fake)

    def loss_G(fake):
        seen.append(("G", fake.shape))
        return bce_G(fake)

    torch.manual_seed(3)
    out = gan_step(G, D, x, oG, oD, 3, loss_D, loss_G, activation=torch.sigmoid)
    assert [s[0] for s in seen] == ["D", "G"] and seen[0][1] == seen[0][2] == (6, 1)
    assert 0 < out["D_real"] < 1 and 0 < out["D_fake"] < 1
    G2, D2 = _tiny()
    torch.manual_seed(3)
    raw = gan_step(G2, D2, x, *_opts(G2, D2), 3, bce_D, bce_G)
    assert raw["loss_D"] == pytest.approx(out["loss_D"])


def test_discriminator_outputs_and_generate_restore_train_mode():
    G, D = ConvGenerator(8), ConvDiscriminator()
    out = discriminator_outputs(G, D, torch.rand(4, 1, 28, 28), torch.randn(4, 8))
    assert set(out) == {"D_real", "D_fake"} and all(0 < v < 1 for v in out.values())
    assert G.training and D.training
    images = generate(G, torch.randn(7, 8), batch_size=3)
    assert images.shape == (7, 1, 28, 28) and G.training
    sample = sampler(G, 8, seed=1)
    torch.testing.assert_close(sample(5), sample(5))  # the same noise on every call


# ------------------------------------------------------------------------- train_gan
def _loader(n=12, batch_size=4):
    return DataLoader(TensorDataset(torch.rand(n, 4), torch.zeros(n)), batch_size=batch_size)


def test_train_gan_steps_schedulers_once_per_epoch_and_keeps_snapshots():
    G, D = _tiny()
    oG, oD = _opts(G, D)
    sG = torch.optim.lr_scheduler.StepLR(oG, step_size=2, gamma=0.5)
    sD = torch.optim.lr_scheduler.StepLR(oD, step_size=2, gamma=0.5)
    steps, evaluations = [], []
    fixed = torch.randn(3, 3)

    def step(batch):
        steps.append(len(batch[0]))
        return gan_step(G, D, batch[0], oG, oD, 3, bce_D, bce_G)

    def evaluate():
        evaluations.append(1)
        return {"frechet": float(len(evaluations))}

    h = train_gan(
        step,
        _loader(),
        5,
        schedulers=(sG, sD),
        snapshot=lambda: G(fixed),
        evaluate=evaluate,
        desc="test",
    )
    assert isinstance(h, GANHistory) and steps == [4] * 15 and len(evaluations) == 5
    assert h.epochs["lr"] == pytest.approx([0.05, 0.025, 0.025, 0.0125, 0.0125])
    assert oG.param_groups[0]["lr"] == oD.param_groups[0]["lr"] == pytest.approx(0.0125)
    assert h.epochs["frechet"] == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert len(h.snapshots) == 5 and h.snapshots[0].shape == (3, 4)
    assert not h.snapshots[0].requires_grad
    assert len(h.steps["loss_D"]) == 15 and len(h.epochs["loss_D"]) == 5
    assert h.epochs["loss_G"][0] == pytest.approx(sum(h.steps["loss_G"][:3]) / 3)


def test_load_or_train_gan_restores_weights_and_snapshots(tmp_path):
    torch.manual_seed(0)
    G, D = ConvGenerator(8), ConvDiscriminator()
    oG, oD = _opts(G, D)
    x = TensorDataset(torch.rand(8, 1, 28, 28), torch.zeros(8))
    fixed = torch.randn(4, 8)

    runs = []

    def train():
        runs.append(1)
        return train_gan(
            lambda b: gan_step(G, D, b[0], oG, oD, 8, bce_D, bce_G),
            DataLoader(x, batch_size=4),
            2,
            snapshot=lambda: generate(G, fixed),
        )

    trained = load_or_train_gan(G, D, "tiny", train, config="c", directory=tmp_path)
    torch.manual_seed(1)
    G2, D2 = ConvGenerator(8), ConvDiscriminator()
    # The same training code and settings: loaded, not retrained (the key covers the code).
    loaded = load_or_train_gan(G2, D2, "tiny", train, "c", tmp_path)
    assert len(runs) == 1, "retrained although code and settings are unchanged"
    torch.testing.assert_close(_flat(G2), _flat(G))
    torch.testing.assert_close(_flat(D2), _flat(D))
    assert loaded.epochs["loss_D"] == pytest.approx(trained.epochs["loss_D"])
    assert len(loaded.snapshots) == 2 and loaded.snapshots[1].shape == (4, 1, 28, 28)
    torch.testing.assert_close(loaded.snapshots[1], trained.snapshots[1], atol=0.5 / 255, rtol=0)


# ------------------------------------------------------------------------- gan_plots
def test_figures_build_from_one_or_several_histories():
    from helpers.gan_plots import class_histogram, gan_curves, snapshot_epochs, snapshots_figure

    h = GANHistory()
    for e in range(7):
        for k, v in dict(
            loss_D=1.0, loss_G=2.0, D_real=0.7, D_fake=0.3, frechet=50.0 / (e + 1)
        ).items():
            h.epochs[k].append(v)
        h.snapshots.append(torch.rand(16, 1, 28, 28))
    assert snapshot_epochs(7, 4) == [1, 3, 5, 7] and snapshot_epochs(2, 6) == [1, 2]
    assert len(snapshots_figure(h, count=4, nrow=4, n=16).axes) == 4
    assert len(gan_curves(h, floor=5.0, ceiling=900.0).axes) == 3  # no coverage recorded
    h.epochs["coverage"] = [0.5] * 7
    assert len(gan_curves({"BCE": h, "LSGAN": h}).axes) == 4
    fig = class_histogram({"BCE": torch.tensor([0, 1, 1]), "LSGAN": [2, 2, 9]})
    assert len(fig.axes[0].patches) == 20
    matplotlib.pyplot.close("all")


def test_quality_figures_of_a_generator_are_floats_in_range():
    from helpers.gan import quality_figures
    from helpers.quality import DigitClassifier

    torch.manual_seed(0)
    classifier = DigitClassifier().eval().requires_grad_(False)
    G = ConvGenerator(8)
    figures = quality_figures(G, 8, classifier, n=40, seed=3)
    assert set(figures) == {"frechet", "coverage", "entropy"}
    assert figures["frechet"] > 0 and 0 < figures["coverage"] <= 1
    assert quality_figures(G, 8, classifier, n=40, seed=3) == figures  # seeded noise
