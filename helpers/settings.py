"""Run-time settings: seeding, device choice and fast mode.

Fast mode shrinks every notebook to a smoke run of a few seconds. It is on when
``COURSE_FAST=1`` or when nbgrader executes the notebook (it sets
``NBGRADER_EXECUTION`` during ``validate`` and ``autograde``).
"""

from __future__ import annotations

import dataclasses
import os
import random
from typing import Any, TypeVar

import numpy as np
import torch

T = TypeVar("T")

_TRUE = {"1", "true", "yes", "on"}


def is_fast() -> bool:
    """True when notebooks should run in their small, quick configuration."""
    if os.environ.get("NBGRADER_EXECUTION"):
        return True
    return os.environ.get("COURSE_FAST", "").strip().lower() in _TRUE


def is_offline() -> bool:
    """True when no download may be attempted (fast mode, or ``COURSE_OFFLINE=1``)."""
    return is_fast() or os.environ.get("COURSE_OFFLINE", "").strip().lower() in _TRUE


def seed_everything(seed: int = 0) -> None:
    """Seed Python, NumPy and torch (all devices) so a run can be repeated."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def get_device(prefer: str | None = None) -> torch.device:
    """The best device available now: cuda, then mps, then cpu.

    ``prefer`` (or the ``COURSE_DEVICE`` variable) forces one, e.g. ``"cpu"``.
    """
    choice = prefer or os.environ.get("COURSE_DEVICE")
    if choice:
        return torch.device(choice)
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def configure(config: T, fast: dict[str, Any] | None = None, **overrides: Any) -> T:
    """Return the settings a notebook should run with.

    ``config`` is a frozen dataclass with the full-size values; ``fast`` holds the
    fields that shrink in fast mode; ``overrides`` always apply. The result is a
    new frozen instance, so a notebook's settings cannot drift while it runs.
    """
    if not dataclasses.is_dataclass(config) or isinstance(config, type):
        raise TypeError("configure() takes a dataclass instance, e.g. Config()")
    unknown = (set(fast or {}) | set(overrides)) - {f.name for f in dataclasses.fields(config)}
    if unknown:
        raise TypeError(f"unknown setting(s) {sorted(unknown)} for {type(config).__name__}")
    changes = dict(fast or {}) if is_fast() else {}
    changes.update(overrides)
    return dataclasses.replace(config, **changes)
