"""`nbutils._internal.npz.read_npz` on its own: good files round trip; a zip bomb, a lying header, a
truncated member, pickled objects and oversized directories are refused, naming the array."""

from __future__ import annotations

import io
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
from test_hostile_inputs import _deflated, _deflated_npy_of_zeros, _npy_header, _write_raw_zip

from nbutils._internal import npz
from nbutils._internal.npz import NpzError, NpzTooLarge, read_npz

GOOD = {
    "scalar": np.array(7, np.int64),
    "names": np.array(["ann", "bob"]),
    "big_endian": np.arange(6, dtype=">f4").reshape(2, 3),
    "fortran": np.asfortranarray(np.arange(12, dtype=np.float32).reshape(3, 4)),
    "empty": np.zeros((0, 3), np.float32),
    "flags": np.array([True, False]),
    "complex": np.array([1 + 2j], np.complex64),
}


@pytest.mark.parametrize("save", [np.savez, np.savez_compressed])
def test_a_good_file_round_trips_writable_and_in_c_order(tmp_path, save):
    save(tmp_path / "good.npz", **GOOD)
    arrays = read_npz(tmp_path / "good.npz", 1 << 20, kinds="biufcU")
    assert list(arrays) == list(GOOD)
    for name, expected in GOOD.items():
        got = arrays[name]
        assert got.dtype == expected.dtype and got.shape == expected.shape, name
        np.testing.assert_array_equal(got, expected)
        assert got.flags.writeable and got.flags.c_contiguous, name


def test_only_the_allowed_dtype_kinds_are_read(tmp_path):
    np.savez(tmp_path / "names.npz", names=np.array(["ann"]))
    with pytest.raises(NpzError, match="'names': unexpected array <U3") as err:
        read_npz(tmp_path / "names.npz", 1 << 20)  # default: plain numbers only
    assert err.value.member == "names"


def test_a_zip_bomb_is_refused_before_anything_is_inflated(tmp_path):
    path = tmp_path / "bomb.npz"
    _write_raw_zip(path, [("bomb.npy", *_deflated_npy_of_zeros((1 << 28,), "<f8"))])
    assert path.stat().st_size < 4 << 20  # a few MB that inflate to 2 GiB
    tracemalloc.start()
    try:
        with pytest.raises(NpzTooLarge, match="'bomb' would inflate to 2147483776 bytes, "
                                              "more than the 1073741824 bytes allowed") as err:
            read_npz(path, 1 << 30)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20 and err.value.member == "bomb" and err.value.limit == 1 << 30


@pytest.mark.parametrize("shape, error, match", [
    ((5,), NpzError, "'a' is corrupt: its header declares 20 bytes of data but the archive "
                     "holds 12"),
    ((1 << 40,), NpzTooLarge, r"'a' declares shape \(1099511627776,\) of float32"),
    ((-3,), NpzError, "unexpected array"),
])
def test_a_header_that_lies_about_its_shape_is_refused(tmp_path, shape, error, match):
    path = tmp_path / "lying.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("a.npy", _npy_header(shape, "<f4") + bytes(12))
    with pytest.raises(error, match=match) as err:
        read_npz(path, 1 << 20)
    assert err.value.member == "a"


def test_a_truncated_member_is_refused(tmp_path):
    path = tmp_path / "cut.npz"
    stream, crc, size = _deflated(_npy_header((1000,), "<f4") + np.arange(1000, dtype="<f4")
                                  .tobytes())
    _write_raw_zip(path, [("a.npy", stream[: len(stream) // 2], crc, size)])
    with pytest.raises(NpzError, match="'a' is (unreadable|truncated)") as err:
        read_npz(path, 1 << 20)
    assert err.value.member == "a"


def test_object_arrays_are_never_unpickled(tmp_path):
    np.savez(tmp_path / "objects.npz", a=np.array([{"x": 1}], dtype=object))
    with pytest.raises(NpzError, match="'a' holds pickled Python objects"):
        read_npz(tmp_path / "objects.npz", 1 << 20, kinds="biufcUO")


def _zip64_npz(monkeypatch) -> bytes:
    """A valid .npz with ZIP64 end records (zipfile writes them past this many entries)."""
    buffer = io.BytesIO()
    with monkeypatch.context() as m:
        m.setattr(zipfile, "ZIP_FILECOUNT_LIMIT", 0)
        np.savez(buffer, a=np.arange(3.0))
    return buffer.getvalue()


def test_the_directory_is_bounded_zip64_included(tmp_path, monkeypatch):
    data = _zip64_npz(monkeypatch)
    path = tmp_path / "zip64.npz"
    path.write_bytes(data)
    np.testing.assert_array_equal(read_npz(path, 1 << 20)["a"], np.arange(3.0))
    at = data.rfind(b"PK\x06\x06") + 40  # the ZIP64 record's directory size
    path.write_bytes(data[:at] + (1 << 40).to_bytes(8, "little") + data[at + 8:])
    with pytest.raises(NpzError, match="its zip directory claims 1099511627776 bytes"):
        read_npz(path, 1 << 20)
    path.write_bytes(data)
    monkeypatch.setattr(npz, "MAX_DIRECTORY_BYTES", 10)
    with pytest.raises(NpzError, match="its zip directory claims") as err:
        read_npz(path, 1 << 20)
    assert err.value.member is None


@pytest.mark.parametrize("data, match", [
    (b"", "not a zip archive"),
    (b"PK\x03\x04" + bytes(100), "not a zip archive"),
    (b"x" * 2000, "more than the 1000 bytes allowed"),
])
def test_what_is_not_an_npz_is_refused(tmp_path, data, match):
    (tmp_path / "x.npz").write_bytes(data)
    with pytest.raises(NpzError, match=match):
        read_npz(tmp_path / "x.npz", 1000)


def test_members_must_be_uniquely_named_arrays(tmp_path):
    path = tmp_path / "notes.npz"
    np.savez(path, a=np.arange(3))
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("notes.txt", "hi")
    with pytest.raises(NpzError, match="not uniquely named .npy arrays"):
        read_npz(Path(path), 1 << 20)
