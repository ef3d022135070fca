"""Faster style transfer with more control: L-BFGS, coarse-to-fine, quality controls.

The objective is the course's: `nbutils.style.costs`' cost functions on VGG19's activations.
A step costs one VGG19 forward + backward pass, near the hardware's limit already, so the
lever is fewer, cheaper steps: L-BFGS (`nbutils.extras.lbfgs`, projected onto [0, 1]) uses
the curvature of J(G) from its recent gradients; coarse-to-fine optimises a smaller image
first, upsampled between scales; on large images XLA compiles the pass (`XLA_MIN_PIXELS`).
Adam takes the course's update and history (`nbutils.style.optimize`).

Quality controls, each off unless asked for: ImageNet preprocessing, total variation,
colour preservation, several style images with weights, style scale, layer choice,
average pooling. With all of them off, J is exactly the course's.
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
    compute_style_cost,
    total_cost,
)
from nbutils.style.optimize import (
    INITS,
    MIN_SIDE,
    clip_0_1,
    get_layer_outputs,
    initial_generated_image,
    new_history,
    record_step,
)
from nbutils.style.regularizers import total_variation_cost
from nbutils.vgg19 import load_vgg19

OPTIMIZERS = ("lbfgs", "adam")
PREPROCESS = ("course", "imagenet")
POOLING = ("max", "avg")
IMAGENET_BGR_MEAN = (103.939, 116.779, 123.68)  # the means VGG19 was trained with, 0..255
# Images of at least this many pixels get their passes compiled by XLA: on a CPU it is
# slower on small images (and compiles once per size), faster from about 300 x 300 on.
XLA_MIN_PIXELS = 300 * 300


def vgg_input(images: tf.Tensor, preprocess: str = "course") -> tf.Tensor:
    """What VGG19 is fed. "course": the [0, 1] RGB image itself, as the course does.
    "imagenet": as VGG19 was trained: 0..255, BGR order, ImageNet channel means removed
    (on [0, 1] inputs its activations are about 255 times smaller and shifted, which
    changes the balance of the layers, and the alpha / beta that work well)."""
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


@dataclass
class Objective:
    """J(G) = alpha J_content + beta sum_s w_s J_style(S_s, G) + tv_weight TV(G), with the
    course's cost functions, on targets (activations of C and of each S) set once per size.

    A style image of another size than G (``style_scale``) has its activations multiplied
    by sqrt(n_H n_W of G / n_H n_W of S), so that its Gram matrix counts G's number of
    positions: the course's layer cost, normalised by G's size, then compares them."""

    model: keras.Model
    style_layers: list[tuple[str, float]]
    alpha: float
    beta: float
    tv_weight: float
    preprocess: str
    a_C: tf.Tensor | None = None  # the content layer's activations of C
    a_S: list[list[tf.Tensor]] = field(default_factory=list)  # [style][style layer]
    style_weights: list[float] = field(default_factory=list)
    _compiled: dict[bool, Any] = field(default_factory=dict, init=False, repr=False)

    def set_targets(self, content: tf.Tensor, styles: Sequence[tf.Tensor],
                    style_weights: Sequence[float]) -> None:
        outputs_C = self.model(vgg_input(content, self.preprocess))
        self.a_C, self.a_S = outputs_C[-1], []
        for s in styles:  # times sqrt(n_H n_W of G / of S): see the class docstring
            outputs_S = self.model(vgg_input(s, self.preprocess))[:-1]
            self.a_S.append([a * tf.cast(tf.sqrt(tf.size(c) / tf.size(a)), a.dtype)
                             for a, c in zip(outputs_S, outputs_C[:-1], strict=True)])
        self.style_weights = [float(w) for w in style_weights]

    def costs(self, g: tf.Tensor, targets: tuple[tf.Tensor, list[list[tf.Tensor]]] | None = None
              ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """(J, J_content, J_style) of G (1, H, W, 3), scalars; ``targets`` = (a_C, a_S) as
        the attributes hold them, by default those set last."""
        a_C, a_S_all = targets if targets is not None else (self.a_C, self.a_S)
        a_G = self.model(vgg_input(g, self.preprocess))
        J_content = compute_content_cost([a_C], a_G)
        # [*a_S, a_C]: the style layers, then the content layer the style cost skips
        J_style = sum(w * compute_style_cost([*a_S, a_C], a_G, STYLE_LAYERS=self.style_layers)
                      for w, a_S in zip(self.style_weights, a_S_all, strict=True))
        J = total_cost(J_content, J_style, alpha=self.alpha, beta=self.beta)
        if self.tv_weight:
            J += self.tv_weight * total_variation_cost(g)
        return J, J_content, J_style

    def value_and_gradient(self, xla: bool = False) -> Callable[[tf.Tensor], tuple]:
        """A compiled ``f(G) -> (J, J_content, J_style, dJ/dG)`` on the targets set last: one
        forward+backward pass, traced once for every size (heights and widths are left
        open); ``xla``: compiled by XLA, once per size (see `XLA_MIN_PIXELS`)."""
        if xla not in self._compiled:
            def spec(t: tf.Tensor) -> tf.TensorSpec:
                return tf.TensorSpec([1, None, None, t.shape[-1]], t.dtype)

            signature = (spec(tf.zeros([1, 1, 1, 3])), spec(self.a_C),
                         [[spec(a) for a in a_S] for a_S in self.a_S])

            @tf.function(input_signature=signature, jit_compile=xla)
            def compiled(g, a_C, a_S):
                with tf.GradientTape() as tape:
                    tape.watch(g)
                    J, J_content, J_style = self.costs(g, (a_C, a_S))
                return J, J_content, J_style, tape.gradient(J, g)

            self._compiled[xla] = compiled
        return lambda g: self._compiled[xla](g, self.a_C, self.a_S)


class _Recorder:
    """Keeps the history (`new_history`, plus "scale"), the best image, the progress bar."""

    def __init__(self, steps: int, progress: bool, every: int | None,
                 callback: Callable | None, save_dir: Path | None):
        self.history = {**new_history(), "scale": []}
        self.best_J, self.best = np.inf, None
        self.start = time.perf_counter()
        self.bar = tqdm(total=steps, desc="style transfer", unit="step", disable=not progress)
        self.every, self.callback, self.save_dir = every, callback, save_dir

    def record(self, g: np.ndarray, J: float, J_content: float, J_style: float,
               scale: int) -> None:
        step = len(self.history["step"])
        costs = record_step(self.history, self.start, J, J_content, J_style)
        self.history["scale"].append(scale)
        if J < self.best_J:
            self.best_J, self.best = J, g
        self.bar.update(1)
        self.bar.set_postfix(total=f"{J:.4g}", scale=scale)
        if self.every and step % self.every == 0:
            image = np.clip(g[0], 0, 1)
            self.history["snapshots"][step] = image
            if self.save_dir is not None:
                save_image(image, self.save_dir / f"step_{step:05d}.png")
            if self.callback is not None:
                self.callback(step, image, costs)


def _run_adam(f: Callable, g0: np.ndarray, steps: int, learning_rate: float, rec: _Recorder,
              scale: int, target: float | None) -> np.ndarray:
    g, optimizer = tf.Variable(g0), keras.optimizers.Adam(learning_rate=learning_rate)
    for _ in range(steps):
        before = g.numpy()
        J, J_content, J_style, grad = f(g)
        # the course's update (`make_train_step`), on the compiled pass's gradient
        optimizer.apply_gradients([(grad, g)])
        g.assign(clip_0_1(g))
        rec.record(before, float(J), float(J_content), float(J_style), scale)
        if target is not None and J <= target:
            break
    return g.numpy()


def _run_lbfgs(f: Callable, g0: np.ndarray, steps: int, rec: _Recorder, scale: int,
               target: float | None) -> np.ndarray:
    def value_and_gradient(x: np.ndarray) -> tuple[float, np.ndarray]:
        g = x.astype(np.float32)
        J, J_content, J_style, grad = f(tf.constant(g))
        rec.record(g, float(J), float(J_content), float(J_style), scale)
        return float(J), grad.numpy()

    def reached_target() -> bool:
        return target is not None and rec.best_J <= target

    return lbfgs_box(value_and_gradient, g0, steps, should_stop=reached_target)


def scale_sizes(size: tuple[int, int], scales: int, factor: float = 2.0) -> list[tuple[int, int]]:
    """Coarse-to-fine sizes, smallest first, the last equal to ``size``: each scale is
    ``factor`` times the previous one (e.g. 100, 200, 400 for size 400, 3 scales)."""
    h, w = size
    return [(max(MIN_SIDE, round(h / factor**k)), max(MIN_SIDE, round(w / factor**k)))
            for k in reversed(range(scales))]


def stylize_fast(content: Any, style: Any | Sequence[Any],
                 size: int | tuple[int, int] = 400,  # the course's size (stylize: 256, for Adam)
                 *, style_weights: Sequence[float] | None = None, optimizer: str = "lbfgs",
                 steps: int = 200, scales: int = 1, alpha: float = 10, beta: float = 40,
                 tv_weight: float = 0.0,
                 style_layers: Sequence[tuple[str, float]] = STYLE_LAYERS,
                 content_layer: str = CONTENT_LAYER_NAME, preprocess: str = "course",
                 pooling: str = "max", preserve_color: str = "none", style_scale: float = 1.0,
                 init: str = "content+noise", seed: int = 272, learning_rate: float = 0.01,
                 target_cost: float | None = None, every: int | None = None,
                 callback: Callable | None = None, save_dir: str | Path | None = None,
                 progress: bool = True, vgg: keras.Model | None = None
                 ) -> tuple[np.ndarray, dict[str, Any]]:
    """Neural style transfer with a step budget, L-BFGS or Adam, and quality controls.

    Args:
        content, style, size: as `stylize`'s; ``style`` may be a list of images, blended
            with ``style_weights`` (default: equal).
        optimizer, learning_rate: one of `OPTIMIZERS`; "adam" takes the course's step.
        steps, scales, target_cost: the budget of steps (VGG19 passes; L-BFGS's line search
            may spend one on a point it rejects), split over ``scales`` coarse-to-fine
            levels, each twice the last; stop once J <= ``target_cost`` (final scale).
        alpha, beta, tv_weight, style_layers, content_layer: the objective.
        preprocess, pooling, preserve_color, style_scale: quality controls, off by default:
            one of `PREPROCESS` (see `vgg_input`), `POOLING`, `PRESERVE_COLOR`
            (`nbutils.extras.color`); the style images' size relative to the output's.
        init, seed, every, callback, progress, vgg: as in `stylize`; ``save_dir``: also
            save each snapshot there, as ``step_#####.png``.

    Returns:
        (image, history): the best image of the final scale, (H, W, 3) float32 in [0, 1],
        even after Ctrl-C; the history of `train` (`new_history`), plus "scale" per step,
        "best_total" and "interrupted".

    Raises:
        ValueError: a name outside its set (before anything is loaded), a number of style
            weights other than of style images, an unknown layer.
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
    rec = _Recorder(steps, progress, every, callback, save_dir)
    g = None
    try:
        for k, (h, w) in enumerate(sizes):
            c = load_image(content_full, (h, w))[None]
            sh, sw = (max(MIN_SIDE, round(side * style_scale)) for side in (h, w))
            objective.set_targets(tf.constant(c), [tf.constant(load_image(s, (sh, sw))[None])
                                                   for s in style_arrays], style_weights)
            if g is None:
                g = initial_generated_image(c, init=init, seed=seed).numpy()
            else:
                g = tf.image.resize(g, (h, w), method="bilinear").numpy().clip(0, 1)
            last = k == len(sizes) - 1
            n = steps // len(sizes) + (steps % len(sizes) if last else 0)
            f = objective.value_and_gradient(xla=h * w >= XLA_MIN_PIXELS)
            target = target_cost if last else None
            if last:  # only the final scale's images compete for "best"
                rec.best_J, rec.best = np.inf, None
            if optimizer == "adam":
                g = _run_adam(f, g, n, learning_rate, rec, k, target)
            else:
                g = _run_lbfgs(f, g, n, rec, k, target)
        rec.history["interrupted"] = False
    except KeyboardInterrupt:
        rec.history["interrupted"] = True
    rec.bar.close()
    best = rec.best if rec.best is not None else g
    if best is None:  # interrupted before the first step finished: nothing to return
        raise KeyboardInterrupt
    image = np.clip(best[0], 0.0, 1.0).astype(np.float32)
    if preserve_color == "luminance":
        image = luminance_transfer(load_image(content_full, image.shape[:2]), image)
    rec.history["best_total"] = rec.best_J
    return image, rec.history
