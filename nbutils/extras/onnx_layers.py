"""Keras layers for the feed-forward style networks (`nbutils.extras.feedforward`), NHWC
float32: `ReflectionPad2D` (mirror padding: no black border), `FakeQuant` (rounding to the
published network's int8 grid) and `ConditionalInstanceNorm` (scale and shift predicted
from the style; Dumoulin et al. 2017). `OnnxLayers` makes them and Keras's Conv2D,
DepthwiseConv2D and Dense with an ONNX graph's weights (NCHW kernels transposed to HWIO),
each found by its ONNX node's name.
"""

from __future__ import annotations

from dataclasses import astuple
from typing import Any

import keras
from keras import ops

from nbutils.extras.onnx_graph import OnnxGraph, Quantization

#: The rounding steps inside `ConditionalInstanceNorm`, in the order they happen.
NORM_STEPS = ("mean", "squared_difference", "variance", "variance_plus_epsilon",
              "inverse_std", "scale", "mean_times_scale", "shift", "x_times_scale")

QuantArgs = tuple[float, int, int, int]  # scale, zero_point, qmin, qmax


def fake_quantize(x: Any, q: Quantization | QuantArgs) -> Any:
    """``x`` rounded to an 8-bit grid and back to float, as ONNX's QuantizeLinear followed by
    DequantizeLinear computes it:

        q = clip(round(x / scale) + zero_point, qmin, qmax)    (round half to even)
        y = (q - zero_point) * scale
    """
    scale, zero_point, qmin, qmax = (q.scale, q.zero_point, q.qmin, q.qmax) \
        if isinstance(q, Quantization) else q
    rounded = ops.clip(ops.round(x / scale) + zero_point, qmin, qmax)
    return (rounded - zero_point) * scale


@keras.saving.register_keras_serializable(package="nbutils")
class ReflectionPad2D(keras.layers.Layer):
    """Pad height and width by ``padding`` pixels each side, mirrored without repeating the
    edge (TensorFlow's MirrorPad "REFLECT"): a row ``a b c d`` padded by 2 is
    ``c b a b c d c b``. (b, H, W, C) -> (b, H + 2p, W + 2p, C); needs H, W > p."""

    def __init__(self, padding: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.padding = int(padding)

    def call(self, x: Any) -> Any:
        p = self.padding
        return ops.pad(x, [[0, 0], [p, p], [p, p], [0, 0]], mode="reflect")

    def compute_output_shape(self, shape: tuple) -> tuple:
        grow = [None if d is None else d + 2 * self.padding for d in shape[1:3]]
        return (shape[0], *grow, shape[3])

    def get_config(self) -> dict:
        return {**super().get_config(), "padding": self.padding}


@keras.saving.register_keras_serializable(package="nbutils")
class FakeQuant(keras.layers.Layer):
    """Round to an 8-bit grid and back (`fake_quantize`): ``scale`` apart, values
    ``(qmin - zero_point) * scale`` to ``(qmax - zero_point) * scale``. Any shape.
    ``source``: the name of the ONNX tensor whose rounding this is, for reference."""

    def __init__(self, scale: float, zero_point: int, qmin: int = -128, qmax: int = 127,
                 source: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.quantization = (float(scale), int(zero_point), int(qmin), int(qmax))
        self.source = source

    def call(self, x: Any) -> Any:
        return fake_quantize(x, self.quantization)

    def compute_output_shape(self, shape: tuple) -> tuple:
        return shape

    def get_config(self) -> dict:
        scale, zero_point, qmin, qmax = self.quantization
        return {**super().get_config(), "scale": scale, "zero_point": zero_point,
                "qmin": qmin, "qmax": qmax, "source": self.source}


@keras.saving.register_keras_serializable(package="nbutils")
class ConditionalInstanceNorm(keras.layers.Layer):
    """Instance normalisation of x (b, H, W, C) with per-style gamma, beta (b, C); inputs
    ``[x, gamma, beta]``. Per image and channel, over H and W:

        y_c = gamma_c (x_c - mu_c) / sqrt(sigma_c^2 + epsilon) + beta_c

    computed as the published network does, ``x * scale + shift`` with ``scale = gamma /
    sqrt(sigma^2 + epsilon)``, ``shift = beta - mu * scale``. ``steps``: for an int8 network
    the `FakeQuant` arguments after each of `NORM_STEPS` (None: nothing rounded).
    """

    def __init__(self, epsilon: float, steps: dict[str, QuantArgs] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)
        self.steps = {k: tuple(v) for k, v in steps.items()} if steps else None
        if self.steps is not None and set(self.steps) != set(NORM_STEPS):
            raise ValueError(f"steps must give the rounding of each of {NORM_STEPS}")

    def _round(self, x: Any, step: str) -> Any:
        return x if self.steps is None else fake_quantize(x, self.steps[step])

    def call(self, inputs: list) -> Any:
        x, gamma, beta = inputs
        gamma, beta = gamma[:, None, None, :], beta[:, None, None, :]  # (b, 1, 1, C)
        mean = self._round(ops.mean(x, axis=(1, 2), keepdims=True), "mean")
        squared = self._round(ops.square(x - mean), "squared_difference")
        variance = self._round(ops.mean(squared, axis=(1, 2), keepdims=True), "variance")
        variance = self._round(variance + self.epsilon, "variance_plus_epsilon")
        inverse_std = self._round(1.0 / ops.sqrt(variance), "inverse_std")
        scale = self._round(gamma * inverse_std, "scale")
        shift = self._round(beta - self._round(mean * scale, "mean_times_scale"), "shift")
        return self._round(x * scale, "x_times_scale") + shift

    def compute_output_shape(self, shapes: list) -> tuple:
        return shapes[0]

    def get_config(self) -> dict:
        return {**super().get_config(), "epsilon": self.epsilon, "steps": self.steps}


#: The ONNX tensor (under ``<convolution>/StyleNorm/``) that rounds each of `NORM_STEPS`.
_NORM_TENSORS = dict(zip(NORM_STEPS, (
    "moments/mean", "moments/SquaredDifference_int8", "moments/variance", "batchnorm/add",
    "batchnorm/Rsqrt_int8", "batchnorm/mul", "batchnorm/mul_2", "batchnorm/sub",
    "batchnorm/mul_1"), strict=True))


class OnnxLayers:
    """Keras layers made from an ONNX graph: weights, biases and roundings found by node
    name and checked against the architecture the caller asks for. ``simulate_int8``: add
    the `FakeQuant` layers (else a float network with the same weights)."""

    def __init__(self, graph: OnnxGraph, simulate_int8: bool) -> None:
        self.graph, self.simulate_int8 = graph, simulate_int8

    def quantize(self, x: Any, tensor: str, name: str) -> Any:
        """``x`` rounded as the ONNX QuantizeLinear writing ``tensor`` does (if simulating)."""
        if not self.simulate_int8:
            return x
        q = self.graph.quantization(tensor)
        return FakeQuant(q.scale, q.zero_point, q.qmin, q.qmax, tensor, name=name)(x)

    def same_grid(self, tensor: str, previous: str) -> None:
        """Check that re-quantising ``tensor`` (after a padding or an upsampling) changes
        nothing: it is on ``previous``'s grid, so no layer is needed for it."""
        if self.graph.quantization(tensor) != self.graph.quantization(previous):
            raise self.graph.error(f"{tensor!r} is not rounded like {previous!r}")

    def conv(self, x: Any, weights: str, name: str, filters: int, kernel: int,
             strides: int = 1, padding: str = "valid", depthwise: bool = False) -> Any:
        """A Conv2D (or DepthwiseConv2D) with the ONNX Conv's weights and bias, checked
        against the architecture: kernel shape, stride, padding, groups."""
        w, b, node = self.graph.conv(weights)
        channels = x.shape[-1]
        expected = (channels, 1, kernel, kernel) if depthwise else \
            (filters, channels, kernel, kernel)
        k = kernel - strides if padding == "same" else 0  # TensorFlow's "SAME", even sizes
        attrs = node.attributes
        if (w.shape != expected or attrs.get("strides", (1, 1)) != (strides, strides)
                or attrs.get("group", 1) != (channels if depthwise else 1)
                or attrs.get("pads", (0,) * 4) != (k // 2, k // 2, k - k // 2, k - k // 2)
                or attrs.get("dilations", (1, 1)) != (1, 1)):
            raise self.graph.error(f"the convolution {weights!r} is not the expected "
                                   f"{kernel}x{kernel}/{strides} one to {filters} channels")
        if depthwise:
            layer = keras.layers.DepthwiseConv2D(kernel, strides, padding, name=name)
            y = layer(x)
            layer.set_weights([w.transpose(2, 3, 0, 1), b])  # (C, 1, kh, kw) -> (kh, kw, C, 1)
        else:
            layer = keras.layers.Conv2D(filters, kernel, strides, padding, name=name)
            y = layer(x)
            layer.set_weights([w.transpose(2, 3, 1, 0), b])  # (O, I, kh, kw) -> (kh, kw, I, O)
        return y

    def dense(self, x: Any, weights: str, name: str, units: int) -> Any:
        """A Dense layer holding an ONNX 1x1 convolution on a (1, 1) map."""
        w, b, _ = self.graph.conv(weights)
        if w.shape != (units, x.shape[-1], 1, 1):
            raise self.graph.error(f"{weights!r} has shape {w.shape}, not a 1x1 convolution "
                                   f"from {x.shape[-1]} to {units} channels")
        layer = keras.layers.Dense(units, name=name)
        y = layer(x)
        layer.set_weights([w[:, :, 0, 0].T, b])
        return y

    def style_norm(self, x: Any, style: Any, prefix: str, name: str) -> Any:
        """`ConditionalInstanceNorm` of ``x`` with gamma, beta = Dense(style vector)."""
        channels, norm = x.shape[-1], f"{prefix}/StyleNorm"
        gamma = self.dense(style, f"style_params/{norm}/Conv_1/weights", f"{name}_gamma",
                           channels)
        gamma = self.quantize(gamma, f"style_params/{norm}/Conv_1/BiasAdd", f"{name}_gamma_int8")
        beta = self.dense(style, f"style_params/{norm}/Conv/weights", f"{name}_beta", channels)
        beta = self.quantize(beta, f"style_params/{norm}/Conv/BiasAdd", f"{name}_beta_int8")
        add = self.graph.producer(f"{norm}/batchnorm/add_prequant", "Add")
        epsilon = self.graph.dequantized(add.inputs[1])
        if epsilon.size != 1 or not 0 < float(epsilon.reshape(())) < 1e-2:
            raise self.graph.error(f"{norm} has no small positive epsilon")
        steps = None
        if self.simulate_int8:
            steps = {step: astuple(self.graph.quantization(f"{norm}/{tensor}"))
                     for step, tensor in _NORM_TENSORS.items()}
        layer = ConditionalInstanceNorm(float(epsilon.reshape(())), steps, name=f"{name}_norm")
        return layer([x, gamma, beta])
