"""Aligning a face to the encoder's 150x150 chip, the way dlib's ``get_face_chip`` does.

The similarity transform (scale, rotation, translation) carrying a template of landmark
positions in the chip onto the photo's landmarks is sampled bilinearly, after halving the
photo with dlib's 5x5 Gaussian pyramid while the face is much larger than the chip.
Templates, in chip pixels (x right, y down; size 150, padding 0.25): `DLIB_TEMPLATE`, dlib's
five points mapped by ``(padding + p) / (1 + 2 padding) * size``, and `MTCNN_TEMPLATE`,
where MTCNN's points fall on real dlib chips on average (measured on 62 of them).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CHIP_SIZE = 150
CHIP_PADDING = 0.25

# dlib's 5-point mean face (unit coordinates): image-right eye outer/inner corner,
# image-left eye outer/inner corner, bottom of the nose.
DLIB_MEAN_FACE_5 = np.array([
    (0.8595674595992, 0.2134981538014),
    (0.6460604764104, 0.2289674387677),
    (0.1205750620789, 0.2137274526848),
    (0.3340850613712, 0.2290642403242),
    (0.4901123135679, 0.6277975316475),
])
DLIB_TEMPLATE = (CHIP_PADDING + DLIB_MEAN_FACE_5) / (1 + 2 * CHIP_PADDING) * CHIP_SIZE

# MTCNN's points on dlib's 150x150 chips: image-left eye, image-right eye, nose tip,
# image-left and image-right mouth corners.
MTCNN_TEMPLATE = np.array([(47.1, 44.8), (100.5, 44.9), (73.0, 76.7), (49.5, 99.6), (98.7, 99.3)])
# dlib aligns on the eyes and the nose only; fitting MTCNN's eyes and nose (not its mouth
# corners, whose place varies most from face to face) reproduces dlib's chips best.
MTCNN_POINTS = (0, 1, 2)


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """(2, 3) ``[s R | t]`` with ``dst ~= s R src + t`` (R a rotation) for (n >= 2, 2)
    matching points: the least-squares similarity transform of Umeyama (1991)."""
    src, dst = np.asarray(src, float), np.asarray(dst, float)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s_c, d_c = src - mu_s, dst - mu_d
    var_s = (s_c**2).sum() / len(src)
    cov = d_c.T @ s_c / len(src)
    U, S, Vt = np.linalg.svd(cov)
    D = np.diag([1.0, np.sign(np.linalg.det(U) * np.linalg.det(Vt)) or 1.0])
    R = U @ D @ Vt
    scale = np.trace(np.diag(S) @ D) / var_s
    t = mu_d - scale * R @ mu_s
    return np.hstack([scale * R, t[:, None]])


def affine_from_3_points(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The (2, 3) affine map taking three points ``src`` exactly onto ``dst``."""
    A = np.hstack([np.asarray(src, float), np.ones((3, 1))])  # (3, 3)
    return np.linalg.solve(A, np.asarray(dst, float)).T


def apply(M: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a (2, 3) affine matrix to (n, 2) points."""
    return np.asarray(points, float) @ M[:, :2].T + M[:, 2]


@dataclass(frozen=True)
class ChipDetails:
    """Where a chip lies in the image: a square of side ``size * scale`` pixels around
    ``center``, rotated by ``angle`` radians; sampled into ``size`` x ``size`` pixels."""

    center: tuple[float, float]
    angle: float
    scale: float
    size: int = CHIP_SIZE

    def rect(self) -> tuple[float, float, float, float]:
        """(left, top, right, bottom) before rotation; dlib's inclusive convention, in which a
        rectangle from l to r is ``r - l + 1`` pixels wide."""
        half = (self.size * self.scale - 1) / 2
        cx, cy = self.center
        return cx - half, cy - half, cx + half, cy + half


def chip_details(landmarks: np.ndarray, template: np.ndarray = MTCNN_TEMPLATE,
                 size: int = CHIP_SIZE, points: tuple[int, ...] | None = MTCNN_POINTS
                 ) -> ChipDetails:
    """Fit the chip to a face: the similarity transform from ``template`` (in a 150-px chip)
    to the face's ``landmarks`` (image pixels), both (5, 2) in the same order, using the
    points listed in ``points`` (None: all of them)."""
    template = np.asarray(template, float) * (size / CHIP_SIZE)
    landmarks = np.asarray(landmarks, float)
    if points is not None:
        template, landmarks = template[list(points)], landmarks[list(points)]
    M = similarity_transform(template, landmarks)
    px, py = M[:, :2] @ np.array([1.0, 0.0])  # where the chip's x axis goes
    center = apply(M, [(size / 2, size / 2)])[0]
    return ChipDetails((float(center[0]), float(center[1])), float(np.arctan2(py, px)),
                       float(np.hypot(px, py)), size)


def pyramid_down(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 -> ((H - 3) // 2, (W - 3) // 2, 3) uint8, as dlib's ``pyramid_down<2>``:
    a separable [1 4 6 4 1] / 16 filter, every other row and column, values truncated.
    Output (r, c) is centred on input (2r + 2, 2c + 2); coordinates map by `point_down`."""
    x = image.astype(np.uint32)
    h, w = (x.shape[0] - 3) // 2, (x.shape[1] - 3) // 2
    taps = (1, 4, 6, 4, 1)
    rows = sum(k * x[:, i:i + 2 * w:2] for i, k in enumerate(taps))  # (H, w, 3)
    out = sum(k * rows[i:i + 2 * h:2] for i, k in enumerate(taps))  # (h, w, 3)
    return (out // 256).astype(np.uint8)


def point_down(p: np.ndarray) -> np.ndarray:
    """Image coordinates one pyramid level down (dlib's convention)."""
    return np.asarray(p, float) / 2 - np.array([1.25, 0.75])


def _rect_area(left: float, top: float, right: float, bottom: float) -> float:
    return max(right - left + 1, 0) * max(bottom - top + 1, 0)


def _rect_down(rect: tuple[float, ...]) -> tuple[float, ...]:
    (left, top), (right, bottom) = point_down(rect[:2]), point_down(rect[2:])
    return left, top, right, bottom


def _rotated_corners(rect: tuple[float, ...], angle: float) -> np.ndarray:
    """Top-left, top-right, bottom-left and bottom-right corners rotated about the centre."""
    left, top, right, bottom = rect
    c = np.array([(left + right) / 2, (top + bottom) / 2])
    corners = np.array([(left, top), (right, top), (left, bottom), (right, bottom)]) - c
    R = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return corners @ R.T + c


def bilinear(image: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Sample ``image`` (H, W, 3) at float points ``xy`` (..., 2); black where any of the four
    neighbours is outside. Returns (..., 3) uint8, truncated as dlib does."""
    x, y = xy[..., 0], xy[..., 1]
    left, top = np.floor(x).astype(int), np.floor(y).astype(int)
    inside = (left >= 0) & (top >= 0) & (left + 1 < image.shape[1]) & (top + 1 < image.shape[0])
    fx, fy = (x - left)[..., None], (y - top)[..., None]
    c, r = np.where(inside, left, 0), np.where(inside, top, 0)
    img = image.astype(np.float64)
    value = ((1 - fy) * ((1 - fx) * img[r, c] + fx * img[r, c + 1])
             + fy * ((1 - fx) * img[r + 1, c] + fx * img[r + 1, c + 1]))
    return np.where(inside[..., None], np.clip(value, 0, 255), 0).astype(np.uint8)  # truncates


def extract_chip(image: np.ndarray, details: ChipDetails) -> np.ndarray:
    """The (size, size, 3) uint8 chip `chip_details` places in an (H, W, 3) uint8 RGB image,
    cut like dlib's ``extract_image_chip``."""
    size = details.size
    rect = details.rect()
    # Crop a margin around the (rotated) chip first, as dlib does: the pyramid's pixel
    # grid then starts at the crop's corner, exactly as in dlib.
    depth, grow, r = 0, 2.0, _rect_down(rect)
    while _rect_area(*r) > size * size:
        r, depth, grow = _rect_down(r), depth + 1, grow * 2 + 2
    corners = _rotated_corners(rect, details.angle)
    lo = np.maximum(np.floor(corners.min(0) - grow + 0.5), 0).astype(int)
    hi = np.minimum(np.floor(corners.max(0) + grow + 0.5),
                    [image.shape[1] - 1, image.shape[0] - 1]).astype(int)
    level_image = image[lo[1]:hi[1] + 1, lo[0]:hi[0] + 1]
    rect = (rect[0] - lo[0], rect[1] - lo[1], rect[2] - lo[0], rect[3] - lo[1])
    while _rect_area(*_rect_down(rect)) > size * size:
        level_image, rect = pyramid_down(level_image), _rect_down(rect)
    # The chip's top-left, top-right and bottom-left pixels land on the rotated corners.
    chip_corners = np.array([(0, 0), (size - 1, 0), (0, size - 1)], float)
    M = affine_from_3_points(chip_corners, _rotated_corners(rect, details.angle)[:3])
    cols, rows = np.meshgrid(np.arange(size, dtype=float), np.arange(size, dtype=float))
    return bilinear(level_image, apply(M, np.stack([cols, rows], -1).reshape(-1, 2))
                    .reshape(size, size, 2))


def align_face(image: np.ndarray, landmarks: np.ndarray, template: np.ndarray = MTCNN_TEMPLATE,
               size: int = CHIP_SIZE, points: tuple[int, ...] | None = MTCNN_POINTS
               ) -> np.ndarray:
    """(H, W, 3) uint8 RGB photo + (5, 2) landmarks -> (size, size, 3) uint8 aligned chip.

    The defaults take MTCNN's landmarks; for dlib's own five points pass
    ``template=DLIB_TEMPLATE, points=None``."""
    return extract_chip(image, chip_details(landmarks, template, size, points))
