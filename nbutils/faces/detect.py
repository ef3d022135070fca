"""Finding faces and their five landmarks with MTCNN (Zhang et al. 2016).

MTCNN is a cascade of three small ConvNets (P-, R- and O-Net) that proposes, refines and
scores face boxes and places five points: eye centres, nose tip, mouth corners. The weights
of ``mtcnn==1.0.0`` (MIT) are read with the restricted
`nbutils._internal.weights.read_joblib_arrays`, never ``joblib.load``, and handed to mtcnn's
own pipeline, each network traced as one TensorFlow graph. Its points are not dlib's, so
`nbutils.faces.align` uses a template fitted on dlib's chips.

By default P- and R-Net scan a copy whose longer side is at most `DETECT_SIZE` pixels, their
boxes mapped back; O-Net then looks at each box in the full-resolution photo (``refine``),
its 48 x 48 input area-averaged (`onet_patches`). Why, with measurements:
``docs/design-notes.md``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from PIL import Image

from nbutils._internal.weights.joblib_file import read_joblib_arrays
from nbutils._internal.weights.registry import MTCNN_WEIGHTS

LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")

#: Default longest side, in pixels, of the copy MTCNN scans (`detect_faces`).
DETECT_SIZE = 480
#: P-Net's window: the smallest face, in pixels of the image it scans, MTCNN can find.
PNET_WINDOW = 12
#: O-Net's input side, in pixels.
ONET_SIZE = 48
# mtcnn's defaults for its last stage (StageONet): keep a box scored above this, then
# non-maximum suppression ("min" overlap) at this threshold.
_ONET_THRESHOLD = 0.8
_ONET_NMS = 0.7
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
    """The MTCNN detector, loaded once per process for each ``compiled``: True runs each
    network as one traced graph (faster, same results up to rounding), False op by op."""
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


def _window_weights(first: float, last: float, size: int) -> tuple[np.ndarray, int]:
    """(size, m) float32 weights (rows sum to 1) and the pixel index of column 0 (may lie
    outside the image: the caller pads) for ``size`` samples evenly from ``first`` to
    ``last`` (pixel centres at integers), each the mean under a max(spacing, 1)-pixel window:
    area averaging when shrinking, linear interpolation when enlarging."""
    spacing = (last - first) / (size - 1)
    half = max(abs(spacing), 1.0) / 2
    centres = first + spacing * np.arange(size)
    start = int(np.floor(centres.min() - half + 0.5))
    stop = int(np.ceil(centres.max() + half - 0.5)) + 1
    pixels = np.arange(start, stop, dtype=np.float64)  # pixel c covers c - 0.5 .. c + 0.5
    overlap = np.minimum(centres[:, None] + half, pixels + 0.5) - \
        np.maximum(centres[:, None] - half, pixels - 0.5)
    return (np.clip(overlap, 0, None) / (2 * half)).astype(np.float32), start


def onet_patches(image: np.ndarray, boxes: np.ndarray, size: int = ONET_SIZE) -> np.ndarray:
    """(n, size, size, 3) float32 O-Net inputs, (value - 127.5) / 128, for (n, 4) boxes
    (x1, y1, x2, y2) of an (H, W, 3) uint8 image.

    Samples sit where mtcnn's ``crop_and_resize`` puts them, but each is the mean of the
    pixels under it (`_window_weights`), not a bilinear pick; outside the image, 0.
    """
    height, width = image.shape[:2]
    out = np.empty((len(boxes), size, size, 3), np.float32)
    for i, (x1, y1, x2, y2) in enumerate(np.asarray(boxes, np.float64)):
        rows, top = _window_weights(y1, y2, size)
        cols, left = _window_weights(x1, x2, size)
        region = np.full((rows.shape[1], cols.shape[1], 3), 127.5, np.float32)
        r0, r1 = max(top, 0), min(top + rows.shape[1], height)
        c0, c1 = max(left, 0), min(left + cols.shape[1], width)
        if r0 < r1 and c0 < c1:
            region[r0 - top:r1 - top, c0 - left:c1 - left] = image[r0:r1, c0:c1]
        tall = (rows @ region.reshape(rows.shape[1], -1)).reshape(size, cols.shape[1], 3)
        out[i] = (np.einsum("jc,icn->ijn", cols, tall) - 127.5) / 128
    return out


def _onet_at_full_resolution(onet: Any, image: np.ndarray, proposals: np.ndarray
                             ) -> np.ndarray:
    """mtcnn's StageONet on (n, >= 6) R-Net rows (image id, x1, y1, x2, y2, score) in
    ``image``'s pixels, O-Net seeing ``image`` through `onet_patches`: (m <= n, 16) rows as
    mtcnn returns them ("xyxy"), boxes clipped to the image."""
    from mtcnn.utils.bboxes import smart_nms_from_bboxes

    offsets, points, scores = (np.asarray(out, np.float64) for out in
                               onet.model(onet_patches(image, proposals[:, 1:5])))
    x1, y1, x2, y2 = (proposals[:, k:k + 1] for k in range(1, 5))
    # mtcnn's arithmetic (adjust_bboxes, adjust_landmarks), here in the photo's pixels
    w, h = x2 - x1 + 1, y2 - y1 + 1
    rows = np.hstack([proposals[:, :1], proposals[:, 1:5] + offsets * np.hstack([w, h, w, h]),
                      scores[:, 1:2],  # column 1: P(face)
                      x1 - 1 + w * points[:, :5], y1 - 1 + h * points[:, 5:]])
    rows = rows[rows[:, 5] > _ONET_THRESHOLD]
    if len(rows):
        rows = np.asarray(smart_nms_from_bboxes(rows, threshold=_ONET_NMS, method="min",
                                                initial_sort=True), np.float64)
    height, width = image.shape[:2]
    rows[:, [1, 3]] = rows[:, [1, 3]].clip(0, width - 1)
    rows[:, [2, 4]] = rows[:, [2, 4]].clip(0, height - 1)
    return rows.reshape(-1, 16)


def _mtcnn_rows(detector: Any, image: np.ndarray, copy: np.ndarray,
                pixel: np.ndarray | None, min_face: float, refine: bool) -> np.ndarray:
    """(n, 16) float64 mtcnn rows (image id, x1, y1, x2, y2, score, 5 x's, 5 y's) in
    ``image``'s pixels; ``copy`` is what P-Net scans, ``pixel`` its pixel size in image
    pixels (None: ``copy`` is ``image``)."""
    if pixel is None or not refine:
        rows = np.asarray(detector.detect_faces(copy, output_type="numpy", box_format="xyxy",
                                                min_face_size=min_face),
                          dtype=np.float64).reshape(-1, 16).copy()
        if pixel is not None:
            for x, y in ((1, 2), (3, 4), *((6 + k, 11 + k) for k in range(5))):
                rows[:, [x, y]] = _to_image(rows[:, [x, y]], pixel)
        return rows
    from mtcnn import MTCNN

    pnet, rnet, onet = detector.stages
    # P- and R-Net on the copy through mtcnn's own driver (no face: an empty array);
    # postprocess=False: the square boxes R-Net hands to O-Net, not clipped.
    proposals = np.asarray(MTCNN(stages=[pnet, rnet]).detect_faces(
        copy, output_type="numpy", box_format="xyxy", postprocess=False,
        min_face_size=min_face), dtype=np.float64)
    if proposals.size == 0:
        return np.empty((0, 16))
    proposals = proposals.reshape(len(proposals), -1)[:, :6].copy()
    for x, y in ((1, 2), (3, 4)):
        proposals[:, [x, y]] = _to_image(proposals[:, [x, y]], pixel)
    return _onet_at_full_resolution(onet, image, proposals)


def detect_faces(image: np.ndarray, min_face_size: int = 20, min_confidence: float = 0.9,
                 *, detect_size: int | None = DETECT_SIZE, refine: bool = True,
                 detector: Any = None) -> list[DetectedFace]:
    """`DetectedFace` list, largest box first, of an (H, W, 3) uint8 RGB (not BGR) image.

    ``detect_size``: P- and R-Net scan a copy of at most this longer side (None: ``image``
    itself), so faces narrower than `smallest_face` (31 px in a 1224 px wide photo) are not
    searched for. ``refine``: O-Net then looks at ``image`` itself (False: at the copy).
    ``detector``: from `load_detector`, by default the compiled one.

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
    faces = []
    for row in _mtcnn_rows(detector, image, copy, pixel, copy_min_face, refine):
        if row[5] < min_confidence:
            continue
        landmarks = np.stack([row[6:11], row[11:16]], axis=1)
        faces.append(DetectedFace(tuple(float(v) for v in row[1:5]), float(row[5]), landmarks))
    return sorted(faces, key=lambda f: f.area, reverse=True)
