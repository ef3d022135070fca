"""nbgrader source assignments: ``python -m nbutils.lab.exercises --format nbgrader``.

`write_course` writes ``OUT/source/<assignment>/<notebook>.ipynb`` and
``OUT/nbgrader_config.py``: the student copy of `nbutils.lab.exercises.make_student` with
nbgrader 0.9's cell metadata (schema 3). Each graded function is an autograded answer (the
reference's signature and docstring, then its body between ``### BEGIN SOLUTION`` and
``### END SOLUTION``); each check is a locked autograded test with points (the visible
check, then hidden cases from a secret seed between ``### BEGIN HIDDEN TESTS`` and
``### END HIDDEN TESTS``); every other cell is read-only, the widget cells with their code
commented out (`widget_source`). The parameters are a preset's
(default ``ci``, `nbutils.lab.parameters`), so every cell runs well within nbgrader's
per-cell timeout (`CELL_TIMEOUT`). ``nbgrader generate_assignment`` then makes the release.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import nbformat

from nbutils.lab.checks import CHECKS
from nbutils.lab.exercises import (
    STUB_BODY,
    WIDGET_TAG,
    ExerciseError,
    make_student,
    read_notebook,
    reference_body_lines,
    stub_source,
)
from nbutils.lab.parameters import ParametersError, apply_preset, load_preset, notebook_parameters

SCHEMA_VERSION = 3
BEGIN_SOLUTION, END_SOLUTION = "### BEGIN SOLUTION", "### END SOLUTION"
BEGIN_HIDDEN, END_HIDDEN = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
CODE_STUB = "# YOUR CODE HERE\nraise NotImplementedError()"  # what the release shows instead
CELL_TIMEOUT = 300  # seconds per cell; the longest cell at the ci preset takes about 15 s
# Points of each test, by difficulty; 1 for the others.
POINTS = {"compute_layer_style_cost": 2, "compute_style_cost": 2, "make_train_step": 3,
          "triplet_loss": 2}
CONFIG_HEADER = ("# nbgrader configuration written by "
                 "python -m nbutils.lab.exercises --format nbgrader")


def cell_metadata(kind: str, grade_id: str, points: float | None = None) -> dict[str, Any]:
    """nbgrader's metadata of a cell, as its Create Assignment tool writes it.

    Args:
        kind: "solution" (autograded answer), "tests" (autograded tests, locked, with
            ``points``) or "readonly".
        grade_id: unique in the notebook; letters, digits, ``_`` and ``-``.
    """
    if kind not in ("solution", "tests", "readonly"):
        raise ValueError(f"kind must be 'solution', 'tests' or 'readonly', not {kind!r}")
    if (kind == "tests") != (points is not None):
        raise ValueError("points are given for, and only for, a 'tests' cell")
    meta: dict[str, Any] = {"grade": kind == "tests", "grade_id": grade_id,
                            "locked": kind != "solution", "schema_version": SCHEMA_VERSION,
                            "solution": kind == "solution", "task": False}
    if points is not None:
        meta["points"] = points
    return meta


def solution_source(name: str) -> str:
    """The reference's ``def`` line(s) and docstring, then its body as the solution region."""
    stub = stub_source(name)
    if not stub.endswith(STUB_BODY):
        raise ExerciseError(f"the stub of {name} does not end with the expected body")
    body = reference_body_lines(name)
    while body and not body[0].strip():
        body.pop(0)
    indent = body[0][:len(body[0]) - len(body[0].lstrip())]
    return (stub.removesuffix(STUB_BODY) + f"{indent}{BEGIN_SOLUTION}\n"
            + "\n".join(body).rstrip() + f"\n{indent}{END_SOLUTION}")


def autotest_source(name: str, seed: int) -> str:
    """The visible check of ``name``, then the check of the hidden cases of ``seed``."""
    check = CHECKS[name].__name__

    def assertion(arguments: str) -> str:
        return f"result = {check}({arguments})\nassert result.passed, result.message\n"

    return (f"from nbutils.lab.checks import {check}\n"
            + assertion(name) + f"{BEGIN_HIDDEN}\n" + assertion(f"{name}, seed={seed}")
            + END_HIDDEN)


def make_source(nb: Any, seed: int, preset: dict[str, Any]) -> tuple[Any, list[str]]:
    """The nbgrader source version of a notebook (nbformat node), and its graded names.

    Cell ids are set to the nbgrader grade ids, so the same input and seed give the same
    file.
    """
    student, names = make_student(nb)
    if any(name in notebook_parameters(student) for name in preset):
        student = apply_preset(student, preset)
    student.metadata.pop("jupytext", None)  # the source stands alone, paired with no .py
    for index, cell in enumerate(student.cells):
        role = cell.metadata.get("nbutils", {})
        if "exercise" in role:
            cell.source = solution_source(role["exercise"])
            meta = cell_metadata("solution", role["exercise"])
        elif "check" in role:
            cell.source = autotest_source(role["check"], seed)
            meta = cell_metadata("tests", f"test_{role['check']}", POINTS.get(role["check"], 1))
        else:
            if WIDGET_TAG in cell.metadata.get("tags", []):
                cell.source = widget_source(cell.source)
            meta = cell_metadata("readonly", f"readonly-{index:03d}")
        cell.metadata["nbgrader"] = meta
        cell.id = meta["grade_id"]
    return student, names


WIDGET_NOTE = (
    "# Left out of the assignment: nbgrader's autograde can hang for good on a widget cell\n"
    "# (nbclient issue 312; seen here with face_upload). To play, paste these lines into a\n"
    "# new cell without the leading '# ', and delete that cell before you submit.\n")


def widget_source(source: str) -> str:
    """A widget cell's code, commented out under `WIDGET_NOTE`: in an autograded run it
    builds nothing."""
    return WIDGET_NOTE + "\n".join(f"# {line}" if line else "#" for line in
                                    source.splitlines())


def config_source(root: Path) -> str:
    """``nbgrader_config.py`` of a course in ``root``."""
    return (f"{CONFIG_HEADER}\n"
            "c = get_config()  # noqa: F821 (nbgrader provides it)\n"
            f"c.CourseDirectory.root = {str(Path(root).resolve())!r}\n"
            f"c.ClearSolutions.code_stub = {{'python': {CODE_STUB!r}}}\n"
            f"c.ExecutePreprocessor.timeout = {CELL_TIMEOUT}  # seconds per cell\n")


def write_course(notebooks: Sequence[Path], out: Path, seed: int | None = None,
                 preset: str = "ci", assignment: str | None = None) -> list[Path]:
    """Write the nbgrader source of each notebook and the course's ``nbgrader_config.py``.

    Args:
        notebooks: ``.ipynb`` files or their jupytext ``.py`` sources.
        out: the course folder.
        seed: the seed of the hidden tests; None draws a fresh secret one.
        preset: the parameters preset (``nbutils/lab/presets/<preset>.yaml``).
        assignment: one assignment holding every notebook; None: one per notebook, named
            after it.

    Returns:
        The files written. A ``nbgrader_config.py`` that this module did not write is
        kept as it is (and not returned).

    Raises:
        ExerciseError: a notebook that is not one, cannot be converted or has no graded
            function, naming it; found before anything is written.
        ParametersError: an unknown preset.
    """
    seed = secrets.randbelow(2**31) if seed is None else seed
    values = load_preset(preset)
    sources = []  # every notebook is read and converted before anything is written
    for path in map(Path, notebooks):
        try:
            nb, names = make_source(read_notebook(path), seed, values)
        except (ExerciseError, ParametersError, nbformat.reader.NotJSONError) as err:
            raise ExerciseError(f"{path}: {err}") from None
        if not names:
            raise ExerciseError(f"{path}: no graded function is imported from nbutils, so "
                                "there is nothing to grade")
        sources.append((path, nb))
    written = []
    for path, nb in sources:
        target = out / "source" / (assignment or path.stem) / f"{path.stem}.ipynb"
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "w", encoding="utf-8", newline="\n") as f:
            nbformat.write(nb, f)
        written.append(target)
    config = out / "nbgrader_config.py"
    if not config.exists() or config.read_text().startswith(CONFIG_HEADER):
        config.write_text(config_source(out))
        written.append(config)
    return written
