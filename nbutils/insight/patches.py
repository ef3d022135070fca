"""What does a unit respond to? The image patches that excite it most (Zeiler & Fergus, 2013).

A unit is one channel of a layer. Over many photographs, the positions where it is largest
are kept, and the window each sees (its receptive field, `nbutils.insight.receptive`) is
cropped: block 1 units respond to edges and colours, deeper ones to textures, then to shapes
and object parts. Neighbouring positions see nearly the same pixels, so winners are picked
with non-maximum suppression.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import keras
import matplotlib
import numpy as np
from matplotlib.figure import Figure
from PIL import Image

from nbutils.images import IMAGE_EXTENSIONS, load_image, to_uint8
from nbutils.insight.receptive import ReceptiveField, input_window, receptive_fields
from nbutils.plots import show_images

__all__ = [
    "IMAGE_EXTENSIONS",
    "Patch",
    "layer_model",
    "least_clipped",
    "photo_collection",
    "plot_top_patches",
    "show_by_layer",
    "top_patches",
    "top_patches_per_unit",
]

#: scikit-image's bundled photographs: name -> file in ``skimage/data/``. Only files that
#: ship inside the package are listed (nothing here needs a download).
SKIMAGE_PHOTOS = {
    "astronaut": "astronaut.png",
    "brick": "brick.png",
    "camera": "camera.png",
    "cell": "cell.png",
    "chelsea": "chelsea.png",
    "clock": "clock_motion.png",
    "coffee": "coffee.png",
    "coins": "coins.png",
    "colorwheel": "color.png",
    "grass": "grass.png",
    "gravel": "gravel.png",
    "hubble_deep_field": "hubble_deep_field.jpg",
    "immunohistochemistry": "ihc.png",
    "moon": "moon.png",
    "motorcycle_left": "motorcycle_left.png",
    "page": "page.png",
    "retina": "retina.jpg",
    "rocket": "rocket.jpg",
    "text": "text.png",
}

#: matplotlib's sample photographs: name -> file in ``mpl-data/sample_data/``.
MATPLOTLIB_PHOTOS = {
    "grace_hopper": "grace_hopper.jpg",
    "minduka_present_blue_pack": "Minduka_Present_Blue_Pack.png",
}


@dataclass(frozen=True)
class Patch:
    """One of the top activations of a unit: ``crop`` (h, w, 3) float32 in [0, 1] is its
    receptive field clipped to image ``image_index``, at ``window`` (top, left, bottom,
    right; exclusive) of the input and ``position`` (row, col) of the layer's output grid."""

    crop: np.ndarray
    activation: float
    image_index: int
    position: tuple[int, int]
    window: tuple[int, int, int, int]


# ----------------------------------------------------------------------------- photos


def _square(path: Path, size: int) -> np.ndarray:
    """Load an image, resize it so its shorter side is ``size``, centre-crop size x size."""
    image = load_image(path)  # EXIF orientation applied, so the shape is the one we see
    height, width = image.shape[:2]
    scale = size / min(height, width)
    new_h, new_w = max(size, round(height * scale)), max(size, round(width * scale))
    image = load_image(image, size=(new_h, new_w))
    top, left = (new_h - size) // 2, (new_w - size) // 2
    return np.ascontiguousarray(image[top:top + size, left:left + size])


def photo_collection(folder: str | os.PathLike[str] | None = None,
                     size: int = 224) -> list[tuple[str, np.ndarray]]:
    """``[(name, image), ...]``: the ~20 photos scikit-image and matplotlib ship (nothing is
    downloaded; missing files are skipped), sorted by name, then ``folder``'s image files
    in name order; each (size, size, 3) float32 in [0, 1], resized and centre-cropped."""
    import skimage.data

    sources = []
    skimage_dir = Path(skimage.data.__file__).parent
    sources += [(name, skimage_dir / file) for name, file in SKIMAGE_PHOTOS.items()]
    mpl_dir = Path(matplotlib.get_data_path()) / "sample_data"
    sources += [(name, mpl_dir / file) for name, file in MATPLOTLIB_PHOTOS.items()]
    sources = sorted((name, path) for name, path in sources if path.is_file())
    if folder is not None:
        files = sorted(p for p in Path(folder).iterdir()
                       if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
        sources += [(p.stem, p) for p in files]
    return [(name, _square(path, size)) for name, path in sources]


# ----------------------------------------------------------------------------- top patches


def layer_model(model: keras.Model, layer: str) -> keras.Model:
    """A model from ``model``'s single input to ``layer``'s output (Sequential models too)."""
    names = [item.name for item in model.layers]
    if layer not in names:
        raise ValueError(f"no layer named {layer!r} in {model.name}; its layers are {names}")
    if len(model.inputs) != 1:
        raise ValueError(f"{model.name} has {len(model.inputs)} inputs; expected one image input")
    return keras.Model(model.inputs[0], model.get_layer(layer).output)


def _unit_maps(model: keras.Model, layer: str, units: Sequence[int], images: Sequence[np.ndarray],
               batch_size: int) -> list[np.ndarray]:
    """Activation maps of ``units`` of ``layer``: one (n_units, h, w) float32 array per image."""
    sub = layer_model(model, layer)
    channels = sub.output.shape[-1]
    bad = [u for u in units if not 0 <= u < channels]
    if bad:
        raise ValueError(f"units {bad} do not exist: {layer} has {channels} channels")
    maps: list[np.ndarray | None] = [None] * len(images)
    by_shape: dict[tuple[int, ...], list[int]] = {}
    for i, image in enumerate(images):
        by_shape.setdefault(image.shape, []).append(i)
    for indices in by_shape.values():  # a batch holds images of one size
        for b in range(0, len(indices), batch_size):
            chunk = indices[b:b + batch_size]
            batch = np.stack([images[i] for i in chunk]).astype(np.float32)
            out = keras.ops.convert_to_numpy(sub(batch, training=False))
            for i, acts in zip(chunk, out[..., list(units)], strict=True):
                maps[i] = np.moveaxis(acts, -1, 0)
    return maps


def _as_image_list(images: np.ndarray | Sequence[np.ndarray]) -> list[np.ndarray]:
    """(N, H, W, 3) array or list of (H, W, 3) arrays -> list of float32 (H, W, 3) arrays."""
    if isinstance(images, np.ndarray) and images.ndim == 4:
        images = list(images)
    result = [np.asarray(image, dtype=np.float32) for image in images]
    for i, image in enumerate(result):
        if image.ndim != 3 or image.shape[-1] != 3:
            raise ValueError(f"image {i} has shape {image.shape}; expected (H, W, 3)")
    if not result:
        raise ValueError("no images given")
    return result


def least_clipped(rf: ReceptiveField, grid: tuple[int, int],
                  image_shape: tuple[int, ...]) -> np.ndarray:
    """(h, w) bool mask over the ``grid`` of output positions whose window sticks out of the
    image least along each axis (entirely inside, if any is): beyond the border the network
    saw zero padding, which a unit can respond to instead of the picture."""
    keep = []
    for a in range(2):
        first = rf.start[a] - (rf.size[a] - 1) / 2 + rf.jump[a] * np.arange(grid[a])
        outside = np.maximum(-first, 0) + np.maximum(first + rf.size[a] - image_shape[a], 0)
        keep.append(outside <= outside.min() + 1e-6)
    return keep[0][:, None] & keep[1][None, :]


def _non_max_suppression(maps: list[np.ndarray], k: int, min_distance: int
                         ) -> list[tuple[float, int, int, int]]:
    """Up to ``k`` ``(value, image_index, row, col)`` by decreasing value (ties: lowest
    index, then row-major), greedily over (h, w) maps (-inf: excluded); each pick excludes
    its image's positions within ``min_distance`` in rows and in columns."""
    work = [m.astype(np.float64) for m in maps]
    best = np.array([m.max() if m.size else -np.inf for m in work])
    picks = []
    while len(picks) < k and np.isfinite(best).any():
        n = int(np.argmax(best))  # first image holding the current maximum
        row, col = np.unravel_index(int(np.argmax(work[n])), work[n].shape)
        picks.append((float(maps[n][row, col]), n, int(row), int(col)))
        d = min_distance
        work[n][max(row - d, 0):row + d + 1, max(col - d, 0):col + d + 1] = -np.inf
        best[n] = work[n].max()
    return picks


def top_patches_per_unit(model: keras.Model, layer: str, units: Sequence[int],
                         images: np.ndarray | Sequence[np.ndarray], k: int = 9,
                         min_distance: int | None = None, avoid_border: bool = True,
                         batch_size: int = 8) -> dict[int, list[Patch]]:
    """``{unit: top_patches(...)}`` for several units, running the images through once."""
    images = _as_image_list(images)
    rf = receptive_fields(model, layer)
    if min_distance is None:  # half the receptive field, in output cells
        min_distance = max(1, max(s // (2 * j) for s, j in zip(rf.size, rf.jump, strict=True)))
    maps = _unit_maps(model, layer, list(units), images, batch_size)
    if avoid_border:
        for image, m in zip(images, maps, strict=True):
            m[:, ~least_clipped(rf, m.shape[1:], image.shape)] = -np.inf
    results = {}
    for u, unit in enumerate(units):
        picks = _non_max_suppression([m[u] for m in maps], k, min_distance)
        patches = []
        for value, n, row, col in picks:
            window = input_window(rf, row, col, images[n].shape)
            top, left, bottom, right = window
            patches.append(Patch(crop=images[n][top:bottom, left:right].copy(),
                                 activation=value, image_index=n, position=(row, col),
                                 window=window))
        results[unit] = patches
    return results


def top_patches(model: keras.Model, layer: str, unit: int,
                images: np.ndarray | Sequence[np.ndarray], k: int = 9,
                min_distance: int | None = None, avoid_border: bool = True,
                batch_size: int = 8) -> list[Patch]:
    """Up to ``k`` `Patch` objects exciting channel ``unit`` of ``layer`` most, by decreasing
    activation.

    ``model`` takes the images as they are (for `load_vgg19`: RGB in [0, 1]); ``images``
    are (H, W, 3) in [0, 1], sizes may differ. ``min_distance``: suppression radius in output
    cells (default half the receptive field, ``size // (2 * jump)``, at least 1; 0: none).
    ``avoid_border`` keeps only `least_clipped` positions.
    """
    return top_patches_per_unit(model, layer, [unit], images, k, min_distance,
                                avoid_border, batch_size)[unit]


# ----------------------------------------------------------------------------- plots


def _pad_to_square(patch: Patch) -> np.ndarray:
    """The crop padded with grey to a square, on the side(s) the image border cut off."""
    crop = patch.crop
    h, w = crop.shape[:2]
    side = max(h, w)
    top, left = patch.window[:2]
    # A clipped window touches the image border on the side it lost; pad that side.
    pad_top = side - h if top == 0 else 0
    pad_left = side - w if left == 0 else 0
    canvas = np.full((side, side, 3), 0.5, np.float32)
    canvas[pad_top:pad_top + h, pad_left:pad_left + w] = crop
    return canvas


def _mosaic(patches: Sequence[Patch], tile: int, gap: int = 2) -> np.ndarray:
    """Patches as a square grid of ``tile``-pixel tiles on white (display only)."""
    n = max(len(patches), 1)
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    mosaic = np.ones((rows * tile + (rows - 1) * gap, cols * tile + (cols - 1) * gap, 3),
                     np.float32)
    for i, patch in enumerate(patches):
        square = _pad_to_square(patch)
        if square.shape[0] != tile:  # blocky when enlarged: a 3 x 3 crop stays 9 pixels
            grow = square.shape[0] < tile
            resample = Image.Resampling.NEAREST if grow else Image.Resampling.LANCZOS
            square = Image.fromarray(to_uint8(square)).resize((tile, tile), resample)
            square = np.asarray(square, np.float32) / 255.0
        r, c = divmod(i, cols)
        mosaic[r * (tile + gap):r * (tile + gap) + tile,
               c * (tile + gap):c * (tile + gap) + tile] = square
    return mosaic


def show_by_layer(cells: Mapping[str, Mapping[int, np.ndarray]], size: float = 2.5) -> Figure:
    """``{layer: {unit: image}}`` as a grid titled "layer / unit", one row per layer
    (short rows padded with blanks), ``size`` inches per image."""
    ncols = max(len(units) for units in cells.values())
    images, titles = [], []
    for layer, units in cells.items():
        blank = np.ones_like(next(iter(units.values())))
        for unit, image in units.items():
            images.append(image)
            titles.append(f"{layer} / unit {unit}")
        images += [blank] * (ncols - len(units))
        titles += [""] * (ncols - len(units))
    return show_images(images, titles, ncols=ncols, size=size)


def plot_top_patches(results: Mapping[str, Mapping[int, Sequence[Patch]]], tile: int = 48,
                     size: float = 2.8) -> Figure:
    """``{layer: {unit: patches}}`` as one square grid per unit (3 x 3 for k = 9), a row of
    grids per layer: each crop shown at ``tile`` pixels (clipped ones padded grey), ``size``
    inches per grid."""
    mosaics = {layer: {unit: _mosaic(patches, tile) for unit, patches in units.items()}
               for layer, units in results.items()}
    return show_by_layer(mosaics, size)
