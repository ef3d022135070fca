"""Notebook parameters that the environment may override.

A notebook's parameter cell reads each setting through `setting`, so CI can run the very
same code small (``NBUTILS_IMG_SIZE=128 NBUTILS_EPOCHS=30``) while users get the default.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TypeVar

T = TypeVar("T", int, float, str, bool)

PREFIX = "NBUTILS_"
REPO_ROOT = Path(__file__).resolve().parent.parent


def setting(name: str, default: T) -> T:
    """The value of parameter ``name``: ``$NBUTILS_<NAME>`` if set, else ``default``.

    The environment's string is converted to the type of ``default`` (int, float, str or
    bool: "1/true/yes" and "0/false/no").
    """
    raw = os.environ.get(PREFIX + name.upper())
    if raw is None:
        return default
    try:
        if isinstance(default, bool):
            value = {"1": True, "true": True, "yes": True,
                     "0": False, "false": False, "no": False}[raw.strip().lower()]
        else:
            value = type(default)(raw)
    except (KeyError, ValueError):
        raise ValueError(
            f"environment variable {PREFIX + name.upper()}={raw!r} is not a valid "
            f"{type(default).__name__}; unset it or give a value like {default!r}"
        ) from None
    print(f"{name} = {value!r} (from ${PREFIX + name.upper()}; the default is {default!r})")
    return value


def output_path(name: str) -> Path:
    """Where a notebook saves result ``name``: ``$NBUTILS_OUTPUT_DIR`` or ``outputs/`` at the
    repository root (whatever the notebook's working directory). The folder is created."""
    folder = Path(os.environ.get(PREFIX + "OUTPUT_DIR", REPO_ROOT / "outputs"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder / name
