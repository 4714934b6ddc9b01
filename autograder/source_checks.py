"""Checks made on a submission's source text, outside the sandbox.

The kernel can lie about what it runs; the notebook file cannot: these checks read
the answer cells with ``ast`` and find out whether an exercise is defined there,
and whether its definition contains a Python loop or comprehension.
"""

from __future__ import annotations

import ast

from helpers.selfcheck import loops_in_source

_MAX_CELL = 200_000


def _python(source: str) -> str:
    """Cell source as plain Python (IPython magics and shell escapes removed)."""
    try:
        from IPython.core.inputtransformer2 import TransformerManager

        return TransformerManager().transform_cell(source)
    except Exception:  # noqa: BLE001 - fall back to dropping magic lines
        return "\n".join(
            line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))
        )


def definitions(cells) -> dict[str, str]:
    """Top-level ``def``/``class`` names in the given code cells and their source (last wins)."""
    found: dict[str, str] = {}
    for cell in cells:
        src = str(cell.get("source", ""))[:_MAX_CELL]
        code = _python(src)
        try:
            tree = ast.parse(code)
        except (SyntaxError, ValueError, RecursionError):
            continue
        for node in tree.body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                found[node.name] = ast.get_source_segment(code, node) or ""
            elif isinstance(node, ast.Assign | ast.AnnAssign):  # f = something: not a definition
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for t in targets:
                    if isinstance(t, ast.Name):
                        found.pop(t.id, None)
            elif isinstance(node, ast.Import | ast.ImportFrom):  # an import shadows a definition
                for alias in node.names:
                    found.pop(alias.asname or alias.name.split(".")[0], None)
    return found


def check_definition(defs: dict[str, str], name: str, vectorised: bool) -> str:
    """ "" when ``name`` is defined as required, else the reason."""
    if name not in defs:
        return (
            f"{name} is not defined in an answer cell of this notebook "
            "(it must be your own definition, not imported or assigned)"
        )
    if vectorised:
        loops = loops_in_source(defs[name])
        if loops:
            return (
                f"{name} is not vectorised: found {', '.join(loops)}; "
                "operate on whole tensors (reductions take dim=) instead of looping"
            )
    return ""


def graded_calls(test_source: str) -> list[str]:
    """Exercise names of the ``grade("name", ...)`` calls in a test cell, in order."""
    try:
        tree = ast.parse(_python(test_source))
    except SyntaxError:
        return []
    names = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "grade"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            names.append((node.lineno, node.col_offset, node.args[0].value))
    return [n for *_, n in sorted(names)]
