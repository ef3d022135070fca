"""Optimising the pixels of G on the real VGG19 (small sizes, so seconds on a CPU)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from nbutils.images import load_image
from nbutils.samples import sample_image_path
from nbutils.style.costs import (
    CONTENT_LAYER,
    STYLE_LAYERS,
    compute_content_cost,
    compute_style_cost,
    total_cost,
)
from nbutils.style.optimize import (
    get_layer_outputs,
    initial_generated_image,
    make_train_step,
    stylize,
    to_batch,
)
from nbutils.vgg19 import load_vgg19

SIZE = 64


@pytest.fixture(scope="module")
def vgg():
    return load_vgg19()


@pytest.fixture(scope="module")
def images():
    content = to_batch(load_image(sample_image_path("content"), SIZE))
    style = to_batch(load_image(sample_image_path("style_swirls"), SIZE))
    return content, style


@pytest.fixture(scope="module")
def outputs(vgg, images):
    model = get_layer_outputs(vgg, STYLE_LAYERS + CONTENT_LAYER)
    content, style = images
    return model, model(content), model(style)


@pytest.mark.slow
def test_layer_outputs_have_vgg19_shapes(outputs):
    model, a_C, _ = outputs
    # 64 px: block k's first conv sees 64 / 2^(k-1) px; block5_conv4 works at 4x4.
    assert [tuple(a.shape) for a in a_C] == [
        (1, 64, 64, 64), (1, 32, 32, 128), (1, 16, 16, 256), (1, 8, 8, 512), (1, 4, 4, 512),
        (1, 4, 4, 512)]
    assert model.get_layer("block5_conv4") is not None
    with pytest.raises(ValueError, match="no layer named"):
        get_layer_outputs(model, ["block6_conv1"])


def test_initial_image_is_content_plus_bounded_noise(images):
    content, _ = images
    g = initial_generated_image(content, seed=272).numpy()
    c = content.numpy()
    assert g.shape == c.shape and g.min() >= 0.0 and g.max() <= 1.0
    assert np.all(np.abs(g - c) <= 0.25 + 1e-6)
    inside = (c > 0.3) & (c < 0.7)  # where clipping cannot act, the noise is uniform
    assert np.abs(g - c)[inside].mean() == pytest.approx(0.125, abs=0.01)
    np.testing.assert_array_equal(g, initial_generated_image(content, seed=272).numpy())
    assert not np.array_equal(g, initial_generated_image(content, seed=1).numpy())
    np.testing.assert_array_equal(initial_generated_image(content, "content").numpy(), c)
    with pytest.raises(ValueError, match="init must be one of"):
        initial_generated_image(content, "zeros")


def cost_and_grad(model, a_C, a_S, g):
    with tf.GradientTape() as tape:
        tape.watch(g)
        a_G = model(g)
        J = total_cost(compute_content_cost(a_C, a_G), compute_style_cost(a_S, a_G))
    return J, tape.gradient(J, g)


@pytest.mark.slow
def test_gradient_wrt_pixels_is_finite_and_nonzero(outputs, images):
    model, a_C, a_S = outputs
    g = initial_generated_image(images[0]).read_value()
    J, grad = cost_and_grad(model, a_C, a_S, g)
    assert np.isfinite(float(J)) and float(J) > 0
    grad = grad.numpy()
    assert np.all(np.isfinite(grad))
    assert np.mean(grad != 0) > 0.99


@pytest.mark.slow
def test_one_train_step_is_one_adam_step_then_clip(outputs, images):
    """Adam's first update is lr * g / (|g| + eps): each pixel moves by lr against its gradient."""
    model, a_C, a_S = outputs
    g = initial_generated_image(images[0])
    before = g.numpy()
    J_expected, grad = cost_and_grad(model, a_C, a_S, tf.constant(before))
    step = make_train_step(model, a_C, a_S, keras.optimizers.Adam(learning_rate=0.01))
    J = step(g)
    np.testing.assert_allclose(float(J), float(J_expected), rtol=1e-4)
    grad = grad.numpy()
    lr, eps = 0.01, 1e-7  # Keras Adam's default epsilon
    expected = np.clip(before - lr * grad / (np.abs(grad) + eps), 0.0, 1.0)
    np.testing.assert_allclose(g.numpy(), expected, atol=1e-5)


@pytest.mark.slow
def test_real_optimisation_halves_the_cost_within_30_steps(vgg):
    content = sample_image_path("content")
    style = sample_image_path("style_swirls")
    image, history = stylize(content, style, size=SIZE, steps=30, vgg=vgg, progress=False,
                             every=10)
    assert image.shape == (SIZE, SIZE, 3) and image.min() >= 0 and image.max() <= 1
    assert len(history["total"]) == 30
    assert history["total"][-1] <= 0.5 * history["total"][0]
    np.testing.assert_allclose(history["total"],
                               10 * np.array(history["content"]) + 40 * np.array(history["style"]),
                               rtol=1e-4)
    assert sorted(history["snapshots"]) == [0, 10, 20, 30]
    np.testing.assert_array_equal(history["snapshots"][30], image)


@pytest.mark.slow
def test_same_seed_same_image(vgg):
    rng = np.random.default_rng(0)
    content, style = rng.random((32, 32, 3)), rng.random((32, 32, 3))
    run = [stylize(content, style, size=32, steps=3, seed=s, vgg=vgg, progress=False)[0]
           for s in (5, 5, 6)]
    np.testing.assert_array_equal(run[0], run[1])
    assert not np.array_equal(run[0], run[2])


@pytest.mark.slow
def test_callback_sees_each_snapshot(vgg):
    seen = []
    rng = np.random.default_rng(1)
    stylize(rng.random((32, 32, 3)), rng.random((32, 32, 3)), size=32, steps=4, every=2,
            vgg=vgg, progress=False, callback=lambda step, img, costs: seen.append(
                (step, img.shape, sorted(costs))))
    assert seen == [(0, (32, 32, 3), []), (2, (32, 32, 3), ["content", "style", "total"]),
                    (4, (32, 32, 3), ["content", "style", "total"])]
