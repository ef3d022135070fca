"""Face verification and recognition: detection, alignment, a pretrained 128-d encoder,
the triplet loss, a one-shot face database and enrolment from photos, with the course's
function names.

The names below are imported on first use (PEP 562): ``import nbutils.faces`` and its light
submodules (`nbutils.faces.gallery`, `nbutils.faces.database`, the command line's checks)
do not load TensorFlow; ``from nbutils.faces import img_to_encoding`` does.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what the lazy names are, for type checkers and readers
    from nbutils.faces.align import align_face
    from nbutils.faces.database import EmptyDatabaseError, FaceDatabase
    from nbutils.faces.detect import DetectedFace, detect_faces
    from nbutils.faces.encoder import (
        CHIP_SIZE,
        DISTANCE_THRESHOLD,
        EMBEDDING_DIM,
        encode_chips,
        load_face_encoder,
    )
    from nbutils.faces.enroll import FaceEncodingWarning, database_from_folder, enroll_photos
    from nbutils.faces.recognition import (
        Face,
        NoFaceFoundError,
        find_faces,
        img_to_encoding,
        largest_face_chip,
        pairwise_distances,
        pixel_distance,
        verify,
        who_is_it,
    )
    from nbutils.triplet import triplet_loss

#: Each public name -> the module that defines it.
_HOMES = {
    "align_face": "nbutils.faces.align",
    "EmptyDatabaseError": "nbutils.faces.database",
    "FaceDatabase": "nbutils.faces.database",
    "DetectedFace": "nbutils.faces.detect",
    "detect_faces": "nbutils.faces.detect",
    "CHIP_SIZE": "nbutils.faces.encoder",
    "DISTANCE_THRESHOLD": "nbutils.faces.encoder",
    "EMBEDDING_DIM": "nbutils.faces.encoder",
    "encode_chips": "nbutils.faces.encoder",
    "load_face_encoder": "nbutils.faces.encoder",
    "FaceEncodingWarning": "nbutils.faces.enroll",
    "database_from_folder": "nbutils.faces.enroll",
    "enroll_photos": "nbutils.faces.enroll",
    "Face": "nbutils.faces.recognition",
    "NoFaceFoundError": "nbutils.faces.recognition",
    "find_faces": "nbutils.faces.recognition",
    "img_to_encoding": "nbutils.faces.recognition",
    "largest_face_chip": "nbutils.faces.recognition",
    "pairwise_distances": "nbutils.faces.recognition",
    "pixel_distance": "nbutils.faces.recognition",
    "verify": "nbutils.faces.recognition",
    "who_is_it": "nbutils.faces.recognition",
    "triplet_loss": "nbutils.triplet",
}

__all__ = [
    "CHIP_SIZE",
    "DISTANCE_THRESHOLD",
    "EMBEDDING_DIM",
    "DetectedFace",
    "EmptyDatabaseError",
    "Face",
    "FaceDatabase",
    "FaceEncodingWarning",
    "NoFaceFoundError",
    "align_face",
    "database_from_folder",
    "detect_faces",
    "encode_chips",
    "enroll_photos",
    "find_faces",
    "img_to_encoding",
    "largest_face_chip",
    "load_face_encoder",
    "pairwise_distances",
    "pixel_distance",
    "triplet_loss",
    "verify",
    "who_is_it",
]


def __getattr__(name: str) -> Any:
    """Import a public name's module on first use, then keep the name here."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_HOMES))
