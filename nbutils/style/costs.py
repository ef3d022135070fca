"""The costs of neural style transfer (Gatys et al. 2015), as the course defines them.

Notation: an activation volume ``a`` of one layer has shape (1, n_H, n_W, n_C).
Every function here is written with TensorFlow ops only, so it works on eager tensors
and inside a ``tf.function`` (symbolic tensors, sizes unknown until run time).
"""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf

# The course's choice: five layers from shallow to deep, equally weighted.
STYLE_LAYERS: list[tuple[str, float]] = [
    ("block1_conv1", 0.2),
    ("block2_conv1", 0.2),
    ("block3_conv1", 0.2),
    ("block4_conv1", 0.2),
    ("block5_conv1", 0.2),
]
# The course's content layer: deep, so it keeps the objects and their layout, not textures.
CONTENT_LAYER_NAME = "block5_conv4"
CONTENT_LAYER: list[tuple[str, float]] = [(CONTENT_LAYER_NAME, 1)]


def volume_dims(a: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """(n_H, n_W, n_C) of a (1, n_H, n_W, n_C) tensor, as scalars of a's dtype (run-time sizes)."""
    shape = tf.cast(tf.shape(a), a.dtype)
    return shape[1], shape[2], shape[3]


def compute_content_cost(content_output: Sequence[tf.Tensor],
                         generated_output: Sequence[tf.Tensor]) -> tf.Tensor:
    """Content cost between the content image C and the generated image G, a scalar:

        J_content(C, G) = 1 / (4 n_H n_W n_C) * sum (a_C - a_G)^2

    ``content_output``, ``generated_output``: lists of layer activations of C and G; the
    LAST element of each is the content layer's, (1, n_H, n_W, n_C). (Unrolling to
    (1, n_H * n_W, n_C), as the course does, leaves the sum unchanged.)
    """
    a_C = content_output[-1]
    a_G = generated_output[-1]
    n_H, n_W, n_C = volume_dims(a_G)
    return tf.reduce_sum(tf.square(a_C - a_G)) / (4.0 * n_H * n_W * n_C)


def gram_matrix(A: tf.Tensor) -> tf.Tensor:
    """Gram matrix G_A = A A^T: how much each pair of channels fires together.

    A: (n_C, n_H * n_W), one row per channel. Returns (n_C, n_C): entry (i, j) is the dot
    product of channels i and j.
    """
    return tf.matmul(A, A, transpose_b=True)


def unroll_channels(a: tf.Tensor) -> tf.Tensor:
    """(1, n_H, n_W, n_C) -> (n_C, n_H * n_W): reshape to (n_H * n_W, n_C), THEN transpose.

    Reshaping straight to (n_C, n_H * n_W) would mix channels and positions.
    """
    n_C = tf.shape(a)[-1]
    return tf.transpose(tf.reshape(a, [-1, n_C]))


def compute_layer_style_cost(a_S: tf.Tensor, a_G: tf.Tensor) -> tf.Tensor:
    """Style cost of one layer between the style image S and the generated image G, a scalar:

        J_style^[l](S, G) = 1 / (4 n_C^2 (n_H n_W)^2) * sum_ij (G_S[i, j] - G_G[i, j])^2

    ``a_S``, ``a_G``: activations of that layer for S and G, (1, n_H, n_W, n_C).
    """
    n_H, n_W, n_C = volume_dims(a_G)
    GS = gram_matrix(unroll_channels(a_S))
    GG = gram_matrix(unroll_channels(a_G))
    return tf.reduce_sum(tf.square(GS - GG)) / (4.0 * n_C**2 * (n_H * n_W) ** 2)


def compute_style_cost(style_image_output: Sequence[tf.Tensor],
                       generated_image_output: Sequence[tf.Tensor],
                       STYLE_LAYERS: Sequence[tuple[str, float]] = STYLE_LAYERS) -> tf.Tensor:
    """Weighted style cost over several layers, a scalar: J_style = sum_l lambda_l J_style^[l].

    ``style_image_output``, ``generated_image_output``: lists of activations, one per style
    layer in the order of ``STYLE_LAYERS``, then the content layer's (ignored here).
    ``STYLE_LAYERS``: (layer name, lambda_l) pairs; the lambdas usually sum to 1.
    """
    a_S = style_image_output[:-1]
    a_G = generated_image_output[:-1]
    if not len(a_S) == len(a_G) == len(STYLE_LAYERS):
        raise ValueError(
            f"compute_style_cost: {len(STYLE_LAYERS)} style layers but {len(a_S)} style and "
            f"{len(a_G)} generated activations (the lists must end with the content layer)."
        )
    J_style = 0.0
    for (_, weight), a_S_l, a_G_l in zip(STYLE_LAYERS, a_S, a_G, strict=True):
        J_style += weight * compute_layer_style_cost(a_S_l, a_G_l)
    return J_style


def total_cost(J_content: tf.Tensor | float, J_style: tf.Tensor | float,
               alpha: float = 10, beta: float = 40) -> tf.Tensor:
    """J(G) = alpha * J_content(C, G) + beta * J_style(S, G).

    ``J_content``, ``J_style``: scalar tensors, or Python / NumPy numbers. Returns a scalar
    ``tf.Tensor`` whatever the inputs, as the course's ``@tf.function`` gives: float32 for
    numbers, the tensors' dtype for tensors.
    """
    return tf.convert_to_tensor(alpha * J_content + beta * J_style, dtype_hint=tf.float32)
