"""Face verification as binary classification, and how to judge and tune a verifier.

The course's alternative to the triplet loss: a logistic unit decides "same person" (1) or
"different" (0) from per-component features of two embeddings,

    y_hat = sigmoid(sum_k w_k * feature_k(f(x_i), f(x_j)) + b)
    abs:   |f_k(x_i) - f_k(x_j)|        chi2:  (f_k(x_i) - f_k(x_j))^2 / (f_k(x_i) + f_k(x_j))

The other verifier is the distance rule "same when ||f(x_i) - f(x_j)|| < t". Both are
judged by the ROC curve, its AUC and the equal error rate; `pick_threshold` tunes t on
labelled pairs; `plot_roc` draws the curves. Everything except the logistic head and
the plot is plain NumPy.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import keras
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

PAIR_FEATURES = ("abs", "chi2")
THRESHOLD_METHODS = ("accuracy", "far")
CHI2_EPS = 1e-6


# --------------------------------------------------------------------------------------
# Pairs and their features.
# --------------------------------------------------------------------------------------

def pair_features(a: np.ndarray, b: np.ndarray, kind: str = "abs") -> np.ndarray:
    """(n, d) float32 features of (n, d) embedding pairs, symmetric in a and b.

        abs:   |a - b|
        chi2:  (a - b)^2 / (|a| + |b| + eps),  eps = 1e-6

    For non-negative embeddings |a| + |b| is the course's f_k(x_i) + f_k(x_j); the absolute
    values keep chi2 defined for L2-normalised ones, whose components can be negative.

    Raises:
        ValueError: for an unknown kind or a, b of different shapes.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape, got {a.shape} and {b.shape}")
    if kind == "abs":
        features = np.abs(a - b)
    elif kind == "chi2":
        features = (a - b) ** 2 / (np.abs(a) + np.abs(b) + CHI2_EPS)
    else:
        raise ValueError(f"unknown pair feature kind {kind!r}; choose one of {PAIR_FEATURES}")
    return features.astype(np.float32)


def make_pairs(labels: np.ndarray, n_pairs: int, seed: int = 0,
               positive_fraction: float = 0.5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(i, j, same): (n_pairs,) int64 indices into ``labels`` and same == (labels[i] ==
    labels[j]), round(n_pairs * positive_fraction) same pairs and the rest different,
    shuffled, fixed by ``seed``. i != j always; pairs can repeat.

    Raises:
        ValueError: when same pairs are asked for but no class has two examples, when
            different pairs are asked for but there is only one class, or for a bad
            n_pairs or positive_fraction.
    """
    if n_pairs < 0:
        raise ValueError(f"n_pairs must be >= 0, got {n_pairs}")
    if not 0.0 <= positive_fraction <= 1.0:
        raise ValueError(f"positive_fraction must be in [0, 1], got {positive_fraction}")
    _, codes = np.unique(np.asarray(labels).ravel(), return_inverse=True)
    n_pos = int(round(n_pairs * positive_fraction))
    n_neg = n_pairs - n_pos
    counts = np.bincount(codes)
    if n_pos > 0 and not np.any(counts >= 2):
        raise ValueError("no class has two examples, so there is no same-label pair to draw")
    if n_neg > 0 and len(counts) < 2:
        raise ValueError("only one class, so there is no different-label pair to draw")

    rng = np.random.default_rng(seed)
    order = np.argsort(codes, kind="stable")  # examples grouped by class
    start = np.concatenate([[0], np.cumsum(counts)[:-1]])  # where each class begins
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order)) - start[codes[order]]  # position inside its class

    # Same pairs: another member of i's class, skipping i itself.
    i_pos = rng.choice(np.flatnonzero(counts[codes] >= 2), size=n_pos)
    c = codes[i_pos]
    r = rng.integers(0, counts[c] - 1) if n_pos else np.zeros(0, dtype=np.int64)
    j_pos = order[start[c] + r + (r >= rank[i_pos])]

    # Different pairs: a member of the other classes, skipping i's block in `order`.
    i_neg = rng.integers(0, len(codes), size=n_neg)
    c = codes[i_neg]
    r = rng.integers(0, len(codes) - counts[c]) if n_neg else np.zeros(0, dtype=np.int64)
    j_neg = order[r + counts[c] * (r >= start[c])]

    shuffle = rng.permutation(n_pairs)
    i = np.concatenate([i_pos, i_neg]).astype(np.int64)[shuffle]
    j = np.concatenate([j_pos, j_neg]).astype(np.int64)[shuffle]
    return i, j, codes[i] == codes[j]


# --------------------------------------------------------------------------------------
# The logistic-regression head.
# --------------------------------------------------------------------------------------

def build_logistic_head(dim: int) -> keras.Model:
    """One logistic unit over a pair's features: (dim,) float32 -> (1,) probability of "same".

        y_hat = sigmoid(w . features + b),  w (dim,), b scalar: dim + 1 parameters.
    """
    inputs = keras.Input((dim,), name="pair_features")
    outputs = keras.layers.Dense(1, activation="sigmoid", use_bias=True, name="logistic")(inputs)
    return keras.Model(inputs, outputs, name="logistic_head")


def train_logistic_head(features: np.ndarray, same: np.ndarray, epochs: int = 30,
                        learning_rate: float = 0.05, seed: int = 0,
                        validation: tuple[np.ndarray, np.ndarray] | None = None,
                        batch_size: int = 32, verbose: int | str = 1,
                        ) -> tuple[keras.Model, keras.callbacks.History]:
    """(model, history): `build_logistic_head` fitted to (n, d) `pair_features` and (n,)
    bool or 0/1 labels with Adam on J = -mean(y log y_hat + (1 - y) log(1 - y_hat)).

    ``seed`` fixes the initial weights and the shuffling; ``validation`` (features, same)
    adds "val_loss" and "val_accuracy" to the history's "loss" and "accuracy".
    """
    features = np.asarray(features, dtype=np.float32)
    y = _as_labels(same, len(features)).astype(np.float32)
    validation_data = None
    if validation is not None:
        val_x = np.asarray(validation[0], dtype=np.float32)
        validation_data = (val_x, _as_labels(validation[1], len(val_x)).astype(np.float32))
    keras.utils.set_random_seed(seed)
    model = build_logistic_head(features.shape[1])
    model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                  loss="binary_crossentropy", metrics=["accuracy"])
    history = model.fit(features, y, epochs=epochs, batch_size=batch_size, shuffle=True,
                        validation_data=validation_data, verbose=verbose)
    return model, history


# --------------------------------------------------------------------------------------
# ROC curve, AUC, equal error rate.
# --------------------------------------------------------------------------------------

def _as_labels(same: Any, n: int) -> np.ndarray:
    """(n,) bool from bool or 0/1 labels; ValueError for a length mismatch or other values."""
    same = np.asarray(same)
    if same.ndim != 1 or len(same) != n:
        raise ValueError(f"expected {n} labels in a 1-D array, got shape {same.shape}")
    if same.dtype != bool:
        if not np.all((same == 0) | (same == 1)):
            raise ValueError("labels must be bool or 0/1")
        same = same.astype(bool)
    return same


def _check_scored_pairs(values: Any, same: Any, what: str) -> tuple[np.ndarray, np.ndarray]:
    """(n,) float64 values and (n,) bool labels, with at least one pair of each kind."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1 or len(values) == 0:
        raise ValueError(f"{what} must be a non-empty 1-D array, got shape {values.shape}")
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{what} must be finite (no NaN or inf)")
    same = _as_labels(same, len(values))
    if same.all() or not same.any():
        raise ValueError("need both same and different pairs; got only one class of pairs")
    return values, same


def roc_curve(scores: np.ndarray, same: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ROC curve of a score where higher means "same": accept a pair when score >= t.

        TPR(t) = #{same pairs with score >= t} / #{same pairs}        (true accepts)
        FPR(t) = #{different pairs with score >= t} / #{different pairs} (false accepts)

    Returns (fpr, tpr, thresholds), (k + 1,) float64 each for k distinct scores: t is +inf
    (FPR = TPR = 0), then each distinct score descending (ties give one point). Both kinds
    of pair must occur in ``same``.
    """
    scores, same = _check_scored_pairs(scores, same, "scores")
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], same[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]
    tps = np.cumsum(y)[last_of_tie]
    fps = np.cumsum(~y)[last_of_tie]
    fpr = np.r_[0.0, fps / fps[-1]]
    tpr = np.r_[0.0, tps / tps[-1]]
    return fpr, tpr, np.r_[np.inf, s[last_of_tie]]


def auc(fpr: np.ndarray, tpr: np.ndarray) -> float:
    """Area under the ROC curve, by the trapezoid rule:

        AUC = sum_k (fpr[k+1] - fpr[k]) * (tpr[k+1] + tpr[k]) / 2

    1 for a perfect separator, 0.5 for chance, 0 for a perfectly reversed score. It is the
    probability that a random same pair scores above a random different pair (ties half).
    """
    fpr = np.asarray(fpr, dtype=np.float64)
    tpr = np.asarray(tpr, dtype=np.float64)
    if fpr.shape != tpr.shape or fpr.ndim != 1:
        raise ValueError(f"fpr and tpr must be 1-D of one length, got {fpr.shape}, {tpr.shape}")
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))


def equal_error_rate(fpr: np.ndarray, tpr: np.ndarray,
                     thresholds: np.ndarray) -> tuple[float, float]:
    """The error rate where false accepts and false rejects are equally frequent.

        FPR(t) = FNR(t) = 1 - TPR(t)

    Returns (eer, threshold) from a `roc_curve` or `distance_roc`, interpolated linearly
    between the two points bracketing FPR - FNR = 0 (an infinite one: the finite one).
    """
    fpr = np.asarray(fpr, dtype=np.float64)
    fnr = 1.0 - np.asarray(tpr, dtype=np.float64)
    thresholds = np.asarray(thresholds, dtype=np.float64)
    if not fpr.shape == fnr.shape == thresholds.shape or fpr.ndim != 1 or len(fpr) < 2:
        raise ValueError("fpr, tpr and thresholds must be 1-D arrays of one length >= 2")
    gap = fpr - fnr
    if gap[0] > 0 or gap[-1] < 0:
        raise ValueError("FPR - FNR does not cross zero: not a full ROC curve")
    k = int(np.argmax(gap >= 0))  # first point at or past the crossing
    if gap[k] == 0 or k == 0:
        return float(fpr[k]), float(thresholds[k])
    w = -gap[k - 1] / (gap[k] - gap[k - 1])  # in (0, 1]
    eer = fpr[k - 1] + w * (fpr[k] - fpr[k - 1])
    t0, t1 = thresholds[k - 1], thresholds[k]
    if not np.isfinite(t0):
        return float(eer), float(t1)
    if not np.isfinite(t1):
        return float(eer), float(t0)
    return float(eer), float(t0 + w * (t1 - t0))


# --------------------------------------------------------------------------------------
# The plain distance rule: "same when distance < t".
# --------------------------------------------------------------------------------------

def _distinct_distances(distances: np.ndarray, same: np.ndarray,
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sorted distinct distances u (m,) and, for k = 0..m (accept the k smallest values),
    the same and different pairs accepted: two (m + 1,) int arrays."""
    u, which = np.unique(distances, return_inverse=True)
    same_at = np.bincount(which, weights=same, minlength=len(u))
    diff_at = np.bincount(which, weights=~same, minlength=len(u))
    accepted_same = np.r_[0, np.cumsum(same_at)].astype(np.int64)
    accepted_diff = np.r_[0, np.cumsum(diff_at)].astype(np.int64)
    return u, accepted_same, accepted_diff


def _cut_points(u: np.ndarray) -> np.ndarray:
    """(m + 1,) thresholds t_k such that "d < t_k" accepts exactly the k smallest of the
    m distinct sorted distances u: midpoints between neighbours, and half a neighbouring
    gap beyond each end (half of max(|u_0|, 1) when there is only one distance)."""
    if len(u) == 1:
        half = 0.5 * max(abs(u[0]), 1.0)
        return np.array([u[0] - half, u[0] + half])
    mids = (u[:-1] + u[1:]) / 2
    return np.r_[u[0] - (u[1] - u[0]) / 2, mids, u[-1] + (u[-1] - u[-2]) / 2]


def distance_roc(distances: np.ndarray,
                 same: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fpr, tpr, thresholds) of the rule "same when distance < t", (m + 1,) float64 each
    for m distinct distances. The thresholds are increasing DISTANCES: the smallest, the
    midpoints, then +inf; "distance < thresholds[k]" reproduces point k exactly."""
    distances, same = _check_scored_pairs(distances, same, "distances")
    fpr, tpr, _ = roc_curve(-distances, same)
    u = np.unique(distances)
    thresholds = np.r_[u[0], (u[:-1] + u[1:]) / 2, np.inf]
    return fpr, tpr, thresholds


def accuracy_at(distances: np.ndarray, same: np.ndarray, threshold: float) -> float:
    """mean((distance < threshold) == same): the share of pairs the rule gets right."""
    distances = np.asarray(distances, dtype=np.float64)
    same = _as_labels(same, len(distances))
    return float(np.mean((distances < threshold) == same))


def pick_threshold(distances: np.ndarray, same: np.ndarray, method: str = "accuracy",
                   target_far: float | None = None) -> float:
    """A distance threshold for "same when distance < threshold", tuned on labelled pairs.

    - "accuracy": the most accurate candidate, the smallest on a tie; candidates are the
      midpoints between consecutive distinct distances, plus half a gap beyond each end.
    - "far": the largest threshold whose FAR(t) = #{different pairs with distance < t} /
      #{different pairs} is at most ``target_far`` (required, only here): a different
      pair's distance, or +inf when every different pair may be accepted.

    dlib's own 0.6 for face descriptors is a threshold of this kind (tuned on LFW).

    Raises:
        ValueError: for a length mismatch, non-finite distances, only one class of pairs,
            an unknown method, or a missing or out-of-range target_far.
    """
    if method not in THRESHOLD_METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {THRESHOLD_METHODS}")
    if method == "far":
        if target_far is None:
            raise ValueError("method='far' needs target_far, the false-accept rate allowed")
        if not 0.0 <= target_far <= 1.0:
            raise ValueError(f"target_far must be in [0, 1], got {target_far}")
    elif target_far is not None:
        raise ValueError("target_far is only used with method='far'")
    distances, same = _check_scored_pairs(distances, same, "distances")

    if method == "far":
        different = np.sort(distances[~same])
        allowed = int(np.floor(target_far * len(different) + 1e-9))  # false accepts allowed
        return float(different[allowed]) if allowed < len(different) else float("inf")

    u, accepted_same, accepted_diff = _distinct_distances(distances, same)
    correct = accepted_same + (len(same) - same.sum() - accepted_diff)
    best = int(np.argmax(correct))  # the first maximum: the smallest threshold
    return float(_cut_points(u)[best])


def plot_roc(curves: Mapping[str, tuple[np.ndarray, np.ndarray]],
             eer_points: Mapping[str, tuple[float, float]] | None = None) -> Figure:
    """ROC curves of verifiers: true-accept rate (TPR) against false-accept rate (FPR).

    Args:
        curves: ``{name: (fpr, tpr)}``, e.g. from `roc_curve`;
            each legend label carries the curve's AUC (area under it, 1 is perfect).
        eer_points: optional ``{name: (eer, threshold)}`` as `equal_error_rate` returns;
            each is marked where FPR = FNR, at (eer, 1 - eer).
    """
    fig, ax = plt.subplots(figsize=(4.8, 4.8))
    for name, (fpr, tpr) in curves.items():
        ax.plot(fpr, tpr, label=f"{name} (AUC = {auc(fpr, tpr):.3f})")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="chance")
    for name, (eer, threshold) in (eer_points or {}).items():
        ax.scatter([eer], [1 - eer], s=30, zorder=3, edgecolors="black", linewidths=0.5,
                   label=f"{name}: EER = {eer:.3f} at t = {threshold:.3g}")
    ax.set(xlim=(0, 1), ylim=(0, 1), aspect="equal", xlabel="false-accept rate (FPR)",
           ylabel="true-accept rate (TPR)", title="ROC")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return fig
