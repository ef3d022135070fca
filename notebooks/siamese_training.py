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
# # Training a Siamese encoder with the triplet loss
#
# The face-recognition notebook *uses* an encoder trained on millions of faces. Here we
# *train* one, on a CPU, in minutes, to see what the course describes:
#
# - triplets (anchor A, positive P, negative N) and the margin $\alpha$;
# - why **random triplets stop teaching**: most are already satisfied ($d(A,P) + \alpha <
#   d(A,N)$), their loss is 0 and so is their gradient; **hard triplets**, where $d(A,P)
#   \approx d(A,N)$, keep the encoder learning;
# - **one-shot learning**: classes never seen in training are recognised from one example;
# - **verification as binary classification**: a logistic unit on $|f(x_i) - f(x_j)|$ or the
#   chi-square similarity.
#
# Thousands of identities cannot be downloaded here, so the project renders an
# Omniglot-like dataset instead: each **class is a character**, "drawn" by a dozen fonts
# that matplotlib ships, each rendering randomly sized, shifted and rotated (28 x 28).
# A quarter of the classes are kept **unseen** for the one-shot test.

# %%
# %config InlineBackend.figure_formats = ["jpeg"]
import numpy as np
import tensorflow as tf

from nbutils.extras.glyphs import make_glyph_dataset, sample_grid
from nbutils.plots import plot_embedding_2d, plot_training_curves, show_images
from nbutils.settings import output_path
from nbutils.siamese.evaluate import one_shot_table, pca_project
from nbutils.siamese.mining import MINING_STRATEGIES
from nbutils.siamese.model import embed, train_encoder
from nbutils.siamese.verification import (
    accuracy_at,
    auc,
    distance_roc,
    equal_error_rate,
    make_pairs,
    pair_features,
    pick_threshold,
    plot_roc,
    roc_curve,
    train_logistic_head,
)

# %% [markdown]
# ### Settings
#
# `STEPS` training steps per encoder (64 images each; `benchmarks/one_shot.py` uses 1500),
# `PER_CLASS` renderings per character,
# `EPISODES` one-shot episodes per score. The two training cells are the long ones: at the
# defaults, on this project's 2-core CPU, each prints its epochs as they pass, 30 to 42 s
# each. The test suite runs the same cells small by overriding this `parameters` cell with
# papermill (`nbutils/lab/presets/ci.yaml`).

# %% tags=["parameters"]
STEPS = 1000
PER_CLASS = 20
EPISODES = 2000

# %% [markdown]
# ## 1 - The dataset

# %%
# NBVAL_CHECK_OUTPUT
data = make_glyph_dataset(per_class=PER_CLASS, seed=0)
print("classes:", data.num_classes, "| seen in training:", len(data.train_classes),
      "| unseen:", len(data.test_classes))
print("fonts:", len(data.font_names))
print("unseen and seen classes overlap:", bool(set(data.train_classes) & set(data.test_classes)))

# %%
rows = list(data.train_classes[:6]) + list(data.test_classes[:4])
show_images([sample_grid(data, rows, min(PER_CLASS, 12))], ["6 seen classes, then 4 unseen"],
            size=7);
print("characters:", " ".join(data.chars[c] for c in rows))

# %% [markdown]
# ## 2 - Triplet mining
#
# Training draws **P x K batches**: P classes, K renderings of each (here 16 x 4). Inside a
# batch there are many valid triplets; which ones to learn from?
#
# - **random** (the baseline): (A, P, N) sampled at random, offline;
# - **batch all**: every valid triplet in the batch, averaging the ones still active;
# - **batch hard**: for each anchor, its farthest positive and its closest negative;
# - **semi-hard** (FaceNet): a negative farther than the positive but within the margin.
#
# Each uses the course's term $\max(\lVert f(A)-f(P)\rVert^2 - \lVert f(A)-f(N)\rVert^2 +
# \alpha, 0)$ and reports the **active fraction**, the share of its triplets whose loss is
# still above zero. A tiny batch, computed by hand: four points on a line, two classes.

# %%
# NBVAL_CHECK_OUTPUT
labels = tf.constant([0, 0, 1, 1])
points = tf.constant([[0.0], [0.3], [0.5], [1.2]])
for name, loss_fn in MINING_STRATEGIES.items():
    loss, active = loss_fn(labels, points, alpha=0.2)
    print(f"{name:10s} loss {float(loss):.4f}  active fraction {float(active):.3f}")

# %% [markdown]
# ## 3 - Random triplets vs hard mining
#
# Two encoders, the same small ConvNet (three conv blocks, a 64-d projection, L2
# normalisation), the same number of images per step, the same number of steps: one learns
# from random triplets, one from batch-hard mining. Watch the active fraction: random
# triplets quickly become easy (loss 0, nothing to learn), hard ones stay informative.

# %%
random_encoder, random_history = train_encoder(
    data.images, data.labels, data.train_classes, "random", steps=STEPS, verbose=2)

# %%
hard_encoder, hard_history = train_encoder(
    data.images, data.labels, data.train_classes, "batch_hard", steps=STEPS, verbose=2)

# %%
fig = plot_training_curves({"random triplets": random_history, "batch-hard mining": hard_history})
fig.savefig(output_path("siamese_training_curves.png"), dpi=100)

# %% [markdown]
# ## 4 - One-shot learning on unseen classes
#
# An **N-way one-shot episode**: N unseen characters, one rendering of each as the only
# example (the *support*), and a new rendering of one of them (the *query*). The prediction
# is the support nearest to the query. Chance is 1/N. Raw pixels are the baseline.

# %%
embeddings = {
    "raw pixels": data.images.reshape(len(data.images), -1),
    "random triplets": embed(random_encoder, data.images),
    "batch-hard mining": embed(hard_encoder, data.images),
}
table = one_shot_table(embeddings, data.labels, data.test_classes, ways=(5, 20),
                       episodes=EPISODES, seed=0)
print(f"{'':20s} {'5-way':>7s} {'20-way':>7s}")
for name, row in table.items():
    print(f"{name:20s} {row[5]:7.3f} {row[20]:7.3f}")

# %%
# NBVAL_CHECK_OUTPUT
print("learned encoder beats raw pixels:", table["batch-hard mining"][5] > table["raw pixels"][5])

# %% [markdown]
# The embeddings of eight unseen classes, projected on their first two principal components:
# the encoder never saw these characters, yet it groups their renderings.

# %%
shown = data.test_classes[:8]
where = np.isin(data.labels, shown)
points = pca_project(embeddings["batch-hard mining"][where], 2)
fig = plot_embedding_2d(points, data.labels[where], {c: data.chars[c] for c in shown},
                        title="unseen classes, batch-hard encoder (PCA)")
fig.savefig(output_path("siamese_unseen_pca.png"), dpi=100)

# %% [markdown]
# ## 5 - Verification as binary classification
#
# Instead of thresholding a distance, learn the decision: for a pair $(x_i, x_j)$,
#
# $$\hat y = \sigma\Big(\sum_k w_k \, \phi_k(x_i, x_j) + b\Big), \qquad
# \phi_k = |f_k(x_i) - f_k(x_j)| \quad\text{or}\quad
# \phi_k = \frac{(f_k(x_i) - f_k(x_j))^2}{f_k(x_i) + f_k(x_j)}$$
#
# (the chi-square form; our embeddings can be negative, so its denominator uses absolute
# values). The head is trained on pairs of **seen** classes and tested on pairs of **unseen**
# ones, next to the plain rule "same when the distance is below a threshold".

# %%
f = embeddings["batch-hard mining"]
train_idx = np.flatnonzero(np.isin(data.labels, data.train_classes))
test_idx = np.flatnonzero(np.isin(data.labels, data.test_classes))
i, j, same = make_pairs(data.labels[train_idx], 4000, seed=0)
ti, tj, test_same = make_pairs(data.labels[test_idx], 2000, seed=1)
a, b = f[train_idx[i]], f[train_idx[j]]
ta, tb = f[test_idx[ti]], f[test_idx[tj]]
heads = {kind: train_logistic_head(pair_features(a, b, kind), same, epochs=20, verbose=0)[0]
         for kind in ("abs", "chi2")}

# %%
curves, eers = {}, {}
for kind, head in heads.items():
    scores = head.predict(pair_features(ta, tb, kind), verbose=0)[:, 0]
    fpr, tpr, thresholds = roc_curve(scores, test_same)
    curves[f"logistic on {kind}"] = (fpr, tpr)
    eers[f"logistic on {kind}"] = equal_error_rate(fpr, tpr, thresholds)
distances = np.linalg.norm(ta - tb, axis=1)
fpr, tpr, thresholds = distance_roc(distances, test_same)
curves["distance < t"] = (fpr, tpr)
eers["distance < t"] = equal_error_rate(fpr, tpr, thresholds)
for name, (fpr, tpr) in curves.items():
    print(f"{name:18s} AUC {auc(fpr, tpr):.3f}  EER {eers[name][0]:.3f} at threshold {eers[name][1]:.3f}")
fig = plot_roc(curves, eers)
fig.savefig(output_path("siamese_roc.png"), dpi=100)

# %% [markdown]
# ### Picking a distance threshold from labelled pairs
#
# `pick_threshold` chooses the threshold on labelled pairs of seen classes, either for the
# best accuracy or for a target false-accept rate; we then measure it on unseen pairs. The
# same function can tune the face encoder's 0.6 on your own labelled photos.

# %%
train_distances = np.linalg.norm(a - b, axis=1)
for method, target in (("accuracy", None), ("far", 0.01)):
    t = pick_threshold(train_distances, same, method=method, target_far=target)
    print(f"{method:8s} threshold {t:.3f} -> accuracy on unseen pairs "
          f"{accuracy_at(distances, test_same, t):.3f}")

# %% [markdown]
# ## What you should remember
#
# - The triplet loss pulls an anchor towards its positive and away from its negative by a
#   margin; an encoder trained with it generalises to classes it never saw (one-shot).
# - Random triplets soon teach nothing: their loss is already zero. Mining hard triplets
#   inside P x K batches keeps the gradient informative.
# - Verification can be a learned binary classifier on pair features, or a tuned distance
#   threshold; the ROC curve compares them at every operating point.
#
# References: Schroff, Kalenichenko & Philbin (2015), *FaceNet*; Hermans, Beyer & Leibe
# (2017), *In Defense of the Triplet Loss for Person Re-Identification*; Koch, Zemel &
# Salakhutdinov (2015), *Siamese Neural Networks for One-shot Image Recognition*; Lake et
# al. (2015), *Human-level concept learning through probabilistic program induction*
# (Omniglot).
