"""Release: ``solutions/NN_name.ipynb`` -> ``notebooks/NN_name.ipynb`` through nbgrader.

Each notebook is its own nbgrader assignment, named after its stem. The source copy
gets the repository address filled in; ``nbgrader generate_assignment`` strips the
solutions and hidden tests and records the assignment in the gradebook.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import nbformat

from autograder import paths

CONFIG_FILE = Path(__file__).with_name("nbgrader_config.py")


def nbgrader_config(db_url: str | None = None, root: Path | None = None):
    """The course's nbgrader settings (``autograder/nbgrader_config.py``), re-rooted if asked."""
    from traitlets.config.loader import PyFileConfigLoader

    c = PyFileConfigLoader(CONFIG_FILE.name, str(CONFIG_FILE.parent)).load_config()
    if root is not None:
        c.CourseDirectory.root = str(root)
    if db_url:
        from autograder.gradebook import engine_url  # psycopg2 for postgresql:// URLs

        c.CourseDirectory.db_url = engine_url(db_url)
    else:
        c.CourseDirectory.db_url = f"sqlite:///{Path(c.CourseDirectory.root) / 'gradebook.db'}"
    c.Exchange.assignment_dir = c.CourseDirectory.root
    return c


def ensure_env_on_path() -> None:
    """nbgrader runs ``alembic`` to create a gradebook: put this environment's bin/ first."""
    bindir = str(Path(sys.executable).parent)
    if os.environ.get("PATH", "").split(os.pathsep)[0] != bindir:
        os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")


def prepare_source(name: str, root: Path) -> Path:
    """Copy ``solutions/<name>.ipynb`` into the course's ``source/`` with the repo URL set."""
    nb = nbformat.read(paths.SOLUTIONS / f"{name}.ipynb", as_version=4)
    repo = paths.course_repo()
    for cell in nb.cells:
        cell.source = cell.source.replace(paths.REPO_PLACEHOLDER, repo)
    dest = root / "source" / name / f"{name}.ipynb"
    dest.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, dest)
    return dest


def release(
    names: list[str] | None = None,
    out: Path | None = None,
    db_url: str | None = None,
    root: Path | None = None,
) -> list[Path]:
    """Generate the student notebooks; returns the paths written."""
    from nbgrader.apps import NbGraderAPI

    ensure_env_on_path()
    config = nbgrader_config(db_url, root)
    root = Path(config.CourseDirectory.root)
    out = Path(out or paths.NOTEBOOKS)
    names = names or paths.assignments()
    root.mkdir(parents=True, exist_ok=True)
    api = NbGraderAPI(config=config)
    written = []
    for name in names:
        prepare_source(name, root)
        result = api.generate_assignment(name, force=True, create=True)
        if not result.get("success"):
            raise RuntimeError(
                f"nbgrader generate_assignment {name} failed:\n{result.get('error')}"
            )
        student = nbformat.read(root / "release" / name / f"{name}.ipynb", as_version=4)
        out.mkdir(parents=True, exist_ok=True)
        nbformat.write(student, out / f"{name}.ipynb")
        written.append(out / f"{name}.ipynb")
    shutil.rmtree(root / "release", ignore_errors=True)
    return written
