"""Feed-forward style transfer (`stylize_feedforward`) against one VGG19 pass, in one process.

1. Floor of the optimisation methods: one bare VGG19 forward + backward pass at this size
   (what each step of the course loop costs at least; see nst_speed.py).
2. A whole feed-forward stylisation at the same size: the style vector (the style image at
   256 x 256) and the style transformer on the content, as `stylize_feedforward` runs them.
3. If onnxruntime is installed: the Keras networks against the ONNX files they are rebuilt
   from, at the networks' native sizes (style 256, content 384), with ONNX's operators as
   specified (graph optimisation off). For scale, the same comparison between onnxruntime
   and itself with every weight moved by one float32 ulp: the int8 network turns any
   rounding difference into whole-step differences downstream, so that is the floor any
   implementation that does not repeat onnxruntime's float sums bit for bit can reach.

    .venv/bin/python benchmarks/feedforward.py [--size 512] [--repeats 3]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import tensorflow as tf

from nbutils.images import load_image
from nbutils.samples import sample_image_path
from nbutils.style import CONTENT_LAYER, STYLE_LAYERS, get_layer_outputs, stylize_feedforward
from nbutils.style.feedforward import STYLE_SIZE, STYLE_VECTOR_SIZE, style_vector, transform
from nbutils.style.onnx_graph import read_onnx_graph
from nbutils.weights import load_vgg19
from nbutils.weights.registry import STYLE_PREDICT_ONNX, STYLE_TRANSFORM_ONNX

CONTENT_SIZE = 384  # the transform network's native size in the ONNX file


def median_seconds(fn, repeats: int) -> float:
    fn()  # trace and warm up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def onnx_sessions(perturb: bool = False) -> tuple:
    """onnxruntime sessions of the two ONNX files (graph optimisation off); ``perturb``:
    every dequantised weight moved one float32 ulp up or down at random."""
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
            graph, rng, kept = file.read(read_onnx_graph), np.random.default_rng(1), []
            for node in model.graph.node:
                if node.op_type == "DequantizeLinear" and node.input[0].endswith("weights"):
                    w = graph.dequantized(node.output[0])
                    away = np.where(rng.random(w.shape) < 0.5, -np.inf, np.inf)
                    w = np.nextafter(w, away.astype(np.float32))
                    model.graph.initializer.append(numpy_helper.from_array(w, node.output[0]))
                else:
                    kept.append(node)
            del model.graph.node[:]
            model.graph.node.extend(kept)
        sessions.append(ort.InferenceSession(model.SerializeToString(), options,
                                             providers=["CPUExecutionProvider"]))
    return tuple(sessions)


def run_onnx(sessions: tuple, content: np.ndarray, style: np.ndarray) -> tuple:
    predictor, transformer = sessions
    vector = predictor.run(None, {predictor.get_inputs()[0].name: style[None]})[0]
    names = [i.name for i in transformer.get_inputs()]
    image = transformer.run(None, {names[0]: content[None], names[1]: vector})[0]
    return vector.reshape(STYLE_VECTOR_SIZE), image[0]


def run_keras(content: np.ndarray, style: np.ndarray) -> tuple:
    """The two networks as `stylize_feedforward` runs them (traced)."""
    vector = style_vector(style)  # 256 x 256 already: not resized
    return vector, transform(content, vector)


def differences() -> tuple[float, float, float] | None:
    """Print Keras against onnxruntime, and onnxruntime against itself; returns the end to
    end max and mean |keras - onnxruntime| and onnxruntime's own 1-ulp max (None without
    onnxruntime)."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        print("onnxruntime is not installed: no comparison with the ONNX files")
        return None
    content = load_image(sample_image_path("content"), CONTENT_SIZE)
    style = load_image(sample_image_path("style_swirls"), STYLE_SIZE)
    reference = onnx_sessions()
    v_ref, image_ref = run_onnx(reference, content, style)
    v, image = run_keras(content, style)
    transform_only = transform(content, v_ref)
    _, image_ulp = run_onnx(onnx_sessions(perturb=True), content, style)
    rows = (("|keras - onnxruntime| style vector", v, v_ref),
            ("|keras - onnxruntime| transform, same vector", transform_only, image_ref),
            ("|keras - onnxruntime| end to end", image, image_ref),
            ("|onnxruntime with 1-ulp weights - onnxruntime| end to end", image_ulp, image_ref))
    for label, a, b in rows:
        d = np.abs(a - b)
        print(f"{label}: max {d.max():.4f}, mean {d.mean():.4f}")
    d = np.abs(image - image_ref)
    return float(d.max()), float(d.mean()), float(np.abs(image_ulp - image_ref).max())


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
        (f"; max |keras - onnxruntime| {found[0]:.3f} (mean {found[1]:.4f}; onnxruntime "
         f"against itself with 1-ulp weights: max {found[2]:.3f})")
    print(f"feed-forward {args.size}x{args.size}: {whole / floor:.2f}x one VGG19 "
          f"forward+backward pass{tail}")


if __name__ == "__main__":
    main()
