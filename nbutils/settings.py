"""Where a notebook's results go: `output_path`, under ``outputs/`` in the current
directory (or ``$NBUTILS_OUTPUT_DIR``), never inside the installed package. Weights and
sample images live in the cache folder, `cache_dir` (``$NBUTILS_CACHE_DIR``, else the
per-user cache), which ``python -m nbutils.prepare`` fills."""

from __future__ import annotations

import os
from pathlib import Path

from nbutils._internal.cache import cache_dir

__all__ = ["OUTPUT_ENV", "cache_dir", "output_path"]

OUTPUT_ENV = "NBUTILS_OUTPUT_DIR"


def output_path(name: str) -> Path:
    """Where a notebook saves result ``name``: ``$NBUTILS_OUTPUT_DIR``, else ``outputs/`` in
    the current directory. The folder is created."""
    folder = Path(os.environ.get(OUTPUT_ENV) or Path.cwd() / "outputs")
    folder.mkdir(parents=True, exist_ok=True)
    return folder / name
