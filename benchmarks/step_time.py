"""Time of one optimisation step of the course's style transfer, against its floor.

The floor (baseline, same process, same size) is one bare forward + backward pass through
the same truncated VGG19: a step can hardly cost less. Prints both, their ratio, and the
process's peak memory.

    .venv/bin/python benchmarks/step_time.py --size 400 --steps 10
"""

from __future__ import annotations

import argparse
import inspect
import resource
import time

import keras
import tensorflow as tf

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


def seconds_per_call(fn, repeats: int) -> float:
    fn()  # trace and warm up
    t = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - t) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=400, help="image side in pixels")
    parser.add_argument("--steps", type=int, default=10, help="timed repetitions")
    args = parser.parse_args()

    model = get_layer_outputs(load_vgg19(), STYLE_LAYERS + CONTENT_LAYER)
    content = to_batch(load_image(sample_image_path("content"), args.size))
    style = to_batch(load_image(sample_image_path("style_swirls"), args.size))
    a_C, a_S = model(content), model(style)
    g = initial_generated_image(content)

    @tf.function
    def bare_pass():
        with tf.GradientTape() as tape:
            tape.watch(content)
            outputs = model(content)
            s = tf.add_n([tf.reduce_sum(o) for o in outputs])
        return tape.gradient(s, content)

    course_lr = inspect.signature(stylize).parameters["learning_rate"].default
    step = make_train_step(model, a_C, a_S, keras.optimizers.Adam(learning_rate=course_lr))
    floor = seconds_per_call(lambda: bare_pass().numpy(), args.steps)
    per_step = seconds_per_call(lambda: step(g).numpy(), args.steps)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"size {args.size}x{args.size}, {args.steps} timed calls each, "
          f"{tf.config.threading.get_intra_op_parallelism_threads() or 'all'} threads")
    print(f"bare VGG19 forward+backward (floor): {floor:.3f} s")
    print(f"course train_step (Adam):            {per_step:.3f} s")
    print(f"ratio step / floor:                  {per_step / floor:.2f}")
    print(f"peak resident memory:                {peak_mb:.0f} MB")


if __name__ == "__main__":
    main()
