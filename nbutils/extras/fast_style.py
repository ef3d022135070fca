"""Faster, more controllable style transfer: L-BFGS, coarse-to-fine, and quality controls.

The course optimises G with Adam for thousands of steps. Each step costs one VGG19
forward + backward pass (a "pass"), a few seconds at 400 px on a CPU, and that cost is
already near the hardware's limit, so the lever is *fewer, cheaper* passes:

- **L-BFGS** (`nbutils.extras.lbfgs`, projected onto [0, 1]) uses the curvature of J(G)
  from its recent gradients and needs far fewer passes than Adam to reach the same cost;
- **coarse-to-fine**: optimise at a small size (cheap passes), upsample, continue; the
  last scale at the requested size;
- **cheaper passes**: the Gram matrices' gradient in one matmul (`normalized_gram`), and
  XLA compilation of the whole pass on large images (`XLA_MIN_PIXELS`).

Quality controls, each off unless asked for: ImageNet preprocessing, total variation,
colour preservation, several style images with weights, style scale, layer choice,
average pooling. The objective with all of them off is exactly the course's.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from tqdm.auto import tqdm

from nbutils.extras.color import PRESERVE_COLOR, luminance_transfer, match_color
from nbutils.extras.lbfgs import lbfgs_box
from nbutils.images import load_image, save_image
from nbutils.style.choices import check_choice
from nbutils.style.costs import (
    CONTENT_LAYER_NAME,
    STYLE_LAYERS,
    compute_content_cost,
)
from nbutils.style.optimize import INITS, get_layer_outputs, initial_generated_image
from nbutils.vgg19 import load_vgg19

OPTIMIZERS = ("lbfgs", "adam")
PREPROCESS = ("course", "imagenet")
POOLING = ("max", "avg")
IMAGENET_BGR_MEAN = (103.939, 116.779, 123.68)  # the means VGG19 was trained with, 0..255
# Images of at least this many pixels get their passes compiled by XLA. Measured on a
# 2-core AVX2 CPU, one VGG19 forward+backward pass with XLA against without: 1.39x the
# time at 64 px, 1.01x at 100, 0.93x at 200, 0.82x at 400, and compiling costs ~2 s more
# per size: XLA pays from about 300 x 300 on.
XLA_MIN_PIXELS = 300 * 300


def vgg_input(images: tf.Tensor, preprocess: str = "course") -> tf.Tensor:
    """What VGG19 is fed. "course": the [0, 1] RGB image itself, as the course does.
    "imagenet": as VGG19 was trained: 0..255, BGR order, ImageNet channel means removed.

    The network only saw "imagenet"-style inputs in training; on [0, 1] inputs its
    activations are about 255 times smaller and shifted, which changes the balance of the
    layers (and the alpha / beta that work well)."""
    if check_choice("preprocess", preprocess, PREPROCESS) == "course":
        return images
    return images[..., ::-1] * 255.0 - tf.constant(IMAGENET_BGR_MEAN, images.dtype)


def vgg19_with_pooling(pooling: str = "max", vgg: keras.Model | None = None) -> keras.Model:
    """VGG19 with its max pooling replaced by average pooling (Gatys et al. found it gives
    smoother results) when ``pooling="avg"``; weights are shared with ``vgg``."""
    check_choice("pooling", pooling, POOLING)
    vgg = vgg if vgg is not None else load_vgg19()
    if pooling == "max":
        return vgg
    x = inputs = keras.Input(vgg.input_shape[1:])
    for layer in vgg.layers[1:]:
        if isinstance(layer, keras.layers.MaxPooling2D):
            x = keras.layers.AveragePooling2D(layer.pool_size, layer.strides, name=layer.name)(x)
        else:
            x = layer(x)
    model = keras.Model(inputs, x, name="vgg19_avgpool")
    model.trainable = False
    return model


@tf.custom_gradient
def normalized_gram(a: tf.Tensor) -> tuple[tf.Tensor, Callable[[tf.Tensor], tf.Tensor]]:
    """Gram matrix of (1, n_H, n_W, n_C) activations divided by n_H n_W, (n_C, n_C), so
    that images of different sizes (style scale) compare. With equal sizes,
    sum((G_S' - G_G')^2) / (4 n_C^2) equals the course's layer style cost exactly.

    The same matrix as the course's ``gram_matrix(unroll_channels(a))``, cheaper: A^T A
    on the (n_H n_W, n_C) reshape (no transposed copy), and one matmul for the gradient,
    A (dG + dG^T) / n_H n_W, where automatic differentiation makes two."""
    A = tf.reshape(a, [-1, tf.shape(a)[-1]])
    n = tf.cast(tf.shape(A)[0], a.dtype)

    def gradient(dG: tf.Tensor) -> tf.Tensor:
        return tf.reshape(tf.matmul(A, dG + tf.transpose(dG)) / n, tf.shape(a))

    return tf.matmul(A, A, transpose_a=True) / n, gradient


@dataclass
class Objective:
    """J(G) = alpha J_content + beta sum_s w_s J_style(S_s, G) + tv_weight TV(G), with its
    targets (content activations, style Gram matrices) computed once per size."""

    model: keras.Model
    style_layers: list[tuple[str, float]]
    alpha: float
    beta: float
    tv_weight: float
    preprocess: str
    a_C: tf.Tensor | None = None  # the content layer's activations of C
    grams: list[list[tf.Tensor]] = field(default_factory=list)  # [style][layer]
    style_weights: list[float] = field(default_factory=list)
    _compiled: dict[bool, Any] = field(default_factory=dict, init=False, repr=False)

    def set_targets(self, content: tf.Tensor, styles: Sequence[tf.Tensor],
                    style_weights: Sequence[float]) -> None:
        self.a_C = self.model(vgg_input(content, self.preprocess))[-1]
        self.grams = [[normalized_gram(a) for a in self.model(vgg_input(s, self.preprocess))[:-1]]
                      for s in styles]
        self.style_weights = [float(w) for w in style_weights]

    def costs(self, g: tf.Tensor, targets: tuple[tf.Tensor, list[list[tf.Tensor]]] | None = None
              ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """(J, J_content, J_style) of G (1, H, W, 3), scalars; ``targets`` = (content-layer
        activations of C, Gram matrices [style][layer]), by default those set last."""
        a_C, grams_all = targets if targets is not None else (self.a_C, self.grams)
        a_G = self.model(vgg_input(g, self.preprocess))
        J_content = compute_content_cost([a_C], a_G)
        J_style = 0.0
        for w_s, grams in zip(self.style_weights, grams_all, strict=True):
            for (_, lam), G_S, a in zip(self.style_layers, grams, a_G[:-1], strict=True):
                n_C = tf.cast(tf.shape(a)[-1], a.dtype)
                J_style += w_s * lam * tf.reduce_sum((G_S - normalized_gram(a)) ** 2) / (
                    4.0 * n_C**2)
        J = self.alpha * J_content + self.beta * J_style
        if self.tv_weight:
            from nbutils.style.regularizers import total_variation_cost

            J += self.tv_weight * total_variation_cost(g)
        return J, J_content, J_style

    def value_and_gradient(self, xla: bool = False) -> Callable[[tf.Tensor], tuple]:
        """A compiled ``f(G) -> (J, J_content, J_style, dJ/dG)``: one forward+backward pass,
        on the targets set last. Traced once for every size (the image and the targets are
        arguments whose height and width are left open); ``xla``: compiled by XLA, once
        per size (see `XLA_MIN_PIXELS`)."""
        if xla not in self._compiled:
            def spec(t: tf.Tensor, open_size: bool = False) -> tf.TensorSpec:
                shape = [1, None, None, t.shape[-1]] if open_size else t.shape
                return tf.TensorSpec(shape, t.dtype)

            signature = (spec(tf.zeros([1, 1, 1, 3]), True), spec(self.a_C, True),
                         [[spec(G) for G in grams] for grams in self.grams])

            @tf.function(input_signature=signature, jit_compile=xla)
            def compiled(g, a_C, grams):
                with tf.GradientTape() as tape:
                    tape.watch(g)
                    J, J_content, J_style = self.costs(g, (a_C, grams))
                return J, J_content, J_style, tape.gradient(J, g)

            self._compiled[xla] = compiled
        return lambda g: self._compiled[xla](g, self.a_C, self.grams)


class _Recorder:
    """Counts passes, keeps the history and the best image, drives the progress bar."""

    def __init__(self, total: int, progress: bool, every: int | None,
                 callback: Callable | None, save_dir: Path | None):
        self.history: dict[str, Any] = {"pass": [], "time": [], "total": [], "content": [],
                                        "style": [], "scale": [], "snapshots": {}}
        self.best_J, self.best = np.inf, None
        self.start = time.perf_counter()
        self.bar = tqdm(total=total, desc="style transfer", unit="pass", disable=not progress)
        self.every, self.callback, self.save_dir = every, callback, save_dir

    @property
    def passes(self) -> int:
        return len(self.history["pass"])

    def record(self, g: np.ndarray, J: float, J_content: float, J_style: float,
               scale: int) -> None:
        n = self.passes + 1
        for key, value in (("pass", n), ("time", time.perf_counter() - self.start),
                           ("total", J), ("content", J_content), ("style", J_style),
                           ("scale", scale)):
            self.history[key].append(value)
        if J < self.best_J:
            self.best_J, self.best = J, g
        self.bar.update(1)
        self.bar.set_postfix(total=f"{J:.4g}", scale=scale)
        if self.every and n % self.every == 0:
            image = np.clip(g[0], 0, 1)
            self.history["snapshots"][n] = image
            if self.save_dir is not None:
                save_image(image, self.save_dir / f"pass_{n:05d}.png")
            if self.callback is not None:
                self.callback(n, image, {"total": J, "content": J_content, "style": J_style})


def _run_adam(f, g0: np.ndarray, passes: int, lr: float, rec: _Recorder, scale: int,
              target: float | None) -> np.ndarray:
    g = tf.Variable(g0)
    optimizer = keras.optimizers.Adam(learning_rate=lr)

    @tf.function
    def step():
        J, J_content, J_style, grad = f(g)
        optimizer.apply_gradients([(grad, g)])
        g.assign(tf.clip_by_value(g, 0.0, 1.0))
        return J, J_content, J_style

    for _ in range(passes):
        before = g.numpy()
        J, J_content, J_style = (float(v) for v in step())
        rec.record(before, J, J_content, J_style, scale)
        if target is not None and J <= target:
            break
    return g.numpy()


def _run_lbfgs(f, g0: np.ndarray, passes: int, rec: _Recorder, scale: int,
               target: float | None) -> np.ndarray:
    def value_and_gradient(x: np.ndarray) -> tuple[float, np.ndarray]:
        g = x.astype(np.float32)
        J, J_content, J_style, grad = f(tf.constant(g))
        rec.record(g, float(J), float(J_content), float(J_style), scale)
        return float(J), grad.numpy()

    def reached_target() -> bool:
        return target is not None and rec.best_J <= target

    return lbfgs_box(value_and_gradient, g0, passes, should_stop=reached_target)


def scale_sizes(size: tuple[int, int], scales: int, factor: float = 2.0) -> list[tuple[int, int]]:
    """Coarse-to-fine sizes, smallest first, the last equal to ``size``: each scale is
    ``factor`` times the previous one (e.g. 100, 200, 400 for size 400, 3 scales)."""
    h, w = size
    return [(max(16, round(h / factor**k)), max(16, round(w / factor**k)))
            for k in reversed(range(scales))]


def stylize_fast(content: Any, style: Any | Sequence[Any], size: int | tuple[int, int] = 400, *,
                 style_weights: Sequence[float] | None = None, optimizer: str = "lbfgs",
                 passes: int = 200, scales: int = 1, alpha: float = 10, beta: float = 40,
                 tv_weight: float = 0.0,
                 style_layers: Sequence[tuple[str, float]] = STYLE_LAYERS,
                 content_layer: str = CONTENT_LAYER_NAME, preprocess: str = "course",
                 pooling: str = "max", preserve_color: str = "none", style_scale: float = 1.0,
                 init: str = "content+noise", seed: int = 272, learning_rate: float = 0.01,
                 target_cost: float | None = None, every: int | None = None,
                 callback: Callable | None = None, save_dir: str | Path | None = None,
                 progress: bool = True, vgg: keras.Model | None = None
                 ) -> tuple[np.ndarray, dict[str, Any]]:
    """Neural style transfer with a pass budget, L-BFGS or Adam, and quality controls.

    Args:
        content: the content image (path, PIL image or array).
        style: one style image, or a list of them (blended with ``style_weights``).
        size: output size, int (square) or (height, width).
        optimizer: one of ``OPTIMIZERS``: "lbfgs", or "adam" (the course's, with
            ``learning_rate``).
        passes: budget of VGG forward+backward passes, split evenly over the scales.
        scales: coarse-to-fine levels, each twice the previous; 1 = the final size only.
        alpha, beta, tv_weight: weights of content, style and total-variation costs.
        style_layers, content_layer: which VGG19 layers define style and content.
        preprocess: one of ``PREPROCESS``, see `vgg_input`.
        pooling: one of ``POOLING``: "max" (VGG19's own) or "avg".
        preserve_color: one of ``PRESERVE_COLOR`` (nbutils.extras.color): "none",
            "luminance" (keep the content's colours: the result's luminance with the
            content's chroma) or "histogram" (recolour the style image to the content's
            colour statistics first).
        style_scale: size of the style image relative to the output.
        init, seed: the starting G, as in `initial_generated_image` (``init`` one of
            ``INITS``).
        target_cost: stop as soon as J reaches it (at the final scale).
        every, callback, save_dir: every ``every`` passes: keep a snapshot, call
            ``callback(pass, image, costs)``, save ``save_dir/pass_#####.png``.

    Returns:
        (image (H, W, 3) float32 in [0, 1], history): the best image seen at the final
        scale; history has per-pass "pass", "time" (s), "total", "content", "style",
        "scale", the "snapshots", and "interrupted" (True after Ctrl-C: the best image so
        far is still returned).

    Raises:
        ValueError: a name outside its set (before any image or network is loaded), a
            style weight count that is not the style image count, an unknown layer.
    """
    for name, value, choices in (("optimizer", optimizer, OPTIMIZERS),
                                 ("preprocess", preprocess, PREPROCESS),
                                 ("pooling", pooling, POOLING),
                                 ("preserve_color", preserve_color, PRESERVE_COLOR),
                                 ("init", init, INITS)):
        check_choice(name, value, choices)
    styles = list(style) if isinstance(style, list | tuple) else [style]
    style_weights = list(style_weights or [1.0 / len(styles)] * len(styles))
    if len(style_weights) != len(styles):
        raise ValueError(f"{len(styles)} style images but {len(style_weights)} style weights")
    target_size = (size, size) if isinstance(size, int) else tuple(size)
    content_full = load_image(content)
    style_arrays = [load_image(s) for s in styles]
    if preserve_color == "histogram":
        style_arrays = [match_color(s, content_full) for s in style_arrays]
    model = get_layer_outputs(vgg19_with_pooling(pooling, vgg),
                              list(style_layers) + [content_layer])
    objective = Objective(model, list(style_layers), alpha, beta, tv_weight, preprocess)
    sizes = scale_sizes(target_size, scales)
    save_dir = Path(save_dir) if save_dir is not None else None
    rec = _Recorder(passes, progress, every, callback, save_dir)
    g = None
    try:
        for k, (h, w) in enumerate(sizes):
            c = load_image(content_full, (h, w))[None]
            sh, sw = max(16, round(h * style_scale)), max(16, round(w * style_scale))
            objective.set_targets(tf.constant(c), [tf.constant(load_image(s, (sh, sw))[None])
                                                   for s in style_arrays], style_weights)
            if g is None:
                g = initial_generated_image(c, init=init, seed=seed).numpy()
            else:
                g = tf.image.resize(g, (h, w), method="bilinear").numpy().clip(0, 1)
            n = passes // len(sizes) + (passes % len(sizes) if k == len(sizes) - 1 else 0)
            last = k == len(sizes) - 1
            f = objective.value_and_gradient(xla=h * w >= XLA_MIN_PIXELS)
            if last:  # only the final scale's images compete for "best"
                rec.best_J, rec.best = np.inf, None
            run = _run_lbfgs if optimizer == "lbfgs" else (
                lambda f, g0, n, rec, scale, target: _run_adam(f, g0, n, learning_rate, rec,
                                                               scale, target))
            g = run(f, g, n, rec, k, target_cost if last else None)
        rec.history["interrupted"] = False
    except KeyboardInterrupt:
        rec.history["interrupted"] = True
    rec.bar.close()
    best = rec.best if rec.best is not None else g
    if best is None:  # interrupted before the first pass finished: nothing to return
        raise KeyboardInterrupt
    image = np.clip(best[0], 0.0, 1.0).astype(np.float32)
    if preserve_color == "luminance":
        image = luminance_transfer(load_image(content_full, image.shape[:2]), image)
    rec.history["best_total"] = rec.best_J
    return image, rec.history
