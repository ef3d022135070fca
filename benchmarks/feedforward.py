"""Feed-forward style transfer (`stylize_feedforward`) against one VGG19 pass, in one process.

1. Floor of the optimisation methods: one bare VGG19 forward + backward pass at this size
   (what each step of the course loop costs at least; see nst_speed.py).
2. A whole feed-forward stylisation at the same size: the style vector (the style image at
   256 x 256) and the style transformer on the content, as `stylize_feedforward` runs them.
3. If onnxruntime is installed: the Keras networks against the ONNX files they are rebuilt
   from, at the networks' native sizes (style 256, content 384), with ONNX's operators as
   specified (graph optimisation off):
   - float: the Keras networks built with ``simulate_int8=False`` against the ONNX graphs
     made float with the ``onnx`` package (weights dequantised, the activations'
     QuantizeLinear -> DequantizeLinear pairs removed). Nothing amplifies rounding there:
     float32 summation order apart, the same image, which proves architecture and weights;
   - int8: the published networks. For scale, the same comparison between onnxruntime and
     itself with every weight moved by one float32 ulp: the int8 network turns any
     rounding difference into whole-step differences downstream, so that is the floor any
     implementation that does not repeat onnxruntime's float sums bit for bit can reach.
     And, for context, the int8 image against the float network's (what int8 does).

    .venv/bin/python benchmarks/feedforward.py [--size 512] [--repeats 3]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import tensorflow as tf
from timing import median_seconds

from nbutils._internal.weights.registry import STYLE_PREDICT_ONNX, STYLE_TRANSFORM_ONNX
from nbutils.extras.feedforward import (
    STYLE_SIZE,
    STYLE_VECTOR_SIZE,
    style_vector,
    stylize_feedforward,
    transform,
)
from nbutils.images import load_image
from nbutils.samples import sample_image_path
from nbutils.style.costs import CONTENT_LAYER, STYLE_LAYERS
from nbutils.style.optimize import get_layer_outputs
from nbutils.vgg19 import load_vgg19

CONTENT_SIZE = 384  # the transform network's native size in the ONNX file


def dequantize(q: np.ndarray, scale: np.ndarray, zero_point: np.ndarray,
               axis: int = 1) -> np.ndarray:
    """ONNX DequantizeLinear as onnxruntime computes it: float(q - zero_point) * scale, per
    channel along ``axis`` for a 1-D ``scale``."""
    if scale.ndim == 1:
        shape = [1] * q.ndim
        shape[axis] = -1
        scale, zero_point = scale.reshape(shape), zero_point.reshape(shape)
    diff = q.astype(np.int64) - zero_point.astype(np.int64)
    return (diff.astype(np.float32) * scale.astype(np.float32)).astype(np.float32)


def float_model(model):
    """The float network of an int8 QDQ ONNX model (changed in place): DequantizeLinear of
    initializers folded to float initializers, every other QuantizeLinear and
    DequantizeLinear removed and its consumers rewired to its input."""
    from onnx import helper, numpy_helper

    graph = model.graph
    constants = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    renamed, nodes, folded = {}, [], []
    for node in graph.node:  # topological order
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type == "DequantizeLinear" and node.input[0] in constants:
            w = dequantize(*(constants[name] for name in node.input), attrs.get("axis", 1))
            folded.append(numpy_helper.from_array(w, node.output[0]))
        elif node.op_type in ("QuantizeLinear", "DequantizeLinear"):
            renamed[node.output[0]] = renamed.get(node.input[0], node.input[0])
        else:
            node.input[:] = [renamed.get(name, name) for name in node.input]
            nodes.append(node)
    for output in graph.output:  # the output keeps its name
        if output.name in renamed:
            nodes.append(helper.make_node("Identity", [renamed[output.name]], [output.name]))
    used = {name for node in nodes for name in node.input}
    kept = [t for t in graph.initializer if t.name in used] + folded
    del graph.node[:], graph.initializer[:], graph.value_info[:]
    graph.node.extend(nodes)
    graph.initializer.extend(kept)
    return model


def onnx_sessions(perturb: bool = False, as_float: bool = False) -> tuple:
    """onnxruntime sessions of the two ONNX files (graph optimisation off); ``perturb``:
    every dequantised weight moved one float32 ulp up or down at random; ``as_float``: the
    float networks (`float_model`)."""
    import onnx
    import onnxruntime as ort
    from onnx import numpy_helper

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3
    sessions = []
    for file in (STYLE_PREDICT_ONNX, STYLE_TRANSFORM_ONNX):
        model = onnx.load(str(file.verified()))
        if perturb:
            constants = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
            rng, kept = np.random.default_rng(1), []
            for node in model.graph.node:
                if node.op_type == "DequantizeLinear" and node.input[0].endswith("weights"):
                    axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
                    w = dequantize(*(constants[name] for name in node.input), axis)
                    away = np.where(rng.random(w.shape) < 0.5, -np.inf, np.inf)
                    w = np.nextafter(w, away.astype(np.float32))
                    model.graph.initializer.append(numpy_helper.from_array(w, node.output[0]))
                else:
                    kept.append(node)
            del model.graph.node[:]
            model.graph.node.extend(kept)
        if as_float:
            float_model(model)
        sessions.append(ort.InferenceSession(model.SerializeToString(), options,
                                             providers=["CPUExecutionProvider"]))
    return tuple(sessions)


def run_onnx(sessions: tuple, content: np.ndarray, style: np.ndarray) -> tuple:
    predictor, transformer = sessions
    vector = predictor.run(None, {predictor.get_inputs()[0].name: style[None]})[0]
    names = [i.name for i in transformer.get_inputs()]
    image = transformer.run(None, {names[0]: content[None], names[1]: vector})[0]
    return vector.reshape(STYLE_VECTOR_SIZE), image[0]


def run_keras(content: np.ndarray, style: np.ndarray, simulate_int8: bool = True) -> tuple:
    """The two networks as `stylize_feedforward` runs them (traced)."""
    vector = style_vector(style, simulate_int8)  # 256 x 256 already: not resized
    return vector, transform(content, vector, simulate_int8)


def differences() -> dict[str, float] | None:
    """Print Keras against onnxruntime (float and int8 networks), and onnxruntime against
    itself; returns the end to end max |keras - onnxruntime| of the float and the int8
    networks, and onnxruntime's own 1-ulp max (None without onnxruntime)."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        print("onnxruntime is not installed: no comparison with the ONNX files")
        return None
    content = load_image(sample_image_path("content"), CONTENT_SIZE)
    style = load_image(sample_image_path("style_swirls"), STYLE_SIZE)
    fv_ref, float_ref = run_onnx(onnx_sessions(as_float=True), content, style)
    fv, float_image = run_keras(content, style, simulate_int8=False)
    float_transform = transform(content, fv_ref, simulate_int8=False)
    v_ref, image_ref = run_onnx(onnx_sessions(), content, style)
    v, image = run_keras(content, style)
    transform_only = transform(content, v_ref)
    _, image_ulp = run_onnx(onnx_sessions(perturb=True), content, style)
    rows = (("float: |keras - onnxruntime| style vector", fv, fv_ref, ".2e"),
            ("float: |keras - onnxruntime| transform, same vector", float_transform, float_ref,
             ".2e"),
            ("float: |keras - onnxruntime| end to end", float_image, float_ref, ".2e"),
            ("int8: |keras - onnxruntime| style vector", v, v_ref, ".4f"),
            ("int8: |keras - onnxruntime| transform, same vector", transform_only, image_ref,
             ".4f"),
            ("int8: |keras - onnxruntime| end to end", image, image_ref, ".4f"),
            ("int8: |onnxruntime with 1-ulp weights - onnxruntime| end to end", image_ulp,
             image_ref, ".4f"),
            ("|keras int8 - onnxruntime float| end to end (what int8 does)", image, float_ref,
             ".4f"))
    for label, a, b, form in rows:
        d = np.abs(a - b)
        print(f"{label}: max {d.max():{form}}, mean {d.mean():{form}}")
    return {"float": float(np.abs(float_image - float_ref).max()),
            "int8": float(np.abs(image - image_ref).max()),
            "ulp": float(np.abs(image_ulp - image_ref).max())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    content = load_image(sample_image_path("content"), args.size)
    style = load_image(sample_image_path("style_swirls"))

    model = get_layer_outputs(load_vgg19(), STYLE_LAYERS + CONTENT_LAYER)

    @tf.function
    def bare_pass(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            total = tf.add_n([tf.reduce_sum(o) for o in model(x)])
        return tape.gradient(total, x)

    batch = tf.constant(content[None])
    floor = median_seconds(lambda: bare_pass(batch).numpy(), args.repeats)
    print(f"size {args.size}x{args.size}; bare VGG19 forward+backward pass: {floor:.3f} s")
    t = time.perf_counter()
    stylize_feedforward(content, style)
    print(f"first feed-forward call (reads the ONNX files, builds and traces the networks): "
          f"{time.perf_counter() - t:.1f} s")
    whole = median_seconds(lambda: stylize_feedforward(content, style), args.repeats)
    mixed = median_seconds(lambda: stylize_feedforward(content, style, 0.5), args.repeats)
    print(f"feed-forward stylisation: {whole:.3f} s (strength 0.5, two style vectors: "
          f"{mixed:.3f} s)")
    found = differences()
    tail = "" if found is None else \
        (f"; max |keras - onnxruntime| {found['float']:.1e} float, {found['int8']:.2f} int8 "
         f"(onnxruntime against itself with 1-ulp weights: {found['ulp']:.2f})")
    print(f"feed-forward {args.size}x{args.size}: {whole / floor:.2f}x one VGG19 "
          f"forward+backward pass{tail}")


if __name__ == "__main__":
    main()
