"""The rendered Omniglot-like glyph dataset: determinism, the class split, coverage, look-alikes."""

from functools import cache
from pathlib import Path

import matplotlib
import numpy as np
import pytest
from fontTools.ttLib import TTFont
from PIL import Image

from nbutils.extras import glyphs

PER_CLASS = 60  # enough samples for class means steady enough to compare (see below)


@cache
def cmap(path: str) -> frozenset[int]:
    """Code points a font file maps, read here independently of the module."""
    with TTFont(path) as font:
        return frozenset(font.getBestCmap())


def is_computer_modern(name: str) -> bool:
    return name.startswith("cm")


def normalise(image: np.ndarray, side: int = 20) -> np.ndarray:
    """Undo position and scale: crop to the ink (> 0.2), fit ``side`` px, centre. (side*side,)"""
    ys, xs = np.nonzero(image > 0.2)
    crop = image[ys.min():ys.max() + 1, xs.min():xs.max() + 1].astype(np.float32)
    scale = side / max(crop.shape)
    w, h = max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale))
    small = np.asarray(Image.fromarray(crop, mode="F").resize((w, h), Image.Resampling.BILINEAR))
    out = np.zeros((side, side), np.float32)
    y0, x0 = (side - h) // 2, (side - w) // 2
    out[y0:y0 + h, x0:x0 + w] = small
    return out.ravel()


def class_means(images: np.ndarray, num_classes: int) -> np.ndarray:
    """(C, 400) mean of the normalised samples of each class (samples stored class by class)."""
    flat = np.stack([normalise(x) for x in images[..., 0]])
    return flat.reshape(num_classes, -1, flat.shape[1]).mean(axis=1)


@pytest.fixture(scope="module")
def data() -> glyphs.GlyphDataset:
    return glyphs.make_glyph_dataset(per_class=PER_CLASS, seed=0)


@pytest.fixture(scope="module")
def data_seed1() -> glyphs.GlyphDataset:
    return glyphs.make_glyph_dataset(per_class=PER_CLASS, seed=1)


# --------------------------------------------------------------------------- fonts, characters


def test_fonts_are_a_sorted_dozen_or_so_text_fonts_from_matplotlib():
    fonts = glyphs.available_fonts()
    names = [f.name for f in fonts]
    assert 10 <= len(fonts) <= 20
    assert names == sorted(names)
    ttf_dir = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    assert all(f.parent == ttf_dir and f.is_file() for f in fonts)
    # the fonts that draw no letters are left out; each one kept has all of A-Z
    assert not any(n.startswith(("STIXSiz", "STIXNonUni", "LastResort", "cmex", "cmsy"))
                   for n in names)
    assert all({ord(c) for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ"} <= cmap(str(f)) for f in fonts)


def test_characters_are_about_200_distinct_and_in_a_fixed_order():
    chars = glyphs.choose_characters()
    assert 150 <= len(chars) <= 250
    assert all(isinstance(c, str) and len(c) == 1 and not c.isspace() for c in chars)
    assert len(set(chars)) == len(chars)
    assert glyphs.choose_characters() == chars
    scripts = {"latin": "AZaz", "greek": "ΓΔΘΛΞΣΦΨΩ", "cyrillic": "БДЖИЛЦШЮЯ", "arrow": "←↑→↓"}
    for script, sample in scripts.items():
        assert set(sample) & set(chars), f"no {script} characters"


def test_max_classes_thins_out_evenly_keeping_the_order():
    everything = glyphs.choose_characters(max_classes=1000)
    few = glyphs.choose_characters(max_classes=20)
    assert len(few) == 20
    assert few == [c for c in everything if c in few]  # a subsequence
    assert few[0] == everything[0] and few[-1] == everything[-1]


def test_every_class_is_covered_by_at_least_min_fonts_fonts():
    fonts = glyphs.available_fonts()
    for char in glyphs.choose_characters(min_fonts=4):
        covering = [f for f in fonts if ord(char) in cmap(str(f))
                    and (not is_computer_modern(f.name) or (char.isascii() and char.isalnum()))]
        assert len(covering) >= 4, char


@pytest.mark.parametrize("group", [
    "AΑА", "BΒВ", "EΕЕ", "HΗН", "KΚК", "MΜМ", "PΡРp", "TΤТ", "XΧХx×", "YΥУ",
    "OΟОoο0", "lIΙІ1|", "Cc", "Ss", "Vv", "Ww", "Zz", "ΣƩ∑", "ПΠ∏", "ФΦ", "ГΓ", "3З", "Δ∆△",
])
def test_look_alikes_keep_at_most_one_of_each_group(group):
    chars = glyphs.choose_characters()
    kept = [c for c in group if c in chars]
    assert len(kept) <= 1, kept


def test_cyrillic_and_latin_a_are_the_same_drawing():
    """Why the look-alike rule exists: DejaVu Sans draws U+0041 and U+0410 identically."""
    font = str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf")
    latin = glyphs.render_glyph("A", font, np.random.default_rng(5))
    cyrillic = glyphs.render_glyph("А", font, np.random.default_rng(5))
    np.testing.assert_array_equal(latin, cyrillic)


# --------------------------------------------------------------------------- rendering


def test_render_glyph_shape_range_and_determinism():
    font = glyphs.available_fonts()[0]
    image = glyphs.render_glyph("G", font, np.random.default_rng(1))
    assert image.shape == (28, 28) and image.dtype == np.float32
    assert image.min() >= 0 and image.max() <= 1 and image.max() > 0.5
    np.testing.assert_array_equal(image, glyphs.render_glyph("G", font, np.random.default_rng(1)))
    other = glyphs.render_glyph("G", font, np.random.default_rng(2))
    assert np.abs(image - other).max() > 0.5
    assert glyphs.render_glyph("G", font, np.random.default_rng(1), size=40).shape == (40, 40)


@pytest.mark.parametrize("char", ["W", "|", "⇔", "j"])  # wide, tall, very wide, descender
def test_rendered_glyphs_stay_inside_the_frame(char):
    font = str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans-Bold.ttf")
    rng = np.random.default_rng(0)
    for _ in range(50):
        image = glyphs.render_glyph(char, font, rng)
        ring = image.sum() - image[1:-1, 1:-1].sum()
        assert ring <= 0.01 * image.sum()


# --------------------------------------------------------------------------- the dataset


def test_same_seed_gives_bit_identical_arrays_and_another_seed_does_not():
    a = glyphs.make_glyph_dataset(per_class=3, seed=7)
    b = glyphs.make_glyph_dataset(per_class=3, seed=7)
    c = glyphs.make_glyph_dataset(per_class=3, seed=8)
    for field in ("images", "labels", "fonts", "train_classes", "test_classes"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert a.chars == b.chars == c.chars
    np.testing.assert_array_equal(a.labels, c.labels)
    per_sample = np.abs(a.images - c.images).max(axis=(1, 2, 3))
    assert np.mean(per_sample > 0.1) > 0.9  # nearly every sample is drawn differently
    assert not np.array_equal(a.test_classes, c.test_classes)


def test_shapes_dtypes_and_ranges(data):
    c = len(data.chars)
    assert data.num_classes == c
    assert data.images.shape == (c * PER_CLASS, 28, 28, 1) and data.images.dtype == np.float32
    assert data.images.min() >= 0.0 and data.images.max() <= 1.0
    assert data.labels.shape == data.fonts.shape == (c * PER_CLASS,)
    assert data.labels.dtype == data.fonts.dtype == np.int32
    assert data.chars == glyphs.choose_characters()
    assert data.font_names == [f.name for f in glyphs.available_fonts()]
    assert data.fonts.min() >= 0 and data.fonts.max() < len(data.font_names)


def test_each_class_has_exactly_per_class_samples(data):
    np.testing.assert_array_equal(np.bincount(data.labels), np.full(len(data.chars), PER_CLASS))
    small = glyphs.make_glyph_dataset(per_class=2, seed=0)
    np.testing.assert_array_equal(np.bincount(small.labels), np.full(len(small.chars), 2))


def test_every_sample_has_ink_well_inside_the_frame(data):
    images = data.images[..., 0]
    assert images.max(axis=(1, 2)).min() > 0.5
    ink = images.sum(axis=(1, 2))
    ring = ink - images[:, 1:-1, 1:-1].sum(axis=(1, 2))  # the outermost pixel on each side
    assert (ring <= 0.01 * ink).all()
    # not a handful of pixels either: the glyph spans at least a third of the frame
    rows, cols = (images > 0.3).any(axis=2), (images > 0.3).any(axis=1)
    extent = np.maximum(rows.sum(axis=1), cols.sum(axis=1))
    assert extent.min() >= 28 // 3


def test_samples_are_drawn_by_several_fonts_that_cover_their_character(data):
    paths = {f.name: str(f) for f in glyphs.available_fonts()}
    for label, font in zip(data.labels, data.fonts, strict=True):
        char, name = data.chars[label], data.font_names[font]
        assert ord(char) in cmap(paths[name]), (char, name)
        if is_computer_modern(name):  # TeX OT1 layout: only letters and digits are themselves
            assert char.isascii() and char.isalnum(), (char, name)
    fonts_per_class = [len(set(data.fonts[data.labels == k])) for k in range(len(data.chars))]
    assert min(fonts_per_class) >= 3


def test_split_is_disjoint_covers_all_classes_and_keeps_a_quarter_unseen(data):
    c = len(data.chars)
    train, test = data.train_classes, data.test_classes
    assert np.intersect1d(train, test).size == 0
    np.testing.assert_array_equal(np.union1d(train, test), np.arange(c))
    assert len(test) == round(0.25 * c)
    assert (np.diff(train) > 0).all() and (np.diff(test) > 0).all()


def test_subset_holds_only_the_requested_classes(data):
    x_test, y_test = data.subset(data.test_classes)
    x_train, y_train = data.subset(data.train_classes)
    assert set(np.unique(y_test)) == set(data.test_classes.tolist())
    assert set(np.unique(y_train)) == set(data.train_classes.tolist())  # no unseen class leaks
    assert len(y_test) == PER_CLASS * len(data.test_classes)
    assert len(x_train) + len(x_test) == len(data.images)
    assert x_test.shape[1:] == (28, 28, 1) and y_test.dtype == np.int32
    k = int(data.test_classes[0])
    block = data.images[k * PER_CLASS:(k + 1) * PER_CLASS]
    np.testing.assert_array_equal(data.subset([k])[0], block)


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.5, 1.0])
def test_unseen_fraction_sets_the_number_of_unseen_classes(fraction):
    d = glyphs.make_glyph_dataset(per_class=1, seed=0, unseen_fraction=fraction)
    assert len(d.test_classes) == round(fraction * len(d.chars))
    assert len(d.train_classes) + len(d.test_classes) == len(d.chars)


def test_class_means_are_distinguishable(data, data_seed1):
    """Every two class means (after undoing position and scale) are farther apart than any
    class mean is from the same class re-rendered with another seed.

    Raw class means are blurs (random position and size), so the images are cropped to their
    ink and rescaled first. The threshold is the rendering noise of a class mean: the largest
    distance between a class's mean for seed 0 and for seed 1. A duplicated class would sit
    about that close to its twin (see the next test), so it could not pass.
    """
    c = len(data.chars)
    means0, means1 = class_means(data.images, c), class_means(data_seed1.images, c)
    noise = np.linalg.norm(means0 - means1, axis=1).max()
    between = np.linalg.norm(means0[:, None] - means0[None], axis=-1)
    between[np.diag_indices(c)] = np.inf
    assert between.min() > noise


def test_a_duplicated_class_would_fail_the_distinguishability_check(data, data_seed1):
    c = len(data.chars)
    noise = np.linalg.norm(
        class_means(data.images, c) - class_means(data_seed1.images, c), axis=1).max()
    rng = np.random.default_rng(123)
    fonts = [f for f in glyphs.available_fonts() if ord("А") in cmap(str(f))]
    twin = [glyphs.render_glyph("А", fonts[rng.integers(len(fonts))], rng)  # Cyrillic A
            for _ in range(PER_CLASS)]
    twin_mean = class_means(np.stack(twin)[..., None], 1)[0]
    latin_a = class_means(data.subset([data.chars.index("A")])[0], 1)[0]
    assert np.linalg.norm(twin_mean - latin_a) < noise


# --------------------------------------------------------------------------- cache, grid


def test_cache_path_saves_then_loads_without_rendering(tmp_path, monkeypatch):
    path = tmp_path / "glyphs.npz"
    made = glyphs.make_glyph_dataset(per_class=2, seed=3, cache_path=path)
    assert path.is_file()

    def no_render(*args, **kwargs):
        raise AssertionError("rendered instead of loading the cache")

    with monkeypatch.context() as m:
        m.setattr(glyphs, "_render_all", no_render)
        loaded = glyphs.make_glyph_dataset(per_class=2, seed=3, cache_path=path)
        with pytest.raises(AssertionError, match="rendered"):  # other arguments: not a hit
            glyphs.make_glyph_dataset(per_class=2, seed=4, cache_path=path)
    for field in ("images", "labels", "fonts", "train_classes", "test_classes"):
        np.testing.assert_array_equal(getattr(loaded, field), getattr(made, field))
    assert loaded.chars == made.chars and loaded.font_names == made.font_names
    other = glyphs.make_glyph_dataset(per_class=2, seed=4, cache_path=path)
    assert not np.array_equal(other.images, made.images)


def test_sample_grid_tiles_classes_in_rows(data):
    classes = [5, 0, 17]
    grid = glyphs.sample_grid(data, classes, per_class=4)
    assert grid.shape == (3 * 28, 4 * 28) and grid.dtype == np.float32
    np.testing.assert_array_equal(grid[:28, 28:56], data.images[5 * PER_CLASS + 1, ..., 0])
    np.testing.assert_array_equal(grid[56:, 84:], data.images[17 * PER_CLASS + 3, ..., 0])
