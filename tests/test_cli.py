"""The command line a student and an instructor use."""

from __future__ import annotations

import subprocess
import sys

import pytest

from autograder import paths

NAME = "04_sparse_autoencoder"


def _run(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "autograder", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=paths.ROOT,
    )


def test_help_lists_every_command():
    out = _run("--help").stdout
    for command in ("release", "grade", "check", "validate", "demo"):
        assert command in out


def test_grade_requires_an_output_folder():
    proc = _run("grade", "somewhere")
    assert proc.returncode != 0 and "--out" in proc.stderr


@pytest.mark.slow
def test_check_passes_a_solved_notebook_and_fails_a_blank_one():
    solved = _run("check", str(paths.SOLUTIONS / f"{NAME}.ipynb"))
    assert solved.returncode == 0, solved.stdout + solved.stderr
    assert "PASS  kl_sparsity" in solved.stdout and "4/4 exercises pass" in solved.stdout
    blank = _run("check", str(paths.NOTEBOOKS / f"{NAME}.ipynb"))
    assert blank.returncode == 1
    assert "FAIL  kl_sparsity" in blank.stdout and "NotImplementedError" in blank.stdout
    assert "0/4 exercises pass" in blank.stdout


@pytest.mark.slow
def test_self_check_and_report_say_what_the_grader_says_once_and_quietly(tmp_path, capfd):
    import nbformat

    from autograder.selfcheck import _summaries, execute, uses
    from helpers.selfcheck import summary

    nb = nbformat.read(paths.SOLUTIONS / f"{NAME}.ipynb", as_version=4)
    answer = next(
        c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "l1_sparsity"
    )
    answer.source = answer.source.replace("return z.abs().mean()", "return z.abs().sum()")
    path = tmp_path / f"{NAME}.ipynb"
    nbformat.write(nb, path)
    done = execute(path)
    printed = summary(_summaries(done), uses(done))
    noise = capfd.readouterr()
    assert "without encryption" not in noise.out + noise.err
    report_out = "".join(o.get("text", "") for o in done.cells[-1].get("outputs", []))
    for text in (printed, report_out):
        assert "FAIL  l1_sparsity" in text and "PASS  kl_sparsity" in text, text
        assert (
            "CheckFailed: l1_sparsity is wrong: this looks like a classic mistake, summed" in text
        )
        l1 = text.split("FAIL  l1_sparsity", 1)[1].split("FAIL  ", 1)[0]
        for part in ("expected: 1.5", "got:      6", "input:    z = [[-1, 2], [0, -3]]", "hint:"):
            assert l1.count(part) == 1, (part, text)
        assert "visible tests passed" not in text
        sae = text.split("FAIL  sparse_ae_loss", 1)[1]
        assert "note: sparse_ae_loss calls l1_sparsity, which fails above" in sae
    # The grader words a failing visible check the same way: "<Name>: <message>" of the error.
    error = next(
        o
        for c in done.cells
        if c.cell_type == "code" and c.source.lstrip().startswith("# Tests: l1_sparsity")
        for o in c.outputs
        if o.get("output_type") == "error"
    )
    assert f"{error['ename']}: {error['evalue']}".splitlines()[0] in printed
