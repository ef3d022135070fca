"""Enrolment from photos: photo -> descriptor (the recognition pipeline) -> `FaceDatabase`.

    enroll_photos(database, "ann", ["ann_1.jpg", "ann_2.jpg"], model)   # -> 2
    database = database_from_folder("my_people", model)               # my_people/<name>/*.jpg

Each photo becomes one (128,) float32 descriptor, the one of its largest face
(`nbutils.faces.recognition.img_to_encoding`). The database itself only stores, searches
and saves descriptors; this module is the one place that feeds it photos.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from nbutils.faces.database import EmptyDatabaseError, FaceDatabase, check_name
from nbutils.faces.recognition import img_to_encoding
from nbutils.images import IMAGE_EXTENSIONS

__all__ = ["FaceEncodingWarning", "database_from_folder", "enroll_photos"]


class FaceEncodingWarning(UserWarning):
    """Some photos could not be encoded (e.g. no face found) and were skipped."""


def enroll_photos(database: FaceDatabase, name: str, photos: Any, model: Any = None) -> int:
    """Encode a person's photos and add their descriptors to ``database``; all or nothing.

    Args:
        database: the `FaceDatabase` to add to (changed in place).
        name: the person, new or already enrolled (their descriptors are then appended).
        photos: one photo (path, PIL image or (H, W, 3) array) or a list/tuple of them.
        model: the encoder from ``load_face_encoder()`` (loaded when None).

    Returns:
        k, the number of descriptors added: one per photo.

    Raises:
        TypeError: ``database`` is not a `FaceDatabase`.
        ValueError: bad name, no photos, or a descriptor of the wrong dimension.
        Whatever encoding raises for a photo (e.g. ``NoFaceFoundError``).
        In every case nothing is added.
    """
    if not isinstance(database, FaceDatabase):
        raise TypeError(f"enroll_photos needs a FaceDatabase to add to as its first argument, "
                        f"got {type(database).__name__}")
    check_name(name)
    batch = list(photos) if isinstance(photos, (list, tuple)) else [photos]
    if not batch:
        raise ValueError(f"no photos given to enroll {name!r}")
    staged = FaceDatabase(dim=database.dim)  # checks every descriptor before any is added
    for photo in batch:
        staged.add(name, img_to_encoding(photo, model))
    database.add(name, staged[name])
    return staged.num_descriptors


def _photos_by_person(root: Path, wanted: set[str]) -> list[tuple[str, Path]]:
    """(person, photo) for every ``root/<person>/<photo>`` with a wanted extension, sorted;
    hidden entries and files directly under ``root`` are left out."""
    return [
        (person.name, photo)
        for person in sorted(root.iterdir())
        if person.is_dir() and not person.name.startswith(".")
        for photo in sorted(person.iterdir())
        if photo.is_file() and not photo.name.startswith(".") and photo.suffix.lower() in wanted
    ]


def _extension_set(extensions: Iterable[str]) -> set[str]:
    """Lower-cased extensions, each checked to be a str starting with a dot."""
    if isinstance(extensions, str):
        raise TypeError(f"extensions must be a collection such as ('.jpg', '.png'), "
                        f"not the single str {extensions!r}")
    wanted = set()
    for extension in extensions:
        if not isinstance(extension, str) or not extension.startswith(".") or extension == ".":
            raise ValueError(f"each extension must be a str starting with a dot, like '.jpg'; "
                             f"got {extension!r}")
        wanted.add(extension.lower())
    return wanted


def database_from_folder(root: str | os.PathLike, model: Any = None,
                         extensions: Iterable[str] = IMAGE_EXTENSIONS, *,
                         strict: bool = False, progress: bool = True) -> FaceDatabase:
    """A database from a folder tree ``root/<name>/<photo>``, one person per sub-folder.

    People and photos are taken in sorted order (deterministic labels); files whose
    extension is not in ``extensions`` (case-insensitive) and hidden entries are skipped;
    files directly under ``root`` are ignored. Each photo adds one descriptor.

    Args:
        root: the folder.
        model: the encoder from ``load_face_encoder()`` (loaded when None).
        extensions: the photo extensions, with the dot.
        strict: True: the first photo that fails to encode raises. False: failed photos
            are skipped and listed in one `FaceEncodingWarning`.
        progress: show a tqdm progress bar over the photos.

    Raises:
        FileNotFoundError: ``root`` is not a folder.
        TypeError, ValueError: ``extensions`` is one str, or holds one without its dot.
        EmptyDatabaseError: no photo found, or none could be encoded.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"face folder not found (or not a folder): {root}")
    wanted = _extension_set(extensions)
    jobs = _photos_by_person(root, wanted)
    if not jobs:
        raise EmptyDatabaseError(
            f"no photos found under {root}: expected {root}/<name>/<photo> with one of "
            f"the extensions {', '.join(sorted(wanted))}"
        )
    database = FaceDatabase(dim=None)
    failures: list[tuple[Path, Exception]] = []
    for name, photo in tqdm(jobs, desc="Encoding faces", unit="photo", disable=not progress):
        try:
            database.add(name, img_to_encoding(photo, model))
        except Exception as err:  # one bad photo must not sink the whole build
            if strict:
                raise
            failures.append((photo, err))
    if database.num_descriptors == 0:
        raise EmptyDatabaseError(
            f"none of the {len(jobs)} photos under {root} could be encoded; "
            f"first error: {failures[0][1]!r} for {failures[0][0]}"
        ) from failures[0][1]
    if failures:
        listing = "\n".join(f"  {path}: {type(err).__name__}: {err}" for path, err in failures)
        warnings.warn(f"{len(failures)} of {len(jobs)} photos under {root} could not be "
                      f"encoded and were skipped:\n{listing}", FaceEncodingWarning, stacklevel=2)
    return database
