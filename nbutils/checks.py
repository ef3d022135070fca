"""Checks of the graded exercises: the learner's function against nbutils's reference.

Each ``check_<name>(fn, hidden=False)`` runs ``fn`` and the reference on fixed inputs (a few
shapes and seeds; ``hidden=True`` adds cases the learner never sees), compares the results
(``np.allclose``, rtol 1e-4), prints "All tests passed" or what differs, and returns a
`CheckResult`. Classic mistakes are named when the wrong value matches a deliberately wrong
variant (alpha/beta swapped, reshape without transpose, max of the sum, ...). An exception
in the learner's code is reported as a failure, never raised.

``verify`` and ``who_is_it`` call ``img_to_encoding(image_path, model)``. Their checks pass a
precomputed 128-d encoding as ``image_path`` and, for the duration of the check, put a
stand-in ``img_to_encoding`` that returns it into ``fn.__globals__`` (the notebook's
namespace, where the learner's function looks it up) and into the reference module; the
originals are restored afterwards. No photo, detector or encoder is needed.

This module is also the registry of the graded functions: each check is declared with
``@_grades(module)``, the module of its reference, which fills ``GRADED`` (name -> module)
and ``CHECKS`` (name -> check), in course order. `nbutils.exercises` and `nbutils.grade`
read them from here.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import io
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

Case = tuple[str, tuple, dict]
Variant = tuple[Callable[..., Any], str]
RTOL, ATOL = 1e-4, 1e-6


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check: whether it passed and what to tell the learner."""

    passed: bool
    message: str


Check = Callable[..., CheckResult]
GRADED: dict[str, str] = {}  # graded function name -> the module of its reference
CHECKS: dict[str, Check] = {}  # graded function name -> check_<name>


def _grades(module: str) -> Callable[[Check], Check]:
    """Register ``check_<name>`` as the check of the graded function ``<module>.<name>``."""
    def register(check: Check) -> Check:
        name = check.__name__.removeprefix("check_")
        GRADED[name] = module
        CHECKS[name] = check
        return check
    return register


def reference_of(name: str) -> Callable[..., Any]:
    """The reference implementation of the graded function ``name`` (imported on demand)."""
    return getattr(importlib.import_module(GRADED[name]), name)


def _default(fn: Callable[..., Any], parameter: str) -> Any:
    """The default value of ``fn``'s ``parameter``."""
    return inspect.signature(fn).parameters[parameter].default


class _Failure(Exception):
    """Internal: a case failed, with the reason to report."""


def _call(name: str, fn: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
    """fn(*args, **kwargs), with its prints silenced and its exceptions turned into _Failure."""
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            return fn(*args, **kwargs)
    except NotImplementedError:
        raise _Failure(f"`{name}` is not implemented yet: replace `raise NotImplementedError` "
                       "with your code") from None
    except Exception as err:  # the learner's bug, reported and not raised
        raise _Failure(f"`{name}` raised {type(err).__name__}: {err}") from None


def _array(value: Any) -> np.ndarray:
    return np.asarray(value.numpy() if hasattr(value, "numpy") else value, dtype=np.float64)


def _close(a: Any, b: Any) -> bool:
    a, b = _array(a), _array(b)
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=RTOL, atol=ATOL))


def _compare(out: Any, expected: Any, args: tuple, kwargs: dict,
             variants: Sequence[Variant] = ()) -> None:
    """Raise _Failure when ``out`` differs from ``expected``, naming a known mistake if any."""
    if out is None:
        raise _Failure("returned None: did you forget the `return`?")
    try:
        got = _array(out)
    except (TypeError, ValueError) as err:
        raise _Failure(f"returned a {type(out).__name__}, not numbers ({err})") from None
    want = _array(expected)
    if got.shape != want.shape:
        what = "not a scalar" if want.shape == () else "wrong output shape"
        raise _Failure(f"{what}: expected shape {want.shape}, got {got.shape}")
    if _close(got, want):
        return
    for variant, reason in variants:
        wrong = variant(*args, **kwargs)
        if not _close(wrong, want) and _close(got, wrong):
            raise _Failure(reason)
    raise _Failure(f"wrong value: expected {np.round(want, 6).tolist()}, "
                   f"got {np.round(got, 6).tolist()}")


def _run(name: str, cases: Sequence[Case], check_case: Callable[[str, tuple, dict], None]
         ) -> CheckResult:
    """Run every case; the first failure makes the result (and is printed)."""
    for label, args, kwargs in cases:
        try:
            check_case(label, args, kwargs)
        except _Failure as failure:
            result = CheckResult(False, f"{name}: {failure} [test: {label}]")
            print(result.message)
            return result
    result = CheckResult(True, f"{name}: All tests passed ({len(cases)} tests)")
    print(result.message)
    return result


def _numeric_check(name: str, fn: Callable[..., Any], reference: Callable[..., Any],
                   cases: Sequence[Case], variants: Sequence[Variant] = ()) -> CheckResult:
    def check_case(label: str, args: tuple, kwargs: dict) -> None:
        out = _call(name, fn, args, kwargs)
        _compare(out, reference(*args, **kwargs), args, kwargs, variants)

    return _run(name, cases, check_case)


def _tensor(rng: np.random.Generator, shape: tuple[int, ...], scale: float = 4.0) -> Any:
    import tensorflow as tf

    return tf.constant(rng.normal(1.0, scale, shape), tf.float32)


# ---------------------------------------------------------------- neural style transfer costs

def _dims(a: Any) -> tuple[float, float, float]:
    _, n_H, n_W, n_C = (float(d) for d in np.shape(a))
    return n_H, n_W, n_C


def _activation_cases(shapes: Sequence[tuple[int, ...]], seed_offset: int,
                      arguments: Callable[[np.random.Generator, tuple[int, ...]], tuple]
                      ) -> list[Case]:
    """One case per activation shape, its arguments drawn by ``arguments(rng, shape)`` from a
    generator seeded with the case's number (from 1) plus ``seed_offset``."""
    return [(f"activations of shape {shape}",
             arguments(np.random.default_rng(seed + seed_offset), shape), {})
            for seed, shape in enumerate(shapes, start=1)]


@_grades("nbutils.style.costs")
def check_compute_content_cost(fn: Callable[..., Any], hidden: bool = False) -> CheckResult:
    """Check ``compute_content_cost(content_output, generated_output)``."""
    reference = reference_of("compute_content_cost")

    def outputs(rng: np.random.Generator, shape: tuple[int, ...]) -> list:
        return [_tensor(rng, (1, 2, 2, 2)), _tensor(rng, shape)]  # a style layer, the content's

    shapes = [(1, 4, 4, 3), (1, 3, 5, 2)] + ([(1, 6, 2, 7), (1, 1, 1, 1)] if hidden else [])
    cases = _activation_cases(shapes, 100 if hidden else 0,
                              lambda rng, shape: (outputs(rng, shape), outputs(rng, shape)))

    def sq(c: list, g: list) -> float:
        return float(np.sum(np.square(_array(c[-1]) - _array(g[-1]))))

    variants = [
        (lambda c, g: sq(c, g), "wrong normalisation: divide the sum by 4 * n_H * n_W * n_C"),
        (lambda c, g: sq(c, g) / np.prod(_dims(g[-1])),
         "wrong normalisation: the factor is 1 / (4 * n_H * n_W * n_C), the 4 is missing"),
        (lambda c, g: sq(c, g) / (4 * np.prod(_dims(g[-1])) ** 2),
         "wrong normalisation: the factor is 1 / (4 * n_H * n_W * n_C), not squared"),
        (lambda c, g: reference(c[:1], g[:1]),
         "used the first layer's activations: the content layer is the LAST element of each list"),
    ]
    return _numeric_check("compute_content_cost", fn, reference, cases, variants)


@_grades("nbutils.style.costs")
def check_gram_matrix(fn: Callable[..., Any], hidden: bool = False) -> CheckResult:
    """Check ``gram_matrix(A)`` for A of shape (n_C, n_H * n_W)."""
    reference = reference_of("gram_matrix")

    shapes = [(3, 2), (4, 6)] + ([(5, 9), (1, 3)] if hidden else [])
    cases = [(f"A of shape {s}", (_tensor(np.random.default_rng(i + (50 if hidden else 0)), s),),
              {}) for i, s in enumerate(shapes)]

    def check_case(label: str, args: tuple, kwargs: dict) -> None:
        out = _call("gram_matrix", fn, args, kwargs)
        n_C, m = np.shape(args[0])
        if out is not None and np.shape(out) == (m, m) and m != n_C:
            raise _Failure("computed A^T A: the Gram matrix is A A^T, shape (n_C, n_C)")
        A = _array(args[0])
        variants = [(lambda a: A @ A.T / A.shape[1],
                     "divided by n_H * n_W: the Gram matrix has no normalisation factor "
                     "(the factor belongs to the style cost)")]
        _compare(out, reference(*args), args, kwargs, variants)

    return _run("gram_matrix", cases, check_case)


def _style_variants() -> list[Variant]:
    def parts(a_S: Any, a_G: Any, transpose: bool = True) -> tuple[float, float, float, float]:
        def gram(a: Any) -> np.ndarray:
            x = _array(a)
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


@_grades("nbutils.style.costs")
def check_compute_layer_style_cost(fn: Callable[..., Any], hidden: bool = False) -> CheckResult:
    """Check ``compute_layer_style_cost(a_S, a_G)``."""
    reference = reference_of("compute_layer_style_cost")

    shapes = [(1, 4, 4, 3), (1, 3, 5, 4)] + ([(1, 2, 7, 5), (1, 6, 6, 2)] if hidden else [])
    cases = _activation_cases(shapes, 200 if hidden else 10,
                              lambda rng, shape: (_tensor(rng, shape), _tensor(rng, shape)))
    return _numeric_check("compute_layer_style_cost", fn, reference, cases, _style_variants())


@_grades("nbutils.style.costs")
def check_compute_style_cost(fn: Callable[..., Any], hidden: bool = False) -> CheckResult:
    """Check ``compute_style_cost(style_image_output, generated_image_output, STYLE_LAYERS)``."""
    from nbutils.style.costs import STYLE_LAYERS

    reference = reference_of("compute_style_cost")
    layer_cost = reference_of("compute_layer_style_cost")

    def outputs(rng: np.random.Generator, n: int) -> list:
        shapes = [(1, 4 - i % 3, 3 + i % 2, 2 + i) for i in range(n)] + [(1, 2, 2, 3)]
        return [_tensor(rng, s) for s in shapes]

    rng = np.random.default_rng(3 + (300 if hidden else 0))
    cases: list[Case] = [("the 5 STYLE_LAYERS (default argument)",
                          (outputs(rng, 5), outputs(rng, 5)), {})]
    layers = [("a", 0.5), ("b", 0.3), ("c", 0.2)]
    cases.append((f"STYLE_LAYERS = {layers}", (outputs(rng, 3), outputs(rng, 3), layers), {}))
    if hidden:
        odd = [("x", 0.9), ("y", 0.1)]
        cases.append((f"STYLE_LAYERS = {odd}", (outputs(rng, 2), outputs(rng, 2), odd), {}))

    def unweighted(s: list, g: list, style_layers: Any = STYLE_LAYERS) -> float:
        return sum(float(layer_cost(a, b)) for a, b in zip(s[:-1], g[:-1], strict=True))

    def with_content(s: list, g: list, style_layers: Any = STYLE_LAYERS) -> float:
        weights = [w for _, w in style_layers]
        return float(reference(s, g, style_layers)) + weights[-1] * float(
            layer_cost(s[-1], g[-1]))

    variants = [(unweighted, "forgot the weights lambda_l of STYLE_LAYERS"),
                (with_content, "included the last element (the content layer) in the sum")]
    return _numeric_check("compute_style_cost", fn, reference, cases, variants)


@_grades("nbutils.style.costs")
def check_total_cost(fn: Callable[..., Any], hidden: bool = False) -> CheckResult:
    """Check ``total_cost(J_content, J_style, alpha, beta)``, including its defaults."""
    reference = reference_of("total_cost")
    alpha0, beta0 = _default(reference, "alpha"), _default(reference, "beta")

    cases: list[Case] = [("total_cost(1, 0)", (1.0, 0.0), {}), ("total_cost(0, 1)", (0.0, 1.0), {}),
                         ("total_cost(0.5, 2, alpha=1, beta=3)", (0.5, 2.0),
                          {"alpha": 1, "beta": 3})]
    if hidden:
        cases += [("total_cost(3, 7, alpha=2, beta=5)", (3.0, 7.0), {"alpha": 2, "beta": 5}),
                  ("total_cost(0.25, 0.125)", (0.25, 0.125), {})]
    variants = [
        (lambda jc, js, alpha=alpha0, beta=beta0: beta * jc + alpha * js,
         "alpha and beta swapped: J = alpha * J_content + beta * J_style"),
        (lambda jc, js, alpha=alpha0, beta=beta0: alpha0 * jc + beta0 * js,
         f"ignores the alpha and beta arguments (hard-coded {alpha0} and {beta0}?)"),
    ]
    return _numeric_check("total_cost", fn, reference, cases, variants)


# ---------------------------------------------------------------- the train step

def _tiny_vgg(seed: int) -> tuple[Any, list[tuple[str, float]]]:
    """A 2-conv stand-in for VGG: outputs [conv1, conv2, conv2] (2 style layers + content)."""
    import keras

    inp = keras.Input(shape=(8, 8, 3))
    init = keras.initializers.GlorotUniform
    c1 = keras.layers.Conv2D(4, 3, padding="same", kernel_initializer=init(seed=seed),
                             name="c1")(inp)
    c2 = keras.layers.Conv2D(3, 3, padding="same", kernel_initializer=init(seed=seed + 1),
                             name="c2")(c1)
    return keras.Model(inp, [c1, c2, c2]), [("c1", 0.5), ("c2", 0.5)]


@_grades("nbutils.style.optimize")
def check_make_train_step(fn: Callable[..., Any], hidden: bool = False) -> CheckResult:
    """Check ``make_train_step``: one step of J and of G against the reference's.

    A tiny convolutional model stands in for VGG; the learner's and the reference's steps
    each get a fresh Adam of the same learning rate and a fresh copy of the same G.
    """
    import keras
    import tensorflow as tf

    reference = reference_of("make_train_step")

    settings = [(1, 0.1, 10, 40)] + ([(7, 0.05, 1, 1000)] if hidden else [])
    cases = [(f"tiny model, seed {s}, Adam(learning_rate={lr}), alpha={a}, beta={b}",
              (s, lr, a, b), {}) for s, lr, a, b in settings]

    def check_case(label: str, args: tuple, kwargs: dict) -> None:
        seed, lr, alpha, beta = args
        model, layers = _tiny_vgg(seed)
        rng = np.random.default_rng(seed)
        images = [tf.constant(rng.uniform(0, 1, (1, 8, 8, 3)), tf.float32) for _ in range(3)]
        a_C, a_S = model(images[0]), model(images[1])
        results = []
        for step_fn, who in ((reference, "reference"), (fn, "make_train_step")):
            G = tf.Variable(images[2])
            opt = keras.optimizers.Adam(learning_rate=lr)
            step = _call(who, step_fn, (model, a_C, a_S, opt),
                         {"alpha": alpha, "beta": beta, "style_layers": layers})
            if not callable(step):
                raise _Failure("must return the train_step function, got "
                               f"{type(step).__name__}")
            J = _call("train_step", step, (G,), {})
            results.append((J, G.numpy()))
        (J_ref, G_ref), (J, G) = results
        _compare(J, J_ref, (), {})
        if G.min() < 0 or G.max() > 1:
            raise _Failure("G is not clipped to [0, 1] after the update (use clip_0_1)")
        if np.allclose(G, images[2].numpy()):
            raise _Failure("G was not updated: apply the gradient with "
                           "optimizer.apply_gradients([(grad, generated_image)])")
        if not np.allclose(G, G_ref, rtol=RTOL, atol=1e-5):
            raise _Failure("G after one step differs from the expected update")

    return _run("make_train_step", cases, check_case)


# ---------------------------------------------------------------- faces

@_grades("nbutils.triplet")
def check_triplet_loss(fn: Callable[..., Any], hidden: bool = False) -> CheckResult:
    """Check ``triplet_loss(y_true, y_pred, alpha)`` with y_pred = [A, P, N], each (m, d)."""
    import tensorflow as tf

    reference = reference_of("triplet_loss")
    alpha0 = _default(reference, "alpha")

    def triplet(seed: int, m: int, d: int) -> list:
        rng = np.random.default_rng(seed)
        a = rng.normal(0, 1, (m, d))
        p = a + rng.normal(0, 0.2, (m, d))
        n = a + rng.normal(0, 0.25, (m, d))
        return [tf.constant(x, tf.float32) for x in (a, p, n)]

    specs = [(1, 6, 8, {}), (2, 4, 16, {})]
    specs += [(11, 5, 32, {"alpha": 0.5}), (12, 3, 128, {"alpha": 0.05})] if hidden else []
    cases = [(f"{m} triplets of {d}-d encodings{', alpha=' + str(kw['alpha']) if kw else ''}",
              (None, triplet(seed, m, d)), kw) for seed, m, d, kw in specs]

    def parts(y_pred: list, axis: int = -1, squared: bool = True) -> tuple[Any, Any]:
        a, p, n = (_array(t) for t in y_pred)
        dist = (lambda x: np.sum(x**2, axis=axis)) if squared else \
            (lambda x: np.sqrt(np.sum(x**2, axis=axis)))
        return dist(a - p), dist(a - n)

    def variant(reduce: str, axis: int = -1, squared: bool = True) -> Callable[..., float]:
        def loss(y_true: Any, y_pred: list, alpha: float = alpha0) -> float:
            pos, neg = parts(y_pred, axis, squared)
            basic = pos - neg + alpha
            if reduce == "max_of_sum":
                return float(max(np.sum(basic), 0.0))
            hinge = np.maximum(basic, 0.0)
            return float(np.mean(hinge) if reduce == "mean" else np.sum(hinge))
        return loss

    variants = [
        (variant("max_of_sum"), "took the max of the sum: apply max(., 0) to each triplet, "
                                "then sum over the batch"),
        (variant("sum", squared=False), "used the plain distance: the loss uses SQUARED "
                                        "distances ||f(A) - f(P)||^2"),
        (variant("sum", axis=0), "summed over axis 0: the distances are sums over the LAST "
                                 "axis (axis=-1, the encoding)"),
        (variant("mean"), "averaged over the batch: the course's loss is the sum"),
    ]
    return _numeric_check("triplet_loss", fn, reference, cases, variants)


@contextlib.contextmanager
def _fake_encoder(*fns: Callable[..., Any]) -> Iterator[None]:
    """Temporarily give each function's globals an ``img_to_encoding`` returning its input."""
    def img_to_encoding(image_path: Any, model: Any = None, *args: Any, **kwargs: Any
                        ) -> np.ndarray:
        return np.asarray(image_path, np.float32)

    missing = object()
    saved = []
    for f in fns:
        namespace = getattr(f, "__globals__", None)
        if namespace is not None:
            saved.append((namespace, namespace.get("img_to_encoding", missing)))
            namespace["img_to_encoding"] = img_to_encoding
    try:
        yield
    finally:
        for namespace, old in reversed(saved):
            if old is missing:
                namespace.pop("img_to_encoding", None)
            else:
                namespace["img_to_encoding"] = old


def _database(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    names = ["younes", "bertrand", "kian"]
    return {n: (v / np.linalg.norm(v)).astype(np.float32)
            for n, v in zip(names, rng.normal(0, 1, (3, 128)), strict=True)}


def _near(db: dict[str, np.ndarray], name: str, dist: float, seed: int) -> np.ndarray:
    """An encoding at exactly ``dist`` from db[name] (a random direction)."""
    u = np.random.default_rng(seed).normal(0, 1, 128)
    return (db[name] + dist * u / np.linalg.norm(u)).astype(np.float32)


def _pair(out: Any, second: str) -> tuple[float, Any]:
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise _Failure(f"must return a pair (dist, {second}), got {out!r:.80}")
    try:
        return float(np.asarray(out[0]).squeeze()), out[1]
    except (TypeError, ValueError):
        raise _Failure(f"the distance must be a number, got {out[0]!r:.80}") from None


def _checked_distance(name: str, fn: Callable[..., Any], reference: Callable[..., Any],
                      args: tuple, kwargs: dict, answer: str, meaning: str
                      ) -> tuple[float, Any, Any]:
    """Run the reference and ``fn`` (both return (dist, ``answer``)) under `_fake_encoder`;
    fail unless the distances agree (``meaning`` says which distance it is).

    Returns:
        (dist, fn's answer, the reference's answer).
    """
    with _fake_encoder(fn, reference):
        want_dist, want = _call("reference", reference, args, kwargs)
        dist, got = _pair(_call(name, fn, args, kwargs), answer)
    if not np.isclose(dist, want_dist, rtol=RTOL, atol=ATOL):
        raise _Failure(f"wrong distance: expected {want_dist:.6f}, got {dist:.6f} ({meaning})")
    return dist, got, want


@_grades("nbutils.faces.recognition")
def check_verify(fn: Callable[..., Any], hidden: bool = False) -> CheckResult:
    """Check ``verify(image_path, identity, database, model, threshold)`` (fake encoder)."""
    reference = reference_of("verify")
    threshold0 = _default(reference, "threshold")

    db = _database(1)
    specs = [("younes", "younes", 0.3, {}), ("kian", "bertrand", 0.9, {})]
    if hidden:
        specs += [("bertrand", "bertrand", 0.55, {"threshold": 0.5}),
                  ("kian", "kian", 0.65, {"threshold": 0.7})]
    cases = [(f"claims {claim!r}, distance {d} from {who!r}"
              f"{', threshold=' + str(kw['threshold']) if kw else ''}",
              (_near(db, who, d, i), claim, db, None), kw)
             for i, (who, claim, d, kw) in enumerate(specs)]

    def check_case(label: str, args: tuple, kwargs: dict) -> None:
        dist, door_open, want_open = _checked_distance(
            "verify", fn, reference, args, kwargs, "door_open",
            "the L2 norm of the difference of the encodings")
        if bool(door_open) != want_open:
            if bool(door_open) == (dist > kwargs.get("threshold", threshold0)):
                raise _Failure("threshold on the wrong side: the door opens when "
                               "dist < threshold")
            raise _Failure(f"door_open should be {want_open}, got {door_open!r}")

    return _run("verify", cases, check_case)


@_grades("nbutils.faces.recognition")
def check_who_is_it(fn: Callable[..., Any], hidden: bool = False) -> CheckResult:
    """Check ``who_is_it(image_path, database, model, threshold)`` (fake encoder)."""
    reference = reference_of("who_is_it")

    db = _database(2)
    specs = [("bertrand", 0.3, {}), ("kian", 0.8, {})]
    if hidden:
        specs += [("younes", 0.45, {"threshold": 0.4}), ("kian", 0.65, {"threshold": 0.7})]
    cases = [(f"distance {d} from {who!r}{', threshold=' + str(kw['threshold']) if kw else ''}",
              (_near(db, who, d, 10 + i), db, None), kw)
             for i, (who, d, kw) in enumerate(specs)]

    def check_case(label: str, args: tuple, kwargs: dict) -> None:
        _, identity, want_id = _checked_distance(
            "who_is_it", fn, reference, args, kwargs, "identity",
            "the SMALLEST distance to the database's encodings")
        if identity != want_id:
            if want_id is None:
                raise _Failure("must return None as the identity when min_dist >= threshold "
                               "(not in the database)")
            raise _Failure(f"identity should be {want_id!r}, got {identity!r} (the door "
                           "opens when min_dist < threshold)")

    return _run("who_is_it", cases, check_case)


def grade_namespace(names: Sequence[str], namespace: dict[str, Any]) -> dict[str, dict]:
    """Run ``check_<name>(namespace[name], hidden=True)`` for each name, silently.

    Returns {name: {"passed": bool, "message": str}}; a name missing from the namespace
    fails with "not defined". Used by the grader inside the student's kernel.
    """
    report = {}
    for name in names:
        if not callable(namespace.get(name)):
            report[name] = {"passed": False, "message": f"{name}: not defined"}
            continue
        with contextlib.redirect_stdout(io.StringIO()):
            result = CHECKS[name](namespace[name], hidden=True)
        report[name] = {"passed": result.passed, "message": result.message}
    return report
