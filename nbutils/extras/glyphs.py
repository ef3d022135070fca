"""An offline, Omniglot-like one-shot dataset: characters rendered from matplotlib's fonts.

A *class* is a character (Latin, Greek, Cyrillic, digits, symbols...); a *sample* is it
"drawn" by one of matplotlib's fonts at a random size, rotation and position: a 28x28 image,
white glyph (1.0) on black (0.0). Characters that look alike once size is free (``A``/``Α``/
``А``, ``o``/``O``/``0``...) would be impossible classes: only the first of each look-alike
group is kept (`LOOKALIKE_GROUPS`, plus a pixel-similarity check). Typical use::

    data = make_glyph_dataset(per_class=20, seed=0)
    x_train, y_train = data.subset(data.train_classes)   # seen classes only
    x_test, y_test = data.subset(data.test_classes)      # unseen, for one-shot tests
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import numpy as np
from fontTools.ttLib import TTFont
from PIL import Image, ImageDraw, ImageFont

__all__ = [
    "FONT_FILES",
    "LOOKALIKE_GROUPS",
    "GlyphDataset",
    "available_fonts",
    "choose_characters",
    "font_covers",
    "make_glyph_dataset",
    "render_glyph",
    "sample_grid",
]

#: The fonts used, by file name in matplotlib's ``mpl-data/fonts/ttf``. Left out: the
#: "Display" and STIX size-variant / non-Unicode fonts (a few big delimiters, no letters),
#: cmex10/cmsy10/cmmi10 (TeX symbol encodings behind ASCII code points) and LastResort
#: (it draws a placeholder box for every code point).
FONT_FILES: tuple[str, ...] = (
    "DejaVuSans-Bold.ttf",
    "DejaVuSans-Oblique.ttf",
    "DejaVuSans.ttf",
    "DejaVuSansMono-Bold.ttf",
    "DejaVuSansMono.ttf",
    "DejaVuSerif-Bold.ttf",
    "DejaVuSerif-Italic.ttf",
    "DejaVuSerif.ttf",
    "STIXGeneral.ttf",
    "STIXGeneralBol.ttf",
    "STIXGeneralBolIta.ttf",
    "STIXGeneralItalic.ttf",
    "cmb10.ttf",
    "cmr10.ttf",
    "cmss10.ttf",
    "cmti10.ttf",
    "cmtt10.ttf",
)

#: Computer Modern fonts use TeX's OT1 layout: their cmap maps every ASCII code point, but
#: only letters and digits are drawn as themselves (``<`` is ``¡``, ``\\`` is ``“``...).
_LETTERS_AND_DIGITS_ONLY = ("cm",)

#: Candidate characters, in the order they are considered (an earlier one wins a look-alike).
_CANDIDATE_SETS: tuple[str, ...] = (
    "ABCDEFGHIJKLMNOPQRSTUVWXYZ",
    "abcdefghijklmnopqrstuvwxyz",
    "0123456789",
    "ΑΒΓΔΕΖΗΘΙΚΛΜΝΞΟΠΡΣΤΥΦΧΨΩ",
    "αβγδεζηθικλμνξοπρστυφχψω",
    "АБВГДЕЖЗИЙКЛМНОПРСТУФХЦЧШЩЪЫЬЭЮЯ",
    "абвгдежзийклмнопрстуфхцчшщъыьэюя",
    "ЄЅІЇЈЉЊЋҐ",
    "#%&@?!§¶+=<>*^~©µßæøþðœ",
    "$¢£¥€₩₹₽",
    "±×÷¬∀∂∃∅∇∈∉∋∏∑∗√∝∞∠∧∨∩∪∫∮≃≅≈≠≡≤≥≫⊂⊃⊆⊇⊕⊖⊗⊙⊢⊤⊥",
    "←↑→↓↔↖↗↘↙⇐⇑⇒⇓⇔↺↻↩",
    "■□▲△▶▷▼▽◀◁◆◇○◎●◐◑★☆",
    "♠♣♥♦♡♢♪♫☀☁☺♀♂⚓",
)

#: Known look-alike groups (the same shape once size is free, or a few pixels apart at
#: 28x28): only the first member met among the candidates is kept.
LOOKALIKE_GROUPS: tuple[str, ...] = (
    # Latin capitals and their Greek / Cyrillic twins, lower-case letters of the same shape
    "AΑА", "BΒВв", "CСcс", "EΕЕ", "HΗНн", "IΙІlι1|", "KΚКкκ", "MΜМм", "NΝ",
    "OΟОoοо0○", "PΡРрpρ", "TΤТтτ⊤", "XΧХxχх×", "YΥУ", "SЅsѕ", "VvνѴ∨", "Ww", "ZΖz",
    "Uuυ∪", "aа", "eе", "yуγ", "iі", "JЈ", "jј", "n∩",
    # Greek capitals and their Cyrillic / math twins, Greek lower-case of the same shape
    "ГΓг", "ПΠ∏пπ", "ΣƩ∑", "ФΦф", "Δ∆△", "Θθ⊖", "Ψψ", "Λ^∧", "δбð",
    # Cyrillic lower-case letters that are small capitals, and the З / 3 pair
    "3Зз", "Дд", "Жж", "Ии", "Йй", "Лл", "Цц", "Чч", "Шш", "Щщ", "Ъъ", "Ыы", "Ьь",
    "Ээ", "Юю", "Яя", "Љљ", "Њњ",
    # symbols
    "∇▽", "Ø∅ø", "µμ", "*∗", "-−", "~∼", "þÞ", "◆♦", "◇♢", "●☻",
)

#: Geometry of one rendering (pixels on the high-resolution canvas).
_CANVAS = 64
_MARGIN = 3
_FONT_PX = (40, 64)  # font size range (stroke detail and hinting vary with it)
_EXTENT = (0.55, 1.0)  # longer side of the glyph, as a fraction of the canvas inside the margin
_MAX_ROTATION = 15.0  # degrees, uniform in [-15, 15]
_INK_LEVEL = 128  # a pixel at >= 128/255 counts as ink when checking a glyph is not empty

#: Safety-net look-alike check: scale-normalised renderings whose pixel cosine similarity is
#: above this, in any reference font, count as the same character. It only catches near-exact
#: copies (A/Α/А 1.00, p/ρ 0.97 in DejaVu Sans): pixel cosine cannot tell o/O (0.91, DejaVu
#: Sans) from C/G (0.91, DejaVu Serif), which is why LOOKALIKE_GROUPS exists.
_LOOKALIKE_COSINE = 0.97
_REFERENCE_FONTS = ("DejaVuSans.ttf", "DejaVuSerif.ttf", "STIXGeneral.ttf")


# --------------------------------------------------------------------------- fonts


@functools.lru_cache(maxsize=1)
def _font_dir() -> Path:
    return Path(matplotlib.get_data_path()) / "fonts" / "ttf"


def available_fonts() -> list[Path]:
    """The TrueType files the glyphs are drawn from, sorted by file name (17 fonts)."""
    paths = [_font_dir() / name for name in sorted(FONT_FILES)]
    return [p for p in paths if p.is_file()]


@functools.cache
def _cmap(font_path: str) -> frozenset[int]:
    """The code points ``font_path``'s best Unicode cmap maps to a glyph."""
    with TTFont(font_path, lazy=True) as font:
        return frozenset(font.getBestCmap() or {})


@functools.lru_cache(maxsize=512)
def _pil_font(font_path: str, px: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(font_path, px)


def font_covers(font_path: str | Path, char: str) -> bool:
    """True when the font maps ``char`` in its cmap and draws it as itself (see above)."""
    path = Path(font_path)
    if ord(char) not in _cmap(str(path)):
        return False
    if path.name.startswith(_LETTERS_AND_DIGITS_ONLY):
        return char.isascii() and char.isalnum()
    return True


# --------------------------------------------------------------------------- rendering


@functools.lru_cache(maxsize=8192)
def _ink(char: str, font_path: str, px: int) -> Image.Image:
    """``char`` drawn at ``px`` pixels, cropped to its ink: mode ``"L"``, 0 background.

    An empty glyph gives a 1x1 black image.
    """
    font = _pil_font(font_path, px)
    left, top, right, bottom = font.getbbox(char)
    pad = px // 4 + 2
    canvas = Image.new("L", (right - left + 2 * pad, bottom - top + 2 * pad), 0)
    ImageDraw.Draw(canvas).text((pad - left, pad - top), char, font=font, fill=255)
    box = canvas.getbbox()
    return canvas.crop(box) if box else Image.new("L", (1, 1), 0)


def _has_ink(char: str, font_path: str) -> bool:
    """True when ``char`` draws something visible (not blank, not a one-pixel speck)."""
    ink = np.asarray(_ink(char, font_path, 48))
    return int(ink.max()) >= _INK_LEVEL and min(ink.shape) >= 2


def _resize_longest(image: Image.Image, side: int) -> Image.Image:
    """Scale ``image`` (keeping its aspect ratio) so that its longer side is ``side`` px."""
    scale = side / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS)


def render_glyph(
    char: str, font_path: str | Path, rng: np.random.Generator, size: int = 28
) -> np.ndarray:
    """``char`` as a float32 ``(size, size)`` image in [0, 1], white on black.

    ``rng`` draws the font size (40-64 px), a rotation (up to +-15 degrees), the longer
    side (55-100% of a 64x64 canvas inside a 3-px margin) and a position inside the margin;
    the canvas is then downsampled (Lanczos). Size is free, so ``o``/``O`` count as one.
    """
    px = int(rng.integers(_FONT_PX[0], _FONT_PX[1] + 1))
    angle = float(rng.uniform(-_MAX_ROTATION, _MAX_ROTATION))
    room = _CANVAS - 2 * _MARGIN
    longest = round(float(rng.uniform(*_EXTENT)) * room)
    glyph = _ink(char, str(font_path), px)
    glyph = glyph.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=0)
    box = glyph.getbbox()
    if box:
        glyph = glyph.crop(box)
    glyph = _resize_longest(glyph, longest)
    free = np.array([room - glyph.width, room - glyph.height])
    x, y = _MARGIN + (rng.random(2) * (free + 1)).astype(int)
    canvas = Image.new("L", (_CANVAS, _CANVAS), 0)
    canvas.paste(glyph, (int(x), int(y)))
    small = canvas.resize((size, size), Image.Resampling.LANCZOS)
    return np.asarray(small, dtype=np.float32) / np.float32(255)


@functools.lru_cache(maxsize=4096)
def _normalised(char: str, font_path: str, size: int = 28) -> np.ndarray:
    """``char`` scaled to fit ``size - 4`` px and centred, unit L2 norm: (size*size,)."""
    glyph = _ink(char, font_path, 96)
    scale = (size - 4) / max(glyph.size)
    glyph = glyph.resize(
        (max(1, round(glyph.width * scale)), max(1, round(glyph.height * scale))),
        Image.Resampling.LANCZOS,
    )
    canvas = Image.new("L", (size, size), 0)
    canvas.paste(glyph, ((size - glyph.width) // 2, (size - glyph.height) // 2))
    vector = np.asarray(canvas, dtype=np.float64).ravel()
    return vector / max(np.linalg.norm(vector), 1e-12)


# --------------------------------------------------------------------------- characters


def _lookalike_of(char: str) -> str:
    """The first member of ``char``'s look-alike group (``char`` itself if in none)."""
    for group in LOOKALIKE_GROUPS:
        if char in group:
            return group[0]
    return char


def _fonts_for(char: str, fonts: Sequence[Path]) -> list[int]:
    """Indices into ``fonts`` of the fonts that cover ``char`` and draw visible ink."""
    return [i for i, f in enumerate(fonts) if font_covers(f, char) and _has_ink(char, str(f))]


def _too_similar(char: str, chosen: Sequence[str], fonts: Sequence[Path]) -> bool:
    """True when ``char`` nearly matches a chosen character in some reference font."""
    for ref in (p for p in fonts if p.name in _REFERENCE_FONTS):
        if not font_covers(ref, char):
            continue
        others = [c for c in chosen if font_covers(ref, c)]
        if not others:
            continue
        matrix = np.stack([_normalised(c, str(ref)) for c in others])
        if float((matrix @ _normalised(char, str(ref))).max()) > _LOOKALIKE_COSINE:
            return True
    return False


@functools.lru_cache(maxsize=16)
def _choose(min_fonts: int, max_classes: int) -> tuple[str, ...]:
    fonts = available_fonts()
    chosen: list[str] = []
    groups_used: set[str] = set()
    for char in "".join(_CANDIDATE_SETS):
        group = _lookalike_of(char)
        if char in chosen or group in groups_used:
            continue
        if len(_fonts_for(char, fonts)) < min_fonts or _too_similar(char, chosen, fonts):
            continue
        chosen.append(char)
        groups_used.add(group)
    if len(chosen) > max_classes:  # thin out evenly, so that every set stays represented
        keep = np.linspace(0, len(chosen) - 1, max(max_classes, 0)).round().astype(int)
        chosen = [chosen[i] for i in keep]
    return tuple(chosen)


def choose_characters(min_fonts: int = 4, max_classes: int = 200) -> list[str]:
    """The class characters, distinct, in candidate order (Latin, digits, Greek, Cyrillic,
    symbols...).

    A candidate is kept when ``min_fonts`` fonts draw it, no member of its look-alike group
    is already kept, and its normalised rendering has cosine <= 0.97 to every kept one in the
    reference fonts. 200 pass by default; beyond ``max_classes``, evenly spaced ones are kept.
    """
    return list(_choose(min_fonts, max_classes))


# --------------------------------------------------------------------------- dataset


@dataclass
class GlyphDataset:
    """Rendered characters, class by class: ``images`` float32 (N, size, size, 1) in [0, 1],
    ``labels`` int32 (N,) indexing ``chars``, ``fonts`` int32 (N,) indexing ``font_names``;
    ``train_classes`` and ``test_classes`` (unseen) are sorted, disjoint, and cover all."""

    images: np.ndarray
    labels: np.ndarray
    chars: list[str]
    fonts: np.ndarray
    font_names: list[str]
    train_classes: np.ndarray
    test_classes: np.ndarray

    @property
    def num_classes(self) -> int:
        return len(self.chars)

    def subset(self, classes: Iterable[int]) -> tuple[np.ndarray, np.ndarray]:
        """The samples of ``classes``: images ``(n, size, size, 1)`` float32 and their labels
        ``(n,)`` int32 (the original class indices, not renumbered)."""
        keep = np.isin(self.labels, np.fromiter(classes, dtype=np.int64))
        return self.images[keep], self.labels[keep]


def _split_classes(
    num_classes: int, unseen_fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) sorted class indices; ``round(unseen_fraction * C)`` are test."""
    if not 0.0 <= unseen_fraction <= 1.0:
        raise ValueError(f"unseen_fraction must be in [0, 1], got {unseen_fraction}")
    order = rng.permutation(num_classes)
    n_test = round(unseen_fraction * num_classes)
    return np.sort(order[n_test:]), np.sort(order[:n_test])


def _render_all(
    chars: Sequence[str], fonts: Sequence[Path], per_class: int, size: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Images ``(C*per_class, size, size)`` float32 and font indices ``(C*per_class,)``."""
    images = np.empty((len(chars) * per_class, size, size), dtype=np.float32)
    font_ids = np.empty(len(chars) * per_class, dtype=np.int32)
    for c, char in enumerate(chars):
        covering = _fonts_for(char, fonts)
        for k in range(per_class):
            i = c * per_class + k
            font_ids[i] = covering[int(rng.integers(len(covering)))]
            images[i] = render_glyph(char, fonts[font_ids[i]], rng, size)
    return images, font_ids


def make_glyph_dataset(
    per_class: int = 20,
    seed: int = 0,
    unseen_fraction: float = 0.25,
    size: int = 28,
    *,
    min_fonts: int = 4,
    max_classes: int = 200,
    cache_path: str | Path | None = None,
) -> GlyphDataset:
    """A `GlyphDataset` of ``per_class`` `render_glyph` samples of every `choose_characters`
    class, each from a random font that covers it.

    One ``seed`` gives bit-identical arrays (class split, then samples); ``round(
    unseen_fraction * C)`` classes are kept unseen. ``cache_path`` (an ``.npz``) is loaded
    when made with the same arguments, else written.
    """
    chars = choose_characters(min_fonts, max_classes)
    fonts = available_fonts()
    params = np.array([per_class, seed, size, min_fonts, max_classes], dtype=np.int64)
    if cache_path is not None:
        cached = _load(Path(cache_path), params, unseen_fraction, chars)
        if cached is not None:
            return cached
    rng = np.random.default_rng(seed)
    train, test = _split_classes(len(chars), unseen_fraction, rng)
    images, font_ids = _render_all(chars, fonts, per_class, size, rng)
    data = GlyphDataset(
        images=images[..., None],
        labels=np.repeat(np.arange(len(chars), dtype=np.int32), per_class),
        chars=chars,
        fonts=font_ids,
        font_names=[f.name for f in fonts],
        train_classes=train,
        test_classes=test,
    )
    if cache_path is not None:
        _save(Path(cache_path), data, params, unseen_fraction)
    return data


def _save(path: Path, data: GlyphDataset, params: np.ndarray, unseen_fraction: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        np.savez(
            f, images=data.images, labels=data.labels, chars=np.array(data.chars),
            fonts=data.fonts, font_names=np.array(data.font_names),
            train_classes=data.train_classes, test_classes=data.test_classes,
            params=params, unseen_fraction=np.float64(unseen_fraction),
        )


def _load(
    path: Path, params: np.ndarray, unseen_fraction: float, chars: Sequence[str]
) -> GlyphDataset | None:
    """The dataset cached at ``path`` if it was made with the same arguments, else None."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            same = (
                np.array_equal(z["params"], params)
                and float(z["unseen_fraction"]) == unseen_fraction
                and z["chars"].tolist() == list(chars)
            )
            if not same:
                return None
            return GlyphDataset(
                images=z["images"], labels=z["labels"], chars=z["chars"].tolist(),
                fonts=z["fonts"], font_names=z["font_names"].tolist(),
                train_classes=z["train_classes"], test_classes=z["test_classes"],
            )
    except (OSError, KeyError, ValueError):
        return None


def sample_grid(dataset: GlyphDataset, classes: Sequence[int], per_class: int) -> np.ndarray:
    """The first ``per_class`` samples of each of ``classes`` tiled one class per row, float32
    ``(len(classes) * size, per_class * size)``; missing tiles are black."""
    size = dataset.images.shape[1]
    grid = np.zeros((len(classes) * size, per_class * size), dtype=np.float32)
    for row, c in enumerate(classes):
        samples = dataset.images[dataset.labels == c][:per_class, ..., 0]
        for col, image in enumerate(samples):
            grid[row * size:(row + 1) * size, col * size:(col + 1) * size] = image
    return grid
