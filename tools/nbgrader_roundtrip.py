"""The nbgrader round trip: the course's nbgrader assignments, graded by the real nbgrader.

    .venv/bin/python tools/nbgrader_roundtrip.py [--nbgrader-venv .venv-nbgrader] [--workdir DIR]

Runs with the project's python; nbgrader runs from its own venv (``make nbgrader-venv``),
its notebooks executed by a ``python3`` kernel that is the project's python (a kernelspec
in a temporary JUPYTER_PATH; every submission reports its kernel's ``sys.prefix``). In a
fresh course folder:

1. ``python -m nbutils.lab.exercises --format nbgrader`` emits the art and face notebooks, one
   assignment each (the hidden seed drawn fresh, as an instructor would);
2. ``nbgrader generate_assignment``; the release must hold no line of a reference body, no
   solution or hidden-test region and not the hidden seed;
3. submissions: the source (full marks), the blank release (0), one per `MISTAKES` (one
   wrong exercise each; those not ``in_make_test`` only with ``--all-mistakes``), and one
   whose answers import nbutils' references (`IMPORTS_REFERENCE`: 0 for those);
4. ``nbgrader autograde``, then the scores are read from nbgrader's gradebook and checked
   per student, notebook and exercise, with the message of each failing test.

A wrong exercise also fails the tests of the exercises whose reference calls it (the
learner's ``make_train_step`` calls the learner's ``total_cost``): `dependents`.
Exit 0 when everything holds, 1 otherwise (the work folder is then kept).
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import inspect
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat

from nbutils.lab.checks import GRADED, reference_of
from nbutils.lab.exercises import reference_body_lines
from nbutils.lab.exercises.__main__ import main as emit

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = {"art_generation": ROOT / "notebooks/art_generation.py",
             "face_recognition": ROOT / "notebooks/face_recognition.py"}
KERNEL_MARK = "nbgrader round trip, kernel prefix:"
IMPORTS_REFERENCE = "face_recognition"  # the notebook whose answers import the references
TIMEOUT = 1200  # seconds for one nbgrader command
GRADEBOOK = """
import json, sys
from nbgrader.api import Gradebook
scores = {}
with Gradebook(sys.argv[1]) as gb:
    for assignment in gb.assignments:
        for submission in gb.assignment_submissions(assignment.name):
            for nb in submission.notebooks:
                scores.setdefault(submission.student_id, {})[nb.name] = {
                    grade.name: [grade.score, grade.max_score] for grade in nb.grades}
print(json.dumps(scores))
"""


@dataclass(frozen=True)
class Mistake:
    """A classic mistake: ``old`` -> ``new`` in the reference body of ``name``; its check
    must fail saying ``message``."""

    notebook: str
    name: str
    old: str
    new: str
    message: str
    in_make_test: bool = True  # False: only with --all-mistakes (time budget of make test)

    @property
    def student(self) -> str:
        return f"wrong-{self.name}"


# Sized for make test: one autograde takes about 60 s (art) or 30 s (face) here, so make test
# runs the art source and blank and five face submissions (about 5 min in all).
MISTAKES = [
    Mistake("art_generation", "total_cost", "alpha * J_content + beta * J_style",
            "beta * J_content + alpha * J_style", "alpha and beta swapped", in_make_test=False),
    Mistake("face_recognition", "triplet_loss",
            "tf.reduce_sum(triplet_hinge(pos_dist, neg_dist, alpha))",
            "tf.maximum(tf.reduce_sum(pos_dist - neg_dist + alpha), 0.0)", "max of the sum"),
    Mistake("face_recognition", "verify", "door_open = dist < threshold",
            "door_open = dist > threshold", "threshold on the wrong side"),
    Mistake("face_recognition", "who_is_it", "if min_dist >= threshold:",
            "if False:  # forgot the stranger", "must return None as the identity",
            in_make_test=False),
]


def dependents(name: str) -> set[str]:
    """The graded functions whose reference calls ``name``, directly or through another."""
    calls = {n: {node.id for node in ast.walk(ast.parse(inspect.getsource(reference_of(n))))
                 if isinstance(node, ast.Name) and node.id in GRADED and node.id != n}
             for n in GRADED}
    found: set[str] = set()
    todo = [name]
    while todo:
        callee = todo.pop()
        for caller, callees in calls.items():
            if callee in callees and caller not in found:
                found.add(caller)
                todo.append(caller)
    return found


def environment(work: Path, venv: Path) -> dict[str, str]:
    """nbgrader's environment: its venv first on PATH (it runs ``alembic``), Jupyter
    folders of its own, and a ``python3`` kernelspec that is this (the project's) python."""
    kernel = work / "jupyter" / "kernels" / "python3"
    kernel.mkdir(parents=True)
    (kernel / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (nbutils)", "language": "python"}))
    env = dict(os.environ, PATH=f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
               JUPYTER_PATH=str(work / "jupyter"), JUPYTER_CONFIG_DIR=str(work / "config"),
               JUPYTER_DATA_DIR=str(work / "data"), IPYTHONDIR=str(work / "ipython"),
               NBUTILS_OUTPUT_DIR=str(work / "outputs"))
    env.pop("VIRTUAL_ENV", None)
    return env


def run(command: list[str], cwd: Path, env: dict[str, str], log: Path) -> float:
    """Run a command, its output appended to ``log``; its wall time in seconds."""
    start = time.monotonic()
    with open(log, "a") as out:
        out.write(f"\n$ {' '.join(command)}\n")
        out.flush()
        done = subprocess.run(command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                              timeout=TIMEOUT, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"`{' '.join(command)}` exited with {done.returncode}; see {log}")
    return time.monotonic() - start


def cells(path: Path) -> list[Any]:
    return nbformat.read(path, as_version=4).cells


def exercises_of(path: Path) -> list[str]:
    """The graded names of a source notebook, in order."""
    return [c.metadata["nbutils"]["exercise"] for c in cells(path)
            if "exercise" in c.metadata.get("nbutils", {})]


def release_problems(release: Path, seed: int) -> list[str]:
    """What the released notebook gives away: reference lines, regions, the seed."""
    text = release.read_text()
    lines = {line.strip() for cell in cells(release) for line in cell.source.splitlines()}
    problems = [f"{release.name}: holds {marker!r}" for marker in
                ("BEGIN SOLUTION", "BEGIN HIDDEN TESTS", str(seed)) if marker in text]
    for name in GRADED:
        leaked = lines & {line.strip() for line in reference_body_lines(name)
                          if any(ch.isalnum() for ch in line)}
        if leaked:
            problems.append(f"{release.name}: lines of the reference {name}: {sorted(leaked)}")
    return problems


def submit(course: Path, student: str, assignment: str, nb: Any) -> None:
    """``nb`` as ``student``'s submission, with a cell that reports the kernel."""
    nb.cells.append(nbformat.v4.new_code_cell(f"import sys\nprint({KERNEL_MARK!r}, sys.prefix)"))
    folder = course / "submitted" / student / assignment
    folder.mkdir(parents=True)
    nbformat.write(nb, folder / f"{assignment}.ipynb")


def with_answer(nb: Any, name: str, source: str) -> Any:
    """A copy of ``nb`` whose answer cell of ``name`` is ``source``."""
    nb = nbformat.from_dict(nb)
    for cell in nb.cells:
        if cell.metadata.get("nbutils", {}).get("exercise") == name:
            cell.source = source
    return nb


def submissions(course: Path, mistakes: list[Mistake]
                ) -> dict[str, dict[str, dict[str, str | None]]]:
    """Write every submission; {student: {assignment: {exercise: None (passes) or what its
    failing test must say ("" for anything)}}}."""
    expected: dict[str, dict[str, dict[str, str | None]]] = {}
    for assignment in NOTEBOOKS:
        source = nbformat.read(course / "source" / assignment / f"{assignment}.ipynb", 4)
        names = exercises_of(course / "source" / assignment / f"{assignment}.ipynb")
        release = nbformat.read(course / "release" / assignment / f"{assignment}.ipynb", 4)
        plan = {"source": (source, {}),
                "blank": (release, dict.fromkeys(names, ""))}
        for m in (m for m in mistakes if m.notebook == assignment):
            answer = next(c.source for c in source.cells
                          if c.metadata.get("nbutils", {}).get("exercise") == m.name)
            if m.old not in answer:
                raise ValueError(f"MISTAKES: the answer of {m.name} no longer contains "
                                 f"{m.old!r}; update the mistake in {__file__}")
            fails = {m.name: m.message} | dict.fromkeys(dependents(m.name) & set(names), "")
            plan[m.student] = (with_answer(source, m.name, answer.replace(m.old, m.new)), fails)
        if assignment == IMPORTS_REFERENCE:
            nb = source
            for name in names:
                nb = with_answer(nb, name, f"from {GRADED[name]} import {name}")
            plan["imports-reference"] = (nb, dict.fromkeys(names, "the reference"))
        for student, (nb, fails) in plan.items():
            submit(course, student, assignment, nbformat.from_dict(nb))
            expected.setdefault(student, {})[assignment] = {n: fails.get(n) for n in names}
    return expected


def outputs_of_test(path: Path, name: str) -> str:
    """Everything the autograded test cell of ``name`` printed or raised."""
    cell = next(c for c in cells(path) if c.metadata.get("nbgrader", {}).get("grade_id")
                == f"test_{name}")
    return "\n".join(o.get("text", "") + o.get("evalue", "") + "\n".join(o.get("traceback", []))
                     for o in cell.get("outputs", []))


def judge(course: Path, scores: dict, expected: dict) -> list[str]:
    """Every way the gradebook and the autograded notebooks differ from ``expected``."""
    problems = []
    for student, notebooks in expected.items():
        for assignment, exercises in notebooks.items():
            graded = course / "autograded" / student / assignment / f"{assignment}.ipynb"
            got = scores.get(student, {}).get(assignment)
            if got is None or not graded.is_file():
                problems.append(f"{student}/{assignment}: not autograded")
                continue
            kernel = "\n".join(o.get("text", "") for o in cells(graded)[-1].get("outputs", []))
            if f"{KERNEL_MARK} {sys.prefix}" not in kernel:
                problems.append(f"{student}/{assignment}: not run by {sys.prefix}: {kernel!r}")
            for name, message in exercises.items():
                score, most = got.get(f"test_{name}", [None, None])
                want = most if message is None else 0.0
                if score != want:
                    problems.append(f"{student}/{assignment}/{name}: {score} points, "
                                    f"expected {want}")
                if message and message not in outputs_of_test(graded, name):
                    problems.append(f"{student}/{assignment}/{name}: the failing test does not "
                                    f"say {message!r}: {outputs_of_test(graded, name)[-300:]!r}")
    return problems


def table(scores: dict, expected: dict) -> str:
    """The gradebook's scores, one row per submission, one block per assignment."""
    rows = []
    for assignment in NOTEBOOKS:
        students = [s for s in expected if assignment in expected[s]]
        names = list(expected[students[0]][assignment])
        width = max(len(s) for s in students)
        rows += ["", f"{assignment}:", "  ".join([f"{'student':<{width}}", *names, "total"])]
        for student in students:
            got = scores.get(student, {}).get(assignment, {})
            columns = [f"{got[f'test_{n}'][0]:g}/{got[f'test_{n}'][1]:g}" if f"test_{n}" in got
                       else "-" for n in names]
            total = [sum(v[i] for v in got.values()) for i in (0, 1)]
            rows.append("  ".join([f"{student:<{width}}",
                                   *(f"{c:>{len(n)}}" for c, n in zip(columns, names, strict=True)),
                                   f"{total[0]:g}/{total[1]:g}"]))
    return "\n".join(rows)


def round_trip(work: Path, venv: Path, mistakes: list[Mistake]) -> list[str]:
    """Emit, release, submit, autograde and read the gradebook in ``work``; print the
    table and the times; return what is wrong."""
    course, log = work / "course", work / "nbgrader.log"
    env = environment(work, venv)
    with open(log, "w") as out, contextlib.redirect_stdout(out):  # the CLI, in this process
        if emit(["--format", "nbgrader", "--out", str(course),
                 *map(str, NOTEBOOKS.values())]) != 0:
            raise RuntimeError("python -m nbutils.lab.exercises --format nbgrader failed; "
                               f"see {log}")
    tests = "".join(c.source for a in NOTEBOOKS
                    for c in cells(course / "source" / a / f"{a}.ipynb"))
    seed = int(re.search(r"seed=(\d+)", tests).group(1))
    problems, times = [], {}
    for assignment in NOTEBOOKS:
        times[f"generate_assignment {assignment}"] = run(
            [str(venv / "bin" / "nbgrader"), "generate_assignment", assignment], course, env, log)
        problems += release_problems(course / "release" / assignment / f"{assignment}.ipynb",
                                     seed)
    expected = submissions(course, mistakes)
    for assignment in NOTEBOOKS:
        count = sum(assignment in notebooks for notebooks in expected.values())
        seconds = run([str(venv / "bin" / "nbgrader"), "autograde", assignment], course, env, log)
        times[f"autograde {assignment}: {count} submissions"] = seconds
        times[f"  per submission ({assignment})"] = seconds / count
    done = subprocess.run([str(venv / "bin" / "python"), "-c", GRADEBOOK,
                           f"sqlite:///{course / 'gradebook.db'}"], env=env,
                          capture_output=True, text=True, timeout=TIMEOUT, check=True)
    scores = json.loads(done.stdout)
    print(table(scores, expected), end="\n\n")
    for what, seconds in times.items():
        print(f"{what}: {seconds:.0f} s")
    return problems + judge(course, scores, expected)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tools/nbgrader_roundtrip.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nbgrader-venv", type=Path, default=ROOT / ".venv-nbgrader")
    parser.add_argument("--workdir", type=Path, help="work here (kept) instead of a temp dir")
    parser.add_argument("--all-mistakes", action="store_true",
                        help="every mistake of MISTAKES, not only those of make test "
                             "(each submission adds 30 s (face) to 75 s (art))")
    args = parser.parse_args(argv)
    nbgrader = args.nbgrader_venv.absolute() / "bin" / "nbgrader"
    if not nbgrader.is_file():
        print(f"error: no {nbgrader}: run `make nbgrader-venv`", file=sys.stderr)
        return 2
    if args.workdir and args.workdir.exists() and any(args.workdir.iterdir()):
        print(f"error: --workdir {args.workdir} is not empty", file=sys.stderr)
        return 2
    start = time.monotonic()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="nbgrader-roundtrip-"))
    try:
        problems = round_trip(work, args.nbgrader_venv.absolute(),
                              [m for m in MISTAKES if args.all_mistakes or m.in_make_test])
    except (RuntimeError, subprocess.SubprocessError, OSError, ValueError) as err:
        problems = [f"{type(err).__name__}: {err}"]
    print(f"total: {time.monotonic() - start:.0f} s")
    if problems:
        print(f"\nFAILED (work folder kept: {work}):\n  " + "\n  ".join(problems))
        return 1
    if args.workdir is None:
        shutil.rmtree(work)
    print("nbgrader round trip: every score as expected")
    return 0


if __name__ == "__main__":
    sys.exit(main())
