"""Auto-grader of student notebooks (``python -m nbutils.lab.grade NOTEBOOK [--json] [--seed N]``).

Each exercise cell (tagged ``{"nbutils": {"exercise": name}}``) is defined in a fresh
process with the notebook's imports, its graded references withheld (`nbutils.lab.answers`),
and run on hidden cases drawn from ``--seed`` (default: a fresh one, reported); this process
judges the outcomes (`nbutils.lab.checks`). An answer that is, or calls, nbutils' own
implementation scores 0. The notebook also runs headlessly with a ``--preset`` (default
``ci``), reporting by number each cell that raises or runs past ``--timeout`` seconds; a
dead kernel, or a cell ignoring the interrupt, ends the run.

Prints a table and the score ``k/n`` (or JSON); exit 0 when all pass, 1 otherwise, 2 for a
bad path, a file that is not a notebook, one without exercises, or an exercise outside
`nbutils.lab.checks.GRADED`.
"""

from __future__ import annotations

import argparse
import ast
import copy
import json
import secrets
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import DeadKernelError
from nbclient.util import run_sync

from nbutils.lab.answers import run_answers
from nbutils.lab.checks import EXERCISES, GRADED, CheckResult, reference_of
from nbutils.lab.checks.core import judge_outcomes
from nbutils.lab.exercises import python_source
from nbutils.lab.parameters import TAG, ParametersError, apply_preset, load_preset

GRACE_S = 10  # how long an interrupted cell has to stop before the kernel is stopped


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


def _imports(nb: Any, skip: Sequence[int]) -> list[str]:
    """The top-level import statements of the code cells not in ``skip``, in order."""
    statements = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or i in skip:
            continue
        source = python_source(cell.source)
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        statements += [ast.get_source_segment(source, node) or "" for node in tree.body
                       if isinstance(node, ast.Import | ast.ImportFrom)]
    return statements


def _read(path: Path, preset: str) -> Any:
    """The notebook at its preset's parameters; GradeError when it cannot be graded."""
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
        raise GradeError(f"{path}: no exercise cells "
                         "(make it with python -m nbutils.lab.exercises)")
    unknown = sorted(set(exercises.values()) - set(GRADED))
    if unknown:
        raise GradeError(f"{path}: no check for the exercise(s) {', '.join(unknown)}; the "
                         f"graded functions are {', '.join(GRADED)}")
    return nb


def judge_answers(nb: Any, folder: Path, seed: int, timeout: float) -> dict[str, CheckResult]:
    """Each exercise of ``nb`` run in fresh processes and judged here: {name: result}."""
    exercises = _exercises(nb)
    names = list(dict.fromkeys(exercises.values()))
    cells = [{"name": name, "index": i, "source": nb.cells[i].source}
             for i, name in exercises.items()]
    outcomes = run_answers(str(folder.resolve()), _imports(nb, list(exercises)), cells, names,
                           seed, timeout)
    results = {}
    for name in names:
        got = outcomes.get(name)
        if not isinstance(got, list):
            results[name] = CheckResult(False, f"{name}: {got or 'no result came back'}")
            continue
        exercise = EXERCISES[name]
        cases = exercise.cases(seed)
        wants = [exercise.run(name, reference_of(name), case) for case in cases]
        results[name] = judge_outcomes(exercise, cases, got, wants)
    return results


def execute_notebook(nb: Any, folder: Path, timeout: int) -> dict[int, str]:
    """Execute every code cell of ``nb`` in a fresh kernel: {cell index: what went wrong}."""
    errors: dict[int, str] = {}
    replies: dict[int, dict] = {}

    def on_cell_executed(cell: Any, cell_index: int, execute_reply: dict[str, Any]) -> None:
        replies[cell_index] = execute_reply.get("content", {})

    client = NotebookClient(
        nb, timeout=timeout, kernel_name="python3", allow_errors=True,
        interrupt_on_timeout=True, record_timing=False,
        error_on_timeout={"ename": "Timeout", "evalue": f"ran past {timeout} s"},
        on_cell_executed=on_cell_executed, resources={"metadata": {"path": str(folder)}})
    probe = nbformat.v4.new_code_cell("pass")
    with client.setup_kernel():
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            try:
                client.execute_cell(cell, index)
            except DeadKernelError:
                errors[index] = "the kernel died; the cells after it did not run"
                break
            reply = replies.get(index, {})
            if reply.get("status") == "error":
                errors[index] = f"{reply.get('ename', 'Error')}: {reply.get('evalue', '')}"
            if reply.get("ename") == "Timeout":  # interrupted: has it stopped?
                client.timeout = GRACE_S
                nb.cells.append(probe)
                client.execute_cell(probe, len(nb.cells) - 1)
                nb.cells.pop()
                client.timeout = timeout
                if replies.pop(len(nb.cells), {}).get("ename") == "Timeout":
                    errors[index] = (f"ran past {timeout} s and ignored the interrupt; the "
                                     "kernel was stopped and the cells after it did not run")
                    run_sync(client.km.shutdown_kernel)(now=True)
                    break
    return errors


def grade(path: str | Path, timeout: int = 120, preset: str = "ci", seed: int | None = None
          ) -> dict[str, Any]:
    """Grade a notebook, answers in fresh processes and cells in a kernel: {"notebook",
    "seed", "score", "total", "exercises": [{"name", "passed", "reason"}], "cell_errors":
    [{"cell": number from 1, "error": "Type: message"}]}.

    Raises:
        GradeError: not a file, not a notebook, no exercise cells, or an exercise that
            nbutils does not grade.
    """
    path = Path(path)
    nb = _read(path, preset)
    seed = secrets.randbelow(2**31) if seed is None else seed
    # The answers' processes and the kernel are independent: run them side by side.
    with ThreadPoolExecutor(max_workers=1) as pool:
        judged = pool.submit(judge_answers, copy.deepcopy(nb), path.parent, seed, timeout)
        errors = execute_notebook(nb, path.parent, timeout)
        results = judged.result()
    exercises = [{"name": name, "passed": r.passed, "reason": r.message}
                 for name, r in results.items()]
    return {"notebook": str(path), "seed": seed,
            "score": sum(r["passed"] for r in exercises), "total": len(exercises),
            "exercises": exercises,
            "cell_errors": [{"cell": i + 1, "error": e} for i, e in sorted(errors.items())]}


def format_report(result: dict[str, Any]) -> str:
    """The per-exercise table, the cells that failed, and the score, as text."""
    width = max(len("exercise"), *(len(r["name"]) for r in result["exercises"]))
    lines = [f"Grading {result['notebook']} (hidden cases: --seed {result['seed']})", "",
             f"{'exercise':<{width}}  result  first reason", "-" * (width + 30)]
    for r in result["exercises"]:
        verdict = "passed" if r["passed"] else "FAILED"
        reason = "" if r["passed"] else r["reason"]
        lines.append(f"{r['name']:<{width}}  {verdict}  {reason}")
    if result["cell_errors"]:
        lines += ["", f"{len(result['cell_errors'])} cell(s) failed when the notebook ran:"]
        lines += [f"  cell {e['cell']}: {e['error']}" for e in result["cell_errors"]]
    pct = 100 * result["score"] / result["total"]
    lines += ["", f"Score: {result['score']}/{result['total']} ({pct:.0f}%)"]
    return "\n".join(lines)


def _at_least(low: int) -> Any:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value
    return parse


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: grade one notebook; exit 0 all passed, 1 some failed, 2 not gradable."""
    parser = argparse.ArgumentParser(prog="python -m nbutils.lab.grade", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebook")
    parser.add_argument("--json", action="store_true", help="print a JSON object")
    parser.add_argument("--timeout", type=_at_least(1), default=120,
                        help="seconds per cell, and per exercise's hidden cases")
    parser.add_argument("--preset", default="ci",
                        help="parameters preset (nbutils/lab/presets/NAME.yaml), default ci")
    parser.add_argument("--seed", type=_at_least(0), default=None,
                        help="seed of the hidden cases (default: a fresh random one; a lab "
                             "keeps its own secret to make grades reproducible)")
    args = parser.parse_args(argv)
    try:
        result = grade(args.notebook, timeout=args.timeout, preset=args.preset, seed=args.seed)
    except GradeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2) if args.json else format_report(result))
    return 0 if result["score"] == result["total"] else 1


if __name__ == "__main__":
    sys.exit(main())
