"""Reading a joblib file of NumPy arrays (as mtcnn ships its weights) without joblib.

``joblib.load`` is an unrestricted unpickler, so it is never called. Layout: an (optionally
LZ4-frame-compressed) pickle in which each array is a
``joblib.numpy_pickle.NumpyArrayWrapper`` record (shape, order, dtype); right after a
record's BUILD opcode come one padding-length byte, that many padding bytes, and the
array's raw data. The reader hooks BUILD to read those bytes, and allows no other globals
than the record, ``numpy.ndarray`` and ``numpy.dtype``; object arrays are refused.
"""

from __future__ import annotations

import io
import pickle
import struct
from pathlib import Path
from typing import Any

import numpy as np

from nbutils.weights.integrity import WeightsError, check_digest
from nbutils.weights.restricted import RestrictedUnpickler

LZ4_FRAME_MAGIC = b"\x04\x22\x4d\x18"


class _JoblibArrayRecord:
    """Stand-in for ``joblib.numpy_pickle.NumpyArrayWrapper``: holds the record's fields."""


class _JoblibUnpickler(RestrictedUnpickler):
    what = "array file"
    allowed = {
        ("joblib.numpy_pickle", "NumpyArrayWrapper"): _JoblibArrayRecord,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
    }
    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(self, file: io.BytesIO, path: Path):
        super().__init__(file, path)
        self.stream = file

    def load_build(self) -> None:
        super().load_build()
        if isinstance(self.stack[-1], _JoblibArrayRecord):
            self.stack[-1] = self._read_array(self.stack[-1].__dict__)

    dispatch[pickle.BUILD[0]] = load_build

    def _read_array(self, record: dict[str, Any]) -> np.ndarray:
        dtype, shape = record.get("dtype"), tuple(record.get("shape", ()))
        if not isinstance(dtype, np.dtype) or dtype.hasobject or record.get("subclass") \
                is not np.ndarray or record.get("order") not in ("C", "F"):
            raise WeightsError(f"{self.path}: unsupported array record {record!r}")
        if "numpy_array_alignment_bytes" in record:
            padding = self.stream.read(1)
            self.stream.read(padding[0] if padding else 0)
        count = int(np.prod(shape, dtype=np.int64))
        raw = self.stream.read(count * dtype.itemsize)
        if len(raw) != count * dtype.itemsize:
            raise WeightsError(f"{self.path}: array data is truncated")
        array = np.frombuffer(raw, dtype=dtype)
        if record["order"] == "F":
            return array.reshape(shape[::-1]).T.copy()
        return array.reshape(shape).copy()


def read_joblib_arrays(path: str | Path, sha256: str | None, *,
                       remedy: str | None = None) -> Any:
    """Read a joblib file that holds NumPy arrays (in lists, tuples or dicts) safely.

    Args:
        path: the ``.joblib`` / ``.lz4`` file.
        sha256: its expected SHA-256, checked before parsing (``None``: tests only).
        remedy: what a checksum failure tells the user to do (see `check_digest`).

    Returns:
        The pickled structure, with every array record replaced by its ``np.ndarray``.

    Raises:
        ChecksumError, UnsafePickleError, WeightsError: the file is refused.
    """
    path = Path(path)
    if sha256 is not None:
        check_digest(path, sha256, remedy=remedy)
    data = path.read_bytes()
    if data.startswith(LZ4_FRAME_MAGIC):
        import lz4.frame

        data = lz4.frame.decompress(data)
    stream = io.BytesIO(data)
    try:
        result = _JoblibUnpickler(stream, path).load()
    except (pickle.UnpicklingError, EOFError, struct.error, TypeError, ValueError,
            KeyError, IndexError) as e:
        raise WeightsError(f"{path}: unreadable array file ({e})") from e
    if stream.read(1):
        raise WeightsError(f"{path}: unexpected bytes after the pickle")
    return result
