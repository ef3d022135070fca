"""The course's style-transfer costs against independent NumPy formulas and hand-made cases."""

import numpy as np
import pytest
import tensorflow as tf

from nbutils.style.costs import (
    CONTENT_LAYER,
    STYLE_LAYERS,
    compute_content_cost,
    compute_layer_style_cost,
    compute_style_cost,
    gram_matrix,
    total_cost,
)

SHAPES = [(1, 4, 4, 3), (1, 7, 5, 16), (1, 1, 1, 1), (1, 13, 9, 64), (1, 3, 11, 2)]


def np_content_cost(a_C, a_G):
    _, n_H, n_W, n_C = a_G.shape
    return np.sum((a_C.astype(np.float64) - a_G) ** 2) / (4 * n_H * n_W * n_C)


def np_gram(a):
    """Gram matrix straight from the definition: G[i, j] = sum over positions of a_i * a_j."""
    a = a[0].astype(np.float64)
    return np.einsum("hwi,hwj->ij", a, a)


def np_layer_style_cost(a_S, a_G):
    _, n_H, n_W, n_C = a_G.shape
    return np.sum((np_gram(a_S) - np_gram(a_G)) ** 2) / (4 * n_C**2 * (n_H * n_W) ** 2)


def rand(rng, shape, scale=3.0):
    return (rng.standard_normal(shape) * scale + 1.0).astype(np.float32)


@pytest.mark.parametrize("shape", SHAPES)
def test_content_cost_matches_numpy(shape):
    rng = np.random.default_rng(sum(shape))
    a_C, a_G = rand(rng, shape), rand(rng, shape)
    # Only the last element of each list is the content layer; the first is a decoy.
    decoy = tf.zeros((1, 2, 2, 2))
    J = compute_content_cost([decoy, tf.constant(a_C)], [decoy, tf.constant(a_G)])
    assert J.shape == ()
    np.testing.assert_allclose(float(J), np_content_cost(a_C, a_G), rtol=1e-5)


@pytest.mark.parametrize("shape", SHAPES)
def test_layer_style_cost_matches_numpy(shape):
    rng = np.random.default_rng(10 + sum(shape))
    a_S, a_G = rand(rng, shape), rand(rng, shape)
    J = compute_layer_style_cost(tf.constant(a_S), tf.constant(a_G))
    np.testing.assert_allclose(float(J), np_layer_style_cost(a_S, a_G), rtol=1e-5)


def test_gram_of_small_known_matrix():
    A = tf.constant([[1.0, 2.0, 0.0], [3.0, 4.0, -1.0]])  # (n_C=2, n_H*n_W=3)
    # rows . rows: 1+4+0 = 5, 3+8+0 = 11, 9+16+1 = 26
    np.testing.assert_array_equal(gram_matrix(A).numpy(), [[5.0, 11.0], [11.0, 26.0]])


def test_gram_matches_numpy_on_random_matrix():
    rng = np.random.default_rng(3)
    A = rng.standard_normal((6, 20)).astype(np.float32)
    np.testing.assert_allclose(gram_matrix(tf.constant(A)).numpy(),
                               A.astype(np.float64) @ A.T, rtol=1e-5, atol=1e-5)


def test_cost_of_identical_activations_is_zero():
    a = tf.constant(rand(np.random.default_rng(5), (1, 5, 6, 8)))
    assert float(compute_content_cost([a], [a])) == 0.0
    assert float(compute_layer_style_cost(a, a)) == 0.0


def test_style_cost_ignores_spatial_arrangement_but_content_cost_does_not():
    """A Gram matrix sums over positions: shuffling positions keeps the style cost at zero."""
    a = rand(np.random.default_rng(6), (1, 4, 5, 3))
    shuffled = a.reshape(1, 20, 3)[:, np.random.default_rng(7).permutation(20)].reshape(a.shape)
    assert float(compute_layer_style_cost(tf.constant(a), tf.constant(shuffled))) == pytest.approx(
        0.0, abs=1e-6)
    assert float(compute_content_cost([tf.constant(a)], [tf.constant(shuffled)])) > 1.0


def test_reshape_then_transpose_trap():
    """Reshaping (1, n_H, n_W, n_C) straight to (n_C, n_H*n_W) mixes channels and positions."""
    rng = np.random.default_rng(8)
    a_S, a_G = rand(rng, (1, 4, 3, 5)), rand(rng, (1, 4, 3, 5))

    def wrong_cost(a_S, a_G):
        _, n_H, n_W, n_C = a_G.shape
        GS = gram_matrix(tf.reshape(a_S, [n_C, n_H * n_W]))
        GG = gram_matrix(tf.reshape(a_G, [n_C, n_H * n_W]))
        return tf.reduce_sum((GS - GG) ** 2) / (4 * n_C**2 * (n_H * n_W) ** 2)

    right = float(compute_layer_style_cost(tf.constant(a_S), tf.constant(a_G)))
    wrong = float(wrong_cost(tf.constant(a_S), tf.constant(a_G)))
    np.testing.assert_allclose(right, np_layer_style_cost(a_S, a_G), rtol=1e-5)
    assert abs(wrong - right) > 1e-3 * right


def test_style_cost_is_weighted_sum_over_layers_except_last():
    rng = np.random.default_rng(9)
    shapes = [(1, 8, 8, 4), (1, 4, 4, 8), (1, 2, 2, 16)]
    S = [rand(rng, s) for s in shapes] + [rand(rng, (1, 2, 2, 3))]  # last: content layer
    G = [rand(rng, s) for s in shapes] + [rand(rng, (1, 2, 2, 3))]
    layers = [("a", 0.5), ("b", 0.3), ("c", 0.2)]
    pairs = zip(layers, S[:3], G[:3], strict=True)
    expected = sum(w * np_layer_style_cost(s, g) for (_, w), s, g in pairs)
    J = compute_style_cost([tf.constant(x) for x in S], [tf.constant(x) for x in G], layers)
    np.testing.assert_allclose(float(J), expected, rtol=1e-5)


def test_style_cost_rejects_mismatched_layer_count():
    a = tf.ones((1, 2, 2, 2))
    with pytest.raises(ValueError, match="style layers"):
        compute_style_cost([a, a], [a, a], STYLE_LAYERS)  # 5 layers, 1 activation


def test_total_cost_alpha_and_beta_not_swapped():
    assert float(total_cost(1.0, 0.0)) == 10.0  # alpha = 10 weighs the content cost
    assert float(total_cost(0.0, 1.0)) == 40.0  # beta = 40 weighs the style cost
    assert float(total_cost(2.0, 3.0, alpha=5, beta=7)) == 2 * 5 + 3 * 7


@pytest.mark.parametrize("J_content, J_style, dtype", [
    (0.2, 0.8, tf.float32),                                   # the course's own test
    (np.float64(0.2), np.float64(0.8), tf.float32),
    (np.float32(0.2), np.array(0.8), tf.float32),
    (tf.constant(0.2), tf.constant(0.8), tf.float32),
    (tf.constant(0.2, tf.float64), tf.constant(0.8, tf.float64), tf.float64),
    (np.float64(0.2), tf.constant(0.8), tf.float32),          # mixed: the tensor's dtype
])
def test_total_cost_is_a_tensor_for_any_scalars(J_content, J_style, dtype):
    J = total_cost(J_content, J_style)
    assert isinstance(J, tf.Tensor) and J.shape == () and J.dtype == dtype
    np.testing.assert_allclose(J.numpy(), 10 * 0.2 + 40 * 0.8, rtol=1e-6)
    J = total_cost(J_content, J_style, alpha=1, beta=0.5)
    assert isinstance(J, tf.Tensor)
    np.testing.assert_allclose(J.numpy(), 0.2 + 0.5 * 0.8, rtol=1e-6)


def test_costs_work_on_symbolic_tensors_of_unknown_size():
    rng = np.random.default_rng(11)
    a_S, a_G = rand(rng, (1, 6, 7, 5)), rand(rng, (1, 6, 7, 5))
    spec = tf.TensorSpec([1, None, None, None], tf.float32)

    @tf.function(input_signature=[spec, spec])
    def costs(a, b):
        assert a.shape[1] is None  # really symbolic: sizes known only at run time
        return compute_content_cost([a], [b]), compute_layer_style_cost(a, b)

    J_content, J_style = costs(tf.constant(a_S), tf.constant(a_G))
    np.testing.assert_allclose(float(J_content), np_content_cost(a_S, a_G), rtol=1e-5)
    np.testing.assert_allclose(float(J_style), np_layer_style_cost(a_S, a_G), rtol=1e-5)


def test_course_style_layers():
    assert [name for name, _ in STYLE_LAYERS] == [f"block{i}_conv1" for i in range(1, 6)]
    assert sum(w for _, w in STYLE_LAYERS) == pytest.approx(1.0)


def test_course_content_layer_is_the_default_everywhere():
    import inspect

    from nbutils.extras.fast_style import stylize_fast
    from nbutils.style.costs import CONTENT_LAYER_NAME
    from nbutils.style.optimize import stylize

    assert CONTENT_LAYER == [("block5_conv4", 1)]
    assert CONTENT_LAYER_NAME == "block5_conv4"
    for fn in (stylize, stylize_fast):
        assert inspect.signature(fn).parameters["content_layer"].default == "block5_conv4"
