"""Finding faces and their five landmarks with MTCNN (Zhang et al. 2016).

MTCNN is a cascade of three small ConvNets (P-, R- and O-Net) that proposes, refines and
finally scores face boxes and places five points: the two eye centres, the nose tip and
the two mouth corners. The ``mtcnn==1.0.0`` package (MIT) ships its weights as joblib
files; ``joblib.load`` would unpickle them without restriction, so we read them with
`nbutils.weights.read_joblib_arrays` (SHA-256 checked, only array records allowed) and
hand the networks to mtcnn's own pipeline.

Why MTCNN rather than a port of dlib's HOG detector and 5-point model: it ships in a
registry package, runs on TensorFlow like the rest of the project, and finds faces that
dlib's frontal HOG detector misses (rotated, small). Its points differ from dlib's (eye
centres, not eye corners), so `nbutils.faces.align` uses a template fitted on dlib's own
chips to produce the same 150x150 geometry.

Speed: MTCNN's cost grows with the pixels it scans, so by default it runs on a copy of the
photo whose longer side is at most `DETECT_SIZE` pixels and its boxes and landmarks are
mapped back to the photo's pixels; alignment then cuts the chip from the full-resolution
photo. ``detect_size=None`` scans the photo itself. Each network runs as one traced
TensorFlow graph rather than op by op (``compiled=True`` in `load_detector`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from PIL import Image

from nbutils.weights.joblib_file import read_joblib_arrays
from nbutils.weights.registry import MTCNN_WEIGHTS

LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")

#: Default longest side, in pixels, of the copy MTCNN scans (`detect_faces`).
DETECT_SIZE = 480
#: P-Net's window: the smallest face, in pixels of the image it scans, MTCNN can find.
PNET_WINDOW = 12
# Input shapes of P-, R- and O-Net; P-Net is fully convolutional (any image size).
_NETWORK_INPUTS = ((None, None, None, 3), (None, 24, 24, 3), (None, 48, 48, 3))


@dataclass(frozen=True)
class DetectedFace:
    """One face found in an image (pixel coordinates, x to the right, y down).

    Attributes:
        box: (left, top, right, bottom).
        confidence: O-Net's face probability, 0..1.
        landmarks: (5, 2) array of (x, y): image-left eye, image-right eye, nose tip,
            image-left and image-right mouth corners (`LANDMARK_NAMES`).
    """

    box: tuple[float, float, float, float]
    confidence: float
    landmarks: np.ndarray

    @property
    def area(self) -> float:
        left, top, right, bottom = self.box
        return max(right - left, 0.0) * max(bottom - top, 0.0)


def _stage(stage_class, network_class, weights: str, name: str, stage_id: int,
           compiled: bool):
    """A mtcnn stage whose network carries weights read by our restricted reader."""
    from mtcnn.stages.base import StageBase

    model = network_class()
    model.build()
    model.set_weights(MTCNN_WEIGHTS[weights].read(read_joblib_arrays))
    if compiled:
        # One traced graph (batch and P-Net's image size left unknown: a single trace).
        # Eager Keras runs each of the ~40 small ops as a Python call; on 1 MP photos that
        # overhead was about half of detection.
        import tensorflow as tf

        spec = tf.TensorSpec(_NETWORK_INPUTS[stage_id - 1], tf.float32)
        model = tf.function(model.call, input_signature=[spec])
    stage = stage_class.__new__(stage_class)  # skip its __init__, which calls joblib.load
    StageBase.__init__(stage, stage_name=name, stage_id=stage_id, model=model)
    return stage


@lru_cache(maxsize=2)
def _load_detector(compiled: bool):
    from mtcnn import MTCNN
    from mtcnn.network.onet import ONet
    from mtcnn.network.pnet import PNet
    from mtcnn.network.rnet import RNet
    from mtcnn.stages import StageONet, StagePNet, StageRNet

    stages = [
        _stage(StagePNet, PNet, "pnet", "Stage PNET", 1, compiled),
        _stage(StageRNet, RNet, "rnet", "Stage RNET", 2, compiled),
        _stage(StageONet, ONet, "onet", "Stage ONET", 3, compiled),
    ]
    return MTCNN(stages=stages)


def load_detector(compiled: bool = True):
    """The MTCNN detector (loaded once per process for each value of ``compiled``).

    Args:
        compiled: True: each network runs as one traced TensorFlow graph (faster, same
            results up to float rounding). False: op by op, as mtcnn ships them.
    """
    return _load_detector(bool(compiled))


def check_detect_size(detect_size: Any) -> int | None:
    """``detect_size`` if it is None or an int >= `PNET_WINDOW`.

    Raises:
        TypeError: not None and not an int (bool and float refused).
        ValueError: an int below `PNET_WINDOW`.
    """
    if detect_size is None:
        return None
    if isinstance(detect_size, bool) or not isinstance(detect_size, (int, np.integer)):
        raise TypeError(f"detect_size must be an int (pixels) or None (scan the full "
                        f"resolution), not {type(detect_size).__name__} {detect_size!r}")
    if detect_size < PNET_WINDOW:
        raise ValueError(f"detect_size must be at least {PNET_WINDOW} pixels (MTCNN's "
                         f"smallest window) or None, got {detect_size}")
    return int(detect_size)


def smallest_face(shape: tuple[int, ...], min_face_size: float = 20,
                  detect_size: int | None = DETECT_SIZE) -> float:
    """The narrowest face `detect_faces` searches for in an image of ``shape`` (H, W, ...),
    in the image's pixels: ``min_face_size``, or more when MTCNN scans a reduced copy."""
    longest = max(shape[:2])
    if detect_size is None or longest <= detect_size:
        return float(min_face_size)
    return max(float(min_face_size), PNET_WINDOW * longest / detect_size)


def _reduced_copy(image: np.ndarray, detect_size: int | None
                  ) -> tuple[np.ndarray, np.ndarray | None]:
    """``image`` shrunk so its longer side is at most ``detect_size`` px, and the (x, y)
    size of one copy pixel in image pixels (None when ``image`` is returned as it is)."""
    height, width = image.shape[:2]
    if detect_size is None or max(height, width) <= detect_size:
        return image, None
    ratio = detect_size / max(height, width)
    size = (max(round(width * ratio), 1), max(round(height * ratio), 1))
    # Area averaging, as mtcnn builds its own pyramid (antialiased, and cheaper than a wider
    # filter); a copy of exactly half size averages 2x2 blocks.
    copy = np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BOX))
    return copy, np.array([width / size[0], height / size[1]])


def _to_image(points: np.ndarray, pixel: np.ndarray | None) -> np.ndarray:
    """(n, 2) points from copy pixels to image pixels (integers = pixel centres): copy
    pixel i spans image pixels s*i - 0.5 .. s*(i+1) - 0.5, centred on s*(i + 0.5) - 0.5."""
    return points if pixel is None else (points + 0.5) * pixel - 0.5


def detect_faces(image: np.ndarray, min_face_size: int = 20, min_confidence: float = 0.9,
                 *, detect_size: int | None = DETECT_SIZE, detector: Any = None
                 ) -> list[DetectedFace]:
    """All faces in an RGB image, largest first, in the image's pixel coordinates.

    Args:
        image: (H, W, 3) uint8 RGB (not BGR: convert OpenCV images first).
        min_face_size: smallest face side searched for, in pixels of ``image``.
        min_confidence: faces scored below this are dropped.
        detect_size: MTCNN scans a copy whose longer side is at most this many pixels
            (several times faster on 1 MP photos); boxes and landmarks are mapped back to
            ``image``. A face must span `PNET_WINDOW` (12) pixels of that copy, so faces
            narrower than ``max(min_face_size, 12 * max(H, W) / detect_size)`` pixels are
            not searched for (31 px in a 1224 px wide photo). None: scan ``image`` itself.
        detector: an MTCNN from `load_detector`; None: the compiled one.

    Returns:
        A list of `DetectedFace`, sorted by box area, largest first (empty if none).

    Raises:
        ValueError: ``image`` is not (H, W, 3) uint8, or ``detect_size`` is below 12.
        TypeError: ``detect_size`` is neither an int nor None.
    """
    detect_size = check_detect_size(detect_size)
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"detect_faces expects an (H, W, 3) uint8 RGB image, got "
                         f"{image.shape} {image.dtype}")
    copy, pixel = _reduced_copy(image, detect_size)
    copy_min_face = min_face_size
    if pixel is not None:
        # Never below P-Net's window: mtcnn would then enlarge the copy again and scan as
        # many pixels as the full image holds.
        copy_min_face = max(smallest_face(image.shape, min_face_size, detect_size)
                            / pixel.max(), PNET_WINDOW)
    detector = load_detector() if detector is None else detector
    rows = detector.detect_faces(copy, output_type="numpy", box_format="xyxy",
                                 min_face_size=copy_min_face)
    faces = []
    for row in np.asarray(rows, dtype=np.float64).reshape(-1, 16):
        # row: image id, x1, y1, x2, y2, confidence, 5 landmark x's, 5 landmark y's
        if row[5] < min_confidence:
            continue
        corners = _to_image(row[1:5].reshape(2, 2), pixel)
        landmarks = _to_image(np.stack([row[6:11], row[11:16]], axis=1), pixel)
        box = tuple(float(v) for v in corners.ravel())
        faces.append(DetectedFace(box, float(row[5]), landmarks))
    return sorted(faces, key=lambda f: f.area, reverse=True)
