"""Fast style transfer: the L-BFGS recursion, the same objective as the course and the
quality controls (the command line: test_style_cli.py)."""

from collections import deque

import numpy as np
import pytest
import tensorflow as tf

from nbutils.extras.color import rgb_to_ycbcr
from nbutils.extras.fast_style import (
    Objective,
    scale_sizes,
    stylize_fast,
    vgg19_with_pooling,
    vgg_input,
)
from nbutils.extras.lbfgs import lbfgs_box, two_loop_direction
from nbutils.images import load_image
from nbutils.samples import sample_image_path
from nbutils.style.costs import (
    CONTENT_LAYER,
    STYLE_LAYERS,
    compute_content_cost,
    compute_style_cost,
    total_cost,
)
from nbutils.style.optimize import get_layer_outputs, stylize
from nbutils.vgg19 import load_vgg19


@pytest.fixture(scope="module")
def vgg():
    return load_vgg19()


@pytest.fixture(scope="module")
def images():
    return (sample_image_path("content"), sample_image_path("style_swirls"),
            sample_image_path("style_mosaic"))


def test_two_loop_equals_explicit_bfgs_inverse_hessian():
    """-H g from the recursion equals the BFGS inverse-Hessian update applied explicitly."""
    rng = np.random.default_rng(0)
    n = 6
    A = rng.normal(size=(n, n))
    A = A @ A.T + n * np.eye(n)  # a convex quadratic: gradient A x
    xs = [rng.normal(size=n) for _ in range(4)]
    history = deque()
    for x0, x1 in zip(xs, xs[1:], strict=False):
        s, y = x1 - x0, A @ (x1 - x0)
        history.append((s, y, 1.0 / (s @ y)))
    s, y, _ = history[-1]
    H = (s @ y) / (y @ y) * np.eye(n)
    for s, y, rho in history:
        V = np.eye(n) - rho * np.outer(y, s)
        H = V.T @ H @ V + rho * np.outer(s, s)
    g = rng.normal(size=n)
    np.testing.assert_allclose(two_loop_direction(g, history), -H @ g, rtol=1e-10)


def test_lbfgs_box_finds_the_clipped_minimum_of_a_separable_quadratic():
    rng = np.random.default_rng(1)
    target = rng.uniform(-0.5, 1.5, 500)  # a third of the optimum lies outside [0, 1]
    c = 10 ** rng.uniform(0, 2, 500)  # badly conditioned
    evals = []

    def f(x):
        evals.append(1)
        return float((c * (x - target) ** 2).sum()), 2 * c * (x - target)

    x = lbfgs_box(f, np.full(500, 0.5), max_evals=200)
    np.testing.assert_allclose(x, np.clip(target, 0, 1), atol=1e-3)
    assert len(evals) <= 200


def course_objective(vgg, images, size, seed):
    """The course's layers on the sample content and style at ``size``, a random G, and
    the fast path's `Objective` with every control off: (model, content, style, g, it)."""
    content = tf.constant(load_image(images[0], size)[None])
    style = tf.constant(load_image(images[1], size)[None])
    g = tf.constant(np.random.default_rng(seed).random((1, size, size, 3)), tf.float32)
    model = get_layer_outputs(vgg, STYLE_LAYERS + CONTENT_LAYER)
    objective = Objective(model, STYLE_LAYERS, 10, 40, 0.0, "course")
    objective.set_targets(content, [style], [1.0])
    return model, content, style, g, objective


@pytest.mark.slow
def test_objective_with_controls_off_is_the_course_objective(vgg, images):
    model, content, style, g, objective = course_objective(vgg, images, 64, seed=2)
    J, J_content, J_style = objective.costs(g)
    a_C, a_S, a_G = model(content), model(style), model(g)
    np.testing.assert_allclose(float(J_content), float(compute_content_cost(a_C, a_G)),
                               rtol=1e-5)
    np.testing.assert_allclose(float(J_style), float(compute_style_cost(a_S, a_G)), rtol=1e-4)
    np.testing.assert_allclose(float(J), float(total_cost(J_content, J_style)), rtol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("xla", [False, True])
def test_compiled_pass_is_the_course_cost_and_its_gradient(vgg, images, xla):
    """One compiled pass of the fast path (targets as arguments; with or without XLA) gives
    the course's J and the gradient automatic differentiation takes of the course's code."""
    model, content, style, g, objective = course_objective(vgg, images, 48, seed=3)
    J, _, _, grad = objective.value_and_gradient(xla=xla)(g)
    a_C, a_S = model(content), model(style)
    with tf.GradientTape() as tape:
        tape.watch(g)
        a_G = model(g)
        J_course = total_cost(compute_content_cost(a_C, a_G), compute_style_cost(a_S, a_G))
    expected = tape.gradient(J_course, g).numpy()
    np.testing.assert_allclose(float(J), float(J_course), rtol=1e-4)
    assert np.abs(grad.numpy() - expected).max() <= 1e-3 * np.abs(expected).max()


@pytest.mark.slow
def test_two_styles_cost_is_the_weighted_sum(vgg, images):
    content = tf.constant(load_image(images[0], 48)[None])
    s1, s2 = (tf.constant(load_image(p, 48)[None]) for p in images[1:])
    g = tf.constant(load_image(images[0], 48)[None])
    model = get_layer_outputs(vgg, STYLE_LAYERS + CONTENT_LAYER)

    def style_cost(styles, weights):
        o = Objective(model, STYLE_LAYERS, 10, 40, 0.0, "course")
        o.set_targets(content, styles, weights)
        return float(o.costs(g)[2])

    blended = style_cost([s1, s2], [0.7, 0.3])
    expected = 0.7 * style_cost([s1], [1.0]) + 0.3 * style_cost([s2], [1.0])
    np.testing.assert_allclose(blended, expected, rtol=1e-5)


@pytest.mark.slow
def test_a_style_image_of_another_size_is_compared_per_position(vgg, images):
    """style_scale: J_style^[l] = sum((G_S / n_S - G_G / n_G)^2) / (4 n_C^2), n = n_H n_W
    of each image, as the course's cost is when the sizes are equal."""
    model = get_layer_outputs(vgg, STYLE_LAYERS + CONTENT_LAYER)
    content = tf.constant(load_image(images[0], 32)[None])
    style = tf.constant(load_image(images[1], (48, 64))[None])
    objective = Objective(model, STYLE_LAYERS, 10, 40, 0.0, "course")
    objective.set_targets(content, [style], [1.0])

    def gram(a):
        A = a.numpy().astype(np.float64).reshape(-1, a.shape[-1])
        return A.T @ A / len(A)

    expected = sum(lam * np.sum((gram(s) - gram(g)) ** 2) / (4 * s.shape[-1] ** 2)
                   for (_, lam), s, g in zip(STYLE_LAYERS, model(style)[:-1], model(content)[:-1],
                                              strict=True))
    np.testing.assert_allclose(float(objective.costs(content)[2]), expected, rtol=1e-4)


@pytest.mark.slow
def test_lbfgs_reaches_adams_cost_in_fewer_passes(vgg, images):
    adam_img, adam = stylize_fast(images[0], images[1], 48, optimizer="adam", steps=30,
                                  vgg=vgg, progress=False)
    _, lbfgs = stylize_fast(images[0], images[1], 48, optimizer="lbfgs", steps=30, vgg=vgg,
                            progress=False, target_cost=adam["total"][-1])
    assert adam["total"][-1] < 0.5 * adam["total"][0]  # both really minimise
    assert lbfgs["best_total"] <= adam["total"][-1]
    assert len(lbfgs["step"]) < 30


@pytest.mark.slow
def test_adam_is_the_courses_step_with_the_courses_history(vgg, images):
    """optimizer="adam" takes `stylize`'s steps: the same costs and the same G after each
    step, recorded under the same keys."""
    _, course = stylize(images[0], images[1], size=32, steps=3, every=1, vgg=vgg,
                        progress=False)
    _, fast = stylize_fast(images[0], images[1], 32, optimizer="adam", steps=3, every=1,
                           vgg=vgg, progress=False)
    assert set(course) < set(fast) and course["step"] == fast["step"] == [0, 1, 2]
    np.testing.assert_allclose(fast["total"], course["total"], rtol=1e-4)
    for k in fast["snapshots"]:
        np.testing.assert_allclose(fast["snapshots"][k], course["snapshots"][k], atol=1e-4)


@pytest.mark.slow
def test_coarse_to_fine_sizes_and_output(vgg, images):
    assert scale_sizes((400, 300), 3) == [(100, 75), (200, 150), (400, 300)]
    image, history = stylize_fast(images[0], images[1], (40, 56), scales=2, steps=6, vgg=vgg,
                                  progress=False)
    assert image.shape == (40, 56, 3)
    assert sorted(set(history["scale"])) == [0, 1]


@pytest.mark.slow
def test_luminance_transfer_keeps_the_contents_chroma(vgg, images):
    image, _ = stylize_fast(images[0], images[1], 48, steps=5, preserve_color="luminance",
                            vgg=vgg, progress=False)
    content = load_image(images[0], 48)
    chroma = np.abs(rgb_to_ycbcr(image)[..., 1:] - rgb_to_ycbcr(content)[..., 1:])
    assert np.median(chroma) < 0.01


@pytest.mark.slow
def test_same_seed_same_image(vgg, images):
    runs = [stylize_fast(images[0], images[1], 32, steps=4, seed=s, vgg=vgg,
                         progress=False)[0] for s in (3, 3, 4)]
    np.testing.assert_array_equal(runs[0], runs[1])
    assert not np.array_equal(runs[0], runs[2])


@pytest.mark.slow
def test_interrupt_returns_the_best_image_so_far(vgg, images):
    def stop(step, image, costs):
        if step == 3:
            raise KeyboardInterrupt

    image, history = stylize_fast(images[0], images[1], 32, steps=50, every=1, callback=stop,
                                  vgg=vgg, progress=False)
    assert history["interrupted"] and history["step"] == [0, 1, 2, 3]
    assert image.shape == (32, 32, 3) and history["best_total"] == min(history["total"])


@pytest.mark.slow
def test_average_pooling_and_imagenet_preprocessing(vgg):
    avg = vgg19_with_pooling("avg", vgg)
    assert [type(layer).__name__ for layer in avg.layers if "pool" in layer.name] == \
        ["AveragePooling2D"] * 5
    x = tf.constant(np.random.default_rng(5).random((1, 32, 32, 3)), tf.float32)
    assert not np.allclose(avg(x), vgg(x))
    pixel = tf.constant([[[[1.0, 0.5, 0.0]]]])  # RGB
    np.testing.assert_allclose(vgg_input(pixel, "imagenet").numpy().ravel(),
                               [0.0 - 103.939, 127.5 - 116.779, 255.0 - 123.68], rtol=1e-6)
