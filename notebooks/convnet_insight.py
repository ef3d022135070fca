# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # What deep ConvNets learn, 1D and 3D convolutions, and the week's quiz
#
# Three short stories that complete the week:
#
# 1. **What do the units of a deep ConvNet respond to?** (Zeiler & Fergus, 2013) Pick a unit,
#    find the nine image patches that excite it most, and repeat at every depth of VGG19:
#    edges and colours first, textures next, then parts of objects.
# 2. **Convolutions are not only for images**: 1D filters slide along signals (an ECG),
#    3D filters through volumes (CT scans, video).
# 3. **The week's quiz** as self-check cells.

# %%
# %config InlineBackend.figure_formats = ["jpeg"]
import numpy as np

from nbutils.insight.conv_nd import (
    COURSE_SHAPE_EXERCISES,
    accuracy,
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
    train_small,
)
from nbutils.insight.maximize import maximize_activation, plot_maximized
from nbutils.insight.patches import photo_collection, plot_top_patches, top_patches_per_unit
from nbutils.insight.quiz import check, score, show_question
from nbutils.insight.receptive import receptive_fields
from nbutils.settings import output_path
from nbutils.vgg19 import load_vgg19

# %% [markdown]
# ### Settings
#
# `PHOTO_SIZE` is the side of the photos searched for top patches, `MAX_STEPS` the gradient
# steps of activation maximisation, `TRAIN_EPOCHS` the training epochs of the 1D and 3D examples.
# The cell below is tagged `parameters`: the test suite runs the same cells small by
# overriding it with papermill (`nbutils/lab/presets/ci.yaml`).

# %% tags=["parameters"]
PHOTO_SIZE = 224
MAX_STEPS = 120
TRAIN_EPOCHS = 8

# %% [markdown]
# ## 1 - What units at each depth respond to
#
# ### 1.1 - Receptive fields
#
# A unit deep in the network sees a *window* of the input, its receptive field. It grows
# with every convolution and pooling: each 3 x 3 convolution adds two input steps, each 2 x 2
# pooling doubles the step. `receptive_fields` computes it from the layers' kernel sizes,
# strides and padding.

# %%
# NBVAL_CHECK_OUTPUT
vgg = load_vgg19()
LAYERS = ["block1_conv2", "block2_conv2", "block3_conv3", "block4_conv3", "block5_conv3"]
for layer in LAYERS:
    rf = receptive_fields(vgg, layer)
    print(f"{layer:13s} receptive field {rf.size[0]:3d} x {rf.size[1]:3d} px, step {rf.jump[0]:2d} px")

# %% [markdown]
# ### 1.2 - The nine patches that excite a unit most
#
# The photographs come from installed packages (scikit-image and matplotlib). For each unit,
# the nine strongest activations over all photos (at most one per neighbourhood) and the
# input windows behind them:

# %%
photos = photo_collection(size=PHOTO_SIZE)
print(len(photos), "photos:", ", ".join(name for name, _ in photos))
images = [image for _, image in photos]
UNITS = {"block1_conv2": [0, 7, 30], "block2_conv2": [3, 50, 90], "block3_conv3": [5, 60, 120],
         "block4_conv3": [10, 200, 400], "block5_conv3": [12, 150, 300]}
results = {layer: top_patches_per_unit(vgg, layer, units, images, k=9)
           for layer, units in UNITS.items()}
fig = plot_top_patches(results)
fig.savefig(output_path("convnet_top_patches.png"), dpi=90)

# %% [markdown]
# Shallow units respond to an edge orientation or a colour anywhere; deeper units to
# textures and repeated patterns; the deepest to larger structures (faces, wheels, text)
# in windows covering a good part of the photo.
#
# ### 1.3 - Activation maximisation
#
# Instead of searching photos, synthesise one: gradient **ascent** on the pixels of an input
# to maximise a unit's mean activation, with random jitter and a little blur at each step so
# the result stays readable (without them it turns into high-frequency noise).

# %%
MAX_UNITS = {"block1_conv2": [0, 30], "block2_conv2": [3, 90], "block3_conv3": [5, 120],
             "block4_conv3": [10, 400]}
maximised = {layer: {u: maximize_activation(vgg, layer, u, size=96, steps=MAX_STEPS)
                     for u in units}
             for layer, units in MAX_UNITS.items()}
fig = plot_maximized(maximised)
fig.savefig(output_path("convnet_maximized.png"), dpi=90)

# %% [markdown]
# ## 2 - Convolutions in 1D and 3D
#
# The output size of a convolution along each axis is
# $\left\lfloor \frac{n + 2p - f}{s} \right\rfloor + 1$ ("valid": $p = 0$), whatever the number of
# axes; the filter always spans all input channels, and there is one output channel per
# filter.

# %%
# NBVAL_CHECK_OUTPUT
for shape, filters, kernel, expected in COURSE_SHAPE_EXERCISES:
    out = conv_output_shape(shape, filters, kernel)
    print(f"{'x'.join(map(str, shape)):>12s} * {filters} filters of {kernel} -> "
          f"{'x'.join(map(str, out))}  (expected {'x'.join(map(str, expected))})")

# %% [markdown]
# ### 2.1 - 1D: signals
#
# A real signal first: matplotlib ships four EEG channels (800 samples).

# %%
eeg, fs = load_eeg()
plot_signal(eeg[:, 0], fs, title=f"EEG channel 1 ({fs:g} Hz)");

# %% [markdown]
# The course's example is an EKG. A labelled set: synthetic ECG windows, normal rhythm (0)
# vs an irregular, atrial-fibrillation-like rhythm without P waves (1). A small Conv1D
# network learns to tell them apart; its first filters respond to the sharp QRS complexes.

# %%
x, y = make_ecg_dataset(600, seed=0)
model = build_conv1d_classifier(x.shape[1])
train_small(model, x[:400], y[:400], epochs=TRAIN_EPOCHS, seed=0)
print(f"held-out accuracy: {accuracy(model, x[400:], y[400:]):.2f}")
plot_filter_responses(x[400, :, 0], filter_responses(model, "conv1", x[400]), fs=125.0);

# %% [markdown]
# ### 2.2 - 3D: volumes
#
# Volumes of random blobs (`skimage.data.binary_blobs` in 3D); class 1 contains a thin
# straight tube in a random direction, class 0 a ball of the same volume. A Conv3D network
# slides 3 x 3 x 3 filters through the whole volume.

# %%
volumes, labels = make_volume_dataset(600, size=24, seed=0)
plot_volume_slices(volumes[np.argmax(labels == 1)], title="class 1: blobs and a tube");
model3d = build_conv3d_classifier(24)
train_small(model3d, volumes[:400], labels[:400], epochs=TRAIN_EPOCHS, seed=0)
print(f"held-out accuracy: {accuracy(model3d, volumes[400:], labels[400:]):.2f}")

# %% [markdown]
# ## 3 - The week's quiz
#
# For each question: read it with `show_question(n)`, set `answer`, and run `check(n, answer)`.
# The checker says whether you are right and why. Below, the first question is answered as an
# example; the test suite checks the checker itself.

# %%
show_question(1);

# %%
# NBVAL_CHECK_OUTPUT
answer = True
check(1, answer)

# %%
for n in range(2, 11):
    show_question(n)
    print()

# %%
# NBVAL_CHECK_OUTPUT
my_answers = {1: True}   # add yours: {2: {...}, 3: ..., ..., 10: (...)}
right, total = score(my_answers)
print(f"{right} / {total}")
