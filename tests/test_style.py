"""helpers.style: images from scikit-image, paths and URLs; VGG19 weights from a (fake) cache.

No test touches the network: downloads are replaced by fakes, and TORCH_HOME points at a
temporary folder holding a tiny state dict with VGG19's exact keys and shapes (each tensor
a single number expanded to its shape, so the file is a few kilobytes).
"""

from __future__ import annotations

import io
import urllib.request

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from helpers import style
from helpers.style import (
    FETCH_COMMAND,
    LossLog,
    cached_weights_path,
    load_image,
    load_style_cnn,
    random_vgg19_features,
    tiny_cnn,
    vgg19_features,
)


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("COURSE_FAST", raising=False)
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    monkeypatch.delenv("COURSE_OFFLINE", raising=False)
    return tmp_path / "torch"


def _no_download(*args, **kwargs):
    raise AssertionError("a download was attempted")


def _fake_state_dict() -> dict[str, torch.Tensor]:
    """VGG19's keys and shapes; conv k's weights all equal k / 100, biases -k / 100."""
    state = {}
    for k, (name, t) in enumerate(vgg19_features().state_dict().items()):
        value = (k // 2 + 1) / 100 * (1 if name.endswith("weight") else -1)
        state[f"features.{name}"] = torch.full((1,), value).expand(t.shape)
    state["classifier.6.bias"] = torch.zeros(1).expand(1000)
    return state


def _write_fake_weights(path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(_fake_state_dict(), path)


# ---------------------------------------------------------------------------- images
@pytest.mark.parametrize("name", ["chelsea", "immunohistochemistry", "brick"])
def test_embedded_images_are_rgb_squares_in_unit_range(name):
    x = load_image(name, size=24)
    assert x.shape == (1, 3, 24, 24) and x.dtype == torch.float32
    assert 0 <= x.min() and x.max() <= 1 and x.std() > 0.02
    if name == "brick":  # a grey texture becomes three equal channels
        assert torch.equal(x[:, 0], x[:, 1]) and torch.equal(x[:, 1], x[:, 2])


def test_a_file_is_centre_cropped_and_resized(tmp_path):
    img = np.zeros((40, 80, 3), np.uint8)
    img[:, 20:60] = 255  # the centre square is white, the sides black
    Image.fromarray(img).save(tmp_path / "wide.png")
    x = load_image(tmp_path / "wide.png", size=8)
    assert x.shape == (1, 3, 8, 8)
    assert x.min() > 0.99


def test_missing_file_and_non_image_raise_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no image file at .*nope.png"):
        load_image(tmp_path / "nope.png")
    (tmp_path / "notes.txt").write_text("not a picture")
    with pytest.raises(ValueError, match="not an image"):
        load_image(tmp_path / "notes.txt")


class _Response(io.BytesIO):
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _png_bytes() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((10, 10, 3), 128, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def test_url_is_downloaded_once_and_only_if_it_is_an_image(tmp_path, monkeypatch, torch_home):
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path / "data"))
    calls = []

    def fake_urlopen(url, timeout):
        calls.append(url)
        return _Response(b"<html>not found</html>" if "page" in url else _png_bytes())

    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)
    with pytest.raises(ValueError, match="did not return an image"):
        load_image("https://example.org/page.jpg", size=4)
    assert list((tmp_path / "data" / "images").iterdir()) == []  # nothing half-written
    x = load_image("https://example.org/grey.png", size=4)
    assert torch.allclose(x, torch.full_like(x, 128 / 255))
    load_image("https://example.org/grey.png", size=4)
    assert calls == ["https://example.org/page.jpg", "https://example.org/grey.png"]


def test_no_download_in_offline_mode(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("COURSE_FAST", "1")
    monkeypatch.setattr(urllib.request, "urlopen", _no_download)
    with pytest.raises(RuntimeError, match="offline"):
        load_image("https://example.org/x.png")


# ---------------------------------------------------------------------------- weights
def test_vgg19_features_match_torchvision_layout():
    from torchvision.models.vgg import cfgs, make_layers

    ours, theirs = vgg19_features().state_dict(), make_layers(cfgs["E"]).state_dict()
    assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in theirs.items()}


def test_weights_in_the_cache_are_loaded_without_download_or_notice(
    torch_home, monkeypatch, capsys
):
    path = cached_weights_path()
    assert path == torch_home / "hub" / "checkpoints" / "vgg19-dcbb9e9d.pth"
    _write_fake_weights(path)
    assert path.stat().st_size < 100_000
    monkeypatch.setattr(torch.hub, "download_url_to_file", _no_download)
    cnn = load_style_cnn()
    assert cnn.pretrained and cnn.weights == "ImageNet VGG19"
    assert capsys.readouterr().out == ""
    convs = [m for m in cnn.features if isinstance(m, nn.Conv2d)]
    assert len(convs) == 16
    assert torch.all(convs[0].weight == 0.01) and torch.all(convs[15].bias == -0.16)
    assert not any(p.requires_grad for p in cnn.features.parameters())
    assert not cnn.features.training


def test_without_weights_offline_the_fallback_is_announced_in_one_line(
    torch_home, monkeypatch, capsys
):
    monkeypatch.setenv("COURSE_OFFLINE", "1")
    monkeypatch.setattr(torch.hub, "download_url_to_file", _no_download)
    cnn = load_style_cnn(seed=3)
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and out.startswith("[course]")
    assert str(cached_weights_path()) in out and "RANDOM" in out and FETCH_COMMAND in out
    assert not cnn.pretrained and "random" in cnn.weights
    assert not any(p.requires_grad for p in cnn.features.parameters())
    again = load_style_cnn(seed=3)
    assert torch.equal(cnn.features[0].weight, again.features[0].weight)  # seeded
    with pytest.raises(RuntimeError, match="unavailable.*" + FETCH_COMMAND[:20]):
        load_style_cnn("imagenet")


def test_a_download_is_used_when_it_works_and_reported_when_it_fails(
    torch_home, monkeypatch, capsys
):
    def fake_download(url, dst, hash_prefix):
        assert url.endswith("vgg19-dcbb9e9d.pth") and hash_prefix == "dcbb9e9d"
        _write_fake_weights(cached_weights_path())

    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
    assert load_style_cnn().pretrained
    cached_weights_path().unlink()

    def failing_download(url, dst, hash_prefix):
        raise OSError("no route to host")

    monkeypatch.setattr(torch.hub, "download_url_to_file", failing_download)
    capsys.readouterr()
    cnn = load_style_cnn()
    assert not cnn.pretrained
    assert "download failed (OSError)" in capsys.readouterr().out


def test_a_broken_cache_file_falls_back_and_says_so(torch_home, monkeypatch, capsys):
    cached_weights_path().parent.mkdir(parents=True)
    cached_weights_path().write_bytes(b"truncated")
    monkeypatch.setattr(torch.hub, "download_url_to_file", _no_download)
    cnn = load_style_cnn()
    assert not cnn.pretrained and "could not be loaded" in capsys.readouterr().out


def test_random_fallback_layers_have_unit_output_std():
    net = random_vgg19_features(seed=0, size=32)
    g = torch.Generator().manual_seed(0)
    mean = torch.tensor(style.IMAGENET_MEAN).view(-1, 1, 1)
    std = torch.tensor(style.IMAGENET_STD).view(-1, 1, 1)
    x = (torch.rand(1, 3, 32, 32, generator=g) - mean) / std
    with torch.no_grad():
        for layer in net:
            x = torch.relu(x) if isinstance(layer, nn.ReLU) else layer(x)
            if isinstance(layer, nn.Conv2d):
                assert abs(x.std().item() - 1) < 1e-4


def test_load_style_cnn_rejects_unknown_sources():
    with pytest.raises(ValueError, match="auto"):
        load_style_cnn("vgg16")


# ---------------------------------------------------------------------------- the rest
def test_tiny_cnn_is_seeded_frozen_float64_with_in_place_relus():
    a, b = tiny_cnn(1), tiny_cnn(1)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not torch.equal(a[0].weight, tiny_cnn(2)[0].weight)
    assert a[0].weight.dtype == torch.float64 and not a[0].weight.requires_grad
    assert all(m.inplace for m in a if isinstance(m, nn.ReLU))
    assert sum(isinstance(m, nn.Conv2d) for m in a) == 5


def test_loss_log_keeps_the_scores():
    log = LossLog(2, disable=True)
    log(1, 3.0, 0.5)
    log(2, 1.0, 0.25)
    log.close()
    assert log.style == [3.0, 1.0] and log.content == [0.5, 0.25]
