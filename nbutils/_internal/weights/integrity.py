"""Integrity of weight files and of the converted-weights cache.

- A package file is trusted only with its published SHA-256 (MD5 for Keras's): `check_digest`.
- Converted weights are cached as a pickle-free ``.npz`` in `nbutils._internal.cache.cache_dir`,
  read with the bounded `nbutils._internal.npz.read_npz`; their `arrays_digest` is checked
  on every read, and a cache that differs is converted again, with a one-line notice.
- A read-only cache works: a conversion that cannot be written is used from memory.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

from nbutils._internal.atomic import atomic_write
from nbutils._internal.cache import cache_dir
from nbutils._internal.npz import NpzError, read_npz

PREPARE_COMMAND = "python -m nbutils.prepare"


class WeightsError(RuntimeError):
    """A weight file is missing, corrupt, tampered with or in an unexpected format."""


class WeightsNotFoundError(WeightsError, FileNotFoundError):
    """No source of the pretrained weights was found on this machine."""


class ChecksumError(WeightsError):
    """A weight file's checksum is not the published one: refused, never loaded."""


def file_digest(path: str | Path, algorithm: str = "sha256") -> str:
    """Hex digest of a file's bytes, read in 1 MiB chunks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def check_digest(path: str | Path, expected: str, algorithm: str = "sha256",
                 remedy: str | None = None) -> None:
    """Raise `ChecksumError`, ending with ``remedy`` (default: delete and re-prepare),
    unless ``path`` has the expected digest."""
    actual = file_digest(path, algorithm)
    if actual != expected:
        raise digest_mismatch(path, algorithm, actual, expected, remedy)


def digest_mismatch(path: str | Path, algorithm: str, actual: str, expected: str,
                    remedy: str | None = None) -> ChecksumError:
    """The `ChecksumError` for a file whose digest is ``actual``, not ``expected``."""
    remedy = remedy or f"Delete it and run `{PREPARE_COMMAND}` to fetch it again."
    return ChecksumError(f"{path}: {algorithm} is {actual}, expected {expected}. The file "
                         f"is corrupt or has been replaced; it was not loaded. {remedy}")


def arrays_digest(arrays: dict[str, np.ndarray]) -> str:
    """SHA-256 over names, dtypes, shapes and bytes of arrays, in sorted name order."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


#: Default bound on a cache file and on its arrays (bytes); each cache passes its own.
CACHE_MAX_BYTES = 1 << 30
_CACHE_DTYPE_KINDS = "biufc"  # plain numbers: the cache never holds anything else


def read_cache(path: Path, digest: str, max_bytes: int = CACHE_MAX_BYTES
               ) -> dict[str, np.ndarray] | None:
    """Arrays cached in ``path`` (an ``.npz``, read without pickle), or None when the file
    is unreadable, larger than ``max_bytes`` or its content's `arrays_digest` is not
    ``digest``: then a one-line notice names the file, and the caller rebuilds it."""
    try:
        arrays = read_npz(path, max_bytes, kinds=_CACHE_DTYPE_KINDS)
    except (NpzError, OSError) as e:  # corrupt in any way, or unreadable: rebuilt
        reason = str(e) if isinstance(e, NpzError) else f"{type(e).__name__}: {e}"
        reason = " ".join(reason.split())[:200]  # one line, however odd the file
        print(f"Weight cache {path} is corrupt ({reason}); rebuilding it.")
        return None
    if arrays_digest(arrays) != digest:
        print(f"Weight cache {path} does not hold the expected arrays (names, shapes, dtypes "
              "or values differ); rebuilding it.")
        return None
    return arrays


def write_cache(arrays: dict[str, np.ndarray], path: Path) -> bool:
    """Save arrays as ``.npz`` with `atomic_write`. A folder that cannot be written (a
    read-only shared cache) is reported in one line, not raised. Returns True if written."""
    try:
        with atomic_write(path) as f:
            np.savez(f, **arrays)
    except OSError as e:
        print(f"Could not cache converted weights ({e}); using them from memory.")
        return False
    return True


def cached_conversion(filename: str, digest: str, convert: Callable[[], dict[str, np.ndarray]],
                      what: str, cache: bool = True,
                      max_bytes: int = CACHE_MAX_BYTES) -> dict[str, np.ndarray]:
    """Converted weights: read from ``cache_dir() / filename`` when that cache holds arrays
    with content digest ``digest`` (within ``max_bytes``), else ``convert()``ed, checked
    against ``digest`` and cached (atomically), replacing a corrupt cache."""
    path = cache_dir() / filename
    if cache and path.is_file():
        arrays = read_cache(path, digest, max_bytes)
        if arrays is not None:
            return arrays
    arrays = convert()
    if arrays_digest(arrays) != digest:
        raise ChecksumError(f"the converted {what} weights do not have the expected checksum")
    if cache:
        write_cache(arrays, path)
    return arrays
