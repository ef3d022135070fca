"""Figures that pyplot never sees, for drawing off the kernel's main thread: ``subplots``
and ``off_pyplot``.

    with off_pyplot():        # in this thread (or task) only
        fig = show_images(...)    # a plain Figure: not in pyplot's list, never auto-shown

Why: JupyterLab sends widget messages to a kernel subshell, a thread of its own
(ipykernel >= 7), and every comm message fires IPython's ``post_execute`` there
(ipykernel issue 1564), so the inline backend draws and closes *every* pyplot figure from
that thread, including one the main thread is drawing at that moment. One figure drawn by
two threads at once comes out blank: a figure of the right size with nothing painted.
A ``Figure`` made without pyplot is drawn only by the thread that made it.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from typing import Any

from matplotlib import pyplot as plt
from matplotlib.figure import Figure

_OFF_PYPLOT = contextvars.ContextVar("nbutils_off_pyplot", default=False)


def subplots(*args: Any, figsize: tuple[float, float] | None = None,
             **kwargs: Any) -> tuple[Figure, Any]:
    """``plt.subplots(*args, figsize=..., **kwargs)``; inside ``off_pyplot()``, the same grid
    on a ``Figure`` that pyplot does not hold."""
    if not _OFF_PYPLOT.get():
        return plt.subplots(*args, figsize=figsize, **kwargs)
    fig = Figure(figsize=figsize)
    return fig, fig.subplots(*args, **kwargs)


@contextlib.contextmanager
def off_pyplot() -> Iterator[None]:
    """Inside it, `subplots` in this thread (or asyncio task) makes figures pyplot never sees."""
    token = _OFF_PYPLOT.set(True)
    try:
        yield
    finally:
        _OFF_PYPLOT.reset(token)
