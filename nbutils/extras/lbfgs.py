"""L-BFGS on a box [0, 1]^n, for images: few evaluations of f, each step a few dot products.

The two-loop recursion (Nocedal 1980), with projection onto the box (clipping) and a
backtracking (Armijo) line search that usually accepts the first step. Notation: x the
pixels, f(x) the cost and g its gradient; s_k = x_{k+1} - x_k and y_k = g_{k+1} - g_k are
the last m steps and gradient changes; the recursion applies an approximation of the
inverse Hessian H to g without ever forming it. (Cheaper per step than SciPy's L-BFGS-B
on the half a million variables of a 400 x 400 image.)
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import numpy as np

ValueAndGradient = Callable[[np.ndarray], tuple[float, np.ndarray]]


def _dot(a: np.ndarray, b: np.ndarray) -> float:
    """Dot product without BLAS: BLAS threads fight TensorFlow's for the same cores."""
    return float(np.einsum("i,i->", a, b))


def two_loop_direction(g: np.ndarray, history: deque) -> np.ndarray:
    """-H g by the two-loop recursion over ``history`` = [(s, y, 1 / (y.s)), ...], oldest
    first; H_0 = gamma I with gamma = s.y / y.y of the newest pair (identity if empty)."""
    q = g.astype(np.float64, copy=True)
    alphas = []
    for s, y, rho in reversed(history):
        a = rho * _dot(s, q)
        q -= a * y
        alphas.append(a)
    if history:
        s, y, _ = history[-1]
        q *= _dot(s, y) / _dot(y, y)
    for (s, y, rho), a in zip(history, reversed(alphas), strict=True):
        b = rho * _dot(y, q)
        q += (a - b) * s
    return -q


def lbfgs_box(f: ValueAndGradient, x0: np.ndarray, max_evals: int, memory: int = 10,
              lower: float = 0.0, upper: float = 1.0, c1: float = 1e-4,
              should_stop: Callable[[], bool] | None = None) -> np.ndarray:
    """Minimise f over the box [lower, upper]^n with projected L-BFGS; returns the last
    accepted x, in the shape of ``x0`` (any shape; clipped into the box).

    ``f``: ``x -> (value, gradient)``, called at most ``max_evals`` times (one VGG pass
    each here); ``memory``: the number m of (s, y) pairs kept; ``c1``: Armijo's
    sufficient-decrease constant; ``should_stop()``, after every accepted step, ends the run.
    """
    shape = x0.shape
    x = np.clip(x0.astype(np.float64).ravel(), lower, upper)
    value, g = f(x.reshape(shape))
    g = np.asarray(g, np.float64).ravel()
    evals, history = 1, deque(maxlen=memory)
    while evals < max_evals:
        d = two_loop_direction(g, history)
        if not history:  # first step: a gradient step of at most one unit per pixel
            d *= 1.0 / max(np.abs(g).max(), 1e-12)
        t = 1.0
        while evals < max_evals:
            x_new = np.clip(x + t * d, lower, upper)
            value_new, g_new = f(x_new.reshape(shape))
            evals += 1
            g_new = np.asarray(g_new, np.float64).ravel()
            if value_new <= value + c1 * _dot(g, x_new - x):
                break
            t *= 0.5
        else:
            break
        s, y = x_new - x, g_new - g
        sy = _dot(s, y)
        if sy > 1e-10 * _dot(y, y):  # keep the curvature pair only if it is positive
            history.append((s, y, 1.0 / sy))
        x, value, g = x_new, value_new, g_new
        if should_stop is not None and should_stop():
            break
    return x.reshape(shape).astype(x0.dtype)
