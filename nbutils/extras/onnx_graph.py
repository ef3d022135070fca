"""Reading an ONNX network into NumPy arrays and node descriptions: `read_onnx_graph`.

Nothing is run: `nbutils.extras.feedforward` rebuilds the network in Keras and loads each
layer's weights by ONNX node name. The file is hostile until proven otherwise:

    file size                                   <= max_bytes      (before it is read)
    SHA-256 of the bytes read                   == the pinned one (before they are parsed)
    every initializer: its dtype                in FLOAT, UINT8, INT8, INT32, INT64
                       its rank, each dim       <= 8, in [0, 2**31)
                       elements                 <= MAX_ELEMENTS
                       bytes stored             == elements x itemsize, stored in the file
    nodes, initializers                         <= MAX_ENTRIES each
    node attributes                             numbers and strings only (no subgraphs)

so `onnx.numpy_helper.to_array` only sees sizes it can trust, and no external-data reference
is followed. Int8 "QDQ" weights ``q`` with scale ``s`` and zero point ``z`` are dequantized
once, ``w = (q - z) * s`` (`OnnxGraph.dequantized`); quantised activations: `Quantization`.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nbutils._internal.weights.integrity import PREPARE_COMMAND, WeightsError, digest_mismatch

#: Bounds on what a graph may hold (the style networks have ~1,000 of each).
MAX_ENTRIES = 20_000
MAX_ELEMENTS = 1 << 26
MAX_RANK = 8
MAX_FILE_BYTES = 64 << 20

# ONNX TensorProto data types allowed -> (numpy dtype, the typed field that may hold them).
_DTYPES: dict[int, tuple[np.dtype, str]] = {
    1: (np.dtype(np.float32), "float_data"),
    2: (np.dtype(np.uint8), "int32_data"),
    3: (np.dtype(np.int8), "int32_data"),
    6: (np.dtype(np.int32), "int32_data"),
    7: (np.dtype(np.int64), "int64_data"),
}
# AttributeProto types allowed: FLOAT, INT, STRING, FLOATS, INTS, STRINGS.
_ATTRIBUTE_TYPES = {1, 2, 3, 6, 7, 8}


class OnnxGraphError(WeightsError):
    """An ONNX file is unreadable, hostile, or not the network expected; names the file."""


@dataclass(frozen=True)
class OnnxNode:
    """One operation: its type, its name, the tensors it reads and writes, its attributes."""

    op_type: str
    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    attributes: dict[str, Any]


@dataclass(frozen=True)
class Quantization:
    """An int8/uint8 grid: ``q = clip(round_half_even(x / scale) + zero_point, qmin, qmax)``,
    back to float as ``(q - zero_point) * scale`` (ONNX QuantizeLinear, DequantizeLinear)."""

    scale: float
    zero_point: int
    qmin: int
    qmax: int


class OnnxGraph:
    """A checked ONNX file's ``nodes`` (file order), ``initializers`` (name -> array) and
    ``inputs`` (name -> shape, None for a symbolic dimension), with lookups by name."""

    def __init__(self, path: Path, nodes: list[OnnxNode], initializers: dict[str, np.ndarray],
                 inputs: dict[str, tuple[int | None, ...]]) -> None:
        self.path, self.nodes, self.initializers, self.inputs = path, nodes, initializers, inputs
        self._producer = {out: node for node in nodes for out in node.outputs}
        self._consumers: dict[str, list[OnnxNode]] = {}
        for node in nodes:
            for name in node.inputs:
                self._consumers.setdefault(name, []).append(node)

    def error(self, message: str) -> OnnxGraphError:
        """An `OnnxGraphError` naming this file and the command that fetches it again."""
        return OnnxGraphError(f"{self.path}: {message}. It is not the network expected; "
                              f"delete it and run `{PREPARE_COMMAND}` to fetch it again.")

    def producer(self, tensor: str, op_type: str) -> OnnxNode:
        """The node of type ``op_type`` that writes ``tensor``."""
        node = self._producer.get(tensor)
        if node is None or node.op_type != op_type:
            raise self.error(f"no {op_type} node writes {tensor!r}")
        return node

    def consumer(self, tensor: str, op_type: str) -> OnnxNode:
        """The one node of type ``op_type`` that reads ``tensor``."""
        nodes = [n for n in self._consumers.get(tensor, []) if n.op_type == op_type]
        if len(nodes) != 1:
            raise self.error(f"{len(nodes)} {op_type} nodes read {tensor!r}, expected one")
        return nodes[0]

    def constant(self, name: str, dtypes: str = "fiu") -> np.ndarray:
        """The initializer ``name``, of a dtype kind in ``dtypes``."""
        array = self.initializers.get(name)
        if array is None or array.dtype.kind not in dtypes:
            raise self.error(f"no initializer {name!r} of kind {dtypes!r}")
        return array

    def quantization(self, tensor: str) -> Quantization:
        """How the ``QuantizeLinear`` node that writes ``tensor`` rounds (per tensor)."""
        node = self.producer(tensor, "QuantizeLinear")
        if len(node.inputs) != 3:
            raise self.error(f"{tensor!r} is quantised without a zero point")
        scale, zero = self.constant(node.inputs[1], "f"), self.constant(node.inputs[2], "iu")
        if scale.size != 1 or zero.size != 1 or zero.dtype.itemsize != 1:
            raise self.error(f"{tensor!r} is not quantised per tensor to 8 bits")
        value = float(scale.reshape(()))
        if not (math.isfinite(value) and value > 0):
            raise self.error(f"{tensor!r} has quantisation scale {value}")
        info = np.iinfo(zero.dtype)
        return Quantization(value, int(zero.reshape(())), int(info.min), int(info.max))

    def dequantized(self, tensor: str) -> np.ndarray:
        """The float32 constant ``tensor``: an initializer, or a ``DequantizeLinear`` of one,
        ``(q - zero_point) * scale`` along the node's ``axis`` (per channel) or per tensor."""
        if tensor in self.initializers:
            return self.constant(tensor, "f").astype(np.float32)
        node = self.producer(tensor, "DequantizeLinear")
        q = self.constant(node.inputs[0], "iu")
        scale = self.constant(node.inputs[1], "f").astype(np.float32)
        zero = self.constant(node.inputs[2], "iu") if len(node.inputs) > 2 else \
            np.zeros_like(scale, dtype=q.dtype)
        if zero.dtype != q.dtype or zero.shape != scale.shape or not np.all(scale > 0):
            raise self.error(f"the quantisation of {tensor!r} is inconsistent")
        if scale.size != 1:  # per channel along `axis`
            axis = node.attributes.get("axis", 1)
            if scale.ndim != 1 or not -q.ndim <= axis < q.ndim or \
                    q.shape[axis] != scale.size:
                raise self.error(f"{tensor!r}: {scale.size} scales for shape {q.shape}")
            shape = [1] * q.ndim
            shape[axis] = scale.size
            scale, zero = scale.reshape(shape), zero.reshape(shape)
        return ((q.astype(np.int64) - zero.astype(np.int64)).astype(np.float32)
                * scale).astype(np.float32)

    def conv(self, weights: str) -> tuple[np.ndarray, np.ndarray, OnnxNode]:
        """The ``Conv`` node whose weights are the quantised initializer ``weights``:
        (kernel (out, in / group, kh, kw), bias (out,), the node), both float32."""
        dequantize = self.consumer(weights, "DequantizeLinear")
        node = self.consumer(dequantize.outputs[0], "Conv")
        kernel = self.dequantized(dequantize.outputs[0])
        if kernel.ndim != 4 or len(node.inputs) != 3:
            raise self.error(f"the convolution with weights {weights!r} is not a 2-D one "
                             "with a bias")
        bias = self.dequantized(node.inputs[2])
        if bias.shape != kernel.shape[:1]:
            raise self.error(f"the bias of {weights!r} has shape {bias.shape}")
        return kernel, bias, node


def _tensor_array(tensor: Any, path: Path) -> np.ndarray:
    """An initializer as an array, after checking that its stored size is its declared one."""
    from onnx import numpy_helper

    name = tensor.name[:200]
    if tensor.data_location != 0 or len(tensor.external_data):
        raise OnnxGraphError(f"{path}: initializer {name!r} refers to external data; "
                             "refused (nothing outside this file is ever opened)")
    if tensor.data_type not in _DTYPES:
        raise OnnxGraphError(f"{path}: initializer {name!r} has ONNX data type "
                             f"{tensor.data_type}, not a plain number type")
    dims = list(tensor.dims)
    if len(dims) > MAX_RANK or any(not 0 <= d < 2**31 for d in dims):
        raise OnnxGraphError(f"{path}: initializer {name!r} has shape {dims[:MAX_RANK + 1]}")
    count = math.prod(dims)
    if count > MAX_ELEMENTS:
        raise OnnxGraphError(f"{path}: initializer {name!r} declares {count} elements, more "
                             f"than the {MAX_ELEMENTS} allowed")
    dtype, field = _DTYPES[tensor.data_type]
    if tensor.raw_data:
        stored, expected = len(tensor.raw_data), count * dtype.itemsize
    else:
        stored, expected = len(getattr(tensor, field)), count
    if stored != expected:
        raise OnnxGraphError(f"{path}: initializer {name!r} of shape {dims} stores {stored} "
                             f"{'bytes' if tensor.raw_data else 'values'}, not {expected}")
    array = numpy_helper.to_array(tensor)
    if array.dtype != dtype or array.shape != tuple(dims):
        raise OnnxGraphError(f"{path}: initializer {name!r} did not read as {dtype} {dims}")
    return array


def _node(proto: Any, path: Path) -> OnnxNode:
    from onnx import helper

    attributes = {}
    for attribute in proto.attribute:
        if attribute.type not in _ATTRIBUTE_TYPES:
            raise OnnxGraphError(f"{path}: node {proto.name[:200]!r} has an attribute of "
                                 f"type {attribute.type} (a tensor or a subgraph); refused")
        value = helper.get_attribute_value(attribute)
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        attributes[attribute.name] = tuple(value) if isinstance(value, list) else value
    return OnnxNode(proto.op_type, proto.name, tuple(proto.input), tuple(proto.output),
                    attributes)


def read_onnx_graph(path: str | Path, sha256: str | None, *, remedy: str | None = None,
                    max_bytes: int = MAX_FILE_BYTES) -> OnnxGraph:
    """The `OnnxGraph` of an ``.onnx`` file, every size bounded before it is used.

    ``sha256`` is checked on the bytes read, before parsing (None: a user's own file, only
    the bounds protect); ``remedy`` is what a checksum failure says to do.

    Raises:
        ChecksumError: the digest is not ``sha256``. OnnxGraphError: anything else wrong;
            every message names the file.
    """
    import onnx

    path = Path(path)
    size = path.stat().st_size
    if size > max_bytes:
        raise OnnxGraphError(f"{path}: {size} bytes, more than the {max_bytes} an ONNX "
                             "network may have here")
    with open(path, "rb") as f:
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:  # it grew since: refused all the same
        raise OnnxGraphError(f"{path}: more than the {max_bytes} bytes an ONNX network may "
                             "have here")
    actual = hashlib.sha256(data).hexdigest()
    if sha256 is not None and actual != sha256:
        raise digest_mismatch(path, "sha256", actual, sha256, remedy)
    try:
        model = onnx.load_model_from_string(data)
    except Exception as e:  # a protobuf decoder's errors vary with its implementation
        raise OnnxGraphError(f"{path}: not a readable ONNX file ({type(e).__name__}: "
                             f"{str(e)[:200]})") from e
    graph = model.graph
    if len(graph.node) > MAX_ENTRIES or len(graph.initializer) > MAX_ENTRIES:
        raise OnnxGraphError(f"{path}: {len(graph.node)} nodes and {len(graph.initializer)} "
                             f"initializers, more than the {MAX_ENTRIES} allowed")
    if len(graph.sparse_initializer):
        raise OnnxGraphError(f"{path}: sparse initializers are not supported")
    if not graph.node:
        raise OnnxGraphError(f"{path}: the file holds no ONNX graph")
    initializers = {t.name: _tensor_array(t, path) for t in graph.initializer}
    nodes = [_node(n, path) for n in graph.node]
    inputs = {i.name: tuple(d.dim_value if d.HasField("dim_value") else None
                            for d in i.type.tensor_type.shape.dim)
              for i in graph.input if i.name not in initializers}
    return OnnxGraph(path, nodes, initializers, inputs)
