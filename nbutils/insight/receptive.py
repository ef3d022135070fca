"""Receptive fields: which input pixels one position of a ConvNet layer's output can see.

Each layer slides a window of ``k`` cells with stride ``s`` after padding ``pad_before``
cells; per axis, in input pixels (Araujo et al., 2019), starting from the input's
``jump = 1, size = 1, start = 0``:

    jump_out  = jump_in * s                                  (between adjacent positions)
    size_out  = size_in + (k - 1) * jump_in                  (pixels one position sees)
    start_out = start_in + ((k - 1) / 2 - pad_before) * jump_in   (centre of position 0)

'same' padding follows TensorFlow: ``pad_total = max(k - s, 0)`` if ``n % s == 0`` else
``max(k - n % s, 0)``, ``pad_before = pad_total // 2``; with a stride above 1 it can depend
on the axis length ``n``, which must then be known (a fixed input shape, or ``input_size``).
"""

from __future__ import annotations

from dataclasses import dataclass

import keras

__all__ = ["ReceptiveField", "UnsupportedLayerError", "input_window", "receptive_fields"]

#: Layers that act on each position separately (or not at all): no effect on the field.
PASS_THROUGH = (
    keras.layers.InputLayer,
    keras.layers.Activation,
    keras.layers.ReLU,
    keras.layers.LeakyReLU,
    keras.layers.ELU,
    keras.layers.PReLU,
    keras.layers.Softmax,
    keras.layers.BatchNormalization,
    keras.layers.Dropout,
    keras.layers.SpatialDropout2D,
    keras.layers.GaussianNoise,
    keras.layers.GaussianDropout,
    keras.layers.AlphaDropout,
    keras.layers.Rescaling,
    keras.layers.Identity,
)

#: Layers that slide a window: kernel (or pool) size, strides and padding.
SLIDING = (
    keras.layers.Conv2D,  # also matches Conv2DTranspose, refused below
    keras.layers.DepthwiseConv2D,
    keras.layers.SeparableConv2D,
    keras.layers.MaxPooling2D,
    keras.layers.AveragePooling2D,
)


class UnsupportedLayerError(ValueError):
    """A layer on the path changes the grid in a way a receptive field cannot describe."""


@dataclass(frozen=True)
class ReceptiveField:
    """One layer's receptive field per axis (rows, cols), in input pixels: ``size`` seen by
    a position (before clipping), ``jump`` between positions, ``start`` the centre of
    position (0, 0), possibly negative or fractional (0.5 after a 2x2 pool)."""

    size: tuple[int, int]
    jump: tuple[int, int]
    start: tuple[float, float]

    def centre(self, row: int, col: int) -> tuple[float, float]:
        """Input coordinates (y, x) of the centre of output position (row, col)."""
        return (self.start[0] + row * self.jump[0], self.start[1] + col * self.jump[1])


def receptive_fields(model: keras.Model, layer_name: str,
                     input_size: tuple[int, int] | None = None) -> ReceptiveField:
    """The `ReceptiveField` of ``layer_name``'s output positions in a channels-last model.

    Applies the module's recurrence along the single chain of layers from the input: sliding
    layers (`SLIDING`), ZeroPadding2D and Cropping2D shift the grid, pointwise layers pass.
    ``input_size`` (height, width) is needed only when the input shape is open and a strided
    'same' layer depends on it.

    Raises:
        UnsupportedLayerError: a dilated or transposed convolution, a layer with several
            inputs (a branch), channels-first data, or any layer whose spatial effect is not
            known (Flatten, Dense, global pooling, resizing, ...). The message names it.
    """
    path = _layers_to(model, layer_name)
    size, jump, start = [1, 1], [1, 1], [0.0, 0.0]
    grid = _spatial_size(path[0], input_size)  # current grid size (None where unknown)
    for layer in path:
        kernel, strides, pad_before, grid = _geometry(layer, grid)
        for a in range(2):
            start[a] += ((kernel[a] - 1) / 2 - pad_before[a]) * jump[a]
            size[a] += (kernel[a] - 1) * jump[a]
            jump[a] *= strides[a]
    return ReceptiveField(size=(size[0], size[1]), jump=(jump[0], jump[1]),
                          start=(float(start[0]), float(start[1])))


def input_window(rf: ReceptiveField, row: int, col: int,
                 image_shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """(top, left, bottom, right), exclusive: the crop ``image[top:bottom, left:right]``
    output position (row, col) sees, clipped to the image (smaller near the border)."""
    height, width = int(image_shape[0]), int(image_shape[1])
    centre = rf.centre(row, col)
    # centre - (size - 1) / 2 is a whole number by construction; round() only removes the
    # float representation error.
    top = round(centre[0] - (rf.size[0] - 1) / 2)
    left = round(centre[1] - (rf.size[1] - 1) / 2)
    bottom, right = top + rf.size[0], left + rf.size[1]
    return (min(max(top, 0), height), min(max(left, 0), width),
            min(max(bottom, 0), height), min(max(right, 0), width))


# ----------------------------------------------------------------------------- helpers


def _layers_to(model: keras.Model, layer_name: str) -> list[keras.layers.Layer]:
    """The layers from the input layer to ``layer_name``, in forward order."""
    names = [layer.name for layer in model.layers]
    if layer_name not in names:
        raise ValueError(f"no layer named {layer_name!r} in {model.name}; its layers are "
                         f"{names}")
    layer = model.get_layer(layer_name)
    path = [layer]
    while not isinstance(layer, keras.layers.InputLayer):
        try:
            tensor = layer.input
        except (AttributeError, ValueError) as e:
            raise UnsupportedLayerError(
                f"cannot follow the input of layer {layer.name!r} ({e}); build the model "
                "with a keras.Input and do not share layers"
            ) from e
        if isinstance(tensor, (list, tuple, dict)):
            raise UnsupportedLayerError(
                f"layer {layer.name!r} ({type(layer).__name__}) has several inputs; receptive "
                "fields are only computed along a single chain of layers"
            )
        layer = tensor._keras_history.operation  # the layer that produced this tensor
        path.append(layer)
    return path[::-1]


def _spatial_size(input_layer: keras.layers.Layer,
                  input_size: tuple[int, int] | None) -> list[int | None]:
    """(height, width) of the model input: ``input_size`` if given, else its static shape."""
    if input_size is not None:
        return [int(input_size[0]), int(input_size[1])]
    shape = input_layer.output.shape
    if len(shape) != 4:
        raise UnsupportedLayerError(f"the model input has shape {shape}; expected "
                                    "(batch, height, width, channels)")
    return [shape[1], shape[2]]


def _same_pad_before(k: int, s: int, n: int | None, layer: keras.layers.Layer) -> int:
    """TensorFlow's 'same' padding before the first cell, for an axis of length ``n``."""
    def pad(remainder: int) -> int:
        return (max(k - s, 0) if remainder == 0 else max(k - remainder, 0)) // 2

    if n is not None:
        return pad(n % s)
    candidates = {pad(r) for r in range(s)}
    if len(candidates) > 1:
        raise UnsupportedLayerError(
            f"layer {layer.name!r} uses 'same' padding with stride {s}: its padding depends on "
            "the input size, which the model leaves open; pass input_size=(height, width)"
        )
    return candidates.pop()


def _geometry(layer: keras.layers.Layer, grid: list[int | None]
              ) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int], list[int | None]]:
    """(kernel, strides, pad_before, grid size after) of one layer, per axis."""
    kind = type(layer).__name__
    if getattr(layer, "data_format", "channels_last") != "channels_last":
        raise UnsupportedLayerError(f"layer {layer.name!r} is channels-first; only "
                                    "channels-last models are supported")
    if isinstance(layer, PASS_THROUGH):
        return (1, 1), (1, 1), (0, 0), grid
    if isinstance(layer, keras.layers.ZeroPadding2D):
        (top, bottom), (left, right) = layer.padding
        added = (top + bottom, left + right)
        grid = [None if n is None else n + p for n, p in zip(grid, added, strict=True)]
        return (1, 1), (1, 1), (top, left), grid
    if isinstance(layer, keras.layers.Cropping2D):
        (top, bottom), (left, right) = layer.cropping
        removed = (top + bottom, left + right)
        grid = [None if n is None else n - p for n, p in zip(grid, removed, strict=True)]
        return (1, 1), (1, 1), (-top, -left), grid
    if not isinstance(layer, SLIDING) or isinstance(layer, keras.layers.Conv2DTranspose):
        raise UnsupportedLayerError(
            f"layer {layer.name!r} ({kind}) has no receptive-field rule here; supported: "
            "Conv2D, DepthwiseConv2D, SeparableConv2D, Max/AveragePooling2D, ZeroPadding2D, "
            "Cropping2D and pointwise layers"
        )
    if tuple(getattr(layer, "dilation_rate", (1, 1))) != (1, 1):
        raise UnsupportedLayerError(
            f"layer {layer.name!r} ({kind}) is dilated (dilation_rate={layer.dilation_rate}): "
            "its inputs are not a contiguous window, which this receptive field assumes"
        )
    kernel = tuple(layer.pool_size if hasattr(layer, "pool_size") else layer.kernel_size)
    strides = tuple(layer.strides)
    padding = layer.padding.lower()
    if padding not in ("valid", "same"):
        raise UnsupportedLayerError(f"layer {layer.name!r} has padding {padding!r}")
    pad_before, after = [], []
    for k, s, n in zip(kernel, strides, grid, strict=True):
        if padding == "valid":
            pad_before.append(0)
            after.append(None if n is None else (n - k) // s + 1)
        else:
            pad_before.append(_same_pad_before(k, s, n, layer))
            after.append(None if n is None else -(-n // s))
    return kernel, strides, (pad_before[0], pad_before[1]), after
