"""Reading a legacy (pre-zip) ``torch.save`` file of tensors with NumPy alone, no torch.

The stream: pickles of the magic number, the protocol (1001) and system information
(little-endian required); the main pickle, name -> ``_rebuild_tensor_v2(storage, offset,
size, stride, ...)`` on storages named by persistent ids; a pickle of the storage keys; then
per key an int64 element count and the raw little-endian data. Only the main pickle's
globals are allowed, the stream must be consumed exactly, and every count, shape, stride and
offset is checked against the bytes present: a hostile file gets a `WeightsError`.
"""

from __future__ import annotations

import collections
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nbutils._internal.weights.integrity import WeightsError
from nbutils._internal.weights.restricted import (
    FLAT_TYPES,
    MAX_INDEX,
    PICKLE_ERRORS,
    BoundedReader,
    RestrictedUnpickler,
    read_checked,
    short_repr,
)

TORCH_MAGIC = 0x1950A86A20F9469CFC6C
TORCH_PROTOCOL = 1001
STORAGE_DTYPES = {"FloatStorage": np.dtype("<f4"), "ByteStorage": np.dtype("u1")}

#: Largest file read (bytes): it is read whole into memory.
MAX_FILE_BYTES = 4 << 30
#: The tensors together may hold at most this many times the bytes of their storages: room
#: for tied weights (two names, one storage), never for an expansion (a zero stride that
#: repeats one value a billion times).
MAX_OUTPUT_FACTOR = 4
MAX_DIMS = 32  # NumPy's own limit is 64; weights never come near either


@dataclass(frozen=True)
class _StorageType:
    dtype: np.dtype


@dataclass(frozen=True)
class _StorageRef:
    key: str
    dtype: np.dtype
    numel: int


@dataclass(frozen=True)
class _TensorRef:
    """The arguments of one ``_rebuild_tensor_v2`` call, as found (checked later)."""

    storage: Any
    offset: Any
    shape: Any
    stride: Any


def _rebuild_tensor_v2(storage: Any, storage_offset: Any, size: Any, stride: Any,
                       requires_grad: Any = False, backward_hooks: Any = None,
                       metadata: Any = None) -> _TensorRef:
    """Stand-in for ``torch._utils._rebuild_tensor_v2``: records where the data will be."""
    return _TensorRef(storage, storage_offset, size, stride)


def _ordered_dict(items: Any = ()) -> collections.OrderedDict:
    """Stand-in for ``collections.OrderedDict``: only (string or number key, value) pairs,
    so that no key hashes a deeply nested tuple (a C recursion that kills the process)."""
    out: collections.OrderedDict = collections.OrderedDict()
    for pair in items:
        if not (type(pair) is tuple and len(pair) == 2
                and isinstance(pair[0], FLAT_TYPES)):
            raise TypeError(f"OrderedDict item {short_repr(pair)} is not a (key, value) pair")
        out[pair[0]] = pair[1]
    return out


class _PlainUnpickler(RestrictedUnpickler):
    """The small header pickles: plain data, no globals at all."""

    what = "tensor file header"


class _TensorUnpickler(RestrictedUnpickler):
    """The main pickle: tensors rebuilt by `_rebuild_tensor_v2` on storages that arrive as
    persistent ids ``("storage", storage type, key, location, numel, view)``."""

    what = "tensor file"
    allowed = {
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
        ("collections", "OrderedDict"): _ordered_dict,
        **{("torch", name): _StorageType(dtype) for name, dtype in STORAGE_DTYPES.items()},
    }
    # A state dict's OrderedDict may carry attributes (torch's ``_metadata``).
    buildable = (collections.OrderedDict,)

    def __init__(self, file: BoundedReader, path: Path):
        super().__init__(file, path)
        self.storages: dict[str, _StorageRef] = {}
        self.file_bytes = len(file.data)

    def persistent_load(self, pid: Any) -> _StorageRef:
        ok = type(pid) is tuple and len(pid) == 6 and pid[0] == "storage"
        if not ok or not isinstance(pid[1], _StorageType) or pid[5] is not None \
                or type(pid[2]) is not str or type(pid[4]) is not int:
            raise WeightsError(f"{self.path}: unsupported storage record {short_repr(pid)}")
        _, storage_type, key, _location, numel, _view = pid
        ref = _StorageRef(key, storage_type.dtype, numel)
        # Checked against the file's size now: a later count must match it exactly.
        if not 0 <= numel * ref.dtype.itemsize <= self.file_bytes:
            raise WeightsError(f"{self.path}: storage {short_repr(key)} claims "
                               f"{short_repr(numel)} elements; the file has {self.file_bytes} "
                               "bytes in all")
        if self.storages.setdefault(key, ref) != ref:
            raise WeightsError(f"{self.path}: storage {short_repr(key)} is declared twice, "
                               "differently")
        return ref


def _load(unpickler: RestrictedUnpickler) -> Any:
    """``unpickler.load()``, its parse errors as `WeightsError` naming the file."""
    path = unpickler.path
    try:
        return unpickler.load()
    except PICKLE_ERRORS as e:
        raise WeightsError(f"{path}: unreadable tensor file ({type(e).__name__}: "
                           f"{short_repr(str(e))[1:-1]})") from e


def _check_tensor(name: str, ref: Any, data: dict[str, np.ndarray],
                  path: Path) -> tuple[int, ...]:
    """The tensor's shape, once its offset, shape and strides are known to stay inside its
    storage and its element count is at most the storage's (no expansion)."""
    where = f"{path}: tensor {short_repr(name)}"
    if not isinstance(ref, _TensorRef) or not isinstance(ref.storage, _StorageRef):
        raise WeightsError(f"{where} is not a tensor on a storage")
    shape, stride, offset = ref.shape, ref.stride, ref.offset
    if type(shape) is not tuple or type(stride) is not tuple or len(shape) != len(stride) \
            or len(shape) > MAX_DIMS:
        raise WeightsError(f"{where}: size {short_repr(shape)} and stride "
                           f"{short_repr(stride)} are not tuples of one length <= {MAX_DIMS}")
    if not all(type(n) is int and 0 <= n <= MAX_INDEX for n in (offset, *shape, *stride)):
        raise WeightsError(f"{where}: offset {short_repr(offset)}, size {short_repr(shape)} "
                           f"and stride {short_repr(stride)} must be integers in 0..2**63-1")
    buf = data.get(ref.storage.key)
    if buf is None:
        raise WeightsError(f"{where}: its storage {short_repr(ref.storage.key)} has no data "
                           "in the file")
    count = math.prod(shape)
    last = offset + sum((n - 1) * s for n, s in zip(shape, stride, strict=True))
    if offset > buf.size or (count > 0 and (last >= buf.size or count > buf.size)):
        raise WeightsError(f"{where} (offset {offset}, size {short_repr(shape)}, stride "
                           f"{short_repr(stride)}) does not fit in its storage of {buf.size} "
                           "elements")
    return shape


def _materialize(ref: _TensorRef, data: dict[str, np.ndarray]) -> np.ndarray:
    """The tensor as a contiguous array that owns its memory (checked by `_check_tensor`)."""
    buf = data[ref.storage.key]
    if math.prod(ref.shape) == 0:
        return np.zeros(ref.shape, buf.dtype)
    itemsize = buf.dtype.itemsize
    view = np.lib.stride_tricks.as_strided(
        buf[ref.offset:], shape=ref.shape, strides=[s * itemsize for s in ref.stride])
    return np.array(view)


def read_legacy_torch_file(path: str | Path, sha256: str | None, *,
                           remedy: str | None = None,
                           max_bytes: int = MAX_FILE_BYTES) -> dict[str, np.ndarray]:
    """``{name: array}`` in file order (float32 or uint8, the tensors' shapes), without torch.

    ``sha256`` is checked before parsing (``None``: a user's own file, checked throughout);
    ``remedy`` is what a checksum failure says to do; larger files than ``max_bytes`` are
    refused before they are read (whole).

    Raises:
        ChecksumError, UnsafePickleError, WeightsError: the file is refused; the message
            names it (and the tensor, when one is at fault).
    """
    path = Path(path)
    stream = BoundedReader(read_checked(path, sha256, remedy, max_bytes, "a tensor file"))
    magic = _load(_PlainUnpickler(stream, path))
    protocol = _load(_PlainUnpickler(stream, path))
    if magic != TORCH_MAGIC or protocol != TORCH_PROTOCOL:
        raise WeightsError(f"{path}: not a legacy torch.save file (magic {short_repr(magic)})")
    sys_info = _load(_PlainUnpickler(stream, path))
    if not isinstance(sys_info, dict) or sys_info.get("little_endian") is not True:
        raise WeightsError(f"{path}: only little-endian tensor files are supported")
    main = _TensorUnpickler(stream, path)
    state = _load(main)
    keys = _load(_PlainUnpickler(stream, path))
    if type(keys) is not list or not all(type(k) is str for k in keys) \
            or sorted(keys) != sorted(main.storages):
        raise WeightsError(f"{path}: the storage list does not match the tensors' storages")
    data = {}
    for key in keys:
        ref = main.storages[key]
        if stream.remaining < 8:
            raise WeightsError(f"{path}: storage {short_repr(key)} is truncated")
        count = int.from_bytes(stream.take(8), "little", signed=True)
        if count != ref.numel:
            raise WeightsError(f"{path}: storage {short_repr(key)} holds {count} elements, "
                               f"its record says {ref.numel}")
        if count * ref.dtype.itemsize > stream.remaining:
            raise WeightsError(f"{path}: storage {short_repr(key)} is truncated "
                               f"({count * ref.dtype.itemsize} bytes, {stream.remaining} left)")
        data[key] = np.frombuffer(stream.take(count * ref.dtype.itemsize), dtype=ref.dtype)
    if stream.remaining:
        raise WeightsError(f"{path}: unexpected bytes after the last storage")
    if not isinstance(state, dict) or not all(type(k) is str for k in state):
        raise WeightsError(f"{path}: expected a mapping of names to tensors")
    shapes = [_check_tensor(name, ref, data, path) for name, ref in state.items()]
    out_bytes = sum(math.prod(s) * data[r.storage.key].itemsize
                    for s, r in zip(shapes, state.values(), strict=True))
    stored = sum(a.nbytes for a in data.values())
    if out_bytes > MAX_OUTPUT_FACTOR * stored:
        raise WeightsError(f"{path}: the tensors would hold {out_bytes} bytes, more than "
                           f"{MAX_OUTPUT_FACTOR} times the {stored} bytes of their storages")
    return {name: _materialize(ref, data) for name, ref in state.items()}
