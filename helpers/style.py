"""Given code for notebook 11 (style transfer): images, the VGG19 feature network, a loss log.

Images come from scikit-image by default (photographs and textures that ship with the
package), or from any path or URL. The network is VGG19's convolutional part with the
ImageNet weights from torchvision when they are in the torch cache or can be downloaded;
otherwise the same architecture with random weights, announced in one visible line that
names the missing file and the one command that fetches it. :class:`StyleCNN` carries a
``weights`` label that every figure of the notebook puts in its title.
"""

from __future__ import annotations

import hashlib
import os
import socket
import tempfile
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from helpers.data import data_dir, notice
from helpers.settings import is_offline

#: torchvision's ImageNet VGG19 (``VGG19_Weights.IMAGENET1K_V1``); the file name holds a hash prefix.
VGG19_URL = "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"
FETCH_COMMAND = (
    "python -c \"import torchvision; torchvision.models.vgg19(weights='IMAGENET1K_V1')\""
)
#: Per-channel statistics of ImageNet, which the VGG19 weights expect after scaling to [0, 1].
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: VGG19's convolutional part ("E" in Simonyan & Zisserman, 2015): channels, "M" = max-pool.
VGG19_LAYOUT = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M")
VGG19_LAYOUT += (512, 512, 512, 512, "M", 512, 512, 512, 512, "M")
#: Images that ship inside scikit-image (no download): photographs and textures.
SKIMAGE_IMAGES = (
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
    "brick",
    "grass",
    "gravel",
)


# ---------------------------------------------------------------------------- images
def _to_tensor(array: np.ndarray, size: int) -> torch.Tensor:
    """An image array (H, W[, C]) of any dtype -> (1, 3, size, size) float32 in [0, 1]."""
    from skimage.util import img_as_float32

    img = img_as_float32(np.asarray(array))
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)  # grey -> RGB
    if img.ndim != 3 or img.shape[-1] not in (3, 4):
        raise ValueError(
            f"expected an image of shape (H, W), (H, W, 3) or (H, W, 4), got {img.shape}"
        )
    x = torch.from_numpy(np.ascontiguousarray(img[..., :3])).permute(2, 0, 1)[None]  # (1, 3, H, W)
    h, w = x.shape[-2:]
    side = min(h, w)  # centre crop to a square, then resize with antialiasing
    top, left = (h - side) // 2, (w - side) // 2
    x = x[..., top : top + side, left : left + side]
    x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return x.clamp(0.0, 1.0).contiguous()


def _read_image_file(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise ValueError(f"{path} is not an image file that Pillow can read ({exc})") from exc


def _download_image(url: str, timeout: float = 20.0) -> Path:
    """Download ``url`` once into the course cache; the file appears only if it is an image."""
    suffix = Path(url.split("?")[0]).suffix[:5] or ".img"
    target = data_dir() / "images" / (hashlib.sha1(url.encode()).hexdigest()[:16] + suffix)
    if target.exists():
        return target
    if is_offline():
        raise RuntimeError(f"cannot download {url}: offline mode (fast mode or COURSE_OFFLINE=1)")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            out.write(resp.read())
        _read_image_file(tmp)  # raises ValueError on a web page or other non-image
        os.replace(tmp, target)
    except ValueError as exc:
        raise ValueError(f"{url} did not return an image: {exc}") from exc
    except OSError as exc:
        raise RuntimeError(f"could not download {url}: {exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)  # nothing half-written is left behind
    return target


def load_image(source: str | os.PathLike, size: int = 128) -> torch.Tensor:
    """An image as a ``(1, 3, size, size)`` float32 tensor in [0, 1], centre-cropped to a square.

    ``source`` is the name of an image that ships with scikit-image (see
    :data:`SKIMAGE_IMAGES`), a file path, or an ``http(s)://`` URL (downloaded once into the
    course cache). A missing file raises ``FileNotFoundError``, a file or URL that is not an
    image ``ValueError``.
    """
    text = os.fspath(source)
    if text in SKIMAGE_IMAGES:
        import skimage.data

        return _to_tensor(getattr(skimage.data, text)(), size)
    if text.startswith(("http://", "https://")):
        return _to_tensor(_read_image_file(_download_image(text)), size)
    path = Path(text).expanduser()
    if not path.is_file():
        known = ", ".join(SKIMAGE_IMAGES)
        raise FileNotFoundError(
            f"no image file at {path} (give a path, an http(s) URL, or one of: {known})"
        )
    return _to_tensor(_read_image_file(path), size)


# ---------------------------------------------------------------------------- weights
@dataclass
class StyleCNN:
    """A feature network for style transfer and what it is, for notices and figure titles."""

    features: nn.Sequential
    weights: str  # e.g. "ImageNet VGG19" or "random-weight VGG19 (no ImageNet weights)"
    pretrained: bool
    mean: torch.Tensor = field(default_factory=lambda: torch.tensor(IMAGENET_MEAN))
    std: torch.Tensor = field(default_factory=lambda: torch.tensor(IMAGENET_STD))


def vgg19_features(layout: Sequence[int | str] = VGG19_LAYOUT) -> nn.Sequential:
    """VGG19's ``features`` as torchvision lays them out (same indices, so state dicts match).

    Weights are initialised as torchvision does (Kaiming normal, fan-out, zero bias).
    """
    layers: list[nn.Module] = []
    in_ch = 3
    for item in layout:
        if item == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            continue
        conv = nn.Conv2d(in_ch, int(item), kernel_size=3, padding=1)
        nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
        nn.init.zeros_(conv.bias)
        layers += [conv, nn.ReLU(inplace=True)]
        in_ch = int(item)
    return nn.Sequential(*layers)


def cached_weights_path(url: str = VGG19_URL) -> Path:
    """Where ``torch.hub`` keeps the file of ``url`` (``$TORCH_HOME/hub/checkpoints/...``)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(url).name


def _load_features(path: Path) -> nn.Sequential:
    state = torch.load(path, map_location="cpu", weights_only=True)
    features = {k[len("features.") :]: v for k, v in state.items() if k.startswith("features.")}
    net = vgg19_features()
    net.load_state_dict(features, strict=True)
    return net


def _download(url: str, path: Path, timeout: float = 30.0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout)
    try:  # torch writes to a temporary file and checks the hash prefix before renaming it
        torch.hub.download_url_to_file(url, str(path), hash_prefix=path.stem.split("-")[-1])
    finally:
        socket.setdefaulttimeout(old)


def load_style_cnn(source: str = "auto", seed: int = 0, url: str = VGG19_URL) -> StyleCNN:
    """VGG19 features in eval mode, frozen: ImageNet weights when they can be had.

    ``source`` is ``"auto"`` (cache, then download unless offline, then the random-weight
    fallback with a one-line notice), ``"imagenet"`` (raise when unavailable) or ``"random"``
    (the fallback on purpose). The fallback is the same architecture with torchvision's
    random initialisation under ``seed``: its content and style losses still fall, but the
    features it measures were never trained, so its pictures are not the paper's.
    """
    if source not in {"auto", "imagenet", "random"}:
        raise ValueError(f"source must be 'auto', 'imagenet' or 'random', got {source!r}")
    path, why = cached_weights_path(url), ""
    if source != "random":
        if not path.exists() and not is_offline():
            try:
                _download(url, path)
            except Exception as exc:  # noqa: BLE001 - no network, proxy, bad hash: fall back
                why = f"download failed ({type(exc).__name__})"
        if path.exists():
            try:
                return _frozen(StyleCNN(_load_features(path), "ImageNet VGG19", True))
            except Exception as exc:  # noqa: BLE001 - a truncated or foreign file
                why = f"{path} could not be loaded ({type(exc).__name__}: {str(exc)[:80]})"
        why = why or f"{path} not found and offline"
        if source == "imagenet":
            raise RuntimeError(f"VGG19 ImageNet weights unavailable: {why}. Fetch: {FETCH_COMMAND}")
        notice(
            f"VGG19 ImageNet weights unavailable ({why}): using VGG19 with RANDOM weights "
            f"(seed {seed}, scaled per layer); fetch the real ones with: {FETCH_COMMAND}"
        )
    return _frozen(StyleCNN(random_vgg19_features(seed), RANDOM_LABEL, False))


RANDOM_LABEL = "random-weight VGG19 (no ImageNet weights)"


@torch.no_grad()
def random_vgg19_features(seed: int = 0, size: int = 64) -> nn.Sequential:
    """VGG19 features with random weights, each conv scaled to unit output std (the fallback).

    Kaiming initialisation keeps gradients alive but leaves the features (and so the Gram
    matrices and the losses) orders of magnitude smaller than the ImageNet network's, and
    ``torch.optim.LBFGS`` then skips every curvature update (it needs y's > 1e-10) and crawls.
    Scaling each layer so that its output has unit standard deviation on a seeded noise image
    (LSUV, Mishkin & Matas 2016) brings the losses to the trained network's scale.
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = vgg19_features()
    mean, std = (
        torch.tensor(IMAGENET_MEAN).view(-1, 1, 1),
        torch.tensor(IMAGENET_STD).view(-1, 1, 1),
    )
    x = (torch.rand(1, 3, size, size, generator=gen) - mean) / std  # (1, 3, size, size)
    for layer in net:
        if isinstance(layer, nn.Conv2d):
            layer.weight.div_(layer(x).std())
        x = torch.relu(x) if isinstance(layer, nn.ReLU) else layer(x)
    return net


def _frozen(cnn: StyleCNN) -> StyleCNN:
    cnn.features.eval().requires_grad_(False)
    return cnn


# ---------------------------------------------------------------------------- loss log
class LossLog:
    """A ``callback(step, style_score, content_score)`` that keeps the losses and shows a bar."""

    def __init__(self, total: int, desc: str = "L-BFGS", disable: bool = False):
        from tqdm.auto import tqdm

        self.style: list[float] = []
        self.content: list[float] = []
        self.bar = tqdm(total=total, desc=desc, disable=disable)

    def __call__(self, step: int, style_score: float, content_score: float) -> None:
        self.style.append(float(style_score))
        self.content.append(float(content_score))
        self.bar.update(1)
        self.bar.set_postfix(style=f"{style_score:.3g}", content=f"{content_score:.3g}")

    def close(self) -> None:
        self.bar.close()


# ---------------------------------------------------------------------------- tests
def tiny_cnn(seed: int = 0, dtype: torch.dtype = torch.float64) -> nn.Sequential:
    """A five-conv stand-in for VGG (conv, bn, in-place ReLUs, pools) for the tests, seeded.

    Layers: conv(3->4) relu conv(4->5) bn relu pool conv(5->6) relu conv(6->6) relu pool
    conv(6->8) relu, in eval mode with random batch-norm statistics, frozen.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        bn = nn.BatchNorm2d(5)
        bn.running_mean.uniform_(-0.2, 0.2)
        bn.running_var.uniform_(0.5, 1.5)
        nn.init.uniform_(bn.weight, 0.5, 1.5)
        nn.init.uniform_(bn.bias, -0.1, 0.1)
        net = nn.Sequential(
            nn.Conv2d(3, 4, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(4, 5, 3, padding=1),
            bn,
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(5, 6, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(6, 6, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(6, 8, 3, padding=1),
            nn.ReLU(inplace=True),
        )
    return net.to(dtype).eval().requires_grad_(False)
