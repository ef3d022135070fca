"""Reading a legacy (pre-zip) ``torch.save`` file of tensors with NumPy alone, no torch.

Layout of the stream:

1. three small pickles: the magic number ``0x1950a86a20f9469cfc6c``, the protocol version
   1001, and a dict of system information (we require little-endian);
2. the main pickle: name -> tensor, each rebuilt by ``torch._utils._rebuild_tensor_v2(
   storage, offset, size, stride, ...)`` on a storage named by a persistent id;
3. a pickle listing the storage keys, in the order their data follow;
4. for each key: a little-endian int64 element count, then the raw little-endian data.

Only the globals of step 2 are allowed (`nbutils.weights.restricted`), and the stream must
be consumed exactly: truncation or trailing bytes are refused.
"""

from __future__ import annotations

import collections
import io
import pickle
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nbutils.weights.integrity import WeightsError, check_digest
from nbutils.weights.restricted import RestrictedUnpickler

TORCH_MAGIC = 0x1950A86A20F9469CFC6C
TORCH_PROTOCOL = 1001
STORAGE_DTYPES = {"FloatStorage": np.dtype("<f4"), "ByteStorage": np.dtype("u1")}


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
    storage: _StorageRef
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None) -> _TensorRef:
    """Stand-in for ``torch._utils._rebuild_tensor_v2``: records where the data will be."""
    if not isinstance(storage, _StorageRef):
        raise WeightsError("a tensor was rebuilt from something that is not a storage")
    return _TensorRef(storage, int(storage_offset), tuple(size), tuple(stride))


class _PlainUnpickler(RestrictedUnpickler):
    """The small header pickles: plain data, no globals at all."""

    what = "tensor file header"


class _TensorUnpickler(RestrictedUnpickler):
    """The main pickle: tensors rebuilt by `_rebuild_tensor_v2` on storages that arrive as
    persistent ids ``("storage", storage type, key, location, numel, view)``."""

    what = "tensor file"
    allowed = {
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
        ("collections", "OrderedDict"): collections.OrderedDict,
        **{("torch", name): _StorageType(dtype) for name, dtype in STORAGE_DTYPES.items()},
    }

    def __init__(self, file: io.BufferedIOBase, path: Path):
        super().__init__(file, path)
        self.storages: dict[str, _StorageRef] = {}

    def persistent_load(self, pid: Any) -> _StorageRef:
        ok = isinstance(pid, tuple) and len(pid) == 6 and pid[0] == "storage"
        if not ok or not isinstance(pid[1], _StorageType) or pid[5] is not None:
            raise WeightsError(f"{self.path}: unsupported storage record {pid!r}")
        _, storage_type, key, _location, numel, _view = pid
        ref = _StorageRef(str(key), storage_type.dtype, int(numel))
        return self.storages.setdefault(ref.key, ref)


def _materialize(ref: _TensorRef, data: dict[str, np.ndarray], path: Path) -> np.ndarray:
    buf = data[ref.storage.key]
    last = ref.offset + sum((n - 1) * s for n, s in zip(ref.shape, ref.stride, strict=True))
    if min(ref.shape, default=1) > 0 and not (0 <= ref.offset and last < buf.size):
        raise WeightsError(f"{path}: a tensor reaches outside its storage ({ref})")
    itemsize = buf.dtype.itemsize
    view = np.lib.stride_tricks.as_strided(
        buf[ref.offset:], shape=ref.shape, strides=[s * itemsize for s in ref.stride]
    )
    return np.array(view)  # a copy: contiguous, owns its memory


def read_legacy_torch_file(path: str | Path, sha256: str | None, *,
                           remedy: str | None = None) -> dict[str, np.ndarray]:
    """Read a legacy ``torch.save`` file of tensors into NumPy arrays, without torch.

    Args:
        path: the file.
        sha256: its expected SHA-256; checked before anything is parsed. ``None`` skips the
            check (tests of the parser only).
        remedy: what a checksum failure tells the user to do (see `check_digest`).

    Returns:
        ``{name: array}`` in file order; float32 or uint8 arrays with the tensors' shapes.

    Raises:
        ChecksumError, UnsafePickleError, WeightsError: the file is refused.
    """
    path = Path(path)
    if sha256 is not None:
        check_digest(path, sha256, remedy=remedy)
    with open(path, "rb") as f:
        try:
            magic = _PlainUnpickler(f, path).load()
            protocol = _PlainUnpickler(f, path).load()
            sys_info = _PlainUnpickler(f, path).load()
            if magic != TORCH_MAGIC or protocol != TORCH_PROTOCOL:
                raise WeightsError(f"{path}: not a legacy torch.save file (magic {magic!r})")
            if not isinstance(sys_info, dict) or not sys_info.get("little_endian"):
                raise WeightsError(f"{path}: only little-endian tensor files are supported")
            main = _TensorUnpickler(f, path)
            state = main.load()
            keys = _PlainUnpickler(f, path).load()
        except (pickle.UnpicklingError, EOFError, struct.error, TypeError, ValueError) as e:
            raise WeightsError(f"{path}: unreadable tensor file ({e})") from e
        data = {}
        for key in keys:
            ref = main.storages.get(key)
            header = f.read(8)
            if ref is None or len(header) != 8:
                raise WeightsError(f"{path}: storage list does not match the tensors")
            count = struct.unpack("<q", header)[0]
            raw = f.read(count * ref.dtype.itemsize)
            if count != ref.numel or len(raw) != count * ref.dtype.itemsize:
                raise WeightsError(f"{path}: storage '{key}' is truncated or mis-sized")
            data[key] = np.frombuffer(raw, dtype=ref.dtype)
        if f.read(1):
            raise WeightsError(f"{path}: unexpected bytes after the last storage")
    if not isinstance(state, dict) or not all(isinstance(v, _TensorRef) for v in state.values()):
        raise WeightsError(f"{path}: expected a mapping of names to tensors")
    return {name: _materialize(ref, data, path) for name, ref in state.items()}
