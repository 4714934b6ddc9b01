"""helpers.paired and helpers.image_metrics: Facades from small archives made here, never the network."""

from __future__ import annotations

import io
import re
import tarfile

import numpy as np
import pytest
import torch
from PIL import Image

from helpers import image_metrics, paired

SPLITS = {"train": 3, "val": 1, "test": 2}


def _jpeg(photo_rgb, label_rgb, size=16) -> bytes:
    """A Facades-like file: the photo on the left half, its label map on the right."""
    img = np.zeros((size, 2 * size, 3), dtype=np.uint8)
    img[:, :size] = photo_rgb
    img[:, size:] = label_rgb
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def _archive(path, splits=SPLITS) -> bytes:
    with tarfile.open(path, "w:gz") as tar:
        for split, n in splits.items():
            for i in range(1, n + 1):
                data = _jpeg((200, 20, 20), (20, 20, 200))  # red photo, blue label map
                info = tarfile.TarInfo(f"facades/{split}/{i}.jpg")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return path.read_bytes()


@pytest.fixture
def server(tmp_path, monkeypatch):
    """A fake ``_download`` that serves a small archive and counts its calls."""
    payload = _archive(tmp_path / "served.tar.gz")
    calls = []

    def fake_download(url, dest, timeout=30.0):
        calls.append(url)
        dest.write_bytes(payload)

    monkeypatch.setattr(paired, "_download", fake_download)
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path / "data"))
    return calls


@pytest.fixture
def no_network(monkeypatch, tmp_path):
    def refuse(url, dest, timeout=30.0):
        raise OSError("no network in the tests")

    monkeypatch.setattr(paired, "_download", refuse)
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path / "empty"))


def test_facades_is_downloaded_once_split_as_the_archive_and_cached(server, tmp_path):
    data = paired.load_facades(image_size=8)
    assert data.source == "facades" and server == [paired.FACADES_URL]
    assert {"train": len(data.train), "val": len(data.val), "test": len(data.test)} == SPLITS
    A, B = data.train.tensors
    assert A.shape == B.shape == (3, 3, 8, 8) and A.dtype == torch.float32
    assert 0 <= float(A.min()) and float(B.max()) <= 1
    # The input is the label map (right half, blue), the target the photo (left half, red).
    assert A[:, 2].mean() > 0.6 > A[:, 0].mean() and B[:, 0].mean() > 0.6 > B[:, 2].mean()
    root = tmp_path / "data"
    assert (root / "facades-8.pt").exists()
    sidecar = (root / "facades.tar.gz.sha256").read_text().strip()
    assert sidecar == paired.sha256_of(root / "facades.tar.gz")
    again = paired.load_facades(image_size=8)
    assert server == [paired.FACADES_URL]  # cached: no second download
    assert torch.equal(again.test.tensors[1], data.test.tensors[1])


def test_a_tampered_archive_fails_its_hash_check_and_is_removed(server, tmp_path):
    paired.load_facades(image_size=8)
    archive = tmp_path / "data" / "facades.tar.gz"
    archive.write_bytes(archive.read_bytes()[:-10])  # truncated
    with pytest.raises(ValueError, match="SHA-256"):
        paired.load_facades(image_size=8, download=False)
    assert not archive.exists()
    paired.load_facades(image_size=8)  # downloaded again, verified afresh
    assert len(server) == 2


def test_a_pinned_hash_is_enforced(server, monkeypatch):
    monkeypatch.setattr(paired, "FACADES_SHA256", "0" * 64)
    with pytest.raises(ValueError, match="SHA-256"):
        paired.load_facades(image_size=8)


def test_no_archive_and_no_download_raises(no_network, tmp_path):
    with pytest.raises(FileNotFoundError):
        paired.facades_archive(tmp_path / "nowhere", download=False)
    with pytest.raises(OSError):
        paired.facades_archive(tmp_path / "nowhere", download=True)
    assert not list((tmp_path / "nowhere").glob("*"))  # no partial file left behind


def test_an_archive_without_a_split_is_refused(tmp_path, monkeypatch):
    payload = _archive(tmp_path / "bad.tar.gz", {"train": 2, "test": 1})
    monkeypatch.setattr(
        paired, "_download", lambda url, dest, timeout=30.0: dest.write_bytes(payload)
    )
    with pytest.raises(ValueError, match="val"):
        paired.load_facades(tmp_path / "root", image_size=8)


def test_auto_uses_facades_when_online(server, monkeypatch, capsys):
    monkeypatch.setattr(paired, "is_fast", lambda: False)
    monkeypatch.setattr(paired, "is_offline", lambda: False)
    data = paired.load_paired_data(image_size=8, n_train=2)
    assert data.source == "facades" and len(data.train) == 2 and len(data.test) == 2
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and "CMP Facades" in out[0] and out[0].startswith("[course]")


def test_fast_mode_uses_the_embedded_pairs_without_any_download(server, monkeypatch, capsys):
    monkeypatch.setattr(paired, "is_fast", lambda: True)
    data = paired.load_paired_data(patch_size=32, n_train=10, n_test=4)
    assert server == [] and data.source == "photos"
    assert data.train.tensors[0].shape == (10, 3, 32, 32) and len(data.test) == 4
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and "fast mode" in out[0] and "scikit-image" in out[0]


def test_offline_without_a_cache_falls_back_with_a_notice(no_network, monkeypatch, capsys):
    monkeypatch.setattr(paired, "is_fast", lambda: False)
    monkeypatch.setattr(paired, "is_offline", lambda: False)
    data = paired.load_paired_data(patch_size=32, n_train=4, n_test=4)
    assert data.source == "photos"
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and "Facades unavailable" in out[0]
    with pytest.raises(RuntimeError, match="Facades unavailable"):
        paired.load_paired_data(source="facades")
    with pytest.raises(ValueError):
        paired.load_paired_data(source="mnist")


def test_photo_pairs_hold_out_whole_photos_and_inputs_are_label_maps():
    data = paired.photo_pairs(patch_size=32, short_side=96, n_labels=6)
    A, B = data.train.tensors
    A_test, B_test = data.test.tensors
    assert A.shape == B.shape and A.shape[1:] == (3, 32, 32) and A_test.shape[1:] == (3, 32, 32)
    palette = torch.from_numpy(paired.PALETTE[:6])
    for maps in (A, A_test):  # every input pixel is one of the first n_labels palette colours
        pixels = maps.permute(0, 2, 3, 1).reshape(-1, 1, 3)
        assert (pixels - palette).abs().sum(-1).min(1).values.max() < 1e-6
    # Held-out targets are cut from other photos than every training target.
    dist = torch.cdist(B_test.flatten(1), B.flatten(1))
    assert float(dist.min()) > 0.5
    assert set(paired.TEST_PHOTOS).isdisjoint(paired.TRAIN_PHOTOS)
    assert "coffee" in data.description


def test_label_map_paints_the_nearest_centre():
    centres = torch.tensor([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    img = torch.tensor([0.1, 0.9]).view(1, 1, 1, 2).expand(1, 3, 1, 2)
    out = paired.label_map(img, centres)
    expected = torch.from_numpy(paired.PALETTE[[0, 1]]).T.reshape(1, 3, 1, 2)
    assert torch.equal(out, expected)
    with pytest.raises(ValueError):
        paired.label_map(img, torch.rand(len(paired.PALETTE) + 1, 3))


def test_image_scores_against_hand_computed_values():
    target = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 0.8
    scores = image_metrics.image_scores(target + 0.1, target)
    assert scores["L1"] == pytest.approx(0.1, abs=1e-6)
    assert scores["PSNR"] == pytest.approx(20.0, abs=1e-4)  # MSE 0.01 -> 20 dB
    assert 0 < scores["SSIM"] < 1
    same = image_metrics.image_scores(target, target)
    assert same["SSIM"] == pytest.approx(1.0) and same["L1"] == 0 and same["PSNR"] == float("inf")
    with pytest.raises(ValueError):
        image_metrics.image_scores(target[:2], target)
    assert torch.equal(
        image_metrics.to_unit(torch.tensor([-1.0, 0.0, 2.0])), torch.tensor([0, 0.5, 1])
    )


def test_score_table_and_metric_lines_are_parseable():
    table = image_metrics.score_table(
        {"untrained": {"L1": 0.2, "PSNR": 12.0}, "Pix2Pix": {"L1": 0.1, "PSNR": 18.5}}
    )
    assert table.splitlines()[0].split() == ["model", "L1", "PSNR"] and "18.5000" in table
    line = image_metrics.metric_line("pix2pix_test_L1", 0.0912345, "<", 0.13)
    m = re.fullmatch(r"METRIC (\w+) = ([-\d.e]+) \(target ([<>]=?) ([-\d.e]+)\)", line)
    assert m and m.groups() == ("pix2pix_test_L1", "0.09123", "<", "0.13")
