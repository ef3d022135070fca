"""The triplet loss of FaceNet (Schroff et al. 2015), as the course defines it.

A triplet is an anchor A, a positive P (same person as A) and a negative N (someone else).
Training an encoder f with this loss pushes ||f(A) - f(P)||^2 + alpha below
||f(A) - f(N)||^2: the same person ends up closer than anybody else, by a margin alpha.

The per-triplet term, max(d(A, P) - d(A, N) + alpha, 0), is `triplet_hinge`: the loss
here and every mining strategy of `nbutils.siamese.mining` apply that one function.

Written with TensorFlow ops only, so it works eagerly, inside a ``tf.function`` and as the
loss of a compiled Keras model.
"""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf

ACCEPTED_FORMS = (
    "y_pred must be [anchor, positive, negative] (a list or tuple of three tensors, each of "
    "shape (m, d)) or one tensor of shape (m, 3, d) with anchor, positive and negative "
    "stacked on axis 1 (what a Siamese Keras model outputs)"
)


def split_triplet(
    y_pred: Sequence[tf.Tensor] | tf.Tensor,
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Anchor, positive and negative encodings out of either accepted form of ``y_pred``.

    Args:
        y_pred: [anchor, positive, negative], each (m, d), or one (m, 3, d) tensor.

    Returns:
        (anchor, positive, negative), each (m, d), in the dtype they came in.

    Raises:
        ValueError: for any other form (wrong length, rank or size of axis 1).
    """
    if isinstance(y_pred, (list, tuple)):
        if len(y_pred) != 3:
            raise ValueError(f"{ACCEPTED_FORMS}; got a {type(y_pred).__name__} of {len(y_pred)}")
        anchor, positive, negative = (tf.convert_to_tensor(t) for t in y_pred)
        return anchor, positive, negative
    try:
        stacked = tf.convert_to_tensor(y_pred)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{ACCEPTED_FORMS}; got {type(y_pred).__name__}") from err
    shape = stacked.shape
    if shape.rank != 3 or shape[1] not in (3, None):
        raise ValueError(f"{ACCEPTED_FORMS}; got a tensor of shape {shape}")
    return stacked[:, 0], stacked[:, 1], stacked[:, 2]


def triplet_hinge(pos_dist: tf.Tensor, neg_dist: tf.Tensor,
                  alpha: float | tf.Tensor = 0.2) -> tf.Tensor:
    """The per-triplet term of the triplet loss, on precomputed squared distances.

        term = max(pos_dist - neg_dist + alpha, 0)

    Args:
        pos_dist: d(A, P) = ||f(A) - f(P)||^2, any shape (one value per triplet).
        neg_dist: d(A, N) = ||f(A) - f(N)||^2, a shape that broadcasts with ``pos_dist``.
        alpha: the margin, in squared-distance units. A Python number is converted straight
            to the dtype of ``pos_dist`` (a float64 input gets the float64 margin, not a
            float32 one); a tensor is cast to it.

    Returns:
        The broadcast shape of the distances, in the dtype of ``pos_dist``; 0 where the
        negative is already farther than the positive by at least alpha.
    """
    pos_dist = tf.convert_to_tensor(pos_dist)
    margin = tf.cast(tf.convert_to_tensor(alpha, dtype_hint=pos_dist.dtype), pos_dist.dtype)
    return tf.maximum(pos_dist - neg_dist + margin, 0.0)


def triplet_loss(y_true: tf.Tensor | None,
                 y_pred: Sequence[tf.Tensor] | tf.Tensor,
                 alpha: float = 0.2) -> tf.Tensor:
    """FaceNet's triplet loss, summed over the batch.

        J = sum_i max(||f(A_i) - f(P_i)||^2 - ||f(A_i) - f(N_i)||^2 + alpha, 0)

    Squared distances are summed over the LAST axis (the encoding), the hinge
    (`triplet_hinge`) is applied per triplet, and the batch is summed (not averaged), as in
    the course.

    Args:
        y_true: unused; there for the Keras ``loss(y_true, y_pred)`` signature.
        y_pred: [anchor, positive, negative], each (m, d), or one (m, 3, d) tensor.
        alpha: the margin, in the units of squared encoding distance.

    Returns:
        A scalar tensor, in the dtype of the encodings.
    """
    del y_true  # the triplet itself says which pairs should be close
    anchor, positive, negative = split_triplet(y_pred)
    pos_dist = tf.reduce_sum(tf.square(anchor - positive), axis=-1)
    neg_dist = tf.reduce_sum(tf.square(anchor - negative), axis=-1)
    return tf.reduce_sum(triplet_hinge(pos_dist, neg_dist, alpha))
