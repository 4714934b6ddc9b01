"""The headline exercise (04): its hidden tests and the grader's comparison as an oracle.

The hidden blocks of the solution's test cells run once with the reference and once
with each implementation below, exactly as in a kernel (records under
COURSE_RECORD_DIR); ``autograder.compare`` judges the two sets of records and the
source check (defined, no loop) is applied as the grader's worker applies it
(tests/exercise_judge.py). Correct alternatives
must pass everything; classic mistakes must fail, with a message that says what was
expected, what came back, on what input, and names the mistake when it is known.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from tests.exercise_judge import ExerciseJudge, assert_feedback, judge_fixtures

EXERCISES = ("l1_sparsity", "unit_activation", "kl_sparsity", "sparse_ae_loss")
JUDGE = ExerciseJudge("04_sparse_autoencoder", EXERCISES)
REF = JUDGE.ref


reference, judge = judge_fixtures(JUDGE)


def _kl_terms(rho_hat, rho):
    return rho * torch.log(rho / rho_hat) + (1 - rho) * torch.log((1 - rho) / (1 - rho_hat))


# ----------------------------------------------------------- correct alternatives
def l1_via_l1_loss(z):
    return F.l1_loss(z, torch.zeros_like(z))


def l1_via_sum(z):
    return z.abs().sum() / z.numel()


def unit_activation_tanh(z):
    return torch.tanh(z.abs() / 2)


def kl_xlogy(a, rho, eps=1e-6):
    q = a.reshape(a.shape[0], -1).mean(0).clamp(eps, 1 - eps)
    r = torch.as_tensor(rho, dtype=a.dtype)
    kl = (
        torch.xlogy(r, r)
        - torch.xlogy(r, q)
        + torch.xlogy(1 - r, 1 - r)
        - torch.xlogy(1 - r, 1 - q)
    )
    return kl.sum()


def kl_cross_entropy(a, rho, eps=1e-6):
    q = a.reshape(len(a), -1).mean(0).clamp(eps, 1 - eps)
    entropy = -(rho * math.log(rho) + (1 - rho) * math.log(1 - rho))
    return (-(rho * torch.log(q) + (1 - rho) * torch.log1p(-q)) - entropy).sum()


def kl_via_kl_div(a, rho, eps=1e-6):
    q = a.flatten(1).mean(0).clamp(eps, 1 - eps)
    p = torch.tensor([rho, 1 - rho], dtype=a.dtype)
    return F.kl_div(torch.stack([q, 1 - q], dim=1).log(), p.expand(len(q), 2), reduction="sum")


def kl_flatten(a, rho, eps=1e-6):
    return _kl_terms(a.flatten(1).mean(0).clamp(eps, 1 - eps), rho).sum()


def kl_where(a, rho, eps=1e-6):
    q = a.reshape(a.shape[0], -1).mean(dim=0)
    q = torch.where(q < eps, eps, q)
    q = torch.where(q > 1 - eps, 1 - eps, q)
    return _kl_terms(q, rho).sum()


def _penalty(z, penalty, rho):
    if penalty == "l1":
        return REF.l1_sparsity(z)
    if penalty == "kl":
        return REF.kl_sparsity(REF.unit_activation(z), rho)
    raise ValueError(f"unknown penalty {penalty!r}")


def sparse_pow_mean(x_hat, x, z, lambda_s, penalty="l1", rho=0.05):
    return ((x_hat - x) ** 2).mean() + lambda_s * _penalty(z, penalty, rho)


CORRECT = [
    ("l1_sparsity", l1_via_l1_loss),
    ("l1_sparsity", l1_via_sum),
    ("unit_activation", unit_activation_tanh),
    ("kl_sparsity", kl_xlogy),
    ("kl_sparsity", kl_cross_entropy),
    ("kl_sparsity", kl_via_kl_div),
    ("kl_sparsity", kl_flatten),
    ("kl_sparsity", kl_where),
    ("sparse_ae_loss", sparse_pow_mean),
]


# ------------------------------------------------------------------------ mistakes
def kl_units_mean(a, rho, eps=1e-6):
    return _kl_terms(a.flatten(1).mean(1).clamp(eps, 1 - eps), rho).sum()


def kl_no_one_minus_rho(a, rho, eps=1e-6):
    q = a.reshape(a.shape[0], -1).mean(0).clamp(eps, 1 - eps)
    return (rho * torch.log(rho / q) + torch.log((1 - rho) / (1 - q))).sum()


def sparse_on_reconstruction(x_hat, x, z, lambda_s, penalty="l1", rho=0.05):
    return F.mse_loss(x_hat, x) + lambda_s * _penalty(x_hat, penalty, rho)


def l1_summed(z):
    return z.abs().sum()


def unit_activation_sigmoid(z):
    return torch.sigmoid(z)


MISTAKES = [  # (exercise, implementation, words of the mistake's name in the feedback)
    ("kl_sparsity", kl_units_mean, "averaged over the units of each sample"),
    ("kl_sparsity", kl_no_one_minus_rho, "(1 - rho) factor of the second term is missing"),
    (
        "sparse_ae_loss",
        sparse_on_reconstruction,
        "on the reconstruction x_hat instead of the code z",
    ),
    ("l1_sparsity", l1_summed, "summed instead of averaged"),
    ("unit_activation", unit_activation_sigmoid, "plain sigmoid"),
]


def l1_loop(z):
    total = z.new_zeros(())
    for i in range(z.shape[0]):
        total = total + z[i].abs().sum()
    return total / z.numel()


def kl_loop(a, rho, eps=1e-6):
    flat = a.reshape(a.shape[0], -1)
    acc = torch.zeros_like(flat[0])
    for row in flat:
        acc = acc + row
    return _kl_terms((acc / len(flat)).clamp(eps, 1 - eps), rho).sum()


def kl_no_clamp(a, rho, eps=1e-6):
    return _kl_terms(a.reshape(a.shape[0], -1).mean(0), rho).sum()


def kl_clamps_input_in_place(a, rho, eps=1e-6):
    a.clamp_(eps, 1 - eps)
    return _kl_terms(a.reshape(a.shape[0], -1).mean(0), rho).sum()


def sparse_subtracts_in_place(x_hat, x, z, lambda_s, penalty="l1", rho=0.05):
    penalty_value = _penalty(z, penalty, rho)
    err = x.sub_(x_hat)  # sub_ instead of sub: right values, but x is overwritten
    return (err**2).mean() + lambda_s * penalty_value


def seed_sparse_ae_loss(x_hat, x, z, lambda_s, penalty="l1", rho=0.05):
    """shared/seeds/003: KL on the decoder output, (1 - rho) missing, no clamp."""
    avg_act = torch.mean(x_hat, dim=0)
    sparsity = rho * torch.log(rho / avg_act) + torch.log((1 - rho) / (1 - avg_act))
    return F.mse_loss(x_hat, x) + lambda_s * torch.sum(sparsity)


# --------------------------------------------------------------------------- tests
def test_reference_records_itself_and_declares_the_source_checks(judge, reference):
    sizes = {"l1_sparsity": 4, "unit_activation": 2, "kl_sparsity": 5, "sparse_ae_loss": 4}
    for ex in EXERCISES:
        assert len(reference[ex]) == sizes[ex], sorted(reference[ex])
        assert all("error" not in r.meta for r in reference[ex].values())
        assert any(
            r.meta.get("defines") == ex and r.meta.get("vectorised") for r in reference[ex].values()
        )
        outcome = judge(ex, getattr(REF, ex))
        assert outcome.passed, (outcome.failures, outcome.source_problem, outcome.visible_error)
        assert all(v.message.startswith(ex) for v in outcome.verdicts.values())


@pytest.mark.parametrize("exercise, fn", CORRECT, ids=[f.__name__ for _, f in CORRECT])
def test_correct_alternative_passes(judge, exercise, fn):
    outcome = judge(exercise, fn)
    assert not outcome.failures, "\n\n".join(outcome.failures.values())
    assert outcome.source_problem == ""
    assert outcome.visible_error == ""


@pytest.mark.parametrize("exercise, fn, label", MISTAKES, ids=[f.__name__ for _, f, _ in MISTAKES])
def test_classic_mistake_fails_and_is_named(judge, exercise, fn, label):
    outcome = judge(exercise, fn)
    assert outcome.failures, f"{fn.__name__} passed the hidden tests"
    for message in outcome.failures.values():
        assert_feedback(message)
        assert label in message, message
    assert outcome.visible_error, "the visible tests should catch this mistake too"


@pytest.mark.parametrize("exercise, fn", [("l1_sparsity", l1_loop), ("kl_sparsity", kl_loop)])
def test_per_sample_loop_has_right_values_but_fails_the_source_check(judge, exercise, fn):
    outcome = judge(exercise, fn)
    assert not outcome.failures, "the loop computes the right values and gradients"
    assert outcome.source_problem.startswith(f"{exercise} is not vectorised: found For")
    assert "not vectorised" in outcome.visible_error and "hint" in outcome.visible_error


def test_missing_clamp_fails_only_on_the_dead_units(judge):
    outcome = judge("kl_sparsity", kl_no_clamp)
    assert list(outcome.failures) == ["kl_sparsity#0#2", "kl_sparsity#0#4"]
    for message in outcome.failures.values():
        assert_feedback(message)
        assert "unit 2 dead" in message and "clamp" in message and "inf" in message


def test_in_place_change_of_a_graded_tensor_fails(judge):
    outcome = judge("kl_sparsity", kl_clamps_input_in_place)
    assert len(outcome.failures) == 5
    for message in outcome.failures.values():
        assert_feedback(message)
        assert "raised an exception" in message and "in-place" in message


def test_in_place_change_with_right_values_fails_as_modified(judge):
    outcome = judge("sparse_ae_loss", sparse_subtracts_in_place)
    assert sorted(outcome.failures) == [f"sparse_ae_loss#0#{i}" for i in range(3)]
    for message in outcome.failures.values():
        assert_feedback(message)
        assert "modified its input in place" in message and "changed x" in message


def test_seed_notebook_loss_fails_everywhere(judge):
    outcome = judge("sparse_ae_loss", seed_sparse_ae_loss)
    assert len(outcome.failures) == 4  # three values and the ValueError probe
    for message in outcome.failures.values():
        assert_feedback(message)
    assert outcome.visible_error
