"""Hostile and broken inputs: a corrupt converted-weights cache is rebuilt with a one-line
notice; a hostile weight file gets a `WeightsError` naming it, before any out-of-bounds read
or allocation from a size it declares; a fuzz run over the real weight files finds nothing
else. Every broken input is made here, at run time, from valid ones."""

import collections
import io
import json
import os
import pickle
import struct
import subprocess
import sys
import tracemalloc
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import lz4.frame
import numpy as np
import pytest
from test_weights import Storage, Tensor, fake_torch, write_legacy  # noqa: F401  (fixture)

from nbutils import vgg19
from nbutils._internal import npz
from nbutils._internal import weights as w
from nbutils._internal.cache import CACHE_ENV
from nbutils._internal.weights import integrity, joblib_file, torch_file
from nbutils._internal.weights.registry import MTCNN_WEIGHTS
from nbutils._internal.weights.restricted import MAX_PICKLE_BYTES

TESTS = Path(__file__).parent

# ---------------------------------------------------------------------------------------
# The caches: built at run time in a fresh cache folder, then broken in every way
# ---------------------------------------------------------------------------------------


@dataclass
class CacheCase:
    filename: str
    digest: str
    max_bytes: int
    convert: Callable[[], dict[str, np.ndarray]]
    good: dict[str, np.ndarray]  # converted afresh, before any test broke anything
    data: bytes  # the valid cache file those arrays were written to


def _cache_specs(name: str) -> tuple[str, str, int, Callable[[], dict[str, np.ndarray]]]:
    if name == "vgg19":
        return (vgg19.CACHE_FILE, vgg19.CACHE_ARRAYS_SHA256, vgg19.CACHE_MAX_BYTES,
                vgg19.quantized_vgg19_arrays)
    from nbutils.faces import encoder

    return (encoder.CACHE_FILE, encoder.FACE_RESNET_ARRAYS_SHA256, encoder.CACHE_MAX_BYTES,
            encoder.face_resnet_arrays)


@pytest.fixture(scope="module", params=["vgg19", "face_encoder"])
def cache_case(request, tmp_path_factory) -> CacheCase:
    filename, digest, max_bytes, convert = _cache_specs(request.param)
    folder = tmp_path_factory.mktemp(f"{request.param}_cache")
    fetched = integrity.cache_dir() / "packages"
    if fetched.is_dir():
        (folder / "packages").symlink_to(fetched, target_is_directory=True)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(CACHE_ENV, str(folder))
        good = convert()
    assert integrity.arrays_digest(good) == digest  # the published content, converted here
    return CacheCase(filename, digest, max_bytes, convert, good,
                     (folder / filename).read_bytes())


def members(data: bytes) -> list[tuple[str, bytes]]:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return [(info.filename, z.read(info)) for info in z.infolist()]


def pack(items: list[tuple[str, bytes]], deflated: frozenset[str] = frozenset()) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, raw in items:
            z.writestr(zipfile.ZipInfo(name), raw, compress_type=(
                zipfile.ZIP_DEFLATED if name in deflated else zipfile.ZIP_STORED))
    return buf.getvalue()


def npy(header: dict, body: bytes) -> bytes:
    """An .npy file with the given header dict (descr, fortran_order, shape) and body."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, header)
    return buf.getvalue() + body


def central_entries(data: bytes) -> list[int]:
    """Offsets of the zip's central directory entries (from the end-of-directory record)."""
    eocd = data.rfind(b"PK\x05\x06")
    count, _size, offset = struct.unpack_from("<HII", data, eocd + 10)
    out = []
    for _ in range(count):
        out.append(offset)
        n, m, k = struct.unpack_from("<HHH", data, offset + 28)
        offset += 46 + n + m + k
    return out


def flip(data: bytes, at: int, bit: int = 0x10) -> bytes:
    b = bytearray(data)
    b[at] ^= bit
    return bytes(b)


def put_u32(data: bytes, at: int, value: int) -> bytes:
    return data[:at] + struct.pack("<I", value) + data[at + 4:]


def bias_member(items: list[tuple[str, bytes]]) -> int:
    return next(i for i, (name, _) in enumerate(items) if name.endswith("bias.npy"))


def edit_header(data: bytes, change: Callable[[dict], dict]) -> bytes:
    """The cache with one bias's .npy header changed (a valid zip, valid CRCs)."""
    items = members(data)
    i = bias_member(items)
    name, raw = items[i]
    f = io.BytesIO(raw)
    np.lib.format.read_magic(f)
    shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
    header = change({"descr": np.lib.format.dtype_to_descr(dtype),
                     "fortran_order": fortran, "shape": shape})
    items[i] = (name, npy(header, raw[f.tell():]))
    return pack(items)


def flip_in_deflated_member(data: bytes) -> bytes:
    items = members(data)
    first = items[0][0]
    packed = pack(items, deflated=frozenset({first}))
    offset = struct.unpack_from("<I", packed, central_entries(packed)[0] + 42)[0]
    n, m = struct.unpack_from("<HH", packed, offset + 26)
    start = offset + 30 + n + m
    size = struct.unpack_from("<I", packed, central_entries(packed)[0] + 20)[0]
    return flip(packed, start + size // 2)


def zip_bomb(data: bytes, max_bytes: int) -> bytes:
    """The cache plus a deflated member of zeros (a valid .npy) that inflates past the
    cache's bound: ~100 KB on disk."""
    n = max_bytes + (1 << 20)
    buf = io.BytesIO(data)
    info = zipfile.ZipInfo("bomb.npy")
    info.compress_type = zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(buf, "a") as z, z.open(info, "w") as f:
        f.write(npy({"descr": "|u1", "fortran_order": False, "shape": (n,)}, b""))
        zeros = bytes(1 << 20)
        for _ in range(n >> 20):
            f.write(zeros)
    return buf.getvalue()


def _without(data: bytes, which: Callable[[list], int]) -> bytes:
    items = members(data)
    del items[which(items)]
    return pack(items)


def _renamed(data: bytes) -> bytes:
    items = members(data)
    name, raw = items[0]
    items[0] = (name.replace("/", "_old/", 1), raw)
    return pack(items)


CORRUPTIONS: dict[str, Callable[[bytes, int], bytes]] = {
    "bit flipped in a stored member": lambda d, _: flip(d, len(d) // 2),
    "bit flipped in a deflated member": lambda d, _: flip_in_deflated_member(d),
    "central directory entry damaged": lambda d, _: flip(d, central_entries(d)[0], 0x01),
    "directory points inside a member": lambda d, _: put_u32(
        d, central_entries(d)[0] + 42, 1 + struct.unpack_from("<I", d, central_entries(d)[0]
                                                              + 42)[0]),
    "end-of-directory record gone": lambda d, _: d[:d.rfind(b"PK\x05\x06")],
    "truncated to half": lambda d, _: d[:len(d) // 2],
    "npy header: shape larger than its data": lambda d, _: edit_header(
        d, lambda h: {**h, "shape": (h["shape"][0] + 1,)}),
    "npy header: shape claiming a terabyte": lambda d, _: edit_header(
        d, lambda h: {**h, "shape": (1 << 20, 1 << 20)}),
    "npy header: negative dimension": lambda d, _: edit_header(
        d, lambda h: {**h, "shape": (-h["shape"][0],)}),
    "npy header: another dtype on the same bytes": lambda d, _: edit_header(
        d, lambda h: {**h, "descr": "<f8", "shape": (h["shape"][0] // 2,)}),
    "npy header: object dtype": lambda d, _: edit_header(d, lambda h: {**h, "descr": "|O"}),
    "member renamed": lambda d, _: _renamed(d),
    "member missing": lambda d, _: _without(d, bias_member),
    "extra member that is not an array": lambda d, _: pack(members(d) + [("notes.txt", b"hi")]),
    "directory claims 4 GB for a member": lambda d, _: put_u32(
        d, central_entries(d)[0] + 24, 0xFFFFFFF0),
    "zip bomb past the cache's bound": zip_bomb,
}


def assert_same(arrays: dict[str, np.ndarray], expected: dict[str, np.ndarray]) -> None:
    assert sorted(arrays) == sorted(expected)
    for name, a in expected.items():
        assert arrays[name].dtype == a.dtype and arrays[name].shape == a.shape, name
        np.testing.assert_array_equal(arrays[name], a, err_msg=name)


def notices(out: str, path: Path) -> list[str]:
    return [line for line in out.splitlines() if str(path) in line]


@pytest.mark.parametrize("kind", CORRUPTIONS)
def test_a_corrupt_cache_is_rebuilt_with_a_notice(kind, cache_case, empty_cache, capsys):
    path = empty_cache / cache_case.filename
    path.write_bytes(CORRUPTIONS[kind](cache_case.data, cache_case.max_bytes))
    capsys.readouterr()
    rebuilt = cache_case.convert()
    said = notices(capsys.readouterr().out, path)
    assert len(said) == 1 and "rebuilding it" in said[0], said
    assert_same(rebuilt, cache_case.good)
    # The rebuilt file replaced the corrupt one: read back as is, silently.
    assert_same(cache_case.convert(), cache_case.good)
    assert notices(capsys.readouterr().out, path) == []


def test_a_valid_cache_is_read_as_is_even_deflated(cache_case, empty_cache, capsys):
    path = empty_cache / cache_case.filename
    items = members(cache_case.data)
    written = pack(items, deflated=frozenset(name for name, _ in items[:3]))  # savez_compressed
    path.write_bytes(written)
    assert_same(cache_case.convert(), cache_case.good)
    assert notices(capsys.readouterr().out, path) == []
    assert path.read_bytes() == written  # not converted again, not rewritten


@pytest.mark.parametrize("kind", ["directory claims 4 GB for a member",
                                  "zip bomb past the cache's bound",
                                  "npy header: shape claiming a terabyte"])
def test_cache_sizes_are_bounded_before_inflating(kind, cache_case, tmp_path, capsys):
    path = tmp_path / cache_case.filename
    path.write_bytes(CORRUPTIONS[kind](cache_case.data, cache_case.max_bytes))
    tracemalloc.start()
    try:
        assert integrity.read_cache(path, cache_case.digest, cache_case.max_bytes) is None
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20  # nothing inflated, nothing allocated from a declared size
    assert "rebuilding it" in capsys.readouterr().out


def test_a_cache_larger_than_its_bounds_is_not_opened(tmp_path, capsys, monkeypatch):
    arrays = {"a": np.arange(1000, dtype=np.float32), "b": np.ones((2, 3), np.int64)}
    path = tmp_path / "c.npz"
    integrity.write_cache(arrays, path)
    digest = integrity.arrays_digest(arrays)
    assert_same(integrity.read_cache(path, digest, max_bytes=8 << 10), arrays)
    assert capsys.readouterr().out == ""
    assert integrity.read_cache(path, digest, max_bytes=1000) is None
    assert f"{path} is corrupt ({path.stat().st_size} bytes, more than the 1000" \
        in capsys.readouterr().out
    # zipfile builds objects for every directory entry on opening: that size is bounded too
    monkeypatch.setattr(npz, "MAX_DIRECTORY_BYTES", 100)
    monkeypatch.setattr(zipfile, "ZipFile", None)  # never reached
    assert integrity.read_cache(path, digest) is None
    assert "its zip directory claims" in capsys.readouterr().out


# ---------------------------------------------------------------------------------------
# The legacy torch reader, without a digest: a user's own file is not trusted
# ---------------------------------------------------------------------------------------

FLOATS = np.arange(24, dtype=np.float32)

HOSTILE_TENSORS = {
    # (offset, size, stride): each would read outside the storage or blow up memory
    "negative stride (reads before the storage)": (0, (8,), (-1,)),
    "zero strides asking for terabytes": (0, (1 << 20, 1 << 20), (0, 0)),
    "negative dimension": (0, (-3,), (1,)),
    "negative offset": (-4, (4,), (1,)),
    "offset past the end": (30, (1,), (1,)),
    "shape past the end": (0, (5, 6), (6, 1)),
    "stride past the end": (0, (4,), (8,)),  # reaches element 24 of 0..23
    "size and stride of different lengths": (0, (4, 6), (1,)),
    "a float dimension": (0, (4.0,), (1,)),
    "more dimensions than NumPy has": (0, (1,) * 65, (1,) * 65),
    "a dimension too long to print": (0, (2**20000,), (1,)),  # str() of it raises
}


@pytest.mark.usefixtures("fake_torch")
@pytest.mark.parametrize("case", HOSTILE_TENSORS)
def test_tensor_views_are_checked_against_their_storage(case, tmp_path):
    offset, size, stride = HOSTILE_TENSORS[case]
    floats = Storage("1", FLOATS)
    path = tmp_path / "t.bin"
    write_legacy(path, {"ok": Tensor(floats, 0, (24,), (1,)),
                        "bad_tensor": Tensor(floats, offset, size, stride)}, [floats])
    with pytest.raises(w.WeightsError) as err:
        w.read_legacy_torch_file(path, sha256=None)
    assert str(path) in str(err.value) and "'bad_tensor'" in str(err.value)


@pytest.mark.usefixtures("fake_torch")
def test_views_inside_the_storage_are_read(tmp_path):
    floats = Storage("1", FLOATS)
    path = tmp_path / "t.bin"
    write_legacy(path, {"w": Tensor(floats, 0, (4, 6), (6, 1)),
                        "tied": Tensor(floats, 0, (4, 6), (6, 1)),  # the same storage twice
                        "repeat": Tensor(floats, 23, (3, 2), (0, 0)),  # 6 <= 24 elements
                        "empty": Tensor(floats, 24, (0, 5), (5, 1))}, [floats])
    out = w.read_legacy_torch_file(path, sha256=None)
    np.testing.assert_array_equal(out["tied"], FLOATS.reshape(4, 6))
    np.testing.assert_array_equal(out["repeat"], np.full((3, 2), 23.0))
    assert out["empty"].shape == (0, 5)


@pytest.mark.usefixtures("fake_torch")
def test_many_views_of_one_storage_cannot_multiply_memory(tmp_path):
    floats = Storage("1", FLOATS)
    path = tmp_path / "t.bin"
    views = {f"v{i}": Tensor(floats, 0, (24,), (1,))
             for i in range(torch_file.MAX_OUTPUT_FACTOR + 1)}
    write_legacy(path, views, [floats])
    with pytest.raises(w.WeightsError, match="times the 96 bytes"):
        w.read_legacy_torch_file(path, sha256=None)


def _with_count(path: Path, count: int) -> None:
    """Overwrite the int64 element count in front of the file's last storage."""
    data = bytearray(path.read_bytes())
    data[-FLOATS.nbytes - 8:-FLOATS.nbytes] = struct.pack("<q", count)
    path.write_bytes(bytes(data))


@pytest.mark.usefixtures("fake_torch")
@pytest.mark.parametrize("claimed, count", [(10**15, 24), (24, 2**62), (24, -1), (24, 25),
                                            (-24, 24), (25, 25)])
def test_storage_counts_are_checked_before_reading(claimed, count, tmp_path):
    floats = Storage("1", FLOATS, numel=claimed)
    path = tmp_path / "t.bin"
    write_legacy(path, {"x": Tensor(floats, 0, (24,), (1,))}, [floats])
    _with_count(path, count)
    with pytest.raises(w.WeightsError, match="storage '1'") as err:
        w.read_legacy_torch_file(path, sha256=None)
    assert str(path) in str(err.value)


@pytest.mark.usefixtures("fake_torch")
def test_a_storage_missing_from_the_key_list_is_refused(tmp_path):
    a, b = Storage("1", FLOATS), Storage("2", FLOATS)
    path = tmp_path / "t.bin"
    write_legacy(path, {"x": Tensor(a, 0, (24,), (1,)), "y": Tensor(b, 0, (24,), (1,))}, [a])
    with pytest.raises(w.WeightsError, match="storage list"):
        w.read_legacy_torch_file(path, sha256=None)


def legacy_file(path: Path, main: bytes) -> Path:
    """A legacy torch file whose main pickle is given as raw opcodes, no storages."""
    headers = b"".join(pickle.dumps(x, protocol=2) for x in (
        torch_file.TORCH_MAGIC, torch_file.TORCH_PROTOCOL, {"little_endian": True}))
    path.write_bytes(headers + main + pickle.dumps([], protocol=2))
    return path


def body(obj) -> bytes:
    """Protocol-2 opcodes that push ``obj`` (no PROTO, no STOP)."""
    return pickle.dumps(obj, protocol=2)[2:-1]


def global_(module: str, name: str) -> bytes:
    return b"c" + f"{module}\n{name}\n".encode()


def test_build_cannot_change_the_reader_s_own_objects(tmp_path):
    defaults = torch_file._rebuild_tensor_v2.__defaults__
    # BUILD on the allowed function: sets its __defaults__ with the generic unpickler
    main = (global_("torch._utils", "_rebuild_tensor_v2")
            + body((None, {"__defaults__": (1, 2, 3)})) + b"b.")
    with pytest.raises(w.UnsafePickleError, match="sets the state of a function") as err:
        w.read_legacy_torch_file(legacy_file(tmp_path / "t.bin", main), sha256=None)
    assert str(tmp_path / "t.bin") in str(err.value)
    assert torch_file._rebuild_tensor_v2.__defaults__ == defaults


def test_bytearray8_declaring_a_terabyte_is_refused(tmp_path):
    main = b"\x80\x05\x96" + struct.pack("<Q", 1 << 40) + b"."
    with pytest.raises(w.WeightsError, match="BYTEARRAY8"):
        w.read_legacy_torch_file(legacy_file(tmp_path / "t.bin", main), sha256=None)


@pytest.mark.usefixtures("fake_torch")
def test_pickles_longer_than_the_bound_are_refused(tmp_path):
    floats = Storage("1", FLOATS)
    path = tmp_path / "t.bin"
    write_legacy(path, {"x": Tensor(floats, 0, (24,), (1,))}, [floats],
                 extra_main="x" * (MAX_PICKLE_BYTES + 1))
    with pytest.raises(w.WeightsError, match="longer than"):
        w.read_legacy_torch_file(path, sha256=None)


DEEP = 1_000_000  # a tuple nested this deep, one byte a level; hashing it overflows C's stack


def _in_child(reader: str, path: Path) -> subprocess.CompletedProcess:
    code = ("import sys\nfrom nbutils._internal.weights import WeightsError, " + reader + "\n"
            "try:\n    " + reader + "(sys.argv[1], None)\n"
            "except WeightsError as e:\n    print('WeightsError:', str(e)[:300])\n")
    return subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                          text=True, timeout=120, cwd=TESTS.parent)


def test_a_deeply_nested_key_is_refused_not_a_crash(tmp_path):
    nested = b")" + b"\x85" * DEEP  # EMPTY_TUPLE, then TUPLE1 a million times
    main = b"}" + nested + b"K\x01s."  # {nested: 1}
    torch_path = legacy_file(tmp_path / "t.bin", main)
    joblib_path = tmp_path / "a.pkl"
    joblib_path.write_bytes(b"\x80\x02" + main)
    for reader, path in [("read_legacy_torch_file", torch_path),
                         ("read_joblib_arrays", joblib_path)]:
        run = _in_child(reader, path)
        assert run.returncode == 0, f"{reader}: exit {run.returncode} {run.stderr[-500:]}"
        assert "WeightsError" in run.stdout and "dictionary keys" in run.stdout, run.stdout


# ---------------------------------------------------------------------------------------
# The joblib reader: hand-assembled pickles, the layout joblib writes
# ---------------------------------------------------------------------------------------

PLAIN_DTYPE_STATE = (3, "<", None, None, None, -1, -1, 0)


def dtype_ops(spec: str = "f4", state: tuple = PLAIN_DTYPE_STATE, copy: bool = True) -> bytes:
    return global_("numpy", "dtype") + body((spec, False, copy)) + b"R" + body(state) + b"b"


def record(shape, dtype: bytes | None = None, order: str = "C",
           subclass: bytes | None = None) -> bytes:
    """A NumpyArrayWrapper record (NEWOBJ, state dict, BUILD) as joblib writes it, minus
    the alignment padding; the array's bytes follow it."""
    fields = (body("subclass") + (subclass or global_("numpy", "ndarray"))
              + body("shape") + body(shape) + body("order") + body(order)
              + body("dtype") + (dtype or dtype_ops()))
    return (global_("joblib.numpy_pickle", "NumpyArrayWrapper") + b")\x81"
            + b"}(" + fields + b"u" + b"b")


def joblib_file_(path: Path, ops: bytes) -> Path:
    path.write_bytes(b"\x80\x02" + ops + b".")
    return path


def test_hand_assembled_record_reads(tmp_path):
    """The assembler below matches the reader: a valid record gives its array."""
    data = np.arange(6, dtype="<f4")
    path = joblib_file_(tmp_path / "a.pkl", b"]" + record((2, 3)) + data.tobytes() + b"a")
    (out,) = w.read_joblib_arrays(path, sha256=None)
    np.testing.assert_array_equal(out, data.reshape(2, 3))


def test_big_endian_records_never_touch_numpy_s_own_dtypes(tmp_path):
    big = dtype_ops("f4", (3, ">", None, None, None, -1, -1, 0), copy=False)  # the shared one
    data = np.arange(3, dtype=">f4")
    path = joblib_file_(tmp_path / "a.pkl", record((3,), dtype=big) + data.tobytes())
    out = w.read_joblib_arrays(path, sha256=None)
    assert out.dtype.str == ">f4" and np.dtype("f4").str == "<f4"
    np.testing.assert_array_equal(out, [0.0, 1.0, 2.0])


HOSTILE_JOBLIB = {
    "a record claiming a terabyte": (record((1 << 20, 1 << 20)), "needs"),
    "a record with a negative dimension": (record((-2, 3)), "integers in 0"),
    "a dimension too long to print": (record((2**20000,)), "20001-bit integer"),
    "numpy.ndarray called with a terabyte shape": (
        global_("numpy", "ndarray") + body(((1 << 40,),)) + b"R", "not callable"),
    "BUILD on a list": (body([1, 2]) + body({"a": 1}) + b"b", "state of a list"),
    "BUILD on the record class itself": (
        global_("joblib.numpy_pickle", "NumpyArrayWrapper") + body((None, {"x": 1})) + b"b",
        "state of a type"),
    "a dtype state with fields": (
        record((2,), dtype=dtype_ops("f4", (3, "<", None, ("a",), {"a": (np.dtype("u1"), 0)},
                                            1, 1, 16))), "dtype state"),
    "an object dtype": (record((2,), dtype=dtype_ops("O", (3, "|", None, None, None, -1, -1,
                                                           63))), "plain numeric"),
    "a void dtype of a gigabyte": (record((2,), dtype=dtype_ops("V1000000000")), "plain numeric"),
    "an unknown order": (record((2,), order="K"), "plain numeric"),
    "a record with another subclass marker": (record((2,), subclass=body("ndarray")),
                                              "plain numeric"),
    "a record never built, returned": (
        b"]" + global_("joblib.numpy_pickle", "NumpyArrayWrapper") + b")\x81a",
        "holds a _JoblibArrayRecord"),
    "the ndarray marker, returned": (global_("numpy", "ndarray"), "holds a _NdarrayMarker"),
}


@pytest.mark.parametrize("case", HOSTILE_JOBLIB)
def test_hostile_joblib_records_are_refused(case, tmp_path):
    ops, message = HOSTILE_JOBLIB[case]
    path = joblib_file_(tmp_path / "a.pkl", ops)
    tracemalloc.start()
    try:
        with pytest.raises(w.WeightsError, match=message) as err:
            w.read_joblib_arrays(path, sha256=None)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert str(path) in str(err.value)
    assert peak < 4 << 20
    assert not hasattr(joblib_file._JoblibArrayRecord, "x")  # never mutated


def test_lz4_garbage_truncation_and_bombs_are_refused(tmp_path):
    garbage = tmp_path / "garbage.lz4"
    garbage.write_bytes(joblib_file.LZ4_FRAME_MAGIC + bytes(range(256)) * 4)
    real = MTCNN_WEIGHTS["pnet"].locate().read_bytes()
    truncated = tmp_path / "truncated.lz4"
    truncated.write_bytes(real[:len(real) // 2])
    trailing = tmp_path / "trailing.lz4"
    trailing.write_bytes(real + b"\0")
    for path, message in [(garbage, "corrupt LZ4"), (truncated, "truncated"),
                          (trailing, "after the LZ4 frame")]:
        with pytest.raises(w.WeightsError, match=message) as err:
            w.read_joblib_arrays(path, sha256=None)
        assert str(path) in str(err.value)
    bomb = tmp_path / "bomb.lz4"
    bomb.write_bytes(lz4.frame.compress(bytes(16 << 20), store_size=True))
    tracemalloc.start()
    try:
        with pytest.raises(w.WeightsError, match="more than 2097152 bytes"):
            w.read_joblib_arrays(bomb, sha256=None, max_bytes=2 << 20)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 6 << 20  # chunks of 1 MiB up to the bound, never the declared 16 MiB


# ---------------------------------------------------------------------------------------
# Fuzzing the real weight files (in a child process: a crash is a failure, not a dead run)
# ---------------------------------------------------------------------------------------

FUZZ_SEED = 13
FUZZ_TORCH, FUZZ_JOBLIB = 800, 4000  # ~30 s on two slow cores


def test_fuzzed_real_weight_files_get_weights_errors_only(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(TESTS.parent)}
    run = subprocess.run(
        [sys.executable, str(TESTS / "fuzz_weight_readers.py"), "--seed", str(FUZZ_SEED),
         "--workdir", str(tmp_path), "--torch", str(FUZZ_TORCH), "--joblib", str(FUZZ_JOBLIB),
         "--memory-mib", "512"],
        capture_output=True, text=True, timeout=600, env=env)
    assert run.returncode in (0, 1), f"the fuzzer died (exit {run.returncode}): " \
                                     f"{run.stderr[-2000:]}"
    report = json.loads(run.stdout.splitlines()[-1])
    print(f"fuzz: {report['mutations']} mutations in {report['seconds']} s, "
          f"outcomes {report['outcomes']}")
    assert report["failure_count"] == 0, json.dumps(report["failures"], indent=1)
    assert report["mutations"] == FUZZ_TORCH + FUZZ_JOBLIB
    outcomes = collections.Counter()
    for key, n in report["outcomes"].items():
        outcomes[key.split(":")[0].split(".")[-1], key.endswith(": read")] += n
    for kind in ("torch", "lz4", "pkl"):  # each form was both refused and (harmlessly) read
        assert outcomes[kind, False] > 50 and outcomes[kind, True] > 10, outcomes
