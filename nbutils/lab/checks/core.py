"""How a check works: run the answer and the reference on the same cases, then judge.

An `Exercise` says, for one graded function, which cases to try (``cases(seed)``: the
visible ones for ``seed=None``, hidden ones drawn from ``seed`` otherwise), how to run a
function on a case and reduce what it returns to plain data (``run``: arrays, numbers,
bools, strings), and how to compare the answer's data with the reference's (``judge``,
which names a classic mistake when it recognises one).

The two runs are kept apart, so that they can happen in different processes (the grader
runs the answers in a process of their own, `nbutils.lab.answers`): ``run`` on the answer gives
*outcomes* (a value, or the reason it failed, as JSON-able data); ``run`` on the reference
gives the expected values; `judge_outcomes` compares them. While an answer runs, every
graded reference is *withheld*: its code is swapped for one that raises, so an answer that
is, or calls, nbutils' own implementation fails, whatever name it reaches it by.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import inspect
import io
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

Case = tuple[str, tuple, dict]  # (label shown to the learner, args, kwargs)
Variant = tuple[Callable[..., Any], str]  # (a deliberately wrong formula, what it gets wrong)
RTOL, ATOL = 1e-4, 1e-6
WITHHELD = "nbutils reference withheld: "
MAX_ELEMENTS = 1_000_000  # bound on an array in an outcome (the checks' largest is 8x8x3)
MAX_TEXT = 2_000


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check: whether it passed and what to tell the learner."""

    passed: bool
    message: str


class Failure(Exception):
    """A case failed, with the reason to report to the learner."""


@dataclass(frozen=True)
class Exercise:
    """One graded function: its cases, how to run a function on one, how to judge."""

    name: str
    module: str  # where the reference lives
    cases: Callable[[int | None], list[Case]]
    run: Callable[[str, Callable[..., Any], Case], Any]
    judge: Callable[[Case, Any, Any], None]


#: The graded functions, in course order -> the module of each one's reference.
GRADED: dict[str, str] = {
    "compute_content_cost": "nbutils.style.costs",
    "gram_matrix": "nbutils.style.costs",
    "compute_layer_style_cost": "nbutils.style.costs",
    "compute_style_cost": "nbutils.style.costs",
    "total_cost": "nbutils.style.costs",
    "make_train_step": "nbutils.style.optimize",
    "triplet_loss": "nbutils.triplet",
    "verify": "nbutils.faces.recognition",
    "who_is_it": "nbutils.faces.recognition",
}


def reference_of(name: str) -> Callable[..., Any]:
    """The reference implementation of the graded function ``name`` (imported on demand)."""
    return getattr(importlib.import_module(GRADED[name]), name)


def default_of(fn: Callable[..., Any], parameter: str) -> Any:
    """The default value of ``fn``'s ``parameter``."""
    return inspect.signature(fn).parameters[parameter].default


def call(name: str, fn: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
    """fn(*args, **kwargs), its prints silenced and its exceptions turned into Failure."""
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            return fn(*args, **kwargs)
    except NotImplementedError:
        raise Failure(f"`{name}` is not implemented yet: replace `raise NotImplementedError` "
                      "with your code") from None
    except Exception as err:  # the learner's bug, reported and not raised
        if str(err).startswith(WITHHELD):
            raise Failure(f"calls the reference {str(err)[len(WITHHELD):]} from nbutils: the "
                          "answer must compute it itself") from None
        raise Failure(f"`{name}` raised {type(err).__name__}: {err}") from None


def as_numbers(out: Any) -> np.ndarray:
    """What a function returned, as a float64 array (Failure when it is not numbers)."""
    if out is None:
        raise Failure("returned None: did you forget the `return`?")
    try:
        return np.asarray(out.numpy() if hasattr(out, "numpy") else out, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise Failure(f"returned a {type(out).__name__}, not numbers ({err})") from None


def close(a: Any, b: Any) -> bool:
    a, b = as_numbers(a), as_numbers(b)
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=RTOL, atol=ATOL))


def compare(got: np.ndarray, want: np.ndarray, args: tuple = (), kwargs: dict | None = None,
            variants: Sequence[Variant] = ()) -> None:
    """Raise Failure when ``got`` differs from ``want``, naming a known mistake if any."""
    got, want = as_numbers(got), as_numbers(want)
    if got.shape != want.shape:
        what = "not a scalar" if want.shape == () else "wrong output shape"
        raise Failure(f"{what}: expected shape {want.shape}, got {got.shape}")
    if close(got, want):
        return
    for variant, reason in variants:
        wrong = variant(*args, **(kwargs or {}))
        if not close(wrong, want) and close(got, wrong):
            raise Failure(reason)
    raise Failure(f"wrong value: expected {np.round(want, 6).tolist()}, "
                  f"got {np.round(got, 6).tolist()}")


def run_numbers(name: str, fn: Callable[..., Any], case: Case) -> np.ndarray:
    """The usual ``run``: call fn on the case, return its result as numbers."""
    _, args, kwargs = case
    return as_numbers(call(name, fn, args, kwargs))


def judge_numbers(variants: Callable[[], Sequence[Variant]] = list
                  ) -> Callable[[Case, Any, Any], None]:
    """The usual ``judge``: equal within tolerance, else the classic mistake it matches."""
    def judge(case: Case, got: Any, want: Any) -> None:
        compare(got, want, case[1], case[2], variants())
    return judge


# ---------------------------------------------------------------- withholding the references

def _withheld(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError("nbutils reference withheld: {}")  # "{}": the name, set below


def _withheld_code(name: str, module: str) -> Any:
    """A code object for ``name`` that raises RuntimeError(WITHHELD + its dotted name)."""
    code = _withheld.__code__
    message = WITHHELD + f"{module}.{name}"
    return code.replace(co_name=name, co_consts=tuple(
        message if c == WITHHELD + "{}" else c for c in code.co_consts))  # a literal, not a
    # format: the code runs with the reference's globals, where no name of ours exists


def withhold_references() -> dict[Callable[..., Any], Any]:
    """Swap the code of every graded reference for one that raises; return the originals.

    The function objects stay (an answer that imported one still holds it), so every way
    to reach a reference - any name, module attribute or wrapper - reaches the stand-in.
    """
    originals = {}
    for name, module in GRADED.items():
        fn = reference_of(name)
        originals[fn] = fn.__code__
        fn.__code__ = _withheld_code(name, module)
    return originals


@contextlib.contextmanager
def references_withheld() -> Iterator[None]:
    originals = withhold_references()
    try:
        yield
    finally:
        for fn, code in originals.items():
            fn.__code__ = code


# ---------------------------------------------------------------- outcomes and judging

def answer_outcomes(exercise: Exercise, fn: Any, reference: Callable[..., Any],
                    cases: Sequence[Case]) -> list[dict]:
    """Run the answer on each case, up to the first failure, references withheld by the
    caller: [{"value": encoded}] per case, or {"failure": reason} last."""
    name = exercise.name
    if fn is reference:
        return [{"failure": f"is the reference {exercise.module}.{name} itself, imported "
                            "from nbutils: write your own implementation"}]
    if not callable(fn):
        return [{"failure": f"`{name}` is not defined (run its cell)"}]
    outcomes = []
    for case in cases:
        try:
            outcomes.append({"value": encode(exercise.run(name, fn, case))})
        except Failure as failure:
            outcomes.append({"failure": str(failure)[:MAX_TEXT]})
            break
        except Exception as err:  # raised while reading what the answer returned
            outcomes.append({"failure": f"returned a value the check cannot use "
                                        f"({type(err).__name__}: {err})"[:MAX_TEXT]})
            break
    return outcomes


def judge_outcomes(exercise: Exercise, cases: Sequence[Case], outcomes: Sequence[Any],
                   wants: Sequence[Any]) -> CheckResult:
    """Compare the answer's outcomes (from `answer_outcomes`, possibly sent by another
    process: checked as untrusted data) with the reference's values, case by case."""
    name = exercise.name
    for i, (case, want) in enumerate(zip(cases, wants, strict=True)):
        outcome = outcomes[i] if i < len(outcomes) else None
        try:
            if not isinstance(outcome, dict) or not ({"value"} == set(outcome)
                                                     or {"failure"} == set(outcome)):
                raise Failure("no result came back for this test")
            if "failure" in outcome:
                raise Failure(str(outcome["failure"])[:MAX_TEXT])
            exercise.judge(case, decode(outcome["value"]), want)
        except Failure as failure:
            return CheckResult(False, f"{name}: {failure} [test: {case[0]}]")
        except Exception as err:  # a value of an unexpected type or form
            return CheckResult(False, f"{name}: returned a value the check cannot use "
                                      f"({type(err).__name__}: {err}) [test: {case[0]}]")
    return CheckResult(True, f"{name}: All tests passed ({len(cases)} tests)")


def check(exercise: Exercise, fn: Callable[..., Any], seed: int | None = None) -> CheckResult:
    """Check ``fn`` in this process: the visible cases, or the hidden ones of ``seed``.

    The reference runs first; then the answer runs with the references withheld.
    Prints the message and returns the result.
    """
    name = exercise.name
    reference = reference_of(name)
    cases = exercise.cases(seed)
    wants = [exercise.run(name, reference, case) for case in cases]
    with references_withheld():
        outcomes = answer_outcomes(exercise, fn, reference, cases)
    result = judge_outcomes(exercise, cases, outcomes, wants)
    print(result.message)
    return result


def grades(cases: Callable[[int | None], list[Case]],
           judge: Callable[[Case, Any, Any], None],
           run: Callable[[str, Callable[..., Any], Case], Any] = run_numbers
           ) -> Callable[[Callable[..., Any]], Callable[..., CheckResult]]:
    """Make the decorated ``check_<name>`` (its name and docstring; its body is not run) the
    check of the graded function ``<name>``: ``check_<name>(fn, seed=None)``, with its
    `Exercise` as the attribute ``exercise``."""
    def make(stub: Callable[..., Any]) -> Callable[..., CheckResult]:
        name = stub.__name__.removeprefix("check_")
        exercise = Exercise(name, GRADED[name], cases, run, judge)

        @functools.wraps(stub)
        def check_fn(fn: Callable[..., Any], seed: int | None = None) -> CheckResult:
            return check(exercise, fn, seed)

        check_fn.exercise = exercise  # type: ignore[attr-defined]
        return check_fn
    return make


def seeded(seed: int | None, visible: int, hidden: int) -> np.random.Generator:
    """The generator of one case: a fixed stream for visible cases, one drawn from the
    grader's ``seed`` (and the case's number) for hidden ones."""
    return np.random.default_rng(visible if seed is None else [seed, hidden])


# ---------------------------------------------------------------- outcomes as JSON

def encode(value: Any) -> Any:
    """Plain data (arrays, tuples, numbers, bools, strings, None) as JSON-able data."""
    if isinstance(value, np.ndarray):
        return {"shape": list(value.shape), "data": value.astype(np.float64).ravel().tolist()}
    if isinstance(value, tuple):
        return {"tuple": [encode(v) for v in value]}
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise TypeError(f"cannot encode a {type(value).__name__}")


def decode(data: Any, depth: int = 0) -> Any:
    """The inverse of `encode`, for data from an untrusted process: every size is bounded."""
    if depth > 4:
        raise ValueError("nested too deeply")
    if data is None or isinstance(data, bool | float | str):
        return data if not isinstance(data, str) else data[:MAX_TEXT]
    if isinstance(data, int):
        return float(data)
    if isinstance(data, dict) and set(data) == {"tuple"} and isinstance(data["tuple"], list):
        if len(data["tuple"]) > 8:
            raise ValueError("tuple too long")
        return tuple(decode(v, depth + 1) for v in data["tuple"])
    if isinstance(data, dict) and set(data) == {"shape", "data"}:
        shape, flat = data["shape"], data["data"]
        if not (isinstance(shape, list) and len(shape) <= 8
                and all(isinstance(d, int) and 0 <= d <= MAX_ELEMENTS for d in shape)
                and isinstance(flat, list) and len(flat) <= MAX_ELEMENTS
                and math.prod(shape) == len(flat)):
            raise ValueError("malformed array")
        return np.asarray(flat, dtype=np.float64).reshape(shape)
    raise ValueError(f"unexpected {type(data).__name__}")
