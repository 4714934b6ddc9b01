"""05_vae's exercises: hidden tests judged against the reference, as the grader judges them.

The hidden blocks of the solution's test cells run once with the reference and once with each
implementation below, exactly as in a kernel (records under COURSE_RECORD_DIR);
``autograder.compare`` judges the two sets of records. Correct alternatives (torch.distributions,
``logvar.exp().sqrt()``, ``F.binary_cross_entropy(reduction="sum") / B``) must pass everything;
the classic mistakes must fail, with a message that says what was expected, what came back, on
what input, and names the mistake when it is one the hidden test knows.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.distributions import Normal
from torch.distributions import kl_divergence as torch_kl

from autograder.compare import compare_all
from helpers import grading
from tests.exercise_judge import ExerciseJudge, assert_feedback, judge_fixtures

EXERCISES = ("reparameterize", "kl_divergence", "vae_loss")
JUDGE = ExerciseJudge("05_vae", EXERCISES)
REF = JUDGE.ref


reference, judge = judge_fixtures(JUDGE)


# ----------------------------------------------------------- correct alternatives
def reparam_distributions(mu, logvar):
    return Normal(mu, torch.exp(0.5 * logvar)).rsample()


def reparam_sqrt(mu, logvar):
    std = logvar.exp().sqrt()
    return mu + std * torch.randn_like(mu)


def reparam_empty_normal(mu, logvar):
    eps = torch.empty_like(mu).normal_()
    return torch.addcmul(mu, (logvar / 2).exp(), eps)


def kl_distributions(mu, logvar):
    q = Normal(mu, torch.exp(0.5 * logvar))
    p = Normal(torch.zeros_like(mu), torch.ones_like(mu))
    return torch_kl(q, p).sum(dim=-1)


def kl_sqrt_std(mu, logvar):
    std = logvar.exp().sqrt()
    return 0.5 * (mu**2 + std**2 - torch.log(std**2) - 1).sum(-1)


def vae_loss_sum_over_b(x_hat, x, mu, logvar, beta=1.0):
    recon = F.binary_cross_entropy(x_hat, x, reduction="sum") / x.shape[0]
    return recon + beta * REF.kl_divergence(mu, logvar).mean()


def vae_loss_by_hand(x_hat, x, mu, logvar, beta=1.0):
    bce = -(x * torch.log(x_hat) + (1 - x) * torch.log(1 - x_hat)).sum(dim=(1, 2, 3))
    kl = -0.5 * (1 + logvar - mu**2 - logvar.exp()).sum(dim=1)  # no call of kl_divergence
    return torch.mean(bce + beta * kl)


CORRECT = [
    ("reparameterize", reparam_distributions),
    ("reparameterize", reparam_sqrt),
    ("reparameterize", reparam_empty_normal),
    ("kl_divergence", kl_distributions),
    ("kl_divergence", kl_sqrt_std),
    ("vae_loss", vae_loss_sum_over_b),
    ("vae_loss", vae_loss_by_hand),
]


# ------------------------------------------------------------------------ mistakes
def _kl_terms(mu, logvar):
    return 1 + logvar - mu**2 - logvar.exp()


def reparam_std_exp_logvar(mu, logvar):
    return mu + torch.exp(logvar) * torch.randn_like(mu)


def reparam_noise_like_logvar(mu, logvar):
    return mu + torch.exp(0.5 * logvar) * torch.randn_like(logvar)


def reparam_uniform(mu, logvar):
    return mu + torch.exp(0.5 * logvar) * torch.rand_like(mu)


def reparam_noise_per_sample(mu, logvar):
    return mu + torch.exp(0.5 * logvar) * torch.randn(mu.shape[0], 1, dtype=mu.dtype)


def reparam_numpy_noise(mu, logvar):
    eps = torch.from_numpy(np.random.standard_normal(tuple(mu.shape))).to(mu.dtype)
    return mu + torch.exp(0.5 * logvar) * eps


def reparam_torch_normal(mu, logvar):
    return torch.normal(mu, torch.exp(0.5 * logvar))  # right values, no gradient to mu, logvar


def reparam_sample(mu, logvar):
    return Normal(mu, torch.exp(0.5 * logvar)).sample()


def reparam_two_draws(mu, logvar):
    std = torch.exp(0.5 * logvar)
    torch.randn_like(mu)  # a draw whose result is thrown away shifts the stream
    return mu + std * torch.randn_like(mu)


def kl_mean_latent(mu, logvar):
    return -0.5 * _kl_terms(mu, logvar).mean(dim=1)


def kl_sign_flipped(mu, logvar):
    return 0.5 * _kl_terms(mu, logvar).sum(dim=1)


def kl_batch_mean(mu, logvar):
    return -0.5 * _kl_terms(mu, logvar).sum(dim=1).mean()


def kl_no_one(mu, logvar):
    return -0.5 * (logvar - mu**2 - logvar.exp()).sum(dim=1)


def kl_logvar_as_log_std(mu, logvar):
    return -0.5 * (1 + 2 * logvar - mu**2 - torch.exp(2 * logvar)).sum(dim=1)


def vae_loss_mean_bce(x_hat, x, mu, logvar, beta=1.0):
    return F.binary_cross_entropy(x_hat, x) + beta * REF.kl_divergence(mu, logvar).mean()


def vae_loss_beta_ignored(x_hat, x, mu, logvar, beta=1.0):
    bce = F.binary_cross_entropy(x_hat, x, reduction="sum") / len(x)
    return bce + REF.kl_divergence(mu, logvar).mean()


def vae_loss_mse(x_hat, x, mu, logvar, beta=1.0):
    mse = F.mse_loss(x_hat, x, reduction="sum") / len(x)
    return mse + beta * REF.kl_divergence(mu, logvar).mean()


def vae_loss_kl_batch_sum(x_hat, x, mu, logvar, beta=1.0):
    bce = F.binary_cross_entropy(x_hat, x, reduction="sum") / len(x)
    return bce + beta * REF.kl_divergence(mu, logvar).sum()


def vae_loss_beta_on_recon(x_hat, x, mu, logvar, beta=1.0):
    bce = F.binary_cross_entropy(x_hat, x, reduction="sum") / len(x)
    return beta * bce + REF.kl_divergence(mu, logvar).mean()


MISTAKES = [  # (exercise, implementation, words of the mistake's name in the feedback or None)
    ("reparameterize", reparam_std_exp_logvar, "sigma taken as exp(logvar)"),
    ("reparameterize", reparam_noise_like_logvar, "shaped like logvar"),
    ("reparameterize", reparam_uniform, "noise is uniform"),
    ("reparameterize", reparam_noise_per_sample, None),
    ("reparameterize", reparam_numpy_noise, None),
    ("reparameterize", reparam_torch_normal, None),
    ("reparameterize", reparam_sample, None),
    ("kl_divergence", kl_mean_latent, "averaged over the latent dimensions"),
    ("kl_divergence", kl_sign_flipped, "sign is flipped"),
    ("kl_divergence", kl_batch_mean, "averaged over the batch"),
    ("kl_divergence", kl_no_one, "constant 1"),
    ("kl_divergence", kl_logvar_as_log_std, "log standard deviation"),
    ("vae_loss", vae_loss_mean_bce, "mean BCE"),
    ("vae_loss", vae_loss_beta_ignored, "beta is ignored"),
    ("vae_loss", vae_loss_mse, "squared error instead of binary cross-entropy"),
    ("vae_loss", vae_loss_kl_batch_sum, "KL is summed over the batch"),
    ("vae_loss", vae_loss_beta_on_recon, "beta multiplies the reconstruction"),
]


# --------------------------------------------------------------------------- tests
def test_reference_passes_its_own_tests(judge, reference):
    for ex in EXERCISES:
        assert len(reference[ex]) == 4, sorted(reference[ex])
        assert all("error" not in r.meta for r in reference[ex].values())
        outcome = judge(ex, getattr(REF, ex))
        assert outcome.passed, (outcome.failures, outcome.source_problem, outcome.visible_error)
    assert all(r.meta.get("given") == ["kl_divergence"] for r in reference["vae_loss"].values())


@pytest.mark.parametrize("exercise, fn", CORRECT, ids=[f.__name__ for _, f in CORRECT])
def test_correct_alternative_passes(judge, exercise, fn):
    outcome = judge(exercise, fn)
    assert not outcome.failures, "\n\n".join(outcome.failures.values())
    assert outcome.source_problem == ""
    assert outcome.visible_error == ""


@pytest.mark.parametrize("exercise, fn, label", MISTAKES, ids=[f.__name__ for _, f, _ in MISTAKES])
def test_classic_mistake_fails_hidden_and_visible_tests(judge, exercise, fn, label):
    outcome = judge(exercise, fn)
    assert outcome.failures, f"{fn.__name__} passed the hidden tests"
    for message in outcome.failures.values():
        if "raised" not in message:
            assert_feedback(message)
    if label is not None:
        assert any(label in m for m in outcome.failures.values()), outcome.failures
    assert outcome.visible_error, "the visible tests should catch this mistake too"


def test_reparameterize_without_the_trick_fails_on_gradients(judge):
    outcome = judge("reparameterize", reparam_torch_normal)  # same values, zero gradients
    assert outcome.failures and all("gradient" in m for m in outcome.failures.values())
    assert "d z / d mu" in outcome.visible_error


def test_an_extra_draw_shifts_the_noise_and_fails(judge):
    outcome = judge("reparameterize", reparam_two_draws)
    assert len(outcome.failures) == 4
    assert "same seed" not in outcome.visible_error  # still reproducible: hidden tests catch it


def test_noise_not_drawn_like_mu_is_caught_by_the_dtype_check(judge):
    def reparam_randn_shape(mu, logvar):
        return mu + torch.exp(0.5 * logvar) * torch.randn(mu.shape)

    outcome = judge("reparameterize", reparam_randn_shape)
    # Float32 noise: the same numbers as randn_like for float32 on a CPU, not for float64 ...
    assert list(outcome.failures) == ["reparameterize#0#2"]
    assert "float16" in outcome.visible_error  # ... and it would not follow mu to a GPU


def test_every_argument_changes_some_hidden_case(reference):
    recs = reference["vae_loss"]
    inputs = " ".join(r.meta["input"] for r in recs.values())
    for beta in ("beta=4.0", "beta=0.5", "beta=0.0"):
        assert beta in inputs
    assert any("beta=" not in r.meta["input"] for r in recs.values())  # the default
    assert all({"grad.x_hat", "grad.mu", "grad.logvar"} <= set(r.arrays) for r in recs.values())
    assert all(
        {"grad.mu", "grad.logvar"} <= set(r.arrays) for r in reference["kl_divergence"].values()
    )
    assert all(
        {"grad.mu", "grad.logvar"} <= set(r.arrays) for r in reference["reparameterize"].values()
    )


def test_a_kl_mistake_is_not_paid_twice_in_vae_loss(reference, tmp_path, monkeypatch):
    """With the grader's reference bound as given, vae_loss calling a wrong kl_divergence passes."""
    source = (
        "def vae_loss(x_hat, x, mu, logvar, beta=1.0):\n"
        "    bce = F.binary_cross_entropy(x_hat, x, reduction='sum') / x.shape[0]\n"
        "    return bce + beta * kl_divergence(mu, logvar).mean()\n"
    )
    ns = JUDGE.namespace("vae_loss", None, {"kl_divergence": kl_sign_flipped})
    exec(source, ns)
    alone = compare_all(
        JUDGE.record("vae_loss", ns, tmp_path / "alone", monkeypatch), reference["vae_loss"]
    )
    assert [k for k, v in alone.items() if v.passed] == ["vae_loss#0#3"]  # only beta = 0
    ns[grading.GIVEN_NAME] = {"kl_divergence": REF.kl_divergence}
    given = compare_all(
        JUDGE.record("vae_loss", ns, tmp_path / "given", monkeypatch), reference["vae_loss"]
    )
    assert all(v.passed for v in given.values()), given
    assert ns["kl_divergence"] is kl_sign_flipped  # the student's own is back after the cases
