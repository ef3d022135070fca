"""The project's input images.

Made locally: the content photo (matplotlib's Grace Hopper), two textures drawn with NumPy
and PIL, deterministic for a seed (``style_swirls``, brush strokes along swirling
streamlines after Van Gogh's night skies; ``style_mosaic``, jewel-toned stained-glass
Voronoi cells), and face portraits from installed packages with transformed copies.
Fetched by ``python -m nbutils.prepare``: the real photos of `REAL_PHOTOS` (`real_photo_path`).
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import matplotlib
import numpy as np
from PIL import Image, ImageDraw, ImageOps

from nbutils._internal.cache import cache_dir
from nbutils._internal.weights.registry import REAL_PHOTO_FILES
from nbutils.images import save_image

__all__ = [
    "DEFAULT_FOLDER",
    "REAL_PHOTOS",
    "SAMPLE_IMAGES",
    "draw_mosaic_texture",
    "draw_swirl_texture",
    "make_sample_images",
    "real_photo_path",
    "sample_image_path",
]

#: Where the sample images live by default: ``images/`` in the cache folder
#: (`nbutils._internal.cache.cache_dir`, read when this module is first imported).
DEFAULT_FOLDER = cache_dir() / "images"

#: Sample name -> file name inside the samples folder.
SAMPLE_IMAGES: dict[str, str] = {
    "content": "content_grace_hopper.jpg",
    "style_swirls": "style_swirls.png",
    "style_mosaic": "style_mosaic.png",
}

_SWIRL_BASE = (14, 24, 66)
# Night-sky palette: cool colours for the sky, warm ones for the glowing cores.
_SWIRL_COOL = np.array(
    [(16, 34, 96), (30, 62, 150), (44, 96, 190), (66, 140, 205), (128, 186, 214)], float
)
_SWIRL_WARM = np.array([(240, 226, 140), (250, 244, 196), (210, 160, 62), (176, 120, 44)], float)

# Brush passes, broad to fine: (strokes, steps, step length, width); lengths in px at 512 px.
_SWIRL_PASSES = ((5000, 9, 3.0, 7), (7000, 7, 2.6, 4), (5000, 5, 2.2, 2))

_JEWEL_PALETTE = np.array(
    [
        (160, 18, 42),  # ruby
        (118, 16, 56),  # garnet
        (22, 58, 172),  # sapphire
        (12, 92, 190),  # cobalt
        (12, 140, 88),  # emerald
        (0, 112, 104),  # jade
        (118, 54, 170),  # amethyst
        (238, 168, 24),  # amber
        (226, 196, 38),  # citrine
        (22, 158, 176),  # turquoise
        (206, 84, 20),  # carnelian
    ],
    float,
)
_LEAD = (28, 26, 32)


def _check_size(size: int) -> int:
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 16:
        raise ValueError(f"size must be an int >= 16, got {size!r}")
    return int(size)


# --------------------------------------------------------------------------- swirls


def draw_swirl_texture(size: int = 512, seed: int = 0) -> np.ndarray:
    """A (size, size, 3) uint8 night-sky texture (size >= 16), the same for a seed.

    Thousands of short strokes follow the streamlines of a few random Gaussian vortices
    plus a wavy drift, in three passes (broad to fine), blue palette, warm near the cores.
    """
    size = _check_size(size)
    rng = np.random.default_rng(seed)
    ux, uy, glow = _swirl_field(size, rng)
    canvas = Image.new("RGB", (size, size), _SWIRL_BASE)
    draw = ImageDraw.Draw(canvas)
    scale = size / 512
    for count, steps, step_px, width_px in _SWIRL_PASSES:
        width = max(1, round(width_px * scale))
        starts = rng.uniform(0, size, (count, 2))
        paths = _trace_streamlines(ux, uy, starts, steps, step_px * scale)
        colours = _swirl_colours(glow, paths[0], rng)
        for path, colour in zip(np.transpose(paths, (1, 0, 2)), colours, strict=True):
            draw.line(path.ravel().tolist(), fill=tuple(colour), width=width)
    return np.asarray(canvas, dtype=np.uint8).copy()


def _swirl_field(size: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """Unit flow directions ``(ux, uy)`` and a warm-glow weight, each (size, size) float32."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    vx = np.full((size, size), 0.3, np.float32)
    phase, waves = rng.uniform(0, 2 * np.pi), rng.uniform(1.5, 3.0)
    vy = 0.15 * np.sin(2 * np.pi * waves * xx / size + phase).astype(np.float32)
    glow = np.zeros((size, size), np.float32)
    for _ in range(int(rng.integers(4, 8))):
        cx, cy = rng.uniform(-0.05, 1.05, 2) * size
        radius = rng.uniform(0.08, 0.2) * size
        strength = rng.choice([-1.0, 1.0]) * rng.uniform(0.9, 1.6)
        dx, dy = xx - cx, yy - cy
        falloff = np.exp(-(dx**2 + dy**2) / (2 * radius**2))
        vx += strength * -dy / radius * falloff
        vy += strength * dx / radius * falloff
        if rng.random() < 0.6:  # a glowing, star-like core
            glow += np.exp(-(dx**2 + dy**2) / (2 * (0.45 * radius) ** 2))
    norm = np.sqrt(vx**2 + vy**2) + 1e-6
    return vx / norm, vy / norm, np.clip(glow, 0, 1)


def _trace_streamlines(
    ux: np.ndarray, uy: np.ndarray, starts: np.ndarray, steps: int, step: float
) -> np.ndarray:
    """Follow the unit field from ``starts`` (N, 2) xy with midpoint steps -> (steps+1, N, 2)."""
    limit = ux.shape[0] - 1

    def direction(points: np.ndarray) -> np.ndarray:
        ix = np.clip(points[:, 0].astype(int), 0, limit)
        iy = np.clip(points[:, 1].astype(int), 0, limit)
        return np.stack([ux[iy, ix], uy[iy, ix]], axis=1)

    paths = [starts]
    for _ in range(steps):
        here = paths[-1]
        middle = here + 0.5 * step * direction(here)
        paths.append(here + step * direction(middle))
    return np.stack(paths)


def _swirl_colours(glow: np.ndarray, starts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Palette colour (N, 3) uint8 per stroke: warm near glowing cores, else cool, jittered."""
    limit = glow.shape[0] - 1
    ix = np.clip(starts[:, 0].astype(int), 0, limit)
    iy = np.clip(starts[:, 1].astype(int), 0, limit)
    warm = rng.random(len(starts)) < 0.9 * glow[iy, ix] + 0.03
    colours = np.where(
        warm[:, None],
        _SWIRL_WARM[rng.integers(0, len(_SWIRL_WARM), len(starts))],
        _SWIRL_COOL[rng.integers(0, len(_SWIRL_COOL), len(starts))],
    )
    colours += rng.normal(0, 10, colours.shape)
    return np.clip(colours, 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------- mosaic


def draw_mosaic_texture(size: int = 512, seed: int = 0) -> np.ndarray:
    """A (size, size, 3) uint8 stained-glass mosaic (size >= 16), the same for a seed.

    150-250 random seeds, relaxed once towards their centroids, make jewel-toned Voronoi
    cells, brighter at the centre, with lead lines about 1.5 px (at 512 px) from each border.
    """
    size = _check_size(size)
    rng = np.random.default_rng(seed)
    seeds = rng.uniform(0, size, (int(rng.integers(150, 251)), 2))
    yy, xx = np.mgrid[0:size, 0:size]
    px, py = xx.ravel() + 0.5, yy.ravel() + 0.5
    seeds = _lloyd_step(px, py, seeds)
    nearest, edge_dist, centre_dist = _voronoi(px, py, seeds)

    cell_colour = _JEWEL_PALETTE[rng.integers(0, len(_JEWEL_PALETTE), len(seeds))]
    cell_colour *= rng.uniform(0.85, 1.1, (len(seeds), 1))
    towards_edge = centre_dist / (centre_dist + edge_dist + 1e-9)
    light = 1.15 - 0.5 * towards_edge**1.5 + 0.12 * (px + py) / (2 * size) - 0.06
    rgb = cell_colour[nearest] * light[:, None] + rng.normal(0, 5, (px.size, 3))

    half_width = max(1.0, 1.5 * size / 512)
    lead = edge_dist < half_width
    rgb[lead] = np.asarray(_LEAD) + rng.normal(0, 4, (int(lead.sum()), 3))
    return np.clip(rgb, 0, 255).reshape(size, size, 3).astype(np.uint8)


def _nearest_two(
    px: np.ndarray, py: np.ndarray, seeds: np.ndarray, chunk: int = 8192
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(first, second, first_sq, second_sq), each (N,): each point's two nearest seeds and
    squared distances, ``chunk`` points at a time (float32: a few MB)."""
    sx, sy = seeds[:, 0].astype(np.float32), seeds[:, 1].astype(np.float32)
    parts = []
    for start in range(0, px.size, chunk):
        dist_sq = (px[start : start + chunk, None].astype(np.float32) - sx) ** 2
        dist_sq += (py[start : start + chunk, None].astype(np.float32) - sy) ** 2
        rows = np.arange(len(dist_sq))
        first = dist_sq.argmin(axis=1)
        first_sq = dist_sq[rows, first]
        dist_sq[rows, first] = np.inf
        second = dist_sq.argmin(axis=1)
        parts.append((first, second, first_sq, dist_sq[rows, second]))
    first, second, first_sq, second_sq = (np.concatenate(p) for p in zip(*parts, strict=True))
    return first, second, first_sq.astype(np.float64), second_sq.astype(np.float64)


def _lloyd_step(px: np.ndarray, py: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    """Move every seed to the centroid of its Voronoi cell (evens out cell sizes)."""
    first = _nearest_two(px, py, seeds)[0]
    counts = np.bincount(first, minlength=len(seeds))
    cx = np.bincount(first, weights=px, minlength=len(seeds))
    cy = np.bincount(first, weights=py, minlength=len(seeds))
    moved = np.stack([cx, cy], axis=1) / np.maximum(counts, 1)[:, None]
    return np.where(counts[:, None] > 0, moved, seeds)


def _voronoi(
    px: np.ndarray, py: np.ndarray, seeds: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cell label, distance to the cell border and distance to the seed, per point."""
    first, second, d1_sq, d2_sq = _nearest_two(px, py, seeds)
    gap = np.linalg.norm(seeds[second] - seeds[first], axis=1)
    # Exact distance to the bisector between the two nearest seeds.
    edge_dist = (d2_sq - d1_sq) / (2 * np.maximum(gap, 1e-9))
    return first, edge_dist, np.sqrt(d1_sq)


# --------------------------------------------------------------------------- files


def _content_photo(size: int) -> np.ndarray:
    """matplotlib's Grace Hopper photo, centre-cropped to a square, (size, size, 3) uint8."""
    square = ImageOps.fit(face_photo("grace_hopper"), (size, size), Image.Resampling.LANCZOS,
                          centering=(0.5, 0.5))
    return np.asarray(square, dtype=np.uint8)


def make_sample_images(
    folder: str | os.PathLike[str] = DEFAULT_FOLDER, size: int = 512, overwrite: bool = False
) -> dict[str, Path]:
    """Write the `SAMPLE_IMAGES`, ``size`` pixels square, into ``folder`` (created; existing
    files kept unless ``overwrite``); returns name -> path of every sample."""
    size = _check_size(size)
    makers = {
        "content": lambda: _content_photo(size),
        "style_swirls": lambda: draw_swirl_texture(size),
        "style_mosaic": lambda: draw_mosaic_texture(size),
    }
    paths = {}
    for name, file_name in SAMPLE_IMAGES.items():
        path = Path(folder) / file_name
        if overwrite or not path.exists():
            save_image(makers[name](), path)
        paths[name] = path
    return paths


def sample_image_path(name: str, folder: str | os.PathLike[str] = DEFAULT_FOLDER) -> Path:
    """Path of the sample image ``name`` (a key of `SAMPLE_IMAGES`), created if missing.

    Raises:
        KeyError: ``name`` is not a sample; the message lists the valid names.
    """
    if name not in SAMPLE_IMAGES:
        raise KeyError(
            f"Unknown sample image {name!r}; valid names are: {', '.join(SAMPLE_IMAGES)}"
        )
    path = Path(folder) / SAMPLE_IMAGES[name]
    if not path.exists():
        make_sample_images(folder)
    return path


# --------------------------------------------------------------------------- faces
# Portraits that installed packages ship, one photo per person: their queries are
# transformed copies, each named after its transformation (a robustness test). Different
# photos of one person are the real photos below.

FACE_PHOTOS = {
    "eileen_collins": "scikit-image's `astronaut` (NASA portrait of Eileen Collins)",
    "grace_hopper": "matplotlib's `grace_hopper.jpg` (US Navy portrait of Grace Hopper)",
    "cameraman": "scikit-image's `camera` (the classic grayscale cameraman)",
}
ENROLLED = ("eileen_collins", "grace_hopper")  # the cameraman stays a stranger


def face_photo(name: str) -> Image.Image:
    """One of the `FACE_PHOTOS` as a PIL image (RGB, or L for the grayscale cameraman)."""
    if name == "grace_hopper":
        path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
        with Image.open(path) as photo:
            return ImageOps.exif_transpose(photo).convert("RGB")
    if name in ("eileen_collins", "cameraman"):
        import skimage.data

        return Image.fromarray(skimage.data.astronaut() if name == "eileen_collins"
                               else skimage.data.camera())
    raise KeyError(f"Unknown face photo {name!r}; valid names are: {', '.join(FACE_PHOTOS)}")


def transformed_copies(photo: Image.Image) -> dict[str, Image.Image]:
    """Clearly labelled variations of a photo, to test robustness (not second photos of a
    person, which `REAL_PHOTOS` has): a tighter crop, a 10-degree rotation, darker lighting,
    heavy JPEG compression, half size and a mirror image."""
    w, h = photo.size
    dark = Image.eval(photo, lambda v: int(v * 0.6))
    buffer = io.BytesIO()
    photo.convert("RGB").save(buffer, "JPEG", quality=15)
    return {
        "crop": photo.crop((w // 8, h // 10, w - w // 8, h - h // 4)),
        "rot10": photo.rotate(10, resample=Image.Resampling.BILINEAR, expand=True),
        "dark": dark,
        "jpeg15": Image.open(io.BytesIO(buffer.getvalue())).convert(photo.mode),
        "half": photo.resize((w // 2, h // 2), Image.Resampling.BILINEAR),
        "mirror": ImageOps.mirror(photo),
    }


def make_face_samples(folder: str | os.PathLike[str] = DEFAULT_FOLDER,
                      overwrite: bool = False) -> dict[str, list[Path]]:
    """Write the face-recognition notebook's photos; returns {"people": [...], "queries": [...]}.

    ``people/<name>/<name>.jpg`` is ONE photo per enrolled person (one-shot; your own go
    there too); ``queries/<name>__<transformation>.jpg`` are transformed copies, and
    ``queries/cameraman.jpg`` the stranger.
    """
    folder = Path(folder)
    written: dict[str, list[Path]] = {"people": [], "queries": []}

    def save(image: Image.Image, path: Path, kind: str) -> None:
        if overwrite or not path.exists():
            save_image(np.asarray(image.convert("RGB")), path)
        written[kind].append(path)

    for name in FACE_PHOTOS:
        photo = face_photo(name)
        if name in ENROLLED:
            save(photo, folder / "people" / name / f"{name}.jpg", "people")
            for label, copy in transformed_copies(photo).items():
                save(copy, folder / "queries" / f"{name}__{label}.jpg", "queries")
        else:
            save(photo, folder / "queries" / f"{name}.jpg", "queries")
    return written


# --------------------------------------------------------------------------- real photos

#: Real photos (face_recognition 1.3.0's test images, MIT), name -> what each shows. The
#: files are fetched by ``python -m nbutils.prepare`` (`REAL_PHOTO_FILES`).
REAL_PHOTOS: dict[str, str] = {
    "obama": "Barack Obama, smiling, arms crossed",
    "obama2": "Barack Obama at a lectern, speaking: another day, light and expression",
    "obama3": "Barack Obama standing in another room, further from the camera",
    "obama_partial_face": "obama.jpg cropped: the left edge of the face cut off",
    "obama_partial_face2": "obama.jpg cropped: the right edge of the face cut off",
    "biden": "Joe Biden: another person",
    "32bit": "obama2 saved as a 32-bit RGBA PNG",
}


def real_photo_path(name: str) -> Path:
    """Path of the real photo ``name`` (a key of `REAL_PHOTOS`), its SHA-256 checked.

    Raises:
        KeyError: ``name`` is not one of them; the message lists the valid names.
        WeightsNotFoundError (a FileNotFoundError): not fetched yet; the message says to
            run ``python -m nbutils.prepare``.
        ChecksumError: the file was changed; the message says to delete it and run prepare.
    """
    files = {file_name.rsplit(".", 1)[0]: file for file_name, file in REAL_PHOTO_FILES.items()}
    if name not in REAL_PHOTOS or name not in files:
        raise KeyError(f"Unknown real photo {name!r}; valid names are: {', '.join(REAL_PHOTOS)}")
    return files[name].verified()
