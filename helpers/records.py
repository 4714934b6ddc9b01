"""The record format of the hidden tests: plain arrays and one JSON string, no pickles.

Kept free of torch so that the grader, which only reads records, starts in a fraction of a
second: it imports this module, never :mod:`helpers.grading` (which runs cases in the kernel).
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["Record", "load_record", "save_record"]


@dataclass
class Record:
    """What one call produced, as plain arrays and JSON-able metadata."""

    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)


def save_record(path: Path, rec: Record) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {f"a:{k}": v for k, v in rec.arrays.items()}
    np.savez(path, __meta__=np.array(json.dumps(rec.meta)), **arrays)


def load_record(path: Path | bytes, max_bytes: int = 64 << 20) -> Record:
    """Read a record (a file, or its bytes) without unpickling anything; refuse oversized ones.

    The grader passes bytes it read itself (``autograder.compare.load_records`` opens record files
    without following links and only when they are regular files); a path is opened here.
    """
    name = "record" if isinstance(path, bytes) else Path(path).name
    size = len(path) if isinstance(path, bytes) else Path(path).stat().st_size
    if size > max_bytes:
        raise ValueError(f"{name} is larger than {max_bytes} bytes")
    data = path if isinstance(path, bytes) else Path(path).read_bytes()
    try:
        with zipfile.ZipFile(
            io.BytesIO(data)
        ) as zf:  # members could inflate: count what they unpack to
            members = zf.infolist()
    except zipfile.BadZipFile as exc:
        raise ValueError(f"{name} is not an .npz archive") from exc
    if len(members) > 256 or sum(m.file_size for m in members) > max_bytes:
        raise ValueError(f"{name} unpacks to more than {max_bytes} bytes or 256 arrays")
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        meta = json.loads(str(npz["__meta__"]))
        arrays = {k[2:]: np.asarray(npz[k], dtype=np.float64) for k in npz.files if k[:2] == "a:"}
    if not isinstance(meta, dict):
        raise ValueError("record metadata is not an object")
    return Record(arrays, meta)
