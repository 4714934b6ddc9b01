"""autograder.gradebook against nbgrader's Gradebook on SQLite and on a real PostgreSQL.

The PostgreSQL server is a throwaway one started for this module (initdb + pg_ctl, trust
auth on 127.0.0.1, a free port); the tests skip it only when no PostgreSQL binaries exist.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import glob
import importlib.util
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import nbformat
import pytest
from nbgrader import api as nbgrader_api

from autograder import gradebook, paths
from autograder.release import prepare_source
from autograder.restore import is_test

A = "04_sparse_autoencoder"
PG_TOOLS = ("initdb", "pg_ctl", "postgres")
# SQLAlchemy >= 2.1 maps a plain postgresql:// URL to psycopg (3); psycopg2 needs its name.
HAVE_PSYCOPG3 = importlib.util.find_spec("psycopg") is not None


@pytest.fixture(scope="module", autouse=True)
def _alembic_version_once():
    """nbgrader runs ``alembic heads`` in a subprocess for every new gradebook (seconds each);
    its answer never changes within a run, so ask once. Gradebook creation is otherwise real."""
    original = nbgrader_api.get_alembic_version
    nbgrader_api.get_alembic_version = functools.cache(original)
    yield
    nbgrader_api.get_alembic_version = original


# --------------------------------------------------------------------------- PostgreSQL


def _pg_bindir() -> Path | None:
    """A folder holding initdb, pg_ctl and postgres, or None."""
    candidates = []
    for tool in PG_TOOLS:
        found = shutil.which(tool)
        if found:
            candidates.append(Path(found).resolve().parent)
    candidates += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)]
    candidates += [Path("/usr/local/pgsql/bin"), Path("/opt/homebrew/bin")]
    for d in candidates:
        if all((d / t).is_file() and os.access(d / t, os.X_OK) for t in PG_TOOLS):
            return d
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_db_user() -> tuple[list[str], pwd.struct_passwd | None]:
    """The command prefix that runs a PostgreSQL tool as a non-root user (postgres refuses root)."""
    if os.geteuid() != 0:
        return [], None
    try:
        user = pwd.getpwnam("postgres")
    except KeyError:
        pytest.skip(
            "running as root and there is no 'postgres' user to run the PostgreSQL server as"
        )
    if shutil.which("runuser"):
        return ["runuser", "-u", "postgres", "--"], user
    if shutil.which("setpriv"):
        return [
            "setpriv",
            f"--reuid={user.pw_uid}",
            f"--regid={user.pw_gid}",
            "--init-groups",
        ], user
    pytest.skip(
        "running as root and neither runuser nor setpriv is available to drop to 'postgres'"
    )


@pytest.fixture(scope="module")
def postgres_server():
    """postgresql://postgres@127.0.0.1:PORT/postgres of a fresh server, removed afterwards."""
    bindir = _pg_bindir()
    if bindir is None:
        pytest.skip(
            "no PostgreSQL binaries (initdb, pg_ctl, postgres) found on PATH or in "
            "/usr/lib/postgresql/*/bin"
        )
    prefix, user = _as_db_user()
    base = Path(tempfile.mkdtemp(prefix="autograder-pg-"))
    if user is not None:
        os.chown(base, user.pw_uid, user.pw_gid)
    data, log = base / "data", base / "server.log"
    env = {**os.environ, "LC_ALL": "C", "LANG": "C"}

    def pg(*args, **kw):
        return subprocess.run(
            [*prefix, *map(str, args)], capture_output=True, text=True, env=env, timeout=120, **kw
        )

    started = False
    try:
        r = pg(
            bindir / "initdb",
            "-D",
            data,
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        )
        if r.returncode != 0:
            pytest.fail(f"initdb failed:\n{r.stdout}\n{r.stderr}")
        for _attempt in range(5):  # the free port may be taken between probing and binding
            port = _free_port()
            opts = (
                f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off "
                "-c full_page_writes=off -c synchronous_commit=off"
            )
            r = pg(bindir / "pg_ctl", "-D", data, "-l", log, "-o", opts, "-w", "-t", "60", "start")
            if r.returncode == 0:
                started = True
                break
        if not started:
            text = log.read_text() if log.exists() else ""
            pytest.fail(f"pg_ctl start failed:\n{r.stdout}\n{r.stderr}\n{text[-2000:]}")
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        if started:
            pg(bindir / "pg_ctl", "-D", data, "-m", "fast", "-w", "stop")
        shutil.rmtree(base, ignore_errors=True)


@contextlib.contextmanager
def _fresh_pg_database(server_url: str, driver: str | None = "psycopg2"):
    """A new, empty database on the throwaway server, dropped afterwards.

    Its URL names the driver (``postgresql+psycopg2://``) unless ``driver`` is None.
    """
    import psycopg2

    name = f"gb_{uuid.uuid4().hex[:12]}"
    conn = psycopg2.connect(server_url)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        url = server_url.rsplit("/", 1)[0] + "/" + name
        yield url.replace("postgresql://", f"postgresql+{driver}://", 1) if driver else url
        with conn.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        conn.close()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request, tmp_path):
    """An empty gradebook: a SQLite file, or a fresh database on the PostgreSQL server."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'gradebook.db'}"
    else:
        with _fresh_pg_database(request.getfixturevalue("postgres_server")) as url:
            yield url


# --------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    return prepare_source(A, tmp_path_factory.mktemp("course"))


def _points(path: Path) -> dict[str, float]:
    nb = nbformat.read(path, as_version=4)
    return {
        c.metadata["nbgrader"]["grade_id"]: float(c.metadata["nbgrader"].get("points", 0))
        for c in nb.cells
        if is_test(c)
    }


@pytest.fixture(scope="module")
def points(source) -> dict[str, float]:
    pts = _points(source)
    assert len(pts) >= 2, "the source needs at least two graded test cells for these tests"
    return pts


def result(student, points, earned=None, assignment=A, status="graded") -> dict:
    """A worker-shaped result; ``earned`` maps grade ids to points (default: full marks)."""
    earned = dict(points) if earned is None else earned
    tests = {
        gid: {
            "points": float(earned.get(gid, 0.0)),
            "max_points": p,
            "passed": earned.get(gid, 0.0) == p,
            "messages": [],
        }
        for gid, p in points.items()
    }
    return {
        "student_id": student,
        "assignment": assignment,
        "status": status,
        "reason": "",
        "score": sum(t["points"] for t in tests.values()),
        "max_score": sum(points.values()),
        "tests": tests,
        "notes": [],
        "flags": [],
        "seconds": 1.0,
    }


TABLES = (
    "assignment",
    "notebook",
    "grade_cells",
    "student",
    "submitted_assignment",
    "submitted_notebook",
    "grade",
)


def row_counts(url: str) -> dict[str, int]:
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return {
                t: conn.execute(sa.text(f"SELECT COUNT(*) FROM {t}")).scalar_one() for t in TABLES
            }
    finally:
        engine.dispose()


def auto_scores(url: str, student: str) -> dict[str, tuple[float | None, bool]]:
    from nbgrader.api import Gradebook

    with Gradebook(url) as gb:
        sub = gb.find_submission(A, student)
        return {
            g.name: (g.auto_score, g.needs_manual_grade) for nb in sub.notebooks for g in nb.grades
        }


# --------------------------------------------------------------------------- record / scores


def test_record_stores_totals(db_url, source, points):
    total = sum(points.values())
    first, *rest = points
    partial = {first: points[first]}  # only the first test passed
    stored = gradebook.record(
        db_url, {A: source}, [result("alice", points), result("bob", points, partial)]
    )
    assert stored == 2
    assert gradebook.scores(db_url) == {("alice", A): total, ("bob", A): points[first]}

    counts = row_counts(db_url)
    assert counts["assignment"] == 1 and counts["notebook"] == 1
    assert counts["grade_cells"] == len(points)
    assert counts["student"] == 2 and counts["submitted_assignment"] == 2
    assert counts["submitted_notebook"] == 2
    assert counts["grade"] == 2 * len(points)

    from nbgrader.api import Gradebook

    with Gradebook(db_url) as gb:
        assert gb.find_assignment(A).max_score == pytest.approx(total)
        assert {c.name: c.max_score for c in gb.find_notebook(A, A).grade_cells} == points
    bob = auto_scores(db_url, "bob")
    assert bob[first] == (points[first], False)
    assert all(bob[g] == (0.0, False) for g in rest)


def test_regrade_is_idempotent(db_url, source, points):
    results = [result("alice", points), result("bob", points, {next(iter(points)): 1.0})]
    gradebook.record(db_url, {A: source}, results)
    before, counts = gradebook.scores(db_url), row_counts(db_url)
    for _ in range(2):  # a regrade, then a resumed run
        assert gradebook.record(db_url, {A: source}, copy.deepcopy(results)) == 2
        assert gradebook.scores(db_url) == before
        assert row_counts(db_url) == counts


def test_updated_score_replaces_the_old_one(db_url, source, points):
    gradebook.record(db_url, {A: source}, [result("alice", points), result("bob", points, {})])
    assert gradebook.scores(db_url)[("bob", A)] == 0.0
    counts = row_counts(db_url)

    last = list(points)[-1]
    gradebook.record(db_url, {A: source}, [result("bob", points, {last: points[last] / 2})])
    assert gradebook.scores(db_url) == {
        ("alice", A): sum(points.values()),
        ("bob", A): points[last] / 2,
    }
    assert auto_scores(db_url, "bob")[last] == (points[last] / 2, False)
    assert row_counts(db_url) == counts


def test_unknown_assignment_and_empty_results_are_skipped(db_url, source, points):
    results = [
        result("alice", points),
        result("mallory", points, assignment="99_not_an_assignment", status="unknown_assignment"),
        {**result("bob", points), "status": "invalid_notebook", "tests": {}, "score": 0.0},
        {**result("carol", points), "status": "grader_error", "tests": None},
        {k: v for k, v in result("dave", points).items() if k != "tests"},
    ]
    assert gradebook.record(db_url, {A: source}, results) == 1
    assert gradebook.scores(db_url) == {("alice", A): sum(points.values())}
    counts = row_counts(db_url)
    assert counts["student"] == 1 and counts["submitted_assignment"] == 1
    assert counts["assignment"] == 1  # the unknown assignment is not created


def test_assignment_is_registered_without_results(db_url, source, points):
    assert gradebook.record(db_url, {A: source}, []) == 0
    assert gradebook.scores(db_url) == {}
    counts = row_counts(db_url)
    assert counts["assignment"] == 1 and counts["grade_cells"] == len(points)
    assert counts["submitted_assignment"] == 0


def test_default_db_url_is_sqlite_in_the_output_folder(tmp_path, source, points):
    url = gradebook.default_db_url(tmp_path)
    assert url == f"sqlite:///{tmp_path.resolve() / 'gradebook.db'}"
    gradebook.record(url, {A: source}, [result("alice", points)])
    assert (tmp_path / "gradebook.db").is_file()
    assert gradebook.scores(url) == {("alice", A): sum(points.values())}


def _edited_source(
    source: Path, dest: Path, add: str | None = None, drop: str | None = None
) -> Path:
    nb = nbformat.read(source, as_version=4)
    if drop:
        nb.cells = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") != drop]
    if add:
        cell = nbformat.v4.new_code_cell(f"# Tests: {add}\nassert True")
        cell.metadata["nbgrader"] = {
            "grade": True,
            "grade_id": add,
            "locked": True,
            "points": 1,
            "schema_version": 3,
            "solution": False,
            "task": False,
        }
        nb.cells.insert(-1, cell)
    dest.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, dest)
    return dest


def test_regrade_after_a_test_cell_was_added(db_url, source, points, tmp_path):
    gradebook.record(db_url, {A: source}, [result("alice", points)])
    newer = _edited_source(source, tmp_path / "v2" / f"{A}.ipynb", add="test_extra")
    pts2 = _points(newer)
    assert gradebook.record(db_url, {A: newer}, [result("alice", pts2)]) == 1
    assert gradebook.scores(db_url) == {("alice", A): sum(pts2.values())}


def test_regrade_after_a_test_cell_was_removed(db_url, source, points, tmp_path):
    gradebook.record(db_url, {A: source}, [result("alice", points)])
    gone = list(points)[-1]
    newer = _edited_source(source, tmp_path / "v2" / f"{A}.ipynb", drop=gone)
    pts2 = _points(newer)
    assert gone not in pts2
    gradebook.record(db_url, {A: newer}, [result("alice", pts2)])
    assert gradebook.scores(db_url) == {("alice", A): sum(pts2.values())}


@pytest.mark.postgres
def test_plain_postgresql_url_as_documented(postgres_server, source, points):
    with _fresh_pg_database(postgres_server, driver=None) as url:
        assert url.startswith("postgresql://")
        gradebook.record(url, {A: source}, [result("alice", points)])
        assert gradebook.scores(url) == {("alice", A): sum(points.values())}


# --------------------------------------------------------------------------- the grader CLI


def _grade_cli(subs: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "autograder",
            "grade",
            str(subs),
            "--out",
            str(out),
            "--jobs",
            "2",
            *extra,
        ],
        cwd=paths.ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )


@pytest.fixture
def short_tmp():
    """A short folder: the kernels' IPC sockets live below --out (see the long-path test)."""
    d = Path(tempfile.mkdtemp(prefix="ag-", dir="/tmp"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.mark.slow
@pytest.mark.postgres
def test_grade_cli_writes_to_postgresql(postgres_server, short_tmp):
    subs = short_tmp / "subs"
    (subs / "broken").mkdir(parents=True)
    (subs / "broken" / f"{A}.ipynb").write_text("{ this is not json")
    (subs / "perfect").mkdir()
    shutil.copy(paths.SOLUTIONS / f"{A}.ipynb", subs / "perfect" / f"{A}.ipynb")
    out = short_tmp / "out"
    total = sum(_points(paths.SOLUTIONS / f"{A}.ipynb").values())

    with _fresh_pg_database(postgres_server) as url:
        proc = _grade_cli(subs, out, "--db", url)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        assert gradebook.scores(url) == {("perfect", A): total}
        assert row_counts(url)["submitted_assignment"] == 1  # the broken file has no tests
    assert not (out / "gradebook.db").exists()  # --db replaced the default SQLite file
    grades = (out / "grades.csv").read_text()
    assert "invalid_notebook" in grades and "perfect" in grades


@pytest.mark.slow
def test_grade_cli_long_student_name(short_tmp):
    name = "Maria Fernanda de los Angeles Gonzalez Rodriguez y Fernandez de Cordoba Montoya"
    folder = short_tmp / "subs" / f"{name}_123456_assignsubmission_file_"
    folder.mkdir(parents=True)
    shutil.copy(paths.SOLUTIONS / f"{A}.ipynb", folder / f"{A}.ipynb")
    out = short_tmp / "out"
    proc = _grade_cli(short_tmp / "subs", out)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    total = sum(_points(paths.SOLUTIONS / f"{A}.ipynb").values())
    [((student, assignment), score)] = gradebook.scores(gradebook.default_db_url(out)).items()
    assert student.startswith("Maria_Fernanda_de_los_Angeles")
    assert (assignment, score) == (A, total)


def test_scores_of_a_new_gradebook_without_the_venv_on_path(tmp_path):
    url = f"sqlite:///{tmp_path / 'new.db'}"
    code = f"from autograder import gradebook; print(gradebook.scores({url!r}))"
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=paths.ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "{}"
