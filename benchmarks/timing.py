"""The one timing helper the benchmarks share (they run as scripts: ``from timing import``)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def seconds(fn: Callable[[], object]) -> float:
    """Wall time of one call ``fn()``."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def median_seconds(fn: Callable[[], object], repeats: int = 5) -> float:
    """Median wall time of ``fn()`` over ``repeats`` calls, after one warm-up call (which
    also traces and compiles)."""
    fn()
    return statistics.median(seconds(fn) for _ in range(repeats))
