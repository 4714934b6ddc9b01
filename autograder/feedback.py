"""Feedback for students: one HTML page per graded notebook.

The page opens with the score table (each row links to its test), then the notebook as it
ran: markdown rendered, code, outputs, and under every test cell the grader's verdict and
messages. Hidden tests never appear: test cells show only their visible part, and their
outputs are replaced by the verdict. Outputs are reduced to text and a few small PNG figures,
known sandbox noise is dropped, and the whole body goes through ``nh3`` (an allow-list HTML
sanitiser), so a hostile notebook cannot run script in the browser of whoever opens it.
"""

from __future__ import annotations

import base64
import binascii
import html
import io
import re
from pathlib import Path

import mistune
import nh3

from autograder.restore import is_test, strip_hidden

MAX_TEXT = 20_000  # characters kept of one output
MAX_FIGURES = 12  # figures kept per page
MAX_FIGURE_BYTES = 400_000  # a PNG larger than this (decoded) is shrunk, or dropped
FIGURE_WIDTH = 640  # pixels: larger figures are shrunk to this width

# Lines the sandbox provokes in every submission; they say nothing about the student's work.
SANDBOX_NOISE = re.compile(
    r"joblib will operate in serial mode|Matplotlib is building the font cache|"
    r"MPLCONFIGDIR|Connection to the kernel is not encrypted|TCP without encryption|"
    r"IProgress not found",
)
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")

_TAGS = {
    "a", "b", "blockquote", "br", "code", "del", "details", "div", "em", "h1", "h2", "h3", "h4",
    "h5", "h6", "hr", "i", "img", "li", "ol", "p", "pre", "section", "span", "strong", "sub",
    "summary", "sup", "table", "tbody", "td", "th", "thead", "tr", "ul",
}  # fmt: skip
_ATTRIBUTES = {
    "*": {"class", "id", "title"},
    "a": {"href"},
    "img": {"src", "alt", "width", "height"},
    "td": {"align"},
    "th": {"align"},
}


def _keep_attribute(tag: str, attr: str, value: str) -> str | None:
    if tag == "img" and attr == "src":  # only the figures this module embedded
        return value if re.fullmatch(r"data:image/png;base64,[A-Za-z0-9+/=]+", value) else None
    if tag == "a" and attr == "href":  # in-page links and ordinary web links only
        return value if re.match(r"(#|https?://)", value) else None
    return value


def sanitise(fragment: str) -> str:
    """The HTML fragment with everything outside the allow-list removed (scripts, handlers, ...)."""
    return nh3.clean(
        fragment,
        tags=_TAGS,
        attributes=_ATTRIBUTES,
        attribute_filter=_keep_attribute,
        clean_content_tags={"script", "style"},
        url_schemes={"http", "https", "data"},
        link_rel="noopener noreferrer",
    )


_markdown = mistune.create_markdown(escape=False, plugins=["table", "strikethrough", "math"])


def _text(value) -> str:
    text = "".join(value) if isinstance(value, list) else str(value)
    return _ANSI.sub("", text)


def _quiet(text: str) -> str:
    """``text`` without the lines of known sandbox noise (and a warning's source line after)."""
    out, skip = [], False
    for line in text.splitlines(keepends=True):
        if SANDBOX_NOISE.search(line):
            skip = True
            continue
        if skip and line.startswith("  "):  # the source line a warning prints under itself
            continue
        skip = False
        out.append(line)
    return "".join(out)


def _pre(text: str, cls: str) -> str:
    text = text[:MAX_TEXT] + ("\n[... cut]" if len(text) > MAX_TEXT else "")
    return f'<pre class="{cls}">{html.escape(text)}</pre>'


class _Figures:
    """Keeps at most MAX_FIGURES figures, each a PNG of at most FIGURE_WIDTH pixels wide."""

    def __init__(self) -> None:
        self.kept = 0
        self.dropped = 0

    def img(self, data) -> str:
        if self.kept >= MAX_FIGURES:
            self.dropped += 1
            return ""
        try:
            png = base64.b64decode(_text(data).replace("\n", ""), validate=True)
            png = self._small(png)
        except (binascii.Error, ValueError, OSError):
            return ""
        if png is None:
            self.dropped += 1
            return ""
        self.kept += 1
        return f'<img alt="figure" src="data:image/png;base64,{base64.b64encode(png).decode()}">'

    @staticmethod
    def _small(png: bytes) -> bytes | None:
        from PIL import Image

        Image.MAX_IMAGE_PIXELS = 50_000_000  # a decompression bomb raises instead
        with Image.open(io.BytesIO(png)) as im:
            if im.format != "PNG":
                return None
            if im.width <= FIGURE_WIDTH and len(png) <= MAX_FIGURE_BYTES:
                return png
            im = im.convert("RGBA") if im.mode not in ("RGB", "RGBA") else im
            scale = min(1.0, FIGURE_WIDTH / im.width)
            im = im.resize((max(1, int(im.width * scale)), max(1, int(im.height * scale))))
            buf = io.BytesIO()
            im.save(buf, format="PNG", optimize=True)
        small = buf.getvalue()
        return small if len(small) <= MAX_FIGURE_BYTES else None


def _outputs(outputs: list, figures: _Figures) -> str:
    parts = []
    for out in outputs:
        kind = out.get("output_type")
        if kind == "stream":
            text = _quiet(_text(out.get("text", "")))
            if text.strip():
                parts.append(_pre(text, "stderr" if out.get("name") == "stderr" else "stdout"))
        elif kind == "error":
            tb = _text("\n".join(map(str, out.get("traceback", []))))
            head = f"{_text(out.get('ename', ''))[:200]}: {_text(out.get('evalue', ''))[:2000]}"
            parts.append(_pre(tb[-MAX_TEXT:] if tb.strip() else head, "error"))
        elif kind in ("display_data", "execute_result"):
            data = out.get("data", {})
            if "image/png" in data:
                parts.append(figures.img(data["image/png"]))
            elif "text/plain" in data:
                parts.append(_pre(_quiet(_text(data["text/plain"])), "stdout"))
    return "".join(parts)


def _score_table(result: dict) -> str:
    rows = "".join(
        f'<tr class="{"pass" if t["passed"] else "fail"}"><td><a href="#{html.escape(gid)}">'
        f"{html.escape(gid)}</a></td><td>{t['points']:g} / {t['max_points']:g}</td>"
        f"<td>{'passed' if t['passed'] else 'failed'}</td></tr>"
        for gid, t in result.get("tests", {}).items()
    )
    total = f"<td><strong>{result['score']:g} / {result['max_score']:g}</strong></td>"
    return (
        '<table class="scores"><thead><tr><th>test</th><th>points</th><th>result</th></tr></thead>'
        f"<tbody>{rows}<tr><td><strong>total</strong></td>{total}<td></td></tr></tbody></table>"
    )


def _header(result: dict) -> str:
    e = html.escape
    parts = [
        f"<h1>Feedback: {e(result['assignment'])}</h1>",
        f"<p><strong>Student:</strong> {e(result['student_id'])}<br>"
        f"<strong>Score:</strong> {result['score']:g} / {result['max_score']:g}<br>"
        f"<strong>Status:</strong> {e(result['status'])}</p>",
        _score_table(result),
    ]
    if result.get("reason"):
        parts.append(f"<p><strong>Why:</strong> {e(result['reason'])}</p>")
    if result.get("notes"):
        items = "".join(f"<li>{e(n)}</li>" for n in result["notes"])
        parts.append(f"<p><strong>Changes made before grading:</strong></p><ul>{items}</ul>")
    return "".join(parts)


def _verdict(gid: str, verdict: dict) -> str:
    passed = verdict.get("passed", False)
    pts = f"{verdict.get('points', 0):g} / {verdict.get('max_points', 0):g} points"
    messages = verdict.get("messages", []) or ["All tests of this cell passed."]
    body = "".join(_pre(m, "message") for m in messages)
    mark = "PASSED" if passed else "FAILED"
    return (
        f'<div class="verdict {"pass" if passed else "fail"}">'
        f"<p><strong>[{mark}] {html.escape(gid)}</strong>: {pts}</p>{body}</div>"
    )


def body(result: dict, nb) -> str:
    """The page body (unsanitised): header and score table, then every cell."""
    figures, cells = _Figures(), []
    for cell in nb.cells if nb is not None else []:
        kind, source = cell.get("cell_type"), _text(cell.get("source", ""))
        if kind == "markdown":
            cells.append(f'<div class="markdown">{_markdown(source)}</div>')
        elif kind == "code" and is_test(cell):
            gid = cell.metadata["nbgrader"]["grade_id"]
            cells.append(
                f'<section class="test" id="{html.escape(gid)}">'
                f"{_pre(strip_hidden(source), 'code')}"
                f"{_verdict(gid, result.get('tests', {}).get(gid, {}))}</section>"
            )
        elif kind == "code":
            outputs = _outputs(cell.get("outputs", []), figures)
            cells.append(f'<div class="cell">{_pre(source, "code")}{outputs}</div>')
    if figures.dropped:
        cells.append(f"<p><em>{figures.dropped} more figure(s) not shown.</em></p>")
    return _header(result) + "".join(cells)


_STYLE = """
body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}
pre{white-space:pre-wrap;word-break:break-word;padding:.5rem;border-radius:4px;margin:.3rem 0}
pre.code{background:#f5f5f7;border-left:3px solid #99a}
pre.stderr,pre.error{background:#fdecea}
pre.message{background:#fff;border:1px solid #ddd}
table.scores{border-collapse:collapse;margin:1rem 0}
table.scores td,table.scores th{border:1px solid #ccc;padding:.3rem .8rem;text-align:left}
tr.pass td:last-child{color:#17692d} tr.fail td:last-child{color:#b00020}
.verdict{padding:.4rem .8rem;border-radius:4px;margin-bottom:1.2rem}
.verdict.pass{background:#e8f5e9} .verdict.fail{background:#fdecea}
img{display:block;max-width:100%;height:auto;margin:.3rem 0}
.markdown table{border-collapse:collapse}
.math{font-family:"STIX Two Math","Latin Modern Math",serif;color:#333}
div.math{white-space:pre-wrap;margin:.5rem 0;padding-left:1rem}
.markdown td,.markdown th{border:1px solid #ccc;padding:.2rem .6rem}
"""


def render(result: dict, nb) -> str:
    """The whole page: a fixed head (no script) around the sanitised body."""
    title = html.escape(f"Feedback: {result['assignment']} ({result['student_id']})")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{title}</title><style>{_STYLE}</style></head>\n"
        f"<body>{sanitise(body(result, nb))}</body></html>\n"
    )


def write(path: Path, result: dict, nb) -> None:
    """Write the feedback HTML for one graded submission."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(result, nb), encoding="utf-8")
