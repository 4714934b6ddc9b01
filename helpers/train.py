"""One generic training loop with a progress bar, and load-or-train checkpoints.

The loop knows nothing about models or losses: the notebook passes a ``step``
function that takes one batch, does one optimisation step and returns its losses as
floats. ``fit`` runs the epochs, shows progress, averages the losses and returns a
:class:`History`; plotting it is the job of :mod:`helpers.plots`.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import types
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


def _code_bytes(code: types.CodeType) -> bytes:
    """A code object's bytecode, names and constants (nested code objects included)."""
    parts = [code.co_code, repr(code.co_names).encode(), repr(code.co_varnames).encode()]
    for const in code.co_consts:
        parts.append(
            _code_bytes(const) if isinstance(const, types.CodeType) else repr(const).encode()
        )
    return b"|".join(parts)


def _names(code: types.CodeType) -> set[str]:
    """Global names a code object (and the functions nested in it) may read."""
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _names(const)
    return names


def _text(obj: Any) -> bytes:
    """The source of a function or class; its code object's bytes when there is no source."""
    try:
        return inspect.getsource(obj).encode()
    except (OSError, TypeError):
        pass
    code = getattr(obj, "__code__", None)
    if code is not None:
        return _code_bytes(code)
    if isinstance(obj, type):  # a class without retrievable source: its methods' code
        return b"".join(_text(v) for _, v in sorted(vars(obj).items()) if callable(v))
    return repr(type(obj)).encode()


def _dependencies(obj: Any) -> list[Any]:
    """Functions and classes ``obj`` calls that were defined where it was (e.g. in the notebook).

    Followed: the functions a closure captured, and global names of the code that resolve to
    a function or class of the same module (a notebook's ``__main__``). Library code (torch,
    helpers) is not followed: it is the same for every student.
    """
    if isinstance(obj, functools.partial):
        return [obj.func]
    fn = getattr(obj, "__func__", obj)  # bound method -> function
    code = getattr(fn, "__code__", None)
    if code is None:
        return []
    module = getattr(fn, "__module__", None)
    found = [c.cell_contents for c in (fn.__closure__ or ()) if _is_code_cell(c)]
    scope = getattr(fn, "__globals__", {})
    for name in sorted(_names(code)):
        value = scope.get(name)
        if (inspect.isfunction(value) or inspect.isclass(value)) and value.__module__ == module:
            found.append(value)
    return [f for f in found if inspect.isfunction(f) or inspect.isclass(f) or inspect.ismethod(f)]


def _is_code_cell(cell: Any) -> bool:
    try:
        value = cell.cell_contents
    except ValueError:  # an empty cell
        return False
    return callable(value) and not isinstance(value, torch.nn.Module)


def code_fingerprint(*functions: Any) -> str:
    """SHA-256 of the source of ``functions`` and of every notebook function they call.

    ``inspect.getsource`` works for functions defined in Jupyter cells; where it fails
    (e.g. ``exec``), the code object's bytes stand in. Editing any of those functions, a
    comment included, changes the fingerprint.
    """
    digest, seen, queue = hashlib.sha256(), set(), list(functions)
    while queue:
        obj = queue.pop(0)
        if id(obj) in seen or obj is None:
            continue
        seen.add(id(obj))
        label = f"{getattr(obj, '__module__', '')}.{getattr(obj, '__qualname__', repr(obj))}"
        digest.update(label.encode() + b"\0" + _text(obj) + b"\0")
        queue.extend(_dependencies(obj))
    return digest.hexdigest()


def load_or_train(
    model: nn.Module,
    name: str,
    train: Callable[[], History],
    config: Any = None,
    directory: Path | None = None,
    code: Iterable[Callable] = (),
) -> History:
    """Load ``model``'s weights from a checkpoint, or train it and save one.

    The file name carries a hash of everything that shapes the weights: ``config``, the
    architecture (``repr`` and source of the model's class), and the source of ``train``,
    of the functions listed in ``code`` (e.g. the student's loss) and of every function
    defined in the same notebook that these call, found by following their global names and
    closures. So a changed setting *or a changed answer* retrains instead of loading weights
    made by other code. A sidecar JSON holds the file's SHA-256 and the history, and a
    checkpoint whose hash does not match (truncated, edited) is retrained, never loaded.
    """
    directory = Path(directory) if directory is not None else Path("checkpoints")
    source = code_fingerprint(train, *code, type(model))
    key = hashlib.sha256(f"{config!r}|{model!r}|{source}".encode()).hexdigest()[:12]
    weights, meta = directory / f"{name}-{key}.pt", directory / f"{name}-{key}.json"
    if weights.exists() and meta.exists():
        try:
            info = json.loads(meta.read_text())
            if not isinstance(info, dict):
                raise ValueError("sidecar is not a JSON object")
            if info.get("sha256") == _digest(weights):
                state = torch.load(weights, map_location="cpu", weights_only=True)
                model.load_state_dict(state)
                print(f"[course] loaded checkpoint {weights} (same settings and code)")
                return History.from_dict(info.get("history", {}))
            print(f"[course] checkpoint {weights} failed its hash check: retraining")
        except (OSError, ValueError, RuntimeError) as exc:
            print(f"[course] checkpoint {weights} unreadable ({exc}): retraining")
    elif list(directory.glob(f"{name}-*.json")):
        print(f"[course] {name}: settings or code changed since the last checkpoint: training")
    history = train()
    directory.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), weights)
    info = {
        "sha256": _digest(weights),
        "history": history.to_dict(),
        "config": repr(config),
        "code_sha256": source,
    }
    meta.write_text(json.dumps(info))
    return history
