"""Find the submissions in a folder or an LMS zip, whatever its layout.

Accepted layouts, all mixed in one folder if need be:

* nbgrader: ``<student>/<assignment>/<notebook>.ipynb``
* per student: ``<student>/<NN_name>.ipynb`` (the assignment is the stem)
* Canvas: ``<login>[_LATE]_<userid>_<submissionid>_<NN_name>[-N].ipynb``
* Moodle: ``<Full Name>_<id>_assignsubmission_file_[/]<NN_name>.ipynb``
"""

from __future__ import annotations

import hashlib
import re
import shutil
import unicodedata
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

MAX_ZIP_BYTES = 4 << 30
MAX_MEMBER_BYTES = 100 << 20

CANVAS = re.compile(r"^(?P<student>[^_/]+?)(?:_LATE)?_(?P<uid>\d+)_(?P<sid>\d+)_(?P<file>.+)$")
MOODLE = re.compile(
    r"^(?P<student>.+?)_(?P<uid>\d+)_assignsubmission_(?:file|onlinetext)_?(?P<file>.*)$"
)


@dataclass
class Submission:
    student: str
    assignment: str  # "" when it could not be told
    path: Path
    note: str = ""


def slug(text: str) -> str:
    """A safe student id or file name: letters, digits, '.', '_' and '-'.

    Accents are folded (``José`` -> ``Jose``); a name whose letters cannot be written in
    ASCII, or too long a name, gets a short hash of the original, so that different names
    stay different.
    """
    text = unicodedata.normalize("NFKD", text.strip())
    s = re.sub(r"[^A-Za-z0-9._-]+", "_", text.encode("ascii", "ignore").decode()).strip("._")
    lossy = any(ord(ch) > 127 and unicodedata.category(ch)[0] in "LN" for ch in text)
    if lossy or len(s) > 80:  # keep different names (and an LMS id at the end) apart
        tag = hashlib.sha256(text.encode()).hexdigest()[:8]
        s = f"{s[:71].rstrip('._')}-{tag}" if s else tag
    return s or "unknown"


def _match_assignment(name: str, assignments: list[str]) -> str:
    stem = re.sub(r"(-\d+|\s*\(\d+\))$", "", Path(name).stem)  # Canvas/OS renames: "-1", " (2)"
    if stem in assignments:
        return stem
    hits = [a for a in assignments if a in stem]
    return max(hits, key=len) if hits else ""


def extract_zip(zip_path: Path, dest: Path) -> Path:
    """Extract safely: no absolute paths, no '..', no links, bounded sizes."""
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    total = 0
    with zipfile.ZipFile(zip_path) as zf:
        for info in zf.infolist():
            name = PurePosixPath(info.filename)
            if info.is_dir() or name.is_absolute() or ".." in name.parts or not name.parts:
                continue
            if (info.external_attr >> 16) & 0o170000 == 0o120000:  # a symbolic link
                continue
            if info.file_size > MAX_MEMBER_BYTES or total + info.file_size > MAX_ZIP_BYTES:
                raise ValueError(f"{info.filename}: archive member too large")
            total += info.file_size
            target = dest.joinpath(*name.parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)
    return dest


def collect(root: Path, assignments: list[str]) -> list[Submission]:
    """Every ``.ipynb`` below ``root``, attributed to a student and an assignment."""
    subs: list[Submission] = []
    for path in sorted(root.rglob("*.ipynb")):
        rel = path.relative_to(root)
        if any(p.startswith((".", "__MACOSX")) for p in rel.parts) or path.is_symlink():
            continue
        parts = rel.parts
        note = ""
        m_canvas, m_moodle = CANVAS.match(parts[-1]), MOODLE.match(parts[0])
        if len(parts) == 3:
            student, assignment = parts[0], parts[1] if parts[1] in assignments else ""
            if not assignment:
                note = f"unknown assignment folder '{parts[1]}'"
            elif _match_assignment(parts[2], assignments) != assignment:
                note = f"notebook renamed to '{parts[2]}'"
        elif m_moodle:  # the participant id tells namesakes apart
            student = f"{m_moodle['student']}_{m_moodle['uid']}"
            assignment = _match_assignment(
                parts[-1] if len(parts) > 1 else m_moodle["file"], assignments
            )
        elif len(parts) == 1 and m_canvas:
            student = (
                f"{m_canvas['student']}_{m_canvas['uid']}"  # the user id tells namesakes apart
            )
            assignment = _match_assignment(m_canvas["file"], assignments)
        elif len(parts) == 2:
            student, assignment = parts[0], _match_assignment(parts[1], assignments)
        else:
            student, assignment = path.stem, ""
            note = "could not tell the student from the path"
        if not assignment and not note:
            note = f"'{parts[-1]}' matches no assignment"
        subs.append(Submission(slug(student), assignment, path, note))
    return _dedupe(subs)


def _dedupe(subs: list[Submission]) -> list[Submission]:
    """One submission per student and assignment: the latest file wins, the rest are noted."""
    groups: dict[tuple[str, str], list[Submission]] = {}
    out = []
    for s in subs:
        if s.assignment:
            groups.setdefault((s.student, s.assignment), []).append(s)
        else:
            out.append(s)
    for group in groups.values():
        # the newest file; on a tie, the one that sorts last (as before)
        best = max(enumerate(group), key=lambda p: (p[1].path.stat().st_mtime_ns, p[0]))[1]
        ignored = [f"also submitted {s.path.name} (ignored)" for s in group if s is not best]
        best.note = "; ".join([n for n in [best.note, *ignored] if n])
        out.append(best)
    return out
