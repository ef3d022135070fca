"""Colour preservation for neural style transfer (Gatys, Bethge, Hertzmann, Shechtman 2016,
"Preserving Color in Neural Artistic Style Transfer"): keep the content photo's colours
while taking the style's strokes, by one of the ``PRESERVE_COLOR`` modes (`describe`).

Everything here is NumPy, on float images with values in [0, 1] and channels last.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image

from nbutils.style.choices import check_choice

PRESERVE_COLOR = ("none", "luminance", "histogram")

_DESCRIPTIONS = {
    "none": "plain transfer: the result takes the style image's colours",
    "luminance": "method 1, after optimisation: generated luminance Y + content chroma "
                 "(Cb, Cr), via luminance_transfer(content, generated)",
    "histogram": "method 2, before optimisation: the style image recoloured to the "
                 "content's RGB mean and covariance, via match_color(style, content)",
}

# Full-range ITU-R BT.601 luma weights, as JPEG (JFIF) uses them.
KR, KG, KB = 0.299, 0.587, 0.114


def describe(preserve_color: str) -> str:
    """One line saying what a ``PRESERVE_COLOR`` mode does, and when it is applied;
    ValueError for a name not in ``PRESERVE_COLOR``."""
    check_choice("preserve_color", preserve_color, PRESERVE_COLOR)
    return f"{preserve_color!r}: {_DESCRIPTIONS[preserve_color]}"


def _float_array(image: Any) -> np.ndarray:
    """``image`` as a float array (float32 stays float32), checking it ends in 3 channels."""
    array = np.asarray(image)
    if not np.issubdtype(array.dtype, np.floating):
        raise TypeError(f"expected a float image in [0, 1], got dtype {array.dtype}; "
                        "divide 0..255 values by 255 first")
    if array.ndim == 0 or array.shape[-1] != 3:
        raise ValueError(f"expected channels last, shape (..., 3), got {array.shape}")
    return array


def rgb_to_ycbcr(image: Any) -> np.ndarray:
    """RGB -> YCbCr, full range (JPEG / JFIF, ITU-R BT.601 weights).

        Y  = 0.299 R + 0.587 G + 0.114 B
        Cb = 0.5 + (B - Y) / 1.772  = 0.5 - 0.168736 R - 0.331264 G + 0.5 B
        Cr = 0.5 + (R - Y) / 1.402  = 0.5 + 0.5 R - 0.418688 G - 0.081312 B

    float (..., 3) RGB in [0, 1] -> the same shape and dtype: Y, Cb, Cr in [0, 1] (Cb and
    Cr 0.5 for gray).
    """
    rgb = _float_array(image)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    y = KR * r + KG * g + KB * b
    cb = 0.5 + (b - y) / (2.0 * (1.0 - KB))
    cr = 0.5 + (r - y) / (2.0 * (1.0 - KR))
    return np.stack([y, cb, cr], axis=-1).astype(rgb.dtype, copy=False)


def ycbcr_to_rgb(image: Any) -> np.ndarray:
    """YCbCr -> RGB, the exact inverse of ``rgb_to_ycbcr`` (solved, not rounded constants).

        R = Y + 1.402 (Cr - 0.5)
        B = Y + 1.772 (Cb - 0.5)
        G = (Y - 0.299 R - 0.114 B) / 0.587   (= Y - 0.344136 (Cb - 0.5) - 0.714136 (Cr - 0.5))

    float (..., 3) -> the same shape and dtype, RGB, NOT clipped (a YCbCr triple outside
    the RGB cube comes back outside [0, 1]).
    """
    ycc = _float_array(image)
    y, cb, cr = ycc[..., 0], ycc[..., 1], ycc[..., 2]
    r = y + 2.0 * (1.0 - KR) * (cr - 0.5)
    b = y + 2.0 * (1.0 - KB) * (cb - 0.5)
    g = (y - KR * r - KB * b) / KG
    return np.stack([r, g, b], axis=-1).astype(ycc.dtype, copy=False)


def _rgb_image(image: Any, name: str) -> np.ndarray:
    """(H, W, 3) float image; a leading batch axis of one, (1, H, W, 3), is dropped."""
    array = _float_array(image)
    if array.ndim == 4 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 3:
        raise ValueError(f"{name}: expected an (H, W, 3) image, got shape {array.shape}")
    return array


def _resize_like(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bicubic-resize a float (h, w, 3) image to (height, width, 3), channel by channel."""
    planes = [Image.fromarray(np.ascontiguousarray(image[..., c], dtype=np.float32))
              .resize((width, height), Image.Resampling.BICUBIC) for c in range(3)]
    return np.stack([np.asarray(p) for p in planes], axis=-1)


def luminance_transfer(content: Any, generated: Any) -> np.ndarray:
    """Gatys et al. 2016, method 1: the generated image's luminance with the content's colour.

        out = clip(ycbcr_to_rgb([Y_generated, Cb_content, Cr_content]), 0, 1)

    Apply it to the result of the optimisation. ``content`` (H_c, W_c, 3) and ``generated``
    (H, W, 3), float RGB in [0, 1], either also as a batch of one (1, H, W, 3); content is
    first resized to the generated image's size (PIL, bicubic, per channel) if they differ.
    Returns (H, W, 3) float32 RGB in [0, 1].
    """
    content = _rgb_image(content, "content").astype(np.float32)
    generated = _rgb_image(generated, "generated").astype(np.float32)
    height, width = generated.shape[:2]
    if content.shape[:2] != (height, width):
        content = _resize_like(content, height, width)
    y = rgb_to_ycbcr(generated)[..., :1]
    cbcr = rgb_to_ycbcr(content)[..., 1:]
    return np.clip(ycbcr_to_rgb(np.concatenate([y, cbcr], axis=-1)), 0.0, 1.0)


def _sym_power(matrix: np.ndarray, power: float) -> np.ndarray:
    """M^power of a symmetric positive definite (3, 3) matrix: V diag(lambda^power) V^T."""
    eigenvalues, eigenvectors = np.linalg.eigh(matrix)
    return (eigenvectors * eigenvalues**power) @ eigenvectors.T


def _mean_cov(pixels: np.ndarray, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """Mean (3,) and covariance (3, 3) of (N, 3) pixels, the covariance plus eps * I."""
    mean = pixels.mean(axis=0)
    centred = pixels - mean
    return mean, centred.T @ centred / len(pixels) + eps * np.eye(3)


def match_color(style: Any, content: Any, eps: float = 1e-5) -> np.ndarray:
    """Gatys et al. 2016, method 2: recolour the style image with the content's colour statistics.

    Every style pixel x (an RGB vector) is mapped by the affine transform

        x -> A (x - mu_S) + mu_C,    A = Sigma_C^(1/2) Sigma_S^(-1/2)

    so the result has the content's mean mu_C and covariance A Sigma_S A^T = Sigma_C.
    The square roots are the symmetric ones (via ``np.linalg.eigh``); each covariance gets
    ``eps * I`` added so a flat or gray image (singular Sigma) stays finite. The result is
    clipped to [0, 1] (which can move its statistics a little). Use it on the style image
    BEFORE the optimisation. ``style`` (H_s, W_s, 3) (or a batch of one) and ``content``
    (any size): float RGB in [0, 1]. Returns (H_s, W_s, 3) float32 RGB in [0, 1].
    """
    if not eps > 0:
        raise ValueError(f"eps must be > 0 (it keeps Sigma_S invertible), not {eps}")
    style = _rgb_image(style, "style").astype(np.float64)
    content = _rgb_image(content, "content").astype(np.float64)
    mu_s, sigma_s = _mean_cov(style.reshape(-1, 3), eps)
    mu_c, sigma_c = _mean_cov(content.reshape(-1, 3), eps)
    A = _sym_power(sigma_c, 0.5) @ _sym_power(sigma_s, -0.5)
    matched = (style - mu_s) @ A.T + mu_c
    return np.clip(matched, 0.0, 1.0).astype(np.float32)
