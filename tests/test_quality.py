"""Unit tests of the quality toolkit (helpers.quality): no kernel, a few seconds."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch

from helpers import quality
from helpers.quality import (
    ClassifierConfig,
    DigitClassifier,
    Quality,
    class_coverage,
    digit_classifier,
    evaluate_images,
    frechet_distance,
    quality_report,
)

TINY = ClassifierConfig(n_train=300, num_epochs=1, batch_size=100)


@pytest.fixture(autouse=True)
def _full_mode(monkeypatch):
    for var in ("COURSE_FAST", "NBGRADER_EXECUTION", "COURSE_DEVICE"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture(scope="module")
def classifier(tmp_path_factory) -> DigitClassifier:
    return digit_classifier(
        "cpu", verbose=False, config=TINY, directory=tmp_path_factory.mktemp("c")
    )


def _gaussian(n: int, dim: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, dim)) @ rng.normal(size=(dim, dim)) + rng.normal(size=dim)


# ------------------------------------------------------------------ Frechet distance
def test_distance_of_a_set_to_itself_is_zero():
    a = _gaussian(400, 16, seed=0)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    t = torch.from_numpy(a).float()
    assert frechet_distance(t, t.clone()) == pytest.approx(0.0, abs=1e-3)


def test_distance_matches_the_one_dimensional_closed_form():
    rng = np.random.default_rng(1)
    a, b = rng.normal(0.0, 1.0, (500, 1)), rng.normal(2.0, 3.0, (700, 1))
    expected = (a.mean() - b.mean()) ** 2 + (a.std(ddof=1) - b.std(ddof=1)) ** 2
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-6)


def test_distance_grows_with_added_noise():
    a = _gaussian(1000, 8, seed=2)
    rng = np.random.default_rng(3)
    noise = rng.normal(size=a.shape)
    d = [frechet_distance(a, a + s * noise) for s in (0.0, 0.3, 1.0, 3.0)]
    assert d[0] < 1e-6 and all(x < y for x, y in zip(d, d[1:])), d
    assert frechet_distance(a, a + 5.0) == pytest.approx(8 * 25.0, rel=1e-6)  # a shift of the mean


def test_distance_is_symmetric_and_survives_singular_covariances():
    a, b = _gaussian(300, 6, seed=4), _gaussian(300, 6, seed=5)
    a[:, 0] = 0.0  # a dead feature, as a ReLU gives
    b[:, 0] = 0.0
    assert frechet_distance(a, b) == pytest.approx(frechet_distance(b, a), rel=1e-6)
    assert math.isfinite(frechet_distance(a, b))


def test_distance_rejects_mismatched_features():
    with pytest.raises(ValueError, match="same F"):
        frechet_distance(np.zeros((5, 3)), np.zeros((5, 4)))
    with pytest.raises(ValueError, match="two samples"):
        frechet_distance(np.zeros((1, 3)), np.zeros((5, 3)))


# ------------------------------------------------------------------------ coverage
def test_coverage_of_a_single_class_is_one_tenth():
    assert class_coverage(torch.full((50,), 7)) == (0.1, 0.0)


def test_coverage_of_a_balanced_set_is_full_with_log10_entropy():
    covered, entropy = class_coverage(np.repeat(np.arange(10), 20))
    assert covered == 1.0 and entropy == pytest.approx(math.log(10))


def test_coverage_counts_only_classes_above_the_fraction():
    labels = [0] * 97 + [1] * 2 + [2]  # class 1 holds 2 %, class 2 1 %
    covered, entropy = class_coverage(labels, min_fraction=0.02)
    assert covered == pytest.approx(0.2)
    p = np.array([0.97, 0.02, 0.01])
    assert entropy == pytest.approx(float(-(p * np.log(p)).sum()))
    assert class_coverage(labels, min_fraction=0.01)[0] == pytest.approx(0.3)


# ---------------------------------------------------------------------- classifier
def test_classifier_shapes_eval_mode_and_no_grad(classifier):
    x = torch.rand(5, 1, 28, 28)
    assert classifier(x).shape == (5, 10)
    assert classifier.features(x).shape == (5, TINY.feature_dim)
    assert not classifier.training
    assert not any(p.requires_grad for p in classifier.parameters())


def _files(directory):
    weights = sorted(directory.glob("digit-classifier-*.pt"))
    metas = sorted(directory.glob("digit-classifier-*.json"))
    assert len(weights) == 1 and len(metas) == 1
    return weights[0], metas[0]


def test_checkpoint_is_rebuilt_when_missing_or_corrupt(tmp_path, capsys):
    first = digit_classifier("cpu", config=TINY, directory=tmp_path)
    out = capsys.readouterr().out
    assert "loaded checkpoint" not in out and re.search(r"test accuracy \d+\.\d%", out)
    weights, _ = _files(tmp_path)
    expected = {k: v.clone() for k, v in first.state_dict().items()}

    digit_classifier("cpu", config=TINY, directory=tmp_path)
    assert "loaded checkpoint" in capsys.readouterr().out

    # Well-formed weights that are not the ones the sidecar vouches for: never loaded.
    tampered = {k: torch.zeros_like(v) for k, v in expected.items()}
    torch.save(tampered, weights)
    again = digit_classifier("cpu", verbose=False, config=TINY, directory=tmp_path)
    assert "failed its hash check: retraining" in capsys.readouterr().out
    for k, v in again.state_dict().items():
        assert torch.equal(v, expected[k]), k  # retrained from the same seed, not the zeros

    weights.write_bytes(b"not a checkpoint")  # truncated / garbage
    digit_classifier("cpu", verbose=False, config=TINY, directory=tmp_path)
    assert "retraining" in capsys.readouterr().out

    weights.unlink()  # missing
    digit_classifier("cpu", verbose=False, config=TINY, directory=tmp_path)
    assert "loaded checkpoint" not in capsys.readouterr().out
    assert _files(tmp_path)[0].exists()


# ------------------------------------------------------------------ quality figures
def test_evaluate_images_and_report(classifier, capsys):
    real = quality.real_sampler(seed=1)
    q = evaluate_images(real(200), "real", classifier)
    assert isinstance(q, Quality) and q.n == 200 and 0 < q.coverage <= 1
    with pytest.raises(ValueError, match=r"\(N, 1, 28, 28\)"):
        evaluate_images(torch.rand(4, 28, 28), "flat", classifier)

    rows = quality_report(
        real, "model", n=200, untrained=lambda n: torch.rand(n, 1, 28, 28), classifier=classifier
    )
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == Quality.header() and lines[1:] == [r.row() for r in rows]
    assert [r.name for r in rows] == ["real vs real (floor)", "untrained (ceiling)", "model"]
    assert all(r.n == 200 for r in rows)
    floor, ceiling, model = (r.frechet for r in rows)
    assert floor < ceiling and model < ceiling
    assert "\n" not in rows[0].row() and rows[0].row().startswith("real vs real (floor)")


def test_metric_line_is_parseable(capsys):
    assert quality.metric("vae/fd", 12.5, "<", 30)
    assert not quality.metric("vae/coverage", 0.8, ">=", 1.0)
    lines = capsys.readouterr().out.splitlines()
    pattern = r"METRIC (\S+) = (\S+) \(target (<|<=|>|>=) (\S+)\)"
    assert [re.fullmatch(pattern, line).groups() for line in lines] == [
        ("vae/fd", "12.5", "<", "30"),
        ("vae/coverage", "0.8", ">=", "1"),
    ]
    with pytest.raises(ValueError, match="op must be"):
        quality.metric("x", 1.0, "=", 1.0)
    with pytest.raises(ValueError, match="metric names"):
        quality.metric("two words", 1.0, "<", 2.0)
