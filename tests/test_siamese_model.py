"""The Siamese encoder, P x K batches, training, and N-way one-shot evaluation."""

import numpy as np
import pytest

from nbutils.extras.glyphs import make_glyph_dataset
from nbutils.siamese.evaluate import one_shot_accuracy
from nbutils.siamese.model import (
    build_encoder,
    embed,
    pk_batches,
    random_triplet_batches,
    train_encoder,
)


def brute_force_one_shot(x, labels, classes, n_way, episodes, seed):
    """The same episodes as one_shot_accuracy draws, scored with explicit loops."""
    rng = np.random.default_rng(seed)
    members = [np.flatnonzero(labels == c) for c in classes]
    correct = 0
    for _ in range(episodes):
        picked = rng.choice(len(classes), n_way, replace=False)
        pairs = [rng.choice(members[c], 2, replace=False) for c in picked]
        query = x[pairs[0][1]]
        best, best_k = np.inf, -1
        for k, pair in enumerate(pairs):
            d = sum((a - b) ** 2 for a, b in zip(x[pair[0]], query, strict=True))
            if d < best:
                best, best_k = d, k
        correct += best_k == 0
    return correct / episodes


def test_one_shot_accuracy_matches_brute_force():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(12), 3)
    x = rng.normal(size=(36, 5)) + labels[:, None] * 0.3  # weakly separated classes
    classes = np.arange(2, 12)
    for n_way in (2, 5):
        assert one_shot_accuracy(x, labels, classes, n_way, 300, seed=4) == \
            brute_force_one_shot(x, labels, classes, n_way, 300, seed=4)


def test_one_shot_accuracy_extremes():
    labels = np.repeat(np.arange(10), 2)
    perfect = np.eye(10)[labels] * 10  # each class its own point: always right
    assert one_shot_accuracy(perfect, labels, np.arange(10), 5, 200) == 1.0
    many = np.repeat(np.arange(10), 60)
    noise = np.random.default_rng(1).normal(size=(600, 8))  # no information: ~ 1/N
    assert one_shot_accuracy(noise, many, np.arange(10), 5, 2000) == pytest.approx(0.2, abs=0.03)
    with pytest.raises(ValueError, match="5-way"):
        one_shot_accuracy(perfect, labels, np.arange(3), 5)
    with pytest.raises(ValueError, match="at least 2"):
        one_shot_accuracy(perfect[::2], labels[::2], np.arange(10), 5)


def test_encoder_outputs_unit_vectors():
    enc = build_encoder((28, 28, 1), embedding_dim=16)
    out = embed(enc, np.random.default_rng(0).random((5, 28, 28, 1)).astype(np.float32))
    assert out.shape == (5, 16)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-5)


def test_pk_batches_draw_p_classes_k_each_from_allowed_classes_only():
    labels = np.repeat(np.arange(10), 5)
    images = np.zeros((50, 4, 4, 1), np.float32) + labels[:, None, None, None]
    allowed = np.array([1, 3, 4, 7, 9])
    for x, y in pk_batches(images, labels, allowed, P=3, K=4, seed=0).take(20):
        y = y.numpy()
        counts = np.unique(y, return_counts=True)
        assert len(counts[0]) == 3 and set(counts[1]) == {4}
        assert set(y) <= set(allowed)
        np.testing.assert_array_equal(x.numpy()[:, 0, 0, 0], y)  # images match labels
    with pytest.raises(ValueError, match="P=6"):
        pk_batches(images, labels, allowed, P=6, K=2)


def test_random_triplets_respect_classes():
    labels = np.repeat(np.arange(6), 3)
    images = np.zeros((18, 2, 2, 1), np.float32) + labels[:, None, None, None]
    (a, p, n), _ = next(iter(random_triplet_batches(images, labels, np.array([0, 2, 5]), 16)))
    a, p, n = (t.numpy()[:, 0, 0, 0] for t in (a, p, n))
    assert set(a) | set(n) <= {0, 2, 5}
    np.testing.assert_array_equal(a, p)
    assert np.all(a != n)


@pytest.mark.parametrize("strategy", ["batch_hard", "random"])
def test_short_training_beats_raw_pixels_on_unseen_classes(strategy):
    data = make_glyph_dataset(per_class=8, seed=0, max_classes=60)
    encoder, history = train_encoder(data.images, data.labels, data.train_classes, strategy,
                                     steps=120, P=8, K=4, log_every=40, verbose=0)
    assert history["step"] == [40, 80, 120] and len(history["active_fraction"]) == 3
    assert history["loss"][-1] < history["loss"][0]
    raw = data.images.reshape(len(data.images), -1)
    kwargs = dict(labels=data.labels, classes=data.test_classes, n_way=5, episodes=500)
    learned = one_shot_accuracy(embed(encoder, data.images), **kwargs)
    assert learned > one_shot_accuracy(raw, **kwargs) + 0.1


def test_unknown_strategy():
    with pytest.raises(ValueError, match="strategy must be one of"):
        train_encoder(np.zeros((4, 28, 28, 1)), np.array([0, 0, 1, 1]), np.array([0, 1]),
                      strategy="hardest", steps=1)


def test_pca_projection_against_covariance_eigenvectors():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(200, 5)) @ np.diag([5.0, 2.0, 0.5, 0.2, 0.1]) + 7.0
    from nbutils.siamese.evaluate import pca_project

    proj = pca_project(x, 2)
    values, vectors = np.linalg.eigh(np.cov(x.T))
    top = vectors[:, ::-1][:, :2]  # eigenvectors of the two largest eigenvalues
    expected = (x - x.mean(0)) @ top
    # equal up to the sign of each axis
    for k in range(2):
        assert np.allclose(proj[:, k], expected[:, k], atol=1e-8) or \
            np.allclose(proj[:, k], -expected[:, k], atol=1e-8)
    np.testing.assert_allclose(proj.var(0, ddof=1), values[::-1][:2], rtol=1e-8)
