"""Where the course lives on disk, and the one place the repository address is set."""

from __future__ import annotations

import os
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = ROOT / "solutions"
NOTEBOOKS = ROOT / "notebooks"
COURSE = Path(os.environ.get("COURSE_GRADER_DIR", ROOT / "autograder" / "course"))
REPO_PLACEHOLDER = "{{COURSE_REPO}}"


def course_repo() -> str:
    """The repository address, from ``[project.urls] Repository`` in pyproject.toml."""
    text = (ROOT / "pyproject.toml").read_text()
    m = re.search(r'^Repository\s*=\s*"([^"]+)"', text, re.M)
    if not m:
        raise RuntimeError("pyproject.toml has no [project.urls] Repository entry")
    return m.group(1)


def assignments(directory: Path = SOLUTIONS) -> list[str]:
    """Assignment names: the stems of ``NN_name.ipynb`` files, in course order."""
    return sorted(p.stem for p in directory.glob("[0-9][0-9]_*.ipynb"))
