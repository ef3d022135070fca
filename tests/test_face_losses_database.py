"""The triplet loss and the face database against NumPy formulas, hand cases and brute force."""

import os
import warnings
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import nbutils.faces.enroll as enroll_module
from nbutils.faces.database import EmptyDatabaseError, FaceDatabase
from nbutils.faces.enroll import FaceEncodingWarning, database_from_folder, enroll_photos
from nbutils.triplet import triplet_hinge, triplet_loss

# ----------------------------------------------------------------------------- triplet loss


def loop_triplet_loss(a, p, n, alpha=0.2):
    """The course's formula, one triplet and one coordinate at a time, in Python floats."""
    total = 0.0
    for i in range(a.shape[0]):
        pos = sum((float(a[i, j]) - float(p[i, j])) ** 2 for j in range(a.shape[1]))
        neg = sum((float(a[i, j]) - float(n[i, j])) ** 2 for j in range(a.shape[1]))
        total += max(pos - neg + alpha, 0.0)
    return total


def np_triplet_loss(a, p, n, alpha=0.2):
    a, p, n = (x.astype(np.float64) for x in (a, p, n))
    pos = np.sum((a - p) ** 2, axis=-1)
    neg = np.sum((a - n) ** 2, axis=-1)
    return np.sum(np.maximum(pos - neg + alpha, 0.0))


def random_triplets(rng, m, d, scale=1.0):
    return tuple((rng.standard_normal((m, d)) * scale).astype(np.float32) for _ in range(3))


@pytest.mark.parametrize("m, d", [(1, 1), (2, 3), (5, 16), (7, 128), (32, 4)])
@pytest.mark.parametrize("alpha", [0.2, 1.0, 5.0])
def test_triplet_loss_matches_loop_reference_list_and_stacked(m, d, alpha):
    rng = np.random.default_rng(m * 1000 + d)
    a, p, n = random_triplets(rng, m, d, scale=0.3)
    expected = loop_triplet_loss(a, p, n, alpha)
    from_list = triplet_loss(None, [a, p, n], alpha=alpha)
    from_tuple = triplet_loss(None, (tf.constant(a), tf.constant(p), tf.constant(n)), alpha=alpha)
    from_stacked = triplet_loss(None, tf.constant(np.stack([a, p, n], axis=1)), alpha=alpha)
    for loss in (from_list, from_tuple, from_stacked):
        assert loss.shape == ()
        np.testing.assert_allclose(float(loss), expected, rtol=1e-5, atol=1e-5)


def test_triplet_loss_default_alpha_is_0_2():
    a = np.zeros((3, 4), np.float32)
    np.testing.assert_allclose(float(triplet_loss(None, [a, a, a])), 3 * 0.2, rtol=1e-6)


def test_identical_triplets_cost_m_times_alpha():
    a = np.random.default_rng(0).standard_normal((6, 10)).astype(np.float32)
    loss = triplet_loss(None, [a, a.copy(), a.copy()], alpha=7.5)
    np.testing.assert_allclose(float(loss), 6 * 7.5, rtol=1e-6)


def test_easy_triplet_is_clipped_to_zero_hard_one_counts():
    # easy: pos = 0.01, neg = 9    -> 0.01 - 9 + 0.2 < 0 -> 0
    # hard: pos = 1,    neg = 0.25 -> 1 - 0.25 + 0.2 = 0.95
    a = np.array([[0.0, 0.0], [0.0, 0.0]], np.float32)
    p = np.array([[0.1, 0.0], [1.0, 0.0]], np.float32)
    n = np.array([[3.0, 0.0], [0.0, 0.5]], np.float32)
    assert float(triplet_loss(None, [a[:1], p[:1], n[:1]])) == 0.0
    np.testing.assert_allclose(float(triplet_loss(None, [a[1:], p[1:], n[1:]])), 0.95, rtol=1e-6)
    # Unclipped, the easy one would subtract 8.79 and the total would be negative.
    np.testing.assert_allclose(float(triplet_loss(None, [a, p, n])), 0.95, rtol=1e-6)


def test_batch_is_summed_not_averaged():
    a = np.array([[0.0, 0.0]], np.float32)
    p = np.array([[1.0, 0.0]], np.float32)
    n = np.array([[0.0, 0.5]], np.float32)
    tiled = [np.repeat(x, 4, axis=0) for x in (a, p, n)]
    np.testing.assert_allclose(float(triplet_loss(None, tiled)), 4 * 0.95, rtol=1e-6)


def test_distances_are_summed_over_the_last_axis():
    # Over axis -1: pos = [1, 0], neg = [0, 4] -> max(1.2, 0) + max(-3.8, 0) = 1.2
    # Over axis 0 it would be pos = [1, 0, 0], neg = [4, 0, 0] -> 0 + 0.2 + 0.2 = 0.4
    a = np.zeros((2, 3), np.float32)
    p = np.array([[1, 0, 0], [0, 0, 0]], np.float32)
    n = np.array([[0, 0, 0], [2, 0, 0]], np.float32)
    np.testing.assert_allclose(float(triplet_loss(None, [a, p, n])), 1.2, rtol=1e-6)
    stacked = np.stack([a, p, n], axis=1)
    np.testing.assert_allclose(float(triplet_loss(None, stacked)), 1.2, rtol=1e-6)


def test_triplet_hinge_per_term_with_broadcasting():
    pos = np.array([[1.0], [0.0], [2.5]], np.float32)           # (3, 1)
    neg = np.array([0.5, 1.1, 3.0, 0.0], np.float32)            # (4,): broadcasts to (3, 4)
    terms = triplet_hinge(pos, neg, alpha=0.3)
    assert terms.shape == (3, 4) and terms.dtype == tf.float32
    expected = [[max(float(p) - float(n) + 0.3, 0.0) for n in neg] for p in pos[:, 0]]
    np.testing.assert_allclose(terms.numpy(), expected, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(triplet_hinge(np.float32(1.0), np.float32(1.0)).numpy(), 0.2)


def test_triplet_hinge_keeps_a_float64_margin_exact():
    # 0.1 through float32 is 0.10000000149...; a float64 term must use the float64 0.1.
    zero = tf.constant([0.0], tf.float64)
    assert triplet_hinge(zero, zero, alpha=0.1).numpy()[0] == 0.1
    assert triplet_hinge(zero, zero, alpha=tf.constant(0.5, tf.float32)).dtype == tf.float64


def test_triplet_loss_is_the_sum_of_the_hinge_terms():
    a, p, n = random_triplets(np.random.default_rng(3), 9, 5, scale=0.4)
    terms = triplet_hinge(np.sum((a - p) ** 2, -1), np.sum((a - n) ** 2, -1), alpha=0.5)
    np.testing.assert_allclose(float(triplet_loss(None, [a, p, n], alpha=0.5)),
                               float(tf.reduce_sum(terms)), rtol=1e-6)
    assert 0 < int(np.count_nonzero(terms.numpy())) < 9  # some terms clipped, some not


@pytest.mark.parametrize("bad", [
    "two tensors", "four tensors", "rank 2", "axis 1 of size 4", "rank 4", "not numbers",
])
def test_triplet_loss_rejects_other_forms(bad):
    x = np.zeros((2, 5), np.float32)
    y_pred = {
        "two tensors": [x, x],
        "four tensors": (x, x, x, x),
        "rank 2": x,
        "axis 1 of size 4": np.zeros((2, 4, 5), np.float32),
        "rank 4": np.zeros((2, 3, 5, 1), np.float32),
        "not numbers": object(),
    }[bad]
    with pytest.raises(ValueError, match=r"\(m, 3, d\)"):
        triplet_loss(None, y_pred)


def test_triplet_loss_inside_tf_function_with_unknown_batch_size():
    @tf.function(input_signature=[tf.TensorSpec((None, 3, None), tf.float32)])
    def stacked_loss(y_pred):
        return triplet_loss(None, y_pred, alpha=0.5)

    @tf.function
    def list_loss(a, p, n):
        return triplet_loss(None, [a, p, n], alpha=0.5)

    rng = np.random.default_rng(3)
    for m, d in [(4, 8), (9, 3)]:
        a, p, n = random_triplets(rng, m, d, scale=0.4)
        expected = np_triplet_loss(a, p, n, 0.5)
        got = stacked_loss(tf.constant(np.stack([a, p, n], axis=1)))
        np.testing.assert_allclose(float(got), expected, rtol=1e-5)
        np.testing.assert_allclose(float(list_loss(a, p, n)), expected, rtol=1e-5)


def siamese_model(d_in, d_out, seed):
    """One Dense encoder shared by the three inputs; encodings stacked to (m, 3, d_out)."""
    encoder = keras.layers.Dense(
        d_out, kernel_initializer=keras.initializers.RandomNormal(stddev=0.5, seed=seed)
    )
    inputs = [keras.Input((d_in,), name=role) for role in ("anchor", "positive", "negative")]
    stacked = keras.ops.stack([encoder(x) for x in inputs], axis=1)
    return keras.Model(inputs, stacked), encoder


def test_triplet_loss_compiles_into_a_siamese_keras_model():
    keras.utils.set_random_seed(0)
    m, d_in, d_out = 16, 6, 4
    model, encoder = siamese_model(d_in, d_out, seed=1)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.01), loss=triplet_loss)
    rng = np.random.default_rng(4)
    x = list(random_triplets(rng, m, d_in))
    y = np.zeros((m,), np.float32)

    def numpy_loss():
        w, b = (v.astype(np.float64) for v in encoder.get_weights())
        return np_triplet_loss(*(xi @ w + b for xi in x))

    assert model.output_shape == (None, 3, d_out)
    before = numpy_loss()
    assert before > 0.0  # some triplets are hard, so there is something to learn
    np.testing.assert_allclose(model.evaluate(x, y, batch_size=m, verbose=0), before, rtol=1e-5)

    model.fit(x, y, batch_size=m, epochs=20, verbose=0)
    after = numpy_loss()
    np.testing.assert_allclose(model.evaluate(x, y, batch_size=m, verbose=0), after, rtol=1e-5)
    assert after < 0.9 * before


# ---------------------------------------------------------------------------- face database


def brute_force_distances(reference, query):
    """(name, row) -> distance, one np.linalg.norm at a time."""
    return [np.linalg.norm(row.astype(np.float64) - query) for _, rows in reference for row in rows]


def brute_force_search(reference, query, k):
    """The k nearest identities, per-identity minimum, by a Python loop over names."""
    best = {}
    for name, rows in reference:
        for row in rows:
            dist = float(np.linalg.norm(row.astype(np.float64) - query.astype(np.float64)))
            best[name] = min(best.get(name, np.inf), dist)
    ranked = sorted((dist, name) for name, dist in best.items())
    return ranked[:k]


def random_people(rng, people, per_person, d):
    """[(name, (k, d) float32)], k varying from 1 to per_person."""
    return [(f"person_{i}", rng.standard_normal((int(rng.integers(1, per_person + 1)), d))
             .astype(np.float32)) for i in range(people)]


def test_add_getitem_contains_len_and_storage():
    db = FaceDatabase(dim=4)
    db.add("ann", np.arange(4.0))
    db.add("bob", [[1.0, 1, 1, 1], [2.0, 2, 2, 2]])
    assert db.add("ann", np.full((1, 4), 9.5), append=True) == 1  # a second photo of ann
    assert len(db) == 2 and db.num_descriptors == 4
    assert db.names == ["ann", "bob"] and list(db) == ["ann", "bob"]
    assert "ann" in db and "carl" not in db and 3 not in db
    np.testing.assert_array_equal(db["ann"], [[0, 1, 2, 3], [9.5, 9.5, 9.5, 9.5]])
    np.testing.assert_array_equal(db["bob"], [[1, 1, 1, 1], [2, 2, 2, 2]])
    assert db["ann"].dtype == np.float32
    assert [name for name, _ in db.items()] == ["ann", "bob"]
    np.testing.assert_array_equal(dict(db.items())["bob"], db["bob"])

    stored = db.index  # the exact strategy: every row in memory, in the order added
    assert stored.descriptors.shape == (4, 4) and stored.descriptors.dtype == np.float32
    assert stored.descriptors.flags.c_contiguous
    np.testing.assert_array_equal(stored.labels, [0, 1, 1, 0])
    assert stored.labels.dtype == np.int32
    with pytest.raises(ValueError):
        stored.descriptors[0, 0] = 1.0  # read-only: the cached norms would go stale
    assert "2 people" in repr(db) and "4 descriptors" in repr(db) and "'ann'" in repr(db)


def test_dim_is_128_by_default_or_fixed_by_first_add():
    assert FaceDatabase().dim == 128
    with pytest.raises(ValueError, match=r"shape \(128,\) or \(k, 128\) with k >= 1, got \(5,\)"):
        FaceDatabase().add("ann", np.zeros(5))
    db = FaceDatabase(dim=None)
    db.add("ann", np.zeros(5))
    assert db.dim == 5
    with pytest.raises(ValueError, match=r"shape \(5,\) or \(k, 5\)"):
        db.add("bob", np.zeros(6))


@pytest.mark.parametrize("name, descriptors, match", [
    ("ann", np.zeros(3), r"shape \(4,\) or \(k, 4\) with k >= 1, got \(3,\)"),
    ("ann", np.zeros((2, 5)), r"shape \(4,\) or \(k, 4\) with k >= 1, got \(2, 5\)"),
    ("ann", np.array([0.0, np.nan, 0.0, 0.0]), "NaN"),
    ("ann", np.array([0.0, np.inf, 0.0, 0.0]), "NaN or infinite"),
    ("ann", np.array([0.0, 1e300, 0.0, 0.0]), "infinite"),  # overflows float32
    ("ann", np.zeros((0, 4)), r"with k >= 1, got \(0, 4\)"),
    ("ann", np.zeros((1, 2, 4)), r"shape .* got \(1, 2, 4\)"),
    ("ann", np.array(["a", "b", "c", "d"]), "must be floating point .* got dtype <U1"),
    ("ann", np.arange(4), "must be floating point .* got dtype int64"),  # not an encoding
    ("ann", [[0.0, 1.0], [2.0]], "must be a"),  # ragged
    ("", np.zeros(4), "empty"),
    ("   ", np.zeros(4), "empty"),
    (42, np.zeros(4), "str"),
])
def test_add_rejects_bad_input_and_changes_nothing(name, descriptors, match):
    db = FaceDatabase(dim=4)
    db.add("zed", np.ones(4))
    with pytest.raises(ValueError, match=match):
        db.add(name, descriptors)
    assert db.names == ["zed"] and db.num_descriptors == 1


def test_unknown_name_is_a_key_error_listing_the_names():
    db = FaceDatabase.from_dict({"ann": np.zeros(2), "bob": np.ones(2)})
    with pytest.raises(KeyError, match="'carl'.*'ann', 'bob'"):
        db["carl"]
    with pytest.raises(KeyError, match="'ann', 'bob'"):
        db.delete("carl")


def test_from_dict_takes_course_style_encodings():
    rng = np.random.default_rng(5)
    mapping = {
        "danielle": rng.standard_normal((1, 128)).astype(np.float32),  # course: (1, 128)
        "younes": rng.standard_normal(128),
        "tian": rng.standard_normal((3, 128)),
    }
    db = FaceDatabase.from_dict(mapping)
    assert db.names == ["danielle", "younes", "tian"] and db.num_descriptors == 5
    for name, enc in mapping.items():
        np.testing.assert_array_equal(db[name], np.atleast_2d(enc).astype(np.float32))


def test_delete_reindexes_labels_and_keeps_the_others():
    rng = np.random.default_rng(6)
    people = random_people(rng, 5, 3, 8)
    db = FaceDatabase(dim=8)
    for name, rows in people:
        for row in rows:  # one at a time, so rows of different people interleave later
            db.add(name, row, append=True)
    extra = rng.standard_normal((1, 8)).astype(np.float32)
    db.add("person_1", extra, append=True)  # one more photo of person_1, after everybody's
    people[1] = ("person_1", np.concatenate([people[1][1], extra]))
    assert db.delete("person_2") == len(people[2][1])
    kept = [(n, r) for n, r in people if n != "person_2"]
    assert db.names == [n for n, _ in kept] and "person_2" not in db
    assert db.num_descriptors == sum(len(r) for _, r in kept)
    for name, rows in kept:
        np.testing.assert_array_equal(db[name], rows)
    for i, name in enumerate(db.names):
        np.testing.assert_array_equal(db.index.descriptors[db.index.labels == i], db[name])
    query = people[2][1][0]  # an exact descriptor of the removed person
    assert db.search(query, k=4)[0].name != "person_2"
    assert [name for _, name in db.search(query, k=4)] == \
        [name for _, name in brute_force_search(kept, query, 4)]


@pytest.mark.parametrize("seed, people, per_person, d", [
    (0, 1, 1, 3), (1, 7, 4, 16), (2, 40, 6, 128), (3, 200, 3, 2),
])
def test_distances_match_a_norm_loop(seed, people, per_person, d):
    rng = np.random.default_rng(seed)
    reference = random_people(rng, people, per_person, d)
    db = FaceDatabase(dim=d)
    for name, rows in reference:
        db.add(name, rows)
    for _ in range(5):
        query = rng.standard_normal(d).astype(np.float32)
        got = db.index.distances(query)  # the exact strategy's vectorised formula
        assert got.shape == (db.num_descriptors,) and got.dtype == np.float32
        np.testing.assert_allclose(got, brute_force_distances(reference, query),
                                   rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("seed, people, per_person, d", [
    (10, 3, 2, 4), (11, 12, 5, 16), (12, 60, 8, 128), (13, 300, 2, 3),
])
def test_search_matches_a_loop_over_names(seed, people, per_person, d):
    rng = np.random.default_rng(seed)
    reference = random_people(rng, people, per_person, d)
    db = FaceDatabase(dim=d)
    # Enrol in an interleaved order: photo j of every person, then photo j + 1, ...
    for j in range(per_person):
        for name, rows in reference:
            if j < len(rows):
                db.add(name, rows[j], append=True)
    for _ in range(10):
        query = rng.standard_normal(d).astype(np.float32)
        [(dist, name)] = db.search(query)
        (ref_dist, ref_name), = brute_force_search(reference, query, 1)
        assert name == ref_name and isinstance(dist, float)
        np.testing.assert_allclose(dist, ref_dist, rtol=1e-6)
        top3 = db.search(query, k=3)
        ref3 = brute_force_search(reference, query, 3)
        assert isinstance(top3, list) and len(top3) == min(3, people)
        assert [n for _, n in top3] == [n for _, n in ref3]
        np.testing.assert_allclose([x for x, _ in top3], [x for x, _ in ref3], rtol=1e-6)


def test_search_of_an_enrolled_descriptor_is_exactly_zero():
    rng = np.random.default_rng(14)
    db = FaceDatabase.from_dict({f"p{i}": rng.standard_normal((3, 128)) * 10 for i in range(20)})
    query = db["p7"][2]
    assert db.search(query) == [(0.0, "p7")]
    assert db.identify(query) == (0.0, "p7")
    assert db.search(query[np.newaxis, :])[0].name == "p7"  # a (1, d) query is accepted too


def test_search_with_k_beyond_the_number_of_people_returns_everyone():
    db = FaceDatabase.from_dict({"a": [0.0, 0.0], "b": [[3.0, 4.0], [0.0, 1.0]], "c": [6.0, 8.0]})
    assert db.search(np.array([0.0, 0.0]), k=10) == [(0.0, "a"), (1.0, "b"), (10.0, "c")]
    assert db.search(np.array([6.0, 8.0]), k=2) == [(0.0, "c"), (5.0, "b")]


@pytest.mark.parametrize("query, k, match", [
    (np.zeros(3), 1, r"\(2,\)"),
    (np.zeros((2, 2)), 1, r"\(2,\)"),
    (np.array([np.nan, 0.0]), 1, "NaN"),
    (np.zeros(2), 0, "k must be"),
    (np.zeros(2), 1.5, "k must be"),
])
def test_search_rejects_bad_queries(query, k, match):
    db = FaceDatabase.from_dict({"a": [0.0, 0.0]})
    with pytest.raises(ValueError, match=match):
        db.search(query, k=k)


def test_empty_database_refuses_to_search():
    db = FaceDatabase()
    for call in (lambda: db.search(np.zeros(128)), lambda: db.search(np.zeros(128), k=3),
                 lambda: db.identify(np.zeros(128)), lambda: db.verify(np.zeros(128), "a")):
        with pytest.raises(EmptyDatabaseError, match="the face database is empty: enroll"):
            call()
    assert issubclass(EmptyDatabaseError, ValueError)
    db.add("ann", np.zeros(128))
    db.delete("ann")
    with pytest.raises(EmptyDatabaseError):
        db.search(np.zeros(128))


def test_100k_descriptors_added_one_at_a_time_then_search_matches_brute_force():
    rng = np.random.default_rng(15)
    n, people, d = 100_000, 20_000, 128
    rows = rng.standard_normal((n, d)).astype(np.float32)
    owner = rng.integers(0, people, size=n)
    owner[:people] = np.arange(people)  # everybody has at least one descriptor
    db = FaceDatabase()
    for row, who in zip(rows, owner, strict=True):
        db.add(f"p{who}", row, append=True)
    assert db.num_descriptors == n and len(db) == people
    np.testing.assert_array_equal(db.index.descriptors, rows)

    by_name = {}
    for i, who in enumerate(owner):
        by_name.setdefault(f"p{who}", []).append(i)
    for _ in range(3):
        query = (rows[rng.integers(n)] + 0.5 * rng.standard_normal(d)).astype(np.float32)
        all_dists = np.linalg.norm(rows.astype(np.float64) - query, axis=1)
        best = sorted((float(all_dists[idx].min()), name) for name, idx in by_name.items())
        assert db.search(query)[0].name == best[0][1]
        top5 = db.search(query, k=5)
        assert [name for _, name in top5] == [name for _, name in best[:5]]
        np.testing.assert_allclose([x for x, _ in top5], [x for x, _ in best[:5]], rtol=1e-6)
    for name in ("p0", "p1", f"p{people - 1}"):  # a person's rows, in the order they came
        np.testing.assert_array_equal(db[name], rows[by_name[name]])


# ------------------------------------------------------------------------------ save / load


def small_db(names=("Zoë", "李雷", "José Ñúñez", "ann")):
    rng = np.random.default_rng(16)
    db = FaceDatabase(dim=128)
    for i, name in enumerate(names):
        db.add(name, rng.standard_normal((i + 1, 128)))
    db.add(names[0], rng.standard_normal(128), append=True)
    return db


def assert_same_db(a, b):
    assert a.names == b.names and a.dim == b.dim
    np.testing.assert_array_equal(a.index.descriptors, b.index.descriptors)
    np.testing.assert_array_equal(a.index.labels, b.index.labels)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])


def test_save_load_round_trip_is_exact_and_pickle_free(tmp_path):
    db = small_db()
    path = tmp_path / "nested" / "dir" / "faces.npz"
    assert db.save(path) == path
    loaded = FaceDatabase.load(path)
    assert_same_db(db, loaded)
    assert loaded.names[0] == "Zoë" and loaded.index.descriptors.dtype == np.float32
    query = db["李雷"][1]
    assert loaded.search(query, k=2) == db.search(query, k=2)
    with np.load(path, allow_pickle=False) as raw:  # readable without pickle, by plain NumPy
        assert raw["names"].dtype.kind == "U"
        assert int(raw["format_version"]) == 1
    assert sorted(os.listdir(path.parent)) == ["faces.npz"]
    loaded.add("new", np.zeros(128))  # a loaded database keeps growing normally
    assert loaded.search(np.zeros(128)) == [(0.0, "new")]


def test_save_load_empty_database(tmp_path):
    path = tmp_path / "empty.npz"
    FaceDatabase(dim=128).save(path)
    loaded = FaceDatabase.load(path)
    assert len(loaded) == 0 and loaded.dim == 128


@pytest.mark.parametrize("fail_in", ["savez", "replace"])
def test_crash_during_save_keeps_the_previous_file(tmp_path, monkeypatch, fail_in):
    path = tmp_path / "faces.npz"
    old = small_db(("old_1", "old_2"))
    old.save(path)
    new = small_db(("new_1", "new_2", "new_3"))

    def partial_savez(file, **arrays):
        file.write(b"PK\x03\x04 half a zip archive")
        raise OSError("disk full")

    def failing_replace(src, dst):
        raise OSError("power cut")

    if fail_in == "savez":
        monkeypatch.setattr(np, "savez", partial_savez)
    else:
        monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full|power cut"):
        new.save(path)
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["faces.npz"]  # no temporary file left behind
    assert_same_db(FaceDatabase.load(path), old)


def test_crash_during_first_save_leaves_nothing(tmp_path, monkeypatch):
    def partial_savez(file, **arrays):
        file.write(b"garbage")
        raise RuntimeError("killed")

    monkeypatch.setattr(np, "savez", partial_savez)
    with pytest.raises(RuntimeError):
        small_db().save(tmp_path / "faces.npz")
    assert os.listdir(tmp_path) == []


def test_load_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.npz"):
        FaceDatabase.load(tmp_path / "nowhere.npz")


def test_load_random_bytes_and_truncated_files(tmp_path):
    junk = tmp_path / "junk.npz"
    junk.write_bytes(np.random.default_rng(17).bytes(2000))
    with pytest.raises(ValueError, match="junk.npz"):
        FaceDatabase.load(junk)
    good = tmp_path / "good.npz"
    small_db().save(good)
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ValueError, match="truncated.npz"):
        FaceDatabase.load(truncated)


def valid_arrays():
    return {
        "format_version": np.array(1), "dim": np.array(2),
        "names": np.array(["ann", "bob"]),
        "descriptors": np.array([[0, 0], [1, 1], [2, 2]], np.float32),
        "labels": np.array([0, 1, 1], np.int32),
    }


@pytest.mark.parametrize("change, match", [
    ({"labels": None}, "missing labels"),
    ({"format_version": None, "dim": None}, "missing format_version, dim"),
    ({"labels": np.array([0, 2, 1], np.int32)}, r"labels must lie in \[0, 2\)"),
    ({"labels": np.array([0, 0, 0], np.int32)}, "no descriptor"),
    ({"labels": np.array([0, 1], np.int32)}, "one per descriptor"),
    ({"descriptors": np.zeros((3, 2), np.float64)}, "float32"),
    ({"descriptors": np.array([[0, 0], [1, np.nan], [2, 2]], np.float32)}, "NaN"),
    ({"names": np.array([1, 2])}, "unicode"),
    ({"names": np.array(["ann", "ann"])}, "unique"),
    ({"format_version": np.array(99)}, "newer"),
    ({"dim": np.array(3)}, "dimension"),
])
def test_load_rejects_foreign_or_inconsistent_files(tmp_path, change, match):
    path = tmp_path / "foreign.npz"
    arrays = valid_arrays()
    np.savez(tmp_path / "valid.npz", **arrays)
    assert FaceDatabase.load(tmp_path / "valid.npz").names == ["ann", "bob"]  # the baseline
    for key, value in change.items():
        if value is None:
            del arrays[key]
        else:
            arrays[key] = value
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=match) as info:
        FaceDatabase.load(path)
    assert "foreign.npz" in str(info.value)


def test_load_refuses_pickled_object_arrays(tmp_path):
    path = tmp_path / "pickled.npz"
    arrays = valid_arrays()
    arrays["names"] = np.array(["ann", "bob"], dtype=object)  # np.savez pickles these
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=r"pickled\.npz.*pickle"):
        FaceDatabase.load(path)


# --------------------------------------------------------------- enrolment from photos

MODEL = object()  # stands for the face-encoding network


class FakeNoFaceFound(Exception):
    pass


@pytest.fixture
def fake_encoder(monkeypatch):
    """Replace the two steps enrolment uses, photo -> chip and chips -> descriptors: a
    photo "file" holds its descriptor's value, carried by its chip.

    A file reading ``noface`` raises, like a photo where no face is found. An array photo
    encodes to its mean. Every photo read is recorded.
    """
    calls = []

    def face_chip(photo, detect_size=None):
        calls.append(photo)
        if isinstance(photo, np.ndarray):
            value = photo.mean()
        else:
            text = Path(photo).read_text()
            if text == "noface":
                raise FakeNoFaceFound(f"no face found in {photo}")
            value = float(text)
        return np.full((150, 150, 3), value, np.float32)

    def encode_chips(chips, model, batch_size=32):
        assert model is MODEL
        return np.repeat(np.asarray(chips, np.float32)[:, 0, 0, :1], 128, axis=1)

    monkeypatch.setattr(enroll_module, "face_chip", face_chip)
    monkeypatch.setattr(enroll_module, "encode_chips", encode_chips)
    return calls


def make_tree(root, files):
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)


def test_from_folder_builds_sorted_people_skips_non_images_reports_failures(tmp_path,
                                                                           fake_encoder):
    make_tree(tmp_path, {
        "bob/2.PNG": "0.7", "bob/1.jpg": "0.5", "bob/notes.txt": "not a photo",
        "alice/a.jpeg": "0.1", "alice/bad.jpg": "noface",
        "carol/only_bad.jpg": "noface",
        "readme.md": "ignored", ".hidden/x.jpg": "9", "bob/.x.jpg": "9",
    })
    with pytest.warns(FaceEncodingWarning, match=r"2 of 5 photos") as record:
        db = database_from_folder(tmp_path, MODEL)
    (message,) = [str(w.message) for w in record if w.category is FaceEncodingWarning]
    assert "bad.jpg" in message and "only_bad.jpg" in message and "FakeNoFaceFound" in message
    assert db.names == ["alice", "bob"] and db.num_descriptors == 3 and db.dim == 128
    np.testing.assert_array_equal(db["alice"], np.full((1, 128), 0.1, np.float32))
    np.testing.assert_array_equal(db["bob"], np.stack([np.full(128, 0.5, np.float32),
                                                       np.full(128, 0.7, np.float32)]))
    assert sorted(p.name for p in fake_encoder) == ["1.jpg", "2.PNG", "a.jpeg", "bad.jpg",
                                                     "only_bad.jpg"]


def test_from_folder_strict_raises_the_first_failure(tmp_path, fake_encoder):
    make_tree(tmp_path, {"alice/a.jpg": "0.1", "alice/b.jpg": "noface"})
    with pytest.raises(FakeNoFaceFound, match="b.jpg"):
        database_from_folder(tmp_path, MODEL, strict=True, progress=False)


def test_from_folder_custom_extensions_and_no_warning_when_all_succeed(tmp_path, fake_encoder):
    make_tree(tmp_path, {"ann/a.jpg": "1", "ann/b.pgm": "2"})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        db = database_from_folder(tmp_path, MODEL, extensions=(".PGM",), progress=False)
    np.testing.assert_array_equal(db["ann"], np.full((1, 128), 2.0, np.float32))


def test_from_folder_missing_empty_or_all_failing(tmp_path, fake_encoder):
    with pytest.raises(FileNotFoundError, match="no_such_folder"):
        database_from_folder(tmp_path / "no_such_folder", MODEL)
    make_tree(tmp_path / "empty", {"ann/notes.txt": "x", "top.jpg": "1"})
    with pytest.raises(EmptyDatabaseError, match="no photos found"):
        database_from_folder(tmp_path / "empty", MODEL)
    make_tree(tmp_path / "bad", {"ann/a.jpg": "noface", "bob/b.jpg": "noface"})
    with pytest.raises(EmptyDatabaseError, match="none of the 2 photos"):
        database_from_folder(tmp_path / "bad", MODEL, progress=False)


def test_from_folder_rejects_malformed_extensions(tmp_path, fake_encoder):
    make_tree(tmp_path, {"ann/a.jpg": "1"})
    with pytest.raises(TypeError, match="single str '.jpg'"):
        database_from_folder(tmp_path, MODEL, extensions=".jpg")
    with pytest.raises(ValueError, match="starting with a dot.*'jpg'"):
        database_from_folder(tmp_path, MODEL, extensions=(".png", "jpg"))
    assert fake_encoder == []


def test_enroll_photos_encodes_each_photo_then_adds(tmp_path, fake_encoder):
    make_tree(tmp_path, {"1.jpg": "0.25", "2.jpg": "0.75", "bad.jpg": "noface"})
    db = FaceDatabase()
    assert enroll_photos(db, "ann", [tmp_path / "1.jpg", str(tmp_path / "2.jpg")], MODEL) == 2
    assert enroll_photos(db, "ann", np.full((4, 4, 3), 3.0), MODEL) == 1  # one array, one photo
    assert enroll_photos(db, "bob", tmp_path / "1.jpg", MODEL) == 1
    np.testing.assert_array_equal(db["ann"][:, 0], [0.25, 0.75, 3.0])
    assert db.names == ["ann", "bob"] and len(fake_encoder) == 4
    with pytest.raises(FakeNoFaceFound):
        enroll_photos(db, "carl", [tmp_path / "1.jpg", tmp_path / "bad.jpg"], MODEL)
    assert "carl" not in db and db.num_descriptors == 4  # all or nothing
    with pytest.raises(ValueError, match="no photos"):
        enroll_photos(db, "dan", [], MODEL)


def test_enroll_photos_rejects_bad_input_before_encoding_and_adds_nothing(tmp_path,
                                                                         fake_encoder):
    make_tree(tmp_path, {"1.jpg": "0.25"})
    db = FaceDatabase(dim=64)  # the fake encoder gives 128-d descriptors
    with pytest.raises(ValueError, match=r"shape \(64,\) or \(k, 64\)"):
        enroll_photos(db, "ann", [tmp_path / "1.jpg"], MODEL)
    with pytest.raises(ValueError, match="blank"):
        enroll_photos(db, "  ", [tmp_path / "1.jpg"], MODEL)
    with pytest.raises(TypeError, match="FaceDatabase.*got str"):
        enroll_photos("ann", db, [tmp_path / "1.jpg"], MODEL)  # arguments swapped
    assert len(fake_encoder) == 1 and len(db) == 0 and db.num_descriptors == 0


def test_empty_database_message_names_the_ways_to_fill_it():
    with pytest.raises(EmptyDatabaseError) as caught:
        FaceDatabase().require_not_empty()
    for way in ("add", "enroll_photos", "database_from_folder"):
        assert way in str(caught.value)
    assert not hasattr(FaceDatabase, "enroll") and not hasattr(FaceDatabase, "from_folder")
