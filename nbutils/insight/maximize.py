"""What would excite a unit most? Synthesise it: gradient ascent on the input image.

Top patches (`nbutils.insight.patches`) show what a unit responds to among *existing*
photos. Activation maximisation asks the network directly: start from a grey image with a
little noise and move its pixels along the gradient of the unit's mean activation, i.e.
gradient *ascent* on the input, the network's weights staying fixed.

Left alone, the ascent finds high-frequency patterns no photo contains. The usual
regularisers keep the result image-like:

* jitter: each step sees the image rolled by a few random pixels, so a pattern must work
  wherever it lands;
* blur: a light Gaussian blur every few steps damps the highest frequencies;
* gradient normalisation: every step moves the pixels by about ``learning_rate`` on
  average, however large or small the raw gradient is;
* clipping to [0, 1]: the image stays a valid image.
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
    """The starting point: grey 0.5 plus Gaussian noise of standard deviation ``amplitude``.

    Returns:
        (size, size, 3) float32 in [0, 1]; the same for the same seed.
    """
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
    """Synthesise an image that maximises the mean activation of one unit.

    A unit that is silent (zero after its ReLU) everywhere gives no gradient; while it is,
    the ascent climbs the unit's mean pre-activation (its convolution plus bias) instead,
    which usually wakes it up. That needs a convolution layer: a silent unit of a pooling
    layer stays grey (pick the convolution before it). A few units are dead: they never
    fire on any image (block2_conv1 unit 0 of `load_vgg19` is one), and stay at zero.

    Args:
        model: a Keras model taking (batch, H, W, 3) images as they are (for `load_vgg19`:
            RGB in [0, 1]); its weights are not changed.
        layer: name of the layer; its output is (batch, h, w, channels).
        unit: the channel whose mean over all positions is maximised.
        size: side of the square image, in pixels.
        steps: gradient-ascent steps.
        learning_rate: mean absolute change of a pixel value per step (the gradient is
            divided by its mean absolute value first).
        jitter: each step the image is rolled by a random shift in [-jitter, jitter] pixels
            along each axis before it goes through the network (0: no jitter).
        blur_every: every ``blur_every`` steps the image is blurred (0: never).
        blur_sigma: standard deviation of that blur, in pixels.
        seed: seeds the starting noise and the jitter; the same seed gives the same image.
        return_history: also return the unit's mean activation at every step (measured on
            the jittered image that step used).

    Returns:
        The image, (size, size, 3) float32 in [0, 1]; with ``return_history``, the pair
        ``(image, history)``.
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
    """Synthesised images in a grid: one row per layer, one image per unit.

    Args:
        images_by_layer: ``{layer: {unit: image}}``, images from `maximize_activation`.
        size: inches per image.
    """
    return show_by_layer(images_by_layer, size)
