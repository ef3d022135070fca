"""Where things go, and notebook parameters that the environment may override.

- `cache_dir`: fetched weight files, converted weights and sample images. The platform's
  per-user cache (``~/.cache/nbutils`` on Linux), or ``$NBUTILS_CACHE_DIR``: a lab
  prepares a shared folder once (``python -m nbutils.prepare --cache-dir /srv/nbutils``)
  and points users at it; it may then be mounted read-only.
- `output_path`: results a notebook saves, under ``outputs/`` in the current directory
  (or ``$NBUTILS_OUTPUT_DIR``), never inside the installed package.
- `setting`: a notebook's parameter cell reads each setting through it, so CI can run the
  very same code small (``NBUTILS_IMG_SIZE=128 NBUTILS_EPOCHS=30``) while users get the
  default.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TypeVar

T = TypeVar("T", int, float, str, bool)

PREFIX = "NBUTILS_"
CACHE_ENV = PREFIX + "CACHE_DIR"
OUTPUT_ENV = PREFIX + "OUTPUT_DIR"


def cache_dir() -> Path:
    """The cache folder: ``$NBUTILS_CACHE_DIR``, else the per-user cache of the platform."""
    configured = os.environ.get(CACHE_ENV)
    if configured:
        return Path(configured).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("nbutils", appauthor=False))


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
    """Where a notebook saves result ``name``: ``$NBUTILS_OUTPUT_DIR``, else ``outputs/`` in
    the current directory. The folder is created."""
    folder = Path(os.environ.get(OUTPUT_ENV) or Path.cwd() / "outputs")
    folder.mkdir(parents=True, exist_ok=True)
    return folder / name
