"""Photos per second of the photo -> descriptor pipeline: today's full-resolution path
against detection on a reduced copy with batched encoding, in one process.

Photos, in three groups: the project's face portraits (`nbutils.samples.face_photo`, about
512 px) with their transformed copies (`transformed_copies`); each portrait and its
10-degree rotation upscaled to 1-2 megapixels (JPEG, quality 95); and the real photos
(`nbutils.samples.REAL_PHOTOS`, 0.6-3.3 MP, fetched by ``python -m nbutils.prepare``; left
out with a note when they are not there).

Three paths over the same files, timed in interleaved rounds (median of ``--repeats``):

- baseline, today's path: per photo load -> MTCNN on the full-resolution image, its
  networks run op by op (``load_detector(compiled=False)``) -> align -> encode one chip;
- ``detect_size=None``: `encode_photos` at full resolution (compiled MTCNN, batched encoder);
- new: `encode_photos` at its defaults (P- and R-Net scan a copy of at most 480 px per
  side, O-Net and the chip work on the full-resolution photo).

Also printed: the largest descriptor change from the baseline, how many same/different
decisions (distance < DISTANCE_THRESHOLD, over all pairs of photos) change, and for the
baseline and the new path, the mean and largest distance to dlib's own descriptors of the
photos dlib was run on (tests/data; the photos rebuilt by tests/conftest.py).

    .venv/bin/python benchmarks/face_pipeline.py --repeats 3
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from nbutils.faces.align import align_face
from nbutils.faces.database import DISTANCE_THRESHOLD
from nbutils.faces.detect import DETECT_SIZE, detect_faces, load_detector
from nbutils.faces.encoder import encode_chips, load_face_encoder
from nbutils.faces.enroll import encode_photos
from nbutils.faces.recognition import load_rgb_uint8, pairwise_distances
from nbutils.samples import (
    FACE_PHOTOS,
    REAL_PHOTOS,
    face_photo,
    real_photo_path,
    transformed_copies,
)

UPSCALES = (2.0, 2.5)  # 512 px portraits -> 1.0-1.9 megapixels
TESTS = Path(__file__).resolve().parents[1] / "tests"


def write_photos(folder: Path) -> dict[str, list[Path]]:
    """The benchmark's photos as files in ``folder``, by group."""
    groups: dict[str, list[Path]] = {"portraits": [], "upscaled": [], "real": []}
    for name in FACE_PHOTOS:
        photo = face_photo(name).convert("RGB")
        copies = {"original": photo, **transformed_copies(photo)}
        for label, image in copies.items():
            groups["portraits"].append(folder / f"{name}__{label}.jpg")
            image.convert("RGB").save(groups["portraits"][-1], quality=95)
        for label in ("original", "rot10"):
            for factor in UPSCALES:
                size = (round(copies[label].width * factor), round(copies[label].height * factor))
                groups["upscaled"].append(folder / f"{name}__{label}_x{factor}.jpg")
                copies[label].resize(size, Image.Resampling.BICUBIC).convert("RGB").save(
                    groups["upscaled"][-1], quality=95)
    for name in REAL_PHOTOS:
        try:
            source = real_photo_path(name)
        except FileNotFoundError:
            print(f"real photo {name!r} not fetched (python -m nbutils.prepare): left out")
            continue
        groups["real"].append(folder / source.name)
        shutil.copyfile(source, groups["real"][-1])
    return {group: paths for group, paths in groups.items() if paths}


def megapixels_of(path: Path) -> float:
    with Image.open(path) as image:
        return image.width * image.height / 1e6


def today(paths: list[Path], model, detector) -> np.ndarray:
    """The pipeline as it was: one photo at a time, full resolution, eager MTCNN."""
    out = []
    for path in paths:
        image = load_rgb_uint8(path)
        faces = detect_faces(image, detect_size=None, detector=detector)
        out.append(encode_chips(align_face(image, faces[0].landmarks)[None], model)[0])
    return np.stack(out)


def timed(fn: Callable[[list[Path]], np.ndarray], paths: list[Path]
          ) -> tuple[float, np.ndarray]:
    start = time.perf_counter()
    result = fn(paths)
    return time.perf_counter() - start, result


def compare(new: np.ndarray, base: np.ndarray) -> tuple[np.ndarray, int]:
    """Per photo, how far its descriptor moved; and how many pairs of photos changed their
    same/different decision at `DISTANCE_THRESHOLD`."""
    same_new = pairwise_distances(new) < DISTANCE_THRESHOLD
    same_base = pairwise_distances(base) < DISTANCE_THRESHOLD
    return np.linalg.norm(new - base, axis=1), int(np.triu(same_new != same_base, 1).sum())


def dlib_reference() -> tuple[list[str], list[np.ndarray], np.ndarray]:
    """The photos dlib was run on (names, (H, W, 3) uint8 RGB) and its (n, 128)
    descriptors of them, from tests/data and tests/conftest.py."""
    spec = importlib.util.spec_from_file_location("_dlib_reference", TESTS / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    photos = module.reference_photos()
    reference = json.loads((TESTS / "data" / "dlib_reference_photos.json").read_text())
    names = list(reference["photos"])
    descriptors = np.array([reference["photos"][n]["descriptor"] for n in names])
    return names, [photos[n] for n in names], descriptors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds (median reported)")
    args = parser.parse_args()

    model = load_face_encoder()
    eager = load_detector(compiled=False)
    configs: dict[str, Callable[[list[Path]], np.ndarray]] = {
        "baseline: today (full resolution, eager MTCNN, one photo at a time)":
            lambda paths: today(paths, model, eager),
        "detect_size=None (full resolution, compiled MTCNN, batched)":
            lambda paths: encode_photos(paths, model, detect_size=None),
        f"new: detect_size={DETECT_SIZE} (compiled MTCNN, batched)":
            lambda paths: encode_photos(paths, model),
    }
    base, full, new = configs
    with tempfile.TemporaryDirectory() as tmp:
        # Photos the baseline finds no face in are left out of every path.
        groups, left_out = {}, []
        for group, members in write_photos(Path(tmp)).items():
            groups[group] = []
            for path in members:
                found = detect_faces(load_rgb_uint8(path), detect_size=None, detector=eager)
                (groups[group] if found else left_out).append(path)
        paths = [path for members in groups.values() for path in members]
        megapixels = {g: [megapixels_of(p) for p in m] for g, m in groups.items()}
        for fn in configs.values():  # warm-up: graph traces, weight loading
            fn(paths[:2])
        seconds = {(label, group): [] for label in configs for group in groups}
        parts: dict[tuple[str, str], np.ndarray] = {}
        for _ in range(args.repeats):
            for group, members in groups.items():
                for label, fn in configs.items():  # interleaved: the shared CPUs drift
                    elapsed, parts[label, group] = timed(fn, members)
                    seconds[label, group].append(elapsed)

    sizes = ", ".join(f"{len(groups[g])} {g} ({min(mp):.2f}-{max(mp):.2f} MP)"
                      for g, mp in megapixels.items())
    print(f"{len(paths)} photos: {sizes}; without a face at full resolution, left out: "
          f"{[p.name for p in left_out]}; medians of {args.repeats} interleaved rounds")
    median = {key: statistics.median(times) for key, times in seconds.items()}
    rate = {}
    for label in configs:
        rate[label] = len(paths) / sum(median[label, group] for group in groups)
        by_group = ", ".join(f"{len(members) / median[label, group]:.2f} {group}"
                             for group, members in groups.items())
        print(f"  {rate[label]:5.2f} photos/s ({by_group})  {label}")
    descriptors = {label: np.concatenate([parts[label, group] for group in groups])
                   for label in configs}
    names = [path.stem for members in groups.values() for path in members]
    for label in (full, new):
        change, flipped = compare(descriptors[label], descriptors[base])
        print(f"{label.split(' (')[0]}: {rate[label] / rate[base]:.2f}x the baseline's "
              f"photos/s; descriptor change: median {np.median(change):.4f}, largest "
              f"{change.max():.4f} ({names[int(change.argmax())]}); decisions changed "
              f"{flipped} of {len(names) * (len(names) - 1) // 2} pairs")
    names, photos, dlib = dlib_reference()
    for label, short in ((base, "full resolution (baseline)"), (new, "new")):
        distance = np.linalg.norm(configs[label](photos) - dlib, axis=1)
        print(f"distance to dlib's descriptors, {len(names)} reference photos (tests/data), "
              f"{short}: mean {distance.mean():.3f}, max {distance.max():.3f} "
              f"({names[int(distance.argmax())]})")
    change, flipped = compare(descriptors[new], descriptors[base])
    print(f"face pipeline: {rate[new] / rate[base]:.1f}x the full-resolution photos/s; "
          f"largest descriptor change {change.max():.2f}; decisions changed {flipped}")


if __name__ == "__main__":
    main()
