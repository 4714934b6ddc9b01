"""Helpers for the course notebooks: data, models, training, plots and checks.

Nothing in this package answers an exercise: the notebooks ask students to write
those, and the tests compare them with the reference solutions.
"""

from helpers.settings import configure, get_device, is_fast, seed_everything

__all__ = ["configure", "get_device", "is_fast", "seed_everything"]
