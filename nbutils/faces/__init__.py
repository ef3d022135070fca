"""Face verification and recognition: detection, alignment, a pretrained 128-d encoder,
the triplet loss, a one-shot face database and enrolment from photos, with the course's
function names."""

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
