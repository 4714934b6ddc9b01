"""Feedback for students: their notebook, their outputs, and the verdict of every test.

Hidden tests never appear: test cells show only their visible part, and their
outputs are replaced by the grader's messages. Outputs a submission produced are
reduced to text and images, and markdown is sanitised, so a hostile notebook
cannot run script in the browser of whoever opens the feedback.
"""

from __future__ import annotations

import copy
import html
from pathlib import Path

import nbformat

from autograder.restore import is_test, strip_hidden

SAFE_MIME = ("text/plain", "image/png", "image/jpeg")
MAX_TEXT = 20_000


def _safe_outputs(outputs: list) -> list:
    kept = []
    for out in outputs:
        kind = out.get("output_type")
        if kind == "stream":
            kept.append(
                nbformat.v4.new_output(
                    "stream",
                    name=out.get("name", "stdout"),
                    text=str(out.get("text", ""))[:MAX_TEXT],
                )
            )
        elif kind == "error":
            tb = "\n".join(map(str, out.get("traceback", [])))[-MAX_TEXT:]
            kept.append(
                nbformat.v4.new_output(
                    "error",
                    ename=str(out.get("ename", ""))[:200],
                    evalue=str(out.get("evalue", ""))[:2000],
                    traceback=[tb],
                )
            )
        elif kind in ("display_data", "execute_result"):
            data = {k: v for k, v in out.get("data", {}).items() if k in SAFE_MIME}
            if "text/plain" in data:
                data["text/plain"] = str(data["text/plain"])[:MAX_TEXT]
            if data:
                kept.append(nbformat.v4.new_output("display_data", data=data))
    return kept


def _summary(result: dict) -> str:
    rows = "".join(
        f"| {gid} | {t['points']:g} / {t['max_points']:g} | {'pass' if t['passed'] else 'fail'} |\n"
        for gid, t in result.get("tests", {}).items()
    )
    parts = [
        f"# Feedback: {html.escape(result['assignment'])}",
        f"**Student:** {html.escape(result['student_id'])}  \n"
        f"**Score:** {result['score']:g} / {result['max_score']:g}  \n**Status:** {result['status']}",
    ]
    if result.get("reason"):
        parts.append(f"**Why:** {html.escape(result['reason'])}")
    if rows:
        parts.append("| test | points | result |\n|---|---|---|\n" + rows)
    if result.get("notes"):
        parts.append(
            "**Changes made before grading:**\n\n"
            + "\n".join(f"* {html.escape(n)}" for n in result["notes"])
        )
    return "\n\n".join(parts)


def feedback_notebook(result: dict, nb) -> nbformat.NotebookNode:
    out = nbformat.v4.new_notebook()
    out.cells.append(nbformat.v4.new_markdown_cell(_summary(result)))
    for cell in nb.cells if nb is not None else []:
        cell = copy.deepcopy(cell)
        if cell.get("cell_type") == "code" and is_test(cell):
            gid = cell.metadata["nbgrader"]["grade_id"]
            verdict = result["tests"].get(gid, {})
            text = "\n\n".join(verdict.get("messages", [])) or "All tests of this cell passed."
            mark = "PASSED" if verdict.get("passed") else "FAILED"
            pts = f"{verdict.get('points', 0):g} / {verdict.get('max_points', 0):g}"
            new = nbformat.v4.new_code_cell(strip_hidden(cell.source))
            new.outputs = [
                nbformat.v4.new_output(
                    "stream",
                    name="stdout" if verdict.get("passed") else "stderr",
                    text=f"[{mark}] {gid}: {pts} points\n{text}\n",
                )
            ]
            out.cells.append(new)
        elif cell.get("cell_type") == "code":
            new = nbformat.v4.new_code_cell(str(cell.get("source", "")))
            new.outputs = _safe_outputs(cell.get("outputs", []))
            out.cells.append(new)
        elif cell.get("cell_type") == "markdown":
            out.cells.append(nbformat.v4.new_markdown_cell(str(cell.get("source", ""))))
    return out


def write(path: Path, result: dict, nb) -> None:
    """Write the feedback HTML for one graded submission."""
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="classic")
    exporter.sanitize_html = True
    body, _ = exporter.from_notebook_node(feedback_notebook(result, nb))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body, encoding="utf-8")
