"""The reference solutions, extracted from ``solutions/`` (never from ``helpers``).

Trusted code only: used by the tests, the benchmarks and the instructor's tools,
never inside a student's kernel.
"""

from __future__ import annotations

import linecache
import re
from pathlib import Path
from types import SimpleNamespace

import nbformat

from autograder import paths

_MARKERS = re.compile(r"^\s*### (BEGIN|END) (SOLUTION|HIDDEN TESTS)\s*$", re.M)


def cells_of(name: str, kind: str, directory: Path | None = None) -> list[nbformat.NotebookNode]:
    """Code cells of a solution notebook: ``kind`` is "solution", "test" or "code" (all)."""
    nb = nbformat.read(Path(directory or paths.SOLUTIONS) / f"{name}.ipynb", as_version=4)
    out = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        meta = cell.metadata.get("nbgrader", {})
        if (
            kind == "code"
            or (kind == "solution" and meta.get("solution"))
            or (kind == "test" and meta.get("grade") and not meta.get("solution"))
        ):
            out.append(cell)
    return out


def solution_namespace(name: str, extra: dict | None = None) -> SimpleNamespace:
    """Execute the answer cells of ``solutions/<name>.ipynb`` and return what they define.

    The cells run after the notebook's plain imports (the cell that follows the
    setup cell), so the answers see ``torch``, ``F``, ``nn`` and friends.
    """
    ns: dict = dict(extra or {})
    exec(
        "import numpy as np\nimport torch\nimport torch.nn.functional as F\nfrom torch import nn\n",
        ns,
    )
    for cell in cells_of(name, "solution"):
        src = _MARKERS.sub("", cell.source)
        fname = f"<{name}:{cell.metadata['nbgrader']['grade_id']}>"
        linecache.cache[fname] = (
            len(src),
            None,
            src.splitlines(True),
            fname,
        )  # for inspect.getsource
        exec(compile(src, fname, "exec"), ns)
    return SimpleNamespace(**{k: v for k, v in ns.items() if not k.startswith("__")})
