"""Where things go: the cache folder and the notebooks' outputs.

- `cache_dir`: fetched weight files, converted weights and sample images. The platform's
  per-user cache (``~/.cache/nbutils`` on Linux), or ``$NBUTILS_CACHE_DIR``: a lab
  prepares a shared folder once (``python -m nbutils.prepare --cache-dir /srv/nbutils``)
  and points users at it; it may then be mounted read-only.
- `output_path`: results a notebook saves, under ``outputs/`` in the current directory
  (or ``$NBUTILS_OUTPUT_DIR``), never inside the installed package.
"""

from __future__ import annotations

import os
from pathlib import Path

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


def output_path(name: str) -> Path:
    """Where a notebook saves result ``name``: ``$NBUTILS_OUTPUT_DIR``, else ``outputs/`` in
    the current directory. The folder is created."""
    folder = Path(os.environ.get(OUTPUT_ENV) or Path.cwd() / "outputs")
    folder.mkdir(parents=True, exist_ok=True)
    return folder / name
