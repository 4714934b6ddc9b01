"""Read the records a kernel left behind, as a hostile kernel may have left them.

The grader reads records outside the sandbox, with more rights than the kernel: it must never be
made to read something the kernel could not (a link to a classmate's working folder, to
``/etc/shadow``), to wait (a FIFO), or to reveal whether a path exists (a link's target is never
touched). Records come back as :class:`helpers.grading.Record`: plain arrays and JSON.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from pathlib import Path

import numpy as np

from helpers.records import Record, load_record, save_record

MAX_RECORD_BYTES = 64 << 20


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISCHR, "a device"),
        (stat.S_ISBLK, "a device"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def read_record_files(
    directory: Path, owner: int | None = None, max_files: int = 2000
) -> tuple[dict[str, bytes], list[str]]:
    """The bytes of every ``*.npz`` record in ``directory``, and the problems met.

    Nothing here follows a link or blocks: the folder and every file are opened with
    ``O_NOFOLLOW`` (relative to the folder's descriptor), a file counts only when ``lstat`` and
    ``fstat`` agree that it is a regular file with one link, owned by ``owner`` (the kernel's
    uid, when known). Anything else (a link to a classmate's record or to ``/etc/shadow``, a
    FIFO, a device, a hard link) is refused unread and reported as tampering, the same way
    whatever the link points to.
    """
    files, problems = {}, []
    try:
        dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return files, problems
    except OSError:
        kind = "not a folder"
        with contextlib.suppress(OSError):
            kind = _kind(os.lstat(directory).st_mode)
        return files, [f"record folder refused: {kind} (tampering)"]
    try:
        st = os.fstat(dfd)
        if owner is not None and st.st_uid != owner:
            return files, [f"record folder refused: owned by uid {st.st_uid} (tampering)"]
        names = sorted(n for n in os.listdir(dfd) if n.endswith(".npz"))
        if len(names) > max_files:
            problems.append(f"{len(names)} record files (more than {max_files}): ignored the rest")
            names = names[:max_files]
        for name in names:
            why = _refusal(dfd, name, owner)
            if isinstance(why, bytes):
                files[name[: -len(".npz")]] = why
            else:
                problems.append(f"record {name[:80]} refused: {why} (tampering)")
    finally:
        os.close(dfd)
    return files, problems


def _refusal(dfd: int, name: str, owner: int | None) -> bytes | str:
    """The file's bytes, or why it does not count."""
    try:
        st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
    except OSError as exc:
        return f"unreadable ({type(exc).__name__})"
    if not stat.S_ISREG(st.st_mode):
        return _kind(st.st_mode)
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY, dir_fd=dfd)
    except OSError as exc:
        return "a symbolic link" if exc.errno == errno.ELOOP else f"unreadable ({exc.strerror})"
    try:
        st2 = os.fstat(fd)
        if (st2.st_dev, st2.st_ino) != (st.st_dev, st.st_ino) or not stat.S_ISREG(st2.st_mode):
            return "replaced while being read"
        if owner is not None and st2.st_uid != owner:
            return f"owned by uid {st2.st_uid}, not the kernel's"
        if st2.st_nlink != 1:
            return f"a hard link ({st2.st_nlink} names)"
        if st2.st_size > MAX_RECORD_BYTES:
            return f"larger than {MAX_RECORD_BYTES} bytes"
        with os.fdopen(os.dup(fd), "rb") as f:
            return f.read(MAX_RECORD_BYTES + 1)
    finally:
        os.close(fd)


def load_records(
    directory: Path, owner: int | None = None, max_files: int = 2000
) -> tuple[dict[str, Record], list[str]]:
    """All readable records of a run, and the problems met while reading them."""
    records = {}
    files, problems = read_record_files(directory, owner, max_files)
    for key, data in files.items():
        try:
            records[key] = load_record(data, MAX_RECORD_BYTES)
        except Exception as exc:  # noqa: BLE001 - a hostile kernel may write anything
            problems.append(f"unreadable record {key[:80]}.npz: {type(exc).__name__}")
    return records, problems


def save_records(records: dict[str, Record], directory: Path) -> None:
    """Write records (re-serialised: plain arrays and JSON only) into a new folder."""
    directory.mkdir(parents=True)
    for key, rec in records.items():
        save_record(directory / f"{key}.npz", rec)


def same_records(a: dict[str, Record], b: dict[str, Record]) -> list[str]:
    """The keys on which two runs' records differ (values bit for bit, NaN equal to NaN)."""
    differ = sorted(set(a) ^ set(b))
    for key in sorted(set(a) & set(b)):
        x, y = a[key], b[key]
        if x.meta != y.meta or set(x.arrays) != set(y.arrays):
            differ.append(key)
        elif not all(
            x.arrays[k].shape == y.arrays[k].shape
            and np.array_equal(x.arrays[k], y.arrays[k], equal_nan=True)
            for k in x.arrays
        ):
            differ.append(key)
    return differ
