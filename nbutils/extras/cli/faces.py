"""Command line, as ``face_recognition`` users expect:

    python -m nbutils.faces identify KNOWN_DIR PHOTO_OR_DIR [...]        # enrol, then identify
    python -m nbutils.faces identify KNOWN_DIR PHOTO... --save-db people.npz
    python -m nbutils.faces identify --db people.npz PHOTO_OR_DIR [...]  # no KNOWN_DIR

Prints one CSV row ``photo,name,distance`` per face found (no header): ``unknown`` when
the nearest enrolled person is at or beyond ``--threshold`` (``--tolerance``, as
face_recognition spells it, is accepted too), ``photo,no_face,`` for a photo without a
face. The defaults are the library's (``DISTANCE_THRESHOLD``, ``open_gallery``'s backend).
Bad input prints one ``error:`` line and exits with status 2 before any model is loaded:
a missing or unreadable folder, photo or ``--db``, a photo over ``MAX_PIXELS``, an empty
KNOWN_DIR, a NaN or non-positive threshold, an unknown or uninstalled backend, a
``--save-db`` that exists or cannot be written (tried by writing a file, so it holds for
root too); a ``--save-db`` that fails later is one ``error:`` line and status 2 as well.
"""

from __future__ import annotations

import argparse
import inspect
import sys
from contextlib import ExitStack
from pathlib import Path

from nbutils.extras.cli.faces_checks import positive_float
from nbutils.extras.cli.options import fail
from nbutils.extras.gallery import BACKENDS, open_gallery
from nbutils.faces.database import DISTANCE_THRESHOLD

USAGE = """python -m nbutils.faces identify KNOWN_DIR PHOTO_OR_DIR [PHOTO_OR_DIR ...] [options]
       python -m nbutils.faces identify --db GALLERY PHOTO_OR_DIR [PHOTO_OR_DIR ...] [options]"""


def build_parser() -> argparse.ArgumentParser:
    """The parser; the defaults are the library's, never retyped."""
    backend = inspect.signature(open_gallery).parameters["backend"].default
    parser = argparse.ArgumentParser(
        prog="python -m nbutils.faces",
        description="Face recognition from the command line (dlib's 128-d encoder).")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = commands.add_parser(
        "identify", usage=USAGE,
        help="who is in each photo: one CSV row photo,name,distance per face",
        description="Enrol KNOWN_DIR/<name>/<photo> (or load a gallery saved with --save-db, "
                    "given as --db; KNOWN_DIR is then left out) and print one CSV row "
                    "photo,name,distance per face found, largest first: name 'unknown' when "
                    "the distance is at or beyond --threshold, 'no_face' (empty distance) "
                    "for a photo without a face. A folder argument means every image in it.")
    p.add_argument("paths", type=Path, nargs="+", metavar="PATH",
                   help="KNOWN_DIR (unless --db is given), then photos or folders of photos")
    p.add_argument("--threshold", type=positive_float, default=DISTANCE_THRESHOLD,
                   help="same person when the distance is below this (default %(default)s; "
                        "lower is stricter)")
    p.add_argument("--tolerance", type=positive_float, dest="threshold", help=argparse.SUPPRESS)
    p.add_argument("--backend", choices=BACKENDS, default=backend,
                   help="gallery backend (default %(default)s)")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--db", metavar="GALLERY",
                        help="load this saved gallery instead of enrolling a KNOWN_DIR")
    source.add_argument("--save-db", metavar="GALLERY",
                        help="save the enrolment here (.npz for exact/ann, .db or a server "
                             "URI for milvus); must not exist yet")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)  # bad values: argparse exits with status 2
    from nbutils.extras.cli import faces_checks as cli  # the checks first, then the rest

    if args.db is None:
        if len(args.paths) < 2:
            return fail("give KNOWN_DIR and at least one photo or folder (or --db GALLERY "
                        "and photos)")
        known, arguments = args.paths[0], args.paths[1:]
        problem = cli.known_dir_problem(known)
    else:
        known, arguments = None, args.paths
        problem = cli.db_problem(args.db, args.backend)
    location = args.db or args.save_db
    problem = (problem or cli.backend_problem(args.backend, location)
               or (args.save_db and cli.save_db_problem(args.save_db)))
    if problem:
        return fail(problem)
    photos, problem = cli.expand_photos(arguments)
    if problem:
        return fail(problem)
    with ExitStack() as stack:
        try:
            if known is None:
                gallery = stack.enter_context(cli.open_saved(args.db, args.backend))
            else:
                gallery = cli.enroll(known, args.backend, args.save_db, stack, sys.stderr)
            cli.identify_photos(photos, gallery, args.threshold, sys.stdout)
        except ValueError as err:  # EmptyDatabaseError too: no photo could be encoded
            return fail(str(err))
    return 0


if __name__ == "__main__":
    sys.exit(main())
