"""One generic training loop with a progress bar, and load-or-train checkpoints.

The loop knows nothing about models or losses: the notebook passes a ``step``
function that takes one batch, does one optimisation step and returns its losses as
floats. ``fit`` runs the epochs, shows progress, averages the losses and returns a
:class:`History`; plotting it is the job of :mod:`helpers.plots`.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from helpers.settings import is_fast


@dataclass
class History:
    """Per-epoch means (``epochs``) and per-step values (``steps``) of every metric."""

    epochs: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    steps: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))

    def last(self, key: str) -> float:
        return self.epochs[key][-1]

    def to_dict(self) -> dict[str, Any]:
        return {"epochs": dict(self.epochs), "steps": dict(self.steps)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> History:
        h = cls()
        h.epochs.update(data.get("epochs", {}))
        h.steps.update(data.get("steps", {}))
        return h


def fit(
    step: Callable[[Any], dict[str, float]],
    train_loader: Iterable,
    num_epochs: int,
    evaluate: Callable[[], dict[str, float]] | None = None,
    desc: str = "train",
    history: History | None = None,
) -> History:
    """Run ``step`` on every batch for ``num_epochs`` epochs.

    ``evaluate`` (optional) is called after each epoch; its metrics are stored
    under their own names (e.g. ``test_loss``). Returns the history.
    """
    history = history or History()
    bar = tqdm(range(num_epochs), desc=desc, unit="epoch", disable=is_fast())
    for _ in bar:
        sums: dict[str, float] = defaultdict(float)
        n = 0
        for batch in train_loader:
            losses = step(batch)
            for k, v in losses.items():
                v = float(v)
                history.steps[k].append(v)
                sums[k] += v
            n += 1
        for k, v in sums.items():
            history.epochs[k].append(v / max(n, 1))
        if evaluate is not None:
            for k, v in evaluate().items():
                history.epochs[k].append(float(v))
        bar.set_postfix({k: f"{v[-1]:.4g}" for k, v in history.epochs.items() if v})
    return history


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_or_train(
    model: nn.Module,
    name: str,
    train: Callable[[], History],
    config: Any = None,
    directory: Path | None = None,
) -> History:
    """Load ``model``'s weights from a checkpoint, or train it and save one.

    The file name carries a hash of ``config`` and the architecture, so changing a
    setting retrains; a sidecar JSON holds the file's SHA-256 and the history, and a
    checkpoint whose hash does not match (truncated, edited) is retrained, never loaded.
    """
    directory = Path(directory) if directory is not None else Path("checkpoints")
    key = hashlib.sha256(f"{config!r}|{model!r}".encode()).hexdigest()[:12]
    weights, meta = directory / f"{name}-{key}.pt", directory / f"{name}-{key}.json"
    if weights.exists() and meta.exists():
        try:
            info = json.loads(meta.read_text())
            if not isinstance(info, dict):
                raise ValueError("sidecar is not a JSON object")
            if info.get("sha256") == _digest(weights):
                state = torch.load(weights, map_location="cpu", weights_only=True)
                model.load_state_dict(state)
                print(f"[course] loaded checkpoint {weights}")
                return History.from_dict(info.get("history", {}))
            print(f"[course] checkpoint {weights} failed its hash check: retraining")
        except (OSError, ValueError, RuntimeError) as exc:
            print(f"[course] checkpoint {weights} unreadable ({exc}): retraining")
    history = train()
    directory.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), weights)
    info = {"sha256": _digest(weights), "history": history.to_dict(), "config": repr(config)}
    meta.write_text(json.dumps(info))
    return history
