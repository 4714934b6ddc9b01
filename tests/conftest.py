"""Shared test settings: one reference-record cache for every grading run of the session."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session", autouse=True)
def _shared_reference_cache(tmp_path_factory):
    cache = tmp_path_factory.mktemp("reference-cache")
    old = os.environ.get("COURSE_REFERENCE_CACHE")
    os.environ["COURSE_REFERENCE_CACHE"] = str(cache)
    yield cache
    if old is None:
        os.environ.pop("COURSE_REFERENCE_CACHE", None)
    else:
        os.environ["COURSE_REFERENCE_CACHE"] = old
