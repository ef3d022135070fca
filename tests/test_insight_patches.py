"""Receptive fields, top patches and activation maximisation (nbutils.insight).

References are independent of the code under test: the gradient / perturbation footprint of
the real VGG19, values worked out by hand, planted pixels seen through hand-set weights,
SciPy's Gaussian filter and a naive greedy selection.
"""

from __future__ import annotations

import socket

import keras
import numpy as np
import pytest
import tensorflow as tf
from matplotlib.figure import Figure
from PIL import Image

from nbutils.insight.maximize import (
    gaussian_blur,
    initial_image,
    maximize_activation,
    plot_maximized,
)
from nbutils.insight.patches import (
    Patch,
    least_clipped,
    photo_collection,
    plot_top_patches,
    top_patches,
    top_patches_per_unit,
)
from nbutils.insight.receptive import (
    ReceptiveField,
    UnsupportedLayerError,
    input_window,
    receptive_fields,
)
from nbutils.vgg19 import load_vgg19

L = keras.layers


@pytest.fixture(scope="module")
def vgg() -> keras.Model:
    return load_vgg19()


@pytest.fixture(scope="module")
def noise64() -> np.ndarray:
    return np.random.default_rng(0).random((1, 64, 64, 3)).astype(np.float32)


def submodel(model: keras.Model, layer: str) -> keras.Model:
    return keras.Model(model.input, model.get_layer(layer).output)


def gradient_footprint(sub: keras.Model, x: np.ndarray, row: int, col: int
                       ) -> tuple[tuple[int, int, int, int], np.ndarray]:
    """Bounding box (top, left, bottom, right) of the input pixels whose gradient on
    sum_c out[row, col, c] is non-zero, and the (H, W) mask of those pixels."""
    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = tf.reduce_sum(sub(x)[0, row, col, :])
    mask = np.abs(tape.gradient(y, x).numpy()[0]).sum(-1) > 0
    rows, cols = np.nonzero(mask.any(1))[0], np.nonzero(mask.any(0))[0]
    box = (int(rows.min()), int(cols.min()), int(rows.max()) + 1, int(cols.max()) + 1)
    return box, mask


def windows_containing(rf: ReceptiveField, grid: tuple[int, int], pixel: tuple[int, int],
                       image_shape: tuple[int, int]) -> np.ndarray:
    expected = np.zeros(grid, bool)
    for r in range(grid[0]):
        for c in range(grid[1]):
            top, left, bottom, right = input_window(rf, r, c, image_shape)
            expected[r, c] = top <= pixel[0] < bottom and left <= pixel[1] < right
    return expected


# ----------------------------------------------------------------------- receptive fields


@pytest.mark.slow
@pytest.mark.parametrize("layer", ["block1_conv2", "block2_conv1", "block3_conv1"])
def test_vgg_receptive_field_is_the_gradient_footprint(vgg, noise64, layer):
    sub = submodel(vgg, layer)
    rf = receptive_fields(vgg, layer)
    h, w = sub(noise64).shape[1:3]
    for row, col in [(h // 2, w // 2), (h // 2 - 1, w // 2 + 2)]:  # interior positions
        window = input_window(rf, row, col, (64, 64))
        assert 0 < window[0] and window[2] < 64 and 0 < window[1] and window[3] < 64
        box, mask = gradient_footprint(sub, noise64, row, col)
        assert box == window
        assert mask[box[0]:box[2], box[1]:box[3]].all()  # every pixel inside counts
        assert (window[2] - window[0], window[3] - window[1]) == rf.size


@pytest.mark.slow
@pytest.mark.parametrize("layer", ["block2_pool", "block3_conv1"])
def test_vgg_perturbing_one_pixel_changes_exactly_the_windows_holding_it(vgg, noise64, layer):
    sub = submodel(vgg, layer)
    rf = receptive_fields(vgg, layer)
    before = sub(noise64).numpy()[0]
    for pixel in [(30, 33), (5, 60)]:
        x = noise64.copy()
        x[0, pixel[0], pixel[1]] = 1.0 - x[0, pixel[0], pixel[1]]
        changed = np.abs(sub(x).numpy()[0] - before).max(-1) > 0
        expected = windows_containing(rf, before.shape[:2], pixel, (64, 64))
        assert expected.sum() >= 4
        np.testing.assert_array_equal(changed, expected)


@pytest.mark.slow
def test_vgg_fields_match_the_published_numbers(vgg):
    # Sizes from the recurrence, checked against the usual table for VGG (3x3 convs, 2x2 pools).
    assert receptive_fields(vgg, "block1_conv1") == ReceptiveField((3, 3), (1, 1), (0.0, 0.0))
    assert receptive_fields(vgg, "block3_conv1") == ReceptiveField((24, 24), (4, 4), (1.5, 1.5))
    assert receptive_fields(vgg, "block5_conv4").size == (252, 252)
    assert receptive_fields(vgg, "block5_pool") == ReceptiveField(
        (268, 268), (32, 32), (15.5, 15.5))


def tiny_chain(pool: type = L.MaxPooling2D) -> keras.Model:
    inputs = keras.Input((32, 32, 3))
    x = L.Conv2D(2, 3, padding="valid", name="c1")(inputs)
    x = L.ReLU(name="relu")(x)
    x = L.Conv2D(2, 3, strides=2, padding="valid", name="c2")(x)
    x = L.BatchNormalization(name="bn")(x)
    x = pool(2, name="pool")(x)
    x = L.Dropout(0.1, name="drop")(x)
    return keras.Model(inputs, x)


def test_tiny_model_fields_by_hand():
    model = tiny_chain()
    # c1: k3 s1 valid -> size 3, jump 1, start 0 + (1 - 0) * 1 = 1
    assert receptive_fields(model, "c1") == ReceptiveField((3, 3), (1, 1), (1.0, 1.0))
    assert receptive_fields(model, "relu") == receptive_fields(model, "c1")
    # c2: k3 s2 valid -> size 3 + 2 * 1 = 5, jump 2, start 1 + 1 * 1 = 2
    assert receptive_fields(model, "c2") == ReceptiveField((5, 5), (2, 2), (2.0, 2.0))
    # pool: k2 s2 -> size 5 + 1 * 2 = 7, jump 4, start 2 + 0.5 * 2 = 3
    assert receptive_fields(model, "pool") == ReceptiveField((7, 7), (4, 4), (3.0, 3.0))
    assert receptive_fields(model, "drop") == receptive_fields(model, "pool")
    rf = receptive_fields(model, "pool")
    assert input_window(rf, 0, 0, (32, 32)) == (0, 0, 7, 7)  # pool (0,0) <- c2 0..1 <- in 0..6
    assert input_window(rf, 1, 2, (32, 32)) == (4, 8, 11, 15)
    assert input_window(rf, 7, 0, (30, 32, 3)) == (28, 0, 30, 7)  # clipped at the bottom


def test_tiny_model_field_is_the_gradient_footprint():
    # Average pooling: the same field as max pooling, but its gradient reaches every input
    # of the window (a max pool's reaches only the argmax of each of its 2 channels).
    model = tiny_chain(L.AveragePooling2D)
    for layer in model.layers[1:]:
        layer.set_weights([np.abs(w) + 0.1 for w in layer.get_weights()])  # all paths live
    rf = receptive_fields(model, "pool")
    x = np.random.default_rng(1).random((1, 32, 32, 3)).astype(np.float32)
    for row, col in [(0, 0), (3, 5), (6, 6)]:
        box, _ = gradient_footprint(model, x, row, col)
        assert box == input_window(rf, row, col, (32, 32))


@pytest.mark.parametrize("n, start", [(32, 1.0), (33, 0.0)])
def test_same_stride_2_pads_as_tensorflow_does(n, start):
    # k3 s2 'same': n even -> pad_total max(3-2, 0) = 1, pad_before 0: start = 0 + (1 - 0) = 1;
    # n odd -> pad_total max(3-1, 0) = 2, pad_before 1: start = 0 + (1 - 1) = 0.
    inputs = keras.Input((None, None, 3))
    outputs = L.Conv2D(1, 3, strides=2, padding="same", name="c", kernel_initializer="ones")(
        inputs)
    model = keras.Model(inputs, outputs)
    rf = receptive_fields(model, "c", input_size=(n, n))
    assert rf == ReceptiveField((3, 3), (2, 2), (start, start))
    x = np.random.default_rng(2).random((1, n, n, 3)).astype(np.float32)
    for row in (1, 5):
        assert gradient_footprint(model, x, row, row)[0] == input_window(rf, row, row, (n, n))
    with pytest.raises(UnsupportedLayerError, match="input_size"):
        receptive_fields(model, "c")  # the padding depends on n, which the model leaves open


def test_same_padding_that_does_not_depend_on_size_needs_no_input_size():
    inputs = keras.Input((None, None, 3))
    x = L.Conv2D(1, 4, strides=2, padding="same", name="k4s2")(inputs)  # pad_before 1 always
    model = keras.Model(inputs, x)
    assert receptive_fields(model, "k4s2") == ReceptiveField((4, 4), (2, 2), (0.5, 0.5))


def test_zero_padding_then_valid_equals_same():
    inputs = keras.Input((16, 16, 3))
    a = L.Conv2D(1, 5, padding="same", name="same")(inputs)
    b = L.ZeroPadding2D(2)(inputs)
    b = L.Conv2D(1, 5, padding="valid", name="valid")(b)
    model = keras.Model(inputs, [a, b])
    assert receptive_fields(model, "same") == receptive_fields(model, "valid")
    assert receptive_fields(model, "same").start == (0.0, 0.0)


def test_sequential_models_are_walked_too():
    model = keras.Sequential([keras.Input((20, 20, 3)), L.Conv2D(1, 3, name="a"),
                              L.AveragePooling2D(3, name="b")])
    assert receptive_fields(model, "b") == ReceptiveField((5, 5), (3, 3), (2.0, 2.0))


def test_unsupported_layers_raise_clear_errors():
    inputs = keras.Input((16, 16, 3))
    dilated = L.Conv2D(1, 3, dilation_rate=2, name="dilated")(inputs)
    flat = L.Flatten(name="flat")(inputs)
    added = L.Add(name="add")([L.Conv2D(3, 1)(inputs), inputs])
    model = keras.Model(inputs, [dilated, flat, added])
    with pytest.raises(UnsupportedLayerError, match="dilat"):
        receptive_fields(model, "dilated")
    with pytest.raises(UnsupportedLayerError, match="Flatten"):
        receptive_fields(model, "flat")
    with pytest.raises(UnsupportedLayerError, match="several inputs"):
        receptive_fields(model, "add")
    with pytest.raises(ValueError, match="no layer named"):
        receptive_fields(model, "nope")


def test_least_clipped_keeps_inside_windows_or_the_middle():
    rf = ReceptiveField((3, 3), (1, 1), (0.0, 0.0))  # a 3x3 'same' conv
    mask = least_clipped(rf, (5, 6), (5, 6))
    assert mask.sum() == 3 * 4 and mask[1:4, 1:5].all()
    big = ReceptiveField((10, 10), (4, 4), (1.5, 1.5))  # larger than an 8x8 image
    mask = least_clipped(big, (2, 2), (8, 8))  # windows -3..7 and 1..11: both stick out 3
    assert mask.all()


# ----------------------------------------------------------------------- top patches


def red_copier(kernel_size: int, neighbour_weight: float = 0.0) -> keras.Model:
    """One Conv2D, no bias: the red channel at the centre tap, ``neighbour_weight`` on the
    red channel of the other taps."""
    inputs = keras.Input((None, None, 3))
    conv = L.Conv2D(1, kernel_size, padding="same", use_bias=False, name="red")
    model = keras.Model(inputs, conv(inputs))
    kernel = np.zeros((kernel_size, kernel_size, 3, 1), np.float32)
    kernel[:, :, 0, 0] = neighbour_weight
    kernel[kernel_size // 2, kernel_size // 2, 0, 0] = 1.0
    conv.set_weights([kernel])
    return model


def planted(shape, spots) -> np.ndarray:
    image = np.zeros(shape, np.float32)
    for (r, c, channel), value in spots.items():
        image[r, c, channel] = value
    return image


def test_top_patches_finds_the_planted_red_spots_in_order():
    images = [
        planted((12, 12, 3), {(3, 4, 0): 0.9, (3, 5, 0): 0.8, (8, 8, 1): 1.0}),  # green: ignored
        planted((12, 12, 3), {(10, 2, 0): 0.7, (6, 6, 0): 0.6}),
        planted((12, 12, 3), {(0, 11, 0): 0.95}),
    ]
    model = red_copier(1)
    patches = top_patches(model, "red", 0, images, k=4, min_distance=1)
    expected = [(0.95, 2, (0, 11)), (0.9, 0, (3, 4)), (0.7, 1, (10, 2)), (0.6, 1, (6, 6))]
    got = [(p.activation, p.image_index, p.position) for p in patches]
    assert got == [(float(np.float32(v)), n, pos) for v, n, pos in expected]  # 0.8 suppressed
    for p in patches:
        r, c = p.position
        assert p.window == (r, c, r + 1, c + 1)
        np.testing.assert_array_equal(p.crop, images[p.image_index][r:r + 1, c:c + 1])
    no_nms = top_patches(model, "red", 0, np.stack(images), k=4, min_distance=0)
    assert [(p.image_index, p.position) for p in no_nms] == [(2, (0, 11)), (0, (3, 4)),
                                                            (0, (3, 5)), (1, (10, 2))]


def test_top_patches_3x3_windows_and_the_border_rule():
    images = [
        planted((16, 16, 3), {(5, 6, 0): 0.9, (0, 8, 0): 1.0}),  # 1.0 on the top row
        planted((16, 16, 3), {(9, 9, 0): 0.8}),
    ]
    model = red_copier(3, neighbour_weight=0.1)
    patches = top_patches(model, "red", 0, images, k=2)  # default: avoid the border
    assert [(p.image_index, p.position) for p in patches] == [(0, (5, 6)), (1, (9, 9))]
    assert [p.activation for p in patches] == pytest.approx([0.9, 0.8], rel=1e-6)
    assert patches[0].window == (4, 5, 7, 8)
    np.testing.assert_array_equal(patches[0].crop, images[0][4:7, 5:8])
    everywhere = top_patches(model, "red", 0, images, k=3, avoid_border=False)
    first = everywhere[0]
    assert (first.position, first.window) == ((0, 8), (0, 7, 2, 10))
    assert first.activation == pytest.approx(1.0, rel=1e-6)
    assert first.crop.shape == (2, 3, 3)
    # default min_distance for a 3x3 field is 1: the 0.1 neighbours of (0, 8) are suppressed
    assert [p.position for p in everywhere[1:]] == [(5, 6), (9, 9)]


def naive_greedy(maps: np.ndarray, k: int, d: int) -> list[tuple[int, int, int]]:
    order = sorted(np.ndindex(maps.shape), key=lambda i: -maps[i])
    picks: list[tuple[int, int, int]] = []
    for n, r, c in order:
        if all(n != m or max(abs(r - pr), abs(c - pc)) > d for m, pr, pc in picks):
            picks.append((n, r, c))
        if len(picks) == k:
            break
    return picks


@pytest.mark.parametrize("min_distance", [0, 2])
def test_top_patches_equals_a_naive_greedy_search(min_distance):
    rng = np.random.default_rng(3)
    inputs = keras.Input((None, None, 3))
    x = L.Conv2D(4, 3, activation="relu", name="c1")(inputs)
    x = L.MaxPooling2D(2, name="p1")(x)
    x = L.Conv2D(3, 3, padding="same", name="c2")(x)
    model = keras.Model(inputs, x)
    model.set_weights([rng.normal(size=w.shape).astype(np.float32) for w in model.get_weights()])
    images = rng.random((5, 22, 22, 3)).astype(np.float32)
    maps = keras.ops.convert_to_numpy(submodel(model, "c2")(images))[..., 1]
    results = top_patches_per_unit(model, "c2", [1, 2], images, k=7, min_distance=min_distance,
                                   avoid_border=False, batch_size=2)
    patches = results[1]
    picks = naive_greedy(maps, 7, min_distance)
    assert [(p.image_index, *p.position) for p in patches] == picks
    np.testing.assert_allclose([p.activation for p in patches], [maps[i] for i in picks],
                               rtol=1e-5)
    rf = receptive_fields(model, "c2")
    for p in patches:
        assert p.window == input_window(rf, *p.position, images.shape[1:])
    assert len(results[2]) == 7
    assert [p.activation for p in results[2]] != [p.activation for p in patches]


def test_top_patches_on_a_sequential_model():
    model = keras.Sequential([keras.Input((None, None, 3)), L.Conv2D(1, 1, use_bias=False,
                                                                     name="red")])
    model.get_layer("red").set_weights([np.array([1, 0, 0], np.float32).reshape(1, 1, 3, 1)])
    image = planted((6, 6, 3), {(2, 3, 0): 0.5})
    assert top_patches(model, "red", 0, [image], k=1)[0].position == (2, 3)


def test_top_patches_rejects_a_missing_unit():
    with pytest.raises(ValueError, match="1 channels"):
        top_patches(red_copier(1), "red", 1, [np.zeros((4, 4, 3), np.float32)])


@pytest.mark.slow
def test_vgg_top_patches_avoid_the_padded_border(vgg):
    images = [im for _, im in photo_collection(size=64)[:4]]
    patches = top_patches(vgg, "block2_conv1", 7, images, k=5)
    rf = receptive_fields(vgg, "block2_conv1")
    assert [p.activation for p in patches] == sorted((p.activation for p in patches),
                                                     reverse=True)
    for p in patches:  # whole windows only, so no patch sees the zero padding
        assert p.crop.shape == (*rf.size, 3)


# ----------------------------------------------------------------------- photos


def test_photo_collection_offline(monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("photo_collection tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    photos = photo_collection(size=48)
    names = [name for name, _ in photos]
    assert len(photos) >= 15
    assert names == sorted(names) and len(set(names)) == len(names)
    assert {"astronaut", "coffee", "chelsea", "grace_hopper"} <= set(names)
    for _, image in photos:
        assert image.shape == (48, 48, 3) and image.dtype == np.float32
        assert np.isfinite(image).all() and image.min() >= 0 and image.max() <= 1
    camera = dict(photos)["camera"]  # grayscale -> three equal channels
    np.testing.assert_array_equal(camera[..., 0], camera[..., 2])
    assert [n for n, _ in photo_collection(size=48)] == names


def test_photo_collection_adds_a_folder_resized_and_centre_cropped(tmp_path):
    stripes = np.zeros((20, 40, 3), np.uint8)
    stripes[:, :20] = (255, 0, 0)
    stripes[:, 20:] = (0, 0, 255)
    Image.fromarray(stripes).save(tmp_path / "stripes.png")
    (tmp_path / "notes.txt").write_text("not an image")
    photos = photo_collection(tmp_path, size=10)
    name, image = photos[-1]
    assert name == "stripes" and image.shape == (10, 10, 3)
    assert len(photos) == len(photo_collection(size=10)) + 1
    # 20x40 -> 10x20, centre crop = columns 5..14: left half red, right half blue
    np.testing.assert_allclose(image[:, :3], np.broadcast_to([1, 0, 0], (10, 3, 3)), atol=0.02)
    np.testing.assert_allclose(image[:, -3:], np.broadcast_to([0, 0, 1], (10, 3, 3)), atol=0.02)


# ----------------------------------------------------------------------- maximisation


@pytest.mark.parametrize("sigma", [0.5, 1.0])
def test_gaussian_blur_matches_scipy(sigma):
    from scipy.ndimage import gaussian_filter

    image = np.random.default_rng(4).random((1, 12, 13, 3)).astype(np.float32)
    radius = int(np.ceil(3 * sigma))
    expected = gaussian_filter(image, sigma=(0, sigma, sigma, 0), mode="mirror",
                               truncate=radius / sigma)
    np.testing.assert_allclose(gaussian_blur(image, sigma).numpy(), expected, atol=1e-6)


def mean_activation(model: keras.Model, layer: str, unit: int, image: np.ndarray) -> float:
    return float(np.mean(submodel(model, layer)(image[np.newaxis])[..., unit]))


@pytest.mark.slow
@pytest.mark.parametrize("layer, unit, factor", [
    ("block1_conv1", 7, 2.5),   # bounded: a linear 3x3 filter on pixels in [0, 1]
    ("block2_conv1", 78, 20.0),
    ("block2_conv1", 39, 100.0),  # silent on the start image: woken via its pre-activation
])
def test_maximize_raises_the_activation(vgg, layer, unit, factor):
    image, history = maximize_activation(vgg, layer, unit, size=64, steps=20,
                                         return_history=True)
    start = mean_activation(vgg, layer, unit, initial_image(64, seed=0))
    end = mean_activation(vgg, layer, unit, image)
    assert end > factor * start and end > 0.5
    assert history[-1] > history[0]
    assert image.shape == (64, 64, 3) and image.dtype == np.float32
    assert image.min() >= 0.0 and image.max() <= 1.0


def test_maximize_wakes_a_silent_unit_by_hand():
    # relu(0.2 - red): silent on the grey start (red ~ 0.5); the best image has red = 0,
    # where the unit gives 0.2 everywhere. Only the pre-activation's gradient leads there.
    inputs = keras.Input((None, None, 3))
    conv = L.Conv2D(1, 1, activation="relu", name="anti_red")
    model = keras.Model(inputs, L.MaxPooling2D(2, name="pool")(conv(inputs)))
    conv.set_weights([np.array([-1, 0, 0], np.float32).reshape(1, 1, 3, 1),
                      np.array([0.2], np.float32)])
    assert mean_activation(model, "anti_red", 0, initial_image(16)) == 0.0
    image, history = maximize_activation(model, "anti_red", 0, size=16, steps=30, jitter=2,
                                         return_history=True)
    assert history[0] == 0.0
    assert mean_activation(model, "anti_red", 0, image) == pytest.approx(0.2, abs=1e-3)
    np.testing.assert_allclose(image[..., 0], 0.0, atol=1e-3)
    # A layer without a pre-activation (the pool) has nothing to fall back on: a silent
    # unit gives no gradient and the image stays grey...
    stuck = maximize_activation(model, "pool", 0, size=16, steps=10, jitter=2)
    assert mean_activation(model, "pool", 0, stuck) == 0.0
    # ...while a live one is climbed directly: relu(red) pooled -> red goes to 1.
    conv.set_weights([np.array([1, 0, 0], np.float32).reshape(1, 1, 3, 1),
                      np.array([0.0], np.float32)])
    pooled = maximize_activation(model, "pool", 0, size=16, steps=30, jitter=2)
    assert mean_activation(model, "pool", 0, pooled) > 0.99


@pytest.mark.slow
def test_maximize_is_deterministic_for_a_seed(vgg):
    a = maximize_activation(vgg, "block2_conv1", 10, size=32, steps=6, seed=1)
    b = maximize_activation(vgg, "block2_conv1", 10, size=32, steps=6, seed=1)
    c = maximize_activation(vgg, "block2_conv1", 10, size=32, steps=6, seed=2)
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 0.05


# ----------------------------------------------------------------------- plots


def fake_patch(side: int, colour: float, cut_left: bool = False) -> Patch:
    """A constant crop; with ``cut_left`` only its right half, as at the image's left edge."""
    width = side // 2 if cut_left else side
    left = 0 if cut_left else 5
    return Patch(np.full((side, width, 3), colour, np.float32), colour, 0, (0, 0),
                 (5, left, 5 + side, left + width))


def titles(fig: Figure) -> list[str]:
    return [ax.get_title() for ax in fig.axes]


def test_plot_top_patches_one_row_of_grids_per_layer():
    results = {
        "block1_conv1": {3: [fake_patch(3, 0.2)] * 9, 7: [fake_patch(3, 0.8)] * 9},
        "block5_conv1": {1: [fake_patch(40, 0.9, cut_left=True)] * 9},
    }
    fig = plot_top_patches(results, tile=12)
    assert titles(fig) == ["block1_conv1 / unit 3", "block1_conv1 / unit 7",
                           "block5_conv1 / unit 1", ""]
    mosaic = fig.axes[0].get_images()[0].get_array()
    assert mosaic.shape[:2] == (3 * 12 + 2 * 2, 3 * 12 + 2 * 2)  # 3x3 tiles, 2 px gaps
    clipped = fig.axes[2].get_images()[0].get_array()
    assert np.allclose(clipped[:12, :5], 0.5, atol=0.01)  # grey pads the cut-off left side
    assert np.allclose(clipped[:12, 7:12], 0.9, atol=0.01)


def test_plot_maximized_grid():
    images = {"a": {0: np.zeros((8, 8, 3)), 1: np.ones((8, 8, 3))}, "b": {5: np.ones((8, 8, 3))}}
    assert titles(plot_maximized(images)) == ["a / unit 0", "a / unit 1", "b / unit 5", ""]
