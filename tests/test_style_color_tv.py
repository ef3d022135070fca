"""Total variation and colour preservation vs NumPy loops, hand cases and the JPEG constants."""

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from nbutils.extras.color import (
    PRESERVE_COLOR,
    describe,
    luminance_transfer,
    match_color,
    rgb_to_ycbcr,
    ycbcr_to_rgb,
)
from nbutils.style.regularizers import total_variation_cost

# ----------------------------------------------------------------------------- total variation


def np_tv(image):
    """The definition, one pixel at a time: squared steps down and right, over H * W * C."""
    x = np.asarray(image, dtype=np.float64).reshape(image.shape[-3:])
    H, W, C = x.shape
    total = 0.0
    for i in range(H):
        for j in range(W):
            if i + 1 < H:
                total += np.sum((x[i + 1, j] - x[i, j]) ** 2)
            if j + 1 < W:
                total += np.sum((x[i, j + 1] - x[i, j]) ** 2)
    return total / (H * W * C)


@pytest.mark.parametrize("shape", [(1, 5, 7, 3), (1, 1, 1, 3), (1, 1, 6, 3), (1, 9, 2, 3),
                                   (1, 16, 16, 3)])
def test_tv_matches_numpy_loop(shape):
    rng = np.random.default_rng(sum(shape))
    image = rng.random(shape).astype(np.float32)
    got = float(total_variation_cost(tf.constant(image)))
    np.testing.assert_allclose(got, np_tv(image), rtol=1e-5, atol=1e-7)


def test_tv_unbatched_image_gives_the_same_value():
    image = np.random.default_rng(1).random((6, 4, 3)).astype(np.float32)
    np.testing.assert_allclose(float(total_variation_cost(image)),
                               float(total_variation_cost(image[None])), rtol=1e-6)
    np.testing.assert_allclose(float(total_variation_cost(image)), np_tv(image), rtol=1e-5)


def test_tv_hand_cases():
    # Checkerboard [[0, 1], [1, 0]] in the red channel only: steps down 1 + 1, right 1 + 1,
    # so 4 over 2 * 2 * 3 = 12 values.
    checker = np.zeros((1, 2, 2, 3), np.float32)
    checker[0, :, :, 0] = [[0, 1], [1, 0]]
    np.testing.assert_allclose(float(total_variation_cost(checker)), 4 / 12, rtol=1e-6)
    # Top row 0, bottom row 1, in all three channels: down steps 2 per channel, right 0.
    stripes = np.zeros((1, 2, 2, 3), np.float32)
    stripes[0, 1] = 1.0
    np.testing.assert_allclose(float(total_variation_cost(stripes)), 6 / 12, rtol=1e-6)
    # The same stripes turned sideways cost the same (both directions count equally).
    np.testing.assert_allclose(float(total_variation_cost(np.swapaxes(stripes, 1, 2))),
                               6 / 12, rtol=1e-6)


def test_tv_of_constant_image_is_zero():
    image = tf.fill([1, 8, 5, 3], 0.37)
    assert float(total_variation_cost(image)) == 0.0


def test_tv_gradient_is_finite_and_matches_finite_differences():
    rng = np.random.default_rng(7)
    image = tf.Variable(rng.random((1, 4, 5, 3)))  # float64 for finite differences
    with tf.GradientTape() as tape:
        cost = total_variation_cost(image)
    grad = tape.gradient(cost, image).numpy()
    assert np.all(np.isfinite(grad)) and np.any(grad != 0)
    x, h = image.numpy(), 1e-6
    for index in [(0, 0, 0, 0), (0, 2, 3, 1), (0, 3, 4, 2), (0, 1, 0, 2)]:
        plus, minus = x.copy(), x.copy()
        plus[index] += h
        minus[index] -= h
        numeric = (np_tv(plus) - np_tv(minus)) / (2 * h)
        np.testing.assert_allclose(grad[index], numeric, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("spec", [tf.TensorSpec([1, None, None, 3], tf.float32),
                                  tf.TensorSpec([None, None, 3], tf.float32)])
def test_tv_in_tf_function_with_unknown_sizes(spec):
    tv = tf.function(total_variation_cost, input_signature=[spec])
    rng = np.random.default_rng(3)
    for height, width in [(3, 4), (7, 2), (10, 10)]:
        shape = (1, height, width, 3) if spec.shape.rank == 4 else (height, width, 3)
        image = rng.random(shape).astype(np.float32)
        np.testing.assert_allclose(float(tv(image)), np_tv(image), rtol=1e-5)


# ----------------------------------------------------------------------------- YCbCr


def test_ycbcr_round_trip():
    rng = np.random.default_rng(0)
    for dtype in (np.float64, np.float32):
        rgb = rng.random((5, 6, 3)).astype(dtype)
        ycc = rgb_to_ycbcr(rgb)
        assert ycc.dtype == dtype and ycc.shape == rgb.shape
        np.testing.assert_allclose(ycbcr_to_rgb(ycc), rgb, atol=1e-6)
        np.testing.assert_allclose(rgb_to_ycbcr(ycbcr_to_rgb(ycc)), ycc, atol=1e-6)


# The JPEG (JFIF) full-range table, as published to six decimals.
KNOWN = {
    (1.0, 1.0, 1.0): (1.0, 0.5, 0.5),
    (0.0, 0.0, 0.0): (0.0, 0.5, 0.5),
    (1.0, 0.0, 0.0): (0.299, 0.5 - 0.168736, 1.0),
    (0.0, 1.0, 0.0): (0.587, 0.5 - 0.331264, 0.5 - 0.418688),
    (0.0, 0.0, 1.0): (0.114, 1.0, 0.5 - 0.081312),
}


@pytest.mark.parametrize("rgb", list(KNOWN))
def test_ycbcr_known_values(rgb):
    np.testing.assert_allclose(rgb_to_ycbcr(np.array(rgb)), KNOWN[rgb], atol=1e-6)
    np.testing.assert_allclose(ycbcr_to_rgb(np.array(KNOWN[rgb])), rgb, atol=2e-6)


def test_ycbcr_matches_published_formulas_on_random_pixels():
    rng = np.random.default_rng(5)
    r, g, b = rng.random((3, 200))
    expected = np.stack([0.299 * r + 0.587 * g + 0.114 * b,
                         0.5 - 0.168736 * r - 0.331264 * g + 0.5 * b,
                         0.5 + 0.5 * r - 0.418688 * g - 0.081312 * b], axis=-1)
    np.testing.assert_allclose(rgb_to_ycbcr(np.stack([r, g, b], -1)), expected, atol=1e-6)
    y, cb, cr = rng.random((3, 200))
    expected = np.stack([y + 1.402 * (cr - 0.5),
                         y - 0.344136 * (cb - 0.5) - 0.714136 * (cr - 0.5),
                         y + 1.772 * (cb - 0.5)], axis=-1)
    np.testing.assert_allclose(ycbcr_to_rgb(np.stack([y, cb, cr], -1)), expected, atol=1e-6)


def test_ycbcr_agrees_with_pil_to_one_level():
    rgb8 = np.random.default_rng(2).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    pil = np.asarray(Image.fromarray(rgb8).convert("YCbCr"), dtype=np.float64)
    ours = rgb_to_ycbcr(rgb8 / 255.0) * 255.0
    np.testing.assert_allclose(ours, pil, atol=1.0)


def test_gray_pixels_have_neutral_chroma():
    gray = np.linspace(0, 1, 11)
    ycc = rgb_to_ycbcr(np.stack([gray] * 3, axis=-1))
    np.testing.assert_allclose(ycc[:, 0], gray, atol=1e-12)
    np.testing.assert_allclose(ycc[:, 1:], 0.5, atol=1e-12)


def test_ycbcr_rejects_integer_images_and_wrong_channels():
    with pytest.raises(TypeError):
        rgb_to_ycbcr(np.zeros((2, 2, 3), np.uint8))
    with pytest.raises(ValueError):
        rgb_to_ycbcr(np.zeros((2, 2, 4)))


# ----------------------------------------------------------------------------- luminance transfer


def test_luminance_transfer_keeps_generated_luma_and_content_chroma():
    rng = np.random.default_rng(11)
    content = rng.uniform(0.3, 0.7, (12, 10, 3)).astype(np.float32)
    generated = rng.uniform(0.3, 0.7, (12, 10, 3)).astype(np.float32)
    out = luminance_transfer(content, generated)
    assert out.shape == generated.shape and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0
    unclipped = np.all((out > 0.0) & (out < 1.0), axis=-1)
    assert unclipped.mean() > 0.9  # the comparison below covers most pixels
    out_ycc = rgb_to_ycbcr(out.astype(np.float64))[unclipped]
    np.testing.assert_allclose(out_ycc[:, 0], rgb_to_ycbcr(generated)[unclipped][:, 0],
                               atol=1e-5)
    np.testing.assert_allclose(out_ycc[:, 1:], rgb_to_ycbcr(content)[unclipped][:, 1:],
                               atol=1e-5)


def test_luminance_transfer_hand_cases():
    rng = np.random.default_rng(12)
    generated = rng.random((5, 4, 3)).astype(np.float32)
    # A gray content has no chroma: the result is the generated image in grayscale.
    gray_content = np.full((5, 4, 3), 0.2, np.float32)
    luma = 0.299 * generated[..., 0] + 0.587 * generated[..., 1] + 0.114 * generated[..., 2]
    out = luminance_transfer(gray_content, generated)
    np.testing.assert_allclose(out, np.stack([luma] * 3, axis=-1), atol=1e-6)
    # Content == generated: nothing changes.
    np.testing.assert_allclose(luminance_transfer(generated, generated), generated, atol=1e-6)


def test_luminance_transfer_resizes_content_and_accepts_a_batch_of_one():
    colour = np.array([0.6, 0.4, 0.3], np.float32)
    content = np.broadcast_to(colour, (20, 30, 3)).copy()  # resizing keeps it constant
    generated = np.random.default_rng(13).uniform(0.35, 0.65, (1, 8, 6, 3)).astype(np.float32)
    out = luminance_transfer(content, generated)
    assert out.shape == (8, 6, 3)
    assert 0.0 < out.min() and out.max() < 1.0  # no clipping in this case
    np.testing.assert_allclose(rgb_to_ycbcr(out)[..., 1:],
                               np.broadcast_to(rgb_to_ycbcr(colour)[1:], (8, 6, 2)), atol=1e-5)
    np.testing.assert_allclose(rgb_to_ycbcr(out)[..., 0], rgb_to_ycbcr(generated[0])[..., 0],
                               atol=1e-5)


# ----------------------------------------------------------------------------- histogram matching


def correlated_image(rng, shape, mean, mix):
    """Pixels mean + U(-1, 1)^3 @ mix: correlated colours, bounded by sum |mix| around mean."""
    u = rng.uniform(-1.0, 1.0, (*shape[:2], 3))
    return (np.asarray(mean) + u @ np.asarray(mix)).astype(np.float32)


def stats(image):
    pixels = np.asarray(image, np.float64).reshape(-1, 3)
    return pixels.mean(axis=0), np.cov(pixels, rowvar=False, bias=True)


def test_match_color_gives_the_content_mean_and_covariance():
    rng = np.random.default_rng(21)
    style = correlated_image(rng, (40, 30), [0.3, 0.5, 0.6],
                             [[0.15, 0.05, 0.0], [0.0, 0.1, 0.08], [0.02, 0.0, 0.12]])
    content = correlated_image(rng, (25, 35), [0.55, 0.45, 0.4],
                               [[0.08, 0.06, 0.04], [-0.05, 0.1, 0.0], [0.0, 0.03, 0.1]])
    out = match_color(style, content)
    assert out.shape == style.shape and out.dtype == np.float32
    assert 0.0 < out.min() and out.max() < 1.0  # no clipping, so the statistics are exact
    mean_out, cov_out = stats(out)
    mean_c, cov_c = stats(content)
    mean_s, cov_s = stats(style)
    assert np.abs(cov_s - cov_c).max() > 1e-3  # the test has something to change
    np.testing.assert_allclose(mean_out, mean_c, atol=1e-5)
    np.testing.assert_allclose(cov_out, cov_c, atol=2e-5)


def denman_beavers(matrix, steps=50):
    """(M^(1/2), M^(-1/2)) by the Denman-Beavers iteration - no eigendecomposition."""
    y, z = matrix, np.eye(len(matrix))
    for _ in range(steps):
        y, z = (y + np.linalg.inv(z)) / 2, (z + np.linalg.inv(y)) / 2
    return y, z


def test_match_color_uses_the_symmetric_square_roots():
    # Any A with A Sigma_S A^T = Sigma_C matches the covariance (e.g. via Cholesky factors);
    # the method asks for A = Sigma_C^(1/2) Sigma_S^(-1/2) with the principal square roots.
    rng = np.random.default_rng(25)
    style = correlated_image(rng, (30, 30), [0.5, 0.5, 0.5],
                             [[0.12, 0.06, 0.0], [0.0, 0.1, 0.07], [0.03, 0.0, 0.1]])
    content = correlated_image(rng, (20, 20), [0.5, 0.45, 0.55],
                               [[0.05, 0.08, 0.02], [-0.06, 0.04, 0.0], [0.0, 0.02, 0.11]])
    eps = 1e-5
    out = match_color(style, content, eps=eps)
    assert 0.0 < out.min() and out.max() < 1.0
    (mu_s, cov_s), (mu_c, cov_c) = stats(style), stats(content)
    # Recover the A that was applied: out - mu_C = (style - mu_S) A^T, by least squares.
    x = style.reshape(-1, 3).astype(np.float64) - mu_s
    a_t, *_ = np.linalg.lstsq(x, out.reshape(-1, 3) - mu_c, rcond=None)
    sqrt_c, _ = denman_beavers(cov_c + eps * np.eye(3))
    _, inv_sqrt_s = denman_beavers(cov_s + eps * np.eye(3))
    expected = sqrt_c @ inv_sqrt_s
    np.testing.assert_allclose(a_t.T, expected, atol=2e-4)


def test_match_color_is_identity_when_style_is_content():
    rng = np.random.default_rng(22)
    image = correlated_image(rng, (16, 16), [0.5, 0.4, 0.6],
                             [[0.1, 0.05, 0.0], [0.0, 0.1, 0.05], [0.05, 0.0, 0.1]])
    np.testing.assert_allclose(match_color(image, image), image, atol=1e-5)


def test_match_color_hand_case_with_uncorrelated_channels():
    # Every combination of three levels per channel: the channels are exactly uncorrelated,
    # so Sigma_S is diagonal; scaling each channel by d_k about a new mean makes Sigma_C
    # diagonal too, A = diag(d), and the style maps exactly onto the content.
    levels = np.array([-1.0, 0.0, 1.0])
    grid = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), -1).reshape(9, 3, 3)
    style = 0.5 + 0.1 * grid
    d, mu_c = np.array([2.0, 0.5, 1.5]), np.array([0.4, 0.6, 0.5])
    content = mu_c + (style - 0.5) * d
    np.testing.assert_allclose(match_color(style, content, eps=1e-10), content, atol=1e-6)
    # With eps, each channel's variance v becomes v + eps: A_kk = sqrt((d_k^2 v + eps) / (v + eps)).
    v, eps = 0.1**2 * 2 / 3, 1e-3
    a = np.sqrt((d**2 * v + eps) / (v + eps))
    np.testing.assert_allclose(match_color(style, content, eps=eps), mu_c + (style - 0.5) * a,
                               atol=1e-6)


def test_match_color_flat_style_becomes_the_content_mean():
    rng = np.random.default_rng(23)
    content = rng.uniform(0.2, 0.8, (10, 10, 3))
    out = match_color(np.full((4, 5, 3), 0.3), content)
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(out, np.broadcast_to(content.mean(axis=(0, 1)), (4, 5, 3)),
                               atol=1e-6)


def test_match_color_clips_to_unit_range():
    rng = np.random.default_rng(24)
    style = rng.uniform(0.45, 0.55, (10, 10, 3))     # low contrast
    content = rng.choice([0.0, 1.0], (10, 10, 3))   # maximal contrast
    out = match_color(style, content)
    assert out.min() >= 0.0 and out.max() <= 1.0


def test_preserve_color_modes_are_described():
    assert PRESERVE_COLOR == ("none", "luminance", "histogram")
    for mode in PRESERVE_COLOR:
        assert mode in describe(mode)
    with pytest.raises(ValueError):
        describe("cholesky")
