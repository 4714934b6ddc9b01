"""Checks used by the visible test cells of the notebooks.

Every failure says what was expected, what came back, on what input, and a hint at
the usual mistake, so a student can fix the answer without reading this file.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from helpers.selfcheck import loops_in_source


class CheckFailed(AssertionError):
    """A visible test failed; the message explains why."""


def _fmt(value: Any, limit: int = 6) -> str:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu()
        if value.dim() == 0:
            return f"{value.item():.6g} ({value.dtype})"
        flat = value.flatten()[:limit].tolist()
        body = ", ".join(f"{v:.4g}" if isinstance(v, float) else str(v) for v in flat)
        more = ", ..." if value.numel() > limit else ""
        return f"tensor([{body}{more}]) of shape {tuple(value.shape)} ({value.dtype})"
    if isinstance(value, np.ndarray):
        return _fmt(torch.from_numpy(np.ascontiguousarray(value)), limit)
    return repr(value)


def fail(what: str, expected: Any, got: Any, inputs: str = "", hint: str = "") -> None:
    """Raise a :class:`CheckFailed` with the standard four-part message."""
    lines = [f"{what}:", f"  expected: {expected}", f"  got:      {got}"]
    if inputs:
        lines.append(f"  input:    {inputs}")
    if hint:
        lines.append(f"  hint:     {hint}")
    raise CheckFailed("\n".join(lines))


def _as_tensor(value: Any) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    return torch.as_tensor(np.asarray(value))


def check_close(
    got: Any,
    expected: Any,
    name: str = "value",
    inputs: str = "",
    hint: str = "",
    atol: float = 1e-5,
    rtol: float = 1e-4,
    classic: dict[str, Any] | None = None,
) -> None:
    """``got`` equals ``expected`` up to tolerance, with the same shape.

    ``classic`` maps a classic mistake (the idea, in words) to the value it gives on this
    input: when ``got`` equals one, the failure names that mistake instead of the general hint.
    """
    if not isinstance(got, torch.Tensor | np.ndarray | float | int | np.floating):
        fail(f"{name} has the wrong type", "a tensor or number", type(got).__name__, inputs, hint)
    g, e = _as_tensor(got).double(), _as_tensor(expected).double()
    if g.shape != e.shape:
        fail(f"{name} has the wrong shape", tuple(e.shape), tuple(g.shape), inputs, hint)
    if not torch.allclose(g, e, atol=atol, rtol=rtol, equal_nan=False):
        diff = (g - e).abs().nan_to_num(float("inf")).max().item()
        for label, value in (classic or {}).items():
            w = _as_tensor(value).double()
            if w.shape == g.shape and torch.allclose(g, w, atol=atol, rtol=rtol):
                what = f"{name} is wrong: this looks like a classic mistake, {label}"
                fail(what, _fmt(e), _fmt(g), inputs, hint)
        fail(f"{name} is wrong (max abs diff {diff:.3g})", _fmt(e), _fmt(g), inputs, hint)


def check_shape(t: Any, shape: Sequence[int], name: str = "output", hint: str = "") -> None:
    """``t`` is a tensor or array of exactly ``shape``."""
    got = tuple(getattr(t, "shape", ())) if hasattr(t, "shape") else type(t).__name__
    if got != tuple(shape):
        fail(f"{name} has the wrong shape", tuple(shape), got, hint=hint)


def check_dtype(t: torch.Tensor, dtype: torch.dtype, name: str = "output", hint: str = "") -> None:
    """``t`` is a tensor of ``dtype``."""
    if not isinstance(t, torch.Tensor) or t.dtype != dtype:
        fail(f"{name} has the wrong dtype", dtype, getattr(t, "dtype", type(t).__name__), hint=hint)


def check_scalar_loss(loss: Any, name: str = "loss", dtype: torch.dtype | None = None) -> None:
    """A loss is a 0-dim tensor that can be back-propagated through."""
    if not isinstance(loss, torch.Tensor):
        fail(
            f"{name} must be a tensor",
            "torch.Tensor",
            type(loss).__name__,
            hint="return the torch expression itself, not .item() or a NumPy value",
        )
    if loss.dim() != 0:
        fail(
            f"{name} must be a 0-dim tensor",
            "shape ()",
            tuple(loss.shape),
            hint="reduce with .mean() or .sum() as the formula says",
        )
    if dtype is not None and loss.dtype != dtype:
        fail(f"{name} changed the dtype", dtype, loss.dtype, hint="avoid .float() / np conversions")


def check_grad_flows(loss: torch.Tensor, tensor: torch.Tensor, name: str = "loss") -> None:
    """``loss`` is differentiable with respect to ``tensor`` (a leaf with requires_grad)."""
    if not loss.requires_grad:
        fail(
            f"{name} is not differentiable",
            "a result with requires_grad=True",
            "requires_grad=False",
            hint="no .detach(), .item(), .numpy() or torch.no_grad() inside the function",
        )
    (grad,) = torch.autograd.grad(loss, tensor, allow_unused=True)
    if grad is None or not torch.isfinite(grad).all():
        fail(f"{name} gradient", "finite gradient", _fmt(grad), hint="clamp before taking a log")


def check_unchanged(fn: Callable, *args: Any, name: str | None = None, **kwargs: Any) -> Any:
    """Call ``fn`` and check that no tensor argument was modified in place."""
    before = [a.detach().clone() if isinstance(a, torch.Tensor) else None for a in args]
    out = fn(*args, **kwargs)
    for i, (a, b) in enumerate(zip(args, before)):
        if b is not None and not torch.equal(a.detach(), b):
            fail(
                f"{name or fn.__name__} modified argument {i} in place",
                "the input left as it was",
                "changed values",
                hint="use out-of-place operations (x + y, not x += y or x.clamp_())",
            )
    return out


def check_vectorised(fn: Callable) -> None:
    """``fn``'s body has no ``for``/``while`` loop and no comprehension."""
    try:
        source = inspect.getsource(fn)
    except (OSError, TypeError):
        fail(
            f"{getattr(fn, '__name__', fn)} source",
            "a function defined in a cell",
            "no source",
            hint="define the function with def in a notebook cell and run that cell",
        )
    loops = loops_in_source(source)
    if loops:
        fail(
            f"{fn.__name__} is not vectorised",
            "no Python loop or comprehension",
            ", ".join(loops),
            hint="operate on the whole batch at once: reductions take a dim= argument",
        )


def check_defined_here(obj: Any, name: str | None = None) -> None:
    """``obj`` was written in this notebook, not imported from a package."""
    module = getattr(obj, "__module__", None)
    if module != "__main__":
        fail(
            f"{name or getattr(obj, '__name__', obj)} must be your own definition",
            "defined in a cell of this notebook",
            f"imported from {module}",
            hint="write the function or class in the answer cell above",
        )


def check_raises(exc: type[BaseException], fn: Callable, *args: Any, hint: str = "", **kw) -> None:
    """``fn(*args, **kw)`` raises ``exc``."""
    try:
        fn(*args, **kw)
    except exc:
        return
    except Exception as other:  # noqa: BLE001 - reported to the student
        fail(f"{fn.__name__} raised the wrong error", exc.__name__, repr(other), hint=hint)
    fail(f"{fn.__name__} did not raise", exc.__name__, "no exception", hint=hint)
