"""08 (conditional GAN) and 09 (WGAN-GP): hidden tests and the grader's comparison as an oracle.

As in tests/exercise_judge.py, the hidden blocks of the solutions' test cells run once with
the reference and once with each implementation below (records under COURSE_RECORD_DIR), and
``autograder.compare`` judges the two. Correct alternatives must pass; classic mistakes must
fail with a message that says what was expected, what came back, on what input, and names the
mistake when the comparison can tell it apart. The visible part of each test cell runs too.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from autograder.references import _MARKERS, cells_of
from helpers import grading
from tests.exercise_judge import ExerciseJudge, assert_feedback, judge_fixtures

EXERCISES = {
    "08_cgan": ("one_hot", "ConditionalGenerator", "ConditionalDiscriminator"),
    "09_wgan_gp": ("gradient_penalty", "critic_loss", "wgan_generator_loss"),
}
NOTEBOOK = {ex: nb for nb, names in EXERCISES.items() for ex in names}
IMPORTS = (
    "import math\nimport numpy as np\nimport torch\nimport torch.nn.functional as F\n"
    "from torch import nn\nfrom helpers.models import count_parameters\n"
)
JUDGES = {
    nb: ExerciseJudge(nb, names, IMPORTS, main=True, classes_as_cells=True)
    for nb, names in EXERCISES.items()
}
REF = {nb: j.ref for nb, j in JUDGES.items()}


reference, judge = judge_fixtures(*JUDGES.values(), pair=True)


# ------------------------------------------------------------------ 08: alternatives
def one_hot_eye(labels, n_classes=10):
    return torch.eye(n_classes, device=labels.device)[labels]


def one_hot_scatter(labels, n_classes=10):
    rows = torch.zeros(len(labels), n_classes, device=labels.device)
    return rows.scatter(1, labels.unsqueeze(1), 1.0)


def one_hot_compare(labels, n_classes=10):
    return (labels[:, None] == torch.arange(n_classes, device=labels.device)).float()


class GeneratorLayers(nn.Module):
    """Layers created last-to-first under other names, functional activations, Unflatten."""

    def __init__(self, noise_dim=100, n_classes=10):
        super().__init__()
        self.n_classes = n_classes
        self.out = nn.Linear(512, 784)
        self.norm2 = nn.BatchNorm1d(512)
        self.hidden = nn.Linear(256, 512)
        self.norm1 = nn.BatchNorm1d(256)
        self.inp = nn.Linear(noise_dim + n_classes, 256)
        self.to_image = nn.Unflatten(1, (1, 28, 28))

    def body(self, h):
        h = F.leaky_relu(self.norm1(self.inp(h)), 0.2)
        h = F.leaky_relu(self.norm2(self.hidden(h)), negative_slope=0.2)
        return self.to_image(torch.sigmoid(self.out(h)))

    def forward(self, z, labels):
        return self.body(torch.cat((z, F.one_hot(labels, self.n_classes).to(z.dtype)), 1))


class DiscriminatorView(nn.Module):
    def __init__(self, n_classes=10):
        super().__init__()
        self.n_classes = n_classes
        self.layers = nn.ModuleList(
            [nn.Linear(784 + n_classes, 512), nn.Linear(512, 256), nn.Linear(256, 1)]
        )

    def forward(self, x, labels):
        h = torch.cat([x.view(x.shape[0], -1), torch.eye(self.n_classes)[labels]], dim=-1)
        h = F.leaky_relu(self.layers[0](h), 0.2)
        h = F.leaky_relu(self.layers[1](h), 0.2)
        return self.layers[2](h)


# ---------------------------------------------------------------------- 08: mistakes
def one_hot_int(labels, n_classes=10):
    return F.one_hot(labels, n_classes)


def one_hot_cpu(labels, n_classes=10):
    return torch.eye(n_classes)[labels]


def one_hot_inferred(labels, n_classes=10):
    return F.one_hot(labels).float()


class GeneratorNoLabels(GeneratorLayers):
    def forward(self, z, labels):
        return self.body(torch.cat([z, torch.zeros(len(z), self.n_classes)], dim=1))


class GeneratorLabelFirst(GeneratorLayers):
    def forward(self, z, labels):
        return self.body(torch.cat([F.one_hot(labels, self.n_classes).float(), z], dim=1))


class DiscriminatorLabelsAsChannels(nn.Module):
    """The one-hot concatenated on the channel dimension of the image, then flattened."""

    def __init__(self, n_classes=10):
        super().__init__()
        self.n_classes = n_classes
        self.fc1 = nn.Linear(784 * (1 + n_classes), 512)
        self.fc2 = nn.Linear(512, 256)
        self.fc3 = nn.Linear(256, 1)

    def forward(self, x, labels):
        maps = F.one_hot(labels, self.n_classes).float()[:, :, None, None].expand(-1, -1, 28, 28)
        h = torch.cat([x, maps], dim=1).flatten(1)
        return self.fc3(F.leaky_relu(self.fc2(F.leaky_relu(self.fc1(h), 0.2)), 0.2))


class DiscriminatorSigmoid(DiscriminatorView):
    def forward(self, x, labels):
        return torch.sigmoid(super().forward(x, labels))


# ------------------------------------------------------------------ 09: alternatives
def gp_pow_sum_sqrt(critic, real, fake):
    alpha = torch.rand(real.shape[0], 1, 1, 1)
    x_hat = alpha * real + (1 - alpha) * fake
    x_hat.requires_grad_(True)
    scores = critic(x_hat)
    (g,) = torch.autograd.grad(
        outputs=scores,
        inputs=x_hat,
        grad_outputs=torch.ones_like(scores),
        create_graph=True,
        retain_graph=True,
    )
    return ((g.pow(2).sum(dim=(1, 2, 3)).sqrt() - 1) ** 2).mean()


def gp_lerp_eps(critic, real, fake):
    alpha = torch.rand(real.size(0), *([1] * (real.ndim - 1)), device=real.device, dtype=real.dtype)
    x_hat = torch.lerp(fake, real, alpha)  # fake + alpha (real - fake)
    if not x_hat.requires_grad:
        x_hat.requires_grad_()
    g = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)[0]
    norm = torch.sqrt(torch.sum(g.reshape(len(g), -1) ** 2, dim=1) + 1e-12)
    return torch.mean((norm - 1.0) ** 2)


def gp_linalg(critic, real, fake):
    alpha = torch.rand(real.shape[0], *[1] * (real.dim() - 1)).to(real)
    x_hat = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    g = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)[0]
    return F.mse_loss(torch.linalg.vector_norm(g.flatten(1), dim=1), torch.ones(len(g)))


def critic_loss_neg(real_scores, fake_scores, gp, lambda_gp=10.0):
    return -(real_scores.mean() - fake_scores.mean()) + lambda_gp * gp


def generator_loss_neg(fake_scores):
    return torch.mean(fake_scores).neg()


# ---------------------------------------------------------------------- 09: mistakes
def _gp(critic, real, fake, alpha=None, norm=None, reduce=None, graph=True, detach=False):
    a = torch.rand(real.shape[0], 1, 1, 1) if alpha is None else alpha(real)
    x_hat = a * real + (1 - a) * fake
    x_hat = (x_hat.detach() if detach else x_hat).requires_grad_(True)
    (g,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=graph)
    n = g.flatten(1).norm(dim=1) if norm is None else norm(g)
    return ((n - 1) ** 2).mean() if reduce is None else reduce(n)


def gp_alpha_per_pixel(critic, real, fake):
    return _gp(critic, real, fake, alpha=torch.rand_like)


def gp_alpha_randn(critic, real, fake):
    return _gp(critic, real, fake, alpha=lambda r: torch.randn(r.shape[0], 1, 1, 1))


def gp_norm_dim1(critic, real, fake):
    return _gp(critic, real, fake, norm=lambda g: g.norm(2, dim=1))


def gp_no_create_graph(critic, real, fake):
    return _gp(critic, real, fake, graph=False)


def gp_mean_then_square(critic, real, fake):
    return _gp(critic, real, fake, reduce=lambda n: (n.mean() - 1) ** 2)


def gp_abs_mean(critic, real, fake):
    return _gp(critic, real, fake, reduce=lambda n: (n.mean() - 1).abs())


def gp_detached(critic, real, fake):
    return _gp(critic, real, fake, detach=True)


def gp_swapped_alpha(critic, real, fake):  # the official code's form: alpha on the fakes
    alpha = torch.rand(real.shape[0], 1, 1, 1)
    x_hat = (real + alpha * (fake - real)).requires_grad_(True)
    (g,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
    return ((g.flatten(1).norm(dim=1) - 1) ** 2).mean()


def critic_loss_swapped(real_scores, fake_scores, gp, lambda_gp=10.0):
    return real_scores.mean() - fake_scores.mean() + lambda_gp * gp


def critic_loss_fixed_lambda(real_scores, fake_scores, gp, lambda_gp=10.0):
    return fake_scores.mean() - real_scores.mean() + 10 * gp


def generator_loss_positive(fake_scores):
    return fake_scores.mean()


# --------------------------------------------------------------------------- tests
def test_reference_records_itself(judge, reference):
    sizes = {
        "one_hot": 5,
        "ConditionalGenerator": 3,
        "ConditionalDiscriminator": 3,
        "gradient_penalty": 6,
        "critic_loss": 5,
        "wgan_generator_loss": 3,
    }
    for ex, nb in NOTEBOOK.items():
        assert len(reference[ex]) == sizes[ex], (ex, sorted(reference[ex]))
        assert all("error" not in r.meta for r in reference[ex].values()), ex
        failures, visible_error = judge(ex, getattr(REF[nb], ex))
        assert not failures and not visible_error, (failures, visible_error)


CORRECT = [
    ("one_hot", one_hot_eye),
    ("one_hot", one_hot_scatter),
    ("one_hot", one_hot_compare),
    ("ConditionalGenerator", GeneratorLayers),
    ("ConditionalDiscriminator", DiscriminatorView),
    ("gradient_penalty", gp_pow_sum_sqrt),
    ("gradient_penalty", gp_lerp_eps),
    ("gradient_penalty", gp_linalg),
    ("critic_loss", critic_loss_neg),
    ("wgan_generator_loss", generator_loss_neg),
]


@pytest.mark.parametrize("exercise, fn", CORRECT, ids=[f.__name__ for _, f in CORRECT])
def test_correct_alternative_passes(judge, exercise, fn):
    failures, visible_error = judge(exercise, fn)
    assert not failures, "\n\n".join(failures.values())
    assert visible_error == ""


MISTAKES = [  # (exercise, implementation, words of the mistake's name, caught by visible tests)
    ("one_hot", one_hot_inferred, "n_classes ignored", True),
    ("one_hot", one_hot_cpu, "built on the CPU", True),
    ("ConditionalGenerator", GeneratorNoLabels, "never reach the network", True),
    ("ConditionalGenerator", GeneratorLabelFirst, "placed before z", False),
    ("ConditionalDiscriminator", DiscriminatorLabelsAsChannels, "as image channels", True),
    ("ConditionalDiscriminator", DiscriminatorSigmoid, "a Sigmoid at the end", True),
    ("gradient_penalty", gp_alpha_per_pixel, "alpha drawn per pixel", True),
    ("gradient_penalty", gp_alpha_randn, "normal distribution", True),
    ("gradient_penalty", gp_norm_dim1, "over one dimension only", True),
    ("gradient_penalty", gp_no_create_graph, "create_graph=True is missing", True),
    ("gradient_penalty", gp_mean_then_square, "the mean is taken before squaring", False),
    ("gradient_penalty", gp_abs_mean, "|mean(norm) - 1|", True),
    ("gradient_penalty", gp_swapped_alpha, "alpha weights the fake images", True),
    ("critic_loss", critic_loss_swapped, "signs are swapped", True),
    ("critic_loss", critic_loss_fixed_lambda, "lambda_gp is ignored", True),
    ("wgan_generator_loss", generator_loss_positive, "sign is missing", True),
]


@pytest.mark.parametrize(
    "exercise, fn, label, visible", MISTAKES, ids=[f.__name__ for _, f, _, _ in MISTAKES]
)
def test_classic_mistake_fails_and_is_named(judge, exercise, fn, label, visible):
    failures, visible_error = judge(exercise, fn)
    assert failures, f"{fn.__name__} passed the hidden tests"
    for message in failures.values():
        assert_feedback(message)
    assert any(label in m for m in failures.values()), "\n\n".join(failures.values())
    assert bool(visible_error) == visible, visible_error


def test_integer_one_hot_fails_on_its_dtype(judge):
    failures, visible_error = judge("one_hot", one_hot_int)
    assert len(failures) == 5  # four value cases and the device probe, which checks the dtype
    for key, message in failures.items():
        if key.startswith("one_hot#"):
            assert "torch.float32" in message and "torch.int64" in message, message
    assert "dtype" in visible_error


def test_missing_create_graph_has_the_right_value_but_no_weight_gradients(judge):
    failures, _ = judge("gradient_penalty", gp_no_create_graph)
    assert len(failures) == 6
    for message in failures.values():  # the value is right: the weights' gradients are zeros
        assert "create_graph=True is missing" in message and "got:      [0, 0, 0" in message


def test_detached_interpolates_fail_only_where_gradients_reach_the_images(judge):
    failures, visible_error = judge("gradient_penalty", gp_detached)
    assert list(failures) == ["gradient_penalty#0#3"], sorted(failures)
    assert "detached images" in failures["gradient_penalty#0#3"]
    assert "no gradient with respect to fake" in visible_error


def _solution_source(exercise: str) -> str:
    cell = next(
        c
        for c in cells_of(NOTEBOOK[exercise], "solution")
        if c.metadata["nbgrader"]["grade_id"] == exercise
    )
    return _MARKERS.sub("", cell.source)


@pytest.mark.parametrize("exercise", ["ConditionalGenerator", "ConditionalDiscriminator"])
def test_a_mistake_in_one_hot_is_not_paid_twice(judge, exercise):
    """given=("one_hot",): the grader's reference one_hot replaces the student's in the models."""
    source = _solution_source(exercise)  # the reference model, defined in the student's namespace
    given = {grading.GIVEN_NAME: {"one_hot": REF["08_cgan"].one_hot}}
    failures, _ = judge(exercise, None, source=source, one_hot=one_hot_inferred, **given)
    assert not failures, "\n\n".join(failures.values())
    failures, _ = judge(exercise, None, source=source, one_hot=one_hot_inferred)
    assert failures, "without the given binding the wrong one_hot should show"


def test_models_probe_changes_of_the_labels_only(reference):
    for exercise in ("ConditionalGenerator", "ConditionalDiscriminator"):
        for rec in reference[exercise].values():
            first, second = rec.arrays["out.0"], rec.arrays["out.1"]
            assert first.shape == second.shape and abs(first - second).max() > 1e-4
