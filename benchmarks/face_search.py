"""Time of one 1:K face query against 100,000 enrolled descriptors, against the course's loop;
then the approximate (ann) search strategy against the exact one.

The database holds random 128-d float32 descriptors: 10,000 identities x 10 photos each.
``FaceDatabase.search`` (one BLAS matrix-vector product over every descriptor) is timed
against a baseline in the same process: the course's ``who_is_it``, a Python loop over
identities computing ``np.linalg.norm`` per identity (here over the identity's 10 rows).
Prints both median times, their ratio, and checks that both answer the same.

Then, when faiss-cpu is installed (``nbutils[ann]``), the same number of random *unit*
descriptors go into an exact and an ann gallery
(`nbutils.extras.gallery`), enrolled person by person as a real gallery grows; queries lie
at distance 0.4 from one enrolled photo (a same-person distance). Prints each backend's
median ``identify`` time, their ratio, and recall@1: how often the ann backend names the
exact backend's person. ``--hnsw`` also times the HNSW graphs that were measured against
IVF when choosing the ann backend (faiss's, and usearch's if installed; minutes to build).

    .venv/bin/python benchmarks/face_search.py --people 10000 --photos 10 --queries 50
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from nbutils.extras.gallery import open_gallery
from nbutils.faces.database import FaceDatabase


def who_is_it_loop(query: np.ndarray, database: dict[str, np.ndarray]) -> tuple[float, str]:
    """The course's search: for each identity, its distance; keep the smallest."""
    min_dist, identity = float("inf"), ""
    for name, encodings in database.items():
        dist = float(np.min(np.linalg.norm(encodings - query, axis=1)))
        if dist < min_dist:
            min_dist, identity = dist, name
    return min_dist, identity


def median_seconds(fn, queries: np.ndarray) -> tuple[float, list]:
    """Median wall time of fn(q) over the queries (after one warm-up call), and the answers."""
    fn(queries[0])
    times, answers = [], []
    for q in queries:
        t = time.perf_counter()
        answers.append(fn(q))
        times.append(time.perf_counter() - t)
    return statistics.median(times), answers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=10_000, help="identities enrolled")
    parser.add_argument("--photos", type=int, default=10, help="descriptors per identity")
    parser.add_argument("--dim", type=int, default=128, help="descriptor dimension")
    parser.add_argument("--queries", type=int, default=50, help="timed queries (database)")
    parser.add_argument("--baseline-queries", type=int, default=5, help="timed queries (loop)")
    parser.add_argument("--ann-queries", type=int, default=300,
                        help="queries for the ann backend's recall and time")
    parser.add_argument("--hnsw", action="store_true",
                        help="also build and time HNSW graphs (faiss, usearch): minutes")
    args = parser.parse_args()
    exact_vs_loop(args)
    if importlib.util.find_spec("faiss") is None:
        print("ann backend: skipped, faiss-cpu is not installed (pip install 'nbutils[ann]')")
        return
    ann_vs_exact(args)


def exact_vs_loop(args: argparse.Namespace) -> None:
    """FaceDatabase.search against the course's Python loop."""
    rng = np.random.default_rng(0)
    encodings = rng.standard_normal((args.people, args.photos, args.dim)).astype(np.float32)
    as_dict = {f"person_{i:05d}": encodings[i] for i in range(args.people)}
    t = time.perf_counter()
    db = FaceDatabase(dim=args.dim)
    for name, rows in as_dict.items():
        db.add(name, rows)
    build_s = time.perf_counter() - t
    # Queries near an enrolled photo, so there is a clear right answer.
    picks = rng.integers(0, args.people, size=args.queries)
    noise = 0.3 * rng.standard_normal((args.queries, args.dim))
    queries = (encodings[picks, 0] + noise).astype(np.float32)

    fast_s, fast = median_seconds(lambda q: db.search(q)[0], queries)
    top5_s, _ = median_seconds(lambda q: db.search(q, k=5), queries)
    slow_s, slow = median_seconds(lambda q: who_is_it_loop(q, as_dict),
                                  queries[: args.baseline_queries])
    for (d_fast, n_fast), (d_slow, n_slow) in zip(fast, slow, strict=False):
        assert n_fast == n_slow and abs(d_fast - d_slow) < 1e-4, "the two searches disagree"

    print(f"database: {db.num_descriptors:,} descriptors of dim {args.dim}, "
          f"{len(db):,} identities x {args.photos} (built in {build_s:.2f} s)")
    print(f"FaceDatabase.search  : {fast_s * 1e3:8.3f} ms per query "
          f"(median of {len(queries)})")
    print(f"  with k=5 identities: {top5_s * 1e3:8.3f} ms per query (median of {len(queries)})")
    print(f"who_is_it Python loop: {slow_s * 1e3:8.3f} ms per query "
          f"(median of {min(len(queries), args.baseline_queries)})")
    print(f"speed-up             : {slow_s / fast_s:8.1f}x")


def unit_rows(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    """(n, dim) float32 rows drawn uniformly on the unit sphere."""
    rows = rng.standard_normal((n, dim)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def ann_vs_exact(args: argparse.Namespace) -> None:
    """The ann gallery backend against the exact one: identify time and recall@1."""
    rng = np.random.default_rng(1)
    rows = unit_rows(rng, args.people * args.photos, args.dim)
    picks = rng.integers(0, rows.shape[0], args.ann_queries)
    queries = rows[picks] + 0.4 * unit_rows(rng, args.ann_queries, args.dim)
    answers, times = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for backend in ("exact", "ann"):
            gallery = open_gallery(Path(tmp) / f"{backend}.npz", backend, dim=args.dim)
            t = time.perf_counter()
            for person in range(args.people):
                start = person * args.photos
                gallery.add(f"person_{person:05d}", rows[start:start + args.photos])
            build_s = time.perf_counter() - t
            times[backend], found = median_seconds(gallery.identify, queries)
            answers[backend] = [hit.name for hit in found]
            extra = "" if backend == "exact" else \
                f", nlist {gallery.index.nlist}, nprobe {gallery.index.nprobe}" \
                if gallery.index.nlist else \
                ", still exhaustive"
            print(f"{backend:5s} gallery: {times[backend] * 1e3:8.3f} ms per identify "
                  f"(median of {len(queries)}; enrolled in {build_s:.1f} s{extra})")
    same = np.mean([a == e for a, e in zip(answers["ann"], answers["exact"], strict=True)])
    print(f"ann recall@1 vs exact: {same:.3f}; speed-up {times['exact'] / times['ann']:.1f}x "
          f"({rows.shape[0]:,} unit descriptors, queries at distance 0.4 from one)")
    if args.hnsw:
        hnsw_graphs(rows, queries)


def hnsw_graphs(rows: np.ndarray, queries: np.ndarray) -> None:
    """Build time, query time and recall@1 (descriptor level) of HNSW graphs, one thread."""
    import faiss

    faiss.omp_set_num_threads(1)
    sqnorms = np.einsum("ij,ij->i", rows, rows)
    truth = np.array([np.argmin(sqnorms - 2 * (rows @ q)) for q in queries])
    engines = {}
    t = time.perf_counter()
    graph = faiss.IndexHNSWFlat(rows.shape[1], 16)
    graph.hnsw.efConstruction = 128
    graph.add(rows)
    engines["faiss HNSW"] = (time.perf_counter() - t, lambda q: graph.search(q[None], 1)[1][0, 0],
                             lambda ef: setattr(graph.hnsw, "efSearch", ef))
    if importlib.util.find_spec("usearch") is not None:
        from usearch.index import Index

        t = time.perf_counter()
        index = Index(ndim=rows.shape[1], metric="l2sq", dtype="f32", connectivity=16,
                      expansion_add=128)
        index.add(np.arange(rows.shape[0], dtype=np.uint64), rows, threads=1)
        engines["usearch HNSW"] = (time.perf_counter() - t,
                                   lambda q: index.search(q, 1, threads=1).keys[0],
                                   lambda ef: setattr(index, "expansion_search", ef))
    for name, (build_s, search, set_ef) in engines.items():
        for ef in (32, 64, 128):
            set_ef(ef)
            seconds, found = median_seconds(search, queries)
            recall = np.mean(np.array(found, dtype=np.int64) == truth)
            print(f"{name:12s} ef={ef:3d}: {seconds * 1e3:7.3f} ms per query, recall@1 "
                  f"{recall:.3f} (built in {build_s:.0f} s, one thread)")


if __name__ == "__main__":
    main()
