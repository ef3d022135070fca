"""N-way one-shot accuracy on unseen glyph classes: raw pixels vs random vs hard triplets.

Trains two encoders with the same budget (steps x 64 images) on the seen classes, then
scores 5- and 20-way one-shot episodes (one support per class, nearest support wins) on
the unseen classes, with a fixed seed. The raw-pixel nearest neighbour is the baseline,
measured in the same process on the same episodes.

    .venv/bin/python benchmarks/one_shot.py [--steps 1500] [--episodes 2000]
"""

from __future__ import annotations

import argparse
import time

from nbutils.extras.glyphs import make_glyph_dataset
from nbutils.siamese.evaluate import one_shot_table
from nbutils.siamese.model import embed, train_encoder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1500, help="training steps per encoder")
    parser.add_argument("--episodes", type=int, default=2000, help="episodes per N-way score")
    parser.add_argument("--per-class", type=int, default=20, help="renderings per class")
    args = parser.parse_args()

    t = time.perf_counter()
    data = make_glyph_dataset(per_class=args.per_class, seed=0)
    print(f"dataset: {data.num_classes} classes x {args.per_class}, "
          f"{len(data.train_classes)} seen / {len(data.test_classes)} unseen, "
          f"made in {time.perf_counter() - t:.1f} s")
    embeddings = {"raw pixels": data.images.reshape(len(data.images), -1)}
    seconds = {}
    for name, strategy in (("random", "random"), ("hard", "batch_hard")):
        t = time.perf_counter()
        encoder, history = train_encoder(data.images, data.labels, data.train_classes,
                                         strategy, steps=args.steps, verbose=0)
        seconds[name] = time.perf_counter() - t
        embeddings[name] = embed(encoder, data.images)
        print(f"{name:6s} triplets: {args.steps} steps in {seconds[name]:.0f} s, active "
              f"fraction {history['active_fraction'][0]:.2f} -> "
              f"{history['active_fraction'][-1]:.2f}")
    table = one_shot_table(embeddings, data.labels, data.test_classes,
                           episodes=args.episodes, seed=0)
    print(f"\n{'method':12s} {'5-way':>7s} {'20-way':>7s}   ({args.episodes} episodes, "
          "unseen classes)")
    for name, row in table.items():
        print(f"{name:12s} {row[5]:7.3f} {row[20]:7.3f}")
    h, r, p = table["hard"], table["random"], table["raw pixels"]
    print(f"one-shot unseen classes: hard 5-way {h[5]:.3f} 20-way {h[20]:.3f}; "
          f"random 5-way {r[5]:.2f} 20-way {r[20]:.2f}; raw pixels 5-way {p[5]:.3f} "
          f"20-way {p[20]:.3f}; training {seconds['hard']:.0f} s")


if __name__ == "__main__":
    main()
