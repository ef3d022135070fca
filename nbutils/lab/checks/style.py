"""Checks of the neural style transfer exercises: the costs, the Gram matrix, the train step.

Each case is built from small random activations (shapes in the labels); a wrong value is
matched against deliberately wrong formulas to name the classic mistake (alpha and beta
swapped, a reshape without a transpose, a missing normalisation factor, ...).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from nbutils.lab.checks.core import (
    RTOL,
    Case,
    CheckResult,
    Failure,
    Variant,
    as_numbers,
    call,
    compare,
    default_of,
    grades,
    judge_numbers,
    reference_of,
    seeded,
)


def _tensor(rng: np.random.Generator, shape: tuple[int, ...], scale: float = 4.0) -> Any:
    import tensorflow as tf

    return tf.constant(rng.normal(1.0, scale, shape), tf.float32)


def _dims(a: Any) -> tuple[float, float, float]:
    _, n_H, n_W, n_C = (float(d) for d in np.shape(a))
    return n_H, n_W, n_C


def _random_shape(seed: int, key: int, rank: int) -> tuple[int, ...]:
    """A hidden case's shape, drawn from the grader's seed: (1, h, w, c) or (c, m)."""
    sizes = tuple(int(d) for d in np.random.default_rng([seed, key]).integers(1, 8, rank))
    return sizes if rank != 4 else (1, *sizes[1:])


def _activation_cases(seed: int | None, shapes: Sequence[tuple[int, ...]], key: int,
                      arguments: Callable[[np.random.Generator, tuple[int, ...]], tuple]
                      ) -> list[Case]:
    """One case per shape (hidden cases add one drawn from ``seed``), its arguments drawn by
    ``arguments(rng, shape)``."""
    if seed is not None:
        shapes = [*shapes, _random_shape(seed, key, len(shapes[0]))]
    return [(f"activations of shape {shape}",
             arguments(seeded(seed, key + i, key + i), shape), {})
            for i, shape in enumerate(shapes)]


# ---------------------------------------------------------------- the content cost

def _content_cases(seed: int | None) -> list[Case]:
    def outputs(rng: np.random.Generator, shape: tuple[int, ...]) -> list:
        return [_tensor(rng, (1, 2, 2, 2)), _tensor(rng, shape)]  # a style layer, the content's

    shapes = [(1, 4, 4, 3), (1, 3, 5, 2)] + ([(1, 6, 2, 7), (1, 1, 1, 1)] if seed is not None
                                             else [])
    return _activation_cases(seed, shapes, 1,
                             lambda rng, shape: (outputs(rng, shape), outputs(rng, shape)))


def _content_variants() -> list[Variant]:
    reference = reference_of("compute_content_cost")

    def sq(c: list, g: list) -> float:
        return float(np.sum(np.square(as_numbers(c[-1]) - as_numbers(g[-1]))))

    return [
        (lambda c, g: sq(c, g), "wrong normalisation: divide the sum by 4 * n_H * n_W * n_C"),
        (lambda c, g: sq(c, g) / np.prod(_dims(g[-1])),
         "wrong normalisation: the factor is 1 / (4 * n_H * n_W * n_C), the 4 is missing"),
        (lambda c, g: sq(c, g) / (4 * np.prod(_dims(g[-1])) ** 2),
         "wrong normalisation: the factor is 1 / (4 * n_H * n_W * n_C), not squared"),
        (lambda c, g: reference(c[:1], g[:1]),
         "used the first layer's activations: the content layer is the LAST element of each list"),
    ]


@grades(_content_cases, judge_numbers(_content_variants))
def check_compute_content_cost(fn: Callable[..., Any], seed: int | None = None) -> CheckResult:
    """Check ``compute_content_cost(content_output, generated_output)``."""


# ---------------------------------------------------------------- the Gram matrix

def _gram_cases(seed: int | None) -> list[Case]:
    shapes = [(3, 2), (4, 6)] + ([(5, 9), (1, 3)] if seed is not None else [])
    return [(case[0].replace("activations", "A"), *case[1:])
            for case in _activation_cases(seed, shapes, 50, lambda rng, s: (_tensor(rng, s),))]


def _gram_judge(case: Case, got: Any, want: Any) -> None:
    A = as_numbers(case[1][0])
    n_C, m = A.shape
    if np.shape(got) == (m, m) and m != n_C:
        raise Failure("computed A^T A: the Gram matrix is A A^T, shape (n_C, n_C)")
    compare(got, want, case[1], case[2],
            [(lambda a: A @ A.T / m, "divided by n_H * n_W: the Gram matrix has no normalisation "
                                     "factor (the factor belongs to the style cost)")])


@grades(_gram_cases, _gram_judge)
def check_gram_matrix(fn: Callable[..., Any], seed: int | None = None) -> CheckResult:
    """Check ``gram_matrix(A)`` for A of shape (n_C, n_H * n_W)."""


# ---------------------------------------------------------------- the style cost of a layer

def _layer_style_cases(seed: int | None) -> list[Case]:
    shapes = [(1, 4, 4, 3), (1, 3, 5, 4)] + ([(1, 2, 7, 5), (1, 6, 6, 2)] if seed is not None
                                             else [])
    return _activation_cases(seed, shapes, 10,
                             lambda rng, shape: (_tensor(rng, shape), _tensor(rng, shape)))


def _style_variants() -> list[Variant]:
    def parts(a_S: Any, a_G: Any, transpose: bool = True) -> tuple[float, float, float, float]:
        def gram(a: Any) -> np.ndarray:
            x = as_numbers(a)
            n_C = x.shape[-1]
            A = x.reshape(-1, n_C).T if transpose else x.reshape(n_C, -1)
            return A @ A.T
        n_H, n_W, n_C = _dims(a_G)
        return float(np.sum(np.square(gram(a_S) - gram(a_G)))), n_H, n_W, n_C

    def no_transpose(a_S: Any, a_G: Any) -> float:
        s, n_H, n_W, n_C = parts(a_S, a_G, transpose=False)
        return s / (4 * n_C**2 * (n_H * n_W) ** 2)

    def no_factor(a_S: Any, a_G: Any) -> float:
        return parts(a_S, a_G)[0]

    def no_squares(a_S: Any, a_G: Any) -> float:
        s, n_H, n_W, n_C = parts(a_S, a_G)
        return s / (4 * n_C * n_H * n_W)

    def no_four(a_S: Any, a_G: Any) -> float:
        s, n_H, n_W, n_C = parts(a_S, a_G)
        return s / (n_C**2 * (n_H * n_W) ** 2)

    return [
        (no_transpose, "reshaped straight to (n_C, n_H * n_W) without a transpose, which mixes "
                       "channels and positions: reshape to (n_H * n_W, n_C), then transpose"),
        (no_factor, "forgot the normalisation factor 1 / (4 n_C^2 (n_H n_W)^2)"),
        (no_squares, "wrong normalisation factor: it is 1 / (4 n_C^2 (n_H n_W)^2), squares "
                     "included"),
        (no_four, "wrong normalisation factor: the 4 of 1 / (4 n_C^2 (n_H n_W)^2) is missing"),
    ]


@grades(_layer_style_cases, judge_numbers(_style_variants))
def check_compute_layer_style_cost(fn: Callable[..., Any], seed: int | None = None
                                   ) -> CheckResult:
    """Check ``compute_layer_style_cost(a_S, a_G)``."""


# ---------------------------------------------------------------- the style cost

def _style_cases(seed: int | None) -> list[Case]:
    def outputs(rng: np.random.Generator, n: int) -> list:
        shapes = [(1, 4 - i % 3, 3 + i % 2, 2 + i) for i in range(n)] + [(1, 2, 2, 3)]
        return [_tensor(rng, s) for s in shapes]

    rng = seeded(seed, 3, 3)
    cases: list[Case] = [("the 5 STYLE_LAYERS (default argument)",
                          (outputs(rng, 5), outputs(rng, 5)), {})]
    layers = [("a", 0.5), ("b", 0.3), ("c", 0.2)]
    cases.append((f"STYLE_LAYERS = {layers}", (outputs(rng, 3), outputs(rng, 3), layers), {}))
    if seed is not None:  # weights and a number of layers the learner cannot know
        weights = rng.dirichlet(np.ones(int(rng.integers(2, 5))))
        layers = [(f"layer{i}", round(float(w), 4)) for i, w in enumerate(weights)]
        cases.append((f"STYLE_LAYERS = {layers}",
                      (outputs(rng, len(layers)), outputs(rng, len(layers)), layers), {}))
    return cases


def _style_cost_variants() -> list[Variant]:
    from nbutils.style.costs import STYLE_LAYERS

    reference = reference_of("compute_style_cost")
    layer_cost = reference_of("compute_layer_style_cost")

    def unweighted(s: list, g: list, style_layers: Any = STYLE_LAYERS) -> float:
        return sum(float(layer_cost(a, b)) for a, b in zip(s[:-1], g[:-1], strict=True))

    def with_content(s: list, g: list, style_layers: Any = STYLE_LAYERS) -> float:
        weights = [w for _, w in style_layers]
        return float(reference(s, g, style_layers)) + weights[-1] * float(
            layer_cost(s[-1], g[-1]))

    return [(unweighted, "forgot the weights lambda_l of STYLE_LAYERS"),
            (with_content, "included the last element (the content layer) in the sum")]


@grades(_style_cases, judge_numbers(_style_cost_variants))
def check_compute_style_cost(fn: Callable[..., Any], seed: int | None = None) -> CheckResult:
    """Check ``compute_style_cost(style_image_output, generated_image_output, STYLE_LAYERS)``."""


# ---------------------------------------------------------------- the total cost

def _total_cases(seed: int | None) -> list[Case]:
    cases: list[Case] = [
        ("total_cost(1, 0)", (1.0, 0.0), {}), ("total_cost(0, 1)", (0.0, 1.0), {}),
        ("total_cost(0.5, 2, alpha=1, beta=3)", (0.5, 2.0), {"alpha": 1, "beta": 3})]
    if seed is not None:
        rng = seeded(seed, 0, 70)
        jc, js = (round(float(x), 4) for x in rng.uniform(0.1, 10, 2))
        alpha, beta = (int(x) for x in rng.choice(np.arange(1, 60), 2, replace=False))
        cases += [(f"total_cost({jc}, {js}, alpha={alpha}, beta={beta})", (jc, js),
                   {"alpha": alpha, "beta": beta}),
                  (f"total_cost({js}, {jc})", (js, jc), {})]
    return cases


def _total_variants() -> list[Variant]:
    reference = reference_of("total_cost")
    alpha0, beta0 = default_of(reference, "alpha"), default_of(reference, "beta")
    return [
        (lambda jc, js, alpha=alpha0, beta=beta0: beta * jc + alpha * js,
         "alpha and beta swapped: J = alpha * J_content + beta * J_style"),
        (lambda jc, js, alpha=alpha0, beta=beta0: alpha0 * jc + beta0 * js,
         f"ignores the alpha and beta arguments (hard-coded {alpha0} and {beta0}?)"),
    ]


@grades(_total_cases, judge_numbers(_total_variants))
def check_total_cost(fn: Callable[..., Any], seed: int | None = None) -> CheckResult:
    """Check ``total_cost(J_content, J_style, alpha, beta)``, including its defaults."""


# ---------------------------------------------------------------- the train step

def _tiny_vgg(seed: int) -> tuple[Any, list[tuple[str, float]]]:
    """A 2-conv stand-in for VGG, weights drawn from ``seed``: outputs [conv1, conv2, conv2]
    (2 style layers and the content layer)."""
    import keras

    rng = np.random.default_rng([seed, 1])
    inp = keras.Input(shape=(8, 8, 3))
    c1 = keras.layers.Conv2D(4, 3, padding="same", name="c1")
    c2 = keras.layers.Conv2D(3, 3, padding="same", name="c2")
    model = keras.Model(inp, [c1(inp), c2(c1(inp)), c2(c1(inp))])
    for layer, n_in, n_out in ((c1, 3, 4), (c2, 4, 3)):
        layer.set_weights([rng.uniform(-0.5, 0.5, (3, 3, n_in, n_out)).astype(np.float32),
                           rng.uniform(-0.1, 0.1, n_out).astype(np.float32)])
    return model, [("c1", 0.5), ("c2", 0.5)]


def _train_images(seed: int) -> list[np.ndarray]:
    """C, S and the initial G, each (1, 8, 8, 3) in [0, 1]."""
    rng = np.random.default_rng([seed, 2])
    return [rng.uniform(0, 1, (1, 8, 8, 3)).astype(np.float32) for _ in range(3)]


def _train_cases(seed: int | None) -> list[Case]:
    settings = [(1, 0.1, 10, 40)]
    if seed is not None:
        rng = seeded(seed, 0, 90)
        settings.append((int(rng.integers(2, 2**31)), round(float(rng.uniform(0.01, 0.2)), 3),
                         int(rng.integers(1, 20)), int(rng.integers(20, 2000))))
    return [(f"tiny model, seed {s}, Adam(learning_rate={lr}), alpha={a}, beta={b}",
             (s, lr, a, b), {}) for s, lr, a, b in settings]


def _train_run(name: str, fn: Callable[..., Any], case: Case) -> tuple[np.ndarray, np.ndarray]:
    """One step of ``fn``'s train_step from a fresh G and a fresh Adam: (J, G after)."""
    import keras
    import tensorflow as tf

    seed, lr, alpha, beta = case[1]
    model, layers = _tiny_vgg(seed)
    C, S, G0 = _train_images(seed)
    G = tf.Variable(G0)
    step = call(name, fn, (model, model(C), model(S), keras.optimizers.Adam(learning_rate=lr)),
                {"alpha": alpha, "beta": beta, "style_layers": layers})
    if not callable(step):
        raise Failure(f"must return the train_step function, got {type(step).__name__}")
    J = as_numbers(call("train_step", step, (G,), {}))
    return J, G.numpy().astype(np.float64)


def _train_judge(case: Case, got: Any, want: Any) -> None:
    (J, G), (J_ref, G_ref) = got, want
    compare(J, J_ref)
    G0 = _train_images(case[1][0])[2]
    if np.shape(G) != np.shape(G_ref):
        raise Failure(f"G changed shape: {np.shape(G)}")
    if G.min() < 0 or G.max() > 1:
        raise Failure("G is not clipped to [0, 1] after the update (use clip_0_1)")
    if np.allclose(G, G0):
        raise Failure("G was not updated: apply the gradient with "
                      "optimizer.apply_gradients([(grad, generated_image)])")
    if not np.allclose(G, G_ref, rtol=RTOL, atol=1e-5):
        raise Failure("G after one step differs from the expected update")


@grades(_train_cases, _train_judge, run=_train_run)
def check_make_train_step(fn: Callable[..., Any], seed: int | None = None) -> CheckResult:
    """Check ``make_train_step``: one step of J and of G against the reference's.

    A tiny convolutional model stands in for VGG; the learner's and the reference's steps
    each get a fresh Adam of the same learning rate and a fresh copy of the same G.
    """
