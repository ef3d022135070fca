"""What would excite a unit most? Synthesise it: gradient ascent on the input image.

Where top patches (`nbutils.insight.patches`) search existing photos, this starts from grey
noise and moves the pixels along the gradient of the unit's mean activation, the weights
fixed. Regularisers keep the result image-like: jitter (each step sees the image rolled a
few random pixels), a light Gaussian blur every few steps, a normalised gradient (each step
moves pixels by about ``learning_rate``), and clipping to [0, 1].
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import keras
import numpy as np
import tensorflow as tf
from keras.activations import linear
from matplotlib.figure import Figure

from nbutils.insight.patches import layer_model, show_by_layer

__all__ = ["gaussian_blur", "initial_image", "maximize_activation", "plot_maximized"]


def initial_image(size: int = 128, seed: int = 0, amplitude: float = 0.02) -> np.ndarray:
    """(size, size, 3) float32 in [0, 1]: grey 0.5 plus Gaussian noise of std ``amplitude``."""
    rng = np.random.default_rng(seed)
    noise = amplitude * rng.standard_normal((size, size, 3))
    return np.clip(0.5 + noise, 0.0, 1.0).astype(np.float32)


def _gaussian_taps(sigma: float) -> tf.Tensor:
    """A normalised 1-D Gaussian of radius ceil(3 sigma), float32 (2 r + 1,)."""
    radius = max(1, math.ceil(3 * sigma))
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    taps = np.exp(-0.5 * (x / sigma) ** 2)
    return tf.constant(taps / taps.sum(), tf.float32)


def gaussian_blur(images: tf.Tensor, sigma: float) -> tf.Tensor:
    """Blur each channel of (N, H, W, C) images with a Gaussian of ``sigma`` pixels.

    Separable (rows, then columns), reflect-padded at the borders, so a constant image
    stays constant. Images must be larger than 3 sigma in each direction.
    """
    images = tf.convert_to_tensor(images, tf.float32)
    if sigma <= 0:
        return images
    taps = _gaussian_taps(sigma)
    radius = (int(taps.shape[0]) - 1) // 2
    channels = int(images.shape[-1])
    padded = tf.pad(images, [[0, 0], [radius, radius], [radius, radius], [0, 0]], "REFLECT")
    rows = tf.tile(tf.reshape(taps, (-1, 1, 1, 1)), (1, 1, channels, 1))
    cols = tf.tile(tf.reshape(taps, (1, -1, 1, 1)), (1, 1, channels, 1))
    out = tf.nn.depthwise_conv2d(padded, rows, (1, 1, 1, 1), "VALID")
    return tf.nn.depthwise_conv2d(out, cols, (1, 1, 1, 1), "VALID")


def _unit_objective(model: keras.Model, layer: str, unit: int
                    ) -> Callable[[tf.Tensor], tuple[tf.Tensor, tf.Tensor]]:
    """A function: images -> (mean activation, mean pre-activation) of channel ``unit``.

    For a convolution with a built-in activation (VGG's convs have ``relu``) the
    pre-activation is the convolution plus bias, computed with the layer's own weights;
    for any other layer both values are the layer's output.
    """
    sub = layer_model(model, layer)
    target = model.get_layer(layer)
    channels = target.output.shape[-1]
    if not 0 <= unit < channels:
        raise ValueError(f"unit {unit} does not exist: {layer} has {channels} channels")
    activation = getattr(target, "activation", None)
    if isinstance(target, keras.layers.Conv2D) and activation not in (None, linear):
        below = keras.Model(model.inputs[0], target.input)

        def objective(images: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            pre = target.convolution_op(below(images, training=False), target.kernel)
            if target.use_bias:
                pre = pre + target.bias
            pre = pre[..., unit]
            return tf.reduce_mean(activation(pre)), tf.reduce_mean(pre)
    else:

        def objective(images: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            value = tf.reduce_mean(sub(images, training=False)[..., unit])
            return value, value

    return objective


def maximize_activation(model: keras.Model, layer: str, unit: int, size: int = 128,
                        steps: int = 100, learning_rate: float = 0.05, jitter: int = 8,
                        blur_every: int = 4, blur_sigma: float = 0.5, seed: int = 0,
                        return_history: bool = False
                        ) -> np.ndarray | tuple[np.ndarray, list[float]]:
    """A (size, size, 3) float32 image in [0, 1] maximising the mean activation of channel
    ``unit`` of ``layer``; with ``return_history``, ``(image, per-step activations)``.

    ``model`` takes images as they are (for `load_vgg19`: RGB in [0, 1]). Each step rolls the
    image by up to ``jitter`` pixels and moves pixels by ``learning_rate`` on average; every
    ``blur_every`` steps (0: never) it is blurred by ``blur_sigma`` pixels. While a conv unit
    is silent everywhere, its pre-activation is climbed instead (a pooling layer's stays
    grey). Dead units (block2_conv1 unit 0 of `load_vgg19`) stay at zero.
    """
    objective = _unit_objective(model, layer, unit)
    rng = np.random.default_rng(seed)
    image = tf.Variable(initial_image(size, seed)[np.newaxis])

    @tf.function
    def ascent_step(shift: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            activation, pre_activation = objective(tf.roll(image, shift, axis=[1, 2]))
            # A unit silent everywhere has no gradient: climb its pre-activation instead.
            target = tf.where(activation > 0, activation, pre_activation)
        grad = tape.gradient(target, image)  # the roll is undone by its gradient
        grad /= tf.reduce_mean(tf.abs(grad)) + 1e-8
        image.assign(tf.clip_by_value(image + learning_rate * grad, 0.0, 1.0))
        return activation

    history = []
    for step in range(1, steps + 1):
        shift = rng.integers(-jitter, jitter + 1, size=2) if jitter else np.zeros(2, int)
        history.append(float(ascent_step(tf.constant(shift, tf.int32))))
        if blur_every and step % blur_every == 0:
            image.assign(tf.clip_by_value(gaussian_blur(image, blur_sigma), 0.0, 1.0))
    result = image.numpy()[0]
    return (result, history) if return_history else result


def plot_maximized(images_by_layer: Mapping[str, Mapping[int, np.ndarray]],
                   size: float = 2.5) -> Figure:
    """``{layer: {unit: image}}`` in a grid, one row per layer, ``size`` inches per image."""
    return show_by_layer(images_by_layer, size)
