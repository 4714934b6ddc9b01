"""Helpers for the course notebooks: data, models, training, plots and checks.

Nothing in this package answers an exercise: the notebooks ask students to write
those, and the tests compare them with the reference solutions.

The names below are imported on first use, so that tools which need only a torch-free
module (the grader reads records with :mod:`helpers.records`) start quickly.
"""

from __future__ import annotations

import importlib

__all__ = ["configure", "get_device", "is_fast", "seed_everything"]


def __getattr__(name: str):
    if name in __all__:
        return getattr(importlib.import_module("helpers.settings"), name)
    raise AttributeError(f"module 'helpers' has no attribute {name!r}")
