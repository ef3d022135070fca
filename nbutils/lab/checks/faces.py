"""Checks of the face recognition exercises: the triplet loss, 1:1 verify, 1:K who_is_it.

``verify`` and ``who_is_it`` call ``img_to_encoding(image_path, model)``. Their checks pass a
precomputed 128-d encoding as ``image_path`` and, while the function runs, put a stand-in
``img_to_encoding`` that returns it into ``fn.__globals__`` (the notebook's namespace for
the learner's function, the reference's module for the reference); the original is
restored afterwards. No photo, detector or encoder is needed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from nbutils.lab.checks.core import (
    ATOL,
    RTOL,
    Case,
    CheckResult,
    Failure,
    Variant,
    as_numbers,
    call,
    default_of,
    grades,
    judge_numbers,
    reference_of,
    seeded,
)

# ---------------------------------------------------------------- the triplet loss


def _triplet_cases(seed: int | None) -> list[Case]:
    import tensorflow as tf

    def triplet(rng: np.random.Generator, m: int, d: int) -> list:
        a = rng.normal(0, 1, (m, d))
        p = a + rng.normal(0, 0.2, (m, d))
        n = a + rng.normal(0, 0.25, (m, d))
        return [tf.constant(x, tf.float32) for x in (a, p, n)]

    specs: list[tuple[int, int, dict]] = [(6, 8, {}), (4, 16, {})]
    if seed is not None:
        rng = seeded(seed, 0, 20)
        big, small = (round(float(rng.uniform(lo, hi)), 3) for lo, hi in ((0.3, 0.8), (0.01, 0.1)))
        specs += [(5, 32, {"alpha": big}), (int(rng.integers(2, 9)), 128, {"alpha": small})]
    return [(f"{m} triplets of {d}-d encodings{', alpha=' + str(kw['alpha']) if kw else ''}",
             (None, triplet(seeded(seed, i + 1, 21 + i), m, d)), kw)
            for i, (m, d, kw) in enumerate(specs)]


def _triplet_variants() -> list[Variant]:
    alpha0 = default_of(reference_of("triplet_loss"), "alpha")

    def parts(y_pred: list, axis: int, squared: bool) -> tuple[Any, Any]:
        a, p, n = (as_numbers(t) for t in y_pred)
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

    return [
        (variant("max_of_sum"), "took the max of the sum: apply max(., 0) to each triplet, "
                                "then sum over the batch"),
        (variant("sum", squared=False), "used the plain distance: the loss uses SQUARED "
                                        "distances ||f(A) - f(P)||^2"),
        (variant("sum", axis=0), "summed over axis 0: the distances are sums over the LAST "
                                 "axis (axis=-1, the encoding)"),
        (variant("mean"), "averaged over the batch: the course's loss is the sum"),
    ]


@grades(_triplet_cases, judge_numbers(_triplet_variants))
def check_triplet_loss(fn: Callable[..., Any], seed: int | None = None) -> CheckResult:
    """Check ``triplet_loss(y_true, y_pred, alpha)`` with y_pred = [A, P, N], each (m, d)."""


# ---------------------------------------------------------------- verify and who_is_it

@contextlib.contextmanager
def _fake_encoder(fn: Callable[..., Any]) -> Iterator[None]:
    """While it runs, give ``fn``'s globals an ``img_to_encoding`` returning its input."""
    def img_to_encoding(image_path: Any, model: Any = None, *args: Any, **kwargs: Any
                        ) -> np.ndarray:
        return np.asarray(image_path, np.float32)

    missing = object()
    namespace = getattr(fn, "__globals__", None)
    if not isinstance(namespace, dict):
        yield
        return
    old = namespace.get("img_to_encoding", missing)
    namespace["img_to_encoding"] = img_to_encoding
    try:
        yield
    finally:
        if old is missing:
            namespace.pop("img_to_encoding", None)
        else:
            namespace["img_to_encoding"] = old


def _database(rng: np.random.Generator) -> dict[str, np.ndarray]:
    names = ["younes", "bertrand", "kian"]
    return {n: (v / np.linalg.norm(v)).astype(np.float32)
            for n, v in zip(names, rng.normal(0, 1, (3, 128)), strict=True)}


def _near(db: dict[str, np.ndarray], name: str, dist: float, rng: np.random.Generator
          ) -> np.ndarray:
    """An encoding at exactly ``dist`` from db[name] (a random direction)."""
    u = rng.normal(0, 1, 128)
    return (db[name] + dist * u / np.linalg.norm(u)).astype(np.float32)


def _door_cases(seed: int | None, key: int, claims: bool) -> list[Case]:
    """Photos at a known distance from someone in a 3-person database (for ``verify``, each
    claims to be that person, but for one impostor); hidden cases draw the person, the
    distance and the threshold from ``seed``."""
    rng = seeded(seed, key, key)
    db = _database(rng)
    people = list(db)
    first, second = people[key % 3], people[(key + 2) % 3]
    specs = [(first, first, 0.3, {}), (second, people[(key + 1) % 3], 0.9, {})]
    if seed is not None:
        for _ in range(2):
            who = people[int(rng.integers(3))]
            threshold = round(float(rng.uniform(0.4, 0.8)), 3)
            dist = round(threshold + float(rng.choice([-1, 1]) * rng.uniform(0.02, 0.2)), 3)
            specs.append((who, who, dist, {"threshold": threshold}))
    cases = []
    for who, claim, dist, kw in specs:
        photo = _near(db, who, dist, rng)
        label = f"distance {dist} from {who!r}" + (
            f", threshold={kw['threshold']}" if kw else "")
        if claims:
            cases.append((f"claims {claim!r}, {label}", (photo, claim, db, None), kw))
        else:
            cases.append((label, (photo, db, None), kw))
    return cases


def _pair(out: Any, second: str) -> tuple[float, Any]:
    if not isinstance(out, tuple | list) or len(out) != 2:
        raise Failure(f"must return a pair (dist, {second}), got {out!r:.80}")
    try:
        return float(np.asarray(out[0]).squeeze()), out[1]
    except (TypeError, ValueError):
        raise Failure(f"the distance must be a number, got {out[0]!r:.80}") from None


def _verify_run(name: str, fn: Callable[..., Any], case: Case) -> tuple[float, bool]:
    with _fake_encoder(fn):
        dist, door_open = _pair(call(name, fn, case[1], case[2]), "door_open")
    try:
        return dist, bool(door_open)
    except (TypeError, ValueError):
        raise Failure(f"door_open must be True or False, got {door_open!r:.80}") from None


def _same_distance(dist: Any, want_dist: float, meaning: str) -> None:
    if not np.isclose(float(dist), want_dist, rtol=RTOL, atol=ATOL):
        raise Failure(f"wrong distance: expected {want_dist:.6f}, got {float(dist):.6f} "
                      f"({meaning})")


def _verify_judge(case: Case, got: Any, want: Any) -> None:
    (dist, door_open), (want_dist, want_open) = got, want
    _same_distance(dist, want_dist, "the L2 norm of the difference of the encodings")
    if bool(door_open) != want_open:
        threshold = case[2].get("threshold", default_of(reference_of("verify"), "threshold"))
        if bool(door_open) == (dist > threshold):
            raise Failure("threshold on the wrong side: the door opens when dist < threshold")
        raise Failure(f"door_open should be {want_open}, got {door_open!r}")


@grades(lambda seed: _door_cases(seed, 1, claims=True),
        _verify_judge, run=_verify_run)
def check_verify(fn: Callable[..., Any], seed: int | None = None) -> CheckResult:
    """Check ``verify(image_path, identity, database, model, threshold)`` (fake encoder)."""


def _who_run(name: str, fn: Callable[..., Any], case: Case) -> tuple[float, str | None]:
    with _fake_encoder(fn):
        dist, identity = _pair(call(name, fn, case[1], case[2]), "identity")
    if identity is not None and not isinstance(identity, str):
        raise Failure(f"the identity must be a name (str) or None, got a "
                      f"{type(identity).__name__}")
    return dist, None if identity is None else str(identity)


def _who_judge(case: Case, got: Any, want: Any) -> None:
    (dist, identity), (want_dist, want_id) = got, want
    _same_distance(dist, want_dist, "the SMALLEST distance to the database's encodings")
    if identity != want_id:
        if want_id is None:
            raise Failure("must return None as the identity when min_dist >= threshold "
                          "(not in the database)")
        raise Failure(f"identity should be {want_id!r}, got {identity!r} (the door opens "
                      "when min_dist < threshold)")


@grades(lambda seed: _door_cases(seed, 2, claims=False),
        _who_judge, run=_who_run)
def check_who_is_it(fn: Callable[..., Any], seed: int | None = None) -> CheckResult:
    """Check ``who_is_it(image_path, database, model, threshold)`` (fake encoder)."""
