"""Auto-grader of student notebooks (``python -m nbutils.lab.grade NOTEBOOK [--json]
[--seed N | --seed-file FILE] [--no-sandbox]``).

Each exercise cell (tagged ``{"nbutils": {"exercise": name}}``) is defined in a fresh
process with the notebook's imports, its graded references withheld (`nbutils.lab.answers`),
and run on hidden cases drawn here from the seed (``--seed N``; ``--seed-file FILE`` or
``$NBUTILS_GRADE_SEED`` for a lab's secret one, which the report does not show; default: a
fresh one, reported); that process gets the cases' inputs, never the seed, and this process
judges the outcomes (`nbutils.lab.checks`). An answer that is, or calls, nbutils' own
implementation scores 0. The notebook also runs headlessly with a ``--preset`` (default
``ci``), reporting by number each cell that raises or runs past ``--timeout`` seconds; a
dead kernel, or a cell ignoring the interrupt, ends the run.

Both run in an operating-system sandbox (`nbutils.lab.sandbox`: bubblewrap); where it cannot
start, the grader refuses to grade and says why, unless ``--no-sandbox`` is given, which the
report then states on its first line.

Prints a table and the score ``k/n`` (or JSON); exit 0 when all pass, 1 otherwise, 2 for a
bad path, a file that is not a notebook, one without exercises, an exercise outside
`nbutils.lab.checks.GRADED`, or a sandbox that cannot start.
"""

from __future__ import annotations

import argparse
import ast
import copy
import json
import os
import secrets
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import nbformat

from nbutils.lab import sandbox
from nbutils.lab.answers import encode_case, run_answers, run_notebook
from nbutils.lab.checks import EXERCISES, GRADED, CheckResult, reference_of
from nbutils.lab.checks.core import judge_outcomes
from nbutils.lab.exercises import UNPARSABLE, python_source
from nbutils.lab.parameters import TAG, ParametersError, apply_preset, load_preset

SEED_ENV = "NBUTILS_GRADE_SEED"  # a lab's secret seed (never passed into the sandbox)
NO_SANDBOX = ("NOT SANDBOXED (--no-sandbox): the learner's code ran with the grader's own "
              "rights; see the README's grading section for what that lets it do")


class GradeError(ValueError):
    """The path is not a gradable notebook, or the sandbox cannot start."""


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
        except UNPARSABLE:  # a cell too deep to parse also raises MemoryError/RecursionError
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


def judge_answers(nb: Any, seed: int, timeout: float, sandboxed: bool = True
                  ) -> dict[str, CheckResult]:
    """Each exercise of ``nb`` run in fresh processes (in sandboxes) on the hidden cases of
    ``seed``, drawn here and sent as inputs, and judged here: {name: result}."""
    exercises = _exercises(nb)
    names = list(dict.fromkeys(exercises.values()))
    cells = [{"name": name, "index": i, "source": nb.cells[i].source}
             for i, name in exercises.items()]
    cases = {name: EXERCISES[name].cases(seed) for name in names}
    sent = {name: [encode_case(case) for case in cases[name]] for name in names}
    outcomes = run_answers(_imports(nb, list(exercises)), cells, names, sent, timeout,
                           sandboxed)
    results = {}
    for name in names:
        got = outcomes.get(name)
        if not isinstance(got, list):
            results[name] = CheckResult(False, f"{name}: {got or 'no result came back'}")
            continue
        exercise = EXERCISES[name]
        wants = [exercise.run(name, reference_of(name), case) for case in cases[name]]
        results[name] = judge_outcomes(exercise, cases[name], got, wants)
    return results


def grade(path: str | Path, timeout: int = 120, preset: str = "ci", seed: int | None = None,
          sandboxed: bool = True, show_seed: bool = True) -> dict[str, Any]:
    """Grade a notebook, answers in fresh processes and cells in a kernel, each in a sandbox
    (``sandboxed=False``: none): {"sandbox", "notebook", "seed" (None when not
    ``show_seed``), "score", "total", "exercises": [{"name", "passed", "reason"}],
    "cell_errors": [{"cell": number from 1, "error": "Type: message"}]}.

    Raises:
        GradeError: not a file, not a notebook, no exercise cells, an exercise that
            nbutils does not grade, or a sandbox that cannot start.
    """
    path = Path(path)
    nb = _read(path, preset)
    if sandboxed:
        why = sandbox.probe()
        if why:
            raise GradeError(f"cannot start the sandbox that runs the learner's code: {why}. "
                             "Refusing to grade without it; --no-sandbox grades anyway, with "
                             "the learner's code running with the grader's own rights")
    seed = secrets.randbelow(2**31) if seed is None else seed
    # The answers' processes and the kernel are independent: run them side by side.
    with ThreadPoolExecutor(max_workers=1) as pool:
        judged = pool.submit(judge_answers, copy.deepcopy(nb), seed, timeout, sandboxed)
        errors = run_notebook(nb, timeout, sandboxed)
        results = judged.result()
    exercises = [{"name": name, "passed": r.passed, "reason": r.message}
                 for name, r in results.items()]
    return {"sandbox": sandboxed, "notebook": str(path), "seed": seed if show_seed else None,
            "score": sum(r["passed"] for r in exercises), "total": len(exercises),
            "exercises": exercises,
            "cell_errors": [{"cell": i + 1, "error": e} for i, e in sorted(errors.items())]}


def format_report(result: dict[str, Any]) -> str:
    """The per-exercise table, the cells that failed, and the score, as text."""
    width = max(len("exercise"), *(len(r["name"]) for r in result["exercises"]))
    seed = "a secret seed" if result["seed"] is None else f"--seed {result['seed']}"
    lines = [] if result.get("sandbox", True) else [NO_SANDBOX]
    lines += [f"Grading {result['notebook']} (hidden cases: {seed})", "",
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


def _seed(args: argparse.Namespace) -> tuple[int | None, bool]:
    """(the seed, whether it is a secret): --seed, else --seed-file, else $NBUTILS_GRADE_SEED."""
    if args.seed is not None:
        return args.seed, False
    if args.seed_file is not None:
        try:
            text, where = Path(args.seed_file).read_text(), args.seed_file
        except (OSError, UnicodeDecodeError) as err:
            raise GradeError(f"--seed-file {args.seed_file}: cannot read it ({err})") from None
    elif os.environ.get(SEED_ENV):
        text, where = os.environ[SEED_ENV], f"${SEED_ENV}"
    else:
        return None, False
    try:
        return _at_least(0)(text.strip()), True
    except argparse.ArgumentTypeError as err:
        raise GradeError(f"{where}: the seed {err}") from None


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
    seeds = parser.add_mutually_exclusive_group()
    seeds.add_argument("--seed", type=_at_least(0), default=None,
                       help="seed of the hidden cases, shown in the report (default: a fresh "
                            "random one)")
    seeds.add_argument("--seed-file", metavar="FILE",
                       help=f"read the seed from FILE (or ${SEED_ENV}): a lab's secret seed, "
                            "which makes grades reproducible and is not shown in the report")
    parser.add_argument("--no-sandbox", action="store_true",
                        help="grade even where the sandbox cannot start: the learner's code "
                             "then runs with the grader's rights (the report says so first)")
    args = parser.parse_args(argv)
    try:
        seed, secret = _seed(args)
        result = grade(args.notebook, timeout=args.timeout, preset=args.preset, seed=seed,
                       sandboxed=not args.no_sandbox, show_seed=not secret)
    except GradeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2) if args.json else format_report(result))
    return 0 if result["score"] == result["total"] else 1


if __name__ == "__main__":
    sys.exit(main())
