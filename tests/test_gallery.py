"""The face store on each search strategy (exact, ann, milvus) against one NumPy brute force.

Every test of the shared suite runs on each backend: the exact one, the ann one while its
index is exhaustive ("ann") and once it is an IVF index ("ann-ivf": trained at 64
descriptors, and with nprobe >= nlist on this small data, so it must be exact too), and
Milvus Lite in a tmp_path file.
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from nbutils.extras.gallery import BackendNotInstalledError, GalleryConnectionError, open_gallery
from nbutils.faces.database import (
    DISTANCE_THRESHOLD,
    MAX_NAME_BYTES,
    DuplicateNameError,
    EmptyDatabaseError,
    FaceDatabase,
    UnknownPersonError,
)

DIM = 16
THRESHOLD = 1.0  # random N(0, 1) 16-d descriptors lie ~5.7 apart; queries ~0.2 from one

Opener = Callable[..., FaceDatabase]

SHARED = [
    pytest.param(("exact", {}), id="exact"),
    pytest.param(("ann", {}), id="ann"),
    pytest.param(("ann", {"train_at": 64}), id="ann-ivf"),
    pytest.param(("milvus", {}), id="milvus-lite"),
]


def _requires(backend: str) -> None:
    if backend == "ann":
        pytest.importorskip("faiss", reason="the ann backend needs nbutils[ann]")
    if backend == "milvus":
        pytest.importorskip("pymilvus", reason="the milvus backend needs nbutils[milvus]")
        pytest.importorskip("milvus_lite", reason="Milvus Lite needs nbutils[milvus]")


@pytest.fixture(params=SHARED)
def opener(request, tmp_path) -> Opener:
    """open_gallery on one backend at a fixed location in tmp_path (call again to reopen)."""
    backend, options = request.param
    _requires(backend)
    location = tmp_path / ("gallery.db" if backend == "milvus" else "gallery.npz")
    opened: list[FaceDatabase] = []

    def open_(dim: int = DIM) -> FaceDatabase:
        gallery = open_gallery(location, backend, dim=dim, **options)
        opened.append(gallery)
        return gallery

    yield open_
    for gallery in opened:
        gallery.close()


def make_people(rng: np.random.Generator, count: int = 30) -> dict[str, np.ndarray]:
    """name -> (k, DIM) float32, k from 1 to 4 (several photos per person)."""
    return {f"person_{i:02d}": rng.standard_normal((1 + i % 4, DIM)).astype(np.float32)
            for i in range(count)}


def reference(people: dict[str, np.ndarray], query: np.ndarray) -> list[tuple[float, str]]:
    """(distance, name) for everyone, nearest first: a person's distance is the minimum of
    np.linalg.norm over their descriptors, in float64."""
    q = query.astype(np.float64)
    return sorted((float(np.linalg.norm(rows.astype(np.float64) - q, axis=1).min()), name)
                  for name, rows in people.items())


def queries(rng: np.random.Generator, people: dict[str, np.ndarray]) -> list[np.ndarray]:
    """Near one enrolled photo (the right answer is clear), and strangers."""
    rows = np.concatenate(list(people.values()))
    near = rows[rng.integers(0, len(rows), 12)] + 0.05 * rng.standard_normal((12, DIM))
    strangers = rng.standard_normal((6, DIM))
    return [q.astype(np.float32) for q in np.concatenate([near, strangers])]


def enrol(gallery: FaceDatabase, people: dict[str, np.ndarray]) -> None:
    for name, rows in people.items():
        assert gallery.add(name, rows) == rows.shape[0]


def assert_answers_like_reference(gallery: FaceDatabase, people: dict[str, np.ndarray],
                                  rng: np.random.Generator) -> None:
    assert sorted(gallery.names) == sorted(people)  # exact, ann: enrolment order; milvus: sorted
    assert len(gallery) == len(people)
    assert gallery.num_descriptors == sum(rows.shape[0] for rows in people.values())
    for query in queries(rng, people):
        expected = reference(people, query)
        found = gallery.search(query, k=5)
        assert [name for _, name in found] == [name for _, name in expected[:5]]
        np.testing.assert_allclose([d for d, _ in found], [d for d, _ in expected[:5]],
                                   rtol=1e-12)
        distance, name = gallery.identify(query, threshold=THRESHOLD)
        assert distance == pytest.approx(expected[0][0], rel=1e-12)
        assert name == (expected[0][1] if expected[0][0] < THRESHOLD else None)
        claimed = sorted(people)[int(rng.integers(len(people)))]
        true_distance = dict((n, d) for d, n in expected)[claimed]
        verdict = gallery.verify(query, claimed, threshold=THRESHOLD)
        assert verdict.distance == pytest.approx(true_distance, rel=1e-12)
        assert verdict.accepted == (true_distance < THRESHOLD)


# ------------------------------------------------------------------------ shared suite


def test_add_verify_identify_match_the_numpy_reference(opener):
    rng = np.random.default_rng(1)
    people = make_people(rng)
    gallery = opener()
    enrol(gallery, people)
    assert_answers_like_reference(gallery, people, rng)
    for name in ("person_00", "person_03"):  # one photo, and four
        stored = gallery[name]
        assert stored.dtype == np.float32
        np.testing.assert_array_equal(np.sort(stored, axis=0), np.sort(people[name], axis=0))


def test_hand_made_distances_are_the_minimum_over_a_persons_photos(opener):
    gallery = opener(dim=2)
    gallery.add("ann", np.array([[0.0, 0.0], [10.0, 0.0]]))  # float64 is accepted
    gallery.add("bob", np.array([5.0, 5.0], dtype=np.float32))  # one (d,) descriptor
    query = np.array([9.0, 0.0], dtype=np.float32)
    assert gallery.identify(query) == (1.0, None)  # 1.0 >= 0.6: not in the database
    assert gallery.identify(query, threshold=1.5) == (1.0, "ann")
    assert gallery.verify(query, "ann") == (1.0, False)
    assert gallery.verify(query, "ann", threshold=1.01) == (1.0, True)
    assert gallery.verify(query, "bob").distance == pytest.approx(np.sqrt(16 + 25), rel=1e-15)
    assert gallery.search(query, k=5) == [(1.0, "ann"), (np.sqrt(41.0), "bob")]
    assert gallery.identify(np.array([10.0, 0.0], dtype=np.float32), threshold=0.1) == \
        (0.0, "ann")  # exactly 0 for an enrolled photo


def test_save_and_reopen_give_the_same_answers(opener):
    rng = np.random.default_rng(2)
    people = make_people(rng, 20)
    gallery = opener()
    enrol(gallery, people)
    assert gallery.save() == gallery.location
    gallery.close()
    reopened = opener()
    assert_answers_like_reference(reopened, people, rng)
    reopened.add("late", rng.standard_normal((2, DIM)))  # and it goes on working
    assert "late" in reopened and reopened.num_descriptors == 2 + sum(map(len, people.values()))


def _stored_bytes(location: str) -> bytes:
    """Every byte the gallery keeps on disk: its file, or every file in its folder."""
    path = Path(location)
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    return b"".join(p.read_bytes() for p in files)


def test_delete_forgets_a_person_and_save_erases_them_from_the_files(opener):
    rng = np.random.default_rng(3)
    people = make_people(rng, 20)
    gallery = opener()
    enrol(gallery, people)
    gallery.save()
    gone = people.pop("person_07")  # 4 photos
    on_disk = _stored_bytes(gallery.location)
    assert all(row.tobytes() in on_disk for row in gone)  # the scan below can see vectors

    assert gallery.delete("person_07") == 4
    assert "person_07" not in gallery
    assert_answers_like_reference(gallery, people, rng)
    gallery.save()
    on_disk = _stored_bytes(gallery.location)
    assert not any(row.tobytes() in on_disk for row in gone)
    assert all(row.tobytes() in on_disk for row in people["person_03"])

    gallery.close()
    reopened = opener()
    assert_answers_like_reference(reopened, people, rng)
    with pytest.raises(UnknownPersonError, match="'person_07' is not in the face database"):
        reopened.verify(gone[0], "person_07")
    reopened.add("person_07", gone[:1])  # the name is free again
    assert reopened.identify(gone[0]) == (0.0, "person_07")


def test_add_many_enrols_like_add_and_is_all_or_nothing(opener):
    rng = np.random.default_rng(8)
    people = make_people(rng, 24)
    names = sorted(people)
    gallery = opener()
    first = {n: people[n] for n in names[:12]}
    assert gallery.add_many(first) == sum(rows.shape[0] for rows in first.values())
    second = {n: people[n] for n in names[12:]}
    for clash, message in (({**second, names[3]: people[names[3]]},
                            f"already in the face database: '{names[3]}'; nobody was added"),
                           ({**second, "bad": np.ones(DIM + 1)},
                            r"descriptors of 'bad' must have shape")):
        with pytest.raises(ValueError, match=message):
            gallery.add_many(clash)
        assert gallery.names == names[:12]
    gallery.add_many(second)
    assert_answers_like_reference(gallery, people, rng)


def test_a_duplicate_name_is_refused_and_changes_nothing(opener):
    gallery = opener()
    gallery.add("ann", np.ones(DIM))
    with pytest.raises(DuplicateNameError, match=r"'ann' is already in the face database: "
                                                 r"add\(\.\.\., append=True\) to add photos "
                                                 r"of them, delete\('ann'\) first"):
        gallery.add("ann", np.zeros(DIM))
    np.testing.assert_array_equal(gallery["ann"], np.ones((1, DIM), dtype=np.float32))


def test_append_adds_photos_of_an_enrolled_person(opener):
    gallery = opener(dim=2)
    gallery.add("ann", np.array([0.0, 0.0]))
    gallery.add("bob", np.array([5.0, 5.0]))
    assert gallery.add("ann", np.array([[9.0, 0.0], [8.0, 0.0]]), append=True) == 2
    assert gallery.num_descriptors == 4 and sorted(gallery.names) == ["ann", "bob"]
    np.testing.assert_array_equal(np.sort(gallery["ann"], axis=0),
                                  [[0.0, 0.0], [8.0, 0.0], [9.0, 0.0]])
    assert gallery.identify(np.array([10.0, 0.0], np.float32), threshold=1.5) == (1.0, "ann")
    assert gallery.add("carl", np.ones(2), append=True) == 1  # a new name is fine too
    assert gallery.delete("ann") == 3


def test_an_unknown_person_is_named_with_the_known_ones(opener):
    gallery = opener()
    with pytest.raises(UnknownPersonError, match="not in the face database, which is empty"):
        gallery.delete("zoe")
    gallery.add("ann", np.ones(DIM))
    gallery.add("bob", np.zeros(DIM))
    for call in (lambda: gallery.verify(np.ones(DIM), "zoe"), lambda: gallery.delete("zoe"),
                 lambda: gallery["zoe"], lambda: gallery.delete(3)):
        with pytest.raises(UnknownPersonError, match="not in the face database; known names: "
                                                     "'ann', 'bob'") as caught:
            call()
        assert isinstance(caught.value, KeyError)
    assert gallery.num_descriptors == 2


@pytest.mark.parametrize(("descriptors", "message"), [
    (np.ones(DIM + 1), r"shape \(16,\) or \(k, 16\) with k >= 1, got \(17,\)"),
    (np.ones((2, 3, DIM)), r"got \(2, 3, 16\)"),
    (np.ones((0, DIM)), r"got \(0, 16\)"),
    (np.ones(DIM, dtype=np.int64), "must be floating point .* got dtype int64"),
    (np.zeros((150, 150, 3), dtype=np.uint8), "got dtype uint8"),  # a photo, not encoded
    (["a"] * DIM, "got dtype <U1"),
    ([[1.0, 2.0], [3.0]], "must be a"),  # ragged
    (np.r_[np.nan, np.ones(DIM - 1)], "NaN or infinite"),
    (np.r_[np.inf, np.ones(DIM - 1)], "NaN or infinite"),
    (np.full(DIM, 1e300), "NaN or infinite"),  # float64 beyond float32's range
])
def test_bad_descriptors_are_refused_by_name(opener, descriptors, message):
    gallery = opener()
    gallery.add("ann", np.ones(DIM))
    with pytest.raises(ValueError, match=message):
        gallery.add("bob", descriptors)
    with pytest.raises(ValueError, match=message.replace("descriptors", "query")):
        gallery.identify(descriptors)
    assert gallery.names == ["ann"] and gallery.num_descriptors == 1


def test_bad_names_queries_and_options_are_refused(opener):
    gallery = opener()
    with pytest.raises(EmptyDatabaseError, match="the face database is empty: enroll"):
        gallery.identify(np.ones(DIM))
    for name, message in ((" ", "empty or blank"), (7, "must be a str"), ("a\x00b", "NUL"),
                          ("\udc80x", "valid Unicode"),
                          ("é" * (MAX_NAME_BYTES // 2 + 1), f"at most {MAX_NAME_BYTES} bytes")):
        with pytest.raises(ValueError, match=message):
            gallery.add(name, np.ones(DIM))
    gallery.add("é" * (MAX_NAME_BYTES // 2), np.ones(DIM))  # 512 bytes: the longest allowed
    with pytest.raises(ValueError, match="one .16,. descriptor, got 2"):
        gallery.identify(np.ones((2, DIM)))
    for k in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="k must be a positive int"):
            gallery.search(np.ones(DIM), k=k)
    for threshold in (0, -0.5, float("nan"), "0.6"):
        with pytest.raises(ValueError, match="threshold must be a positive finite number"):
            gallery.identify(np.ones(DIM), threshold=threshold)
    assert len(gallery.search(np.ones(DIM), k=10)) == 1  # k beyond the people enrolled


def test_reopening_with_another_dimension_is_refused(opener):
    gallery = opener()
    gallery.add("ann", np.ones(DIM))
    gallery.save()
    gallery.close()
    with pytest.raises(ValueError, match=f"holds {DIM}-d descriptors, not dim=8: open it "
                                         f"with dim={DIM}"):
        opener(dim=8)


def test_one_persons_many_photos_do_not_hide_the_next_nearest_people(opener):
    """The k nearest *people*: one person's 50 photos nearest to the query must not crowd
    out the others from the candidates (the backends widen their search)."""
    rng = np.random.default_rng(4)
    crowd = (0.01 * rng.standard_normal((50, DIM))).astype(np.float32)
    people = {"crowd": crowd, **{f"p{i}": 3 + rng.standard_normal((1, DIM)).astype(np.float32)
                                 for i in range(8)}}
    gallery = opener()
    enrol(gallery, people)
    query = np.zeros(DIM, dtype=np.float32)
    expected = reference(people, query)[:4]
    found = gallery.search(query, k=4)
    assert [n for _, n in found] == [n for _, n in expected]
    np.testing.assert_allclose([d for d, _ in found], [d for d, _ in expected], rtol=1e-12)


# ------------------------------------------------------------------ choosing a backend


def test_an_unknown_backend_lists_the_known_ones(tmp_path):
    with pytest.raises(ValueError, match="unknown gallery backend 'hnsw'; choose one of "
                                         "'exact', 'ann', 'milvus'"):
        open_gallery(tmp_path / "g.npz", "hnsw")


@pytest.mark.parametrize(("backend", "module", "location", "extra"), [
    ("ann", "faiss", "g.npz", "nbutils[ann]"),
    ("milvus", "pymilvus", "g.db", "nbutils[milvus]"),
    ("milvus", "milvus_lite", "g.db", "nbutils[milvus]"),
])
def test_a_backend_that_is_not_installed_names_its_extra(tmp_path, monkeypatch, backend,
                                                         module, location, extra):
    _requires(backend)
    monkeypatch.setitem(sys.modules, module, None)  # what an absent package looks like
    expected = re.escape(f"pip install '{extra}'")
    with pytest.raises(BackendNotInstalledError, match=expected) as caught:
        open_gallery(tmp_path / location, backend)
    assert isinstance(caught.value, ImportError)


def test_every_default_threshold_is_the_one_dlibs_file_records():
    """0.6 is what dlib publishes, and what its file records (the parser refuses a file
    that records another: tests/test_face_encoder.py); every default is that one name."""
    import inspect

    from nbutils.extras.cli.faces import build_parser
    from nbutils.faces.recognition import verify, who_is_it

    assert DISTANCE_THRESHOLD == 0.6
    for function in (verify, who_is_it):
        assert inspect.signature(function).parameters["threshold"].default == DISTANCE_THRESHOLD
    for method in (FaceDatabase.identify, FaceDatabase.verify):
        assert inspect.signature(method).parameters["threshold"].default == DISTANCE_THRESHOLD
    assert build_parser().parse_args(["identify", "k", "p"]).threshold == DISTANCE_THRESHOLD


def test_the_exact_backend_is_a_face_database(tmp_path):
    gallery = open_gallery(tmp_path / "g.npz", dim=DIM)
    assert isinstance(gallery, FaceDatabase) and gallery.location == tmp_path / "g.npz"
    gallery.add("ann", np.ones((2, DIM)))
    gallery.save()
    database = FaceDatabase.load(tmp_path / "g.npz")  # the file is FaceDatabase's format
    assert database.names == ["ann"] and database.num_descriptors == 2
    for backend in ("exact", "ann"):
        with pytest.raises(ValueError, match=f"the {backend} gallery is one .npz file, but "
                                             ".* is a folder"):
            open_gallery(tmp_path, backend, dim=DIM)


def test_a_database_opened_from_no_file_needs_a_path_to_save(tmp_path):
    database = FaceDatabase(dim=DIM)
    database.add("ann", np.ones(DIM))
    with pytest.raises(ValueError, match=r"not opened from a file: save\(path\)"):
        database.save()
    assert database.save(tmp_path / "a.npz") == tmp_path / "a.npz" == database.location
    database.add("bob", np.zeros(DIM))
    database.save()  # where it was saved last
    assert FaceDatabase.load(tmp_path / "a.npz").names == ["ann", "bob"]


# ----------------------------------------------------------------------- ann backend


def test_ann_recall_against_exact_search_on_random_unit_descriptors(tmp_path):
    """20,000 unit 128-d descriptors: the IVF index (trained at 16,384) must find the
    exact answer's person for >= 95% of queries 0.4 from an enrolled photo."""
    pytest.importorskip("faiss")
    rng = np.random.default_rng(5)
    n, d = 20_000, 128
    rows = rng.standard_normal((n, d)).astype(np.float32)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    gallery = open_gallery(tmp_path / "big.npz", "ann", dim=d)
    for i in range(0, n, 10):  # 2,000 people x 10 photos
        gallery.add(f"p{i // 10:04d}", rows[i:i + 10])
    assert gallery.index.nlist > 0  # the IVF index, not the exhaustive one
    picks = rng.integers(0, n, 200)
    noise = rng.standard_normal((200, d)).astype(np.float32)
    near = rows[picks] + 0.4 * noise / np.linalg.norm(noise, axis=1, keepdims=True)
    labels = np.arange(n) // 10
    exact = [labels[np.argmin(np.linalg.norm(rows - q, axis=1))] for q in near]
    found = [int(gallery.search(q)[0].name[1:]) for q in near]
    recall = np.mean(np.array(found) == np.array(exact))
    assert recall >= 0.95, f"recall@1 {recall:.3f}"


def test_ann_retrains_as_it_grows_and_stays_exact_when_probing_every_cell(tmp_path):
    pytest.importorskip("faiss")
    rng = np.random.default_rng(6)
    people = make_people(rng, 200)  # 500 descriptors
    gallery = open_gallery(tmp_path / "g.npz", "ann", dim=DIM, train_at=60, nprobe=10_000)
    trained_at = {}  # nlist -> the size at which it first appeared
    for name, rows in people.items():
        gallery.add(name, rows)
        trained_at.setdefault(gallery.index.nlist, gallery.num_descriptors)
    # Trained at 60 descriptors: 4 sqrt(60) ~ 31 cells, but k-means wants 39 points per
    # cell, so 1; then retrained whenever 39 points per cell allow twice the cells, each
    # time as soon as one person's photos take the size to 2 x 39, 4 x 39, 8 x 39.
    sizes = np.cumsum([rows.shape[0] for rows in people.values()])
    first_past = [int(sizes[np.argmax(sizes >= bound)]) for bound in (60, 78, 156, 312)]
    assert trained_at == {0: int(sizes[0]), 1: first_past[0], 2: first_past[1],
                          4: first_past[2], 8: first_past[3]}
    assert gallery.index.nprobe == 8  # nprobe=10_000: every cell
    assert_answers_like_reference(gallery, people, rng)
    gallery.save()
    gallery.close()
    assert_answers_like_reference(open_gallery(tmp_path / "g.npz", "ann", dim=DIM), people, rng)


def test_ann_cells_and_probes_follow_the_gallerys_size(tmp_path):
    """nlist = 4 sqrt(N) rounded to a power of two, at least 39 descriptors per cell;
    nprobe = max(16, sqrt(nlist) / 4), at most nlist (worked out by hand)."""
    pytest.importorskip("faiss")
    from nbutils.extras.gallery.ann import cells_for, probes_for

    # 4 sqrt(N) = 40 at N = 100 -> 32, but 39 points per cell allow only 2; 126 -> 128 at
    # 1,000, only 16 allowed; 512 at 16,384, only 256 allowed (512 x 39 > 16,384); 566 ->
    # 512 at 20,000; 1,265 -> 1,024; 4,000 -> 4,096; 12,649 -> 16,384.
    assert [cells_for(n) for n in (1, 38, 39, 100, 1_000, 16_384, 20_000, 10**5, 10**6,
                                   10**7)] == [1, 1, 1, 2, 16, 256, 512, 1_024, 4_096, 16_384]
    # It doubles where 4 sqrt(N) crosses 2^k sqrt(2): N = 2^(2k-3), e.g. 131,072 and 524,288.
    assert [cells_for(n) for n in (131_071, 131_072, 524_287, 524_288)] == [1_024, 2_048,
                                                                           2_048, 4_096]
    assert [probes_for(n) for n in (1, 8, 16, 1_024, 4_096, 8_192, 16_384, 65_536)] == \
        [1, 8, 16, 16, 16, 23, 32, 64]
    gallery = open_gallery(tmp_path / "g.npz", "ann", dim=DIM, train_at=1_000)
    rng = np.random.default_rng(7)
    gallery.add_many({f"p{i:03d}": rng.standard_normal((10, DIM)) for i in range(99)})
    assert (gallery.index.nlist, gallery.index.nprobe) == (0, 0)  # 990 descriptors: exhaustive
    gallery.add("p099", rng.standard_normal((10, DIM)))
    assert (gallery.index.nlist, gallery.index.nprobe) == (16, 16)
    gallery.save()
    fixed = open_gallery(tmp_path / "g.npz", "ann", dim=DIM, nprobe=3)
    assert (fixed.index.nlist, fixed.index.nprobe) == (16, 3)


def test_ann_refuses_files_that_are_not_its_own(tmp_path):
    pytest.importorskip("faiss")
    exact = open_gallery(tmp_path / "exact.npz", dim=DIM)
    exact.add("ann", np.ones(DIM))
    exact.save()
    with pytest.raises(ValueError, match="not a valid ann gallery: missing .*backend='exact'"):
        open_gallery(tmp_path / "exact.npz", "ann", dim=DIM)
    gallery = open_gallery(tmp_path / "ann.npz", "ann", dim=DIM)
    gallery.add("ann", np.ones((3, DIM)))
    gallery.save()
    arrays = dict(np.load(tmp_path / "ann.npz"))
    arrays["ids"] = arrays["ids"] + 100  # ids the index does not hold
    arrays["next_id"] = np.array(1000)
    np.savez(tmp_path / "bad_ids.npz", **arrays)
    with pytest.raises(ValueError, match="bad_ids.npz is not a valid ann gallery: its ids "
                                         "and the index's do not match"):
        open_gallery(tmp_path / "bad_ids.npz", "ann", dim=DIM)
    arrays = dict(np.load(tmp_path / "ann.npz"))
    arrays["index"] = arrays["index"][:40]  # truncated
    np.savez(tmp_path / "cut.npz", **arrays)
    with pytest.raises(ValueError, match="cut.npz is not a valid ann gallery: faiss cannot"):
        open_gallery(tmp_path / "cut.npz", "ann", dim=DIM)


# -------------------------------------------------------------------- milvus backend


def _closed_port() -> int:
    with socket.socket() as probe:  # a port the system just handed out, then freed
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_an_unreachable_milvus_is_a_clear_and_quick_error():
    _requires("milvus")
    uri = f"http://127.0.0.1:{_closed_port()}"
    start = time.monotonic()
    with pytest.raises(GalleryConnectionError, match=f"cannot reach Milvus at {uri} "
                                                     r"\(waited at most 2 s\)"):
        open_gallery(uri, "milvus", timeout=2)
    assert time.monotonic() - start < 10


def test_milvus_refuses_a_collection_that_is_not_a_gallery(tmp_path):
    _requires("milvus")
    from pymilvus import DataType, MilvusClient

    uri = str(tmp_path / "other.db")
    client = MilvusClient(uri=uri)
    schema = client.create_schema(auto_id=True)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("embedding", DataType.FLOAT_VECTOR, dim=DIM)
    client.create_collection("faces", schema=schema)
    with pytest.raises(ValueError, match="collection 'faces' at .*other.db is not a face "
                                         "gallery: its fields are"):
        open_gallery(uri, "milvus", dim=DIM)
    with pytest.raises(ValueError, match="collection must be a Milvus collection name"):
        open_gallery(uri, "milvus", dim=DIM, collection="my faces")
    with open_gallery(uri, "milvus", dim=DIM, collection="faces_2") as gallery:
        gallery.add("ann", np.ones(DIM))  # another collection of the same file is fine
    client.close()


def test_milvus_lite_recovers_from_a_save_interrupted_while_rewriting(tmp_path, monkeypatch):
    _requires("milvus")
    rng = np.random.default_rng(7)
    people = make_people(rng, 10)
    uri = tmp_path / "g.db"
    gallery = open_gallery(uri, "milvus", dim=DIM)
    enrol(gallery, people)
    gallery.delete("person_02")
    del people["person_02"]
    client = gallery.index._client
    real_drop = client.drop_collection

    def crash_on_the_old_one(name, *args, **kwargs):
        if name == "faces":
            raise KeyboardInterrupt  # the process dies between the copy and the drop
        return real_drop(name, *args, **kwargs)

    monkeypatch.setattr(client, "drop_collection", crash_on_the_old_one)
    with pytest.raises(KeyboardInterrupt):
        gallery.save()
    monkeypatch.undo()
    assert client.has_collection("faces__rewrite")
    gallery.close()
    reopened = open_gallery(uri, "milvus", dim=DIM)
    assert not reopened.index._client.has_collection("faces__rewrite")
    assert_answers_like_reference(reopened, people, rng)
    reopened.close()


def test_the_gallery_stays_apart_from_the_photo_pipeline():
    """Like the face database: no gallery module, nor any nbutils module it pulls in,
    imports the photo pipeline, Keras or TensorFlow. nbutils.faces's __init__ runs, but it
    imports its modules lazily, on first use: checked by importing them all in a fresh
    process."""
    from test_import_graph import (
        PIPELINE,
        ROOT,
        _is_within,
        import_graph,
        imported_names,
        module_files,
        reachable,
    )

    modules = module_files(ROOT, "nbutils")
    graph = import_graph(modules)
    gallery = {m for m in modules if _is_within(m, ("nbutils.extras.gallery",))}
    assert {"nbutils.extras.gallery.ann", "nbutils.extras.gallery.milvus"} <= gallery
    lazy = {**graph, "nbutils.faces": set()}  # its __init__ imports on first use only
    pulled_in = gallery.union(*(reachable(lazy, m) for m in gallery)) - {"nbutils.faces"}
    offending = {(module, name) for module in pulled_in
                 for name in imported_names(module, modules) if _is_within(name, PIPELINE)}
    assert not offending, f"the gallery reaches the pipeline: {sorted(offending)}"
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, nbutils.extras.gallery.ann, "
         "nbutils.extras.gallery.milvus, nbutils.extras.cli.faces_checks; "
         "print(sorted(m for m in sys.modules if m.split('.')[0] in ('keras', 'tensorflow') "
         "or m in ('nbutils.faces.encoder', 'nbutils.faces.detect')))"],
        capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "[]", loaded.stdout


def test_a_milvus_lite_gallery_open_in_another_process_is_a_clear_error(tmp_path):
    _requires("milvus")
    uri = str(tmp_path / "busy.db")
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from pymilvus import MilvusClient; "
         f"MilvusClient(uri={uri!r}); print('ready', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(GalleryConnectionError, match="cannot open the Milvus Lite gallery "
                                                         ".*busy.db.*One process at a time"):
            open_gallery(uri, "milvus", dim=DIM)
    finally:
        holder.communicate(input="", timeout=30)  # closing its stdin ends it
