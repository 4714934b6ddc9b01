"""load_or_train: a checkpoint belongs to the code that trained it (issue 8)."""

from __future__ import annotations

import importlib.util
import textwrap

import torch
from torch import nn

from helpers import train

# A notebook in miniature: the student's answer, a loss that calls it, a training function.
NOTEBOOK = """
import torch

def kl_sparsity(a, rho):
    rho_hat = a.mean({dim})  # the wrong answer averages over units (dim=1)
    return (rho * torch.log(rho / rho_hat)).sum()

def sparse_loss(z, rho):
    return kl_sparsity(torch.sigmoid(z), rho)

def make_train(model, calls):
    def step():
        return sparse_loss(model(torch.ones(4, 2)), 0.05)

    def run():
        calls.append(float(step()))
        return History.from_dict({{"epochs": {{"loss": [calls[-1]]}}}})

    return run
"""


def _as_exec(dim: int) -> dict:
    """Cell code defined with ``exec`` (no source file): the code objects' bytes are hashed."""
    ns = {"__name__": "__main__", "History": train.History}
    exec(NOTEBOOK.format(dim=dim), ns)
    return ns


def _as_module(tmp_path, dim: int, tag: str) -> dict:
    """The same code in a real file: ``inspect.getsource`` is hashed."""
    path = tmp_path / f"nb_{tag}.py"
    path.write_text(textwrap.dedent(NOTEBOOK.format(dim=dim)))
    spec = importlib.util.spec_from_file_location("student_nb", path)
    module = importlib.util.module_from_spec(spec)
    module.History = train.History
    spec.loader.exec_module(module)
    return vars(module)


def _run(ns: dict, directory, calls: list, **kwargs) -> nn.Module:
    torch.manual_seed(0)
    model = nn.Linear(2, 3)
    train.load_or_train(
        model, "sae", ns["make_train"](model, calls), config="cfg", directory=directory, **kwargs
    )
    return model


def test_a_fixed_answer_retrains_without_being_listed(tmp_path, capsys):
    """kl_sparsity is reached from the training closure through the loss that calls it."""
    for make in (_as_exec, lambda dim: _as_module(tmp_path, dim, f"d{dim}")):
        calls, folder = [], tmp_path / f"ckpt-{len(list(tmp_path.iterdir()))}"
        _run(make(1), folder, calls)  # wrong answer: trains
        _run(make(1), folder, calls)  # same code: loads
        assert len(calls) == 1 and "loaded checkpoint" in capsys.readouterr().out
        _run(make(0), folder, calls)  # the fix: must train again, not load the buggy weights
        out = capsys.readouterr().out
        assert len(calls) == 2 and "code changed" in out and "loaded" not in out
        assert calls[0] != calls[1]
        _run(make(0), folder, calls)  # and the fixed model's checkpoint is then reused
        assert len(calls) == 2


def test_code_argument_covers_functions_the_training_does_not_reach(tmp_path):
    calls = []
    ns = _as_exec(0)
    extra = _as_exec(0)
    _run(ns, tmp_path, calls, code=[extra["kl_sparsity"]])
    _run(ns, tmp_path, calls, code=[_as_exec(1)["kl_sparsity"]])  # listed function changed
    assert len(calls) == 2
    _run(ns, tmp_path, calls, code=[extra["kl_sparsity"]])
    assert len(calls) == 2


def test_fingerprint_ignores_library_code_and_follows_closures():
    ns = _as_exec(0)
    same = train.code_fingerprint(ns["sparse_loss"])
    assert same == train.code_fingerprint(_as_exec(0)["sparse_loss"])  # deterministic
    assert same != train.code_fingerprint(_as_exec(1)["sparse_loss"])  # follows kl_sparsity
    # torch functions are not followed (same for everyone) and cost nothing.
    assert train.code_fingerprint(torch.sigmoid) == train.code_fingerprint(torch.sigmoid)
