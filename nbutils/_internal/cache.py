"""The cache folder: fetched weight files, converted weights and sample images.

The platform's per-user cache (``~/.cache/nbutils`` on Linux), or ``$NBUTILS_CACHE_DIR``:
a lab prepares a shared folder once (``python -m nbutils.prepare --cache-dir /srv/nbutils``)
and points users at it; it may then be mounted read-only.
"""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "NBUTILS_CACHE_DIR"


def cache_dir() -> Path:
    """The cache folder: ``$NBUTILS_CACHE_DIR``, else the per-user cache of the platform."""
    configured = os.environ.get(CACHE_ENV)
    if configured:
        return Path(configured).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("nbutils", appauthor=False))
