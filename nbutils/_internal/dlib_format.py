"""Read dlib's serialized face ResNet (``dlib_face_recognition_resnet_model_v1.dat``) with NumPy.

dlib's format (``dlib/serialize.h``): an integer is a control byte (low nibble N in 1..8,
0x80 negative) and N little-endian bytes; a float is integers m, e for ``m * 2**e`` (e of
32000/32001/32002: inf/-inf/nan); a tensor is version 2, N, K, R, C and N*K*R*C float32.
The file holds the loss layer (``loss_metric_2``, margin, threshold), one wrapper version
per layer from the output inward, the input layer (channel means, rows, cols), then each
layer's fields from the input outward. The full layout: ``docs/design-notes.md``.

Every read is bounds-checked: a corrupt or truncated file raises `WeightsError` naming the
file, the byte offset and what was expected, never an IndexError or a struct.error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from nbutils._internal.weights.integrity import WeightsError, check_digest
from nbutils._internal.weights.registry import FACE_RESNET

FACE_RESNET_SIZE = 22_466_066  # bytes

LOSS_NAME = "loss_metric_2"
LOSS_MARGIN = 0.04
INPUT_NAME = "input_rgb_image_sized"
INPUT_MEANS = (122.782, 117.001, 104.298)  # R, G, B, in 0..255 pixel units

FLOAT_INF, FLOAT_NINF, FLOAT_NAN = 32000, 32001, 32002  # dlib's special exponents


# --------------------------------------------------------------------------------------
# Primitive readers.
# --------------------------------------------------------------------------------------


class DlibReader:
    """A position in a bytes buffer holding dlib-serialized objects.

    Each ``read_*`` method decodes one object at ``pos`` and moves past it; on anything
    unexpected it raises `WeightsError` naming ``source``, the byte offset, and what was
    expected versus found.
    """

    def __init__(self, data: bytes | bytearray, source: str = "<bytes>"):
        self.data = memoryview(data)
        self.source = source
        self.pos = 0

    def error(self, expected: str, found: str, at: int | None = None) -> WeightsError:
        """A `WeightsError` for an object starting at byte ``at`` (default: the position)."""
        at = self.pos if at is None else at
        return WeightsError(f"{self.source}: at byte {at}: expected {expected}, found {found}")

    def take(self, n: int, what: str, at: int | None = None) -> memoryview:
        """The next ``n`` bytes; if the file ends before, an error about ``what`` at ``at``."""
        left = len(self.data) - self.pos
        if n > left:
            raise self.error(f"{n} bytes of {what}", f"the end of the file after {left}", at)
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def at_end(self) -> bool:
        return self.pos == len(self.data)

    def read_int(self, what: str = "an integer") -> int:
        """Control byte (N = low nibble in 1..8, 0x80 = negative), then N little-endian bytes."""
        start = self.pos
        control = self.take(1, what, start)[0]
        size = control & 0x0F
        if control & 0x70 or not 1 <= size <= 8:
            raise self.error(f"{what} (control byte 0x01..0x08 or 0x81..0x88)",
                             f"control byte 0x{control:02x}", start)
        magnitude = int.from_bytes(self.take(size, what, start), "little")
        return -magnitude if control & 0x80 else magnitude

    def read_bool(self, what: str = "a bool") -> bool:
        """ASCII '1' (True) or '0' (False)."""
        start = self.pos
        byte = bytes(self.take(1, what))
        if byte not in (b"1", b"0"):
            raise self.error(f"{what} (b'1' or b'0')", repr(byte), start)
        return byte == b"1"

    def read_string(self, what: str = "a string") -> str:
        """An integer length, then that many bytes (decoded as latin-1: never fails)."""
        start = self.pos
        length = self.read_int(f"the length of {what}")
        if length < 0:
            raise self.error(f"the length of {what}", f"{length}", start)
        return bytes(self.take(length, what)).decode("latin-1")

    def read_float(self, what: str = "a float") -> float:
        """Mantissa m and exponent e (two integers): ``m * 2**e``, or inf / -inf / nan."""
        start = self.pos
        mantissa = self.read_int(f"the mantissa of {what}")
        exponent = self.read_int(f"the exponent of {what}")
        special = {FLOAT_INF: math.inf, FLOAT_NINF: -math.inf, FLOAT_NAN: math.nan}
        if exponent in special:
            return special[exponent]
        if not (-(2**63) <= mantissa < 2**63 and -(2**15) <= exponent < FLOAT_INF):
            raise self.error(f"{what} (int64 mantissa, int16 exponent)",
                             f"mantissa {mantissa}, exponent {exponent}", start)
        try:
            return math.ldexp(float(mantissa), exponent)
        except OverflowError:
            raise self.error(f"a finite value for {what}", f"{mantissa} * 2**{exponent}",
                             start) from None

    def expect_int(self, expected: int, what: str) -> int:
        """Read an integer and check that it is ``expected``."""
        start = self.pos
        value = self.read_int(what)
        if value != expected:
            raise self.error(f"{what} = {expected}", f"{value}", start)
        return value

    def expect_string(self, expected: str, what: str) -> str:
        """Read a string and check that it is ``expected``."""
        start = self.pos
        value = self.read_string(what)
        if value != expected:
            raise self.error(f"{what} {expected!r}", f"{_short(value)}", start)
        return value

    def read_shape(self, what: str) -> tuple[int, int, int, int]:
        """Four non-negative integers N, K, R, C."""
        start = self.pos
        n, k, r, c = (self.read_int(f"a dimension of {what}") for _ in range(4))
        if min(n, k, r, c) < 0:
            raise self.error(f"the shape of {what} (non-negative)", f"{(n, k, r, c)}", start)
        return n, k, r, c

    def read_tensor(self, what: str = "a tensor") -> np.ndarray:
        """Version 2, N, K, R, C, then N*K*R*C float32: a float32 array of shape (N, K, R, C)."""
        self.expect_int(2, f"the version of {what}")
        shape = self.read_shape(what)
        count = math.prod(shape)
        raw = self.take(4 * count, f"the {count} float32 values of {what} {shape}")
        return np.frombuffer(raw, dtype="<f4").astype(np.float32).reshape(shape)

    def read_alias_tensor(self, what: str = "an alias tensor") -> tuple[int, int, int, int]:
        """Version 1 and the (N, K, R, C) shape of a view into a params tensor."""
        self.expect_int(1, f"the version of {what}")
        return self.read_shape(what)


def _short(text: str, limit: int = 40) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")


# --------------------------------------------------------------------------------------
# Layer records.
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Conv:
    """``con_``: cross-correlation plus bias (NCHW in dlib).

    filters: (num_filters, in_channels, nr, nc) float32; biases: (num_filters,) float32.
    Padding is in pixels on each side.
    """

    kind: ClassVar[str] = "con"
    offset: int
    filters: np.ndarray
    biases: np.ndarray
    stride: tuple[int, int]
    padding: tuple[int, int]
    multipliers: tuple[float, float, float, float]  # learning rate / weight decay (training)


@dataclass(frozen=True)
class Affine:
    """``affine_``: per-channel ``y = gamma * x + beta``; gamma and beta (channels,) float32."""

    kind: ClassVar[str] = "affine"
    offset: int
    gamma: np.ndarray
    beta: np.ndarray
    mode: int  # 0: per channel (after a conv), 1: per unit (after an fc)


@dataclass(frozen=True)
class Relu:
    """``relu_``: ``max(x, 0)``."""

    kind: ClassVar[str] = "relu"
    offset: int


@dataclass(frozen=True)
class Pool:
    """``max_pool_`` or ``avg_pool_``; size (0, 0) means the whole image (global pooling)."""

    kind: str  # "max_pool" or "avg_pool"
    offset: int
    size: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]


@dataclass(frozen=True)
class AddPrev:
    """``add_prev_``: adds a tagged earlier output (different shapes: zeros at the end)."""

    kind: ClassVar[str] = "add_prev"
    offset: int


@dataclass(frozen=True)
class FullyConnected:
    """``fc_``: ``y = x @ weights (+ bias)``; weights (inputs, outputs) float32, bias or None."""

    kind: ClassVar[str] = "fc"
    offset: int
    weights: np.ndarray
    bias: np.ndarray | None
    multipliers: tuple[float, float, float, float]


Layer = Conv | Affine | Relu | Pool | AddPrev | FullyConnected


def _split_params(r: DlibReader, params: np.ndarray, shapes: list[tuple[int, ...]],
                  what: str, at: int) -> list[np.ndarray]:
    """Cut a flat params tensor into consecutive views of the given alias shapes."""
    sizes = [math.prod(s) for s in shapes]
    if params.size != sum(sizes):
        raise r.error(f"{what} params of {sum(sizes)} values (aliases {shapes})",
                      f"{params.size} values", at)
    if not np.isfinite(params).all():
        raise r.error(f"finite {what} params", "inf or nan", at)
    flat = params.reshape(-1)
    bounds = np.cumsum([0, *sizes])
    return [flat[a:b].reshape(s) for a, b, s in zip(bounds[:-1], bounds[1:], shapes, strict=True)]


def _multipliers(r: DlibReader, what: str) -> tuple[float, float, float, float]:
    lr, decay, bias_lr, bias_decay = (
        r.read_float(f"the {name} multiplier of {what}")
        for name in ("learning rate", "weight decay", "bias learning rate", "bias weight decay")
    )
    return lr, decay, bias_lr, bias_decay


def _read_con(r: DlibReader, at: int) -> Conv:
    what = f"the conv layer at byte {at}"
    params = r.read_tensor(f"the params of {what}")
    num_filters, nr, nc, sy, sx, py, px = (r.read_int(f"a setting of {what}") for _ in range(7))
    filters_shape = r.read_alias_tensor(f"the filters of {what}")
    biases_shape = r.read_alias_tensor(f"the biases of {what}")
    if filters_shape[0] != num_filters or filters_shape[2:] != (nr, nc) or \
            biases_shape != (1, num_filters, 1, 1):
        raise r.error(f"{num_filters} filters of {nr}x{nc} and as many biases",
                      f"aliases {filters_shape} and {biases_shape}", at)
    filters, biases = _split_params(r, params, [filters_shape, (num_filters,)], what, at)
    return Conv(at, filters, biases, (sy, sx), (py, px), _multipliers(r, what))


def _read_affine(r: DlibReader, at: int) -> Affine:
    what = f"the affine layer at byte {at}"
    params = r.read_tensor(f"the params of {what}")
    gamma_shape = r.read_alias_tensor(f"the gamma of {what}")
    beta_shape = r.read_alias_tensor(f"the beta of {what}")
    if gamma_shape != beta_shape:
        raise r.error("gamma and beta of the same shape", f"{gamma_shape}, {beta_shape}", at)
    gamma, beta = _split_params(r, params, [gamma_shape, beta_shape], what, at)
    mode = r.read_int(f"the mode of {what}")
    if mode not in (0, 1):
        raise r.error(f"the mode of {what} (0 or 1)", f"{mode}", at)
    return Affine(at, gamma.reshape(-1), beta.reshape(-1), mode)


def _read_pool(kind: str):
    def read(r: DlibReader, at: int) -> Pool:
        what = f"the {kind} layer at byte {at}"
        nr, nc, sy, sx, py, px = (r.read_int(f"a setting of {what}") for _ in range(6))
        return Pool(kind, at, (nr, nc), (sy, sx), (py, px))

    return read


def _read_fc(r: DlibReader, at: int) -> FullyConnected:
    what = f"the fc layer at byte {at}"
    outputs = r.read_int(f"the outputs of {what}")
    inputs = r.read_int(f"the inputs of {what}")
    params = r.read_tensor(f"the params of {what}")
    weights_shape = r.read_alias_tensor(f"the weights of {what}")
    biases_shape = r.read_alias_tensor(f"the biases of {what}")
    bias_mode = r.read_int(f"the bias mode of {what}")  # 0: has bias, 1: no bias
    expected_bias = {0: (1, outputs, 1, 1), 1: (0, 0, 0, 0)}.get(bias_mode)
    if weights_shape != (inputs, outputs, 1, 1) or biases_shape != expected_bias:
        raise r.error(f"weights ({inputs}, {outputs}, 1, 1) and biases {expected_bias} "
                      f"(bias mode 0 or 1)",
                      f"{weights_shape}, {biases_shape}, bias mode {bias_mode}", at)
    shapes = [(inputs, outputs)] + ([(outputs,)] if bias_mode == 0 else [])
    arrays = _split_params(r, params, shapes, what, at)
    bias = arrays[1] if bias_mode == 0 else None
    return FullyConnected(at, arrays[0], bias, _multipliers(r, what))


LAYER_READERS = {
    "con_4": _read_con,
    "affine_": _read_affine,
    "relu_": lambda r, at: Relu(at),
    "max_pool_2": _read_pool("max_pool"),
    "avg_pool_2": _read_pool("avg_pool"),
    "add_prev_": lambda r, at: AddPrev(at),
    "fc_2": _read_fc,
}


def read_layer(r: DlibReader) -> Layer:
    """One layer's own fields: its name string, then what that kind of layer writes."""
    at = r.pos
    name = r.read_string("a layer name")
    reader = LAYER_READERS.get(name)
    if reader is None:
        raise r.error(f"a layer name (one of {sorted(LAYER_READERS)})", _short(name), at)
    return reader(r, at)


# --------------------------------------------------------------------------------------
# The whole file.
# --------------------------------------------------------------------------------------


def _expect_float(r: DlibReader, expected: float, what: str) -> None:
    """Read a float; it must equal ``expected`` rounded to float32 (dlib stores floats)."""
    at = r.pos
    value = r.read_float(what)
    if np.float32(value) != np.float32(expected):
        raise r.error(f"{what} = {expected}", f"{value}", at)


def _read_header(r: DlibReader, threshold: float) -> list[int]:
    """Loss layer, then wrapper versions up to the 3 of the layer next to the input."""
    r.expect_int(1, "the loss layer version")
    r.expect_string(LOSS_NAME, "the loss name")
    _expect_float(r, LOSS_MARGIN, "the loss margin")
    _expect_float(r, threshold, "the distance threshold")
    versions: list[int] = []
    while not versions or versions[-1] != 3:
        at = r.pos
        version = r.read_int("a layer wrapper version")
        if version not in (1, 2, 3):
            raise r.error("a layer wrapper version (1, 2 or 3)", f"{version}", at)
        versions.append(version)
    return versions


def _read_input(r: DlibReader, chip_size: int) -> None:
    r.expect_string(INPUT_NAME, "the input layer name")
    for channel, mean in zip("RGB", INPUT_MEANS, strict=True):
        _expect_float(r, mean, f"the input mean of {channel}")
    r.expect_int(chip_size, "the input rows")
    r.expect_int(chip_size, "the input columns")


def _read_wrapper_state(r: DlibReader) -> None:
    """What dlib's add_layer writes after its layer: 3 flags and 3 (training) tensors."""
    for flag in ("setup called", "gradient input stale", "output and gradient disabled"):
        r.read_bool(f"the '{flag}' flag")
    for tensor in ("x_grad", "cached_output", "params_grad"):
        r.read_tensor(f"the {tensor} tensor")


def parse_face_resnet(data: bytes | bytearray, source: str = "<bytes>", *, threshold: float,
                      chip_size: int) -> list[Layer]:
    """Parse the bytes of dlib's face ResNet file (see `read_face_resnet`); no checksum."""
    r = DlibReader(data, source)
    versions = _read_header(r, threshold)
    _read_input(r, chip_size)
    layers: list[Layer] = []
    for i in range(versions.count(2) + 1):  # the version-3 layer, then every version-2 one
        layers.append(read_layer(r))
        _read_wrapper_state(r)
        if i == 0:
            r.expect_int(1, "the sample expansion factor")
    if not r.at_end():
        raise r.error("the end of the file", f"{len(r.data) - r.pos} more bytes")
    return layers


def read_face_resnet(path: str | Path, sha256: str | None = FACE_RESNET.sha256, *,
                     threshold: float, chip_size: int, remedy: str | None = None
                     ) -> list[Layer]:
    """Layer records (`Conv`, `Affine`, `Relu`, `Pool`, `AddPrev`, `FullyConnected`), input
    side first, each with its ``kind``, the byte ``offset`` of its name, its settings and
    float32 params. Tag and skip layers carry no data and are left out: the topology is in
    the code that builds the model. ``sha256`` is checked first (``None``: parser tests).
    The file must record the library's ``threshold`` and ``chip_size`` (the core's facts:
    `nbutils.faces.database.DISTANCE_THRESHOLD`, `nbutils.faces.align.CHIP_SIZE`).

    Raises:
        ChecksumError: the SHA-256 is not ``sha256``.
        WeightsError: the bytes are not exactly this network (unexpected loss, input, layer
            name or value, truncation, trailing bytes), with the offset of the problem.
    """
    path = Path(path)
    if sha256 is not None:
        check_digest(path, sha256, remedy=remedy)
    return parse_face_resnet(path.read_bytes(), str(path), threshold=threshold,
                             chip_size=chip_size)
