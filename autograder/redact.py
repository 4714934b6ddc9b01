"""Keep the hidden tests' source out of everything a student gets back.

The hidden block of a test cell runs in the student's kernel, so the kernel can read its source
(IPython keeps every executed cell in ``In``, ``_ih``, ``_i3``...) and print it in a later cell,
raise it in an exception, or return it in a message. Before the feedback is written, every output
and every message that reproduces a line of hidden-test source is replaced by a notice, and the
submission is flagged for a person to look at.

A line counts when it is at least :data:`MIN_LINE` characters long once whitespace is collapsed,
appears nowhere in the visible part of the source notebook, and is not part of the student's own
cells (a student may print their own code). Encoded, reversed or split-up copies are not
recognised: the README says so, and the hidden blocks hold no answer.
"""

from __future__ import annotations

from pathlib import Path

import nbformat

from autograder.restore import is_test

MIN_LINE = 20
NOTICE = "[grader] output removed: it reproduced hidden test code\n"
BEGIN, END = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"


def _flat(text: str) -> str:
    return " ".join(str(text).split())


def hidden_lines(source) -> list[str]:
    """Distinctive lines of the hidden blocks of ``source`` (a notebook), whitespace-collapsed."""
    hidden, visible = [], []
    for cell in source.cells:
        inside = False
        for line in str(cell.get("source", "")).splitlines():
            norm = _flat(line)
            if norm == BEGIN:
                inside = True
            elif norm == END:
                inside = False
            else:
                (hidden if inside else visible).append(norm)
    seen = "\n".join(visible)
    return sorted({h for h in hidden if len(h) >= MIN_LINE and h not in seen})


def _output_text(out) -> str:
    parts = [out.get("text", ""), out.get("ename", ""), out.get("evalue", "")]
    parts += [str(t) for t in out.get("traceback", []) or []]
    parts += [str(v) for v in (out.get("data", {}) or {}).values()]
    return _flat("\n".join(map(str, parts)))


def redact(result: dict, nb, source) -> int:
    """Remove, in place, the outputs of ``nb`` and the messages of ``result`` that reproduce
    hidden-test source; flag the result when anything was removed. The number removed."""
    own = _flat("\n".join(str(c.get("source", "")) for c in nb.cells if not is_test(c)))
    lines = [h for h in hidden_lines(source) if h not in own]
    if not lines:
        return 0

    def leaks(text: str) -> bool:
        return any(h in text for h in lines)

    removed = 0
    for cell in nb.cells:
        outputs = cell.get("outputs") or []
        for j, out in enumerate(outputs):
            if leaks(_output_text(out)):
                outputs[j] = nbformat.v4.new_output("stream", name="stderr", text=NOTICE)
                # A test cell's own traceback may quote its hidden lines: removed, not held
                # against the student (the feedback shows the grader's messages there anyway).
                removed += not is_test(cell)
    for test in result.get("tests", {}).values():
        msgs = test.get("messages", [])
        for j, m in enumerate(msgs):
            if leaks(_flat(m)):
                msgs[j] = NOTICE.strip()
                removed += 1
    if leaks(_flat(result.get("reason", ""))):
        result["reason"] = NOTICE.strip()
        removed += 1
    if removed:
        result.setdefault("flags", []).append(
            f"hidden test code reproduced in {removed} outputs or messages (removed from the feedback)"
        )
        if result.get("status") in ("graded", "flagged"):
            result["status"] = "flagged"
            result["reason"] = "; ".join(result.get("notes", []) + result["flags"])[:500]
    return removed


def redact_submission(result: dict, nb, source_path: str | Path) -> int:
    """:func:`redact` against the source notebook at ``source_path``."""
    return redact(result, nb, nbformat.read(str(source_path), as_version=4))
