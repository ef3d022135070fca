"""Triplet mining against brute-force enumeration of (a, p, n), hand cases and Keras."""

import itertools

import keras
import numpy as np
import pytest
import tensorflow as tf

from nbutils.siamese import mining
from nbutils.siamese.mining import (
    MINING_STRATEGIES,
    TripletMiningLoss,
    batch_all_triplet_loss,
    batch_hard_triplet_loss,
    negative_mask,
    pairwise_squared_distances,
    positive_mask,
    random_triplet_loss,
    sample_random_triplets,
    semi_hard_triplet_loss,
    triplet_mask,
)
from nbutils.triplet import triplet_hinge, triplet_loss

RTOL, ATOL = 1e-5, 1e-6

# ----------------------------------------------------------------------------- brute force


def loop_sq_distances(e):
    """d[i, j] = sum_k (e[i, k] - e[j, k])^2, one coordinate at a time, in float64."""
    e = np.asarray(e, np.float64)
    b = len(e)
    d = np.zeros((b, b))
    for i in range(b):
        for j in range(b):
            d[i, j] = sum((e[i, k] - e[j, k]) ** 2 for k in range(e.shape[1]))
    return d


def positives_of(labels, a):
    return [p for p in range(len(labels)) if p != a and labels[p] == labels[a]]


def negatives_of(labels, a):
    return [n for n in range(len(labels)) if labels[n] != labels[a]]


def brute_batch_all(labels, e, alpha=0.2):
    d = loop_sq_distances(e)
    total, valid, active = 0.0, 0, 0
    for a in range(len(labels)):
        for p in positives_of(labels, a):
            for n in negatives_of(labels, a):
                term = max(d[a, p] - d[a, n] + alpha, 0.0)
                valid += 1
                active += term > 0
                total += term
    return (total / active if active else 0.0), (active / valid if valid else 0.0)


def brute_batch_hard(labels, e, alpha=0.2):
    d = loop_sq_distances(e)
    terms = []
    for a in range(len(labels)):
        pos, neg = positives_of(labels, a), negatives_of(labels, a)
        if pos and neg:
            terms.append(max(max(d[a, p] for p in pos) - min(d[a, n] for n in neg) + alpha, 0.0))
    return mean_and_active(terms)


def brute_semi_hard(labels, e, alpha=0.2, stats=None):
    """FaceNet semi-hard; ``stats`` (a dict) counts the pairs that used the fallback."""
    d = loop_sq_distances(e)
    terms = []
    for a in range(len(labels)):
        neg = negatives_of(labels, a)
        if not neg:
            continue
        for p in positives_of(labels, a):
            semi = [d[a, n] for n in neg if d[a, p] < d[a, n] < d[a, p] + alpha]
            if not semi and stats is not None:
                stats["fallback"] = stats.get("fallback", 0) + 1
            d_an = min(semi) if semi else min(d[a, n] for n in neg)
            terms.append(max(d[a, p] - d_an + alpha, 0.0))
    return mean_and_active(terms)


def mean_and_active(terms):
    if not terms:
        return 0.0, 0.0
    return sum(terms) / len(terms), sum(t > 0 for t in terms) / len(terms)


BRUTE = {"batch_all": brute_batch_all, "batch_hard": brute_batch_hard,
         "semi_hard": brute_semi_hard}


def assert_matches_brute(strategy, labels, e, alpha=0.2):
    loss, active = MINING_STRATEGIES[strategy](tf.constant(labels), tf.constant(e), alpha=alpha)
    want_loss, want_active = BRUTE[strategy](labels, e, alpha)
    assert loss.shape == () and active.shape == ()
    np.testing.assert_allclose(float(loss), want_loss, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(float(active), want_active, rtol=RTOL, atol=ATOL)
    return want_loss, want_active


def pk_batch(rng, P, K, d, normalise=False):
    """P classes x K examples in shuffled order, with arbitrary label values."""
    labels = np.repeat(rng.choice(1000, size=P, replace=False), K).astype(np.int32)
    e = rng.standard_normal((P * K, d))
    if normalise:
        e /= np.linalg.norm(e, axis=1, keepdims=True)
    order = rng.permutation(P * K)
    return labels[order], e[order].astype(np.float32)


def separated_batch(rng, spread, centres):
    """K=3 examples around each given centre (2-d)."""
    labels = np.repeat(np.arange(len(centres)), 3).astype(np.int32)
    e = np.repeat(np.asarray(centres, np.float64), 3, axis=0) + spread * rng.standard_normal(
        (len(labels), 2))
    return labels, e.astype(np.float32)


# ----------------------------------------------------------------------------- distances, masks


@pytest.mark.parametrize("b, d", [(1, 3), (4, 1), (7, 5), (12, 32)])
def test_pairwise_squared_distances_match_loops(b, d):
    e = np.random.default_rng(b * 10 + d).standard_normal((b, d)).astype(np.float32)
    got = pairwise_squared_distances(tf.constant(e)).numpy()
    np.testing.assert_allclose(got, loop_sq_distances(e), rtol=RTOL, atol=1e-5)
    assert np.all(np.diag(got) == 0.0) and np.all(got >= 0.0)


def test_pairwise_squared_distances_exact_zero_for_duplicates_and_large_norms():
    e = np.full((3, 4), 1e3, np.float32)  # the Gram trick cancels 4e6 - 2 * 4e6 + 4e6
    got = pairwise_squared_distances(e).numpy()
    assert np.all(got >= 0.0) and np.all(np.diag(got) == 0.0)
    np.testing.assert_allclose(got, 0.0, atol=1.0)


def test_masks_match_definitions():
    labels = np.array([3, 1, 3, 2, 1, 3])
    b = len(labels)
    pos, neg, trip = (m(tf.constant(labels)).numpy() for m in
                      (positive_mask, negative_mask, triplet_mask))
    for i, j in itertools.product(range(b), repeat=2):
        assert pos[i, j] == (i != j and labels[i] == labels[j])
        assert neg[i, j] == (labels[i] != labels[j])
    for a, p, n in itertools.product(range(b), repeat=3):
        assert trip[a, p, n] == (a != p and labels[a] == labels[p] and labels[a] != labels[n])


# ----------------------------------------------------------------------------- online mining


@pytest.mark.parametrize("strategy", sorted(MINING_STRATEGIES))
@pytest.mark.parametrize("P, K", [(2, 2), (2, 3), (3, 2), (3, 3), (4, 2), (4, 3)])
@pytest.mark.parametrize("d", [2, 8])
@pytest.mark.parametrize("normalise", [False, True], ids=["raw", "unit"])
def test_strategy_matches_brute_force_on_random_pk_batches(strategy, P, K, d, normalise):
    rng = np.random.default_rng(100 * P + 10 * K + d + 1000 * normalise)
    labels, e = pk_batch(rng, P, K, d, normalise)
    assert_matches_brute(strategy, labels, e)


@pytest.mark.parametrize("strategy", sorted(MINING_STRATEGIES))
@pytest.mark.parametrize("alpha", [0.2, 1.0])
def test_strategy_matches_brute_force_with_some_zero_loss_triplets(strategy, alpha):
    # classes 0 and 1 overlap, class 2 is far away: a mix of active and zero terms
    labels, e = separated_batch(np.random.default_rng(7), 0.5, [(0, 0), (0.3, 0), (6, 0)])
    _, want_active = assert_matches_brute(strategy, labels, e, alpha)
    assert 0.0 < want_active < 1.0


@pytest.mark.parametrize("strategy", sorted(MINING_STRATEGIES))
def test_all_easy_triplets_give_zero_loss_and_zero_active(strategy):
    labels, e = separated_batch(np.random.default_rng(3), 0.01, [(0, 0), (10, 0), (0, 10)])
    loss, active = MINING_STRATEGIES[strategy](labels, e)
    assert float(loss) == 0.0 and float(active) == 0.0
    assert BRUTE[strategy](labels, e) == (0.0, 0.0)


def test_hand_computed_1d_example():
    """Points 0, 0.5 (class 0) and 0.6, 3 (class 1), alpha 0.2; squared distances:
    d(0,.5)=.25  d(0,.6)=.36  d(0,3)=9  d(.5,.6)=.01  d(.5,3)=6.25  d(.6,3)=5.76.
    Semi-hard, per (a, p):  (0, .5): .36 is semi-hard -> .25 - .36 + .2 = .09
    (.5, 0): no semi-hard (.01 hard, 6.25 easy) -> fallback .01 -> .44
    (.6, 3): all negatives hard -> fallback .01 -> 5.95
    (3, .6): all negatives easy (9, 6.25 > 5.96) -> fallback 6.25 -> 0.
    Batch hard gives the same four terms. Batch all: active .09, .44, 5.6, 5.95 of 8."""
    labels = np.array([0, 0, 1, 1])
    e64 = np.array([[0.0], [0.5], [0.6], [3.0]])
    e = e64.astype(np.float32)
    expected = {"semi_hard": (6.48 / 4, 0.75), "batch_hard": (6.48 / 4, 0.75),
                "batch_all": (12.08 / 4, 0.5)}
    for strategy, (want_loss, want_active) in expected.items():
        loss, active = MINING_STRATEGIES[strategy](labels, e)
        np.testing.assert_allclose(float(loss), want_loss, rtol=RTOL)
        np.testing.assert_allclose(float(active), want_active, rtol=RTOL)
        np.testing.assert_allclose(BRUTE[strategy](labels, e64), (want_loss, want_active),
                                   rtol=1e-12)


@pytest.mark.parametrize("seed", range(4))
def test_semi_hard_fallback_matches_brute_force(seed):
    labels, e = separated_batch(np.random.default_rng(seed), 0.6, [(0, 0), (0.5, 0), (2, 1)])
    stats = {}
    want = brute_semi_hard(labels, e, stats=stats)
    assert stats["fallback"] > 0  # some pairs really have no semi-hard negative
    loss, active = semi_hard_triplet_loss(labels, e)
    np.testing.assert_allclose([float(loss), float(active)], want, rtol=RTOL, atol=ATOL)


def test_batch_hard_skips_anchor_without_positive():
    labels = np.array([0, 0, 0, 1, 1, 1, 2])  # class 2 has one example
    e = np.array([[0, 0], [1, 0], [0, 1], [3, 3], [4, 3], [3, 4], [0.2, 0.1]], np.float32)
    loss, active = batch_hard_triplet_loss(labels, e)
    want_loss, want_active = brute_batch_hard(labels, e)
    np.testing.assert_allclose([float(loss), float(active)], [want_loss, want_active],
                               rtol=RTOL, atol=ATOL)
    # counting anchor 6 (d_ap = 0, d_an = 0.05 -> term 0.15) would change both numbers
    d = loop_sq_distances(e)
    lonely_term = max(0.0 - d[6, :6].min() + 0.2, 0.0)
    assert lonely_term > 0
    naive = (want_loss * 6 + lonely_term) / 7
    assert abs(float(loss) - naive) > 1e-3
    for strategy in ("batch_all", "semi_hard"):  # the lonely example is a negative only
        assert_matches_brute(strategy, labels, e)


def test_no_valid_triplet_gives_zeros():
    one_class = np.zeros(4, np.int32)
    e = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    for (strategy, fn), alpha in itertools.product(MINING_STRATEGIES.items(), [0.2, 5.0]):
        assert [float(v) for v in fn(one_class, e, alpha=alpha)] == [0.0, 0.0], strategy


@pytest.mark.parametrize("strategy", sorted(MINING_STRATEGIES))
def test_gradients_match_finite_differences_and_are_finite(strategy):
    rng = np.random.default_rng(11)
    labels, e = pk_batch(rng, 3, 3, 4)
    e = e.astype(np.float64)
    i, j = np.flatnonzero(labels == labels[0])[:2]
    e[j] = e[i]  # a zero anchor-positive distance must not give NaN
    # (same class on purpose: a duplicate across classes ties d(a, p) with d(a, n), where
    # semi-hard mining switches negatives and the loss jumps)
    fn = MINING_STRATEGIES[strategy]
    x = tf.Variable(e)
    with tf.GradientTape() as tape:
        loss, _ = fn(labels, x)
    grad = tape.gradient(loss, x).numpy()
    assert np.all(np.isfinite(grad)) and np.any(grad != 0)
    eps = 1e-6
    for i, k in [(0, 0), (2, 1), (4, 3), (8, 2)]:
        step = np.zeros_like(e)
        step[i, k] = eps
        numeric = (float(fn(labels, e + step)[0]) - float(fn(labels, e - step)[0])) / (2 * eps)
        np.testing.assert_allclose(grad[i, k], numeric, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("strategy", sorted(MINING_STRATEGIES))
def test_strategies_work_in_tf_function_with_unknown_batch_size(strategy):
    fn = tf.function(MINING_STRATEGIES[strategy], input_signature=[
        tf.TensorSpec([None], tf.int32), tf.TensorSpec([None, 4], tf.float32)])
    rng = np.random.default_rng(5)
    for P, K in [(2, 2), (3, 3), (4, 2)]:
        labels, e = pk_batch(rng, P, K, 4)
        got = fn(labels, e)
        np.testing.assert_allclose([float(v) for v in got], BRUTE[strategy](labels, e),
                                   rtol=RTOL, atol=ATOL)
    assert len(fn.get_concrete_function().graph.inputs) == 2


def test_everything_compiles_with_xla():
    """No data-dependent shapes (Keras turns XLA on by itself on a GPU)."""
    labels, e = pk_batch(np.random.default_rng(8), 3, 3, 4)
    for strategy, fn in MINING_STRATEGIES.items():
        got = tf.function(fn, jit_compile=True)(labels, e)
        np.testing.assert_allclose([float(v) for v in got], BRUTE[strategy](labels, e),
                                   rtol=RTOL, atol=ATOL, err_msg=strategy)
    a, p, n = e[:3], e[3:6], e[6:]
    got = tf.function(random_triplet_loss, jit_compile=True)(a, p, n)
    np.testing.assert_allclose([float(v) for v in got],
                               [float(v) for v in random_triplet_loss(a, p, n)], rtol=RTOL)


# ----------------------------------------------------------------------------- random baseline


@pytest.mark.parametrize("m, d", [(1, 2), (5, 3), (16, 8)])
def test_random_triplet_loss_is_course_loss_over_m(m, d):
    rng = np.random.default_rng(m + d)
    a, p, n = (rng.standard_normal((m, d)).astype(np.float32) * 0.5 for _ in range(3))
    loss, active = random_triplet_loss(a, p, n, alpha=0.5)
    np.testing.assert_allclose(float(loss), float(triplet_loss(None, [a, p, n], 0.5)) / m,
                               rtol=RTOL)
    by_hand = np.mean([np.sum((a[i] - p[i]) ** 2) - np.sum((a[i] - n[i]) ** 2) + 0.5 > 0
                       for i in range(m)])
    np.testing.assert_allclose(float(active), by_hand, rtol=RTOL)


def test_random_triplet_loss_hand_case_and_tf_function():
    a = np.zeros((4, 1), np.float32)
    p = np.array([[0.0], [1.0], [0.0], [2.0]], np.float32)
    n = np.array([[1.0], [0.5], [3.0], [1.0]], np.float32)
    # terms: max(0-1+.2,0)=0, 1-.25+.2=.95, max(0-9+.2,0)=0, 4-1+.2=3.2
    fn = tf.function(random_triplet_loss, input_signature=[tf.TensorSpec([None, 1])] * 3)
    for f in (random_triplet_loss, fn):
        loss, active = f(a, p, n)
        np.testing.assert_allclose([float(loss), float(active)], [4.15 / 4, 0.5], rtol=RTOL)


def test_sample_random_triplets_respects_labels_and_seed():
    labels = np.array([5, 5, 7, 7, 7, 9, 9, 5, 9])
    a, p, n = sample_random_triplets(labels, 500, np.random.default_rng(0))
    assert a.shape == p.shape == n.shape == (500,)
    assert np.all(a != p) and np.all(labels[a] == labels[p]) and np.all(labels[a] != labels[n])
    assert set(a) == set(range(len(labels)))  # anchors cover every index
    again = sample_random_triplets(labels, 500, np.random.default_rng(0))
    other = sample_random_triplets(labels, 500, np.random.default_rng(1))
    for x, y in zip((a, p, n), again, strict=True):
        np.testing.assert_array_equal(x, y)
    assert not all(np.array_equal(x, y) for x, y in zip((a, p, n), other, strict=True))


def test_sample_random_triplets_errors():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match=r"classes \[2\]"):
        sample_random_triplets(np.array([0, 0, 1, 1, 2]), 3, rng)
    with pytest.raises(ValueError, match="at least 2 classes"):
        sample_random_triplets(np.array([4, 4, 4]), 3, rng)


# ----------------------------------------------------------------------------- Keras


def keras_data(P=4, K=3, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(P), K).astype(np.int32)
    centres = rng.standard_normal((P, 6))
    x = (centres[labels] + 0.5 * rng.standard_normal((P * K, 6))).astype(np.float32)
    return x, labels


def tiny_encoder():
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((6,)), keras.layers.Dense(8)])


@pytest.mark.parametrize("strategy", sorted(MINING_STRATEGIES))
@pytest.mark.parametrize("jit_compile", [False, True], ids=["graph", "xla"])
def test_keras_evaluate_equals_function_value(strategy, jit_compile):
    x, labels = keras_data()
    model = tiny_encoder()
    model.compile(optimizer="sgd", loss=TripletMiningLoss(strategy, alpha=0.3),
                  jit_compile=jit_compile)
    evaluated = model.evaluate(x, labels, batch_size=len(x), verbose=0)
    want, _ = MINING_STRATEGIES[strategy](labels, model(x), alpha=0.3)
    assert float(want) > 0
    np.testing.assert_allclose(evaluated, float(want), rtol=RTOL)


def test_keras_fit_reduces_batch_hard_loss():
    x, labels = keras_data()
    model = tiny_encoder()
    model.compile(optimizer=keras.optimizers.Adam(0.02), loss=TripletMiningLoss("batch_hard"))
    before = model.evaluate(x, labels, batch_size=len(x), verbose=0)
    history = model.fit(x, labels, batch_size=len(x), epochs=15, shuffle=False, verbose=0)
    after = model.evaluate(x, labels, batch_size=len(x), verbose=0)
    assert len(history.history["loss"]) == 15
    assert after < 0.5 * before


def test_loss_object_accepts_column_labels_and_round_trips_config():
    x, labels = keras_data(seed=1)
    e = tiny_encoder()(x)
    loss_fn = TripletMiningLoss("semi_hard", alpha=0.4)
    want, _ = semi_hard_triplet_loss(labels, e, alpha=0.4)
    np.testing.assert_allclose(float(loss_fn(labels[:, None], e)), float(want), rtol=RTOL)
    # Keras leaves a scalar loss alone; uniform sample weights scale it by their mean
    weighted = loss_fn(labels, e, sample_weight=np.full(len(labels), 2.0, np.float32))
    np.testing.assert_allclose(float(weighted), 2 * float(want), rtol=RTOL)
    clone = TripletMiningLoss.from_config(loss_fn.get_config())
    assert (clone.strategy, clone.alpha, clone.name) == ("semi_hard", 0.4, loss_fn.name)
    restored = keras.losses.deserialize(keras.losses.serialize(loss_fn))
    assert isinstance(restored, TripletMiningLoss) and restored.strategy == "semi_hard"
    np.testing.assert_allclose(float(restored(labels, e)), float(want), rtol=RTOL)


def test_loss_object_rejects_unknown_strategy():
    with pytest.raises(ValueError, match="batch_hard"):
        TripletMiningLoss("hardest")


def test_batch_all_direct_call_matches_brute_in_float64():
    labels, e = pk_batch(np.random.default_rng(9), 3, 3, 5)
    loss, active = batch_all_triplet_loss(labels, e.astype(np.float64), alpha=0.7)
    assert loss.dtype == tf.float64 and active.dtype == tf.float64
    np.testing.assert_allclose([float(loss), float(active)], brute_batch_all(labels, e, 0.7),
                               rtol=1e-10)


@pytest.mark.parametrize("strategy", [*MINING_STRATEGIES, "random"])
def test_every_strategy_takes_its_terms_from_triplet_hinge(strategy, monkeypatch):
    """Doubling nbutils.triplet.triplet_hinge doubles every loss (and keeps which triplets
    are active): the per-triplet term is computed there and nowhere else."""
    labels, e = pk_batch(np.random.default_rng(21), 3, 3, 4)
    a_idx, p_idx, n_idx = sample_random_triplets(labels, 12, np.random.default_rng(5))

    def run():
        if strategy == "random":
            return random_triplet_loss(e[a_idx], e[p_idx], e[n_idx])
        return MINING_STRATEGIES[strategy](labels, e)

    loss, active = run()
    assert float(loss) > 0
    monkeypatch.setattr(mining, "triplet_hinge",
                        lambda *args, **kwargs: 2.0 * triplet_hinge(*args, **kwargs))
    doubled, same_active = run()
    np.testing.assert_allclose(float(doubled), 2 * float(loss), rtol=RTOL)
    assert float(same_active) == float(active)
