"""Solving neural style transfer: optimise the pixels of G with gradient descent.

The network is fixed; the variable is the image. Each step runs G through VGG19, computes
J(G) = alpha J_content + beta J_style under a ``tf.GradientTape``, and moves the pixels
of G along -dJ/dG, then clips them back to [0, 1]. `new_history` and `record_step` are
the history that this loop and the fast path (`nbutils.extras.fast_style`) both keep.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from tqdm.auto import tqdm

from nbutils.images import load_image
from nbutils.style.choices import check_choice
from nbutils.style.costs import (
    CONTENT_LAYER_NAME,
    STYLE_LAYERS,
    compute_content_cost,
    compute_style_cost,
    total_cost,
)
from nbutils.vgg19 import load_vgg19

INITS = ("content+noise", "noise", "content")
# The smallest image side: block5's layers see it halved four times, down to 1 pixel.
MIN_SIDE = 16


def to_batch(image: Any) -> tf.Tensor:
    """(H, W, 3) image in [0, 1] -> float32 tensor (1, H, W, 3): a batch of one."""
    image = tf.convert_to_tensor(image, dtype=tf.float32)
    return image[tf.newaxis] if image.shape.rank == 3 else image


def clip_0_1(image: tf.Tensor) -> tf.Tensor:
    """Clip every pixel value into [0, 1]."""
    return tf.clip_by_value(image, clip_value_min=0.0, clip_value_max=1.0)


def get_layer_outputs(vgg: keras.Model, layer_names: Sequence[str | tuple[str, float]]
                      ) -> keras.Model:
    """A ``keras.Model`` from ``vgg``'s input, (1, H, W, 3), to the list of the named layers'
    activations, each (1, n_H, n_W, n_C), in that order; only the layers up to the deepest
    one named are computed. ``layer_names``: names, or (name, weight) pairs as in
    ``STYLE_LAYERS + CONTENT_LAYER``."""
    names = [item if isinstance(item, str) else item[0] for item in layer_names]
    known = [layer.name for layer in vgg.layers]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"no layer named {unknown} in {vgg.name}; its layers are {known}")
    outputs = [vgg.get_layer(n).output for n in names]
    return keras.Model(inputs=vgg.input, outputs=outputs, name="vgg_layer_outputs")


def initial_generated_image(content_image: tf.Tensor, init: str = "content+noise",
                            noise: float = 0.25, seed: int = 272) -> tf.Variable:
    """The starting point G, a ``tf.Variable`` (1, H, W, 3) in [0, 1].

    ``"content+noise"`` (the course): C + uniform noise in [-noise, noise], clipped;
    ``"noise"``: uniform in [0, 1]; ``"content"``: C itself. Deterministic for a seed.
    """
    check_choice("init", init, INITS)
    content_image = to_batch(content_image)
    shape = tf.shape(content_image)
    if init == "content+noise":
        u = tf.random.stateless_uniform(shape, seed=[seed, 0], minval=-noise, maxval=noise)
        g = clip_0_1(content_image + u)
    elif init == "noise":
        g = tf.random.stateless_uniform(shape, seed=[seed, 0])
    else:  # "content"
        g = content_image
    return tf.Variable(g, name="generated_image")


def make_train_step(vgg_model_outputs: keras.Model, a_C: Sequence[tf.Tensor],
                    a_S: Sequence[tf.Tensor], optimizer: keras.optimizers.Optimizer,
                    alpha: float = 10, beta: float = 40,
                    style_layers: Sequence[tuple[str, float]] = STYLE_LAYERS,
                    return_all: bool = False) -> Callable[[tf.Variable], Any]:
    """Build the compiled update ``train_step(generated_image) -> J``.

    Args:
        vgg_model_outputs: ``get_layer_outputs(vgg, style_layers + content_layer)``.
        a_C, a_S: its outputs on the content and the style image.
        optimizer: e.g. ``keras.optimizers.Adam(learning_rate=0.01)``.
        alpha, beta, style_layers: the weights of J, the (name, lambda) pairs.
        return_all: return (J, J_content, J_style) instead of J alone.

    Returns:
        A ``tf.function`` that updates the ``tf.Variable`` G (1, H, W, 3) in place - one
        gradient step on its pixels, then clipping to [0, 1] - and returns the cost(s) of G
        before the update, as scalar tensors.
    """

    @tf.function
    def train_step(generated_image: tf.Variable):
        with tf.GradientTape() as tape:
            a_G = vgg_model_outputs(generated_image)
            J_style = compute_style_cost(a_S, a_G, STYLE_LAYERS=style_layers)
            J_content = compute_content_cost(a_C, a_G)
            J = total_cost(J_content, J_style, alpha=alpha, beta=beta)
        grad = tape.gradient(J, generated_image)
        optimizer.apply_gradients([(grad, generated_image)])
        generated_image.assign(clip_0_1(generated_image))
        return (J, J_content, J_style) if return_all else J

    return train_step


def new_history() -> dict[str, Any]:
    """The history of `train` and `stylize_fast`: per step "step" (0, 1, ...), "time" (s),
    and the costs "total", "content", "style" of G before its update; "snapshots": {k: G
    after k steps, (H, W, 3)}."""
    return {"step": [], "time": [], "total": [], "content": [], "style": [], "snapshots": {}}


def record_step(history: dict[str, Any], start: float, J: Any, J_content: Any,
                J_style: Any) -> dict[str, float]:
    """Append one step to ``history`` (``start``: its ``time.perf_counter()`` origin);
    returns the step's costs by name."""
    costs = {"total": float(J), "content": float(J_content), "style": float(J_style)}
    history["step"].append(len(history["step"]))
    history["time"].append(time.perf_counter() - start)
    for key, value in costs.items():
        history[key].append(value)
    return costs


def train(train_step: Callable[[tf.Variable], Any], generated_image: tf.Variable,
          epochs: int, every: int | None = None,
          callback: Callable[[int, np.ndarray, dict[str, float]], None] | None = None,
          progress: bool = True) -> dict[str, Any]:
    """Run ``epochs`` steps of ``train_step`` (from `make_train_step`) on the ``tf.Variable``
    G, with a progress bar (``progress``) showing the costs; returns the history
    (`new_history`), J_content and J_style NaN where ``train_step`` returns J alone.

    ``every``: keep a snapshot of G, and call ``callback(step, image (H, W, 3) float32 in
    [0, 1], costs)``, every this many steps; the start and the end are always kept.
    """
    if epochs < 0:
        raise ValueError(f"epochs must be >= 0, not {epochs}")
    history, start = new_history(), time.perf_counter()

    def snapshot(step: int, costs: dict[str, float]) -> None:
        image = generated_image.numpy()[0].copy()
        history["snapshots"][step] = image
        if callback is not None:
            callback(step, image, costs)

    snapshot(0, {})
    bar = tqdm(range(epochs), desc="style transfer", unit="step", disable=not progress)
    for i in bar:
        out = train_step(generated_image)
        costs = record_step(history, start,
                            *(out if isinstance(out, tuple) else (out, math.nan, math.nan)))
        bar.set_postfix({k: f"{v:.4g}" for k, v in costs.items()})
        done = i + 1
        if done == epochs or (every and done % every == 0):
            snapshot(done, costs)
    return history


def stylize(content: Any, style: Any, size: int | tuple[int, int] = 256, steps: int = 300,
            alpha: float = 10, beta: float = 40,
            style_layers: Sequence[tuple[str, float]] = STYLE_LAYERS,
            content_layer: str = CONTENT_LAYER_NAME, init: str = "content+noise",
            learning_rate: float = 0.01, seed: int = 272,
            callback: Callable[[int, np.ndarray, dict[str, float]], None] | None = None,
            every: int | None = 50, vgg: keras.Model | None = None,
            progress: bool = True) -> tuple[np.ndarray, dict[str, Any]]:
    """Neural style transfer in one call: the course's algorithm with its defaults.

    Args:
        content, style: paths, PIL images or arrays (see ``nbutils.images.load_image``).
        size: output size, an int (square) or (height, width), the style image's too.
        steps: Adam steps on the pixels.
        alpha, beta, style_layers, content_layer: the weights and the VGG19 layers of J.
        init, seed: the starting G (``initial_generated_image``); the same seed and inputs
            give the same image on one machine.
        learning_rate: Adam's (pixel units, images in [0, 1]).
        callback, every, progress: as in ``train``.
        vgg: a loaded ``load_vgg19()`` to reuse; loaded when None.

    Returns:
        (image, history): the generated image, (H, W, 3) float32 in [0, 1], and the
        history of ``train``.
    """
    check_choice("init", init, INITS)  # before loading anything
    content_image = to_batch(load_image(content, size))
    style_image = to_batch(load_image(style, size))
    vgg = vgg if vgg is not None else load_vgg19()
    vgg_model_outputs = get_layer_outputs(vgg, list(style_layers) + [content_layer])
    a_C = vgg_model_outputs(content_image)
    a_S = vgg_model_outputs(style_image)
    generated_image = initial_generated_image(content_image, init=init, seed=seed)
    optimizer = keras.optimizers.Adam(learning_rate=learning_rate)
    train_step = make_train_step(vgg_model_outputs, a_C, a_S, optimizer, alpha=alpha,
                                 beta=beta, style_layers=style_layers, return_all=True)
    history = train(train_step, generated_image, steps, every=every, callback=callback,
                    progress=progress)
    return generated_image.numpy()[0], history
