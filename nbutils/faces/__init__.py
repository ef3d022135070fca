"""Face verification and recognition: detection, alignment, a pretrained 128-d encoder,
the triplet loss and a one-shot face database, with the course's function names."""

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

__all__ = [
    "CHIP_SIZE",
    "DISTANCE_THRESHOLD",
    "EMBEDDING_DIM",
    "DetectedFace",
    "EmptyDatabaseError",
    "Face",
    "FaceDatabase",
    "NoFaceFoundError",
    "align_face",
    "detect_faces",
    "encode_chips",
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
