"""10 Pix2Pix: the hidden tests and the grader's comparison, run against alternatives and mistakes.

As in tests/exercise_judge.py: each test cell's hidden block runs once with the reference
(extracted from solutions/) and once with an implementation below, recording under
COURSE_RECORD_DIR; ``autograder.compare`` judges the records, and the visible part of the cell
runs too. Classes are graded through the probes of the hidden blocks (built under a fixed seed:
outputs, parameter counts, input gradients). Correct alternatives must pass everything; each
mistake the issue names must fail the hidden tests, with the mistake named in the feedback.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from autograder.references import cells_of
from tests.exercise_judge import ExerciseJudge, judge_fixtures

NAME = "10_pix2pix"
EXERCISES = (
    "UNetDown",
    "UNetUp",
    "PatchDiscriminator",
    "pix2pix_generator_loss",
    "pix2pix_discriminator_loss",
)
IMPORTS = "import torch\nimport torch.nn.functional as F\nfrom torch import nn\n"
JUDGE = ExerciseJudge(NAME, EXERCISES, IMPORTS)
REF = JUDGE.ref


reference, judge = judge_fixtures(JUDGE, pair=True)


# ------------------------------------------------------------------ correct alternatives
class DownExplicit(nn.Module):
    """Named layers and the functional LeakyReLU."""

    def __init__(self, in_ch, out_ch, normalize=True):
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, kernel_size=4, stride=2, padding=1)
        self.norm = nn.BatchNorm2d(out_ch) if normalize else nn.Identity()

    def forward(self, x):
        return F.leaky_relu(self.norm(self.conv(x)), negative_slope=0.2)


class DownInPlace(nn.Module):
    """A list of modules and an in-place LeakyReLU (on its own intermediate, which is allowed)."""

    def __init__(self, in_ch, out_ch, normalize=True):
        super().__init__()
        self.layers = nn.ModuleList([nn.Conv2d(in_ch, out_ch, 4, 2, 1)])
        if normalize:
            self.layers.append(nn.BatchNorm2d(out_ch))
        self.layers.append(nn.LeakyReLU(0.2, inplace=True))

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x


class UpTupleCat(nn.Module):
    def __init__(self, in_ch, out_ch):
        super().__init__()
        self.up = nn.ConvTranspose2d(in_ch, out_ch, 4, stride=2, padding=1)
        self.bn = nn.BatchNorm2d(out_ch)

    def forward(self, x, skip):
        return torch.cat((F.relu(self.bn(self.up(x))), skip), 1)


class UpNegativeDim(nn.Module):
    def __init__(self, in_ch, out_ch):
        super().__init__()
        self.block = nn.Sequential(
            nn.ConvTranspose2d(in_ch, out_ch, 4, 2, 1), nn.BatchNorm2d(out_ch), nn.ReLU(True)
        )

    def forward(self, x, skip):
        return torch.concat([self.block(x), skip], dim=-3)


class PatchOwnLayers(nn.Module):
    """Without UNetDown: its own convolutions, norms and functional activations."""

    def __init__(self, in_channels=3, base=64):
        super().__init__()
        widths = [2 * in_channels, base, 2 * base, 4 * base, 8 * base]
        self.convs = nn.ModuleList()
        self.norms = nn.ModuleList()
        for i in range(4):
            self.convs.append(nn.Conv2d(widths[i], widths[i + 1], 4, 2, 1))
            self.norms.append(nn.BatchNorm2d(widths[i + 1]) if i else nn.Identity())
        self.out = nn.Conv2d(8 * base, 1, 4, padding=1)

    def forward(self, img_A, img_B):
        h = torch.cat((img_A, img_B), dim=1)
        for conv, norm in zip(self.convs, self.norms):
            h = F.leaky_relu(norm(conv(h)), 0.2)
        return self.out(F.pad(h, (1, 0, 1, 0)))


def gen_loss_explicit(fake_scores, fake_B, real_B, lambda_l1=100.0):
    return ((fake_scores - 1) ** 2).mean() + lambda_l1 * (fake_B - real_B).abs().mean()


def gen_loss_modules(fake_scores, fake_B, real_B, lambda_l1=100.0):
    mse, l1 = nn.MSELoss(), nn.L1Loss()
    return mse(fake_scores, torch.ones_like(fake_scores)) + lambda_l1 * l1(fake_B, real_B)


def disc_loss_explicit(real_scores, fake_scores):
    return ((real_scores - 1).pow(2).mean() + fake_scores.pow(2).mean()) / 2


def disc_loss_functional(real_scores, fake_scores):
    real = F.mse_loss(real_scores, torch.full_like(real_scores, 1.0), reduction="mean")
    return 0.5 * real + 0.5 * F.mse_loss(fake_scores, torch.zeros_like(fake_scores))


CORRECT = [
    ("UNetDown", DownExplicit),
    ("UNetDown", DownInPlace),
    ("UNetUp", UpTupleCat),
    ("UNetUp", UpNegativeDim),
    ("PatchDiscriminator", PatchOwnLayers),
    ("pix2pix_generator_loss", gen_loss_explicit),
    ("pix2pix_generator_loss", gen_loss_modules),
    ("pix2pix_discriminator_loss", disc_loss_explicit),
    ("pix2pix_discriminator_loss", disc_loss_functional),
]


# ------------------------------------------------------------------------------ mistakes
class DownStride1(nn.Module):
    def __init__(self, in_ch, out_ch, normalize=True):
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, 4, 1, 1)  # stride 1: H and W shrink by one only
        self.norm = nn.BatchNorm2d(out_ch) if normalize else nn.Identity()

    def forward(self, x):
        return F.leaky_relu(self.norm(self.conv(x)), 0.2)


class DownAlwaysNorm(nn.Module):
    def __init__(self, in_ch, out_ch, normalize=True):
        super().__init__()
        self.model = nn.Sequential(
            nn.Conv2d(in_ch, out_ch, 4, 2, 1), nn.BatchNorm2d(out_ch), nn.LeakyReLU(0.2)
        )

    def forward(self, x):
        return self.model(x)


class UpSkipFirst(UpTupleCat):
    def forward(self, x, skip):
        return torch.cat((skip, F.relu(self.bn(self.up(x)))), 1)


class UpWrongDim(UpTupleCat):
    def forward(self, x, skip):
        return torch.cat((F.relu(self.bn(self.up(x))), skip), 2)


def _patch(pair="AB", first_norm=False, pad=True):
    class Wrong(nn.Module):
        def __init__(self, in_channels=3, base=64):
            super().__init__()
            c_in = in_channels if pair == "B" else 2 * in_channels
            layers = [
                REF.UNetDown(c_in, base, normalize=first_norm),
                REF.UNetDown(base, 2 * base),
                REF.UNetDown(2 * base, 4 * base),
                REF.UNetDown(4 * base, 8 * base),
            ]
            layers += [nn.ZeroPad2d((1, 0, 1, 0))] if pad else []
            self.model = nn.Sequential(*layers, nn.Conv2d(8 * base, 1, 4, padding=1))

        def forward(self, img_A, img_B):
            x = {"AB": [img_A, img_B], "BA": [img_B, img_A], "B": [img_B]}[pair]
            return self.model(torch.cat(x, 1))

    return Wrong


def gen_loss_l2(fake_scores, fake_B, real_B, lambda_l1=100.0):
    return F.mse_loss(fake_scores, torch.ones_like(fake_scores)) + lambda_l1 * F.mse_loss(
        fake_B, real_B
    )


def gen_loss_lambda_ignored(fake_scores, fake_B, real_B, lambda_l1=100.0):
    return F.mse_loss(fake_scores, torch.ones_like(fake_scores)) + 100.0 * F.l1_loss(fake_B, real_B)


def gen_loss_bce(fake_scores, fake_B, real_B, lambda_l1=100.0):
    adversarial = F.binary_cross_entropy(
        fake_scores.clamp(1e-6, 1 - 1e-6), torch.ones_like(fake_scores)
    )
    return adversarial + lambda_l1 * F.l1_loss(fake_B, real_B)


def disc_loss_no_half(real_scores, fake_scores):
    return F.mse_loss(real_scores, torch.ones_like(real_scores)) + F.mse_loss(
        fake_scores, torch.zeros_like(fake_scores)
    )


def disc_loss_bce(real_scores, fake_scores):
    real = F.binary_cross_entropy(real_scores.clamp(1e-6, 1 - 1e-6), torch.ones_like(real_scores))
    fake = F.binary_cross_entropy(fake_scores.clamp(1e-6, 1 - 1e-6), torch.zeros_like(fake_scores))
    return 0.5 * (real + fake)


MISTAKES = [  # (exercise, implementation, words of the mistake's name in the feedback)
    ("UNetDown", DownStride1, "does not halve H and W"),
    ("UNetDown", DownAlwaysNorm, "normalisation applied even when normalize=False"),
    ("UNetUp", UpSkipFirst, "skip concatenated first"),
    ("UNetUp", UpWrongDim, "wrong dimension"),
    ("PatchDiscriminator", _patch(pair="B"), "judges the output without its input"),
    ("PatchDiscriminator", _patch(pair="BA"), "wrong order"),
    ("PatchDiscriminator", _patch(first_norm=True), "normalisation on the first down block"),
    ("PatchDiscriminator", _patch(pad=False), "patch map of the wrong size"),
    ("pix2pix_generator_loss", gen_loss_l2, "L2 in place of L1"),
    ("pix2pix_generator_loss", gen_loss_lambda_ignored, "lambda_l1 ignored"),
    ("pix2pix_generator_loss", gen_loss_bce, "BCE where the contract says a squared error"),
    ("pix2pix_discriminator_loss", disc_loss_no_half, "the 0.5 is missing"),
    ("pix2pix_discriminator_loss", disc_loss_bce, "BCE where the contract says a squared error"),
]


# --------------------------------------------------------------------------------- tests
def test_reference_records_every_case_without_error(reference):
    sizes = {ex: 3 for ex in EXERCISES} | {"pix2pix_generator_loss": 4}
    for ex in EXERCISES:
        assert len(reference[ex]) == sizes[ex], sorted(reference[ex])
        assert all("error" not in r.meta for r in reference[ex].values()), ex
        assert all(r.meta.get("defines") == ex for r in reference[ex].values()), ex


def test_reference_passes_its_own_tests(judge):
    for ex in EXERCISES:
        failures, visible = judge(ex, getattr(REF, ex))
        assert not failures and not visible, (ex, failures, visible)


@pytest.mark.parametrize("exercise, impl", CORRECT, ids=[i.__name__ for _, i in CORRECT])
def test_correct_alternative_passes(judge, exercise, impl):
    failures, visible = judge(exercise, impl)
    assert not failures, "\n\n".join(failures.values())
    assert visible == ""


@pytest.mark.parametrize(
    "exercise, impl, label", MISTAKES, ids=[f"{e}-{label[:24]}" for e, _, label in MISTAKES]
)
def test_classic_mistake_fails_and_is_named(judge, exercise, impl, label):
    failures, _ = judge(exercise, impl)
    assert failures, f"{impl.__name__} passed the hidden tests of {exercise}"
    for message in failures.values():
        for word in ("expected:", "got:", "input:", "hint:"):
            assert word in message, message
    assert any(label in m for m in failures.values()), "\n\n".join(failures.values())


@pytest.mark.parametrize(
    "exercise, impl",
    [
        ("UNetDown", DownStride1),
        ("UNetDown", DownAlwaysNorm),
        ("UNetUp", UpSkipFirst),
        ("PatchDiscriminator", _patch(pair="B")),
        ("PatchDiscriminator", _patch(pad=False)),
        ("pix2pix_generator_loss", gen_loss_l2),
        ("pix2pix_discriminator_loss", disc_loss_no_half),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_visible_tests_catch_the_common_mistakes_too(judge, exercise, impl):
    _, visible = judge(exercise, impl)
    assert visible and "expected" in visible, visible


def test_the_reference_generator_is_a_unet_of_the_students_blocks():
    """The given U-Net of the notebook (not an exercise) maps (B, 3, 64, 64) to itself."""
    source = next(c.source for c in cells_of(NAME, "code") if "class UNetGenerator" in c.source)
    ns = JUDGE.namespace("UNetDown", REF.UNetDown)
    exec(source.split("\nG = ")[0], ns)
    G = ns["UNetGenerator"](base=4)
    x = torch.randn(2, 3, 64, 64)
    y = G(x)
    assert y.shape == x.shape and y.abs().max() <= 1
    assert sum(isinstance(m, REF.UNetDown) for m in G.modules()) == 5
    assert sum(isinstance(m, REF.UNetUp) for m in G.modules()) == 4
