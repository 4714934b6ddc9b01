"""The recording side of the hidden tests.

A hidden test calls :func:`grade` with an exercise and a list of seeded cases. In
the kernel, ``grade`` only *runs* the student's code and records what comes back
(values, dtypes, shapes, gradients, whether an input was modified). It judges
nothing: the autograder compares the records with those of the reference solution
in a clean process outside the sandbox, so nothing a submission does to this
module, to ``torch`` or to ``numpy`` can change a verdict.

Records go to ``$COURSE_RECORD_DIR`` as ``.npz`` files of plain float arrays plus
one JSON string (never pickles). Without that variable (Jupyter, ``nbgrader
validate``) the cases still run, so errors show up at once.
"""

from __future__ import annotations

import functools
import os
import sys
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from helpers.records import Record, load_record, save_record  # noqa: F401 - re-exported

_counts: dict[str, int] = {}


@dataclass
class Case:
    """Keyword arguments for one call, and a human description of them."""

    kwargs: dict[str, Any]
    desc: str = ""


def case(desc: str = "", **kwargs: Any) -> Case:
    """One call of the exercise: ``case(a=uniform(4, 3, seed=1), rho=0.05)``."""
    auto = ", ".join(f"{k}={describe(v)}" for k, v in kwargs.items())
    return Case(kwargs, "; ".join(p for p in (auto, desc) if p))


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


_DESCRIPTIONS: dict[int, tuple[weakref.ref, str]] = {}


def _tag(t: torch.Tensor, text: str) -> torch.Tensor:
    _DESCRIPTIONS[id(t)] = (weakref.ref(t), text)
    return t


def uniform(*shape: int, seed: int, low: float = 0.0, high: float = 1.0, dtype=torch.float32):
    """Seeded uniform tensor in [low, high)."""
    t = low + (high - low) * torch.rand(*shape, generator=_gen(seed), dtype=torch.float64)
    return _tag(t.to(dtype), f"uniform[{low}, {high}) {tuple(shape)} {dtype} seed={seed}")


def normal(*shape: int, seed: int, mean: float = 0.0, std: float = 1.0, dtype=torch.float32):
    """Seeded normal tensor."""
    t = mean + std * torch.randn(*shape, generator=_gen(seed), dtype=torch.float64)
    return _tag(t.to(dtype), f"normal({mean}, {std}) {tuple(shape)} {dtype} seed={seed}")


def describe(value: Any) -> str:
    """Short description of an input for failure messages."""
    if isinstance(value, torch.Tensor):
        ref, text = _DESCRIPTIONS.get(id(value), (None, ""))
        if ref is not None and ref() is value:
            return text
        return f"tensor {tuple(value.shape)} {value.dtype}"
    if isinstance(value, np.ndarray):
        return f"array {value.shape} {value.dtype}"
    text = repr(value)
    return text if len(text) < 60 else text[:57] + "..."


def _flatten(prefix: str, value: Any, rec: Record) -> None:
    if isinstance(value, torch.Tensor):
        rec.meta[f"{prefix}.dtype"] = str(value.dtype)
        rec.arrays[prefix] = value.detach().cpu().to(torch.float64).numpy().copy()
    elif isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
        rec.meta[f"{prefix}.dtype"] = str(value.dtype)
        rec.arrays[prefix] = value.astype(np.float64)
    elif type(value) in (bool, int, float) or isinstance(value, np.integer | np.floating):
        rec.meta[f"{prefix}.dtype"] = type(value).__name__.replace("float64", "float")
        rec.arrays[prefix] = np.asarray(float(value), dtype=np.float64)
    elif type(value) in (tuple, list):
        rec.meta[f"{prefix}.len"] = len(value)
        for i, item in enumerate(value):
            _flatten(f"{prefix}.{i}", item, rec)
    elif type(value) is dict:
        rec.meta[f"{prefix}.keys"] = sorted(map(str, value))
        for k in sorted(value, key=str):
            _flatten(f"{prefix}.{k}", value[k], rec)
    elif value is None:
        rec.meta[f"{prefix}.dtype"] = "None"
    else:
        rec.meta[f"{prefix}.dtype"] = f"unsupported:{type(value).__module__}.{type(value).__name__}"


def _scalarise(out: Any, seed: int) -> torch.Tensor | None:
    tensors = [t for t in (out if isinstance(out, tuple | list) else [out]) if _is_float(t)]
    total = None
    for i, t in enumerate(tensors):
        w = torch.randn(t.shape, generator=_gen(seed + i), dtype=torch.float64).to(t.dtype)
        term = (t * w).sum() if t.dim() else t
        total = term if total is None else total + term
    return total


def _is_float(t: Any) -> bool:
    return isinstance(t, torch.Tensor) and t.is_floating_point() and t.requires_grad


def run_case(fn: Callable, c: Case, grad: Sequence[str] = (), seed: int = 0) -> Record:
    """Call ``fn(**c.kwargs)`` on private copies and record the outcome."""
    rec = Record(meta={"input": c.desc})
    kwargs = {}
    for k, v in c.kwargs.items():
        if isinstance(v, torch.Tensor):
            v = v.detach().clone().requires_grad_(k in grad and v.is_floating_point())
        elif isinstance(v, np.ndarray):
            v = v.copy()
        kwargs[k] = v
    before = {
        k: v.detach().clone() if isinstance(v, torch.Tensor) else v.copy()
        for k, v in kwargs.items()
        if isinstance(v, torch.Tensor | np.ndarray)
    }
    try:
        out = fn(**kwargs)
        _flatten("out", out, rec)
        if grad:
            scalar = _scalarise(out, seed)
            leaves = [kwargs[k] for k in grad]
            grads = (
                torch.autograd.grad(scalar, leaves, allow_unused=True)
                if scalar is not None
                else [None] * len(leaves)
            )
            for k, g in zip(grad, grads):
                if g is None:
                    rec.meta[f"grad.{k}"] = "none"
                else:
                    rec.arrays[f"grad.{k}"] = g.detach().to(torch.float64).numpy().copy()
    except Exception as exc:  # noqa: BLE001 - recorded, judged outside
        rec.meta["error"] = f"{type(exc).__name__}: {exc}"[:500]
    modified = [k for k, b in before.items() if not _same(b, kwargs[k])]
    rec.meta["modified"] = modified
    # The inputs as the call left them, judged outside (the kernel may have patched torch.equal).
    for k in before:
        v = kwargs[k]
        if isinstance(v, np.ndarray) and v.dtype.kind not in "biuf":
            continue
        after = v.detach().cpu().to(torch.float64).numpy() if isinstance(v, torch.Tensor) else v
        rec.arrays[f"input.{k}"] = np.array(after, dtype=np.float64, copy=True)
    return rec


def _same(a: Any, b: Any) -> bool:
    """Equal shapes and values, NaN equal to NaN (tensors or arrays)."""
    if a.shape != b.shape:
        return False
    if isinstance(a, torch.Tensor):
        b = b.detach()
        if a.is_floating_point():
            return bool(
                torch.equal(a.isnan(), b.isnan()) and torch.equal(a.nan_to_num(0), b.nan_to_num(0))
            )
        return bool(torch.equal(a, b))
    return bool(np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"))


def grade(
    name: str,
    fn: Callable,
    cases: Iterable[Case],
    grad: Sequence[str] = (),
    hint: str = "",
    atol: float = 1e-5,
    rtol: float = 1e-4,
    mistakes: Mapping[str, Callable] | None = None,
    vectorised: bool = False,
    defines: str | None = None,
    given: Sequence[str] = (),
    probe: Callable | None = None,
) -> None:
    """Run ``fn`` on every case and record the results for the autograder.

    ``mistakes`` maps the description of a classic mistake to a wrong
    implementation: when a submission matches one, its feedback names the mistake.
    The autograder also checks that the submission defines the exercise in a cell of
    its own (``defines``, by default ``name`` when it is an identifier: "pca_fit", not
    "pca_fit leaves X unchanged"), and with ``vectorised`` that the definition has no
    Python loop or comprehension.

    ``given`` names earlier exercises that ``fn`` builds on (``vae_loss`` on
    ``kl_divergence``): while the cases run they are bound, in the notebook's namespace, to
    the reference implementations, so an earlier mistake is not paid for twice. The grader
    supplies those implementations at grading time (see :data:`GIVEN_NAME`); under ``nbgrader
    validate`` of the solution the notebook's own definitions are the reference already.

    ``probe(fn, **case)`` runs the exercise inside a harness (build a class with seeded weights
    and run it, set a seed first, train a tiny model for one epoch) and returns what to record.
    The ``mistakes`` are then written as a student would write the exercise itself, and go
    through the same probe, so each one can also be submitted as an answer.
    """
    occurrence = _counts.get(name, 0)
    _counts[name] = occurrence + 1
    out_dir = os.environ.get("COURSE_RECORD_DIR")
    errors = []
    target = defines or (name if name.isidentifier() else None)
    run = fn if probe is None else functools.partial(probe, fn)
    with _given(fn, given):
        for i, c in enumerate(cases):
            rec = run_case(run, c, grad, seed=1000 + i)
            rec.meta.update(name=name, hint=hint, atol=atol, rtol=rtol)
            if target:
                rec.meta.update(defines=target, vectorised=bool(vectorised))
            if given:
                rec.meta["given"] = list(given)
            for j, (label, wrong) in enumerate((mistakes or {}).items()):
                rec.meta[f"mistake.{j}"] = label
                wrong_run = wrong if probe is None else functools.partial(probe, wrong)
                wrong_rec = run_case(wrong_run, c, (), seed=1000 + i)
                for key, arr in wrong_rec.arrays.items():
                    rec.arrays[f"mistake.{j}.{key}"] = arr
            if "error" in rec.meta:
                errors.append(f"case {i} ({c.desc}): {rec.meta['error']}")
            if out_dir:
                save_record(Path(out_dir) / f"{name}#{occurrence}#{i}.npz", rec)
    if errors and not out_dir:
        raise AssertionError(f"{name} failed on hidden cases:\n" + "\n".join(errors))


#: The dict, in the notebook's namespace, of reference implementations of earlier exercises
#: that the grader binds at grading time (name -> function or class).
GIVEN_NAME = "__course_given__"


@contextmanager
def _given(fn: Callable, names: Sequence[str]):
    """Bind ``names`` in ``fn``'s module namespace to the grader's reference versions."""
    namespace = getattr(fn, "__globals__", None)
    if namespace is None:  # a class or a callable object: its module's namespace
        module = sys.modules.get(getattr(fn, "__module__", ""), None)
        namespace = getattr(module, "__dict__", None)
    supplied = (namespace or {}).get(GIVEN_NAME) or {}
    swap = {n: supplied[n] for n in names if n in supplied}
    missing = object()
    saved = {n: namespace.get(n, missing) for n in swap} if namespace is not None else {}
    try:
        if namespace is not None:
            namespace.update(swap)
        yield
    finally:
        for n, v in saved.items():
            if v is missing:
                namespace.pop(n, None)
            else:
                namespace[n] = v
