"""Tests for nbutils.images (image I/O) and nbutils.samples (the project's own images)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

from nbutils import images as images_module
from nbutils.images import (
    ImageError,
    ImageNotFoundError,
    load_image,
    save_image,
    to_uint8,
)
from nbutils.samples import (
    SAMPLE_IMAGES,
    draw_mosaic_texture,
    draw_swirl_texture,
    make_sample_images,
    sample_image_path,
)

RED, BLUE = (255, 0, 0), (0, 0, 255)


def _save_pil(image: Image.Image, path: Path, **options) -> Path:
    image.save(path, **options)
    return path


def _real_jpeg(path: Path, shape: tuple[int, int] = (64, 64)) -> Path:
    noise = np.random.default_rng(0).integers(0, 256, (*shape, 3), dtype=np.uint8)
    return _save_pil(Image.fromarray(noise), path, quality=90)


# --------------------------------------------------------------------------- arrays


def test_uint8_array_is_divided_by_255() -> None:
    array = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3) * 14
    out = load_image(array)
    assert out.dtype == np.float32
    assert out.shape == (2, 3, 3)
    np.testing.assert_array_equal(out, array.astype(np.float32) / np.float32(255))
    assert out.min() >= 0.0 and out.max() <= 1.0


def test_uint16_bool_and_gray_arrays() -> None:
    wide = np.array([[0, 65535, 13107]], dtype=np.uint16)
    np.testing.assert_allclose(load_image(wide)[0, :, 1], [0.0, 1.0, 0.2], atol=1e-6)
    flags = np.array([[True, False]])
    np.testing.assert_array_equal(load_image(flags)[0], [[1, 1, 1], [0, 0, 0]])
    single = np.full((2, 2, 1), 0.25, np.float32)
    np.testing.assert_array_equal(load_image(single), np.full((2, 2, 3), 0.25, np.float32))


def test_rgba_array_is_composited_on_white() -> None:
    rgba = np.array([[[0.0, 0.0, 0.0, 0.0], [0.2, 0.4, 0.6, 1.0], [0.0, 0.5, 1.0, 0.5]]])
    expected = [[1.0, 1.0, 1.0], [0.2, 0.4, 0.6], [0.5, 0.75, 1.0]]
    np.testing.assert_allclose(load_image(rgba)[0], expected, atol=1e-6)


# --------------------------------------------------------------------------- file modes


def test_grayscale_file_gives_three_equal_channels(tmp_path: Path) -> None:
    gray = np.array([[0, 17, 128], [200, 254, 255]], dtype=np.uint8)
    path = _save_pil(Image.fromarray(gray, mode="L"), tmp_path / "gray.png")
    out = load_image(path)
    assert out.shape == (2, 3, 3)
    for channel in range(3):
        np.testing.assert_array_equal(out[:, :, channel], gray / np.float32(255))


def test_rgba_file_alpha_is_composited_on_white(tmp_path: Path) -> None:
    rgba = np.array([[[10, 20, 30, 0], [200, 100, 50, 255], [0, 0, 0, 128]]], dtype=np.uint8)
    path = _save_pil(Image.fromarray(rgba, mode="RGBA"), tmp_path / "alpha.png")
    out = load_image(path)[0]
    np.testing.assert_array_equal(out[0], [1.0, 1.0, 1.0])
    np.testing.assert_allclose(out[1], np.array([200, 100, 50]) / 255, atol=1e-6)
    half = 128 / 255
    np.testing.assert_allclose(out[2], [1 - half] * 3, atol=1 / 255)


def test_palette_file_gives_palette_colours(tmp_path: Path) -> None:
    palette = [(255, 0, 0), (0, 128, 0), (10, 20, 250), (255, 255, 0)]
    image = Image.new("P", (4, 1))
    image.putpalette([v for colour in palette for v in colour])
    image.putdata([2, 0, 3, 1])
    out = load_image(_save_pil(image, tmp_path / "palette.png"))
    expected = np.array([palette[i] for i in (2, 0, 3, 1)]) / 255
    np.testing.assert_allclose(out[0], expected, atol=1e-6)


def test_palette_transparency_becomes_white(tmp_path: Path) -> None:
    image = Image.new("P", (2, 1))
    image.putpalette([0, 0, 255, 0, 255, 0])
    image.putdata([0, 1])
    path = _save_pil(image, tmp_path / "palette_t.png", transparency=0)
    np.testing.assert_allclose(load_image(path)[0], [[1, 1, 1], [0, 1, 0]], atol=1e-6)


def test_16bit_png_uses_full_16_bit_range(tmp_path: Path) -> None:
    values = np.array([[65535, 32768, 1000, 0]], dtype=np.uint16)
    path = _save_pil(Image.fromarray(values), tmp_path / "deep.png")
    out = load_image(path)[0, :, 0]
    np.testing.assert_allclose(out, values[0] / 65535, atol=1e-4)
    # Naive 8-bit clipping would turn 1000 into 255 -> 1.0.
    assert out[2] < 0.02


def test_bilevel_and_cmyk_files(tmp_path: Path) -> None:
    bits = Image.fromarray(np.array([[0, 255]], dtype=np.uint8)).convert("1")
    np.testing.assert_array_equal(load_image(_save_pil(bits, tmp_path / "b.png"))[0, :, 0], [0, 1])
    cmyk = Image.new("CMYK", (2, 2), (0, 255, 255, 0))  # pure red in CMYK
    out = load_image(_save_pil(cmyk, tmp_path / "cmyk.tif"))
    np.testing.assert_allclose(out, np.broadcast_to([1.0, 0.0, 0.0], (2, 2, 3)), atol=1e-6)


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    stored = np.zeros((20, 40, 3), dtype=np.uint8)  # 40 wide, 20 high
    stored[:, :20] = RED
    stored[:, 20:] = BLUE
    exif = Image.Exif()
    exif[0x0112] = 6  # display rotated 90 degrees clockwise
    path = _save_pil(Image.fromarray(stored), tmp_path / "rotated.jpg", exif=exif, quality=95)
    out = load_image(path)
    assert out.shape == (40, 20, 3)
    expected = np.rot90(stored, k=-1) / 255  # k=-1: clockwise
    # The left (red) half ends up on top, the right (blue) half at the bottom.
    np.testing.assert_allclose(out[:, :, 0].mean(axis=1)[[2, 37]], [1.0, 0.0], atol=0.1)
    inner = (slice(3, 17), slice(3, 17))
    np.testing.assert_allclose(out[inner], expected[inner], atol=0.1)
    np.testing.assert_allclose(out[23:37, 3:17], expected[23:37, 3:17], atol=0.1)


def test_pil_image_input_honours_exif(tmp_path: Path) -> None:
    stored = np.zeros((2, 4, 3), dtype=np.uint8)
    stored[:, :2] = RED
    exif = Image.Exif()
    exif[0x0112] = 6
    path = _save_pil(Image.fromarray(stored), tmp_path / "r.png", exif=exif)
    with Image.open(path) as image:
        out = load_image(image)
    np.testing.assert_array_equal(out, np.rot90(stored, k=-1) / np.float32(255))


# --------------------------------------------------------------------------- resizing


def test_int_size_gives_square() -> None:
    out = load_image(np.zeros((30, 50, 3), np.uint8), size=24)
    assert out.shape == (24, 24, 3)


def test_tuple_size_is_height_width() -> None:
    out = load_image(np.zeros((30, 50, 3), np.uint8), size=(17, 23))
    assert out.shape == (17, 23, 3)


def test_constant_image_keeps_its_colour_after_resize() -> None:
    colour = np.array([200, 100, 50], dtype=np.uint8)
    array = np.broadcast_to(colour, (30, 50, 3)).copy()
    for size in (7, (61, 13), (100, 120)):
        out = load_image(array, size=size)
        np.testing.assert_allclose(out, np.broadcast_to(colour / 255, out.shape), atol=1e-5)


def test_resize_of_a_ramp_stays_a_ramp() -> None:
    ramp = np.linspace(0, 1, 64, dtype=np.float32)[None, :].repeat(8, axis=0)
    out = load_image(ramp, size=(8, 32))[4, 4:-4, 0]
    expected = np.interp(np.arange(4, 28) + 0.5, np.arange(64) / 2 + 0.25, ramp[0])
    np.testing.assert_allclose(out, expected, atol=1e-3)


def test_downscaling_filters_fine_stripes_to_grey() -> None:
    stripes = np.tile(np.array([0.0, 1.0], np.float32), (16, 32))  # 16 x 64, 1-px stripes
    out = load_image(stripes, size=(16, 32))
    # A proper low-pass filter averages each pair; nearest-neighbour would give 0 or 1.
    np.testing.assert_allclose(out[4:-4, 4:-4], 0.5, atol=0.02)


# --------------------------------------------------------------------------- errors


def _raises_with_name(source, name: str, **kwargs) -> ImageError:
    with pytest.raises(ImageError) as info:
        load_image(source, **kwargs)
    assert name in str(info.value)
    return info.value


def test_missing_file(tmp_path: Path) -> None:
    err = _raises_with_name(tmp_path / "nowhere.png", "nowhere.png")
    assert isinstance(err, FileNotFoundError)
    assert isinstance(err, ImageNotFoundError)


def test_directory(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    err = _raises_with_name(str(folder), "photos")
    assert "directory" in str(err)


def test_text_file_named_jpg(tmp_path: Path) -> None:
    path = tmp_path / "notes.jpg"
    path.write_text("this is not a picture\n" * 10)
    _raises_with_name(path, "notes.jpg")


def test_truncated_jpeg(tmp_path: Path) -> None:
    path = _real_jpeg(tmp_path / "cut.jpg")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    _raises_with_name(path, "cut.jpg")
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_too_many_pixels_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _real_jpeg(tmp_path / "big.jpg", shape=(20, 30))
    assert load_image(path).shape == (20, 30, 3)
    monkeypatch.setattr(images_module, "MAX_PIXELS", 500)
    err = _raises_with_name(path, "big.jpg")
    assert "too large" in str(err)


def test_pillow_decompression_bomb_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _real_jpeg(tmp_path / "bomb.jpg", shape=(40, 40))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 1600 px > 2 * 100 -> Pillow error
    _raises_with_name(path, "bomb.jpg")


@pytest.mark.parametrize(
    "array",
    [
        np.zeros((0, 10, 3), np.uint8),
        np.zeros((10, 0), np.uint8),
        np.zeros((4, 4, 5), np.uint8),
        np.zeros((1, 4, 4, 3), np.uint8),
        np.full((4, 4, 3), 1.5, np.float32),
        np.full((4, 4, 3), -0.1, np.float64),
        np.full((4, 4, 3), np.nan, np.float32),
        np.zeros((4, 4, 3), np.int64),
    ],
    ids=["zero-height", "zero-width", "5-channels", "batch", ">1", "<0", "nan", "int64"],
)
def test_bad_arrays(array: np.ndarray) -> None:
    with pytest.raises(ImageError):
        load_image(array)


@pytest.mark.parametrize("size", [0, -3, (10, 0), (0, 10), 2.5, "64", True, (1, 2, 3)])
def test_bad_size(size) -> None:
    with pytest.raises(ImageError):
        load_image(np.zeros((4, 4, 3), np.uint8), size=size)


def test_bad_size_on_a_file_is_refused(tmp_path: Path) -> None:
    path = _real_jpeg(tmp_path / "ok.jpg")
    with pytest.raises(ImageError):
        load_image(path, size=-1)


def test_unsupported_source_type() -> None:
    with pytest.raises(ImageError):
        load_image(12345)


# --------------------------------------------------------------------------- saving


def test_png_round_trip_equals_to_uint8(tmp_path: Path) -> None:
    image = np.random.default_rng(1).random((13, 17, 3), dtype=np.float32)
    path = save_image(image, tmp_path / "out.png")
    assert path == tmp_path / "out.png"
    with Image.open(path) as saved:
        np.testing.assert_array_equal(np.asarray(saved), to_uint8(image))
    np.testing.assert_array_equal(load_image(path), to_uint8(image) / np.float32(255))


def test_to_uint8_rounds_and_clips() -> None:
    image = np.array([[[0.0, 1.0, 0.5], [0.2, -0.3, 1.7], [0.001, 0.999, 0.25]]], np.float32)
    expected = np.array([[[0, 255, 128], [51, 0, 255], [0, 255, 64]]], np.uint8)
    out = to_uint8(image)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(to_uint8(image[None]), expected)
    np.testing.assert_array_equal(to_uint8(expected), expected)


def test_batched_image_and_parent_dirs(tmp_path: Path) -> None:
    image = np.random.default_rng(2).integers(0, 256, (1, 6, 5, 3), dtype=np.uint8)
    path = save_image(image, tmp_path / "a" / "b" / "c.png")
    assert path.is_file()
    with Image.open(path) as saved:
        np.testing.assert_array_equal(np.asarray(saved), image[0])


def test_jpeg_save_is_close(tmp_path: Path) -> None:
    image = np.full((16, 16, 3), [0.8, 0.3, 0.1], np.float32)
    path = save_image(image, tmp_path / "flat.JPEG")
    with Image.open(path) as saved:
        assert saved.format == "JPEG"
    np.testing.assert_allclose(load_image(path), image, atol=3 / 255)


def test_unknown_extension_creates_nothing(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "picture.bmpx"
    with pytest.raises(ImageError) as info:
        save_image(np.zeros((4, 4, 3), np.float32), target)
    assert "picture.bmpx" in str(info.value)
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "bad", [np.zeros((4, 4, 4), np.float32), np.zeros((2, 4, 4, 3)), np.zeros((4, 4, 3), int)]
)
def test_save_refuses_bad_arrays(tmp_path: Path, bad: np.ndarray) -> None:
    with pytest.raises(ImageError):
        save_image(bad, tmp_path / "bad.png")
    assert list(tmp_path.iterdir()) == []


def _existing_png(tmp_path: Path) -> tuple[Path, bytes]:
    target = save_image(np.full((5, 5, 3), 0.5, np.float32), tmp_path / "keep.png")
    return target, target.read_bytes()


def test_failed_save_keeps_the_old_file_wrong_shape(tmp_path: Path) -> None:
    target, before = _existing_png(tmp_path)
    with pytest.raises(ImageError):
        save_image(np.zeros((5, 5), np.float32), target)
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.png"]


def test_failed_save_keeps_the_old_file_writer_crash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target, before = _existing_png(tmp_path)

    def crash(self, fp, *args, **kwargs):
        fp.write(b"half an image")  # a partial write, then a failure
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        save_image(np.ones((5, 5, 3), np.float32), target)
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.png"]


def test_successful_save_replaces_the_old_file(tmp_path: Path) -> None:
    target, before = _existing_png(tmp_path)
    save_image(np.zeros((3, 3, 3), np.uint8), target)
    assert target.read_bytes() != before
    assert load_image(target).shape == (3, 3, 3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.png"]


# --------------------------------------------------------------------------- samples


@pytest.mark.parametrize("draw", [draw_swirl_texture, draw_mosaic_texture])
def test_textures_are_deterministic_and_textured(draw) -> None:
    first = draw(size=96, seed=3)
    assert first.shape == (96, 96, 3)
    assert first.dtype == np.uint8
    np.testing.assert_array_equal(first, draw(size=96, seed=3))
    assert not np.array_equal(first, draw(size=96, seed=4))
    assert np.all(first.reshape(-1, 3).std(axis=0) > 20)


def test_swirl_texture_is_mostly_blue() -> None:
    texture = draw_swirl_texture(size=128, seed=0).astype(float)
    assert texture[..., 2].mean() > texture[..., 0].mean() + 20


def test_swirl_texture_has_brush_stroke_edges() -> None:
    texture = draw_swirl_texture(size=128, seed=0).astype(float).mean(axis=2)
    # Many sharp steps between neighbouring pixels: stroke borders, not a smooth gradient.
    steps = np.abs(np.diff(texture, axis=1))
    assert (steps > 25).mean() > 0.05


def test_mosaic_has_dark_lead_lines() -> None:
    texture = draw_mosaic_texture(size=256, seed=0)
    dark = texture.max(axis=2) < 60
    assert 0.03 < dark.mean() < 0.4


def test_make_sample_images(tmp_path: Path) -> None:
    paths = make_sample_images(tmp_path, size=64)
    assert set(paths) == set(SAMPLE_IMAGES)
    for name, path in paths.items():
        assert path == tmp_path / SAMPLE_IMAGES[name]
        assert load_image(path).shape == (64, 64, 3)
    content = load_image(paths["content"])
    assert content.std() > 0.05


def test_make_sample_images_skips_existing_unless_overwrite(tmp_path: Path) -> None:
    paths = make_sample_images(tmp_path, size=32)
    old = 1_000_000_000
    for path in paths.values():
        os.utime(path, ns=(old, old))
    make_sample_images(tmp_path, size=48)
    for path in paths.values():
        assert path.stat().st_mtime_ns == old
        assert load_image(path).shape == (32, 32, 3)
    make_sample_images(tmp_path, size=48, overwrite=True)
    for path in paths.values():
        assert path.stat().st_mtime_ns != old
        assert load_image(path).shape == (48, 48, 3)


def test_sample_image_path(tmp_path: Path) -> None:
    path = sample_image_path("style_mosaic", folder=tmp_path)
    assert path == tmp_path / "style_mosaic.png"
    assert path.is_file()
    with pytest.raises(KeyError) as info:
        sample_image_path("starry_night", folder=tmp_path)
    for key in SAMPLE_IMAGES:
        assert key in str(info.value)


def _png_declaring_size(width: int, height: int) -> bytes:
    """A PNG whose header declares width x height (an 8-bit RGB image with no pixel data)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b""))
            + chunk(b"IEND", b""))


@pytest.mark.parametrize("width,height", [(0, 0), (0, 10), (10, 0)])
def test_zero_sized_image_file(tmp_path: Path, width: int, height: int) -> None:
    path = tmp_path / f"empty_{width}x{height}.png"
    path.write_bytes(_png_declaring_size(width, height))
    with pytest.raises(ImageError) as err:
        load_image(path)
    assert path.name in str(err.value)


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "nothing.jpg"
    path.write_bytes(b"")
    with pytest.raises(ImageError, match="empty file") as err:
        load_image(path)
    assert path.name in str(err.value)


def test_bytes_of_a_file_load_like_the_file(tmp_path: Path) -> None:
    """An upload widget hands over the file's bytes: the same pixels as the path gives."""
    path = _real_jpeg(tmp_path / "photo.jpg", shape=(12, 16))
    data = path.read_bytes()
    expected = load_image(path)
    for source in (data, bytearray(data), memoryview(data)):
        np.testing.assert_array_equal(load_image(source, name="photo.jpg"), expected)
    assert load_image(data, (6, 8)).shape == (6, 8, 3)


@pytest.mark.parametrize("data", [b"", b"not an image at all", "cut"])
def test_bad_bytes_name_the_upload(tmp_path: Path, data: bytes | str) -> None:
    if data == "cut":
        data = _real_jpeg(tmp_path / "x.jpg").read_bytes()[:300]
    with pytest.raises(ImageError, match="holiday.jpg"):
        load_image(data, name="holiday.jpg")


def test_bytes_over_max_pixels_are_refused_from_the_header(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = _real_jpeg(tmp_path / "big.jpg", shape=(20, 30)).read_bytes()
    monkeypatch.setattr(images_module, "MAX_PIXELS", 500)
    decoded = []
    monkeypatch.setattr(Image.Image, "load", lambda self: decoded.append(self))
    with pytest.raises(ImageError, match="too large"):
        load_image(data, name="big.jpg")
    assert decoded == []  # refused before any pixel was decoded
