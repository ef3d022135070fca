"""Face verification (1:1) and recognition (1:K), with the course's function names.

Pipeline for one photo: load it as RGB (EXIF orientation, grayscale/RGBA converted) ->
find faces and five landmarks (MTCNN, scanning a copy of at most ``detect_size`` pixels
per side, `nbutils.faces.detect.DETECT_SIZE` by default) -> align each face to a 150x150
chip (as dlib) cut from the full-resolution photo -> encode the chip with dlib's ResNet
into a 128-d descriptor f(x). Two photos show the same person when
||f(x1) - f(x2)|| < DISTANCE_THRESHOLD (0.6, `nbutils.faces.database`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from nbutils.faces.align import align_face
from nbutils.faces.database import DISTANCE_THRESHOLD, FaceDatabase
from nbutils.faces.detect import DETECT_SIZE, DetectedFace, detect_faces, smallest_face
from nbutils.faces.encoder import encode_chips
from nbutils.images import load_image

Database = FaceDatabase | Mapping[str, np.ndarray]


class NoFaceFoundError(ValueError):
    """No face was found in a photo."""


@dataclass(frozen=True)
class Face:
    """A face found in a photo: the detection and its aligned (150, 150, 3) uint8 chip."""

    detection: DetectedFace
    chip: np.ndarray


def _describe(photo: Any) -> str:
    return f"'{photo}'" if isinstance(photo, str) or hasattr(photo, "__fspath__") else \
        f"the {type(photo).__name__} given"


def load_rgb_uint8(photo: Any, channels: str = "RGB") -> np.ndarray:
    """A photo (path, PIL image or array) as (H, W, 3) uint8 RGB.

    Args:
        photo: anything `nbutils.images.load_image` reads (EXIF orientation honoured;
            grayscale, palette and RGBA converted).
        channels: "RGB", or "BGR" for an array from OpenCV (``cv2.imread``).
    """
    if channels not in ("RGB", "BGR"):
        raise ValueError(f"channels must be 'RGB' or 'BGR', not {channels!r}")
    image = np.rint(load_image(photo) * 255).astype(np.uint8)
    return image[..., ::-1].copy() if channels == "BGR" else image


def find_faces(photo: Any, channels: str = "RGB", min_face_size: int = 20, *,
               detect_size: int | None = DETECT_SIZE) -> list[Face]:
    """Every face in a photo, largest first, each with its aligned chip.

    Args:
        photo: a path, PIL image or (H, W, 3) array.
        channels: "RGB", or "BGR" for OpenCV arrays.
        min_face_size, detect_size: as in `nbutils.faces.detect.detect_faces` (faces
            narrower than ``smallest_face(image.shape, min_face_size, detect_size)``
            pixels are not searched for).
    """
    image = load_rgb_uint8(photo, channels)
    return [Face(d, align_face(image, d.landmarks))
            for d in detect_faces(image, min_face_size=min_face_size, detect_size=detect_size)]


def largest_face_chip(photo: Any, channels: str = "RGB", *,
                      detect_size: int | None = DETECT_SIZE) -> np.ndarray:
    """The aligned (150, 150, 3) uint8 chip of the largest face, cut from the
    full-resolution photo (``detect_size`` as in `find_faces`).

    Raises:
        NoFaceFoundError: naming the photo and the narrowest face searched for, in its
            pixels: 20, or 12 pixels of the reduced copy MTCNN scans when that is more
            (30 in a 1200 px wide photo at the default ``detect_size`` of 480).
    """
    image = load_rgb_uint8(photo, channels)
    faces = detect_faces(image, detect_size=detect_size)
    if not faces:
        width = smallest_face(image.shape, detect_size=detect_size)
        raise NoFaceFoundError(
            f"No face found in {_describe(photo)}. Use a photo where the face is visible, "
            f"roughly frontal and at least {width:.0f} pixels wide."
        )
    return align_face(image, faces[0].landmarks)


def img_to_encoding(image_path: Any, model=None, channels: str = "RGB", *,
                    detect_size: int | None = DETECT_SIZE) -> np.ndarray:
    """The (128,) float32 descriptor of the largest face in a photo.

    Args:
        image_path: a path, PIL image or (H, W, 3) array.
        model: the encoder from ``load_face_encoder()`` (loaded when None).
        channels: "RGB", or "BGR" for OpenCV arrays.
        detect_size: as in `find_faces`.
    """
    chip = largest_face_chip(image_path, channels, detect_size=detect_size)
    return encode_chips(chip[None], model)[0]


def pixel_distance(photo1: Any, photo2: Any, size: int = 96) -> float:
    """The naive comparison: Euclidean distance between two photos' raw pixels.

    Both are resized to ``size`` x ``size`` and compared as vectors of RGB values in [0, 1]
    (divided by the number of pixels' square root, so the value does not grow with size).
    Lighting, pose and framing change it more than identity does.
    """
    a, b = load_image(photo1, size), load_image(photo2, size)
    return float(np.linalg.norm(a - b) / size)


def pairwise_distances(descriptors: np.ndarray) -> np.ndarray:
    """(n, d) descriptors -> (n, n) matrix of Euclidean distances."""
    x = np.asarray(descriptors, np.float64)
    return np.linalg.norm(x[:, None, :] - x[None, :, :], axis=-1)


def as_database(database: Database) -> FaceDatabase:
    """``database`` itself if it is a `FaceDatabase`, else one built from a dict
    name -> (128,) or (k, 128) descriptors."""
    return database if isinstance(database, FaceDatabase) else FaceDatabase.from_dict(database)


def verify(image_path: Any, identity: str, database: Database, model=None,
           threshold: float = DISTANCE_THRESHOLD) -> tuple[float, bool]:
    """1:1 verification: is the person in the photo ``identity``?

    Args:
        image_path: the photo presented at the door.
        identity: the name the person claims.
        database: a `FaceDatabase` or a dict name -> (128,) or (k, 128) descriptors.
        model: the face encoder.
        threshold: accept when the distance is below it.

    Returns:
        (dist, door_open): the smallest distance to that person's descriptors, and
        whether it is below the threshold. Prints the decision.

    Raises:
        KeyError: ``identity`` is not in the database (the message lists the known names).
    """
    db = as_database(database)
    db.require(identity)  # a KeyError naming the known people, before the photo is encoded
    encoding = img_to_encoding(image_path, model)
    dist = float(np.linalg.norm(db[identity] - encoding, axis=-1).min())
    door_open = dist < threshold
    print(f"It's {identity}, welcome in!" if door_open else
          f"It's not {identity}, please go away")
    return dist, door_open


def who_is_it(image_path: Any, database: Database, model=None,
              threshold: float = DISTANCE_THRESHOLD) -> tuple[float, str | None]:
    """1:K recognition: who, among everyone in the database, is in the photo?

    Returns:
        (min_dist, identity): the distance to the nearest enrolled descriptor and its
        name, or None (printing "Not in the database.") when min_dist >= threshold.
    """
    db = as_database(database)
    db.require_not_empty()  # before the photo is encoded
    encoding = img_to_encoding(image_path, model)
    min_dist, identity = db.search(encoding)[0]
    if min_dist >= threshold:
        print("Not in the database.")
        return float(min_dist), None
    print(f"It's {identity}, the distance is {min_dist:.3f}")
    return float(min_dist), identity
