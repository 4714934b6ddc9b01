"""The feedback page a student opens: rendered, sanitised, score table first, in a real browser."""

from __future__ import annotations

import base64
import io
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pytest

from autograder import feedback

VOID = {"br", "hr", "img", "meta", "link", "input", "wbr"}


def _png(width: int, height: int, colour=(200, 30, 30)) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def _test_cell(gid: str, source: str):
    cell = nbformat.v4.new_code_cell(source)
    cell.metadata["nbgrader"] = {"grade": True, "grade_id": gid, "points": 2, "solution": False}
    return cell


def _example():
    nb = nbformat.v4.new_notebook()
    md = nbformat.v4.new_markdown_cell(
        "## 1. The L1 penalty\n\nThe **mean** of $|z|$.\n\n<script>alert('md')</script>"
        '<img src="x" onerror="alert(1)">\n\n| a | b |\n|---|---|\n| 1 | 2 |'
    )
    code = nbformat.v4.new_code_cell("plot()")
    code.outputs = [
        nbformat.v4.new_output(
            "stream",
            name="stderr",
            text="/x/joblib/_multiprocessing_helpers.py:45: UserWarning: [Errno 13] Permission "
            "denied.  joblib will operate in serial mode\n  warnings.warn('%s.  joblib will "
            "operate in serial mode' % (e,))\nreal warning kept\n",
        ),
        nbformat.v4.new_output("stream", name="stdout", text="epoch 1: loss 0.1\n"),
        nbformat.v4.new_output("display_data", data={"text/html": "<script>alert(2)</script>"}),
        nbformat.v4.new_output("display_data", data={"image/png": _png(1600, 400)}),
    ] + [
        nbformat.v4.new_output("display_data", data={"image/png": _png(20, 20)})
        for _ in range(feedback.MAX_FIGURES + 3)
    ]
    test = _test_cell(
        "test_l1_sparsity",
        "# Tests: l1_sparsity\ncheck_close(l1_sparsity(z), 1.5)\n### BEGIN HIDDEN TESTS\n"
        "grade('l1_sparsity', l1_sparsity, [])\n### END HIDDEN TESTS",
    )
    nb.cells = [md, code, test]
    result = {
        "assignment": "04_sparse_autoencoder",
        "student_id": "ann<script>",
        "status": "graded",
        "reason": "",
        "score": 0.0,
        "max_score": 2.0,
        "notes": [],
        "tests": {
            "test_l1_sparsity": {
                "points": 0.0,
                "max_points": 2.0,
                "passed": False,
                "messages": [
                    "Classic mistake: summed instead of averaged",
                    "l1_sparsity: wrong value\n  expected: 1.5\n  got:      6 <b>",
                ],
            }
        },
    }
    return result, nb


class _Balance(HTMLParser):
    def __init__(self):
        super().__init__()
        self.stack, self.errors, self.tags = [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:]}")
        else:
            self.stack.pop()


def test_page_is_valid_rendered_sanitised_and_leads_with_the_scores():
    result, nb = _example()
    page = feedback.render(result, nb)
    parser = _Balance()
    parser.feed(page)
    assert page.startswith("<!DOCTYPE html>")
    assert not parser.errors and parser.stack == [], (parser.errors, parser.stack)
    tags = [t for t, _ in parser.tags]
    assert "&lt;p&gt;" not in page and "&lt;h1" not in page
    assert "<h2>1. The L1 penalty</h2>" in page and "<strong>mean</strong>" in page
    assert "<table" in page and tags.index("table") < tags.index("h2"), "scores come first"
    # Student-controlled text is inert: no script, no handler, escaped id and message.
    assert "<script" not in page.lower() and "onerror" not in page and "alert(2)" not in page
    assert "ann&lt;script&gt;" in page and "6 &lt;b&gt;" in page
    # The verdict sits right after the test cell's visible code; hidden code never shows.
    section = page[page.index('id="test_l1_sparsity"') :]
    assert (
        section.index("check_close")
        < section.index("Classic mistake: summed")
        < (section.index("</section>"))
    )
    assert "BEGIN HIDDEN" not in page and "grade(" not in page
    # Sandbox noise goes, the student's own output stays; figures are small and capped.
    assert "joblib" not in page and "real warning kept" in page and "epoch 1" in page
    imgs = [a["src"] for t, a in parser.tags if t == "img" and "src" in a]
    assert len(imgs) == feedback.MAX_FIGURES
    assert all(s.startswith("data:image/png;base64,") for s in imgs)
    from PIL import Image

    first = Image.open(io.BytesIO(base64.b64decode(imgs[0].split(",", 1)[1])))
    assert first.width == feedback.FIGURE_WIDTH
    assert "4 more figure(s) not shown" in page


def test_feedback_of_an_unreadable_notebook_still_names_its_status(tmp_path):
    result = {
        "assignment": "04_sparse_autoencoder",
        "student_id": "bob",
        "status": "invalid_notebook",
        "reason": "not a readable notebook: JSONDecodeError",
        "score": 0.0,
        "max_score": 8.0,
        "notes": [],
        "tests": {},
    }
    feedback.write(tmp_path / "f.html", result, None)
    text = (tmp_path / "f.html").read_text()
    assert "invalid_notebook" in text and "not a readable notebook" in text


def _chromium() -> str | None:
    return next(
        (
            shutil.which(n)
            for n in ("chromium", "chromium-browser", "google-chrome")
            if shutil.which(n)
        ),
        None,
    )


def test_page_renders_in_a_real_browser(tmp_path):
    browser = _chromium()
    if browser is None:
        pytest.skip("no Chromium: `make sandbox` installs it (apt-get install chromium)")
    result, nb = _example()
    page = tmp_path / "feedback.html"
    feedback.write(page, result, nb)
    shot = tmp_path / "feedback.png"
    flags = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    subprocess.run(
        [*flags, f"--screenshot={shot}", "--window-size=1000,700", page.as_uri()],
        check=True,
        capture_output=True,
        timeout=120,
    )
    dom = subprocess.run(
        [*flags, "--dump-dom", page.as_uri()], check=True, capture_output=True, timeout=120
    ).stdout.decode()
    assert '<table class="scores">' in dom and "test_l1_sparsity" in dom
    assert "<script" not in dom.split("</head>", 1)[1]
    _assert_screenshot_shows_the_table(shot)


def _assert_screenshot_shows_the_table(shot: Path) -> None:
    """The top of the page holds the score table: its red 'failed' text and grey borders."""
    from PIL import Image

    im = Image.open(shot).convert("RGB")
    assert im.size == (1000, 700)
    top = im.crop((0, 0, 1000, 350))
    colours = top.getcolors(maxcolors=1 << 20)
    red = sum(n for n, (r, g, b) in colours if r > 150 and g < 80 and b < 80)
    dark = sum(n for n, (r, g, b) in colours if r < 90 and g < 90 and b < 90)
    assert red > 30, "the 'failed' mark of the score table is not on screen"
    assert dark > 500, "no text at the top of the page"
