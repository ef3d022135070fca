"""Triplet mining: which (anchor, positive, negative) triplets a batch trains on.

Every strategy uses the course's per-triplet term, computed by one function,
``nbutils.triplet.triplet_hinge`` (the one ``nbutils.triplet.triplet_loss`` sums),

    term(a, p, n) = max(d(a, p) - d(a, n) + alpha, 0),    d(i, j) = ||e_i - e_j||^2,

with SQUARED Euclidean distances and margin ``alpha`` (default 0.2, squared-distance
units). The online strategies take a P x K batch, labels (B,) and embeddings (B, d), and
mine inside it; the offline baseline (``random_triplet_loss``) takes triplets sampled
beforehand. Each returns ``(loss, active_fraction)``, scalars in the embeddings' dtype: the
share of chosen triplets whose term is still positive. TensorFlow ops only: eager, inside a
``tf.function`` (batch size may be unknown), or as a Keras loss (``TripletMiningLoss``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from nbutils.triplet import triplet_hinge

MiningFn = Callable[..., tuple[tf.Tensor, tf.Tensor]]

# ----------------------------------------------------------------------------- distances, masks


def pairwise_squared_distances(embeddings: tf.Tensor) -> tf.Tensor:
    """(B, B) squared distances of (B, d) embeddings by the Gram trick,
    ||e_i||^2 - 2 e_i . e_j + ||e_j||^2: clipped at 0, exactly 0 on the diagonal, and with no
    square root, so the gradient is finite everywhere."""
    embeddings = tf.convert_to_tensor(embeddings)
    gram = tf.matmul(embeddings, embeddings, transpose_b=True)
    sq_norms = tf.linalg.diag_part(gram)
    dist = sq_norms[:, None] - 2.0 * gram + sq_norms[None, :]
    dist = tf.maximum(dist, 0.0)
    off_diagonal = 1.0 - tf.eye(tf.shape(embeddings)[0], dtype=dist.dtype)
    return dist * off_diagonal


def _flat_labels(labels: tf.Tensor) -> tf.Tensor:
    return tf.reshape(tf.convert_to_tensor(labels), [-1])


def positive_mask(labels: tf.Tensor) -> tf.Tensor:
    """(B, B) bool: labels[i] == labels[j] and i != j (labels integer or integer-valued)."""
    labels = _flat_labels(labels)
    same = tf.equal(labels[:, None], labels[None, :])
    not_self = tf.logical_not(tf.eye(tf.shape(labels)[0], dtype=tf.bool))
    return tf.logical_and(same, not_self)


def negative_mask(labels: tf.Tensor) -> tf.Tensor:
    """(B, B) bool: labels[i] != labels[j] (so i != j too)."""
    labels = _flat_labels(labels)
    return tf.not_equal(labels[:, None], labels[None, :])


def triplet_mask(labels: tf.Tensor) -> tf.Tensor:
    """(B, B, B) bool, the valid triplets [a, p, n]: a != p, same label a/p, other label n."""
    return tf.logical_and(positive_mask(labels)[:, :, None], negative_mask(labels)[:, None, :])


# ----------------------------------------------------------------------------- helpers


def _margin(alpha: float | tf.Tensor, dtype: tf.DType) -> tf.Tensor:
    """alpha as a tensor of ``dtype``, for the semi-hard window (a Python float goes
    straight to float64 if asked, not through float32 as ``tf.cast(alpha, dtype)`` would)."""
    return tf.cast(tf.convert_to_tensor(alpha, dtype_hint=dtype), dtype)


def _masked_mean_and_active_fraction(terms: tf.Tensor,
                                     mask: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """(mean of ``terms`` where ``mask``, share of those > 0); both 0 when ``mask`` is empty.

    Masked sums rather than ``tf.boolean_mask``: static shapes, so XLA can compile it."""
    mask = tf.cast(mask, terms.dtype)
    count = tf.reduce_sum(mask)
    total = tf.reduce_sum(terms * mask)
    active = tf.reduce_sum(tf.cast(terms > 0.0, terms.dtype) * mask)
    return tf.math.divide_no_nan(total, count), tf.math.divide_no_nan(active, count)


def _masked_min(values: tf.Tensor, mask: tf.Tensor, axis: int) -> tf.Tensor:
    """Minimum of ``values`` over ``axis`` where ``mask`` holds; rows with no True get
    max(values) + 1 (callers mask those rows out). The filler carries no gradient."""
    filler = tf.stop_gradient(tf.reduce_max(values) + 1.0)
    return tf.reduce_min(tf.where(mask, values, filler), axis=axis)


def _masked_max(values: tf.Tensor, mask: tf.Tensor, axis: int) -> tf.Tensor:
    """Maximum of the (non-negative) ``values`` over ``axis`` where ``mask`` holds; 0 for
    rows with no True (callers mask those rows out)."""
    return tf.reduce_max(tf.where(mask, values, tf.zeros_like(values)), axis=axis)


# ----------------------------------------------------------------------------- online mining


def batch_all_triplet_loss(labels: tf.Tensor, embeddings: tf.Tensor,
                           alpha: float = 0.2) -> tuple[tf.Tensor, tf.Tensor]:
    """'Batch all' (Hermans, Beyer & Leibe 2017): every valid triplet of the batch.

        term(a, p, n) = max(d(a, p) - d(a, n) + alpha, 0)   for every valid (a, p, n)
        loss = sum(term) / #active,    active_fraction = #active / #valid

    Averaging over the active triplets (term > 0; Hermans et al.'s 'BA != 0') keeps the loss
    from shrinking towards 0 as easy triplets pile up. Both 0 when none is active.
    """
    dist = pairwise_squared_distances(embeddings)
    terms = triplet_hinge(dist[:, :, None], dist[:, None, :], alpha)  # [a, p, n]
    valid = triplet_mask(labels)
    terms = tf.where(valid, terms, tf.zeros_like(terms))
    num_valid = tf.reduce_sum(tf.cast(valid, terms.dtype))
    num_active = tf.reduce_sum(tf.cast(terms > 0.0, terms.dtype))
    loss = tf.math.divide_no_nan(tf.reduce_sum(terms), num_active)
    return loss, tf.math.divide_no_nan(num_active, num_valid)


def batch_hard_triplet_loss(labels: tf.Tensor, embeddings: tf.Tensor,
                            alpha: float = 0.2) -> tuple[tf.Tensor, tf.Tensor]:
    """'Batch hard' (Hermans et al. 2017): per anchor, its hardest positive and negative.

        d_ap(a) = max_{p: label p = label a, p != a} d(a, p)
        d_an(a) = min_{n: label n != label a} d(a, n)
        loss = mean_a max(d_ap(a) - d_an(a) + alpha, 0)

    over the anchors with a positive and a negative in the batch; active_fraction is the
    share of them with a positive term. Both 0 when no anchor qualifies.
    """
    dist = pairwise_squared_distances(embeddings)
    pos, neg = positive_mask(labels), negative_mask(labels)
    hardest_pos = _masked_max(dist, pos, axis=1)
    hardest_neg = _masked_min(dist, neg, axis=1)
    usable = tf.logical_and(tf.reduce_any(pos, axis=1), tf.reduce_any(neg, axis=1))
    terms = triplet_hinge(hardest_pos, hardest_neg, alpha)
    return _masked_mean_and_active_fraction(terms, usable)


def semi_hard_triplet_loss(labels: tf.Tensor, embeddings: tf.Tensor,
                           alpha: float = 0.2) -> tuple[tf.Tensor, tf.Tensor]:
    """Semi-hard mining (FaceNet, Schroff, Kalenichenko & Philbin 2015).

    For every valid pair (a, p) (same label, a != p, and a has some negative), the
    negative is the closest semi-hard one:

        d_an(a, p) = min { d(a, n) : label n != label a,  d(a, p) < d(a, n) < d(a, p) + alpha }

    Without one, the anchor's hardest negative min_n d(a, n) is used (our choice), so the
    loss jumps where a pair's only semi-hard negative leaves the margin while a hard one
    exists; gradients are exact elsewhere.

        loss = mean_{(a, p)} max(d(a, p) - d_an(a, p) + alpha, 0)

    active_fraction is the share of (a, p) pairs with a positive term; both 0 without pairs.
    """
    dist = pairwise_squared_distances(embeddings)
    pos, neg = positive_mask(labels), negative_mask(labels)
    d_ap, d_an = dist[:, :, None], dist[:, None, :]  # [a, p, n]
    alpha_t = _margin(alpha, dist.dtype)
    semi_hard = neg[:, None, :] & (d_an > d_ap) & (d_an < d_ap + alpha_t)
    closest_semi_hard = _masked_min(tf.broadcast_to(d_an, tf.shape(semi_hard)), semi_hard,
                                    axis=2)
    hardest = _masked_min(dist, neg, axis=1)[:, None]
    chosen = tf.where(tf.reduce_any(semi_hard, axis=2), closest_semi_hard, hardest)
    pairs = tf.logical_and(pos, tf.reduce_any(neg, axis=1, keepdims=True))
    return _masked_mean_and_active_fraction(triplet_hinge(dist, chosen, alpha), pairs)


MINING_STRATEGIES: dict[str, MiningFn] = {
    "batch_all": batch_all_triplet_loss,
    "batch_hard": batch_hard_triplet_loss,
    "semi_hard": semi_hard_triplet_loss,
}


# ----------------------------------------------------------------------------- offline, random


def random_triplet_loss(anchor: tf.Tensor, positive: tf.Tensor, negative: tf.Tensor,
                        alpha: float = 0.2) -> tuple[tf.Tensor, tf.Tensor]:
    """The course's triplet loss on m triplets sampled offline, averaged instead of summed.

        loss = triplet_loss([A, P, N], alpha) / m
        active_fraction = #{i : term_i > 0} / m

    with term_i = ``triplet_hinge`` of d(A_i, P_i), d(A_i, N_i) for (m, d) tensors; both 0
    when m == 0.
    """
    anchor, positive, negative = (tf.convert_to_tensor(t) for t in (anchor, positive, negative))
    m = tf.cast(tf.shape(anchor)[0], anchor.dtype)
    terms = triplet_hinge(tf.reduce_sum(tf.square(anchor - positive), axis=-1),
                          tf.reduce_sum(tf.square(anchor - negative), axis=-1), alpha)
    active = tf.reduce_sum(tf.cast(terms > 0.0, anchor.dtype))
    return tf.math.divide_no_nan(tf.reduce_sum(terms), m), tf.math.divide_no_nan(active, m)


def sample_random_triplets(labels: np.ndarray, n: int,
                           rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(a_idx, p_idx, n_idx), three (n,) int64 arrays of random triplets of indices into
    ``labels``: anchors uniform, positives uniform among the other indices of the anchor's
    label, negatives uniform among the other labels'.

    Raises:
        ValueError: when a class has a single example (no positive for it), when there are
            fewer than two classes (no negative), or when n < 0.
    """
    labels = np.asarray(labels).reshape(-1)
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    classes, counts = np.unique(labels, return_counts=True)
    if len(classes) < 2:
        raise ValueError(f"need at least 2 classes for negatives, got {len(classes)}")
    if np.any(counts < 2):
        lonely = classes[counts < 2].tolist()
        raise ValueError(f"every class needs >= 2 examples for a positive; classes {lonely} "
                         "have only 1")
    members = {c: np.flatnonzero(labels == c) for c in classes.tolist()}
    a_idx = rng.integers(0, len(labels), size=n)
    p_idx = np.empty(n, np.int64)
    n_idx = np.empty(n, np.int64)
    for i, a in enumerate(a_idx):
        same = members[labels[a].item()]
        p_idx[i] = rng.choice(same[same != a])
        n_idx[i] = rng.choice(np.flatnonzero(labels != labels[a]))
    return a_idx.astype(np.int64), p_idx, n_idx


# ----------------------------------------------------------------------------- Keras


@keras.saving.register_keras_serializable(package="nbutils")
class TripletMiningLoss(keras.losses.Loss):
    """An online mining strategy as a Keras loss: ``y_true`` = labels, ``y_pred`` = embeddings.

        model.compile(optimizer="adam", loss=TripletMiningLoss("batch_hard"))
        model.fit(x, labels, batch_size=P * K, shuffle=False)   # batches must be P x K

    ``call`` returns the strategy's scalar loss (not the active fraction). Keras 3 passes a
    0-d loss through every reduction unchanged, so ``model.evaluate`` on one batch equals the
    function's value; per-sample weights multiply it by their mean. Keras casts ``y_true`` to
    float32 first: labels must be integers with |label| < 2**24; (B, 1) is flattened.
    ``strategy`` is a key of ``MINING_STRATEGIES``.
    """

    def __init__(self, strategy: str = "batch_hard", alpha: float = 0.2, **kwargs: Any):
        if strategy not in MINING_STRATEGIES:
            raise ValueError(f"strategy must be one of {tuple(MINING_STRATEGIES)}, "
                             f"not {strategy!r}")
        kwargs.setdefault("name", f"triplet_{strategy}")
        super().__init__(**kwargs)
        self.strategy = strategy
        self.alpha = float(alpha)

    def call(self, y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
        """Labels (B,) or (B, 1) and embeddings (B, d) -> the scalar mined loss."""
        loss, _ = MINING_STRATEGIES[self.strategy](_flat_labels(y_true), y_pred,
                                                   alpha=self.alpha)
        return loss

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "strategy": self.strategy, "alpha": self.alpha}
