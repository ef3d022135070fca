"""Descriptors per second of the Keras port of dlib's face encoder, batched vs one at a time.

The baseline (same process, same model, same chips) encodes the chips one by one, as a
naive loop over faces would. Times are medians over repeated runs after a warm-up; the
content of the chips does not change the work, so random chips are used.

    .venv/bin/python benchmarks/face_encoder_speed.py --batch 32 --repeats 7
"""

from __future__ import annotations

import argparse
import os

import numpy as np
from timing import median_seconds

from nbutils.faces.encoder import CHIP_SIZE, encode_chips, load_face_encoder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32, help="chips encoded per run")
    parser.add_argument("--repeats", type=int, default=7, help="timed runs (median reported)")
    args = parser.parse_args()

    model = load_face_encoder()
    rng = np.random.default_rng(0)
    chips = rng.integers(0, 256, (args.batch, CHIP_SIZE, CHIP_SIZE, 3), dtype=np.uint8)

    batched = median_seconds(lambda: encode_chips(chips, model, batch_size=args.batch),
                             args.repeats)
    one_by_one = median_seconds(lambda: [encode_chips(c, model) for c in chips], args.repeats)

    print(f"CPU cores: {os.cpu_count()}, chips per run: {args.batch}")
    print(f"batched (batch_size={args.batch}): {args.batch / batched:8.1f} descriptors/s")
    print(f"one chip at a time (baseline):   {args.batch / one_by_one:8.1f} descriptors/s")
    print(f"speed-up of batching: {one_by_one / batched:.2f}x")


if __name__ == "__main__":
    main()
