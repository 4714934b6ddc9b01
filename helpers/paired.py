"""Paired image-to-image data: CMP Facades when it can be had, embedded photo pairs otherwise.

Both come back as a :class:`PairedData` of ``TensorDataset(A, B)``: inputs ``A`` and targets
``B``, float32 ``(N, 3, H, W)`` in [0, 1], so a notebook never needs to know which one it got.

* **CMP Facades** (Tyleček & Šára 2013, as packed for pix2pix by Isola et al. 2017): 606
  photo|label pairs split 400 train / 100 val / 106 test, downloaded once into the course data
  folder, hash-checked, cached. The task is label map -> photo (the paper's "BtoA").
* **Embedded photo pairs**: scikit-image's photographs cut into patches; each patch's input is a
  *label map* of it (every pixel coloured by the nearest of ``n_labels`` colour clusters fitted on
  the training photos, drawn in a fixed palette), so the model learns Facades' task on a small
  scale: from a coarse map of regions to a photograph. Test patches come from photos that no
  training patch was cut from.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import socket
import tarfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

from helpers.data import data_dir, notice
from helpers.settings import is_fast, is_offline

FACADES_URL = "http://efrosgans.eecs.berkeley.edu/pix2pix/datasets/facades.tar.gz"
#: SHA-256 of the archive. The authors publish none, so the first download's digest is
#: recorded next to it and every later use is checked against it; pin it here to enforce one.
FACADES_SHA256: str | None = None
FACADES_SPLITS = {"train": 400, "val": 100, "test": 106}

TRAIN_PHOTOS = ("astronaut", "rocket", "hubble_deep_field", "immunohistochemistry", "retina")
TEST_PHOTOS = ("coffee", "chelsea")  # never cut into training patches
# One colour per label, ordered like the clusters (by brightness): a map, not a photo.
PALETTE = np.array(
    [
        [0.00, 0.00, 0.55],
        [0.00, 0.35, 1.00],
        [0.00, 0.80, 0.80],
        [0.30, 0.85, 0.20],
        [1.00, 0.85, 0.00],
        [1.00, 0.45, 0.00],
        [0.85, 0.00, 0.00],
        [0.55, 0.00, 0.55],
        [1.00, 0.55, 0.75],
        [0.60, 0.60, 0.60],
    ],
    dtype=np.float32,
)


@dataclass(frozen=True)
class PairedData:
    """Train and held-out pairs ``(A, B)`` in [0, 1], where they came from, and a description."""

    train: TensorDataset
    test: TensorDataset
    source: str  # "facades" or "photos"
    description: str
    val: TensorDataset | None = None

    @property
    def image_shape(self) -> tuple[int, ...]:
        return tuple(self.train.tensors[0].shape[1:])


# ------------------------------------------------------------------------------- Facades
def _download(url: str, dest: Path, timeout: float = 30.0) -> None:
    """Fetch ``url`` into ``dest`` (the one network call of this module; tests replace it)."""
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout)
    try:
        with urllib.request.urlopen(url) as response, open(dest, "wb") as out:
            shutil.copyfileobj(response, out)
    finally:
        socket.setdefaulttimeout(old)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def facades_archive(root: Path, download: bool = True) -> Path:
    """The verified ``facades.tar.gz`` under ``root``, downloaded first when missing.

    The archive must match :data:`FACADES_SHA256` when it is pinned, else the digest recorded
    at its first download (``facades.tar.gz.sha256``). A mismatch (truncated, replaced) removes
    the file and raises ``ValueError``; a missing file with ``download=False`` raises
    ``FileNotFoundError``.
    """
    root = Path(root)
    archive, sidecar = root / "facades.tar.gz", root / "facades.tar.gz.sha256"
    if not archive.exists():
        if not download:
            raise FileNotFoundError(f"{archive} is not there and downloads are off")
        root.mkdir(parents=True, exist_ok=True)
        partial = archive.with_suffix(".part")
        try:
            _download(FACADES_URL, partial)
            partial.replace(archive)
        finally:
            partial.unlink(missing_ok=True)
        sidecar.unlink(missing_ok=True)  # a new file: its digest is recorded below
    digest = sha256_of(archive)
    expected = FACADES_SHA256 or (sidecar.read_text().strip() if sidecar.exists() else None)
    if expected is not None and digest != expected:
        archive.unlink()
        raise ValueError(f"{archive.name}: SHA-256 {digest[:12]}... != expected {expected[:12]}...")
    if not sidecar.exists():
        sidecar.write_text(digest + "\n")
    return archive


def _read_pair(data: bytes, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One Facades file (photo | label side by side) -> (label, photo) ``(3, size, size)``."""
    from PIL import Image

    img = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.float32) / 255.0
    t = torch.from_numpy(img).permute(2, 0, 1)  # (3, H, 2W)
    w = t.shape[2] // 2
    photo, label = t[:, :, :w], t[:, :, w:]
    pair = torch.stack([label, photo])  # (2, 3, H, W)
    if pair.shape[-2:] != (size, size):
        pair = F.interpolate(pair, size=(size, size), mode="bilinear", antialias=True)
    return pair[0].clamp(0, 1), pair[1].clamp(0, 1)


def _facades_split(tar: tarfile.TarFile, split: str, size: int) -> TensorDataset:
    members = [
        m
        for m in tar.getmembers()
        if m.isfile() and Path(m.name).parent.name == split and m.name.endswith(".jpg")
    ]
    members.sort(key=lambda m: (len(Path(m.name).stem), Path(m.name).stem))  # 1, 2, ..., 10
    if not members:
        raise ValueError(f"the archive has no {split}/ images")
    pairs = [_read_pair(tar.extractfile(m).read(), size) for m in members]
    return TensorDataset(torch.stack([a for a, _ in pairs]), torch.stack([b for _, b in pairs]))


def load_facades(root: Path | None = None, image_size: int = 256, download: bool = True):
    """CMP Facades, label map -> photo, split as the original (train / val / test).

    Decoded splits are cached next to the archive (``facades-<size>.pt``) and rebuilt whenever
    the archive's digest changes.
    """
    root = Path(root) if root is not None else data_dir()
    archive = facades_archive(root, download=download)
    digest = sha256_of(archive)
    cache = root / f"facades-{image_size}.pt"
    splits = None
    if cache.exists():
        try:
            saved = torch.load(cache, weights_only=True)
            if saved.get("sha256") == digest:
                splits = {k: TensorDataset(*saved[k]) for k in FACADES_SPLITS}
        except (OSError, RuntimeError, AttributeError, KeyError):
            splits = None
    if splits is None:
        with tarfile.open(archive, "r:gz") as tar:
            splits = {k: _facades_split(tar, k, image_size) for k in FACADES_SPLITS}
        torch.save({"sha256": digest, **{k: list(v.tensors) for k, v in splits.items()}}, cache)
    counts = {k: len(v) for k, v in splits.items()}
    text = "CMP Facades, label map -> photo, " + " / ".join(f"{n} {k}" for k, n in counts.items())
    return PairedData(splits["train"], splits["test"], "facades", text, val=splits["val"])


# ------------------------------------------------------------------------ embedded photos
def _photo(name: str, short_side: int) -> torch.Tensor:
    """A scikit-image photograph as ``(3, H, W)`` in [0, 1], its shorter side ``short_side``."""
    from skimage import data

    img = np.asarray(getattr(data, name)())[..., :3].astype(np.float32) / 255.0
    t = torch.from_numpy(img).permute(2, 0, 1).unsqueeze(0)  # (1, 3, H, W)
    scale = short_side / min(t.shape[-2:])
    size = (round(t.shape[-2] * scale), round(t.shape[-1] * scale))
    return F.interpolate(t, size=size, mode="bilinear", antialias=True)[0].clamp(0, 1)


def _patches(img: torch.Tensor, size: int, stride: int) -> torch.Tensor:
    """All ``size x size`` windows of ``img (3, H, W)`` ``stride`` apart: ``(N, 3, size, size)``."""
    windows = img.unfold(1, size, stride).unfold(2, size, stride)  # (3, nh, nw, size, size)
    return windows.permute(1, 2, 0, 3, 4).reshape(-1, 3, size, size)


def fit_label_colours(photos: list[torch.Tensor], n_labels: int, seed: int = 0) -> torch.Tensor:
    """``n_labels`` cluster centres ``(n_labels, 3)`` of the photos' colours, darkest first."""
    from sklearn.cluster import KMeans

    pixels = torch.cat([p.reshape(3, -1).T for p in photos])  # (P, 3)
    g = torch.Generator().manual_seed(seed)
    sample = pixels[torch.randperm(len(pixels), generator=g)[:10_000]].numpy()
    centres = KMeans(n_clusters=n_labels, n_init=1, random_state=seed).fit(sample).cluster_centers_
    centres = torch.from_numpy(centres.astype(np.float32))
    return centres[centres.sum(1).argsort()]


def label_map(images: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """Each pixel of ``images (N, 3, H, W)`` drawn in the palette colour of its nearest centre."""
    if len(centres) > len(PALETTE):
        raise ValueError(f"at most {len(PALETTE)} labels, got {len(centres)}")
    d = ((images.unsqueeze(1) - centres[None, :, :, None, None]) ** 2).sum(2)  # (N, K, H, W)
    labels = d.argmin(1)  # (N, H, W)
    return torch.from_numpy(PALETTE)[labels].permute(0, 3, 1, 2).contiguous()  # (N, 3, H, W)


def photo_pairs(
    patch_size: int = 64,
    short_side: int = 256,
    n_labels: int = 8,
    stride: int | None = None,
    seed: int = 0,
) -> PairedData:
    """Label map -> photo pairs cut from scikit-image's photographs (no download).

    Training patches overlap (``stride``, default half a patch) and are also mirrored; held-out
    patches tile :data:`TEST_PHOTOS` without overlap.
    """
    train_photos = [_photo(n, short_side) for n in TRAIN_PHOTOS]
    test_photos = [_photo(n, short_side) for n in TEST_PHOTOS]
    centres = fit_label_colours(train_photos, n_labels, seed)
    stride = stride or patch_size // 2
    b_train = torch.cat([_patches(p, patch_size, stride) for p in train_photos])
    b_train = torch.cat([b_train, b_train.flip(-1)])  # mirrored copies
    b_test = torch.cat([_patches(p, patch_size, patch_size) for p in test_photos])
    text = (
        f"photo pairs from scikit-image ({n_labels}-colour label map -> photo, "
        f"{patch_size}x{patch_size} patches): train on {', '.join(TRAIN_PHOTOS)}; "
        f"held out: {', '.join(TEST_PHOTOS)}"
    )
    return PairedData(
        TensorDataset(label_map(b_train, centres), b_train),
        TensorDataset(label_map(b_test, centres), b_test),
        "photos",
        text,
    )


def _subset(ds: TensorDataset, n: int | None, seed: int) -> TensorDataset:
    if n is None or n >= len(ds):
        return ds
    idx = torch.randperm(len(ds), generator=torch.Generator().manual_seed(seed))[:n]
    return TensorDataset(*(t[idx] for t in ds.tensors))


def load_paired_data(
    source: str = "auto",
    patch_size: int = 64,
    image_size: int = 256,
    n_train: int | None = None,
    n_test: int | None = None,
    seed: int = 0,
) -> PairedData:
    """Facades when cached or downloadable (not in fast mode), else the embedded photo pairs.

    ``source`` is ``"auto"``, ``"facades"`` (fail if unavailable) or ``"photos"``. Facades is
    resized to ``image_size``; the photo pairs are ``patch_size`` patches. Prints one line that
    says which data set is used.
    """
    if source not in {"auto", "facades", "photos"}:
        raise ValueError(f"source must be 'auto', 'facades' or 'photos', got {source!r}")
    data, why = None, "fast mode"
    if source == "facades" or (source == "auto" and not is_fast()):
        try:
            data = load_facades(image_size=image_size, download=not is_offline())
        except (OSError, ValueError, tarfile.TarError) as exc:
            if source == "facades":
                raise RuntimeError(f"CMP Facades unavailable: {exc}") from exc
            why = f"Facades unavailable: {type(exc).__name__}"
    if data is None:
        data = photo_pairs(patch_size=patch_size, seed=seed)
        notice(f"{why + ': ' if source == 'auto' else ''}using embedded {data.description}.")
    else:
        notice(f"using {data.description}.")
    return PairedData(
        _subset(data.train, n_train, seed),
        _subset(data.test, n_test, seed + 1),
        data.source,
        data.description,
        data.val,
    )
