"""Convolutions beyond images: the same layer on 1D signals (ECG, EEG) and 3D volumes (CT, video).

A 2D ConvNet slides an f x f x n_c filter over an n x n x n_c image. Drop a spatial axis and
it slides an f x n_c filter along a signal (Conv1D); add one and it slides an f x f x f x n_c
filter through a volume (Conv3D). Every spatial axis obeys the same size formula

    n_out = floor((n + 2p - f) / s) + 1

and the number of output channels is the number of filters (`conv_output_shape`). Worked
examples: synthetic ECG windows (sinus rhythm versus AF-like) for a small Conv1D network,
blob volumes holding a thin tube or a ball of the same volume for a small Conv3D network,
matplotlib's real 4-channel EEG, and plots of signals, filter responses and slices.

All arrays are channels-last, like Keras: (N, length, channels) or (N, D, H, W, channels).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

import keras
import matplotlib.cbook
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

# (input shape, number of filters, kernel size, expected output shape), stride 1, no padding.
COURSE_SHAPE_EXERCISES: list[tuple[tuple[int, ...], int, int, tuple[int, ...]]] = [
    ((14, 1), 16, 5, (10, 16)),  # 1D: a 14-sample signal, 16 filters of size 5
    ((6, 6, 3), 2, 3, (4, 4, 2)),  # 2D: a 6x6 RGB image, 2 filters 3x3(x3)
    ((14, 14, 14, 1), 16, 5, (10, 10, 10, 16)),  # 3D: 16 filters 5x5x5(x1)
    ((32, 32, 32, 16), 32, 3, (30, 30, 30, 32)),  # 3D: 32 filters 3x3x3(x16)
]

PADDINGS = ("valid", "same")


# --------------------------------------------------------------------------- output shapes


def _per_axis(value: int | Sequence[int], n_dims: int, name: str) -> tuple[int, ...]:
    """``value`` as one positive int per spatial axis (an int is repeated)."""
    if isinstance(value, int | np.integer):
        values = (value,) * n_dims
    elif isinstance(value, Sequence):
        values = tuple(value)
    else:
        raise ValueError(f"{name}={value!r} must be positive integers: one, or one per axis")
    if len(values) != n_dims:
        raise ValueError(f"{name}={value!r} needs {n_dims} value(s), one per spatial axis, "
                         f"for a {n_dims}D input")
    if not all(isinstance(v, int | np.integer) and v > 0 for v in values):
        raise ValueError(f"{name}={value!r} must be positive integers")
    return tuple(int(v) for v in values)


def conv_output_shape(input_shape: Sequence[int], filters: int,
                      kernel_size: int | Sequence[int], strides: int | Sequence[int] = 1,
                      padding: str = "valid") -> tuple[int, ...]:
    """(n_1', ..., n_k', filters), n' = floor((n + 2p - f) / s) + 1 per spatial axis.

    ``input_shape`` is channels-last without batch: (n, c), (h, w, c) or (d, h, w, c).
    ``kernel_size`` (f) and ``strides`` (s) are an int or one per spatial axis; each filter
    spans all c input channels. ``padding``: "valid" (p = 0) or "same" (as Keras:
    n' = ceil(n / s)).
    """
    shape = tuple(input_shape)
    if not 2 <= len(shape) <= 4:
        raise ValueError(f"input_shape={shape!r} must be (n, c), (h, w, c) or (d, h, w, c): "
                         "channels last, without the batch axis")
    if not all(isinstance(v, int | np.integer) and v > 0 for v in shape):
        raise ValueError(f"input_shape={shape!r} must be positive integers")
    if not (isinstance(filters, int | np.integer) and filters > 0):
        raise ValueError(f"filters={filters!r} must be a positive integer")
    if padding not in PADDINGS:
        raise ValueError(f"padding={padding!r} must be one of {PADDINGS}")
    spatial = shape[:-1]
    kernel = _per_axis(kernel_size, len(spatial), "kernel_size")
    stride = _per_axis(strides, len(spatial), "strides")

    out = []
    for n, f, s in zip(spatial, kernel, stride, strict=True):
        if padding == "valid":
            if f > n:
                raise ValueError(f"kernel {f} is larger than the input ({n}) along an axis: "
                                 "with padding='valid' the filter must fit inside the input")
            p = 0
            out.append((n + 2 * p - f) // s + 1)
        else:  # "same": total padding max((ceil(n/s) - 1) s + f - n, 0), so n' = ceil(n / s)
            out.append(math.ceil(n / s))
    return (*out, int(filters))


# --------------------------------------------------------------------------- 1D: real EEG


EEG_CHANNELS = ("PG3", "PG5", "PG7", "PG9")
EEG_FS = 80.0  # Hz: 800 samples over the 10 s time axis of matplotlib's example


def load_eeg() -> tuple[np.ndarray, float]:
    """(signal (800, 4) float64, rate in Hz): matplotlib's standardised EEG excerpt.

    ``eeg.dat`` is 800 x 4 little-endian float64 with no header; matplotlib's "MRI with EEG"
    example plots it over 10 s, hence 80 Hz (`EEG_FS`), with the labels `EEG_CHANNELS`.
    """
    with matplotlib.cbook.get_sample_data("eeg.dat") as f:
        signal = np.frombuffer(f.read(), dtype="<f8").reshape(800, len(EEG_CHANNELS))
    return signal.copy(), EEG_FS


# --------------------------------------------------------------------------- 1D: synthetic ECG

# One heartbeat as a sum of Gaussians a * exp(-(t - mu)^2 / (2 sigma^2)), t in seconds from
# the R peak, amplitudes in mV (roughly lead II): (name, mu, sigma, a).
ECG_WAVES = (
    ("P", -0.160, 0.025, 0.15),
    ("Q", -0.028, 0.008, -0.12),
    ("R", 0.000, 0.010, 1.00),
    ("S", 0.028, 0.008, -0.25),
    ("T", 0.250, 0.040, 0.30),
)


def rr_intervals(n_beats: int, heart_rate: float = 72.0, irregular: bool = False,
                 rng: np.random.Generator | None = None) -> np.ndarray:
    """Seconds between successive beats, shape (n_beats,).

    Normal sinus rhythm: RR = 60 / heart_rate with about 3% beat-to-beat variability.
    Irregular (atrial-fibrillation-like) rhythm: each RR drawn independently from
    60 / heart_rate * U(0.6, 1.4), "irregularly irregular".
    """
    rng = rng if rng is not None else np.random.default_rng(0)
    mean_rr = 60.0 / heart_rate
    if irregular:
        return mean_rr * rng.uniform(0.6, 1.4, n_beats)
    return mean_rr * (1.0 + 0.03 * rng.standard_normal(n_beats))


def synthetic_ecg(n_beats: int, fs: float = 250.0, heart_rate: float = 72.0,
                  noise: float = 0.03, irregular: bool = False, seed: int = 0) -> np.ndarray:
    """A synthetic ECG-like trace (mV), float32 of shape (round(sum(RR) * fs),).

    Beats are the `ECG_WAVES` at R peaks spaced by `rr_intervals`, plus baseline wander
    (0.1 mV, 0.15-0.4 Hz) and white noise (``noise`` mV). ``irregular`` mimics atrial
    fibrillation: irregular RR, no P waves, and 0.05 mV "f waves" at 4-8 Hz.
    """
    rng = np.random.default_rng(seed)
    rr = rr_intervals(n_beats, heart_rate, irregular, rng)
    r_times = np.cumsum(rr) - rr[0] / 2  # first R peak half an interval in
    n_samples = round(rr.sum() * fs)
    t = np.arange(n_samples) / fs

    signal = np.zeros(n_samples)
    for name, mu, sigma, a in ECG_WAVES:
        if irregular and name == "P":
            continue
        dt = t[:, None] - (r_times[None, :] + mu)  # (n_samples, n_beats)
        signal += a * np.exp(-dt**2 / (2 * sigma**2)).sum(axis=1)
    if irregular:
        f_wave = rng.uniform(4.0, 8.0)
        signal += 0.05 * np.sin(2 * np.pi * f_wave * t + rng.uniform(0, 2 * np.pi))
    wander = rng.uniform(0.15, 0.4)
    signal += 0.1 * np.sin(2 * np.pi * wander * t + rng.uniform(0, 2 * np.pi))
    signal += noise * rng.standard_normal(n_samples)
    return signal.astype(np.float32)


def make_ecg_dataset(n: int, length: int = 750, seed: int = 0,
                     fs: float = 125.0) -> tuple[np.ndarray, np.ndarray]:
    """x (n, length, 1) float32 and balanced y (n,) int: 0 = sinus rhythm, 1 = AF-like.

    Windows are cut at a random phase from `synthetic_ecg` with rate U(55, 110) bpm, noise
    U(0.01, 0.06) mV and gain U(0.6, 1.4) for both classes, then standardised: only the
    missing P waves and uneven QRS spacing tell the classes apart.
    """
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.arange(n) % 2)
    x = np.empty((n, length, 1), np.float32)
    for i in range(n):
        heart_rate = rng.uniform(55.0, 110.0)
        n_beats = math.ceil(length / fs * heart_rate / 60.0 / 0.6) + 2  # covers the shortest RR
        ecg = synthetic_ecg(n_beats, fs, heart_rate, noise=rng.uniform(0.01, 0.06),
                            irregular=bool(y[i]), seed=int(rng.integers(2**31)))
        start = rng.integers(0, len(ecg) - length + 1)
        window = ecg[start:start + length] * rng.uniform(0.6, 1.4)
        x[i, :, 0] = (window - window.mean()) / (window.std() + 1e-6)
    return x, y.astype(np.int64)


def _conv_block(x: keras.KerasTensor, conv: type, filters: int, kernel_size: int,
                seed: int, name: str) -> keras.KerasTensor:
    """conv (no bias) -> batch norm -> ReLU; the block's output is the layer ``name``."""
    x = conv(filters, kernel_size, use_bias=False, name=f"{name}_conv",
             kernel_initializer=keras.initializers.HeNormal(seed=seed))(x)
    x = keras.layers.BatchNormalization(momentum=0.9, name=f"{name}_bn")(x)
    return keras.layers.ReLU(name=name)(x)


def _small_classifier(inputs: keras.KerasTensor, layers: tuple[type, type, type],
                      kernels: tuple[int, int, int], pool: int, seed: int,
                      name: str) -> keras.Model:
    """The shared shape of the 1D and 3D examples, whatever the number of axes:
    [conv(8) -> pool] -> [conv(16) -> pool] -> conv(16) -> global average -> Dense(1, sigmoid).
    ``layers`` = (conv, max pooling, global average pooling) classes of that dimension."""
    conv, max_pool, global_pool = layers
    x = _conv_block(inputs, conv, 8, kernels[0], seed * 10 + 1, "conv1")
    x = max_pool(pool, name="pool1")(x)
    x = _conv_block(x, conv, 16, kernels[1], seed * 10 + 2, "conv2")
    x = max_pool(pool, name="pool2")(x)
    x = _conv_block(x, conv, 16, kernels[2], seed * 10 + 3, "conv3")
    x = global_pool(name="gap")(x)
    outputs = keras.layers.Dense(1, activation="sigmoid", name="prob",
                                 kernel_initializer=keras.initializers.GlorotUniform(seed))(x)
    return keras.Model(inputs, outputs, name=name)


def build_conv1d_classifier(length: int, channels: int = 1, seed: int = 0) -> keras.Model:
    """A small 1D ConvNet: (N, length, channels) signals -> (N, 1) probability of class 1.

    [Conv1D(8, 7) -> MaxPool(4)] -> [Conv1D(16, 5) -> MaxPool(4)] -> Conv1D(16, 5)
    -> global average -> Dense(1, sigmoid); each conv is followed by batch norm and a ReLU
    named conv1, conv2, conv3, so `filter_responses` can look inside. At 125 Hz conv3 sees
    about 0.8 s of signal.
    """
    layers = (keras.layers.Conv1D, keras.layers.MaxPooling1D, keras.layers.GlobalAveragePooling1D)
    return _small_classifier(keras.Input((length, channels), name="signal"), layers,
                             kernels=(7, 5, 5), pool=4, seed=seed, name="conv1d_classifier")


def filter_responses(model: keras.Model, layer: str | int | keras.layers.Layer,
                     signal: np.ndarray) -> np.ndarray:
    """(length', filters): what each filter of ``layer`` (a layer, name or index) outputs
    along one (length,) or (length, channels) signal, length' as `conv_output_shape` predicts."""
    if isinstance(layer, str):
        layer = model.get_layer(layer)
    elif isinstance(layer, int):
        layer = model.layers[layer]
    signal = np.asarray(signal, np.float32)
    signal = signal[:, None] if signal.ndim == 1 else signal
    probe = keras.Model(model.input, layer.output)
    return keras.ops.convert_to_numpy(probe(signal[None], training=False))[0]


# --------------------------------------------------------------------------- 3D: volumes


def tube_mask(size: int, radius: float, rng: np.random.Generator) -> np.ndarray:
    """(size, size, size) bool: voxels within ``radius`` of a random line c + t u through
    the centre (offset up to size / 6); distance |(x - c) - ((x - c).u) u|."""
    u = rng.standard_normal(3)
    u /= np.linalg.norm(u)
    c = (size - 1) / 2 + rng.uniform(-size / 6, size / 6, 3)
    grid = np.stack(np.meshgrid(*(np.arange(size),) * 3, indexing="ij"), axis=-1) - c
    along = grid @ u
    distance = np.linalg.norm(grid - along[..., None] * u, axis=-1)
    return distance <= radius


def ball_mask(size: int, n_voxels: int, rng: np.random.Generator) -> np.ndarray:
    """A ball of about ``n_voxels`` voxels, (4/3) pi r^3 = n_voxels, at a random place inside
    a size^3 cube. Returns a (size, size, size) bool array."""
    r = (3 * n_voxels / (4 * np.pi)) ** (1 / 3)
    c = rng.uniform(r, size - 1 - r, 3)
    grid = np.stack(np.meshgrid(*(np.arange(size),) * 3, indexing="ij"), axis=-1)
    return np.linalg.norm(grid - c, axis=-1) <= r


def make_volume_dataset(n: int, size: int = 24, seed: int = 0,
                        tube_radius: float = 1.5) -> tuple[np.ndarray, np.ndarray]:
    """x (n, size, size, size, 1) float32 in {0, 1} and balanced y (n,) int, fixed by ``seed``.

    Blobs (``binary_blobs``, volume fraction U(0.05, 0.10)) plus, for class 1, a `tube_mask`
    of ``tube_radius``, for class 0 a `ball_mask` of as many voxels: voxel counts do not tell
    the classes apart, shape (long and thin versus compact, a 3D property) does.
    """
    import skimage.data

    rng = np.random.default_rng(seed)
    y = rng.permutation(np.arange(n) % 2)
    x = np.empty((n, size, size, size, 1), np.float32)
    for i in range(n):
        volume = skimage.data.binary_blobs(size, blob_size_fraction=0.1, n_dim=3,
                                           volume_fraction=rng.uniform(0.05, 0.10),
                                           rng=int(rng.integers(2**31)))
        tube = tube_mask(size, tube_radius, rng)
        extra = tube if y[i] else ball_mask(size, int(tube.sum()), rng)
        x[i, ..., 0] = volume | extra
    return x, y.astype(np.int64)


def build_conv3d_classifier(size: int, channels: int = 1, seed: int = 0) -> keras.Model:
    """A small 3D ConvNet: (N, size, size, size, channels) volumes -> (N, 1) P(class 1).

    [Conv3D(8, 3) -> MaxPool3D(2)] -> [Conv3D(16, 3) -> MaxPool3D(2)] -> Conv3D(16, 3)
    -> global average -> Dense(1, sigmoid); each conv followed by batch norm and a ReLU named
    conv1, conv2, conv3.
    """
    layers = (keras.layers.Conv3D, keras.layers.MaxPooling3D, keras.layers.GlobalAveragePooling3D)
    return _small_classifier(keras.Input((size, size, size, channels), name="volume"), layers,
                             kernels=(3, 3, 3), pool=2, seed=seed, name="conv3d_classifier")


# --------------------------------------------------------------------------- training


def train_small(model: keras.Model, x: np.ndarray, y: np.ndarray, epochs: int = 5,
                seed: int = 0, batch_size: int = 32, learning_rate: float = 1e-2,
                validation_data: tuple[np.ndarray, np.ndarray] | None = None,
                verbose: int = 0) -> keras.callbacks.History:
    """Compile ``model`` (Adam, binary cross-entropy, accuracy) and fit it on (x, y).

    The learning rate decays to 0 along a cosine (a calm last epoch); ``seed`` fixes the
    shuffling. The history gains "seconds": the wall-clock training time.
    """
    keras.utils.set_random_seed(seed)
    steps = epochs * math.ceil(len(x) / batch_size)
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=steps)
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss="binary_crossentropy",
                  metrics=["accuracy"])
    start = time.perf_counter()
    history = model.fit(x, y, batch_size=batch_size, epochs=epochs, shuffle=True,
                        validation_data=validation_data, verbose=verbose)
    history.history["seconds"] = [time.perf_counter() - start]
    return history


def accuracy(model: keras.Model, x: np.ndarray, y: np.ndarray) -> float:
    """Fraction of examples whose thresholded probability (> 0.5) matches the label."""
    p = model.predict(x, verbose=0)[:, 0]
    return float(np.mean((p > 0.5) == (np.asarray(y) == 1)))


# --------------------------------------------------------------------------- plots


def plot_signal(signal: np.ndarray, fs: float, title: str = "",
                channel_names: Sequence[str] | None = None) -> Figure:
    """A signal against time in seconds: (length,) or (length, channels), channels stacked."""
    signal = np.asarray(signal, float)
    signal = signal[:, None] if signal.ndim == 1 else signal
    t = np.arange(len(signal)) / fs
    n_channels = signal.shape[1]
    fig, axes = plt.subplots(n_channels, 1, figsize=(10, 1.0 + 1.4 * n_channels),
                             sharex=True, squeeze=False)
    for c, ax in enumerate(axes[:, 0]):
        ax.plot(t, signal[:, c], lw=0.8)
        if channel_names is not None:
            ax.set_ylabel(channel_names[c])
    axes[-1, 0].set_xlabel("time (s)")
    axes[0, 0].set_title(title)
    fig.tight_layout()
    return fig


def plot_filter_responses(signal: np.ndarray, responses: np.ndarray, fs: float | None = None,
                          max_filters: int = 8) -> Figure:
    """The signal on top, one filter's response (length', filters) per row below, each
    stretched over the signal's time axis (valid padding and pooling shorten it)."""
    signal = np.asarray(signal, float).reshape(len(signal), -1)[:, 0]
    responses = np.asarray(responses, float)
    k = min(max_filters, responses.shape[1])
    scale = fs if fs is not None else 1.0
    t = np.arange(len(signal)) / scale
    t_resp = np.linspace(0, t[-1], responses.shape[0])
    fig, axes = plt.subplots(k + 1, 1, figsize=(10, 1.0 + 0.9 * (k + 1)), sharex=True)
    axes[0].plot(t, signal, color="k", lw=0.8)
    axes[0].set_ylabel("input")
    for j in range(k):
        axes[j + 1].plot(t_resp, responses[:, j], color=f"C{j % 10}", lw=0.8)
        axes[j + 1].set_ylabel(f"filter {j}", rotation=0, ha="right", va="center")
        axes[j + 1].set_yticks([])
    axes[-1].set_xlabel("time (s)" if fs is not None else "sample")
    axes[0].set_title(f"responses of {k} of {responses.shape[1]} filters "
                      f"({responses.shape[0]} positions)")
    fig.tight_layout()
    return fig


def plot_volume_slices(volume: np.ndarray, n_slices: int = 6, title: str = "") -> Figure:
    """``n_slices`` evenly spaced axial slices of a (D, H, W) or (D, H, W, 1) volume."""
    volume = np.asarray(volume, float)
    volume = volume[..., 0] if volume.ndim == 4 else volume
    depth = volume.shape[0]
    picks = np.linspace(0, depth - 1, n_slices).round().astype(int)
    fig, axes = plt.subplots(1, n_slices, figsize=(1.9 * n_slices, 2.3), squeeze=False)
    for ax, z in zip(axes[0], picks, strict=True):
        ax.imshow(volume[z], cmap="gray", vmin=volume.min(), vmax=volume.max())
        ax.set_title(f"slice {z}")
        ax.axis("off")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
