"""Validation of the options that take one of a fixed set of names (optimizer, pooling, ...).

Each set is a tuple constant defined next to the code that acts on it (``OPTIMIZERS``,
``PREPROCESS``, ``POOLING`` in fast.py, ``INITS`` in optimize.py, ``PRESERVE_COLOR`` in
color.py); the library checks values against it here and the command line offers it as
its ``choices``. Pure Python, so importing it costs nothing.
"""

from __future__ import annotations

from collections.abc import Sequence


def check_choice(name: str, value: str, choices: Sequence[str]) -> str:
    """``value`` itself when it is one of ``choices``.

    Raises:
        ValueError: "<name> must be one of <choices>, not <value>" otherwise.
    """
    if value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}, not {value!r}")
    return value
