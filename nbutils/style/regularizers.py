"""Regularisers for the generated image of neural style transfer.

Like ``costs.py``, everything here is written with TensorFlow ops only, so it is
differentiable and works on eager tensors and inside a ``tf.function`` whose image
sizes are unknown until run time.
"""

from __future__ import annotations

import tensorflow as tf


def total_variation_cost(image: tf.Tensor) -> tf.Tensor:
    """Anisotropic squared total variation of an image, per pixel value.

        J_TV(G) = 1 / (H W C) * sum_{i,j,c} [ (G[i+1, j, c] - G[i, j, c])^2
                                            + (G[i, j+1, c] - G[i, j, c])^2 ]

    Differences that would step past the last row (or column) are left out. It penalises
    high-frequency noise: a constant image costs 0, a checkerboard costs the most.

    Normalisation: the sum is divided by the number of values in ``image`` (H * W * 3 for
    one RGB image), so the cost is a mean and its weight in J(G) need not change with the
    image size. With values in [0, 1] it lies in [0, 2).

    Args:
        image: (1, H, W, C) or (H, W, C), usually C = 3 with values in [0, 1]. A batch
            (N, H, W, C) is accepted too: the sum then runs over the whole batch and is
            divided by N H W C.

    Returns:
        A scalar tensor of ``image``'s (float) dtype.
    """
    image = tf.convert_to_tensor(image)
    down = image[..., 1:, :, :] - image[..., :-1, :, :]    # x[i+1, j] - x[i, j]
    right = image[..., :, 1:, :] - image[..., :, :-1, :]   # x[i, j+1] - x[i, j]
    n_values = tf.cast(tf.size(image), image.dtype)
    return (tf.reduce_sum(tf.square(down)) + tf.reduce_sum(tf.square(right))) / n_values
