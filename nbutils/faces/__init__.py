"""Face verification and recognition with the course's function names: detection,
alignment, a pretrained 128-d encoder, `verify`, `who_is_it`, and one `FaceDatabase`.

``import nbutils.faces`` loads no TensorFlow; each name below imports its module on first
use (``from nbutils.faces import verify`` does).
"""

from nbutils._internal.lazy import lazy_names

__getattr__, __dir__, __all__ = lazy_names(__name__, {
    "align": ("CHIP_SIZE", "align_face"),
    "database": ("DISTANCE_THRESHOLD", "EMBEDDING_DIM", "DuplicateNameError",
                 "EmptyDatabaseError", "FaceDatabase", "UnknownPersonError"),
    "detect": ("DetectedFace", "detect_faces"),
    "encoder": ("encode_chips", "load_face_encoder"),
    "enroll": ("FaceEncodingWarning", "database_from_folder", "enroll_photos"),
    "threshold": ("ThresholdErrors", "threshold_errors"),
    "recognition": ("Face", "NoFaceFoundError", "find_faces", "img_to_encoding",
                    "largest_face_chip", "pairwise_distances", "pixel_distance", "verify",
                    "who_is_it"),
    "nbutils.triplet": ("triplet_loss",),
})
