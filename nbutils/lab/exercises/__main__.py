"""``python -m nbutils.lab.exercises [--format FORMAT] ...``: exercise mode's command line.

``--format student`` (the default) writes self-contained student notebooks
(`nbutils.lab.exercises.write_student`); ``--format nbgrader`` an nbgrader course
(`nbutils.lab.nbgrader.write_course`, which builds on `nbutils.lab.exercises`). An entry
point, never imported by the library, so the exercises package does not import nbgrader.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import nbformat

from nbutils.lab.exercises import ExerciseError, write_student
from nbutils.lab.nbgrader import write_course
from nbutils.lab.parameters import ParametersError

DEFAULT_NOTEBOOKS = ("notebooks/art_generation.py", "notebooks/face_recognition.py")


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: write student notebooks, or an nbgrader course (``--format nbgrader``, see
    `nbutils.lab.nbgrader`); exit 2 on a notebook that cannot be converted."""
    parser = argparse.ArgumentParser(prog="python -m nbutils.lab.exercises", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--format", choices=("student", "nbgrader"), default="student",
                        help="student: self-contained student notebooks (default); nbgrader: "
                             "an nbgrader course, OUT/source/<assignment>/<notebook>.ipynb")
    parser.add_argument("--out", help="output folder (default: student, or course for nbgrader)")
    parser.add_argument("--seed", type=int,
                        help="nbgrader: seed of the hidden tests (default: a fresh secret one)")
    parser.add_argument("--preset", help="nbgrader: parameters preset (default: ci)")
    parser.add_argument("--assignment", help="nbgrader: one assignment of this name for every "
                                             "notebook (default: one per notebook, its name)")
    parser.add_argument("notebooks", nargs="*", default=list(DEFAULT_NOTEBOOKS))
    args = parser.parse_args(argv)
    if args.format == "nbgrader":
        try:
            for path in write_course([Path(p) for p in args.notebooks],
                                     Path(args.out or "course"), args.seed,
                                     args.preset or "ci", args.assignment):
                print("wrote", path)
        except (ExerciseError, ParametersError, OSError, nbformat.reader.NotJSONError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        return 0
    given = [f"--{o}" for o in ("seed", "preset", "assignment") if getattr(args, o) is not None]
    if given:
        parser.error(f"{', '.join(given)}: only for --format nbgrader")
    for path in args.notebooks:
        try:
            print("wrote", write_student(Path(path), Path(args.out or "student")))
        except (ExerciseError, OSError, nbformat.reader.NotJSONError) as err:
            print(f"error: {path}: {err}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
