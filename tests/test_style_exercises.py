"""Notebook 11's hidden tests, judged by the grader's comparison against the reference.

As in tests/exercise_judge.py: the hidden block of each test cell runs once with the
reference (extracted from solutions/) and once with each implementation below, with
records under COURSE_RECORD_DIR; ``autograder.compare`` judges them. Correct alternatives
(einsum or bmm Gram matrices, ``F.mse_loss`` or explicit means, the PyTorch tutorial's
clamp inside the closure) must pass; the classic mistakes of the issue must fail.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tests.exercise_judge import ExerciseJudge, judge_fixtures

NAME = "11_style_transfer"
EXERCISES = (
    "gram_matrix",
    "ContentLoss",
    "StyleLoss",
    "Normalization",
    "build_style_model",
    "run_style_transfer",
)
IMPORTS = (
    "import numpy as np\nimport torch\nimport torch.nn.functional as F\nfrom torch import nn\n"
    "from helpers.style import tiny_cnn\n"
)


JUDGE = ExerciseJudge(NAME, EXERCISES, IMPORTS, main=True)
REF = JUDGE.ref


reference, judge = judge_fixtures(JUDGE, pair=True)


# ------------------------------------------------------------------ gram matrices
def gram_einsum(features):
    c, h, w = features.shape[1:]
    return torch.einsum("bchw,bdhw->bcd", features, features) / (c * h * w)


def gram_bmm(features):
    flat = features.flatten(2)
    return torch.bmm(flat, flat.transpose(1, 2)) / flat[0].numel()


def gram_not_normalised(features):
    flat = features.flatten(2)
    return flat @ flat.transpose(1, 2)


def gram_by_hw(features):
    flat = features.flatten(2)
    return flat @ flat.transpose(1, 2) / flat.shape[-1]


def gram_transposed(features):
    flat = features.flatten(2)
    return flat.transpose(1, 2) @ flat / flat[0].numel()


# -------------------------------------------------------------------- loss layers
class ContentLossExplicit(nn.Module):
    def __init__(self, target):
        super().__init__()
        self.register_buffer("target", target.detach().clone())

    def forward(self, x):
        self.loss = ((x - self.target) ** 2).mean()
        return x


class ContentLossNotDetached(nn.Module):
    def __init__(self, target):
        super().__init__()
        self.target = target

    def forward(self, x):
        self.loss = F.mse_loss(x, self.target)
        return x


class StyleLossExplicit(nn.Module):
    def __init__(self, target_feature):
        super().__init__()
        self.target = REF.gram_matrix(target_feature).detach()

    def forward(self, x):
        self.loss = (REF.gram_matrix(x) - self.target).pow(2).mean()
        return x


class StyleLossOnFeatures(nn.Module):
    def __init__(self, target_feature):
        super().__init__()
        self.target = target_feature.detach()

    def forward(self, x):
        self.loss = F.mse_loss(x, self.target)
        return x


class NormalizationView(nn.Module):
    def __init__(self, mean, std):
        super().__init__()
        self.register_buffer("mean", torch.as_tensor(mean).view(-1, 1, 1).clone())
        self.register_buffer("std", torch.as_tensor(std).view(-1, 1, 1).clone())

    def forward(self, img):
        return img.sub(self.mean).div(self.std)


class NormalizationSwapped(REF.Normalization):
    def forward(self, img):
        return (img - self.std) / self.mean


class NormalizationFlat(nn.Module):
    def __init__(self, mean, std):
        super().__init__()
        self.register_buffer("mean", torch.as_tensor(mean))
        self.register_buffer("std", torch.as_tensor(std))

    def forward(self, img):
        return (img - self.mean) / self.std


# ------------------------------------------------------------------ model builder
def _builder(relu_in_place=False, loss_after_relu=False, cut=True):
    """build_style_model with one switch per classic mistake (all off: a correct variant)."""

    def build(
        cnn,
        mean,
        std,
        style_img,
        content_img,
        content_layers=("conv_4",),
        style_layers=("conv_1", "conv_2", "conv_3", "conv_4", "conv_5"),
    ):
        model = nn.Sequential()
        model.add_module("normalization", REF.Normalization(mean, std))
        styles, contents, i, pending = [], [], 0, None
        names = {nn.Conv2d: "conv", nn.ReLU: "relu", nn.MaxPool2d: "pool", nn.BatchNorm2d: "bn"}

        def add_losses(conv_name):
            if conv_name in content_layers:
                contents.append(REF.ContentLoss(model(content_img)))
                model.add_module(f"content_loss_{i}", contents[-1])
            if conv_name in style_layers:
                styles.append(REF.StyleLoss(model(style_img)))
                model.add_module(f"style_loss_{i}", styles[-1])

        for layer in cnn.children():
            kind = names[type(layer)]
            i += kind == "conv"
            if kind == "relu" and not relu_in_place:
                layer = nn.ReLU()
            model.add_module(f"{kind}_{i}", layer)
            if kind == "conv" and not loss_after_relu:
                add_losses(f"conv_{i}")
            elif kind == "conv":
                pending = f"conv_{i}"
            elif kind == "relu" and pending:
                add_losses(pending)
                pending = None
        if cut:
            kinds = (REF.ContentLoss, REF.StyleLoss)
            last = max(j for j, m in enumerate(model) if isinstance(m, kinds))
            model = model[: last + 1]
        return model, styles, contents

    return build


# ---------------------------------------------------------------- optimisation
def transfer(clamp_inside_closure=False, clamp=True, loss_as_stack=False):
    def run(
        cnn,
        mean,
        std,
        content_img,
        style_img,
        input_img,
        num_steps=300,
        style_weight=1e6,
        content_weight=1.0,
        *,
        callback=None,
    ):
        model, styles, contents = REF.build_style_model(cnn, mean, std, style_img, content_img)
        model.requires_grad_(False)
        img = input_img.clone().detach().requires_grad_(True)
        optimizer = torch.optim.LBFGS([img], max_iter=1)
        run.last = None
        for step in range(num_steps):

            def closure():
                if clamp_inside_closure and clamp:  # the PyTorch tutorial's placement
                    with torch.no_grad():
                        img.clamp_(0, 1)
                optimizer.zero_grad()
                model(img)
                if loss_as_stack:
                    s = style_weight * torch.stack([m.loss for m in styles]).sum()
                    c = content_weight * torch.stack([m.loss for m in contents]).sum()
                else:
                    s, c = 0.0, 0.0
                    for m in styles:
                        s = s + m.loss
                    for m in contents:
                        c = c + m.loss
                    s, c = style_weight * s, content_weight * c
                (s + c).backward()
                run.last = (s.item(), c.item())
                return s + c

            optimizer.step(closure)
            if clamp and not clamp_inside_closure:
                with torch.no_grad():
                    img.clamp_(0, 1)
            if callback:
                callback(step + 1, *run.last)
        if clamp:
            with torch.no_grad():
                img.clamp_(0, 1)
        return img.detach()

    return run


def transfer_in_place(cnn, mean, std, content_img, style_img, input_img, num_steps=300,
                      style_weight=1e6, content_weight=1.0, *, callback=None):  # fmt: skip
    """The tutorial's habit of optimising input_img itself: right values, input overwritten."""
    out = transfer()(cnn, mean, std, content_img, style_img, input_img, num_steps,
                     style_weight, content_weight, callback=callback)  # fmt: skip
    input_img.data.copy_(out)
    return input_img.detach()


CORRECT = [
    ("gram_matrix", gram_einsum, "einsum"),
    ("gram_matrix", gram_bmm, "bmm"),
    ("ContentLoss", ContentLossExplicit, "explicit mean, buffer"),
    ("StyleLoss", StyleLossExplicit, "explicit mean"),
    ("Normalization", NormalizationView, "view and sub/div"),
    ("build_style_model", _builder(), "other names for the normalisation and losses"),
    ("run_style_transfer", transfer(), "loop sums"),
    ("run_style_transfer", transfer(clamp_inside_closure=True), "tutorial's clamp in the closure"),
    ("run_style_transfer", transfer(loss_as_stack=True), "stacked losses"),
]
MISTAKES = [  # (exercise, implementation, words of the feedback)
    ("gram_matrix", gram_not_normalised, "not normalised"),
    ("gram_matrix", gram_by_hw, "H * W only"),
    ("gram_matrix", gram_transposed, "wrong shape"),
    ("ContentLoss", ContentLossNotDetached, "not detached"),
    ("StyleLoss", StyleLossOnFeatures, "features instead of their Gram matrices"),
    ("Normalization", NormalizationSwapped, "swapped"),
    ("Normalization", NormalizationFlat, "not broadcast per channel"),
    ("build_style_model", _builder(relu_in_place=True), "inplace"),
    ("build_style_model", _builder(loss_after_relu=True), "right after its conv"),
    ("build_style_model", _builder(cut=False), "cut after the last loss layer"),
    ("run_style_transfer", transfer(clamp=False), "clamp to [0, 1]"),
    ("run_style_transfer", transfer_in_place, "modified its input in place"),
]


def _id(item) -> str:
    return f"{item[0]}-{item[2]}".replace(" ", "_")


def test_reference_passes_itself(judge, reference):
    for ex in EXERCISES:
        assert reference[ex], ex
        assert all("error" not in r.meta for r in reference[ex].values()), ex
        failures, visible = judge(ex, getattr(REF, ex))
        assert not failures and not visible, (ex, failures, visible)


@pytest.mark.parametrize("exercise, impl, label", CORRECT, ids=[_id(c) for c in CORRECT])
def test_correct_alternative_passes(judge, exercise, impl, label):
    failures, visible = judge(exercise, impl)
    assert not failures, "\n\n".join(failures.values())
    assert visible == ""


@pytest.mark.parametrize("exercise, impl, words", MISTAKES, ids=[_id(m) for m in MISTAKES])
def test_classic_mistake_fails_hidden_and_visible(judge, exercise, impl, words):
    failures, visible = judge(exercise, impl)
    assert failures, f"{exercise}: the mistake passed every hidden case"
    text = "\n".join(failures.values())
    for part in ("expected:", "got:", "input:", "hint:"):
        assert part in text, text
    assert words in text + visible, text + "\n" + visible
    assert visible, "the visible tests should catch this mistake too"


def test_the_reference_run_clamps_and_reduces_the_style_score(reference):
    for rec in reference["run_style_transfer"].values():
        image = rec.arrays["out.image"]
        assert 0.0 <= image.min() and image.max() <= 1.0
        style = rec.arrays["out.style scores"]
        assert style[-1] < style[0]
    unclamped = transfer(clamp=False)
    mean, std = torch.tensor(REF_MEAN).double(), torch.tensor(REF_STD).double()
    g = torch.Generator().manual_seed(0)
    content = torch.rand(1, 3, 16, 16, generator=g, dtype=torch.float64)
    style = torch.rand(1, 3, 16, 16, generator=g, dtype=torch.float64)
    from helpers.style import tiny_cnn

    out = unclamped(tiny_cnn(5), mean, std, content, style, content.clone(), 5, 1e5)
    assert out.min() < 0 or out.max() > 1  # so the hidden case can tell a forgotten clamp


REF_MEAN, REF_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
