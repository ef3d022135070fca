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
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from nbutils.weights.joblib_file import read_joblib_arrays
from nbutils.weights.registry import MTCNN_WEIGHTS

LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")


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


def _stage(stage_class, network_class, weights: str, name: str, stage_id: int):
    """A mtcnn stage whose network carries weights read by our restricted reader."""
    from mtcnn.stages.base import StageBase

    model = network_class()
    model.build()
    model.set_weights(MTCNN_WEIGHTS[weights].read(read_joblib_arrays))
    stage = stage_class.__new__(stage_class)  # skip its __init__, which calls joblib.load
    StageBase.__init__(stage, stage_name=name, stage_id=stage_id, model=model)
    return stage


@lru_cache(maxsize=1)
def load_detector():
    """The MTCNN detector (loaded once per process)."""
    from mtcnn import MTCNN
    from mtcnn.network.onet import ONet
    from mtcnn.network.pnet import PNet
    from mtcnn.network.rnet import RNet
    from mtcnn.stages import StageONet, StagePNet, StageRNet

    stages = [
        _stage(StagePNet, PNet, "pnet", "Stage PNET", 1),
        _stage(StageRNet, RNet, "rnet", "Stage RNET", 2),
        _stage(StageONet, ONet, "onet", "Stage ONET", 3),
    ]
    return MTCNN(stages=stages)


def detect_faces(image: np.ndarray, min_face_size: int = 20,
                 min_confidence: float = 0.9) -> list[DetectedFace]:
    """All faces in an RGB image, largest first.

    Args:
        image: (H, W, 3) uint8 RGB (not BGR: convert OpenCV images first).
        min_face_size: smallest face side searched for, in pixels.
        min_confidence: faces scored below this are dropped.

    Returns:
        A list of `DetectedFace`, sorted by box area, largest first (empty if none).
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"detect_faces expects an (H, W, 3) uint8 RGB image, got "
                         f"{image.shape} {image.dtype}")
    rows = load_detector().detect_faces(image, output_type="numpy", box_format="xyxy",
                                        min_face_size=min_face_size)
    faces = []
    for row in np.asarray(rows, dtype=np.float64).reshape(-1, 16):
        # row: image id, x1, y1, x2, y2, confidence, 5 landmark x's, 5 landmark y's
        if row[5] < min_confidence:
            continue
        landmarks = np.stack([row[6:11], row[11:16]], axis=1)
        faces.append(DetectedFace(tuple(row[1:5]), float(row[5]), landmarks))
    return sorted(faces, key=lambda f: f.area, reverse=True)
