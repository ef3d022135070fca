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
# # Face Recognition
#
# Two problems, often confused:
#
# - **Face verification (1:1)**: "is this the claimed person?" A phone unlocking for its
#   owner, a door letting in an employee who shows a badge.
# - **Face recognition (1:K)**: "who is this?", among the K people of a database. No badge:
#   the face alone opens the door.
#
# Both rest on one idea: an encoder network $f$ maps a face image $x$ to a vector $f(x)$
# (here 128 numbers) such that photos of the same person land close together and photos of
# different people far apart. It also solves **one-shot learning**: one photo per person is
# enough to enrol them, because the network learned *how to compare*, not who exists.
#
# The encoder here is real and pretrained: dlib's ResNet (99.38% on the LFW benchmark),
# ported to Keras, on faces found by MTCNN and aligned the way dlib aligns them.
# Cells starting with `# NBVAL_CHECK_OUTPUT` print values the test suite compares.

# %%
# %config InlineBackend.figure_formats = ["jpeg"]
import numpy as np
import tensorflow as tf

from nbutils.faces import (
    DISTANCE_THRESHOLD,
    database_from_folder,
    find_faces,
    img_to_encoding,
    load_face_encoder,
    pairwise_distances,
    pixel_distance,
    triplet_loss,
    verify,
    who_is_it,
)
from nbutils.images import load_image
from nbutils.plots import plot_distance_matrix, plot_false_accepts, show_images
from nbutils.samples import DEFAULT_FOLDER, FACE_PHOTOS, make_face_samples
from nbutils.settings import output_path

# %% [markdown]
# ### Settings
#
# `PEOPLE_FOLDER` is the folder of people to enrol, one sub-folder per person
# (`<name>/*.jpg`); `None` takes the sample photos. Put yours in a folder, e.g.
# `"my_people"`, and run the notebook again, or run it unchanged with papermill:
# `papermill face_recognition.ipynb out.ipynb -p PEOPLE_FOLDER my_people`.

# %% tags=["parameters"]
PEOPLE_FOLDER = None

# %% [markdown]
# ## 0 - The photos
#
# Portraits that installed packages ship: Eileen Collins (scikit-image's `astronaut`) and
# Grace Hopper (matplotlib's sample photo) are the people we enrol, one photo each. A third
# person, scikit-image's grayscale cameraman, is a stranger. Second photos of the same people
# are not available offline, so we present **clearly labelled transformed copies** at the
# door: a tighter crop, a 10-degree rotation, darker lighting, heavy JPEG compression, half
# size and a mirror image.

# %%
# NBVAL_CHECK_OUTPUT
samples = make_face_samples()
people = {path.parent.name: path for path in samples["people"]}
queries = {path.stem: path for path in samples["queries"]}
for name, source in FACE_PHOTOS.items():
    print(f"{name:15s} {source}")

# %%
show_images([load_image(p, 160) for p in queries.values()], list(queries), ncols=5, size=2.4);

# %% [markdown]
# ## 1 - Naive face verification
#
# The simplest comparison: put two photos side by side, pixel for pixel, and call them the
# same person when the distance between the raw pixel values is small. It fails because
# lighting, pose and framing move pixels as much as identity does. Compare each query with
# each enrolled photo:

# %%
# NBVAL_CHECK_OUTPUT
same, different = [], []
for label, query in queries.items():
    for name, enrolled in people.items():
        d = pixel_distance(enrolled, query)
        (same if label.startswith(name) else different).append((d, f"{name} vs {label}"))
(d_same, same_pair), (d_diff, diff_pair) = max(same), min(different)
print(f"largest same-person distance:     {d_same:.3f} ({same_pair})")
print(f"smallest different-person distance: {d_diff:.3f} ({diff_pair})")
print("one threshold could separate them:", max(same)[0] < min(different)[0])

# %% [markdown]
# ## 2 - Encoding face images into a 128-dimensional vector
#
# ### 2.1 - A Siamese network
#
# Instead of pixels, compare encodings: $d(x^{(1)}, x^{(2)}) = \lVert f(x^{(1)}) - f(x^{(2)}) \rVert_2$.
# Running the *same* network, with the *same* weights, on both images is called a Siamese
# network (Taigman et al., DeepFace, 2014).
#
# Before encoding, each face is found (MTCNN: a box and five landmarks) and **aligned**: a
# similarity transform puts the eyes, nose and mouth where the encoder expects them, in a
# 150 x 150 chip. The encoder never sees the rest of the photo.

# %%
faces = find_faces(queries["grace_hopper__rot10"])
print(len(faces), "face found, confidence", round(faces[0].detection.confidence, 2))
show_images([load_image(queries["grace_hopper__rot10"]), faces[0].chip],
            ["photo (rotated copy)", "aligned 150x150 chip"], size=3);

# %% [markdown]
# ### 2.2 - The triplet loss
#
# How is such an encoder trained? With triplets of images: an **anchor** A, a **positive** P
# (same person) and a **negative** N (someone else). We want the anchor closer to the
# positive than to the negative by a margin $\alpha$:
#
# $$\mathcal{J} = \sum_{i=1}^{m} \max\left(\lVert f(A^{(i)}) - f(P^{(i)})\rVert_2^2 - \lVert f(A^{(i)}) - f(N^{(i)})\rVert_2^2 + \alpha,\ 0\right)$$
#
# Triplets that already satisfy the margin contribute zero; training needs *hard* ones,
# where $d(A, P) \approx d(A, N)$. FaceNet (Schroff et al., 2015) trained on millions of
# faces this way; dlib's encoder used a closely related metric loss.

# %%
# NBVAL_CHECK_OUTPUT
rng = np.random.default_rng(1)
y_pred = [tf.constant(rng.normal(0.0, 1.0, (3, 128)), tf.float32) for _ in range(3)]
loss = triplet_loss(None, y_pred, alpha=0.2)
print(f"loss = {float(loss):.4f}")
print("anchor = positive = negative, alpha = 5, m = 3 ->",
      float(triplet_loss(None, [y_pred[0]] * 3, alpha=5.0)))

# %% [markdown]
# ## 3 - Loading the pretrained model
#
# `load_face_encoder()` builds dlib's ResNet (29 convolutional layers in residual blocks)
# as a Keras model and loads its weights, read from the `face_recognition_models` package
# (checked by SHA-256). Input: a 150 x 150 RGB chip with values 0..255. Output: 128 numbers,
# not normalised. dlib's rule: same person when the distance is below **0.6**.

# %%
# NBVAL_CHECK_OUTPUT
model = load_face_encoder()
print("input:", model.input_shape, "output:", model.output_shape)
print("parameters:", f"{model.count_params():,}")

# %% [markdown]
# ## 4 - Applying the model
#
# ### 4.1 - The database: one photo per person
#
# `database_from_folder` reads `people/<name>/*.jpg` in the sample folder that
# `python -m nbutils.prepare` filled (`DEFAULT_FOLDER`, in the cache), finds, aligns and encodes
# every face, and keeps the descriptors by name in a `FaceDatabase`. (A plain dict
# name -> encoding, as in the course, works everywhere a database is expected.)

# %%
# NBVAL_CHECK_OUTPUT
database = database_from_folder(PEOPLE_FOLDER or DEFAULT_FOLDER / "people", model)
print(database.names, database.num_descriptors)

# %% [markdown]
# ### 4.2 - Face verification (1:1)
#
# Someone shows Grace Hopper's badge: `verify` encodes the photo taken at the door and
# compares it with Grace's enrolled encoding.

# %%
dist, door_open = verify(queries["grace_hopper__rot10"], "grace_hopper", database, model)
print(f"distance {dist:.2f}, door open: {door_open}")

# %%
# NBVAL_CHECK_OUTPUT
print(door_open)

# %% [markdown]
# The cameraman borrowed Eileen Collins's badge:

# %%
dist, door_open = verify(queries["cameraman"], "eileen_collins", database, model)
print(f"distance {dist:.2f}, door open: {door_open}")

# %%
# NBVAL_CHECK_OUTPUT
print(door_open)

# %% [markdown]
# ### 4.3 - Face recognition (1:K)
#
# No badges now: `who_is_it` compares the face with *everyone* in the database and returns
# the nearest identity, or `None` when even the nearest is 0.6 or more away.

# %%
recognised = {}
for label, path in queries.items():
    min_dist, identity = who_is_it(path, database, model)
    recognised[label] = (identity, min_dist)

# %%
# NBVAL_CHECK_OUTPUT
for label, (identity, _) in recognised.items():
    expected = label.split("__")[0] if label.split("__")[0] in database else None
    print(f"{label:24s} -> {str(identity):15s} {'ok' if identity == expected else 'WRONG'}")

# %% [markdown]
# ## 5 - Why 1:K is harder than 1:1
#
# Suppose one comparison wrongly accepts a stranger with probability $p$ (the false-accept
# rate). Verification makes one comparison per visit. Recognition against $K$ people makes
# $K$: about $K p$ false accepts per stranger, and the chance that at least one enrolled person
# matches by mistake is $1 - (1 - p)^K$. A verifier that is 99.9% right on every comparison
# ($p = 10^{-3}$) lets a stranger in almost surely once a thousand people are enrolled.

# %%
fig = plot_false_accepts([1e-3, 1e-4, 1e-6], max_people=100_000)
fig.savefig(output_path("face_false_accepts.png"), dpi=100)

# %% [markdown]
# ### Distances between all the photos
#
# Every enrolled photo and every query, encoded and compared pairwise. Dots mark pairs closer
# than the 0.6 threshold: the blocks of each person stand out, and the stranger matches
# nobody.

# %%
labels = [f"{n} (enrolled)" for n in people] + list(queries)
encodings = np.stack([img_to_encoding(p, model) for p in list(people.values()) + list(queries.values())])
distances = pairwise_distances(encodings)
fig = plot_distance_matrix(distances, labels, threshold=DISTANCE_THRESHOLD)
fig.savefig(output_path("face_distance_matrix.png"), dpi=100, bbox_inches="tight")

# %%
# NBVAL_CHECK_OUTPUT
person = [label.split(" ")[0].split("__")[0] for label in labels]
truth = np.equal.outer(person, person)
decisions = distances < DISTANCE_THRESHOLD
print("pairs:", truth.size, "| every same/different decision right:", bool((truth == decisions).all()))

# %% [markdown]
# ## 6 - Your own photos
#
# Put photos in a folder of yours, `my_people/<name>/` (one is enough; several make
# recognition more robust, since the database keeps them all), then:
#
# ```python
# database = database_from_folder("my_people", model)
# database.save("my_people.npz")            # reload later with FaceDatabase.load(...)
# who_is_it("path/to/photo.jpg", database, model)
# verify("path/to/photo.jpg", "your_name", database, model)
# ```
#
# Photos may be JPEG or PNG, in any orientation the camera recorded (EXIF is honoured),
# color or grayscale; arrays from OpenCV are BGR: pass `channels="BGR"` to `img_to_encoding`.
#
# ## What you should remember
#
# - Verification is 1:1, recognition is 1:K, and 1:K is harder: false accepts add up.
# - A face encoder turns one-shot learning into a distance: enrol one photo, compare.
# - The triplet loss trains the encoder; hard triplets are what keep it learning.
# - Alignment matters: the encoder expects the face exactly where it was trained to see it.
#
# References: Schroff, Kalenichenko & Philbin (2015), *FaceNet*; Taigman et al. (2014),
# *DeepFace*; Zhang et al. (2016), *Joint Face Detection and Alignment using Multi-task
# Cascaded Convolutional Networks* (MTCNN); King (2009), *Dlib-ml*.
