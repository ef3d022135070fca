"""The fast style-transfer path against the course's Adam loop, in one process.

Same content and style images, same objective (course layers, weights and normalisation).
1. Floor: one bare VGG19 forward + backward pass at this size.
2. Baseline: the course's loop (`make_train_step`, Adam at `stylize`'s learning rate) for
   --adam-steps steps.
3. Fast path: `stylize_fast` with its defaults (L-BFGS; passes compiled by XLA at this
   size; --scales for coarse-to-fine) until it reaches the baseline's final total cost.
Prints wall times, steps, their ratio, the cost of one step of each against the floor
(timed in interleaved rounds, so that the machine's load changes hit both alike), and the
process's peak memory.

    .venv/bin/python benchmarks/nst_speed.py [--size 400] [--adam-steps 300]
"""

from __future__ import annotations

import argparse
import inspect
import resource
import time

import keras
import numpy as np
import tensorflow as tf
from timing import median_seconds, seconds

from nbutils.extras.fast_style import stylize_fast
from nbutils.images import load_image
from nbutils.samples import sample_image_path
from nbutils.style.costs import CONTENT_LAYER, STYLE_LAYERS
from nbutils.style.optimize import (
    get_layer_outputs,
    initial_generated_image,
    make_train_step,
    stylize,
    to_batch,
)
from nbutils.vgg19 import load_vgg19


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=400)
    parser.add_argument("--adam-steps", type=int, default=300)
    fast_defaults = {name: p.default for name, p in
                     inspect.signature(stylize_fast).parameters.items()}
    parser.add_argument("--scales", type=int, default=fast_defaults["scales"],
                        help="fast path's coarse-to-fine scales (default %(default)s)")
    parser.add_argument("--steps", type=int, default=fast_defaults["steps"],
                        help="fast path's step budget (default %(default)s)")
    parser.add_argument("--step-rounds", type=int, default=3,
                        help="rounds of the interleaved step timing (default %(default)s)")
    args = parser.parse_args()
    content_path, style_path = sample_image_path("content"), sample_image_path("style_swirls")
    vgg = load_vgg19()
    model = get_layer_outputs(vgg, STYLE_LAYERS + CONTENT_LAYER)
    content = to_batch(load_image(content_path, args.size))
    style = to_batch(load_image(style_path, args.size))

    @tf.function
    def bare_pass(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            total = tf.add_n([tf.reduce_sum(o) for o in model(x)])
        return tape.gradient(total, x)

    floor = median_seconds(lambda: bare_pass(content).numpy(), 3)
    print(f"size {args.size}x{args.size}; bare VGG19 forward+backward pass: {floor:.3f} s")

    a_C, a_S = model(content), model(style)
    g = initial_generated_image(content)
    course_lr = inspect.signature(stylize).parameters["learning_rate"].default
    step = make_train_step(model, a_C, a_S, keras.optimizers.Adam(learning_rate=course_lr))
    t = time.perf_counter()  # both timings include their tracing (a second or two)
    for _ in range(args.adam_steps):
        J = step(g)
    J.numpy()
    adam_time = time.perf_counter() - t
    final = float(model_cost(model, a_C, a_S, g))
    print(f"baseline (course Adam loop): {args.adam_steps} steps in {adam_time:.1f} s, "
          f"final total cost {final:.4g}")

    t = time.perf_counter()
    _, history = stylize_fast(content_path, style_path, args.size, optimizer="lbfgs",
                              steps=args.steps, scales=args.scales, target_cost=final,
                              vgg=vgg, progress=False)
    fast_time = time.perf_counter() - t
    reached = history["best_total"] <= final
    scale = np.array(history["scale"])
    per_scale = (f" ({', '.join(str(np.sum(scale == k)) for k in range(args.scales))} per scale,"
                 f" coarsest first)" if args.scales > 1 else "")
    print(f"fast path (L-BFGS, {args.scales} scale{'s' if args.scales > 1 else ''}): "
          f"{len(history['step'])} steps{per_scale} in {fast_time:.1f} s, best cost "
          f"{history['best_total']:.4g} ({'reached' if reached else 'NOT reached'})")

    # One step of each against the bare pass, interleaved so that a change in the machine's
    # load hits them alike. A round: bare pass, Adam step, an L-BFGS run of 3 steps at full
    # size (its last two, recorder and NumPy work included, are the steps timed), bare
    # pass, Adam step. The median over rounds of each ratio is reported.
    rounds = []
    for _ in range(args.step_rounds):
        bare = [seconds(lambda: bare_pass(content).numpy())]
        adam = [seconds(lambda: step(g).numpy())]
        _, h = stylize_fast(content_path, style_path, args.size, optimizer="lbfgs", steps=3,
                            scales=1, vgg=vgg, progress=False)
        bare.append(seconds(lambda: bare_pass(content).numpy()))
        adam.append(seconds(lambda: step(g).numpy()))
        lbfgs = float(np.mean(np.diff(h["time"])))
        rounds.append((np.mean(adam) / np.mean(bare), lbfgs / np.mean(bare)))
    adam_ratio, fast_ratio = np.median(rounds, axis=0)
    print(f"one step ({args.step_rounds} interleaved rounds, median): Adam {adam_ratio:.2f}x, "
          f"L-BFGS {fast_ratio:.2f}x the bare pass")
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    ratio = fast_time / adam_time
    print(f"nst speed {args.size}x{args.size}: fast path {ratio:.2f}x of the Adam baseline's "
          f"time to the same cost; step {max(adam_ratio, fast_ratio):.2f}x the bare "
          f"forward+backward pass; peak {peak_gb:.1f} GB")


def model_cost(model, a_C, a_S, g) -> tf.Tensor:
    from nbutils.style.costs import compute_content_cost, compute_style_cost, total_cost

    a_G = model(g)
    return total_cost(compute_content_cost(a_C, a_G), compute_style_cost(a_S, a_G))


if __name__ == "__main__":
    main()
