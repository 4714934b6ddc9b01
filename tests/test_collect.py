"""autograder.collect (layouts, names, duplicates, safe zip extraction) and autograder.restore."""

from __future__ import annotations

import copy
import os
import re
import stat
import zipfile
from pathlib import Path

import nbformat
import pytest

from autograder import collect as C
from autograder.collect import collect, extract_zip, slug
from autograder.release import prepare_source
from autograder.restore import is_test, restore, strip_hidden

A = "04_sparse_autoencoder"
B = "01_pca"
ASSIGNMENTS = [B, A]


def put(root: Path, rel: str, mtime: float | None = None, data: str = "{}") -> Path:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(data)
    if mtime is not None:
        os.utime(p, (mtime, mtime))
    return p


def lms(student: str, name: str, uid: str) -> bool:
    """An LMS student id: the slugged name, with or without the LMS user id after it."""
    return student in (name, f"{name}_{uid}")


def found(root: Path, assignments=ASSIGNMENTS) -> dict[str, tuple[str, str, str]]:
    """relative path -> (student, assignment, note), for every submission kept."""
    return {
        s.path.relative_to(root).as_posix(): (s.student, s.assignment, s.note)
        for s in collect(root, assignments)
    }


# --------------------------------------------------------------------------- layouts


def test_nbgrader_layout(tmp_path):
    put(tmp_path, f"alice/{A}/{A}.ipynb")
    put(tmp_path, f"bob/{B}/{B}.ipynb")
    put(tmp_path, f"carol/{A}/{A} (1).ipynb")  # an OS copy suffix is not a rename
    assert found(tmp_path) == {
        f"alice/{A}/{A}.ipynb": ("alice", A, ""),
        f"bob/{B}/{B}.ipynb": ("bob", B, ""),
        f"carol/{A}/{A} (1).ipynb": ("carol", A, ""),
    }


def test_nbgrader_layout_renamed_notebook_is_graded_and_noted(tmp_path):
    put(tmp_path, f"alice/{A}/my_work.ipynb")
    [(student, assignment, note)] = found(tmp_path).values()
    assert (student, assignment) == ("alice", A)
    assert note == "notebook renamed to 'my_work.ipynb'"


def test_nbgrader_layout_unknown_assignment_folder(tmp_path):
    put(tmp_path, "alice/99_unknown/99_unknown.ipynb")
    assert found(tmp_path) == {
        "alice/99_unknown/99_unknown.ipynb": ("alice", "", "unknown assignment folder '99_unknown'")
    }


def test_per_student_layout(tmp_path):
    put(tmp_path, f"alice/{A}.ipynb")
    put(tmp_path, f"bob/{A} (2).ipynb")
    put(tmp_path, f"carol/{B}-1.ipynb")
    put(tmp_path, f"dave/{A}_final_v3.ipynb")  # the name still holds the assignment
    assert found(tmp_path) == {
        f"alice/{A}.ipynb": ("alice", A, ""),
        f"bob/{A} (2).ipynb": ("bob", A, ""),
        f"carol/{B}-1.ipynb": ("carol", B, ""),
        f"dave/{A}_final_v3.ipynb": ("dave", A, ""),
    }


def test_per_student_unknown_assignment_is_noted(tmp_path):
    put(tmp_path, "alice/homework.ipynb")
    assert found(tmp_path) == {
        "alice/homework.ipynb": ("alice", "", "'homework.ipynb' matches no assignment")
    }


@pytest.mark.parametrize(
    "name, student, uid, assignment",
    [
        (f"doejane_12345_678901_{A}.ipynb", "doejane", "12345", A),
        (f"doejane_LATE_12345_678901_{A}-1.ipynb", "doejane", "12345", A),
        (f"smithjohn_7_8_{B}.ipynb", "smithjohn", "7", B),
        (f"smithjohn_LATE_7_9_{B} (1).ipynb", "smithjohn", "7", B),
    ],
)
def test_canvas_flat_names(tmp_path, name, student, uid, assignment):
    put(tmp_path, name)
    [(got, assignment_, note)] = found(tmp_path).values()
    assert lms(got, student, uid)
    assert (assignment_, note) == (assignment, "")


def test_canvas_unknown_assignment_keeps_the_student(tmp_path):
    name = "doejane_12345_678901_essay.ipynb"
    put(tmp_path, name)
    [(student, assignment, note)] = found(tmp_path).values()
    assert lms(student, "doejane", "12345")
    assert (assignment, note) == ("", f"'{name}' matches no assignment")


@pytest.mark.parametrize(
    "rel",
    [
        f"Jane Doe_123456_assignsubmission_file_{A}.ipynb",
        f"Jane Doe_123456_assignsubmission_file_/{A}.ipynb",
        f"Jane Doe_123456_assignsubmission_file_/{A} (1).ipynb",
    ],
)
def test_moodle_names(tmp_path, rel):
    put(tmp_path, rel)
    [(path, (student, assignment, note))] = found(tmp_path).items()
    assert path == rel
    assert lms(student, "Jane_Doe", "123456")
    assert (assignment, note) == (A, "")


def test_moodle_unknown_assignment(tmp_path):
    put(tmp_path, "Jane Doe_123456_assignsubmission_file_/essay.ipynb")
    [(student, assignment, note)] = found(tmp_path).values()
    assert lms(student, "Jane_Doe", "123456")
    assert (assignment, note) == ("", "'essay.ipynb' matches no assignment")


def test_mixed_layouts_in_one_folder(tmp_path):
    put(tmp_path, f"alice/{A}/{A}.ipynb")
    put(tmp_path, f"bob/{A}.ipynb")
    put(tmp_path, f"doecarol_1_2_{A}.ipynb")
    put(tmp_path, f"Dave Smith_42_assignsubmission_file_/{B}.ipynb")
    got = {s.student: s.assignment for s in collect(tmp_path, ASSIGNMENTS)}
    assert len(got) == 4
    assert got.pop("alice") == A and got.pop("bob") == A
    dave = next(s for s in got if s.startswith("Dave"))
    carol = next(s for s in got if s.startswith("doecarol"))
    assert lms(dave, "Dave_Smith", "42") and got[dave] == B
    assert lms(carol, "doecarol", "1") and got[carol] == A


def test_unattributable_paths_are_noted(tmp_path):
    put(tmp_path, f"{A}.ipynb")  # loose at the top, no LMS name
    put(tmp_path, f"a/b/c/{A}.ipynb")  # too deep
    got = found(tmp_path)
    assert set(got) == {f"{A}.ipynb", f"a/b/c/{A}.ipynb"}
    for student, assignment, note in got.values():
        assert assignment == ""
        assert note == "could not tell the student from the path"
        assert student == A


def test_hidden_files_checkpoints_macos_and_symlinks_are_ignored(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    put(root, f"alice/{A}.ipynb")
    put(root, f"alice/.ipynb_checkpoints/{A}-checkpoint.ipynb")
    put(root, f".hidden/{A}.ipynb")
    put(root, f"__MACOSX/alice/._{A}.ipynb")
    put(outside, f"{A}.ipynb")
    (root / "eve").mkdir()
    (root / "eve" / f"{A}.ipynb").symlink_to(outside / f"{A}.ipynb")  # a link to a file
    (root / "mallory").symlink_to(outside, target_is_directory=True)  # a link to a folder
    put(root, "notes.txt")
    assert found(root) == {f"alice/{A}.ipynb": ("alice", A, "")}


def test_student_ids_from_paths_are_slugged(tmp_path):
    put(tmp_path, f"Jane Doe/{A}.ipynb")
    put(tmp_path, f"-weird name!?/{A}.ipynb")
    put(tmp_path, f"Zoë/{A}.ipynb")
    students = sorted(s.student for s in collect(tmp_path, ASSIGNMENTS))
    assert students == sorted(["-weird_name", "Jane_Doe", slug("Zoë")])


# --------------------------------------------------------------------------- duplicates


def test_duplicates_latest_wins_and_is_noted(tmp_path):
    old = put(tmp_path, f"alice/{A}.ipynb", mtime=1_000_000)
    new = put(tmp_path, f"alice/{A}-1.ipynb", mtime=2_000_000)  # sorted first, but newer
    put(tmp_path, f"alice/{B}.ipynb", mtime=1_000_000)  # another assignment: not a duplicate
    put(tmp_path, f"bob/{A}.ipynb", mtime=500_000)  # another student: not a duplicate
    subs = {(s.student, s.assignment): s for s in collect(tmp_path, ASSIGNMENTS)}
    assert set(subs) == {("alice", A), ("alice", B), ("bob", A)}
    assert subs["alice", A].path == new
    assert subs["alice", A].note == f"also submitted {old.name} (ignored)"
    assert subs["alice", B].note == subs["bob", A].note == ""


def test_duplicates_latest_wins_when_it_sorts_last(tmp_path):
    old = put(tmp_path, f"alice/{A}-1.ipynb", mtime=1_000_000)
    new = put(tmp_path, f"alice/{A}.ipynb", mtime=2_000_000)
    [sub] = collect(tmp_path, ASSIGNMENTS)
    assert sub.path == new
    assert sub.note == f"also submitted {old.name} (ignored)"


def test_canvas_resubmission_latest_wins(tmp_path):
    first = put(tmp_path, f"doejane_12345_678901_{A}.ipynb", mtime=1_000_000)
    late = put(tmp_path, f"doejane_LATE_12345_678999_{A}-1.ipynb", mtime=2_000_000)
    [sub] = collect(tmp_path, ASSIGNMENTS)
    assert (sub.assignment, sub.path) == (A, late)
    assert lms(sub.student, "doejane", "12345")
    assert sub.note == f"also submitted {first.name} (ignored)"


def test_duplicate_keeps_its_own_note(tmp_path):
    put(tmp_path, f"alice/{A}.ipynb", mtime=1_000_000)
    put(tmp_path, f"alice/{A}/renamed.ipynb", mtime=2_000_000)
    [sub] = collect(tmp_path, ASSIGNMENTS)
    assert sub.path.name == "renamed.ipynb"
    assert sub.note == f"notebook renamed to 'renamed.ipynb'; also submitted {A}.ipynb (ignored)"


def test_unknown_assignments_are_never_deduplicated(tmp_path):
    put(tmp_path, "alice/essay.ipynb")
    put(tmp_path, "alice/poem.ipynb")
    assert [s.assignment for s in collect(tmp_path, ASSIGNMENTS)] == ["", ""]


def test_every_ignored_duplicate_is_noted(tmp_path):
    names = [f"{A}-1.ipynb", f"{A}-2.ipynb", f"{A}.ipynb"]  # collect's (sorted) order
    for i, name in enumerate(names):  # each newer than the one before
        put(tmp_path, f"alice/{name}", mtime=1_000_000 + i)
    [sub] = collect(tmp_path, ASSIGNMENTS)
    assert sub.path.name == names[-1]
    for name in names[:-1]:
        assert f"also submitted {name} (ignored)" in sub.note


@pytest.mark.parametrize(
    "first, second",
    [
        (
            f"Jane Doe_111111_assignsubmission_file_{A}.ipynb",
            f"Jane Doe_222222_assignsubmission_file_{A}.ipynb",
        ),
        (f"doejane_111_900_{A}.ipynb", f"doejane_222_901_{A}.ipynb"),
    ],
)
def test_lms_namesakes_are_different_students(tmp_path, first, second):
    put(tmp_path, first, mtime=1_000_000)
    put(tmp_path, second, mtime=2_000_000)
    subs = collect(tmp_path, ASSIGNMENTS)
    assert len(subs) == 2
    assert len({s.student for s in subs}) == 2


# --------------------------------------------------------------------------- slug

SAFE = re.compile(r"[A-Za-z0-9._-]{1,80}")


@pytest.mark.parametrize(
    "text",
    [
        "../../etc",
        "..",
        ".",
        "",
        "   ",
        "/etc/passwd",
        "a/../b",
        "..\\..\\win",
        "Jane Doe",
        "José Müller",
        "张伟",
        "-rf --no-preserve-root",
        "x" * 500,
        "tab\tnew\nline\x00nul",
        ".bashrc",
        "~root",
        "$(rm -rf ~)",
        "a" * 79 + "/" + "b",
    ],
)
def test_slug_is_a_safe_path_component(tmp_path, text):
    s = slug(text)
    assert SAFE.fullmatch(s), s
    assert s not in (".", "..") and not s.startswith(".")
    assert (tmp_path / s).resolve().parent == tmp_path.resolve()


@pytest.mark.parametrize(
    "text, expected",
    [
        ("../../etc", "etc"),
        ("Jane Doe", "Jane_Doe"),
        ("  alice  ", "alice"),
        ("", "unknown"),
        ("..", "unknown"),
        ("/etc/passwd", "etc_passwd"),
        ("a-b_c.d", "a-b_c.d"),
        ("x" * 80, "x" * 80),
    ],
)
def test_slug_values(text, expected):
    assert slug(text) == expected


def test_slug_truncates_long_names():
    s = slug("x" * 500)
    assert len(s) <= 80 and s.startswith("x" * 70)


def test_slug_is_stable():
    assert slug(slug("José Müller")) == slug("José Müller")


def test_slug_keeps_non_latin_names_apart():
    assert len({slug("张伟"), slug("李娜"), slug("Иван"), slug("")}) == 4


# --------------------------------------------------------------------------- extract_zip


def make_zip(path: Path, members: list[tuple[zipfile.ZipInfo | str, bytes]]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for info, data in members:
            zf.writestr(info, data)
    return path


def symlink_info(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.create_system = 3  # unix
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


def files_under(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if not p.is_dir()}


def test_extract_zip_extracts_and_collects(tmp_path):
    z = make_zip(
        tmp_path / "subs.zip",
        [
            (zipfile.ZipInfo("alice/"), b""),
            (f"alice/{A}.ipynb", b"{}"),
            (f"doejane_12345_678901_{A}.ipynb", b"{}"),
            (f"Jane Doe_123456_assignsubmission_file_/{B}.ipynb", b"{}"),
            (f"./bob/{B}.ipynb", b"{}"),
        ],
    )
    dest = tmp_path / "inbox"
    assert extract_zip(z, dest) == dest
    assert files_under(dest) == {
        f"alice/{A}.ipynb",
        f"doejane_12345_678901_{A}.ipynb",
        f"Jane Doe_123456_assignsubmission_file_/{B}.ipynb",
        f"bob/{B}.ipynb",
    }
    got = sorted((s.student, s.assignment) for s in collect(dest, ASSIGNMENTS))
    assert [a for _, a in got] == [B, A, B, A]
    assert lms(got[0][0], "Jane_Doe", "123456") and lms(got[3][0], "doejane", "12345")
    assert (got[1][0], got[2][0]) == ("alice", "bob")


def test_extract_zip_clears_the_destination(tmp_path):
    dest = tmp_path / "inbox"
    put(dest, "stale/old.ipynb")
    extract_zip(make_zip(tmp_path / "s.zip", [(f"alice/{A}.ipynb", b"{}")]), dest)
    assert files_under(dest) == {f"alice/{A}.ipynb"}


@pytest.mark.parametrize(
    "name",
    [
        "../evil.ipynb",
        "../../evil.ipynb",
        "alice/../../evil.ipynb",
        "/evil.ipynb",
        "/tmp/evil.ipynb",
        "//evil.ipynb",
        "alice/./../../evil.ipynb",
    ],
)
def test_extract_zip_skips_path_traversal(tmp_path, name):
    z = make_zip(tmp_path / "evil.zip", [(name, b"pwned"), (f"alice/{A}.ipynb", b"{}")])
    with zipfile.ZipFile(z) as zf:
        assert name in zf.namelist()  # the hostile name really is in the archive
    work = tmp_path / "deep" / "work"
    dest = work / "inbox"
    extract_zip(z, dest)
    assert files_under(dest) == {f"alice/{A}.ipynb"}
    assert files_under(tmp_path) == {"evil.zip", f"deep/work/inbox/alice/{A}.ipynb"}
    assert not Path("/evil.ipynb").exists() and not Path("/tmp/evil.ipynb").exists()


def test_extract_zip_skips_symlinks(tmp_path):
    z = make_zip(
        tmp_path / "links.zip",
        [
            (symlink_info(f"alice/{A}.ipynb"), b"/etc/passwd"),
            (symlink_info("up"), b".."),
            ("up/evil.ipynb", b"pwned"),  # would land outside if 'up' had been made a link
            (f"bob/{A}.ipynb", b"{}"),
        ],
    )
    dest = tmp_path / "work" / "inbox"
    extract_zip(z, dest)
    assert not any(p.is_symlink() for p in dest.rglob("*"))
    assert files_under(dest) == {"up/evil.ipynb", f"bob/{A}.ipynb"}
    assert not (tmp_path / "work" / "evil.ipynb").exists()


def test_extract_zip_refuses_an_oversized_member(tmp_path, monkeypatch):
    monkeypatch.setattr(C, "MAX_MEMBER_BYTES", 1000)
    z = make_zip(
        tmp_path / "big.zip", [(f"alice/{A}.ipynb", b"{}"), (f"bob/{A}.ipynb", b" " * 1001)]
    )
    with pytest.raises(ValueError, match="too large"):
        extract_zip(z, tmp_path / "inbox")
    assert not (tmp_path / "inbox" / "bob").exists()


def test_extract_zip_accepts_a_member_at_the_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(C, "MAX_MEMBER_BYTES", 1000)
    z = make_zip(tmp_path / "ok.zip", [(f"bob/{A}.ipynb", b" " * 1000)])
    extract_zip(z, tmp_path / "inbox")
    assert (tmp_path / "inbox" / "bob" / f"{A}.ipynb").stat().st_size == 1000


def test_extract_zip_refuses_an_oversized_archive(tmp_path, monkeypatch):
    monkeypatch.setattr(C, "MAX_ZIP_BYTES", 1500)
    z = make_zip(
        tmp_path / "big.zip", [(f"alice/{A}.ipynb", b" " * 1000), (f"bob/{A}.ipynb", b" " * 1000)]
    )
    with pytest.raises(ValueError, match="too large"):
        extract_zip(z, tmp_path / "inbox")


def test_extract_zip_a_lying_size_cannot_write_more(tmp_path, monkeypatch):
    """A central directory that understates a member's size (a zip bomb's trick)."""
    monkeypatch.setattr(C, "MAX_MEMBER_BYTES", 100)
    z = make_zip(tmp_path / "bomb.zip", [(f"bob/{A}.ipynb", b"A" * 100_000)])
    raw = bytearray(z.read_bytes())
    cd = raw.rindex(b"PK\x01\x02")
    raw[cd + 24 : cd + 28] = (10).to_bytes(4, "little")  # uncompressed size: 10
    z.write_bytes(bytes(raw))
    with zipfile.ZipFile(z) as zf:
        assert zf.infolist()[0].file_size == 10
    dest = tmp_path / "inbox"
    try:
        extract_zip(z, dest)
    except (zipfile.BadZipFile, ValueError):
        pass  # refusing is fine too
    assert all(p.stat().st_size <= 100 for p in dest.rglob("*") if p.is_file())


# --------------------------------------------------------------------------- restore


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> nbformat.NotebookNode:
    path = prepare_source(A, tmp_path_factory.mktemp("course"))
    return nbformat.read(path, as_version=4)


def gid(cell) -> str | None:
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


def graded_ids(nb) -> list[str]:
    return [gid(c) for c in nb.cells if is_test(c)]


@pytest.fixture
def student(source) -> nbformat.NotebookNode:
    """What a student hands in: hidden tests stripped, answers written, an own cell added."""
    nb = copy.deepcopy(source)
    for c in nb.cells:
        if is_test(c):
            c.source = strip_hidden(c.source)
        if c.cell_type == "code":
            c.outputs = [nbformat.v4.new_output("stream", name="stdout", text="hi\n")]
            c.execution_count = 7
    nb.cells.insert(3, nbformat.v4.new_markdown_cell("My own notes."))
    return nb


def index_of(nb, grade_id: str) -> int:
    return [gid(c) for c in nb.cells].index(grade_id)


def test_untouched_submission_gets_the_hidden_tests_back(source, student):
    assert any("### BEGIN HIDDEN TESTS" in c.source for c in source.cells if is_test(c))
    nb, notes = restore(student, source)
    assert notes == []
    assert len(nb.cells) == len(student.cells)
    src = {gid(c): c.source for c in source.cells if is_test(c)}
    assert {gid(c): c.source for c in nb.cells if is_test(c)} == src
    assert graded_ids(nb) == graded_ids(source)
    assert [c.source for c in nb.cells if not is_test(c)] == [
        c.source for c in student.cells if not is_test(c)
    ]
    assert nb.metadata == source.metadata
    assert [c.id for c in nb.cells] == [f"c{i:04d}" for i in range(len(nb.cells))]
    for c in nb.cells:
        if c.cell_type == "code":
            assert c.outputs == [] and c.execution_count is None
    nbformat.validate(nb)


def test_restore_leaves_the_submission_alone(source, student):
    before = copy.deepcopy(student)
    restore(student, source)
    assert student == before


def test_whitespace_changes_are_not_edits(source, student):
    first = next(c for c in student.cells if is_test(c))
    first.source = first.source.replace("\n", "   \n") + "\n\n"
    _, notes = restore(student, source)
    assert notes == []


def test_edited_test_cell_is_restored(source, student):
    gids = graded_ids(source)
    cell = student.cells[index_of(student, gids[1])]
    cell.source = "pass  # tests? what tests?"
    nb, notes = restore(student, source)
    assert notes == [f"edited test cell '{gids[1]}' restored"]
    ref = source.cells[index_of(source, gids[1])]
    assert nb.cells[index_of(nb, gids[1])].source == ref.source
    assert index_of(nb, gids[1]) == index_of(student, gids[1])


def test_retyped_test_cell_is_restored_as_code(source, student):
    gids = graded_ids(source)
    i = index_of(student, gids[0])
    md = nbformat.v4.new_markdown_cell(
        student.cells[i].source, metadata=copy.deepcopy(student.cells[i].metadata)
    )
    student.cells[i] = md
    nb, notes = restore(student, source)
    assert notes == [f"edited test cell '{gids[0]}' restored"]
    restored = nb.cells[index_of(nb, gids[0])]
    assert restored.cell_type == "code"
    assert restored.source == source.cells[index_of(source, gids[0])].source
    nbformat.validate(nb)


def test_changed_points_are_restored(source, student):
    gids = graded_ids(source)
    cell = student.cells[index_of(student, gids[2])]
    cell.metadata["nbgrader"]["points"] = 100
    nb, notes = restore(student, source)
    assert notes == [f"points of test cell '{gids[2]}' restored"]
    ref = source.cells[index_of(source, gids[2])]
    assert (
        nb.cells[index_of(nb, gids[2])].metadata["nbgrader"]["points"]
        == ref.metadata["nbgrader"]["points"]
    )


def test_deleted_test_cell_goes_back_after_its_predecessor(source, student):
    gids = graded_ids(source)
    gone = gids[1]
    prev_gid = gid(source.cells[index_of(source, gone) - 1])  # the answer cell above it
    assert prev_gid is not None
    del student.cells[index_of(student, gone)]
    nb, notes = restore(student, source)
    assert notes == [f"deleted test cell '{gone}' restored"]
    assert index_of(nb, gone) == index_of(nb, prev_gid) + 1
    assert graded_ids(nb) == gids
    assert len(nb.cells) == len(student.cells) + 1


def test_deleted_test_and_answer_cells_fall_back_to_an_earlier_anchor(source, student):
    gids = graded_ids(source)
    gone = gids[1]
    answer = gid(source.cells[index_of(source, gone) - 1])
    student.cells = [c for c in student.cells if gid(c) not in (gone, answer)]
    nb, notes = restore(student, source)
    assert notes == [f"deleted test cell '{gone}' restored"]
    assert index_of(nb, gone) == index_of(nb, gids[0]) + 1  # after the previous test cell
    assert graded_ids(nb) == gids


def test_all_test_cells_deleted_come_back_in_order(source, student):
    student.cells = [c for c in student.cells if not is_test(c)]
    nb, notes = restore(student, source)
    gids = graded_ids(source)
    assert notes == [f"deleted test cell '{g}' restored" for g in gids]
    assert graded_ids(nb) == gids
    for g in gids:  # each right after its answer cell
        ans = gid(source.cells[index_of(source, g) - 1])
        assert index_of(nb, g) == index_of(nb, ans) + 1


def test_duplicated_test_cell_is_removed(source, student):
    gids = graded_ids(source)
    first = index_of(student, gids[0])
    dup = copy.deepcopy(student.cells[first])
    dup.source += "\nprint('again')"
    student.cells.append(dup)
    student.cells.insert(first, copy.deepcopy(student.cells[first]))  # and one right above
    nb, notes = restore(student, source)
    assert notes == [f"duplicated test cell '{gids[0]}' removed"] * 2
    assert graded_ids(nb) == gids
    assert len(nb.cells) == len(student.cells) - 2


def test_unknown_graded_cells_lose_their_metadata(source, student):
    bonus = nbformat.v4.new_code_cell("print('free points')")
    bonus.metadata["nbgrader"] = {
        "grade": True,
        "grade_id": "test_bonus",
        "points": 100,
        "solution": False,
        "locked": True,
        "schema_version": 3,
    }
    pointy = nbformat.v4.new_markdown_cell("I deserve this")
    pointy.metadata["nbgrader"] = {
        "grade": False,
        "grade_id": "essay",
        "points": 5,
        "solution": False,
    }
    pointy.metadata["tags"] = ["mine"]
    student.cells[5:5] = [bonus, pointy]
    nb, notes = restore(student, source)
    assert notes == [
        "unknown graded cell 'test_bonus' ignored (not part of the assignment)",
        "unknown graded cell 'essay' ignored (not part of the assignment)",
    ]
    kept = {c.source: c for c in nb.cells}
    assert "nbgrader" not in kept["print('free points')"].metadata
    assert "nbgrader" not in kept["I deserve this"].metadata
    assert kept["I deserve this"].metadata["tags"] == ["mine"]
    assert graded_ids(nb) == graded_ids(source)
    assert "nbgrader" in bonus.metadata  # the submission itself is untouched


def test_answer_cells_are_kept(source, student):
    answers = [c for c in student.cells if c.metadata.get("nbgrader", {}).get("solution")]
    assert answers
    for c in answers:
        c.source = f"# my own answer to {gid(c)}\n" + c.source
    nb, notes = restore(student, source)
    assert notes == []
    got = {gid(c): c for c in nb.cells if c.metadata.get("nbgrader", {}).get("solution")}
    for c in answers:
        assert got[gid(c)].source == c.source
        assert got[gid(c)].metadata["nbgrader"] == c.metadata["nbgrader"]


def test_several_problems_are_reported_in_cell_order(source, student):
    g = graded_ids(source)
    student.cells[index_of(student, g[3])].source = "assert True"  # edited
    student.cells[index_of(student, g[0])].metadata["nbgrader"]["points"] = 9  # points
    del student.cells[index_of(student, g[2])]  # deleted
    student.cells.append(copy.deepcopy(student.cells[index_of(student, g[1])]))  # duplicated
    nb, notes = restore(student, source)
    assert notes == [
        f"points of test cell '{g[0]}' restored",
        f"edited test cell '{g[3]}' restored",
        f"duplicated test cell '{g[1]}' removed",
        f"deleted test cell '{g[2]}' restored",
    ]
    assert graded_ids(nb) == g
    assert [c.source for c in nb.cells if is_test(c)] == [
        c.source for c in source.cells if is_test(c)
    ]


def test_malformed_metadata_is_tolerated(source, student):
    student.cells[0].metadata["nbgrader"] = "not a dict"
    student.cells.append(nbformat.v4.new_code_cell("x = 1", id="dup"))
    student.cells.append(nbformat.v4.new_code_cell("y = 2", id="dup"))
    nb, notes = restore(student, source)
    assert notes == []
    assert len({c.id for c in nb.cells}) == len(nb.cells)
