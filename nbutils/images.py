"""Image input/output for the notebooks: every image is a ``float32`` (H, W, 3) RGB array
in [0, 1]. `load_image` turns files, PIL images and arrays into that form; `save_image`
writes it back atomically as PNG or JPEG. Every input problem raises `ImageError`, whose
message names the file, says what went wrong and what to do about it.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from nbutils._internal.atomic import atomic_write

__all__ = [
    "IMAGE_EXTENSIONS",
    "MAX_PIXELS",
    "ImageError",
    "ImageNotFoundError",
    "load_image",
    "save_image",
    "to_uint8",
]

#: File extensions taken as photos when a folder is read (lower case, with the dot).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")

#: Images with more pixels than this are refused (100 megapixels, 1.2 GB as float32).
MAX_PIXELS = 100_000_000

#: File extension -> (Pillow format name, save options).
_SAVE_FORMATS: dict[str, tuple[str, dict[str, Any]]] = {
    ".png": ("PNG", {}),
    ".jpg": ("JPEG", {"quality": 95}),
    ".jpeg": ("JPEG", {"quality": 95}),
}

_RESAMPLE = Image.Resampling.LANCZOS


class ImageError(ValueError):
    """An image could not be read, converted or written."""


class ImageNotFoundError(ImageError, FileNotFoundError):
    """The image file does not exist (also a :class:`FileNotFoundError`)."""


# --------------------------------------------------------------------------- loading


def load_image(source: Any, size: int | tuple[int, int] | None = None, *,
               name: str = "uploaded file") -> np.ndarray:
    """A ``float32`` (H, W, 3) RGB array in [0, 1] from a path, a PIL image, the bytes of an
    image file (``name`` names them in errors, e.g. an upload widget's file name) or an
    (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) array.

    uint8 is divided by 255, uint16 and 32-bit integer files by 65535 (which they must not
    exceed), bool maps to {0, 1}; alpha is composited onto white; EXIF orientation applied.
    Floats (arrays, files, mode "F") must already lie in [0, 1]: NaN, inf and values outside
    are refused, never clipped, as a float file does not say its range. ``size``: an int
    (a square) or (height, width), Lanczos, at most ``MAX_PIXELS`` like the source.

    Raises:
        ImageError: for any unusable input, or a ``size`` over ``MAX_PIXELS``,
            raised before the file is read (``ImageNotFoundError``, also a
            ``FileNotFoundError``, when a path does not exist).
    """
    target = _parse_size(size)
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        rgb = _pil_to_rgb_float(_open_file(path), str(path))
    elif isinstance(source, (bytes, bytearray, memoryview)):  # e.g. an uploaded file
        if len(source) == 0:
            raise ImageError(f"'{name}' is empty (0 bytes), not an image. Upload it again.")
        rgb = _pil_to_rgb_float(_decode(io.BytesIO(source), name), name)
    elif isinstance(source, Image.Image):
        name = getattr(source, "filename", "") or ""
        rgb = _pil_to_rgb_float(_prepare_pil(source, name), name)
    elif isinstance(source, np.ndarray) or hasattr(source, "__array__"):
        rgb = _array_to_rgb_float(np.asarray(source))
    else:
        raise ImageError(
            f"Cannot load an image from a {type(source).__name__}. "
            "Pass a file path, a PIL.Image.Image or a NumPy array of shape (H, W, 3)."
        )
    if target is not None and target != rgb.shape[:2]:
        rgb = _resize(rgb, target)
    return rgb


def _parse_size(size: Any) -> tuple[int, int] | None:
    """Validate ``size`` and return it as ``(height, width)`` (or ``None``)."""
    if size is None:
        return None
    values = size if isinstance(size, (tuple, list)) else (size, size)
    ok = len(values) == 2 and all(
        isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) and v > 0
        for v in values
    )
    if not ok:
        raise ImageError(
            f"Invalid image size {size!r}. Use None, a positive int (a square side) "
            "or a (height, width) tuple of positive ints."
        )
    height, width = int(values[0]), int(values[1])
    if height * width > MAX_PIXELS:  # Python ints: no overflow; checked before any decoding
        raise ImageError(
            f"Image size {size!r} asks for {height} x {width} = {height * width:,} pixels, "
            f"more than MAX_PIXELS = {MAX_PIXELS:,}. Choose a smaller size."
        )
    return height, width


def _open_file(path: Path) -> Image.Image:
    """Open, fully decode and EXIF-orient the image file at ``path``."""
    if not path.exists():
        raise ImageNotFoundError(
            f"Image file not found: '{path}'. Check the spelling and the folder; "
            f"relative paths are resolved from the current directory ({Path.cwd()})."
        )
    if path.is_dir():
        raise ImageError(
            f"'{path}' is a directory, not an image file. "
            "Pass the path of an image file (e.g. a .jpg or .png) instead."
        )
    if path.stat().st_size == 0:
        raise ImageError(f"'{path}' is an empty file (0 bytes), not an image. Save or copy "
                         "the image again.")
    return _decode(path, str(path))


def _decode(file: Path | io.BytesIO, name: str) -> Image.Image:
    """Open, bound (`MAX_PIXELS`, from the header), decode and EXIF-orient ``file``, named
    ``name`` in errors."""
    try:
        with warnings.catch_warnings():
            # The size limit is enforced below with MAX_PIXELS instead.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(file) as image:
                _check_dimensions(image.size, name)
                return _prepare_pil(image, name)
    except UnidentifiedImageError as err:
        raise ImageError(
            f"'{name}' is not an image file Pillow can read. "
            "Use a JPEG, PNG, BMP, GIF, TIFF or WebP image."
        ) from err
    except Image.DecompressionBombError as err:
        raise _too_large_error(name) from err
    except OSError as err:
        raise ImageError(
            f"Could not read '{name}' ({err}). Check that the file is readable "
            "(permissions) and not still being written."
        ) from err


def _prepare_pil(image: Image.Image, name: str) -> Image.Image:
    """Force a full decode of ``image`` and apply its EXIF orientation."""
    try:
        image.load()
        oriented = ImageOps.exif_transpose(image)
    except Image.DecompressionBombError as err:
        raise _too_large_error(name) from err
    except (OSError, SyntaxError, ValueError) as err:
        raise ImageError(
            f"Could not decode the image{_in(name)}: it looks truncated or corrupt ({err}). "
            "Re-download or re-export the image."
        ) from err
    _check_dimensions(oriented.size, name)
    return oriented


def _check_dimensions(size: tuple[int, int], name: str) -> None:
    """Refuse images with a zero side or more than ``MAX_PIXELS`` pixels."""
    width, height = size
    if width <= 0 or height <= 0:
        raise ImageError(
            f"The image{_in(name)} is empty (width {width}, height {height}). "
            "Use an image with at least one pixel."
        )
    if width * height > MAX_PIXELS:
        raise _too_large_error(name, size)


def _too_large_error(name: str, size: tuple[int, int] | None = None) -> ImageError:
    dims = f" ({size[0]} x {size[1]} pixels)" if size else ""
    return ImageError(
        f"The image{_in(name)} is too large{dims}: more than {MAX_PIXELS / 1e6:.0f} "
        "megapixels (or Pillow's decompression-bomb limit). Downscale it first, "
        "e.g. to at most a few thousand pixels per side."
    )


def _in(name: str) -> str:
    """`` in 'name'`` when there is a file name, else an empty string."""
    return f" in '{name}'" if name else ""


def _pil_to_rgb_float(image: Image.Image, name: str) -> np.ndarray:
    """Convert a decoded PIL image of any common mode to float32 RGB in [0, 1]."""
    mode = image.mode
    if mode.startswith("I;16"):
        gray = np.asarray(image).astype(np.float32) / 65535.0
        return _gray_to_rgb(gray)
    if mode == "I":
        values = np.asarray(image, dtype=np.int64)
        low, high = int(values.min()), int(values.max())
        if low < 0 or high > 65535:  # refused, not clipped: clipping would lose the picture
            raise ImageError(
                f"The 32-bit integer image{_in(name)} has values in [{low}, {high}], outside "
                "[0, 65535]. Re-save it as an 8- or 16-bit image, or scale it to [0, 1] "
                "yourself and pass the float array."
            )
        return _gray_to_rgb((values / 65535.0).astype(np.float32))
    if mode == "F":
        return _gray_to_rgb(_check_unit_floats(np.asarray(image, dtype=np.float32),
                                               f"The float image{_in(name)} (Pillow mode F)"))
    if "A" in image.getbands() or "transparency" in image.info:
        rgba = np.asarray(image.convert("RGBA"), dtype=np.float32) / 255.0
        return _composite_on_white(rgba)
    if mode in ("1", "L"):
        return _gray_to_rgb(np.asarray(image.convert("L"), dtype=np.float32) / 255.0)
    if mode == "RGB":
        return np.asarray(image, dtype=np.float32) / 255.0
    try:
        return np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    except (OSError, ValueError) as err:
        raise ImageError(
            f"Cannot convert the image{_in(name)} from mode {mode!r} to RGB ({err}). "
            "Re-save it as an 8-bit RGB PNG or JPEG."
        ) from err


def _array_to_rgb_float(array: np.ndarray) -> np.ndarray:
    """Convert an (H, W[, C]) array (C in 1, 3, 4) to float32 RGB in [0, 1]."""
    shape = array.shape
    if array.ndim not in (2, 3) or (array.ndim == 3 and shape[2] not in (1, 3, 4)):
        raise ImageError(
            f"Image array has shape {shape}; expected (H, W), (H, W, 1), (H, W, 3) "
            "or (H, W, 4). Drop any batch axis (e.g. array[0]) and put channels last."
        )
    if shape[0] == 0 or shape[1] == 0:
        raise ImageError(
            f"Image array of shape {shape} is empty. Use an image with at least one pixel."
        )
    values = _array_to_unit_float(array)
    if values.ndim == 2 or values.shape[2] == 1:
        return _gray_to_rgb(values.reshape(shape[:2]))
    if values.shape[2] == 4:
        return _composite_on_white(values)
    return values


def _array_to_unit_float(array: np.ndarray) -> np.ndarray:
    """Scale uint8, uint16, bool or float arrays to float32 in [0, 1]."""
    if array.dtype == np.uint8:
        return array.astype(np.float32) / 255.0
    if array.dtype == np.uint16:
        return array.astype(np.float32) / 65535.0
    if array.dtype == np.bool_:
        return array.astype(np.float32)
    if np.issubdtype(array.dtype, np.floating):
        return _check_unit_floats(array, "The float image array").astype(np.float32)
    raise ImageError(
        f"Image array has dtype {array.dtype}; expected uint8, uint16, bool or float "
        "in [0, 1]. Convert it, e.g. array.astype(np.uint8) for 0..255 values."
    )


def _check_unit_floats(values: np.ndarray, what: str) -> np.ndarray:
    """``values`` unchanged when all are finite and in [0, 1]; else an ImageError about ``what``.

    The one rule for float arrays, float files and float PIL images (see `load_image`).
    """
    if not np.all(np.isfinite(values)):
        raise ImageError(
            f"{what} contains NaN or infinite values. Fix the computation that produced "
            "it, or replace them (np.nan_to_num) and pass the array."
        )
    low, high = float(values.min()), float(values.max())
    if low < 0.0 or high > 1.0:
        raise ImageError(
            f"{what} has values in [{low:.4g}, {high:.4g}], outside [0, 1]; float images "
            "must already lie in [0, 1] (nothing is clipped or guessed). Divide by 255 if "
            "it holds 0..255 values, or by its maximum, and pass the array; or re-save it "
            "as an 8- or 16-bit image."
        )
    return values


def _gray_to_rgb(gray: np.ndarray) -> np.ndarray:
    """(H, W) float -> (H, W, 3) float32 with three equal channels."""
    return np.repeat(gray[:, :, None], 3, axis=2).astype(np.float32, copy=False)


def _composite_on_white(rgba: np.ndarray) -> np.ndarray:
    """(H, W, 4) float in [0, 1] -> (H, W, 3) float32, alpha blended over white."""
    alpha = rgba[:, :, 3:4]
    return (rgba[:, :, :3] * alpha + (1.0 - alpha)).astype(np.float32)


def _resize(rgb: np.ndarray, target: tuple[int, int]) -> np.ndarray:
    """Lanczos-resize (H, W, 3) float32 to ``target`` = (height, width), clipped to [0, 1].

    Each channel is resized as a 32-bit float PIL image, so 16-bit precision is kept.
    """
    height, width = target
    channels = []
    for c in range(3):
        plane = Image.fromarray(np.ascontiguousarray(rgb[:, :, c]))
        channels.append(np.asarray(plane.resize((width, height), _RESAMPLE), dtype=np.float32))
    return np.clip(np.stack(channels, axis=2), 0.0, 1.0)


# --------------------------------------------------------------------------- saving


def to_uint8(image: Any) -> np.ndarray:
    """(H, W, 3) uint8 from an (H, W, 3) or (1, H, W, 3) array or tensor: uint8 as is, floats
    clipped to [0, 1] and rounded, ``round(255 * x)``.

    Raises:
        ImageError: wrong shape or dtype, an empty image, or NaN/inf values.
    """
    array = np.asarray(image)
    if array.ndim == 4 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 3 or array.shape[2] != 3:
        raise ImageError(
            f"Cannot save an image of shape {np.shape(image)}; expected (H, W, 3) or "
            "(1, H, W, 3) RGB. Select one image of the batch and put channels last."
        )
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ImageError(f"Cannot save an empty image of shape {array.shape}.")
    if array.dtype == np.uint8:
        return array
    if not (np.issubdtype(array.dtype, np.floating) or array.dtype == np.bool_):
        raise ImageError(
            f"Cannot save an image of dtype {array.dtype}; expected float in [0, 1] "
            "or uint8. Convert it first, e.g. array.astype(np.float32) / 255."
        )
    array = array.astype(np.float32)
    if not np.all(np.isfinite(array)):
        raise ImageError(
            "Cannot save an image containing NaN or infinite values. Check the "
            "computation that produced it (e.g. a diverging optimisation)."
        )
    return np.rint(np.clip(array, 0.0, 1.0) * 255.0).astype(np.uint8)


def save_image(image: Any, path: str | os.PathLike[str]) -> Path:
    """Write an image `to_uint8` accepts to ``.png``, ``.jpg`` or ``.jpeg`` (quality 95) with
    `atomic_write` (never half written; folders created); returns the ``Path``.

    Raises:
        ImageError: unknown extension or an image that :func:`to_uint8` refuses.
    """
    path = Path(path)
    extension = path.suffix.lower()
    if extension not in _SAVE_FORMATS:
        raise ImageError(
            f"Cannot save '{path}': unknown image extension {extension!r}. "
            f"Use one of {', '.join(sorted(_SAVE_FORMATS))}."
        )
    pil_image = Image.fromarray(to_uint8(image))
    file_format, options = _SAVE_FORMATS[extension]
    with atomic_write(path) as handle:
        pil_image.save(handle, format=file_format, **options)
    return path
