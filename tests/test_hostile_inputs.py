"""Hostile and broken inputs, each made here at run time: every one gets a specific error
that names the file or option, nothing crashes with a bare exception, nothing is lost.

Classes: face database files (a zip bomb, lying headers, corrupt and truncated archives,
unwritable targets); images (float and 32-bit integer files, sizes too large); the style
command line (every bad option, unwritable outputs), checked before any network loads.
"""

from __future__ import annotations

import argparse
import errno
import functools
import io
import os
import shutil
import struct
import time
import traceback
import tracemalloc
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nbutils import images as images_module
from nbutils._internal.atomic import AtomicWriteError
from nbutils.extras.cli import style as cli
from nbutils.extras.cli.options import float_option, int_option
from nbutils.faces import exact_index
from nbutils.faces.database import FaceDatabase
from nbutils.images import MAX_PIXELS, ImageError, load_image
from nbutils.vgg19 import VGG19_LAYER_NAMES

# --------------------------------------------------------------------------- zip bombs

CHUNK = 1 << 20  # bytes of zeros deflated once and repeated


def _npy_header(shape: tuple[int, ...], descr: str) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buffer, {"descr": descr, "fortran_order": False, "shape": shape})
    return buffer.getvalue()


def _deflated_npy_of_zeros(shape: tuple[int, ...], descr: str) -> tuple[bytes, int, int]:
    """A raw-deflate stream of an .npy of zeros, built without deflating all of it.

    Each Z_FULL_FLUSH resets the compressor, so a deflated megabyte of zeros is the same
    bytes every time and can be repeated: 2 GiB of zeros deflate to about 2 MB in
    milliseconds. Returns (stream, CRC-32 of the inflated bytes, inflated size).
    """
    header = _npy_header(shape, descr)
    nbytes = int(np.prod(shape)) * np.dtype(descr).itemsize
    full, rest = divmod(nbytes, CHUNK)
    zeros = bytes(CHUNK)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    parts = [compressor.compress(header) + compressor.flush(zlib.Z_FULL_FLUSH)]
    if full:
        parts.append((compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)) * full)
    parts.append(compressor.compress(bytes(rest)) + compressor.flush(zlib.Z_FINISH))
    crc = zlib.crc32(header)
    for _ in range(full):
        crc = zlib.crc32(zeros, crc)
    crc = zlib.crc32(bytes(rest), crc)
    return b"".join(parts), crc, len(header) + nbytes


def _deflated(raw: bytes) -> tuple[bytes, int, int]:
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    return compressor.compress(raw) + compressor.flush(), zlib.crc32(raw), len(raw)


def _write_raw_zip(path: Path, members: list[tuple[str, bytes, int, int]]) -> None:
    """A zip archive of already-deflated members: (name, stream, CRC-32, inflated size)."""
    body, directory = bytearray(), bytearray()
    for name, stream, crc, size in members:
        encoded = name.encode()
        # method, time, date (1980-01-01), CRC, sizes, name length, extra length
        common = (zipfile.ZIP_DEFLATED, 0, 0x21, crc, len(stream), size, len(encoded), 0)
        directory += struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, *common,
                                 0, 0, 0, 0, len(body)) + encoded
        body += struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, *common) + encoded + stream
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, len(members), len(members),
                      len(directory), len(body), 0)
    path.write_bytes(bytes(body + directory + end))


def zero_database_npz(path: Path, rows: int) -> Path:
    """A face database file of ``rows`` zero descriptors for one person, "a"; the big arrays
    deflated by repetition, so ``rows`` can make it inflate to gigabytes."""
    members = [
        ("format_version.npy", *_deflated(_npy_header((), "<i8") + np.int64(1).tobytes())),
        ("dim.npy", *_deflated(_npy_header((), "<i8") + np.int64(128).tobytes())),
        ("names.npy", *_deflated(_npy_header((1,), "<U1") + "a".encode("utf-32-le"))),
        ("descriptors.npy", *_deflated_npy_of_zeros((rows, 128), "<f4")),
        ("labels.npy", *_deflated_npy_of_zeros((rows,), "<i4")),
    ]
    _write_raw_zip(path, members)
    return path


@pytest.fixture(scope="module")
def zip_bomb(tmp_path_factory) -> Path:
    # 2 GiB of descriptors (4 Mi rows x 128 float32) and 16 MiB of labels
    return zero_database_npz(tmp_path_factory.mktemp("bomb") / "people.npz", rows=1 << 22)


def test_the_bomb_builder_makes_real_face_databases(tmp_path):
    path = zero_database_npz(tmp_path / "small.npz", rows=3000)
    with np.load(path) as plain:  # NumPy reads it as it is: CRCs, sizes and headers agree
        assert plain["descriptors"].shape == (3000, 128) and not plain["descriptors"].any()
    db = FaceDatabase.load(path)
    assert db.names == ["a"] and db.num_descriptors == 3000


def test_zip_bomb_is_refused_before_anything_is_inflated(zip_bomb):
    on_disk = zip_bomb.stat().st_size
    with zipfile.ZipFile(zip_bomb) as archive:
        inside = sum(info.file_size for info in archive.infolist())
    assert on_disk < 4 << 20 and inside > 2 << 30  # a few MB that claim gigabytes
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(ValueError) as err:
            FaceDatabase.load(zip_bomb)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - start < 5
    assert peak < 32 << 20  # NumPy's allocations are traced too: nothing big was made
    message = str(err.value)
    assert str(zip_bomb) in message and "too large" in message and "max_bytes" in message
    assert "'descriptors'" in message


def test_the_load_limit_is_the_documented_one(tmp_path, monkeypatch):
    path = zero_database_npz(tmp_path / "medium.npz", rows=2000)  # ~1 MB of descriptors
    with pytest.raises(ValueError, match="medium.npz is too large.*max_bytes = 1,000,000"):
        FaceDatabase.load(path, max_bytes=1_000_000)
    monkeypatch.setattr(exact_index, "MAX_LOAD_BYTES", 500_000)
    with pytest.raises(ValueError, match="max_bytes = 500,000"):
        FaceDatabase.load(path)
    assert FaceDatabase.load(path, max_bytes=2_000_000).num_descriptors == 2000
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="max_bytes must be a positive int"):
            FaceDatabase.load(path, max_bytes=bad)


def _saved_database(tmp_path: Path) -> tuple[FaceDatabase, Path]:
    db = FaceDatabase(dim=4)
    db.add("ann", np.full((2, 4), 0.125, np.float32))
    db.add("bob", np.full(4, 7.0, np.float32))
    return db, db.save(tmp_path / "people.npz")


def _rewrite_member(path: Path, name: str, data: bytes) -> None:
    with zipfile.ZipFile(path) as archive:
        members = {info.filename: archive.read(info) for info in archive.infolist()}
    members[name] = data
    with zipfile.ZipFile(path, "w") as archive:
        for member, content in members.items():
            archive.writestr(member, content)


@pytest.mark.parametrize("shape, match", [
    ((10**12, 4), r"too large.*'descriptors' declares shape \(1000000000000, 4\)"),
    ((5, 4), "corrupt: its header declares 80 bytes of data but the archive holds 48"),
    ((2, 4), "corrupt: its header declares 32 bytes of data but the archive holds 48"),
])
def test_a_header_that_lies_about_its_size_is_refused_unread(tmp_path, shape, match):
    _, path = _saved_database(tmp_path)
    data = np.full((3, 4), 0.5, np.float32).tobytes()  # 48 bytes, whatever the header says
    _rewrite_member(path, "descriptors.npy", _npy_header(shape, "<f4") + data)
    with pytest.raises(ValueError, match=match) as err:
        FaceDatabase.load(path)
    assert str(path) in str(err.value)


def test_a_damaged_member_is_a_value_error_naming_the_file(tmp_path):
    db, path = _saved_database(tmp_path)
    raw = bytearray(path.read_bytes())
    at = raw.find(np.full(4, 7.0, np.float32).tobytes())  # bob's row, stored uncompressed
    assert at > 0
    raw[at + 1] ^= 0xFF  # the sizes still agree: only the CRC can tell
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=r"people\.npz: array 'descriptors' is unreadable"):
        FaceDatabase.load(path)


def test_every_truncation_is_a_value_error_naming_the_file(tmp_path):
    _, path = _saved_database(tmp_path)
    whole = path.read_bytes()
    cut = tmp_path / "cut.npz"
    for length in sorted({4, 30, 100, *range(0, len(whole), max(1, len(whole) // 40))}):
        cut.write_bytes(whole[:length])
        with pytest.raises(ValueError, match="cut.npz"):
            FaceDatabase.load(cut)


def test_junk_behind_a_zip_signature_is_a_value_error(tmp_path):
    path = tmp_path / "junk.npz"
    path.write_bytes(b"PK\x03\x04" + np.random.default_rng(5).bytes(5000))
    with pytest.raises(ValueError, match="junk.npz is not a readable face database"):
        FaceDatabase.load(path)


# ------------------------------------------------------------------ unwritable databases


def _shown(err: BaseException) -> str:
    """Everything a traceback of ``err`` would print, chained exceptions included."""
    return "".join(traceback.format_exception(err))


def test_save_into_a_regular_file_names_the_target_and_the_file(tmp_path):
    db, _ = _saved_database(tmp_path)
    (tmp_path / "notes").write_text("not a folder")
    target = tmp_path / "notes" / "people.npz"
    with pytest.raises(AtomicWriteError) as err:
        db.save(target)
    shown = _shown(err.value)
    assert f"cannot write {target}" in str(err.value)
    assert f"{tmp_path / 'notes'} is a file, not a folder" in str(err.value)
    assert "choose a path in a folder" in str(err.value)
    assert ".tmp" not in shown and "File exists" not in shown
    assert (tmp_path / "notes").read_text() == "not a folder"


def test_save_over_a_folder_names_the_target(tmp_path):
    db, _ = _saved_database(tmp_path)
    (tmp_path / "dir.npz").mkdir()
    with pytest.raises(AtomicWriteError) as err:
        db.save(tmp_path / "dir.npz")
    assert err.value.errno == errno.EISDIR and "give a file name" in str(err.value)
    assert ".tmp" not in _shown(err.value)


def test_folder_removed_during_save_names_the_target_not_the_temporary(tmp_path, monkeypatch):
    db, _ = _saved_database(tmp_path)
    folder = tmp_path / "shared"
    folder.mkdir()
    savez = np.savez

    def savez_then_lose_the_folder(file, **arrays):
        savez(file, **arrays)
        shutil.rmtree(folder)

    monkeypatch.setattr(np, "savez", savez_then_lose_the_folder)
    with pytest.raises(AtomicWriteError) as err:
        db.save(folder / "people.npz")
    shown = _shown(err.value)
    assert f"cannot write {folder / 'people.npz'}" in str(err.value)
    assert "removed while writing" in str(err.value)
    assert ".tmp" not in shown and ".people.npz." not in shown


# --------------------------------------------------------------------------- images


def _float_tiff(path: Path, values: np.ndarray) -> Path:
    Image.fromarray(values.astype(np.float32), mode="F").save(path)
    with Image.open(path) as image:  # what the test is about: Pillow reads it as mode F
        assert image.mode == "F"
    return path


def test_a_float_tiff_in_0_255_is_refused_like_the_same_array(tmp_path):
    values = np.linspace(0, 255, 12, dtype=np.float32).reshape(3, 4)
    path = _float_tiff(tmp_path / "scan.tif", values)
    with pytest.raises(ImageError, match=r"scan\.tif.*\[0, 255\], outside \[0, 1\]"):
        load_image(path)
    with pytest.raises(ImageError, match=r"\[0, 255\], outside \[0, 1\]"):
        load_image(values)
    with Image.open(path) as image, pytest.raises(ImageError, match="outside"):
        load_image(image)


def test_a_float_tiff_in_0_1_loads_exactly_like_the_same_array(tmp_path):
    values = np.linspace(0, 1, 12, dtype=np.float32).reshape(3, 4)
    from_file = load_image(_float_tiff(tmp_path / "unit.tif", values))
    np.testing.assert_array_equal(from_file, load_image(values))
    np.testing.assert_array_equal(from_file[:, :, 0], values)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -0.5])
def test_float_tiffs_with_nan_inf_or_negatives_are_refused(tmp_path, bad):
    values = np.full((2, 2), 0.5, np.float32)
    values[1, 1] = bad
    path = _float_tiff(tmp_path / "bad.tif", values)
    for source, name in ((path, "bad.tif"), (values, "array")):
        with pytest.raises(ImageError, match=name):
            load_image(source)


def test_32_bit_integer_files_out_of_range_are_refused_not_clipped(tmp_path):
    path = tmp_path / "wide.tif"
    Image.fromarray(np.array([[0, 65535]], np.int32), mode="I").save(path)
    np.testing.assert_array_equal(load_image(path)[0, :, 0], [0.0, 1.0])
    Image.fromarray(np.array([[0, 70000, -3]], np.int32), mode="I").save(path)
    with pytest.raises(ImageError, match=r"wide\.tif.*\[-3, 70000\], outside \[0, 65535\]"):
        load_image(path)


@pytest.mark.parametrize("size", [100_000, (1, 10**9), (10**9, 10**9), 10**30])
def test_a_huge_target_size_is_refused_before_the_file_is_read(tmp_path, size):
    missing = tmp_path / "never_read.jpg"  # not an ImageNotFoundError: size is checked first
    for source in (missing, np.zeros((4, 4, 3), np.uint8)):
        with pytest.raises(ImageError, match=r"Image size .* MAX_PIXELS") as err:
            load_image(source, size=size)
        assert isinstance(err.value, ValueError) and repr(size) in str(err.value)


def test_the_target_size_limit_is_max_pixels(monkeypatch):
    image = np.zeros((4, 4, 3), np.uint8)
    monkeypatch.setattr(images_module, "MAX_PIXELS", 60)
    assert load_image(image, size=(6, 10)).shape == (6, 10, 3)  # exactly the limit
    with pytest.raises(ImageError, match="61 pixels"):
        load_image(image, size=(1, 61))
    assert MAX_PIXELS == 100_000_000


# --------------------------------------------------------------------------- style CLI


class NotToBeCalled(AssertionError):
    pass


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A folder with small content and style images; stylize_fast must never be reached."""
    rng = np.random.default_rng(3)
    for name in ("content.png", "style.png"):
        Image.fromarray(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)).save(tmp_path / name)

    @functools.wraps(cli.stylize_fast)  # the parser reads its defaults from the signature
    def stylize_fast(*args, **kwargs):
        raise NotToBeCalled("validation let a bad option through to the network")

    monkeypatch.setattr(cli, "stylize_fast", stylize_fast)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def tree(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_size for p in folder.rglob("*")}


def run_cli(argv: list[str], capsys) -> tuple[int, list[str]]:
    """main(argv)'s exit status (argparse exits, main returns) and its stderr lines."""
    try:
        code = cli.main(argv)
    except SystemExit as exit_:
        code = exit_.code
    return code, capsys.readouterr().err.splitlines()


def assert_refused(argv: list[str], option: str, folder: Path, capsys) -> str:
    before = tree(folder)
    code, err = run_cli(argv, capsys)
    errors = [line for line in err if "error:" in line]
    assert code == 2, (argv, err)
    assert len(errors) == 1, (argv, err)
    assert option in errors[0], (option, errors[0])
    assert tree(folder) == before, "a refused run wrote something"
    return errors[0]


IMAGES = ["content.png", "style.png", "-o", "out.png"]

BAD_OPTIONS = [
    (["--steps", "0"], "--steps"), (["--steps", "-5"], "--steps"),
    (["--steps", "many"], "--steps"), (["--steps", "2.5"], "--steps"),
    (["--alpha", "nan"], "--alpha"), (["--alpha", "inf"], "--alpha"),
    (["--alpha", "-1"], "--alpha"), (["--alpha", "1e300"], "--alpha"),
    (["--beta", "NaN"], "--beta"), (["--style-weights", "1e16"], "--style-weights"),
    (["--beta", "-inf"], "--beta"), (["--tv-weight", "nan"], "--tv-weight"),
    (["--tv-weight", "-0.1"], "--tv-weight"), (["--alpha", "0", "--beta", "0"], "--alpha"),
    (["--lr", "0"], "--lr"), (["--lr", "nan"], "--lr"), (["--lr", "-1e-3"], "--lr"),
    (["--style-layers", ","], "--style-layers"), (["--style-layers", " , "], "--style-layers"),
    (["--style-layers", "block1_conv1,block9_conv1"], "--style-layers"),
    (["--content-layer", "fc7"], "--content-layer"), (["--content-layer", ""], "--content-layer"),
    (["--style-scale", "nan"], "--style-scale"), (["--style-scale", "0"], "--style-scale"),
    (["--style-scale", "-1"], "--style-scale"), (["--style-scale", "inf"], "--style-scale"),
    (["--style-scale", "1e300"], "--style-scale"),
    (["--scales", "0"], "--scales"), (["--scales", "-2"], "--scales"),
    (["--size", "64", "--scales", "4"], "--scales"),
    (["--size", "400", "--scales", "10000000000000000000"], "--scales"),
    (["--steps", "2", "--scales", "3"], "--steps"),
    (["--size", "15"], "--size"), (["--size", "0"], "--size"), (["--size", "nan"], "--size"),
    (["--size", "1000000"], "--size"), (["--size", "1" + "0" * 400], "--size"),
    (["--size", "1" + "0" * 400, "--scales", "3"], "--size"),
    (["--seed", "1.5"], "--seed"), (["--seed", str(2**63)], "--seed"),
    (["--save-every", "-1"], "--save-every"),
    (["--style-weights", "nan"], "--style-weights"),
    (["--style-weights", "-1"], "--style-weights"),
    (["--style-weights", "0.5", "0.5"], "--style-weights"),
    (["--style-weights", "0"], "--style-weights"),
    (["--save-dir", "frames"], "--save-dir"),
    (["--optimizer", "sgd"], "--optimizer"),
]


@pytest.mark.parametrize("options, option", BAD_OPTIONS,
                         ids=[" ".join(o)[:40] for o, _ in BAD_OPTIONS])
def test_every_bad_option_gets_one_error_line_and_status_2(workdir, capsys, options, option):
    assert_refused(IMAGES + options, option, workdir, capsys)


def test_scales_zero_is_not_reported_as_an_interruption(workdir, capsys):
    line = assert_refused(IMAGES + ["--scales", "0"], "--scales", workdir, capsys)
    assert "interrupted" not in line and "must be an integer >= 1, got 0" in line


def test_too_many_scales_says_how_many_fit(workdir, capsys):
    line = assert_refused(IMAGES + ["--size", "400", "--scales", "6"], "--scales", workdir,
                          capsys)
    assert "use at most 5" in line  # 400, 200, 100, 50, 25: the next would be 12.5


@pytest.mark.parametrize("output", ["out.gif", "out"])
def test_an_output_that_is_not_an_image_name(workdir, capsys, output):
    assert_refused(["content.png", "style.png", "-o", output], "--output", workdir, capsys)


def test_an_output_inside_a_regular_file_is_found_before_the_run(workdir, capsys):
    (workdir / "notes.txt").write_text("a file, not a folder")
    line = assert_refused(["content.png", "style.png", "-o", "notes.txt/x.png"], "--output",
                          workdir, capsys)
    assert "notes.txt is not a folder" in line
    line = assert_refused(["content.png", "style.png", "-o", "notes.txt/deeper/x.png"],
                          "--output", workdir, capsys)
    assert "notes.txt is not a folder" in line


def test_an_output_that_is_a_folder_is_found_before_the_run(workdir, capsys):
    (workdir / "result.png").mkdir()
    line = assert_refused(["content.png", "style.png", "-o", "result.png"], "--output",
                          workdir, capsys)
    assert "is a folder" in line


def test_a_save_dir_that_is_a_regular_file_is_found_before_the_run(workdir, capsys):
    (workdir / "frames").write_text("a file")
    assert_refused(IMAGES + ["--save-every", "10", "--save-dir", "frames"], "--save-dir",
                   workdir, capsys)
    assert_refused(IMAGES + ["--save-every", "10", "--save-dir", "frames/sub"], "--save-dir",
                   workdir, capsys)
    (workdir / "out_steps").write_text("the default save dir, taken by a file")
    line = assert_refused(IMAGES + ["--save-every", "10"], "--save-dir", workdir, capsys)
    assert "out_steps" in line and "default" in line


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write in any folder")
def test_a_read_only_output_folder_is_found_before_the_run(workdir, capsys):
    locked = workdir / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        line = assert_refused(["content.png", "style.png", "-o", "locked/x.png"], "--output",
                              workdir, capsys)
    finally:
        locked.chmod(0o700)
    assert "permission denied" in line


def _fake_stylize(calls: list):
    @functools.wraps(cli.stylize_fast)
    def stylize_fast(content, styles, **kwargs):
        calls.append(kwargs)
        return np.full((16, 16, 3), 0.5, np.float32), {
            "interrupted": False, "step": [0, 1], "best_total": 3.0}
    return stylize_fast


def test_good_options_reach_stylize_fast_and_the_image_is_saved(workdir, capsys, monkeypatch):
    calls: list = []
    monkeypatch.setattr(cli, "stylize_fast", _fake_stylize(calls))
    code, err = run_cli(IMAGES + ["--size", "64", "--scales", "3", "--steps", "3",
                                  "--alpha", "0", "--style-scale", "0.5", "--seed", "-7",
                                  "--style-layers", "block1_conv1, block5_pool",
                                  "--save-every", "1", "--save-dir", "new/frames"], capsys)
    assert (code, err) == (0, [])
    assert calls[0]["scales"] == 3 and calls[0]["alpha"] == 0.0 and calls[0]["seed"] == -7
    assert calls[0]["style_layers"] == [("block1_conv1", 0.5), ("block5_pool", 0.5)]
    assert load_image(workdir / "out.png").shape == (16, 16, 3)
    assert not (workdir / "new").exists()  # checked, not created: stylize_fast makes it


def test_an_output_folder_lost_during_the_run_keeps_the_result(workdir, capsys, monkeypatch):
    (workdir / "results").mkdir()
    spare = workdir / "spare"
    spare.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(spare))
    calls: list = []
    fake = _fake_stylize(calls)

    @functools.wraps(cli.stylize_fast)
    def stylize_then_lose_the_folder(content, styles, **kwargs):
        shutil.rmtree(workdir / "results")
        (workdir / "results").write_text("someone put a file here")
        return fake(content, styles, **kwargs)

    monkeypatch.setattr(cli, "stylize_fast", stylize_then_lose_the_folder)
    code, err = run_cli(["content.png", "style.png", "-o", "results/out.png"], capsys)
    assert code == 1 and len(err) == 1 and err[0].startswith("error: cannot write results/out")
    kept = list(spare.glob("out-*.png"))
    assert len(kept) == 1 and str(kept[0]) in err[0]
    np.testing.assert_allclose(load_image(kept[0]), 0.5, atol=1 / 255)


def test_the_layer_names_are_vgg19s_own():
    import keras

    model = keras.applications.VGG19(include_top=False, weights=None)
    assert list(VGG19_LAYER_NAMES) == [layer.name for layer in model.layers[1:]]


def test_the_option_converters_refuse_exactly_the_bad_values():
    at_least_one = int_option(1)
    assert at_least_one("1") == 1 and at_least_one("10000000000000000000000") == 10**22
    bounded = int_option(-3, 3)
    assert bounded("-3") == -3 and bounded("3") == 3
    positive, non_negative = float_option(0, above=True), float_option(0)
    assert positive("1e-300") == 1e-300 and non_negative("0") == 0.0
    assert non_negative("-0") == 0.0 and non_negative("1e308") == 1e308
    weight = float_option(0, 10)
    assert weight("10") == 10.0
    for convert, text in ((at_least_one, "0"), (at_least_one, " "), (bounded, "4"),
                          (bounded, "-4"), (positive, "0"), (positive, "nan"),
                          (non_negative, "-1e-300"), (non_negative, "inf"),
                          (non_negative, "1e400"), (non_negative, ""), (weight, "10.5"),
                          (weight, "-1")):
        with pytest.raises(argparse.ArgumentTypeError, match="must be"):
            convert(text)


# ------------------------------------------------------------ prepare --cache-dir DIR


class Fetched(AssertionError):
    pass


@pytest.fixture
def prepare_until_fetch(monkeypatch):
    """``python -m nbutils.prepare``'s main, stopped at its first download: (status,
    stderr lines), or Fetched when the folder check let it through."""
    from nbutils import prepare
    from nbutils._internal.cache import CACHE_ENV
    from nbutils._internal.weights import download

    def fetch(*args, **kwargs):
        raise Fetched("the download started before the folder was checked")

    monkeypatch.setattr(download, "fetch", fetch)
    monkeypatch.setenv(CACHE_ENV, "unset-by-the-test")  # main sets it; this restores it

    def run(folder: Path, capsys) -> tuple[int, list[str]]:
        code = prepare.main(["--cache-dir", str(folder)])
        return code, capsys.readouterr().err.splitlines()

    return run


def test_a_cache_dir_that_is_a_file_or_under_one_is_refused_before_any_download(
        tmp_path, capsys, prepare_until_fetch):
    notes = tmp_path / "notes.txt"
    notes.write_text("a file")
    for folder in (notes, notes / "cache"):
        code, err = prepare_until_fetch(folder, capsys)
        assert (code, err) == (2, [f"error: --cache-dir {folder} cannot be used: {notes} is "
                                   "not a folder (a file is in the way)"])
    assert notes.read_text() == "a file"
    with pytest.raises(Fetched):  # and a folder beside it is fine
        prepare_until_fetch(tmp_path / "cache", capsys)


def test_a_cache_dir_that_cannot_be_created_is_refused_before_any_download(
        tmp_path, capsys, prepare_until_fetch):
    folder = tmp_path / "new" / ("x" * 300)  # longer than any file system's name limit
    code, err = prepare_until_fetch(folder, capsys)
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith(f"error: --cache-dir {folder} cannot be used: cannot create x")
    assert not (tmp_path / "new").exists()


def test_a_read_only_cache_dir_is_refused_before_any_download(
        capsys, prepare_until_fetch, unwritable_folder):
    for folder in (unwritable_folder, unwritable_folder / "cache"):
        code, err = prepare_until_fetch(folder, capsys)
        assert code == 2 and len(err) == 1, err
        assert err[0].startswith(f"error: --cache-dir {folder} cannot be used: cannot "
                                 f"write in {unwritable_folder} (")
