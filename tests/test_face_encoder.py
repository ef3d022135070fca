"""dlib's face ResNet: the byte-format reader, the Keras port, and its agreement with dlib.

The reference (tests/data/dlib_reference_chips.npz) is the real dlib 20.0.1's own output:
13 aligned chips and ``compute_face_descriptor(chip)`` for each.
"""

import dataclasses
import math
import shutil
import struct
from collections import Counter
from itertools import combinations
from pathlib import Path

import keras
import numpy as np
import pytest

from nbutils._internal import dlib_format as df
from nbutils._internal.weights import registry
from nbutils._internal.weights.integrity import (
    ChecksumError,
    WeightsError,
    WeightsNotFoundError,
    arrays_digest,
)
from nbutils._internal.weights.registry import FACE_RESNET
from nbutils.faces import encoder as enc
from nbutils.faces.align import CHIP_SIZE
from nbutils.faces.database import DISTANCE_THRESHOLD

#: What the library expects dlib's file to record.
FACTS = {"threshold": DISTANCE_THRESHOLD, "chip_size": CHIP_SIZE}

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def reference():
    with np.load(DATA / "dlib_reference_chips.npz") as npz:
        return {k: npz[k] for k in npz.files}


@pytest.fixture(scope="module")
def dat_file() -> Path:
    return FACE_RESNET.locate()


@pytest.fixture(scope="module")
def records(dat_file):
    return df.read_face_resnet(dat_file, **FACTS)


@pytest.fixture(scope="module")
def encoder():
    return enc.load_face_encoder()


# ---------------------------------------------------------------------------------------
# Primitive decoders, against bytes computed by hand from dlib's serialize.h.
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("data, value", [
    (b"\x01\x05", 5),
    (b"\x81\x05", -5),
    (b"\x01\x00", 0),
    (b"\x02\x00\x01", 256),          # little-endian magnitude
    (b"\x02\x80\x12", 0x1280),       # 4736: the stem conv's params count
    (b"\x83\x01\x02\x03", -0x030201),
    (b"\x08" + b"\xff" * 8, 2**64 - 1),
])
def test_read_int(data, value):
    r = df.DlibReader(data)
    assert r.read_int() == value
    assert r.at_end()


@pytest.mark.parametrize("data", [b"\x00", b"\x09" + b"\x00" * 9, b"\x11\x05", b"\x02\x05", b""])
def test_read_int_refuses_bad_control_bytes_and_truncation(data):
    with pytest.raises(WeightsError, match="at byte 0"):
        df.DlibReader(data, "x.dat").read_int()


@pytest.mark.parametrize("data, value", [
    (b"\x01\x03\x81\x01", 1.5),                       # 3 * 2**-1
    (b"\x01\x10\x81\x04", 1.0),                       # 16 * 2**-4, as dlib writes 1.0
    (b"\x81\x05\x01\x02", -20.0),                     # -5 * 2**2
    (b"\x03\x0a\xd7\xa3\x81\x1c", 0xA3D70A * 2.0**-28),  # float32(0.04), the loss margin
    (b"\x02\x00\x7d\x02\x00\x7d", math.inf),           # exponent 32000 (0x7d00)
    (b"\x01\x00\x02\x01\x7d", -math.inf),              # exponent 32001
])
def test_read_float(data, value):
    r = df.DlibReader(data)
    assert r.read_float() == value
    assert r.at_end()


def test_read_float_nan_and_the_file_means():
    assert math.isnan(df.DlibReader(b"\x01\x00\x02\x02\x7d").read_float())
    # R mean as in the file: 0xf59062 * 2**-17 = float32(122.782)
    red = df.DlibReader(b"\x03\x62\x90\xf5\x81\x11").read_float()
    assert red == 0xF59062 / 2**17 and np.float32(red) == np.float32(122.782)
    with pytest.raises(WeightsError, match="finite"):
        df.DlibReader(b"\x01\x01\x02\xff\x7c").read_float()  # 1 * 2**31999 overflows


def test_read_bool_string_tensor_alias():
    tensor = b"\x01\x02" + b"\x01\x01" * 3 + b"\x01\x02" + struct.pack("<2f", 1.5, -2)
    alias = b"\x01\x01" + b"\x01\x00" * 4
    r = df.DlibReader(b"10" + b"\x01\x03abc" + tensor + alias)
    assert r.read_bool() is True and r.read_bool() is False
    assert r.read_string() == "abc"
    t = r.read_tensor()
    assert t.dtype == np.float32 and t.shape == (1, 1, 1, 2) and t.ravel().tolist() == [1.5, -2.0]
    assert r.read_alias_tensor() == (0, 0, 0, 0)
    assert r.at_end()
    with pytest.raises(WeightsError, match=r"at byte 0: expected a bool \(b'1' or b'0'\)"):
        df.DlibReader(b"2").read_bool()
    with pytest.raises(WeightsError, match="the end of the file"):
        df.DlibReader(b"\x01\x02" + b"\x01\x01" * 3 + b"\x01\x02" + b"\x00" * 7).read_tensor()


# ---------------------------------------------------------------------------------------
# The real file.
# ---------------------------------------------------------------------------------------


def test_reader_parses_the_whole_file(dat_file, records):
    assert dat_file.stat().st_size == df.FACE_RESNET_SIZE == 22_466_066
    # 14 residual blocks of 2 convs + the stem conv; 4 down-block pools + the global pool
    assert Counter(r.kind for r in records) == {
        "con": 29, "affine": 29, "relu": 29, "add_prev": 14,
        "avg_pool": 5, "max_pool": 1, "fc": 1,
    }
    assert [r.kind for r in records[:4]] == ["con", "affine", "relu", "max_pool"]
    assert records[0].filters.shape == (32, 3, 7, 7) and records[0].stride == (2, 2)
    pools = [r for r in records if r.kind == "avg_pool"]
    assert [p.size for p in pools] == [(2, 2)] * 4 + [(0, 0)]
    fc = records[-1]
    assert fc.kind == "fc" and fc.weights.shape == (256, 128) and fc.bias is None
    assert all(np.isfinite(r.filters).all() for r in records if r.kind == "con")
    # Every record maps onto the Keras model's plan (kinds, shapes, strides, padding).
    assert len(enc.dlib_layer_plan()) == len(records) == 108


def test_reader_consumes_exactly_every_byte(dat_file):
    data = dat_file.read_bytes()
    with pytest.raises(WeightsError, match=f"at byte {len(data)}: expected the end of the file"):
        df.parse_face_resnet(data + b"\x00", "x.dat", **FACTS)
    with pytest.raises(WeightsError, match="x.dat: at byte .*the end of the file"):
        df.parse_face_resnet(data[:-1], "x.dat", **FACTS)


def test_flipped_byte_is_refused_by_checksum(dat_file, tmp_path):
    copy = tmp_path / FACE_RESNET.name
    data = bytearray(dat_file.read_bytes())
    data[len(data) // 2] ^= 0x01  # in a float: only the checksum can see it
    copy.write_bytes(bytes(data))
    with pytest.raises(ChecksumError, match="sha256"):
        df.read_face_resnet(copy, **FACTS)
    assert len(df.read_face_resnet(copy, sha256=None, **FACTS)) == 108


def test_parser_refuses_truncated_copy(dat_file, tmp_path):
    copy = tmp_path / "truncated.dat"
    copy.write_bytes(dat_file.read_bytes()[:1_000_000])
    with pytest.raises(WeightsError, match=r"truncated.dat: at byte \d+: expected \d+ bytes"):
        df.read_face_resnet(copy, sha256=None, **FACTS)


def test_parser_refuses_altered_layer_name(dat_file, tmp_path):
    data = dat_file.read_bytes()
    at = data.index(b"\x01\x05relu_")  # length 5, then the name
    copy = tmp_path / "renamed.dat"
    copy.write_bytes(data[:at] + b"\x01\x05reLu_" + data[at + 7:])
    with pytest.raises(WeightsError, match=f"at byte {at}: expected a layer name.*'reLu_'"):
        df.read_face_resnet(copy, sha256=None, **FACTS)


def test_parser_refuses_altered_header(dat_file):
    data = dat_file.read_bytes()
    at = data.index(b"loss_metric_2") - 2
    bad = data[:at + 2] + b"loss_metric_3" + data[at + 15:]
    with pytest.raises(WeightsError, match=f"at byte {at}: expected the loss name"):
        df.parse_face_resnet(bad, **FACTS)
    at = data.index(b"\x03\x62\x90\xf5\x81\x11")  # the R mean
    bad = data[:at + 1] + b"\x63" + data[at + 2:]
    with pytest.raises(WeightsError, match=f"at byte {at}: expected the input mean of R"):
        df.parse_face_resnet(bad, **FACTS)



def test_the_file_must_record_the_librarys_threshold_and_chip_size(dat_file):
    """The threshold and chip size are the library's facts, handed to the parser: a library
    that expected another value than dlib's file records would be refused at load."""
    data = dat_file.read_bytes()
    with pytest.raises(WeightsError, match="expected the distance threshold = 0.5"):
        df.parse_face_resnet(data, threshold=0.5, chip_size=CHIP_SIZE)
    with pytest.raises(WeightsError, match="expected the input rows"):
        df.parse_face_resnet(data, threshold=DISTANCE_THRESHOLD, chip_size=160)

def test_every_changed_structure_byte_gives_a_weights_error(dat_file):
    """Each byte before the first float data (loss, wrapper versions, input, the stem conv's
    header) and after the last (the fc's settings and its wrapper's state), inverted: the
    parser refuses it with a WeightsError at an offset, never another exception. The only
    changes it cannot see are in values that dlib uses for training alone."""
    data = bytearray(dat_file.read_bytes())
    first_float = 0x160  # stem conv params data: after "con_4", version 2 and N, K, R, C
    tail = len(data) - 72  # the fc: weights alias, bias alias, bias mode, 4 doubles, ...
    assert data[first_float - 6:first_float] == b"\x01\x01" * 3
    assert data[tail:tail + 4] == b"\x01\x01\x02\x00"  # alias version 1, 256 inputs
    accepted = []
    for at in [*range(first_float), *range(tail, len(data))]:
        data[at] ^= 0xFF
        try:
            df.parse_face_resnet(data, "x.dat", **FACTS)
            accepted.append(at - len(data))
        except WeightsError as e:
            assert str(e).startswith("x.dat: at byte ")
        finally:
            data[at] ^= 0xFF
    multipliers = range(-49, -33)  # 4 doubles: learning rate / weight decay multipliers
    empty_grads = range(-30, 0)  # 3 empty tensors: a changed 0 dimension still holds 0 values
    assert accepted and all(a in multipliers or a in empty_grads for a in accepted)


# ---------------------------------------------------------------------------------------
# The Keras model.
# ---------------------------------------------------------------------------------------


def test_shapes_through_the_network():
    model = enc.build_face_resnet()
    names = {"stem_conv": 72, "stem_pool": 35, "res32_3_relu": 35, "down64_relu": 17,
             "down128_relu": 8, "down256_1_conv2": 3, "down256_1_skip_pool": 4,
             "down256_1_relu": 4, "down256_2_conv2": 1, "down256_2_relu": 2}
    probe = keras.Model(model.input, [model.get_layer(n).output for n in names])
    outputs = probe.predict_on_batch(np.zeros((2, 150, 150, 3), np.float32))
    for (name, size), out in zip(names.items(), outputs, strict=True):
        assert out.shape[:3] == (2, size, size), name
    assert model.output_shape == (None, enc.EMBEDDING_DIM)
    assert model.input_shape == (None, enc.CHIP_SIZE, enc.CHIP_SIZE, 3)


def test_add_pads_at_the_end():
    x = np.arange(2 * 3 * 3 * 2, dtype=np.float32).reshape(2, 3, 3, 2)
    padded = enc.PadChannels(3)(keras.layers.ZeroPadding2D(((0, 1), (0, 1)))(x))
    padded = keras.ops.convert_to_numpy(padded)
    assert padded.shape == (2, 4, 4, 5)
    np.testing.assert_array_equal(padded[:, :3, :3, :2], x)
    assert not padded[:, 3].any() and not padded[:, :, 3].any() and not padded[..., 2:].any()


def test_fold_affine_is_exact():
    rng = np.random.default_rng(1)
    filters = rng.normal(size=(4, 2, 3, 3)).astype(np.float32)  # dlib (out, in, kh, kw)
    biases, gamma, beta = (rng.normal(size=4).astype(np.float32) for _ in range(3))
    x = rng.normal(size=(1, 5, 5, 2)).astype(np.float32)
    kernel, bias = enc.fold_affine(filters, biases, gamma, beta)
    conv = keras.layers.Conv2D(4, 3)
    conv.build(x.shape)
    conv.set_weights([filters.transpose(2, 3, 1, 0), biases])
    expected = keras.ops.convert_to_numpy(conv(x)) * gamma + beta
    conv.set_weights([kernel, bias])
    np.testing.assert_allclose(keras.ops.convert_to_numpy(conv(x)), expected, atol=1e-5)
    # cross-correlation, no flip: output (0, 0) of channel 0 is a plain dot product
    direct = (x[0, :3, :3, :] * filters[0].transpose(1, 2, 0)).sum() + biases[0]
    np.testing.assert_allclose(expected[0, 0, 0, 0], direct * gamma[0] + beta[0], rtol=1e-5)


def test_model_has_no_lambda_and_survives_save_load(encoder, reference, tmp_path):
    assert not any(isinstance(layer, keras.layers.Lambda) for layer in encoder.layers)
    assert not encoder.trainable
    path = tmp_path / "m.keras"
    encoder.save(path)
    reloaded = keras.models.load_model(path)
    chips = reference["chips"][:4].astype(np.float32)
    np.testing.assert_array_equal(reloaded.predict_on_batch(chips),
                                  encoder.predict_on_batch(chips))


# ---------------------------------------------------------------------------------------
# Agreement with dlib.
# ---------------------------------------------------------------------------------------


def test_descriptors_match_dlib(encoder, reference):
    ours = enc.encode_chips(reference["chips"], encoder)
    assert ours.shape == (13, 128) and ours.dtype == np.float32
    diff = np.abs(ours - reference["descriptors"]).max()
    print(f"max |port - dlib| over 13 chips x 128 components: {diff:.3g}")
    assert diff < 1e-3


def test_distances_and_decisions_match_dlib(encoder, reference):
    ours = enc.encode_chips(reference["chips"], encoder)
    theirs = reference["descriptors"]
    person = [str(n).split("__")[0] for n in reference["names"]]
    real = [i for i, n in enumerate(reference["names"]) if not str(n).startswith("synthetic")]
    for i, j in combinations(range(len(person)), 2):
        d_ours = np.linalg.norm(ours[i] - ours[j])
        d_dlib = np.linalg.norm(theirs[i] - theirs[j])
        assert abs(d_ours - d_dlib) < 1e-3
        assert (d_ours < DISTANCE_THRESHOLD) == (d_dlib < DISTANCE_THRESHOLD), (i, j)
        if i in real and j in real:
            assert (d_ours < DISTANCE_THRESHOLD) == (person[i] == person[j]), (i, j)


def test_encode_chips_inputs(encoder, reference):
    chips = reference["chips"][:5]
    full = enc.encode_chips(chips, encoder)
    one = enc.encode_chips(chips[2], encoder)
    assert one.shape == (1, 128)
    np.testing.assert_allclose(one[0], full[2], atol=1e-5)
    np.testing.assert_allclose(enc.encode_chips(chips.astype(np.float64), encoder, 2), full,
                               atol=1e-5)
    assert enc.encode_chips(chips[:0], encoder).shape == (0, 128)
    with pytest.raises(ValueError, match=r"\(N, 150, 150, 3\).*\(5, 160, 160, 3\)"):
        enc.encode_chips(np.zeros((5, 160, 160, 3), np.uint8), encoder)
    with pytest.raises(ValueError, match="shape"):
        enc.encode_chips(np.zeros((150, 150), np.uint8), encoder)


# ---------------------------------------------------------------------------------------
# Cache and installation.
# ---------------------------------------------------------------------------------------


def test_wrong_cache_is_rebuilt(empty_cache, monkeypatch):
    cache = empty_cache / enc.CACHE_FILE
    np.savez(cache, **{"stem_conv/kernel": np.zeros((7, 7, 3, 32), np.float32)})
    arrays = enc.face_resnet_arrays()
    assert arrays_digest(arrays) == enc.FACE_RESNET_ARRAYS_SHA256
    assert len(arrays) == 2 * 29 + 1 and arrays["embedding/kernel"].shape == (256, 128)
    # rewritten with the right content, and now trusted without the source file
    def gone(self):
        raise WeightsNotFoundError(f"{self.name} is gone")

    monkeypatch.setattr(registry.PackageFile, "locate", gone)
    assert arrays_digest(enc.face_resnet_arrays()) == enc.FACE_RESNET_ARRAYS_SHA256
    cache.write_bytes(b"not a zip file")
    with pytest.raises(WeightsNotFoundError):  # unreadable: not trusted, rebuild attempted
        enc.face_resnet_arrays()


def test_missing_package_says_which_command_fetches_it(tmp_path, monkeypatch):
    monkeypatch.setenv("NBUTILS_CACHE_DIR", str(tmp_path))  # nothing fetched there
    monkeypatch.setattr(registry.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(WeightsNotFoundError,
                       match=r"(?s)face_recognition_models==0\.3\.0.*python -m nbutils\.prepare"):
        enc.face_resnet_arrays()
    assert not (tmp_path / enc.CACHE_FILE).exists()


def test_installed_package_is_preferred_and_checked(tmp_path, monkeypatch, dat_file):
    package = tmp_path / "fake_face_models"
    (package / "models").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("NBUTILS_CACHE_DIR", str(tmp_path / "empty"))
    fake = dataclasses.replace(FACE_RESNET, path=f"fake_face_models/models/{FACE_RESNET.name}")
    with pytest.raises(WeightsNotFoundError, match=r"(?s)has not been fetched.*nbutils\.prepare"):
        fake.locate()  # installed, but without the file, and nothing in the cache
    shutil.copy(dat_file, package / "models" / FACE_RESNET.name)
    assert fake.verified() == package / "models" / FACE_RESNET.name
    with open(package / "models" / FACE_RESNET.name, "r+b") as f:
        f.seek(1000)
        f.write(b"\xff")
    with pytest.raises(ChecksumError, match=r"(?s)face_recognition_models==0\.3\.0.*"
                                            r"pip install --force-reinstall --no-deps"):
        fake.verified()
