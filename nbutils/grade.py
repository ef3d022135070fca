"""Auto-grader of student notebooks (``python -m nbutils.grade NOTEBOOK [--json] [--timeout S]``).

Executes the notebook headlessly (kernel python3, cwd = the notebook's folder) cell by cell,
its ``parameters`` cell overridden by a preset (``--preset``, default ``ci``: the small
setting, see `nbutils.parameters`);
a cell that raises or runs past ``--timeout`` seconds (the kernel is interrupted) is
recorded and execution goes on. Then, in the same kernel, each exercise (cells tagged
``{"nbutils": {"exercise": name}}``) is checked with ``check_<name>(<name>, hidden=True)``.
Prints a table and the score ``k/n`` (or JSON); exit 0 when all pass, 1 otherwise, 2 for a
bad path, a file that is not a notebook, a notebook without exercises, or one with an
exercise that is not in the registry of graded functions (`nbutils.checks.GRADED`).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import nbformat
from nbclient import NotebookClient

from nbutils.checks import GRADED
from nbutils.parameters import TAG, ParametersError, apply_preset, load_preset

MARKER = "__NBUTILS_GRADE__"


class GradeError(ValueError):
    """The path is not a gradable notebook."""


def _exercises(nb: Any) -> dict[int, str]:
    """{cell index: exercise name} of the tagged exercise cells."""
    found = {}
    for i, cell in enumerate(nb.cells):
        name = cell.get("metadata", {}).get("nbutils", {}).get("exercise")
        if cell.cell_type == "code" and isinstance(name, str):
            found[i] = name
    return found


def _error_of(reply: dict[str, Any]) -> str | None:
    content = reply.get("content", {})
    if content.get("status") != "error":
        return None
    return f"{content.get('ename', 'Error')}: {content.get('evalue', '')}".strip()


def grade(path: str | Path, timeout: int = 120, preset: str = "ci") -> dict[str, Any]:
    """Execute and grade a student notebook, at the parameters of ``preset``.

    Returns:
        {"notebook", "score": k, "total": n, "exercises": [{"name", "passed", "reason"}],
        "cell_errors": [{"cell": index, "error": "Type: message"}]}.

    Raises:
        GradeError: not a file, not a notebook, no exercise cells, or an exercise that
            nbutils does not grade.
    """
    path = Path(path)
    if not path.is_file():
        raise GradeError(f"{path}: no such file")
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as err:  # nbformat raises several unrelated types for bad input
        raise GradeError(f"{path}: not a notebook ({type(err).__name__})") from None
    try:
        values = load_preset(preset)
        if any(TAG in c.get("metadata", {}).get("tags", []) for c in nb.cells):
            nb = apply_preset(nb, values)
    except ParametersError as err:
        raise GradeError(f"{path}: {err}") from None
    exercises = _exercises(nb)
    if not exercises:
        raise GradeError(f"{path}: no exercise cells (make it with python -m nbutils.exercises)")
    unknown = sorted(set(exercises.values()) - set(GRADED))
    if unknown:
        raise GradeError(f"{path}: no check for the exercise(s) {', '.join(unknown)}; the "
                         f"graded functions are {', '.join(GRADED)}")

    errors: dict[int, str] = {}

    def on_cell_executed(cell: Any, cell_index: int, execute_reply: dict[str, Any]) -> None:
        error = _error_of(execute_reply)
        if error is not None and cell_index < len(nb.cells) - 1:
            errors[cell_index] = error

    names = list(dict.fromkeys(exercises.values()))
    nb.cells.append(nbformat.v4.new_code_cell(
        "import json as _json\nfrom nbutils.checks import grade_namespace as _grade\n"
        f"print({MARKER!r} + _json.dumps(_grade({names!r}, globals())))"))
    client = NotebookClient(
        nb, timeout=timeout, kernel_name="python3", allow_errors=True,
        interrupt_on_timeout=True, record_timing=False,
        error_on_timeout={"ename": "Timeout", "evalue": f"cell ran past {timeout} s"},
        on_cell_executed=on_cell_executed, resources={"metadata": {"path": str(path.parent)}})
    with client.setup_kernel():
        for index, cell in enumerate(nb.cells):
            if cell.cell_type == "code":
                client.execute_cell(cell, index)
    report = _parse_report(nb.cells[-1])

    results = []
    for index, name in exercises.items():
        entry = report.get(name, {"passed": False, "message": f"{name}: not checked"})
        reason = entry["message"]
        if index in errors:
            reason = f"{name}: its cell failed: {errors[index]}"
        results.append({"name": name, "passed": entry["passed"] and index not in errors,
                        "reason": reason})
    return {"notebook": str(path), "score": sum(r["passed"] for r in results),
            "total": len(results), "exercises": results,
            "cell_errors": [{"cell": i, "error": e} for i, e in sorted(errors.items())]}


def _parse_report(cell: Any) -> dict[str, Any]:
    for output in cell.get("outputs", []):
        for line in output.get("text", "").splitlines():
            if line.startswith(MARKER):
                return json.loads(line[len(MARKER):])
    return {}


def format_report(result: dict[str, Any]) -> str:
    """The per-exercise table and the score, as text."""
    width = max(len("exercise"), *(len(r["name"]) for r in result["exercises"]))
    lines = [f"Grading {result['notebook']}", "",
             f"{'exercise':<{width}}  result  first reason", "-" * (width + 30)]
    for r in result["exercises"]:
        verdict = "passed" if r["passed"] else "FAILED"
        reason = "" if r["passed"] else r["reason"]
        lines.append(f"{r['name']:<{width}}  {verdict}  {reason}")
    if result["cell_errors"]:
        lines += ["", f"{len(result['cell_errors'])} cell(s) raised an error, e.g. cell "
                      f"{result['cell_errors'][0]['cell']}: {result['cell_errors'][0]['error']}"]
    pct = 100 * result["score"] / result["total"]
    lines += ["", f"Score: {result['score']}/{result['total']} ({pct:.0f}%)"]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: grade one notebook; exit 0 all passed, 1 some failed, 2 not gradable."""
    parser = argparse.ArgumentParser(prog="python -m nbutils.grade", description=__doc__)
    parser.add_argument("notebook")
    parser.add_argument("--json", action="store_true", help="print a JSON object")
    parser.add_argument("--timeout", type=int, default=120, help="seconds per cell")
    parser.add_argument("--preset", default="ci",
                        help="parameters preset (nbutils/presets/NAME.yaml), default ci")
    args = parser.parse_args(argv)
    try:
        result = grade(args.notebook, timeout=args.timeout, preset=args.preset)
    except GradeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2) if args.json else format_report(result))
    return 0 if result["score"] == result["total"] else 1


if __name__ == "__main__":
    sys.exit(main())
