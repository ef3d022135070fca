"""Enrolment from photos: photo -> descriptor (the recognition pipeline) -> `FaceDatabase`.

    enroll_photos(database, "ann", ["ann_1.jpg", "ann_2.jpg"], model)   # -> 2
    database = database_from_folder("my_people", model)               # my_people/<name>/*.jpg

Each photo becomes one (128,) float32 descriptor, the one of its largest face: the
pipeline of `nbutils.faces.recognition.img_to_encoding` (detect, align, encode), except
that the chips of many photos go through the encoder together, ``batch_size`` at a time.
The database itself only stores, searches and saves descriptors; this module is the one
place that feeds it photos.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from nbutils.faces.database import EMBEDDING_DIM, EmptyDatabaseError, FaceDatabase, check_name
from nbutils.faces.detect import DETECT_SIZE, check_detect_size
from nbutils.faces.encoder import encode_chips
from nbutils.faces.recognition import largest_face_chip
from nbutils.images import IMAGE_EXTENSIONS

__all__ = ["FaceEncodingWarning", "database_from_folder", "encode_photos", "enroll_photos",
           "face_chip"]

#: Chips per forward pass of the encoder.
BATCH_SIZE = 32


class FaceEncodingWarning(UserWarning):
    """Some photos could not be encoded (e.g. no face found) and were skipped."""


def face_chip(photo: Any, detect_size: int | None = DETECT_SIZE) -> np.ndarray:
    """The aligned (150, 150, 3) uint8 chip of the largest face in a photo, cut from the
    full-resolution photo (MTCNN scans a copy of at most ``detect_size`` px per side;
    None: the photo itself).

    Raises:
        NoFaceFoundError: naming the photo and the smallest face width searched for.
    """
    return largest_face_chip(photo, detect_size=detect_size)


def _check_batch_size(batch_size: Any) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
            or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    return int(batch_size)


def _encode_each(photos: list[Any], model: Any, detect_size: int | None, batch_size: int,
                 strict: bool, progress: bool = False) -> list[np.ndarray | Exception]:
    """Per photo, in order: its (128,) descriptor, or (``strict=False``) the exception its
    chip raised. Chips wait until ``batch_size`` of them are ready for one encoder pass
    (about half the time per chip of one-chip passes); at most one batch is held."""
    results: list[Any] = [None] * len(photos)  # every slot is filled before returning
    waiting: list[int] = []
    chips: list[np.ndarray] = []

    def flush() -> None:
        for i, descriptor in zip(waiting, encode_chips(np.stack(chips), model, batch_size),
                                 strict=True):
            results[i] = descriptor
        waiting.clear()
        chips.clear()

    bar = tqdm(photos, desc="Encoding faces", unit="photo", disable=not progress)
    for i, photo in enumerate(bar):
        try:
            chip = face_chip(photo, detect_size)
        except Exception as err:  # one bad photo must not sink the others
            if strict:
                raise
            results[i] = err
            continue
        waiting.append(i)
        chips.append(chip)
        if len(chips) == batch_size:
            flush()
    if chips:
        flush()
    return results


def encode_photos(photos: Any, model: Any = None, *, detect_size: int | None = DETECT_SIZE,
                  batch_size: int = BATCH_SIZE) -> np.ndarray:
    """The descriptor of the largest face of each photo, the encoder run on batches.

    Args:
        photos: a list/tuple of photos (paths, PIL images or (H, W, 3) arrays), or one.
        model: the encoder from ``load_face_encoder()`` (loaded when None).
        detect_size: longest side, in px, of the copy MTCNN scans (None: full resolution);
            see `nbutils.faces.detect.detect_faces`.
        batch_size: chips per encoder pass.

    Returns:
        (n, 128) float32, row i for photo i.

    Raises:
        TypeError, ValueError: bad ``detect_size`` or ``batch_size`` (before any work).
        Whatever the first failing photo raises (e.g. ``NoFaceFoundError``).
    """
    detect_size = check_detect_size(detect_size)
    batch_size = _check_batch_size(batch_size)
    batch = list(photos) if isinstance(photos, (list, tuple)) else [photos]
    results = _encode_each(batch, model, detect_size, batch_size, strict=True)
    return np.stack(results) if results else np.zeros((0, EMBEDDING_DIM), np.float32)


def enroll_photos(database: FaceDatabase, name: str, photos: Any, model: Any = None, *,
                  detect_size: int | None = DETECT_SIZE, batch_size: int = BATCH_SIZE) -> int:
    """Encode a person's photos and add their descriptors to ``database``; all or nothing.

    Args:
        database: the `FaceDatabase` to add to (changed in place).
        name: the person, new or already enrolled (their descriptors are then appended).
        photos: one photo (path, PIL image or (H, W, 3) array) or a list/tuple of them.
        model: the encoder from ``load_face_encoder()`` (loaded when None).
        detect_size, batch_size: as in `encode_photos`.

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
    descriptors = encode_photos(batch, model, detect_size=detect_size, batch_size=batch_size)
    return database.add(name, descriptors, append=True)  # checks them all before adding


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
                         strict: bool = False, progress: bool = True,
                         detect_size: int | None = DETECT_SIZE,
                         batch_size: int = BATCH_SIZE) -> FaceDatabase:
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
        detect_size, batch_size: as in `encode_photos`.

    Raises:
        FileNotFoundError: ``root`` is not a folder.
        TypeError, ValueError: ``extensions`` is one str, or holds one without its dot;
            bad ``detect_size`` or ``batch_size``.
        EmptyDatabaseError: no photo found, or none could be encoded.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"face folder not found (or not a folder): {root}")
    wanted = _extension_set(extensions)
    detect_size = check_detect_size(detect_size)
    batch_size = _check_batch_size(batch_size)
    jobs = _photos_by_person(root, wanted)
    if not jobs:
        raise EmptyDatabaseError(
            f"no photos found under {root}: expected {root}/<name>/<photo> with one of "
            f"the extensions {', '.join(sorted(wanted))}"
        )
    results = _encode_each([photo for _, photo in jobs], model, detect_size, batch_size,
                           strict, progress)
    database = FaceDatabase(dim=None)
    failures: list[tuple[Path, Exception]] = []
    for (name, photo), result in zip(jobs, results, strict=True):
        if isinstance(result, Exception):
            failures.append((photo, result))
        else:
            database.add(name, result, append=True)
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
