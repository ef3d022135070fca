"""The logic of ``python -m nbutils.faces identify``: checks made before any model is
loaded, enrolment into a gallery, and one CSV row per face found.

Every ``*_problem`` function returns why an input cannot be used (one line, naming the
option or path) or None; none of them loads a model or writes anything. Importing this
module does not load TensorFlow either (the photo pipeline is imported where it is used),
so a usage error is reported in a fraction of a second.
"""

from __future__ import annotations

import csv
import functools
import importlib.util
import os
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any, TextIO

import numpy as np
from PIL import Image

from nbutils.extras.cli.options import file_problem, float_option
from nbutils.extras.gallery import open_gallery
from nbutils.extras.gallery.errors import BackendNotInstalledError
from nbutils.faces.database import FaceDatabase
from nbutils.images import IMAGE_EXTENSIONS, MAX_PIXELS, ImageError

#: The name column of a face whose nearest enrolled person is at or beyond the threshold.
UNKNOWN = "unknown"
#: The name column of a photo in which no face was found (its distance column is empty).
NO_FACE = "no_face"


positive_float = float_option(0, above=True)  # --threshold: a finite number > 0


def is_server_uri(location: str) -> bool:
    """Whether a gallery location is a server URI (Milvus) rather than a file."""
    return "://" in location


def backend_problem(backend: str, location: str | None = None) -> str | None:
    """Why ``backend`` cannot be used here (its package is missing), or None."""
    try:
        if backend == "ann":
            from nbutils.extras.gallery.ann import import_faiss
            import_faiss()
        elif backend == "milvus":
            from nbutils.extras.gallery.milvus import import_pymilvus
            import_pymilvus()
            lite = location is None or not is_server_uri(location)
            if lite and importlib.util.find_spec("milvus_lite") is None:
                return ("--backend milvus: a local gallery needs milvus-lite, which is not "
                        "installed: pip install 'nbutils[milvus]'")
    except BackendNotInstalledError as err:
        return f"--backend {backend}: {err}"
    return None


def _readable_folder(folder: Path) -> bool:
    return os.access(folder, os.R_OK | os.X_OK)


def known_dir_problem(known: Path) -> str | None:
    """Why ``known`` is not a folder ``known/<name>/<photo>`` with at least one photo."""
    if not known.exists():
        return f"KNOWN_DIR {known} does not exist"
    if not known.is_dir():
        return f"KNOWN_DIR {known} is not a folder"
    if not _readable_folder(known):
        return f"KNOWN_DIR {known} cannot be read (permission denied)"
    for person in known.iterdir():
        if person.is_dir() and not person.name.startswith(".") and _readable_folder(person):
            if any(_image_files(person)):
                return None
    return (f"KNOWN_DIR {known} holds no photos: expected {known}/<name>/<photo> with one "
            f"of the extensions {', '.join(IMAGE_EXTENSIONS)}")


def _image_files(folder: Path) -> Iterator[Path]:
    """The images directly in ``folder`` (by extension, hidden files left out), sorted."""
    return iter(sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
                       and p.suffix.lower() in IMAGE_EXTENSIONS))


def image_problem(photo: Path) -> str | None:
    """Why ``photo`` is not a readable image, or one over `MAX_PIXELS`, or None (only its
    header is read; Pillow's own size warning is not printed: the limit here says it)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(photo) as image:
                width, height = image.size
    except Image.DecompressionBombError:  # over twice Pillow's limit: the size is not given
        return f"{photo} is too large: more than MAX_PIXELS = {MAX_PIXELS:,}; downscale it first"
    except (OSError, ValueError) as err:
        return f"{photo} cannot be read as an image: {err}"
    if width * height > MAX_PIXELS:
        return (f"{photo} is too large: {width} x {height} pixels, more than MAX_PIXELS = "
                f"{MAX_PIXELS:,}; downscale it first")
    return None


def expand_photos(arguments: list[Path]) -> tuple[list[Path], str | None]:
    """The photos the arguments name (a folder: every image in it), or the first problem."""
    photos: list[Path] = []
    for argument in arguments:
        if not argument.exists():
            return [], f"photo {argument} does not exist"
        if argument.is_dir():
            if not _readable_folder(argument):
                return [], f"photo folder {argument} cannot be read (permission denied)"
            found = list(_image_files(argument))
            if not found:
                return [], (f"photo folder {argument} holds no images (extensions "
                            f"{', '.join(IMAGE_EXTENSIONS)})")
            photos.extend(found)
        else:
            photos.append(argument)
    for photo in photos:
        problem = image_problem(photo)
        if problem:
            return [], problem
    return photos, None


def db_problem(location: str, backend: str) -> str | None:
    """Why the saved gallery ``--db location`` cannot be read, or None (not opened here)."""
    if backend == "milvus" and is_server_uri(location):
        return None  # reachable or not: opening it tells
    path = Path(location)
    if not path.exists():
        return f"--db {location} does not exist"
    if backend != "milvus" and not path.is_file():
        return f"--db {location} is not a file (a {backend} gallery is one .npz file)"
    if not os.access(path, os.R_OK):
        return f"--db {location} cannot be read (permission denied)"
    return None


def save_db_problem(location: str) -> str | None:
    """Why the new gallery ``--save-db location`` cannot be written, or None."""
    if is_server_uri(location):
        return None
    path = Path(location)
    if os.path.lexists(path):
        return f"--save-db {location} exists already: remove it or choose another name"
    problem = file_problem(path)
    return f"--save-db {location} cannot be written: {problem}" if problem else None


def open_saved(location: str, backend: str) -> FaceDatabase:
    """The gallery saved at ``location``.

    Raises:
        ValueError: it cannot be opened or is empty (the message names it).
    """
    try:
        gallery = open_gallery(location, backend)
    except (ValueError, OSError, KeyError) as err:
        raise ValueError(f"--db {location} cannot be read as a {backend} gallery: {err}"
                         ) from err
    if gallery.num_descriptors == 0:
        gallery.close()
        raise ValueError(f"--db {location} is an empty gallery: nobody to recognise")
    return gallery


@functools.cache
def encoder() -> Any:
    """The face encoder, loaded once per process."""
    from nbutils.faces.encoder import load_face_encoder

    return load_face_encoder()


def enroll(known: Path, backend: str, save_db: str | None, stack: ExitStack,
           warn: TextIO) -> FaceDatabase:
    """A gallery of everyone in ``known/<name>/<photo>``, saved to ``save_db`` if given.

    Photos that cannot be encoded are skipped with a ``warning:`` line on ``warn``.
    The gallery is closed when ``stack`` closes (a temporary one is then deleted).

    Raises:
        EmptyDatabaseError: no photo could be encoded.
        ValueError: ``save_db`` could not be written (the message names it).
    """
    from nbutils.faces.enroll import database_from_folder

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        database = database_from_folder(known, encoder(), progress=False)
    for warning in caught:
        print(f"warning: {warning.message}", file=warn)
    if save_db is None:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        location = str(folder / ("gallery.db" if backend == "milvus" else "gallery.npz"))
    else:
        location = save_db
    try:
        gallery = stack.enter_context(open_gallery(location, backend))
        gallery.add_many(dict(database.items()))
        if save_db is not None:
            gallery.save()
    except OSError as err:  # AtomicWriteError among them: the folder changed since the check
        if save_db is None:
            raise
        raise ValueError(f"--save-db {save_db} could not be written: {err}") from None
    return gallery


def identify_photos(photos: list[Path], gallery: FaceDatabase, threshold: float,
                    out: TextIO) -> None:
    """Write ``photo,name,distance`` for every face of every photo, largest face first.

    ``name`` is `UNKNOWN` when the nearest enrolled person is at or beyond ``threshold``;
    a photo without a face gives one row ``photo,no_face,`` (empty distance).
    """
    from nbutils.faces.align import align_face
    from nbutils.faces.detect import detect_faces
    from nbutils.faces.encoder import encode_chips
    from nbutils.faces.recognition import load_rgb_uint8

    rows = csv.writer(out, lineterminator="\n")
    for photo in photos:
        try:
            image = load_rgb_uint8(photo)
        except ImageError as err:  # header fine, pixels not (a truncated file)
            raise ValueError(f"{photo} cannot be read as an image: {err}") from err
        chips = [align_face(image, face.landmarks) for face in detect_faces(image)]
        if not chips:
            rows.writerow([photo, NO_FACE, ""])
            continue
        for descriptor in encode_chips(np.stack(chips), encoder()):
            distance, name = gallery.identify(descriptor, threshold)
            rows.writerow([photo, name or UNKNOWN, f"{distance:.4f}"])
        out.flush()
