"""Regularisers for the generated image of neural style transfer; TensorFlow ops only, as
in ``costs.py`` (eager tensors, or a ``tf.function`` whose sizes are known only at run time)."""

from __future__ import annotations

import tensorflow as tf


def total_variation_cost(image: tf.Tensor) -> tf.Tensor:
    """Anisotropic squared total variation of an image, per pixel value.

        J_TV(G) = 1 / (H W C) * sum_{i,j,c} [ (G[i+1, j, c] - G[i, j, c])^2
                                            + (G[i, j+1, c] - G[i, j, c])^2 ]

    Differences past the last row (or column) are left out. It penalises high-frequency
    noise: a constant image costs 0, a checkerboard the most. Divided by the number of
    values, it is a mean, so its weight in J(G) need not change with the image size; with
    values in [0, 1] it lies in [0, 2).

    ``image``: (H, W, C) or (N, H, W, C), usually one RGB image in [0, 1] (the sum then
    runs over the batch, divided by N H W C). Returns a scalar of ``image``'s float dtype.
    """
    image = tf.convert_to_tensor(image)
    down = image[..., 1:, :, :] - image[..., :-1, :, :]    # x[i+1, j] - x[i, j]
    right = image[..., :, 1:, :] - image[..., :, :-1, :]   # x[i, j+1] - x[i, j]
    n_values = tf.cast(tf.size(image), image.dtype)
    return (tf.reduce_sum(tf.square(down)) + tf.reduce_sum(tf.square(right))) / n_values
