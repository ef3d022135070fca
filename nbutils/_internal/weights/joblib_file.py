"""Reading a joblib file of NumPy arrays (as mtcnn ships its weights) without joblib.

Layout: an optionally LZ4-compressed pickle in which each array is a ``NumpyArrayWrapper``
record (shape, order, dtype) whose BUILD opcode is followed by a padding-length byte, the
padding and the raw data; the reader hooks BUILD to read them. The only globals allowed are
the record, ``numpy.ndarray`` (a marker, never called) and plain numeric ``numpy.dtype``.
Decompression is bounded by ``max_bytes``; an array's bytes must be present before it is built.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import numpy as np

from nbutils._internal.weights.integrity import WeightsError
from nbutils._internal.weights.restricted import (
    MAX_INDEX,
    PICKLE_ERRORS,
    BoundedReader,
    RestrictedUnpickler,
    read_checked,
    short_repr,
)

LZ4_FRAME_MAGIC = b"\x04\x22\x4d\x18"
#: Largest file, and largest decompressed pickle, read (bytes). mtcnn's are under 2 MiB.
MAX_FILE_BYTES = 64 << 20
_LZ4_CHUNK = 1 << 20  # the decompressor allocates its max_length up front
_DTYPE_SPEC = re.compile(r"[biufc]\d{0,2}")  # "f4", "u1", "b1", "i8", "c16"...
_RECORD_FIELDS = {"subclass", "shape", "order", "dtype", "allow_mmap",
                  "numpy_array_alignment_bytes"}


class _JoblibArrayRecord:
    """Stand-in for ``joblib.numpy_pickle.NumpyArrayWrapper``: holds the record's fields."""


class _NdarrayMarker:
    """Stands for ``numpy.ndarray`` in a record's ``subclass`` field. Not callable: a pickle
    that calls ``numpy.ndarray(shape)`` would allocate any size it names."""


_NDARRAY = _NdarrayMarker()


def _dtype(spec: Any, align: Any = False, copy: Any = True) -> np.dtype:
    """Stand-in for ``numpy.dtype(spec, align, copy)`` as joblib pickles it: plain numeric
    types only (no objects, records or sub-arrays)."""
    if type(spec) is not str or not _DTYPE_SPEC.fullmatch(spec):
        raise TypeError(f"dtype {short_repr(spec)} is not a plain numeric type")
    # Always a fresh copy (whatever the pickle asks): the BUILD that follows sets its state,
    # and must never touch NumPy's shared built-in descriptors.
    return np.dtype(spec, align=False, copy=True)


class _JoblibUnpickler(RestrictedUnpickler):
    what = "joblib array file"
    allowed = {
        ("joblib.numpy_pickle", "NumpyArrayWrapper"): _JoblibArrayRecord,
        ("numpy", "ndarray"): _NDARRAY,
        ("numpy", "dtype"): _dtype,
    }
    buildable = (_JoblibArrayRecord, np.dtype)

    def __init__(self, file: BoundedReader, path: Path):
        super().__init__(file, path)
        self.stream = file

    def load_build(self) -> None:
        if len(self.stack) >= 2 and isinstance(self.stack[-2], np.dtype):
            self._check_dtype_state(self.stack[-1])
        elif len(self.stack) >= 2 and isinstance(self.stack[-2], _JoblibArrayRecord):
            # the record's fields, set here rather than by pickle's generic setattr
            state = self.stack.pop()
            if type(state) is not dict or not set(state) <= _RECORD_FIELDS:
                raise WeightsError(f"{self.path}: unsupported array record "
                                   f"{short_repr(state)}")
            self.stack[-1] = self._read_array(state)
            return
        super().load_build()

    def _check_dtype_state(self, state: Any) -> None:
        # numpy's own pickle of a plain dtype: (3, byte order, None, None, None, -1, -1, 0).
        # Anything else (fields, sub-arrays, sizes) would reshape the dtype: refused.
        if type(state) is not tuple or len(state) != 8 or state[0] != 3 \
                or state[1] not in ("<", ">", "|", "=") \
                or state[2:] != (None, None, None, -1, -1, 0):
            raise WeightsError(f"{self.path}: unsupported dtype state {short_repr(state)}")

    def _read_array(self, record: dict[str, Any]) -> np.ndarray:
        where = f"{self.path}: array record"
        dtype, shape = record.get("dtype"), record.get("shape")
        if not isinstance(dtype, np.dtype) or dtype.kind not in "biufc" \
                or record.get("subclass") is not _NDARRAY or record.get("order") not in ("C", "F"):
            raise WeightsError(f"{where} {short_repr(record)} is not a plain numeric array")
        if type(shape) is not tuple or len(shape) > 32 \
                or not all(type(n) is int and 0 <= n <= MAX_INDEX for n in shape):
            raise WeightsError(f"{where}: shape {short_repr(shape)} is not a tuple of "
                               "integers in 0..2**63-1")
        if "numpy_array_alignment_bytes" in record:
            padding = self.stream.take(1)[0] if self.stream.remaining else 0
            if padding > self.stream.remaining:
                raise WeightsError(f"{where}: bad alignment padding ({padding} bytes)")
            self.stream.take(padding)
        nbytes = math.prod(shape) * dtype.itemsize
        if nbytes > self.stream.remaining:  # checked before anything is allocated
            raise WeightsError(f"{where}: shape {short_repr(shape)} needs {nbytes} bytes; "
                               f"{self.stream.remaining} are left in the file (truncated?)")
        array = np.frombuffer(self.stream.take(nbytes), dtype=dtype)
        if record["order"] == "F":
            return array.reshape(shape[::-1]).T.copy()
        return array.reshape(shape).copy()


def _decompress_lz4(data: bytes, path: Path, max_bytes: int) -> bytes:
    """One LZ4 frame, decompressed a chunk at a time, refused beyond ``max_bytes``."""
    import lz4.frame

    decompressor = lz4.frame.LZ4FrameDecompressor()
    parts, total, pending = [], 0, data
    try:
        while not decompressor.eof:
            part = decompressor.decompress(pending, max_length=_LZ4_CHUNK)
            pending = b""
            total += len(part)
            if total > max_bytes:
                raise WeightsError(f"{path}: decompresses to more than {max_bytes} bytes")
            parts.append(part)
            if decompressor.needs_input and not decompressor.eof:
                raise WeightsError(f"{path}: the LZ4 data is truncated")
    except RuntimeError as e:  # lz4's report of a corrupt frame (WeightsError is one too)
        if isinstance(e, WeightsError):
            raise
        raise WeightsError(f"{path}: corrupt LZ4 data ({e})") from e
    if decompressor.unused_data:
        raise WeightsError(f"{path}: unexpected bytes after the LZ4 frame")
    return b"".join(parts)


def read_joblib_arrays(path: str | Path, sha256: str | None, *,
                       remedy: str | None = None, max_bytes: int = MAX_FILE_BYTES) -> Any:
    """The pickled structure (lists, tuples, dicts) with each array record as an ``np.ndarray``.

    ``sha256`` is checked before parsing (``None``: a user's own file, checked throughout);
    ``remedy`` is what a checksum failure says to do; ``max_bytes`` bounds the file and its
    decompressed content.

    Raises:
        ChecksumError, UnsafePickleError, WeightsError: the file is refused; the message
            names it.
    """
    path = Path(path)
    data = read_checked(path, sha256, remedy, max_bytes, "an array file")
    if data.startswith(LZ4_FRAME_MAGIC):
        data = _decompress_lz4(data, path, max_bytes)
    stream = BoundedReader(data)
    try:
        result = _JoblibUnpickler(stream, path).load()
    except PICKLE_ERRORS as e:
        raise WeightsError(f"{path}: unreadable array file ({type(e).__name__}: "
                           f"{short_repr(str(e))[1:-1]})") from e
    if stream.remaining:
        raise WeightsError(f"{path}: unexpected bytes after the pickle")
    _check_plain(result, path)
    return result


def _check_plain(result: Any, path: Path) -> None:
    """Refuse a result that holds anything but arrays and plain values in lists, tuples and
    dicts (a record never built, the ndarray marker, the dtype stand-in). Iterative: the
    pickle may nest containers deeply, or make them contain themselves."""
    pending, seen = [result], set()
    while pending:
        item = pending.pop()
        if isinstance(item, (list, tuple, dict)):
            if id(item) not in seen:
                seen.add(id(item))
                pending.extend(item.values() if isinstance(item, dict) else item)
        elif not isinstance(item, (np.ndarray, str, bytes, int, float, complex, type(None))):
            raise WeightsError(f"{path}: holds a {type(item).__name__} where only arrays and "
                               "plain values belong")

