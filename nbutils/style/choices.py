"""Validation of the options that take one of a fixed set of names (init, optimizer, ...).

Each set is a tuple constant next to the code that acts on it (``INITS`` in optimize.py,
``OPTIMIZERS``, ``PREPROCESS``, ``POOLING`` in extras/fast_style.py, ``PRESERVE_COLOR`` in
extras/color.py); the command line offers the same constant as its ``choices``.
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
