"""Integrity of weight files and of the converted-weights cache.

- A file from a package is trusted only when its SHA-256 (MD5 for Keras's own file) is
  the published one: `check_digest`.
- Converted weights are cached as a plain ``.npz`` (no pickle) in `nbutils.settings.cache_dir`.
  Their *content* digest, `arrays_digest` over names, dtypes, shapes and bytes, is checked
  on every read: a cache that is unreadable or differs is converted again (with a one-line
  notice), never trusted. Sizes are checked against a bound before anything is inflated.
- A read-only cache (a lab's shared folder) works: nothing is written when the cache is
  right, and a conversion that cannot be written is used from memory, with a notice.
"""

from __future__ import annotations

import hashlib
import io
import math
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from nbutils.atomic import atomic_write
from nbutils.settings import cache_dir

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
    """Raise `ChecksumError` unless ``path`` has the expected digest.

    Args:
        remedy: what to do, naming the package that owns the file and the command that
            restores it (`nbutils.weights.registry.PackageFile.remedy` writes it). By
            default: delete the file and run `python -m nbutils.prepare`.
    """
    actual = file_digest(path, algorithm)
    if actual != expected:
        remedy = remedy or f"Delete it and run `{PREPARE_COMMAND}` to fetch it again."
        raise ChecksumError(f"{path}: {algorithm} is {actual}, expected {expected}. The file "
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
# zipfile parses the whole central directory on opening, ~500 bytes of Python objects per
# ~50-byte entry: bounded first. A cache's holds ~60 entries (~5 KiB).
_MAX_DIRECTORY_BYTES = 1 << 20


class _CacheProblem(ValueError):
    """Why a cache file is not used (internal: it is reported, then the cache is rebuilt)."""


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> np.ndarray:
    """One ``.npy`` member: its header must describe exactly the bytes it holds."""
    with archive.open(info) as f:
        raw = f.read()  # zipfile inflates up to the declared size, which the caller bounded
    if len(raw) != info.file_size:
        raise _CacheProblem(f"member {info.filename!r} holds {len(raw)} bytes, its "
                            f"directory entry says {info.file_size}")
    header = io.BytesIO(raw)
    version = np.lib.format.read_magic(header)
    if version not in ((1, 0), (2, 0)):
        raise _CacheProblem(f"member {info.filename!r}: .npy version {version}")
    read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                   else np.lib.format.read_array_header_2_0)
    shape, fortran, dtype = read_header(header)
    if dtype.kind not in _CACHE_DTYPE_KINDS or dtype.fields or dtype.subdtype \
            or not all(n >= 0 for n in shape):
        raise _CacheProblem(f"member {info.filename!r}: unexpected array {dtype} {shape}")
    start = header.tell()
    if start + math.prod(shape) * dtype.itemsize != len(raw):
        raise _CacheProblem(f"member {info.filename!r}: its header says {dtype} {shape}, "
                            f"which is not the {len(raw) - start} bytes it holds")
    array = np.frombuffer(raw, dtype, offset=start).reshape(shape[::-1] if fortran else shape)
    return (array.T if fortran else array).copy()  # writable, in C order, owns its memory


def _check_directory(path: Path, size: int) -> None:
    """Refuse a zip whose central directory is larger than `_MAX_DIRECTORY_BYTES`, reading
    its end-of-directory record the way zipfile finds it (the last one, in the last 64 KiB)."""
    with open(path, "rb") as f:
        f.seek(max(0, size - (22 + 0xFFFF)))
        tail = f.read()
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or at + 22 > len(tail):
        raise _CacheProblem("not a zip archive (no end-of-directory record)")
    if at >= 20 and tail[at - 20:at - 16] == b"PK\x06\x07":
        raise _CacheProblem("a ZIP64 archive, which a cache never needs")
    directory = int.from_bytes(tail[at + 12:at + 16], "little")
    if directory > _MAX_DIRECTORY_BYTES:
        raise _CacheProblem(f"its zip directory claims {directory} bytes")


def _read_npz(path: Path, max_bytes: int) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` written by `write_cache`, every size bounded by ``max_bytes``
    before anything is read or inflated. Raises on anything unexpected."""
    size = path.stat().st_size
    if size > max_bytes:
        raise _CacheProblem(f"{size} bytes, more than the {max_bytes} expected")
    _check_directory(path, size)
    with zipfile.ZipFile(path) as archive:
        infos = archive.infolist()
        declared = sum(info.file_size for info in infos)
        if declared > max_bytes:  # zip bombs: a member inflates to its declared size at most
            raise _CacheProblem(f"its members claim {declared} bytes, more than the "
                                f"{max_bytes} expected")
        names = [info.filename for info in infos]
        if len(set(names)) != len(names) or not all(n.endswith(".npy") for n in names):
            raise _CacheProblem("its members are not uniquely named .npy arrays")
        for info in infos:
            if info.flag_bits & 0x1 or info.compress_type not in (zipfile.ZIP_STORED,
                                                                  zipfile.ZIP_DEFLATED):
                raise _CacheProblem(f"member {info.filename!r} is encrypted or compressed "
                                    "with an unexpected method")
        return {info.filename[:-4]: _read_member(archive, info) for info in infos}


def read_cache(path: Path, digest: str, max_bytes: int = CACHE_MAX_BYTES
               ) -> dict[str, np.ndarray] | None:
    """Arrays cached in ``path`` (an ``.npz``, read without pickle), or None when the file
    is unreadable, larger than ``max_bytes`` or its content's `arrays_digest` is not
    ``digest``: then a one-line notice names the file, and the caller rebuilds it."""
    try:
        arrays = _read_npz(path, max_bytes)
    except Exception as e:  # corrupt in any way: it is rebuilt from the package
        reason = str(e) if isinstance(e, _CacheProblem) else f"{type(e).__name__}: {e}"
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
