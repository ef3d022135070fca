"""Convolutions in 1D, 2D and 3D: the output-size formula against Keras's own layers, the
signal and volume datasets, and small Conv1D / Conv3D classifiers learning them."""

import itertools

import keras
import numpy as np
import pytest
import scipy.signal
from matplotlib.figure import Figure

from nbutils.insight.conv_nd import (
    COURSE_SHAPE_EXERCISES,
    EEG_CHANNELS,
    accuracy,
    ball_mask,
    build_conv1d_classifier,
    build_conv3d_classifier,
    conv_output_shape,
    filter_responses,
    load_eeg,
    make_ecg_dataset,
    make_volume_dataset,
    plot_filter_responses,
    plot_signal,
    plot_volume_slices,
    synthetic_ecg,
    train_small,
    tube_mask,
)

CONV = {1: keras.layers.Conv1D, 2: keras.layers.Conv2D, 3: keras.layers.Conv3D}


def keras_output_shape(input_shape, filters, kernel_size, strides=1, padding="valid"):
    """What Keras's ConvND layer says its output shape is, batch axis dropped."""
    layer = CONV[len(input_shape) - 1](filters, kernel_size, strides=strides, padding=padding)
    return tuple(layer.compute_output_shape((None, *input_shape))[1:])


def keras_run_shape(input_shape, filters, kernel_size, strides=1, padding="valid"):
    """The shape of what Keras's ConvND layer actually returns for a zero input."""
    layer = CONV[len(input_shape) - 1](filters, kernel_size, strides=strides, padding=padding)
    return tuple(layer(np.zeros((1, *input_shape), np.float32)).shape[1:])


# --------------------------------------------------------------------------- output shapes

GRID_1D = list(itertools.product([(7, 1), (10, 3), (16, 2)], [1, 3, 5], [1, 2, 3],
                                 ["valid", "same"]))  # 54
GRID_2D = list(itertools.product([(6, 6, 3), (9, 7, 1)], [3, (2, 4)], [1, 2, (1, 3)],
                                 ["valid", "same"]))  # 24
GRID_3D = list(itertools.product([(5, 5, 5, 1), (8, 6, 7, 2)], [3, (1, 2, 3)], [1, 2],
                                 ["valid", "same"]))  # 16


@pytest.mark.parametrize("input_shape, kernel, strides, padding", GRID_1D + GRID_2D + GRID_3D)
def test_output_shape_matches_keras(input_shape, kernel, strides, padding):
    expected = keras_output_shape(input_shape, 4, kernel, strides, padding)
    assert conv_output_shape(input_shape, 4, kernel, strides, padding) == expected


@pytest.mark.parametrize("input_shape, kernel, strides, padding", [
    ((11, 2), 4, 3, "valid"), ((11, 2), 4, 3, "same"),
    ((9, 7, 3), (3, 2), (2, 3), "valid"), ((9, 7, 3), (3, 2), (2, 3), "same"),
    ((7, 8, 5, 1), 3, (2, 1, 3), "valid"), ((7, 8, 5, 1), 3, (2, 1, 3), "same"),
])
def test_output_shape_matches_a_real_forward_pass(input_shape, kernel, strides, padding):
    expected = keras_run_shape(input_shape, 5, kernel, strides, padding)
    assert conv_output_shape(input_shape, 5, kernel, strides, padding) == expected


@pytest.mark.parametrize("input_shape, filters, kernel, expected", COURSE_SHAPE_EXERCISES)
def test_course_exercises(input_shape, filters, kernel, expected):
    assert conv_output_shape(input_shape, filters, kernel) == expected
    assert keras_output_shape(input_shape, filters, kernel) == expected
    assert keras_run_shape(input_shape, filters, kernel) == expected


def test_course_exercises_are_the_courses():
    shapes = {(s, f, k): out for s, f, k, out in COURSE_SHAPE_EXERCISES}
    assert shapes[(14, 14, 14, 1), 16, 5] == (10, 10, 10, 16)
    assert shapes[(32, 32, 32, 16), 32, 3] == (30, 30, 30, 32)
    assert {len(s) - 1 for s, _, _ in shapes} == {1, 2, 3}


@pytest.mark.parametrize("n, f, s, padding, expected", [
    (7, 3, 2, "valid", 3),  # floor((7 - 3) / 2) + 1
    (7, 3, 2, "same", 4),  # ceil(7 / 2)
    (6, 3, 1, "valid", 4),
    (6, 3, 1, "same", 6),
    (5, 5, 1, "valid", 1),
    (10, 3, 3, "valid", 3),  # floor(7 / 3) + 1
    (10, 3, 3, "same", 4),
    (4, 7, 1, "same", 4),  # 'same' pads even a kernel larger than the input
])
def test_formula_by_hand(n, f, s, padding, expected):
    assert conv_output_shape((n, 1), 2, f, s, padding) == (expected, 2)
    assert conv_output_shape((n, n, 1), 2, f, s, padding) == (expected, expected, 2)


def test_anisotropic_kernel_and_stride_per_axis():
    # depth: (9 - 3)//1 + 1 = 7, height: (9 - 1)//2 + 1 = 5, width: (9 - 5)//4 + 1 = 2
    assert conv_output_shape((9, 9, 9, 2), 6, (3, 1, 5), (1, 2, 4)) == (7, 5, 2, 6)


@pytest.mark.parametrize("args, match", [
    (((5, 1), 2, 7), "larger than the input"),
    (((5, 5, 3), 2, (3, 3, 3)), "needs 2 value"),
    (((5, 5, 5, 1), 2, 3, (1, 2)), "needs 3 value"),
    (((5, 1), 2, 0), "positive"),
    (((5, 1), 2, 3, -1), "positive"),
    (((5, 1), 0, 3), "filters"),
    (((5, 0), 2, 3), "positive"),
    (((5,), 2, 3), "channels last"),
    (((2, 2, 2, 2, 1), 2, 1), "channels last"),
    (((5, 1), 2, 3, 1, "causal"), "padding"),
    (((5, 1), 2, 2.5), "positive integers"),
])
def test_bad_inputs_raise(args, match):
    with pytest.raises(ValueError, match=match):
        conv_output_shape(*args)


def test_kernel_larger_than_input_fails_in_keras_too():
    with pytest.raises(ValueError):
        keras_output_shape((5, 1), 2, 7)


# --------------------------------------------------------------------------- real EEG


def test_eeg_is_four_standardised_smooth_channels():
    signal, fs = load_eeg()
    assert signal.shape == (800, len(EEG_CHANNELS)) and fs == 80.0
    assert np.all(np.isfinite(signal))
    np.testing.assert_allclose(signal.mean(axis=0), 0.0, atol=1e-2)
    np.testing.assert_allclose(signal.std(axis=0), 1.0, atol=1e-2)
    # Read as (800, 4), neighbouring samples of a channel are strongly correlated; read the
    # other way round (4, 800) they would not be.
    for c in range(signal.shape[1]):
        assert np.corrcoef(signal[:-1, c], signal[1:, c])[0, 1] > 0.8
    wrong = signal.reshape(-1).reshape(4, 800)
    assert abs(np.corrcoef(wrong[0, :-1], wrong[0, 1:])[0, 1]) < 0.3


# --------------------------------------------------------------------------- synthetic ECG


def r_peaks(signal: np.ndarray, fs: float) -> np.ndarray:
    """R-peak times in seconds, found by scipy independently of how the ECG was built."""
    peaks, _ = scipy.signal.find_peaks(signal, height=0.6, distance=int(0.25 * fs))
    return peaks / fs


@pytest.mark.parametrize("heart_rate", [55.0, 72.0, 110.0])
def test_synthetic_ecg_beats_at_the_heart_rate(heart_rate):
    fs = 250.0
    signal = synthetic_ecg(20, fs=fs, heart_rate=heart_rate, noise=0.0, seed=3)
    peaks = r_peaks(signal, fs)
    assert len(peaks) == 20
    assert 60.0 / np.diff(peaks).mean() == pytest.approx(heart_rate, rel=0.05)
    assert len(signal) == pytest.approx(20 * 60.0 / heart_rate * fs, rel=0.05)


def test_irregular_rhythm_has_uneven_rr_and_no_p_waves():
    fs = 250.0
    normal = synthetic_ecg(30, fs=fs, noise=0.0, seed=1)
    irregular = synthetic_ecg(30, fs=fs, noise=0.0, irregular=True, seed=1)
    rr_n, rr_i = np.diff(r_peaks(normal, fs)), np.diff(r_peaks(irregular, fs))
    assert rr_n.std() / rr_n.mean() < 0.06 < 0.12 < rr_i.std() / rr_i.mean()

    def p_wave_height(signal):  # mean signal 0.14-0.18 s before each R peak, minus baseline
        idx = (r_peaks(signal, fs) * fs).astype(int)
        idx = idx[idx > int(0.3 * fs)]
        before = [signal[i - int(0.18 * fs):i - int(0.14 * fs)].mean() for i in idx]
        base = [signal[i - int(0.30 * fs):i - int(0.25 * fs)].mean() for i in idx]
        return np.mean(before) - np.mean(base)

    assert p_wave_height(normal) > 0.08 > 0.03 > abs(p_wave_height(irregular))


def test_ecg_dataset_is_deterministic_balanced_and_standardised():
    x, y = make_ecg_dataset(40, length=500, seed=7)
    x2, y2 = make_ecg_dataset(40, length=500, seed=7)
    x3, _ = make_ecg_dataset(40, length=500, seed=8)
    assert x.shape == (40, 500, 1) and x.dtype == np.float32 and y.shape == (40,)
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(y, y2)
    assert not np.allclose(x, x3)
    assert y.sum() == 20 and set(np.unique(y)) == {0, 1}
    np.testing.assert_allclose(x.mean(axis=1), 0.0, atol=1e-4)
    np.testing.assert_allclose(x.std(axis=1), 1.0, atol=1e-3)


@pytest.fixture(scope="module")
def ecg_model():
    x, y = make_ecg_dataset(400, seed=0)
    x_test, y_test = make_ecg_dataset(200, seed=1)
    model = build_conv1d_classifier(x.shape[1], seed=0)
    history = train_small(model, x, y, epochs=8, seed=0)
    return model, x_test, y_test, history


def test_conv1d_learns_normal_vs_irregular_rhythm(ecg_model):
    model, x_test, y_test, history = ecg_model
    assert history.history["accuracy"][-1] > 0.85
    assert accuracy(model, x_test, y_test) > 0.85  # held out, chance is 0.5


def test_accuracy_helper_against_a_hand_count():
    class Fixed(keras.Model):
        def call(self, x):
            return x[:, :1]

    x = np.array([[0.9], [0.2], [0.7], [0.4]], np.float32)
    assert accuracy(Fixed(), x, np.array([1, 0, 0, 1])) == 0.5
    assert accuracy(Fixed(), x, np.array([1, 0, 1, 0])) == 1.0


def test_filter_responses_shapes_follow_the_formula():
    length = 300
    model = build_conv1d_classifier(length)
    signal = make_ecg_dataset(2, length=length, seed=0)[0][0]
    shape1 = conv_output_shape((length, 1), 8, 7)
    shape2 = conv_output_shape((shape1[0] // 4, shape1[1]), 16, 5)  # after MaxPool(4)
    shape3 = conv_output_shape((shape2[0] // 4, shape2[1]), 16, 5)
    assert filter_responses(model, "conv1", signal).shape == shape1 == (294, 8)
    assert filter_responses(model, "conv2", signal[:, 0]).shape == shape2
    assert filter_responses(model, model.get_layer("conv3"), signal).shape == shape3


def test_filter_responses_are_the_first_layers_correlations():
    """Untrained conv1 = ReLU(BN(x * w)) with BN at its initial state: x / sqrt(1 + 1e-3)."""
    model = build_conv1d_classifier(200, seed=2)
    signal = np.random.default_rng(0).standard_normal(200).astype(np.float32)
    kernel = model.get_layer("conv1_conv").get_weights()[0]  # (7, 1, 8)
    expected = np.stack([np.correlate(signal, kernel[:, 0, j], mode="valid")
                         for j in range(kernel.shape[2])], axis=1)
    expected = np.maximum(expected / np.sqrt(1.0 + 1e-3), 0.0)
    np.testing.assert_allclose(filter_responses(model, "conv1", signal), expected,
                               rtol=1e-4, atol=1e-5)


# --------------------------------------------------------------------------- 3D volumes


def elongation(mask: np.ndarray) -> float:
    """Largest over second largest spread of the voxel coordinates (1 for a ball)."""
    coords = np.argwhere(mask).astype(float)
    eig = np.sort(np.linalg.eigvalsh(np.cov(coords.T)))[::-1]
    return float(eig[0] / eig[1])


def test_tube_is_long_and_thin_and_ball_is_round():
    rng = np.random.default_rng(0)
    for _ in range(5):
        tube = tube_mask(24, 1.5, rng)
        ball = ball_mask(24, int(tube.sum()), rng)
        assert elongation(tube) > 10 and elongation(ball) < 1.3
        assert ball.sum() == pytest.approx(tube.sum(), rel=0.2)
        # every tube voxel lies within radius 1.5 of the tube's principal axis
        coords = np.argwhere(tube).astype(float)
        centred = coords - coords.mean(axis=0)
        axis = np.linalg.eigh(np.cov(coords.T))[1][:, -1]
        distance = np.linalg.norm(centred - np.outer(centred @ axis, axis), axis=1)
        assert distance.max() <= 1.5 + 0.3


def test_volume_dataset_is_deterministic_balanced_and_binary():
    x, y = make_volume_dataset(20, size=16, seed=4)
    x2, y2 = make_volume_dataset(20, size=16, seed=4)
    x3, _ = make_volume_dataset(20, size=16, seed=5)
    assert x.shape == (20, 16, 16, 16, 1) and x.dtype == np.float32
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(y, y2)
    assert not np.array_equal(x, x3)
    assert y.sum() == 10
    assert set(np.unique(x)) == {0.0, 1.0}


def test_voxel_count_alone_does_not_tell_the_classes_apart():
    x, y = make_volume_dataset(200, seed=1)
    counts = x.sum(axis=(1, 2, 3, 4))
    best = max(max(np.mean((counts > t) == y), np.mean((counts <= t) == y))
               for t in np.unique(counts))
    assert best < 0.65  # even the best threshold, chosen on these very volumes


def test_conv3d_learns_tube_vs_ball():
    # 20-voxel volumes (the smallest the three valid 3x3x3 convolutions take comfortably):
    # the same task as the notebook's 24, at half the cost. Seeds 0-2 measured 0.84-0.90.
    x, y = make_volume_dataset(300, size=20, seed=0)
    x_test, y_test = make_volume_dataset(200, size=20, seed=1)
    model = build_conv3d_classifier(20, seed=0)
    train_small(model, x, y, epochs=8, seed=0)
    assert accuracy(model, x_test, y_test) > 0.8  # held out, chance is 0.5


def test_conv3d_classifier_shapes():
    model = build_conv3d_classifier(24)
    assert model.output_shape == (None, 1)
    conv1 = conv_output_shape((24, 24, 24, 1), 8, 3)
    conv2 = conv_output_shape(tuple(n // 2 for n in conv1[:3]) + (8,), 16, 3)
    assert model.get_layer("conv1").output.shape[1:] == conv1 == (22, 22, 22, 8)
    assert model.get_layer("conv2").output.shape[1:] == conv2 == (9, 9, 9, 16)


# --------------------------------------------------------------------------- plots


def test_plots_return_figures():
    signal, fs = load_eeg()
    fig = plot_signal(signal, fs, "EEG", EEG_CHANNELS)
    assert isinstance(fig, Figure) and len(fig.axes) == 4
    fig = plot_filter_responses(signal[:200, 0], np.zeros((190, 12)), fs, max_filters=5)
    assert isinstance(fig, Figure) and len(fig.axes) == 6
    fig = plot_volume_slices(np.zeros((10, 8, 8, 1)), n_slices=4)
    assert isinstance(fig, Figure) and len(fig.axes) == 4
