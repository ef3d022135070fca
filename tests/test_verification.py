"""Face verification as binary classification: pair features, pairs, the logistic head,
ROC / AUC / EER and distance thresholds, checked against NumPy and hand-made cases."""

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from nbutils.siamese.verification import (  # noqa: E402
    accuracy_at,
    auc,
    build_logistic_head,
    distance_roc,
    equal_error_rate,
    make_pairs,
    pair_features,
    pick_threshold,
    plot_roc,
    roc_curve,
    train_logistic_head,
)


def unit_clusters(n_classes: int, per_class: int, dim: int, noise: float, seed: int):
    """L2-normalised embeddings (with negative components) around one centre per class."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_classes, dim))
    labels = np.repeat(np.arange(n_classes), per_class)
    x = centres[labels] + noise * rng.normal(size=(len(labels), dim))
    return x / np.linalg.norm(x, axis=1, keepdims=True), labels


# --------------------------------------------------------------------------------------
# pair_features
# --------------------------------------------------------------------------------------

def test_pair_features_hand_made_case():
    a, b = np.array([[1.0, 2.0]]), np.array([[3.0, 0.0]])
    np.testing.assert_array_equal(pair_features(a, b, "abs"), [[2.0, 2.0]])
    np.testing.assert_allclose(pair_features(a, b, "chi2"), [[4 / 4, 4 / 2]], rtol=1e-5)


def test_pair_features_match_numpy_and_the_course_formula():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(2, 7, 5))
    abs_features = pair_features(a, b, "abs")
    assert abs_features.dtype == np.float32 and abs_features.shape == (7, 5)
    np.testing.assert_allclose(abs_features, np.abs(a - b), rtol=1e-6)
    np.testing.assert_allclose(pair_features(a, b, "chi2"),
                               (a - b) ** 2 / (np.abs(a) + np.abs(b) + 1e-6), rtol=1e-5)
    # Non-negative features: the course's (f_i - f_j)^2 / (f_i + f_j).
    p, q = rng.uniform(0.1, 2.0, size=(2, 7, 5))
    np.testing.assert_allclose(pair_features(p, q, "chi2"), (p - q) ** 2 / (p + q), rtol=1e-5)


def test_chi2_is_well_defined_for_negative_and_zero_components():
    a = np.array([[-0.5, 0.5, 0.0, -0.3]])
    b = np.array([[0.5, -0.5, 0.0, -0.3]])
    features = pair_features(a, b, "chi2")
    assert np.all(np.isfinite(features)) and np.all(features >= 0)
    np.testing.assert_allclose(features, [[1.0, 1.0, 0.0, 0.0]], atol=1e-5)
    np.testing.assert_array_equal(features, pair_features(b, a, "chi2"))


def test_pair_features_errors():
    with pytest.raises(ValueError, match="abs.*chi2"):
        pair_features(np.zeros((1, 2)), np.zeros((1, 2)), "cosine")
    with pytest.raises(ValueError, match="same shape"):
        pair_features(np.zeros((1, 2)), np.zeros((1, 3)))


# --------------------------------------------------------------------------------------
# make_pairs
# --------------------------------------------------------------------------------------

def test_make_pairs_labels_fraction_and_determinism():
    labels = np.random.default_rng(1).integers(0, 10, size=200)
    i, j, same = make_pairs(labels, 1000, seed=3)
    assert i.shape == j.shape == same.shape == (1000,) and same.dtype == bool
    assert np.all(i != j)
    np.testing.assert_array_equal(same, labels[i] == labels[j])
    assert same.mean() == pytest.approx(0.5, abs=0.01)
    assert make_pairs(labels, 1000, seed=0, positive_fraction=0.2)[2].mean() == pytest.approx(
        0.2, abs=0.01)
    again = make_pairs(labels, 1000, seed=3)
    for x, y in zip((i, j, same), again, strict=True):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(i, make_pairs(labels, 1000, seed=4)[0])


def test_make_pairs_reaches_every_valid_pair_and_no_other():
    labels = np.array(["a", "a", "a", "b", "b", "c", "d", "d", "d", "d"])
    i, j, same = make_pairs(labels, 5000, seed=0)
    drawn = set(zip(i.tolist(), j.tolist(), strict=True))
    n = len(labels)
    every = {(p, q) for p in range(n) for q in range(n) if p != q}
    assert drawn == every  # 90 ordered pairs; "c" appears only in different pairs
    np.testing.assert_array_equal(same, labels[i] == labels[j])


def test_make_pairs_errors():
    with pytest.raises(ValueError, match="two examples"):
        make_pairs(np.arange(5), 10)
    with pytest.raises(ValueError, match="one class"):
        make_pairs(np.zeros(5), 10)
    with pytest.raises(ValueError, match="positive_fraction"):
        make_pairs(np.array([0, 0, 1]), 10, positive_fraction=1.5)


# --------------------------------------------------------------------------------------
# The logistic head
# --------------------------------------------------------------------------------------

def test_logistic_head_is_one_sigmoid_unit_with_bias():
    model = build_logistic_head(6)
    assert model.count_params() == 6 + 1
    layer = model.get_layer("logistic")
    assert layer.units == 1 and layer.use_bias and layer.activation.__name__ == "sigmoid"
    w = np.random.default_rng(0).normal(size=(6, 1)).astype(np.float32)
    layer.set_weights([w, np.array([-0.7], dtype=np.float32)])
    x = np.random.default_rng(1).normal(size=(9, 6)).astype(np.float32)
    kernel, bias = layer.get_weights()
    expected = 1.0 / (1.0 + np.exp(-(x @ kernel + bias)))
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-6)


def test_logistic_head_learns_a_linearly_separable_set_and_repeats_for_a_seed():
    rng = np.random.default_rng(0)
    w_true, b_true = rng.normal(size=5), 0.3
    x = rng.normal(size=(1500, 5))
    margin = x @ w_true + b_true
    x, y = x[np.abs(margin) > 0.3][:400], margin[np.abs(margin) > 0.3][:400] > 0
    model, history = train_logistic_head(x, y, seed=1, verbose=0, validation=(x[:50], y[:50]))
    accuracy = np.mean((model.predict(x, verbose=0)[:, 0] > 0.5) == y)
    assert accuracy > 0.95
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(history.history)
    assert history.history["loss"][-1] < history.history["loss"][0]
    again, _ = train_logistic_head(x, y, seed=1, verbose=0, validation=(x[:50], y[:50]))
    for w1, w2 in zip(model.get_weights(), again.get_weights(), strict=True):
        np.testing.assert_allclose(w1, w2, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", ["abs", "chi2"])
def test_logistic_head_verifies_pairs_of_unit_embeddings(kind):
    x, labels = unit_clusters(n_classes=20, per_class=10, dim=16, noise=0.3, seed=0)
    i, j, same = make_pairs(labels, 1200, seed=0)
    features = pair_features(x[i], x[j], kind)
    model, _ = train_logistic_head(features[:1000], same[:1000], verbose=0)
    held_out = model.predict(features[1000:], verbose=0)[:, 0] > 0.5
    assert np.mean(held_out == same[1000:]) > 0.9


# --------------------------------------------------------------------------------------
# ROC, AUC, EER
# --------------------------------------------------------------------------------------

def brute_force_roc(scores, same):
    """Every distinct score as a threshold (plus +inf), counted one by one."""
    thresholds = np.r_[np.inf, np.sort(np.unique(scores))[::-1]]
    tpr = [np.mean(scores[same] >= t) for t in thresholds]
    fpr = [np.mean(scores[~same] >= t) for t in thresholds]
    return np.array(fpr), np.array(tpr), thresholds


def test_roc_curve_matches_brute_force_with_ties():
    rng = np.random.default_rng(0)
    same = rng.random(300) < 0.4
    scores = np.round(rng.normal(size=300) + same, 1)  # rounding makes many ties
    assert len(np.unique(scores)) < 300
    fpr, tpr, thresholds = roc_curve(scores, same)
    ref_fpr, ref_tpr, ref_thresholds = brute_force_roc(scores, same)
    np.testing.assert_array_equal(thresholds, ref_thresholds)
    np.testing.assert_allclose(fpr, ref_fpr)
    np.testing.assert_allclose(tpr, ref_tpr)
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0, 0, 1, 1)


def test_auc_hand_made_extremes_and_chance():
    assert auc(*roc_curve([0.9, 0.8, 0.7, 0.6], [1, 0, 1, 0])[:2]) == pytest.approx(0.75)
    same = np.array([1, 1, 1, 0, 0], dtype=bool)
    scores = np.array([5.0, 4.0, 3.0, 2.0, 1.0])
    assert auc(*roc_curve(scores, same)[:2]) == pytest.approx(1.0)
    assert auc(*roc_curve(-scores, same)[:2]) == pytest.approx(0.0)
    assert auc(*roc_curve(np.ones(5), same)[:2]) == pytest.approx(0.5)  # all tied
    rng = np.random.default_rng(0)
    random_same = rng.random(20_000) < 0.5
    assert auc(*roc_curve(rng.random(20_000), random_same)[:2]) == pytest.approx(0.5, abs=0.02)


def test_auc_is_the_probability_a_same_pair_outscores_a_different_pair():
    rng = np.random.default_rng(2)
    same = rng.random(400) < 0.5
    scores = np.round(rng.normal(size=400) + 0.8 * same, 1)
    pos, neg = scores[same][:, None], scores[~same][None, :]
    mann_whitney = np.mean(pos > neg) + 0.5 * np.mean(pos == neg)
    assert auc(*roc_curve(scores, same)[:2]) == pytest.approx(mann_whitney, abs=1e-12)


def test_equal_error_rate_hand_made_cases():
    # FPR - FNR hits zero exactly at the point of threshold 0.8.
    assert equal_error_rate(*roc_curve([0.9, 0.8, 0.7, 0.6], [1, 0, 1, 0])) == pytest.approx(
        (0.5, 0.8))
    # Points (1/3, 1/2) at t=4 and (2/3, 1/2) at t=3 bracket the crossing halfway.
    fpr, tpr, thresholds = roc_curve([5, 4, 3, 2, 1], [1, 0, 0, 1, 0])
    assert equal_error_rate(fpr, tpr, thresholds) == pytest.approx((0.5, 3.5))
    # FNR - FPR goes 1/6 -> -1/3 between t=4 and t=3: the crossing is a third of the way,
    # where FNR = 1/2 - (1/3)(1/2) = 1/3 = FPR, at t = 4 - 1/3.
    fpr, tpr, thresholds = roc_curve([5, 4, 3, 2, 1], [1, 0, 1, 0, 0])
    assert equal_error_rate(fpr, tpr, thresholds) == pytest.approx((1 / 3, 11 / 3))
    # A perfect separator: no error at all, at the first threshold that accepts all same.
    assert equal_error_rate(*roc_curve([4, 3, 2, 1], [1, 1, 0, 0])) == pytest.approx((0.0, 3.0))


def test_equal_error_rate_of_two_gaussians():
    # Same ~ N(1, 1), different ~ N(-1, 1): by symmetry EER = Phi(-1) at threshold 0.
    rng = np.random.default_rng(0)
    scores = np.r_[rng.normal(1, 1, 20_000), rng.normal(-1, 1, 20_000)]
    same = np.r_[np.ones(20_000, bool), np.zeros(20_000, bool)]
    eer, threshold = equal_error_rate(*roc_curve(scores, same))
    assert eer == pytest.approx(0.5 * math.erfc(1 / math.sqrt(2)), abs=0.01)
    assert threshold == pytest.approx(0.0, abs=0.05)


def test_roc_errors():
    with pytest.raises(ValueError, match="one class"):
        roc_curve([0.1, 0.2], [1, 1])
    with pytest.raises(ValueError, match="labels"):
        roc_curve([0.1, 0.2], [1, 0, 1])
    with pytest.raises(ValueError, match="finite"):
        roc_curve([0.1, np.nan], [1, 0])


# --------------------------------------------------------------------------------------
# The distance rule
# --------------------------------------------------------------------------------------

def test_distance_roc_thresholds_are_distances_that_reproduce_each_point():
    rng = np.random.default_rng(0)
    same = rng.random(200) < 0.5
    distances = np.round(np.abs(rng.normal(1.0 - 0.4 * same, 0.3)), 2)
    fpr, tpr, thresholds = distance_roc(distances, same)
    ref_fpr, ref_tpr, _ = roc_curve(-distances, same)
    np.testing.assert_allclose(fpr, ref_fpr)
    np.testing.assert_allclose(tpr, ref_tpr)
    assert np.all(thresholds > 0) and np.all(np.diff(thresholds) > 0)
    assert thresholds[0] == distances.min() and thresholds[-1] == np.inf
    for f, t, threshold in zip(fpr, tpr, thresholds, strict=True):
        assert np.mean(distances[same] < threshold) == t
        assert np.mean(distances[~same] < threshold) == f


def test_accuracy_at_uses_a_strict_inequality():
    d, same = np.array([0.1, 0.5]), np.array([True, False])
    assert accuracy_at(d, same, 0.3) == 1.0
    assert accuracy_at(d, same, 0.6) == 0.5
    assert accuracy_at(d, same, 0.1) == 0.5  # 0.1 < 0.1 is false: rejected


def test_pick_threshold_accuracy_hand_made():
    d = np.array([0.1, 0.2, 0.3, 0.5, 0.6])
    same = np.array([True, True, True, False, False])
    threshold = pick_threshold(d, same)
    assert threshold == pytest.approx(0.4)
    assert accuracy_at(d, same, threshold) == 1.0
    # Equally accurate at 0.2 and at 0.6 (3 of 4 right): the smaller, fewer false accepts.
    tied = pick_threshold([0.1, 0.3, 0.5, 0.7], [True, False, True, False])
    assert tied == pytest.approx(0.2)


def test_pick_threshold_accuracy_is_the_best_of_every_threshold():
    rng = np.random.default_rng(5)
    same = rng.random(150) < 0.5
    distances = np.round(np.abs(rng.normal(1.0 - 0.5 * same, 0.3)), 2)
    threshold = pick_threshold(distances, same)
    assert threshold not in set(distances.tolist())
    grid = np.r_[np.unique(distances), np.unique(distances) + 1e-9, 0.0, 10.0]
    best = max(accuracy_at(distances, same, t) for t in grid)
    assert accuracy_at(distances, same, threshold) == best


def test_pick_threshold_far_hand_made():
    d = np.array([0.1, 0.55, 0.9, 0.5, 0.6, 0.7, 0.8])
    same = np.array([True, True, True, False, False, False, False])
    assert pick_threshold(d, same, "far", target_far=0.0) == 0.5
    assert pick_threshold(d, same, "far", target_far=0.25) == 0.6
    assert pick_threshold(d, same, "far", target_far=0.3) == 0.6
    assert pick_threshold(d, same, "far", target_far=0.5) == 0.7
    assert pick_threshold(d, same, "far", target_far=1.0) == np.inf
    far = np.mean(d[~same] < 0.6)
    assert far == 0.25 and np.mean(d[~same] < 0.6 + 1e-9) > 0.25  # the largest such t


def test_pick_threshold_on_dlib_descriptors(dlib_photo_reference):
    names = list(dlib_photo_reference)
    x = np.array([dlib_photo_reference[n]["descriptor"] for n in names])
    person = np.array([n.split("__")[0] for n in names])
    i, j = np.triu_indices(len(names), 1)
    d, same = np.linalg.norm(x[i] - x[j], axis=1), person[i] == person[j]
    threshold = pick_threshold(d, same)
    assert d[same].max() < threshold < d[~same].min()
    assert threshold == pytest.approx((d[same].max() + d[~same].min()) / 2)
    assert accuracy_at(d, same, 0.6) == accuracy_at(d, same, threshold) == 1.0


def test_pick_threshold_errors():
    d, same = [0.1, 0.5], [True, False]
    with pytest.raises(ValueError, match="labels"):
        pick_threshold([0.1, 0.5, 0.7], same)
    with pytest.raises(ValueError, match="one class"):
        pick_threshold(d, [True, True])
    with pytest.raises(ValueError, match="accuracy.*far"):
        pick_threshold(d, same, method="median")
    with pytest.raises(ValueError, match="needs target_far"):
        pick_threshold(d, same, method="far")
    with pytest.raises(ValueError, match="target_far must be in"):
        pick_threshold(d, same, method="far", target_far=1.5)
    with pytest.raises(ValueError, match="only used"):
        pick_threshold(d, same, target_far=0.1)


# --------------------------------------------------------------------------------------
# plot_roc
# --------------------------------------------------------------------------------------

def test_plot_roc_one_line_per_curve_plus_chance_and_auc_labels():
    scores = np.array([0.9, 0.8, 0.7, 0.6])
    same = np.array([1, 0, 1, 0])
    fpr, tpr, thresholds = roc_curve(scores, same)
    curves = {"logistic": (fpr, tpr), "perfect": (np.array([0, 0, 1]), np.array([0, 1, 1]))}
    fig = plot_roc(curves, {"logistic": equal_error_rate(fpr, tpr, thresholds)})
    ax = fig.axes[0]
    lines = ax.get_lines()
    assert len(lines) == len(curves) + 1
    labels = [line.get_label() for line in lines]
    assert labels[0] == "logistic (AUC = 0.750)" and labels[1] == "perfect (AUC = 1.000)"
    np.testing.assert_array_equal(lines[-1].get_xdata(), [0, 1])
    np.testing.assert_array_equal(lines[-1].get_ydata(), [0, 1])
    assert len(ax.collections) == 1  # the EER marker
    np.testing.assert_allclose(ax.collections[0].get_offsets(), [[0.5, 0.5]])
    assert ax.get_xlim() == (0, 1) and ax.get_ylim() == (0, 1)
    plt.close(fig)
