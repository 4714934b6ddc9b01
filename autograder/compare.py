"""Compare a submission's records with the reference's, outside the sandbox.

Both sides are produced by :func:`helpers.grading.grade`: the reference records by
running the solution notebook, the submission's by running the student's. Only
plain arrays and JSON cross the sandbox boundary, and every verdict is decided
here, so a patched ``torch.allclose`` or an object "equal to everything" inside
the student's kernel changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from autograder.records import load_records
from helpers.records import Record

__all__ = ["Verdict", "compare_all", "compare_record", "load_records"]


@dataclass
class Verdict:
    key: str  # "name#occurrence#case"
    passed: bool
    message: str = ""


def _fmt(a: np.ndarray, limit: int = 5) -> str:
    if a.ndim == 0:
        return f"{float(a):.6g}"
    flat = ", ".join(f"{v:.4g}" for v in a.ravel()[:limit])
    more = ", ..." if a.size > limit else ""
    return f"[{flat}{more}] (shape {a.shape})"


def _close(got: np.ndarray, exp: np.ndarray, atol: float, rtol: float) -> bool:
    if got.shape != exp.shape:
        return False
    return bool(np.allclose(got, exp, atol=atol, rtol=rtol, equal_nan=True))


def _matching_mistake(student: Record, ref: Record) -> str:
    labels = {k.split(".")[1]: v for k, v in ref.meta.items() if k.startswith("mistake.")}
    for j, label in labels.items():
        pre = f"mistake.{j}."
        wrong = {k[len(pre) :]: v for k, v in ref.arrays.items() if k.startswith(pre)}
        outs = {k: v for k, v in wrong.items() if k.startswith("out")}
        correct = {k: ref.arrays[k] for k in outs if k in ref.arrays}
        if not outs or all(_close(outs[k], correct.get(k, np.nan), 1e-8, 1e-8) for k in outs):
            continue  # this case cannot tell the mistake from the right answer
        if all(
            k in student.arrays and _close(student.arrays[k], v, 1e-5, 1e-4)
            for k, v in outs.items()
        ):
            return label
    return ""


def compare_record(key: str, student: Record | None, ref: Record) -> Verdict:
    """Judge one case. The tolerances and hints come from the trusted reference."""
    meta = ref.meta
    name, where = meta.get("name", key), meta.get("input", "")
    atol, rtol = float(meta.get("atol", 1e-5)), float(meta.get("rtol", 1e-4))

    def bad(what: str, expected: str, got: str, hint: str = "") -> Verdict:
        hint = hint or meta.get("hint", "")
        lines = [f"{name}: {what}", f"  expected: {expected}", f"  got:      {got}"]
        if where:
            lines.append(f"  input:    {where}")
        if hint:
            lines.append(f"  hint:     {hint}")
        return Verdict(key, False, "\n".join(lines))

    if "error" in meta:
        return Verdict(key, False, f"{name}: the reference itself failed ({meta['error']})")
    if student is None:
        return bad(
            "not checked", "the hidden check to run", "nothing recorded (the cell stopped early)"
        )
    if "error" in student.meta:
        return bad("raised an exception", "a result", str(student.meta["error"]))
    changed = [
        k[len("input.") :]
        for k, exp in ref.arrays.items()
        if k.startswith("input.")
        and not (
            k in student.arrays
            and student.arrays[k].shape == exp.shape
            and np.array_equal(student.arrays[k], exp, equal_nan=True)
        )
    ]
    if changed and not student.meta.get("modified"):
        student.meta["modified"] = changed
    if student.meta.get("modified"):
        return bad(
            "modified its input in place",
            "inputs left unchanged",
            f"changed {', '.join(map(str, student.meta['modified']))}",
            "use out-of-place operations (x = x + y, not x += y or x.clamp_())",
        )
    for k, v in meta.items():
        if (
            k.startswith("out")
            and k.endswith((".dtype", ".len", ".keys"))
            and student.meta.get(k) != v
        ):
            return bad(
                f"wrong type or structure of {k.rsplit('.', 1)[0]}",
                str(v),
                str(student.meta.get(k)),
            )
    mistake = _matching_mistake(student, ref)
    for k, exp in ref.arrays.items():
        if k.startswith(("mistake.", "input.")):
            continue
        got = student.arrays.get(k)
        label = "value" if k.startswith("out") else f"gradient w.r.t. {k[5:]}"
        if got is None:
            return bad(f"no {label}", _fmt(exp), "nothing", "keep the computation differentiable")
        if got.shape != exp.shape:
            return bad(f"wrong shape of the {label}", str(exp.shape), str(got.shape), mistake)
        if not _close(got, exp, atol, rtol):
            diff = np.nanmax(
                np.abs(np.nan_to_num(got - exp, nan=np.inf, posinf=np.inf, neginf=np.inf))
            )
            return bad(f"wrong {label} (max abs diff {diff:.3g})", _fmt(exp), _fmt(got), mistake)
    for k, v in meta.items():
        if k.startswith("grad.") and student.meta.get(k) != v:
            return bad(f"no gradient w.r.t. {k[5:]}", "a gradient", "none")
    return Verdict(key, True, f"{name}: ok ({where})" if where else f"{name}: ok")


def compare_all(student: dict[str, Record], reference: dict[str, Record]) -> dict[str, Verdict]:
    """A verdict for every reference key (a student record with no reference is ignored)."""
    return {
        key: compare_record(key, student.get(key), ref) for key, ref in sorted(reference.items())
    }
