"""Unit tests for the given code in ``helpers`` (settings, data, train, plots, checks, grading)."""

from __future__ import annotations

import dataclasses
import json
import os

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from torch import nn

from helpers import checks, data, grading, plots, selfcheck, settings, train
from helpers.checks import CheckFailed

matplotlib.use("Agg")  # no window, whatever MPLBACKEND says; no figure exists yet


@pytest.fixture(autouse=True)
def _full_mode(monkeypatch):
    for var in ("COURSE_FAST", "NBGRADER_EXECUTION", "COURSE_DEVICE", "COURSE_RECORD_DIR"):
        monkeypatch.delenv(var, raising=False)


# ------------------------------------------------------------------------ settings
def test_is_fast(monkeypatch):
    cases = [({}, False), ({"COURSE_FAST": "1"}, True), ({"COURSE_FAST": " Yes "}, True),
             ({"COURSE_FAST": "0"}, False), ({"NBGRADER_EXECUTION": "validate"}, True)]  # fmt: skip
    for env, fast in cases:
        with monkeypatch.context() as m:
            for k, v in env.items():
                m.setenv(k, v)
            assert settings.is_fast() is fast, env


@dataclasses.dataclass(frozen=True)
class Cfg:
    n_train: int = 1000
    num_epochs: int = 10


def test_configure(monkeypatch):
    assert settings.configure(Cfg(), fast=dict(n_train=8)) == Cfg()
    assert settings.configure(Cfg(), fast=dict(n_train=8), num_epochs=3) == Cfg(1000, 3)
    with pytest.raises(TypeError, match="n_trian"):
        settings.configure(Cfg(), n_trian=5)
    with pytest.raises(TypeError):
        settings.configure(Cfg)  # a class, not an instance
    monkeypatch.setenv("COURSE_FAST", "1")
    cfg = settings.configure(Cfg(), fast=dict(n_train=8, num_epochs=2), num_epochs=3)
    assert cfg == Cfg(8, 3)  # an explicit override beats the fast value
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.n_train = 5
    with pytest.raises(TypeError, match="epochs"):
        settings.configure(Cfg(), fast=dict(epochs=1))


def test_configure_rejects_unknown_fast_keys_in_full_mode():
    with pytest.raises(TypeError):
        settings.configure(Cfg(), fast=dict(epochs=1))


def test_get_device_honours_course_device(monkeypatch):
    monkeypatch.setenv("COURSE_DEVICE", "meta")
    assert settings.get_device() == torch.device("meta")
    assert settings.get_device("cpu") == torch.device("cpu")
    monkeypatch.delenv("COURSE_DEVICE")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert settings.get_device() == torch.device("cpu")
    settings.seed_everything(3)
    first = (torch.rand(3), np.random.rand(3))
    settings.seed_everything(3)
    assert torch.equal(first[0], torch.rand(3)) and np.array_equal(first[1], np.random.rand(3))


# ---------------------------------------------------------------------------- data
@pytest.fixture
def offline(monkeypatch, tmp_path):
    monkeypatch.setenv("COURSE_OFFLINE", "1")
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path))


def test_load_digits_offline_falls_back_to_mnist_layout(offline, capsys):
    d = data.load_digits_data()
    assert d.source == "digits" and "[course]" in capsys.readouterr().out
    x, y = d.train.tensors
    assert x.shape[1:] == (1, 28, 28) and d.image_shape == (1, 28, 28)
    assert x.dtype == torch.float32 and y.dtype == torch.int64
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0 and float(x.max()) > 0.5
    assert len(d.train) + len(d.test) == 1797 and len(d.test) == 360
    assert set(d.test.tensors[1].tolist()) == set(range(10))  # stratified


def test_split_is_seeded_and_subsets_are_taken(offline):
    a, b, c = (data.load_digits_data(seed=s) for s in (0, 0, 1))
    assert torch.equal(a.train.tensors[0], b.train.tensors[0])
    assert torch.equal(a.test.tensors[1], b.test.tensors[1])
    assert not torch.equal(a.test.tensors[1], c.test.tensors[1])
    small = data.load_digits_data(n_train=100, n_test=30)
    assert (len(small.train), len(small.test)) == (100, 30)
    assert torch.equal(small.train.tensors[0], data.load_digits_data(n_train=100).train.tensors[0])

    with pytest.raises(RuntimeError, match="MNIST"):
        data.load_digits_data(source="mnist")  # offline and not on disk
    with pytest.raises(ValueError):
        data.load_digits_data(source="cifar")


def test_make_loaders_shuffle_is_seeded(offline):
    d = data.load_digits_data(n_train=64, n_test=20)

    def order(seed):
        train_loader, test_loader = data.make_loaders(d, batch_size=16, seed=seed)
        return torch.cat([y for _, y in train_loader]), test_loader

    (o1, test_loader), (o2, _), (o3, _) = order(0), order(0), order(5)
    assert torch.equal(o1, o2) and not torch.equal(o1, o3)
    assert sorted(o1.tolist()) == sorted(d.train.tensors[1].tolist())
    assert torch.equal(torch.cat([y for _, y in test_loader]), d.test.tensors[1])
    assert data.as_numpy(d.test)[0].shape == (20, 784)


# --------------------------------------------------------------------------- train
def test_fit_returns_per_epoch_means_of_a_tiny_model():
    torch.manual_seed(0)
    model, x = nn.Linear(3, 1), torch.randn(32, 3)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5]])
    opt, evals = torch.optim.SGD(model.parameters(), lr=0.1), []

    def step(batch):
        loss = nn.functional.mse_loss(model(batch[0]), batch[1])
        opt.zero_grad()
        loss.backward()
        opt.step()
        return {"loss": loss.item(), "size": len(batch[0])}

    batches = [(x[:8], y[:8]), (x[8:], y[8:])]
    h = train.fit(step, batches, 20, evaluate=lambda: evals.append(1) or {"test": len(evals)})
    assert h.epochs["size"] == [16.0] * 20 and h.steps["size"] == [8.0, 24.0] * 20
    assert h.epochs["test"] == [float(i) for i in range(1, 21)]
    assert h.epochs["loss"][3] == pytest.approx(sum(h.steps["loss"][6:8]) / 2)
    assert h.last("loss") < 0.1 * h.epochs["loss"][0]
    assert train.History.from_dict(json.loads(json.dumps(h.to_dict()))).to_dict() == h.to_dict()


def _load_or_train(tmp_path, calls, config="cfg"):
    torch.manual_seed(len(calls))
    model = nn.Linear(2, 2)

    def fake_train():
        calls.append(1)
        return train.History.from_dict({"epochs": {"loss": [float(len(calls))]}})

    history = train.load_or_train(model, "tiny", fake_train, config=config, directory=tmp_path)
    return model, history


def test_load_or_train_trains_once_then_loads(tmp_path, capsys):
    calls = []
    first, _ = _load_or_train(tmp_path, calls)
    second, h2 = _load_or_train(tmp_path, calls)
    assert len(calls) == 1 and "loaded checkpoint" in capsys.readouterr().out
    assert torch.equal(first.weight, second.weight) and h2.epochs == {"loss": [1.0]}
    _load_or_train(tmp_path, calls, config="other")  # another config: another checkpoint
    assert len(calls) == 2 and len(list(tmp_path.glob("*.pt"))) == 2


def test_load_or_train_retrains_a_tampered_checkpoint(tmp_path, capsys):
    calls = []
    _load_or_train(tmp_path, calls)
    (weights,) = tmp_path.glob("*.pt")
    weights.write_bytes(weights.read_bytes() + b"tampered")
    _, history = _load_or_train(tmp_path, calls)
    assert len(calls) == 2 and "hash check" in capsys.readouterr().out
    assert history.epochs == {"loss": [2.0]}
    _load_or_train(tmp_path, calls)  # the retrained checkpoint is valid again
    assert len(calls) == 2


def test_load_or_train_retrains_when_the_sidecar_is_not_an_object(tmp_path):
    calls = []
    _load_or_train(tmp_path, calls)
    next(tmp_path.glob("*.json")).write_text("[]")
    _load_or_train(tmp_path, calls)
    assert len(calls) == 2


# --------------------------------------------------------------------------- plots
def _history(v):
    return train.History.from_dict({"epochs": {"loss": [v, v / 2], "test": [v, v / 3]}})


def _img(n):
    return torch.rand(n, 1, 28, 28)


PLOTS = {
    "image_grid": lambda: plots.image_grid(_img(12), nrow=4, title="grid"),
    "image_rows": lambda: plots.image_rows({"in": _img(5), "out": _img(5)[:, 0]}, n=5),
    "loss_curves": lambda: plots.loss_curves(_history(1.0), logy=True),
    "loss_curves_dict": lambda: plots.loss_curves({"a": _history(1), "b": _history(2)}, ["test"]),
    "latent_scatter": lambda: plots.latent_scatter(np.random.randn(40, 2), np.arange(40) % 10),
    "histograms": lambda: plots.activation_histograms({"a": torch.rand(50, 8), "b": np.zeros(9)}),
    "scree_plot": lambda: plots.scree_plot(np.array([0.5, 0.3, 0.2]), threshold=0.9),
    "curves": lambda: plots.curves(np.arange(5), {"y": np.arange(5)}, "x", "y", vline=0.5),
    "image_panels": lambda: plots.image_panels([np.eye(8)] * 3, list("abc"), ncols=2, title="t"),
}  # fmt: skip


@pytest.mark.parametrize("name", PLOTS)
def test_plots_return_figures(name):
    fig = PLOTS[name]()
    try:
        assert isinstance(fig, Figure) and fig.axes
        fig.canvas.draw()
    finally:
        plt.close(fig)
    assert not plt.get_fignums()


# -------------------------------------------------------------------------- checks
def _looping(z):
    total = 0
    for v in z:
        total = total + v
    return total


def _while(z):
    while z.sum() > 1:
        z = z / 2
    return z


def _vectorised(z):
    return z.abs().mean()


def _grad_flows(loss_of, z):
    z.requires_grad_()
    checks.check_grad_flows(loss_of(z), z)


t = torch.tensor
FAILING = {
    "close-value": lambda: checks.check_close(t([1.0, 2.0]), [1.0, 3.0], inputs="z", hint="H"),
    "close-shape": lambda: checks.check_close(t([1.0]), [1.0, 2.0], hint="H"),
    "close-type": lambda: checks.check_close([1.0], [1.0], hint="H"),
    "close-nan": lambda: checks.check_close(t(float("nan")), float("nan"), hint="H"),
    "shape": lambda: checks.check_shape(torch.zeros(2, 3), (3, 2), hint="H"),
    "dtype": lambda: checks.check_dtype(torch.zeros(2), torch.float64, hint="H"),
    "scalar-dim": lambda: checks.check_scalar_loss(torch.zeros(2)),
    "scalar-dtype": lambda: checks.check_scalar_loss(torch.zeros(()), dtype=torch.float64),
    "grad-detached": lambda: _grad_flows(lambda z: z.detach().sum(), torch.ones(2)),
    "grad-inf": lambda: _grad_flows(lambda z: z.log().sum(), torch.zeros(2)),  # dead unit
    "unchanged": lambda: checks.check_unchanged(lambda z: z.mul_(2), torch.ones(3)),
    "vectorised-for": lambda: checks.check_vectorised(_looping),
    "vectorised-while": lambda: checks.check_vectorised(_while),
    "defined-here": lambda: checks.check_defined_here(_vectorised),
    "raises-wrong": lambda: checks.check_raises(ValueError, lambda: 1 / 0, hint="H"),
    "raises-none": lambda: checks.check_raises(ValueError, lambda: None, hint="H"),
}  # fmt: skip


@pytest.mark.parametrize("name", FAILING)
def test_checks_fail_with_expected_got_and_hint(name):
    with pytest.raises(CheckFailed) as info:
        FAILING[name]()
    message = str(info.value)
    assert "expected:" in message and "got:" in message and "hint:" in message, message


@pytest.mark.parametrize(
    "call",
    [lambda: checks.check_scalar_loss(0.5), lambda: checks.check_vectorised(len)],
    ids=["scalar-type", "no-source"],
)
def test_every_failure_has_a_hint(call):
    with pytest.raises(CheckFailed, match="hint:"):
        call()


def test_checks_pass_on_right_answers():
    checks.check_close(t([1.0, 2.0]), np.array([1.0, 2.0 + 1e-7]))
    checks.check_shape(torch.zeros(2, 3), (2, 3))
    checks.check_dtype(torch.zeros(2, dtype=torch.float64), torch.float64)
    z = torch.randn(4, 3, requires_grad=True)
    loss = checks.check_unchanged(_vectorised, z)
    checks.check_scalar_loss(loss, dtype=torch.float32)
    checks.check_grad_flows(loss, z)
    checks.check_vectorised(_vectorised)
    checks.check_raises(ZeroDivisionError, lambda: 1 / 0)
    here = lambda: None  # noqa: E731
    here.__module__ = "__main__"
    checks.check_defined_here(here)


def test_loops_in_source_counts_loops_and_comprehensions():
    sources = {"[x for x in y]": 1, "{x: 1 for x in y}": 1, "{x for x in y}": 1,
               "sum(x for x in y)": 1, "async def f():\n    async for x in y: pass": 1,
               "for a in b:\n    while c: pass": 2, "y.sum(0)": 0}  # fmt: skip
    for source, n in sources.items():
        assert len(checks.loops_in_source(source)) == n, source


# ------------------------------------------------------------------------- grading
def test_description_does_not_outlive_its_tensor():
    stale = []
    for _ in range(200):  # a freed tensor's id is soon given to a new one
        t_ = grading.uniform(3, 3, seed=7)
        del t_
        z = torch.zeros(2, 6)
        stale.append("seed=7" in grading.describe(z))
        del z
    assert not any(stale)


def test_case_with_only_a_description():
    assert grading.case(desc="penalty='l2'").desc == "penalty='l2'"


def test_run_case_records_values_and_weighted_gradients():
    assert torch.equal(grading.uniform(3, 2, seed=4), grading.uniform(3, 2, seed=4))
    c = grading.case(z=grading.uniform(2, 2, seed=9, high=0.2), rho=0.05, desc="small")
    assert "seed=9" in c.desc and "rho=0.05" in c.desc and c.desc.endswith("; small")
    z = grading.normal(3, 4, seed=2)
    rec = grading.run_case(lambda z: (2 * z, z.abs().mean()), grading.case(z=z), grad=["z"], seed=7)
    assert rec.meta["out.len"] == 2 and rec.meta["out.0.dtype"] == "torch.float32"
    np.testing.assert_allclose(rec.arrays["out.0"], 2 * z.double().numpy())
    w = torch.randn(3, 4, generator=torch.Generator().manual_seed(7), dtype=torch.float64).float()
    expected = 2 * w.double() + torch.sign(z.double()) / 12
    np.testing.assert_allclose(rec.arrays["grad.z"], expected.numpy(), rtol=1e-6)
    assert rec.meta["modified"] == [] and "error" not in rec.meta


def test_run_case_records_errors_missing_grads_and_in_place_changes():
    z = grading.normal(4, seed=0)
    rec = grading.run_case(lambda z: 1 / 0, grading.case(z=z))
    assert rec.meta["error"].startswith("ZeroDivisionError")
    rec = grading.run_case(lambda z: z.detach() * 2, grading.case(z=z), grad=["z"])
    assert rec.meta["grad.z"] == "none"
    before = z.clone()
    rec = grading.run_case(lambda z: z.add_(1), grading.case(z=z))
    assert rec.meta["modified"] == ["z"] and torch.equal(z, before)  # a private copy changed
    rec = grading.run_case(lambda z: z.add_(1), grading.case(z=z), grad=["z"])
    assert "in-place" in rec.meta["error"]
    rec = grading.run_case(lambda **kw: {"b": True, "n": None, "i": 3}, grading.case(k=1))
    assert rec.meta["out.keys"] == ["b", "i", "n"] and rec.meta["out.n.dtype"] == "None"


def test_run_case_detects_in_place_change_of_numpy_input():
    rec = grading.run_case(
        lambda X: X.__isub__(X.mean(0)), grading.case(X=np.arange(6.0).reshape(3, 2))
    )
    assert rec.meta["modified"] == ["X"]


def test_grade_writes_one_record_per_case(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_RECORD_DIR", str(tmp_path))
    monkeypatch.setattr(grading, "_counts", {})

    def sq(z):
        return z**2

    cases = [grading.case(z=grading.normal(3, seed=s)) for s in (1, 2)]
    grading.grade("sq", sq, cases, grad=["z"], vectorised=True, mistakes={"cube": lambda z: z**3})
    grading.grade("sq", sq, cases[:1])
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["sq#0#0.npz", "sq#0#1.npz", "sq#1#0.npz"]
    rec = grading.load_record(tmp_path / "sq#0#1.npz")
    assert (
        rec.meta["defines"] == "sq" and rec.meta["vectorised"] and rec.meta["mistake.0"] == "cube"
    )
    np.testing.assert_allclose(
        rec.arrays["mistake.0.out"], cases[1].kwargs["z"].double().numpy() ** 3, rtol=1e-6
    )
    monkeypatch.delenv("COURSE_RECORD_DIR")
    with pytest.raises(AssertionError, match="failed on hidden cases"):
        grading.grade("bad", lambda z: z.nope, cases)


class _Payload:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.makedirs, (self.path,))


def test_records_round_trip_but_pickles_and_oversized_files_are_refused(tmp_path):
    rec = grading.Record({"out": np.arange(6.0).reshape(2, 3)}, {"input": "x", "modified": []})
    grading.save_record(tmp_path / "r.npz", rec)
    back = grading.load_record(tmp_path / "r.npz")
    assert back.meta == rec.meta and np.array_equal(back.arrays["out"], rec.arrays["out"])
    marker = str(tmp_path / "pwned")
    with open(tmp_path / "plain.npz", "wb") as f:
        np.save(f, np.array([_Payload(marker)], dtype=object), allow_pickle=True)
    np.savez(
        tmp_path / "member.npz", __meta__=np.array("{}"), **{"a:x": np.array([_Payload(marker)])}
    )
    for name in ("plain.npz", "member.npz"):
        with pytest.raises((ValueError, TypeError)):
            grading.load_record(tmp_path / name)
    assert not os.path.exists(marker)
    grading.save_record(tmp_path / "big.npz", grading.Record({"out": np.zeros(300_000)}))
    with pytest.raises(ValueError, match="larger than"):
        grading.load_record(tmp_path / "big.npz", max_bytes=1 << 20)
    np.savez(tmp_path / "list.npz", __meta__=np.array("[1]"))
    with pytest.raises(ValueError, match="not an object"):
        grading.load_record(tmp_path / "list.npz")


def test_load_record_refuses_a_decompression_bomb(tmp_path):
    np.savez_compressed(
        tmp_path / "bomb.npz", __meta__=np.array("{}"), **{"a:x": np.zeros(1 << 20)}
    )
    assert (tmp_path / "bomb.npz").stat().st_size < 1 << 16
    with pytest.raises(ValueError):
        grading.load_record(tmp_path / "bomb.npz", max_bytes=1 << 20)


# ----------------------------------------------------------------------- selfcheck
def test_selfcheck_finds_and_runs_the_latest_test_cells():
    check = "# Tests: check\nfrom helpers.checks import check_close\ncheck_close(f(), 3.0)"
    sources = ["x = 1", "# Tests: f\nassert f() == 1", "\n# Tests: g\nassert g() == 2"]
    sources += ["print('# Tests: h')", "# Tests: f\nassert f() == 2", "# Tests: err\n1/0", check]
    cells = selfcheck.test_cells(sources)
    assert list(cells) == ["f", "g", "err", "check"] and cells["f"].endswith("== 2")
    results = selfcheck.run_tests(cells, {"f": lambda: 2})
    assert results["f"] == ""
    assert results["g"].startswith("NameError") and "\n" not in results["g"]
    assert results["err"] == "ZeroDivisionError: division by zero"  # as the grader words it
    assert results["check"].startswith("CheckFailed: value is wrong")
    assert selfcheck.report() == {}  # outside Jupyter: a notice, no results


def _part(x):
    return x * 2


def _whole(x):
    return _part(x) + 1


def test_grade_given_binds_reference_parts_only_while_the_cases_run(tmp_path, monkeypatch):
    from helpers.grading import GIVEN_NAME, case, grade, load_record, uniform

    monkeypatch.setenv("COURSE_RECORD_DIR", str(tmp_path))
    ns = _whole.__globals__
    ns[GIVEN_NAME] = {"_part": lambda x: x * 3}
    try:
        x = uniform(4, seed=3)
        grade("_whole", _whole, [case(x=x)], given=("_part",))
        grade("_whole", _whole, [case(x=x)])
    finally:
        ns.pop(GIVEN_NAME)
    with_given = load_record(tmp_path / "_whole#0#0.npz")
    without = load_record(tmp_path / "_whole#1#0.npz")
    np.testing.assert_allclose(with_given.arrays["out"], x.double().numpy() * 3 + 1, rtol=1e-6)
    np.testing.assert_allclose(without.arrays["out"], x.double().numpy() * 2 + 1, rtol=1e-6)
    assert with_given.meta["given"] == ["_part"] and _part(torch.ones(1)).item() == 2
