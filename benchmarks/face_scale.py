"""Face search at scale: the exact, ann (faiss IVF) and Milvus Lite gallery backends on
10^6 synthetic face descriptors (issue 14).

Descriptors are 128-d unit vectors grouped by identity, shaped like real ones from the
course's encoder (same person ~0.32-0.42 apart, different people ~0.70-0.86 apart):

- a person's centre is ``normalise(s * m + g)``: ``m`` one unit direction shared by
  everyone, ``g`` ~ N(0, I/d) (norm ~1). Random centres alone would be ~1.41 apart; the
  pull ``s`` toward ``m`` brings centres' cosine to s^2 / (1 + s^2);
- a photo is ``normalise(centre + sigma * n)``, n ~ N(0, I/d): two photos of one person
  lie sqrt(2 sigma^2 / (1 + sigma^2)) apart, two people's photos
  sqrt(2 - 2 cos / (1 + sigma^2)) apart. sigma and s are solved from the target means
  (``--within``, ``--between``); the achieved means are measured on sampled pairs and
  printed.

Queries are fresh photos (not enrolled) of random enrolled people. For each backend:
``identify`` latency p50 / p99 (after a warm-up), recall@1 against the exact backend on the
same descriptors, build (or insert) time and the resident-memory growth while building
(/proc/self/statm; every gallery is kept until all are timed, so none reuses another's
freed memory). Queries take turns, 25 at a time per backend, so that the shared machine's
drifting load falls on all alike. Milvus Lite (HNSW by AUTOINDEX) is measured on the first
``--milvus-size`` descriptors (10^4 by default: its search time grows with the size,
~0.09 s at 10^4 and ~1.2 s at 10^5 here), against an exact gallery of those. ann runs with
its defaults, as a user gets them: enrolled 10,000 people per ``add_many``, it trains its
IVF lists at 16,384 descriptors and retrains them as the gallery grows (nlist and nprobe
follow N, `nbutils.extras.gallery.ann.cells_for`); the last line quotes it. ``--nprobe``
adds runs with nprobe fixed, for comparison. BLAS and faiss run on one thread, so the
ratios compare algorithms, not core counts; all are measured in this one process.

    .venv/bin/python benchmarks/face_scale.py --size 100000 --queries 200 --milvus-size 10000
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # before NumPy loads its BLAS

import argparse  # noqa: E402
import gc  # noqa: E402
import importlib.util  # noqa: E402
import math  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import NamedTuple  # noqa: E402

import numpy as np  # noqa: E402

from nbutils.extras.gallery import open_gallery  # noqa: E402
from nbutils.extras.gallery.ann import AnnIndex  # noqa: E402  (faiss is imported on use)
from nbutils.extras.gallery.milvus import MilvusIndex  # noqa: E402  (pymilvus likewise)
from nbutils.faces.database import FaceDatabase  # noqa: E402

_PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes() -> int:
    """This process's resident set size, from /proc/self/statm."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * _PAGE


class Faces(NamedTuple):
    """Synthetic enrolled descriptors (people x photos x d), queries and their owners."""

    rows: np.ndarray  # (people * photos, d) float32, person p's photos contiguous
    queries: np.ndarray  # (q, d) float32
    owners: np.ndarray  # (q,) int: the person each query is a photo of
    photos: int


def _normalise(x: np.ndarray) -> np.ndarray:
    x /= np.linalg.norm(x, axis=-1, keepdims=True)
    return x


def synthetic_faces(people: int, photos: int, queries: int, dim: int, within: float,
                    between: float, seed: int = 0) -> Faces:
    """People as clusters on the unit sphere with the given mean distances (module doc)."""
    # within^2 = 2 sigma^2 / (1 + sigma^2);  between^2 = 2 - 2 cos / (1 + sigma^2).
    sigma2 = within**2 / (2 - within**2)
    cos = (1 - between**2 / 2) * (1 + sigma2)
    if not 0 <= cos < 1:
        raise ValueError(f"between={between} is not reachable with within={within}")
    pull = math.sqrt(cos / (1 - cos))
    rng = np.random.default_rng(seed)
    shared = _normalise(rng.standard_normal(dim).astype(np.float32))
    centres = rng.standard_normal((people, dim), dtype=np.float32) / np.float32(math.sqrt(dim))
    centres = _normalise(centres + np.float32(pull) * shared)
    noise = np.float32(math.sqrt(sigma2 / dim))
    rows = np.empty((people * photos, dim), dtype=np.float32)
    chunk = max(1, 65_536 // photos)
    for start in range(0, people, chunk):
        block = centres[start:start + chunk, np.newaxis, :] + noise * rng.standard_normal(
            (min(chunk, people - start), photos, dim), dtype=np.float32)
        rows[start * photos:(start + block.shape[0]) * photos] = \
            _normalise(block).reshape(-1, dim)
    owners = rng.integers(0, people, queries)
    fresh = centres[owners] + noise * rng.standard_normal((queries, dim), dtype=np.float32)
    return Faces(rows, _normalise(fresh), owners, photos)


def measured_means(faces: Faces, pairs: int = 20_000, seed: int = 1) -> tuple[float, float]:
    """Mean distance between two photos of one person, and of two different people."""
    rng = np.random.default_rng(seed)
    people = faces.rows.shape[0] // faces.photos
    a = rng.integers(0, people, pairs)
    i, j = rng.integers(0, faces.photos, (2, pairs))
    same = i != j
    within = np.linalg.norm(faces.rows[a * faces.photos + i] - faces.rows[a * faces.photos + j],
                            axis=1)[same]
    b = (a + rng.integers(1, people, pairs)) % people
    between = np.linalg.norm(faces.rows[a * faces.photos + i] - faces.rows[b * faces.photos + j],
                             axis=1)
    return float(within.mean()), float(between.mean())


def name(person: int) -> str:
    return f"person_{person:07d}"


class Result(NamedTuple):
    backend: str
    size: int
    p50_ms: float
    p99_ms: float
    build_s: float
    rss_mb: float
    answers: list[str | None]


def enrol(gallery: FaceDatabase, rows: np.ndarray, photos: int, batch: int = 10_000) -> None:
    """Add everyone, ``batch`` people per ``add_many`` call."""
    people = rows.shape[0] // photos
    for start in range(0, people, batch):
        stop = min(people, start + batch)
        gallery.add_many({name(p): rows[p * photos:(p + 1) * photos]
                          for p in range(start, stop)})


class Built(NamedTuple):
    label: str
    gallery: FaceDatabase
    size: int
    build_s: float
    rss_mb: float


def build(label: str, opener: Callable[[], FaceDatabase], rows: np.ndarray, photos: int) -> Built:
    """A gallery of ``rows``, its build time and the resident-memory growth it caused."""
    gc.collect()
    before = rss_bytes()
    t = time.perf_counter()
    gallery = opener()
    enrol(gallery, rows, photos)
    index = gallery.index
    if isinstance(index, MilvusIndex):
        gallery.save()  # flush: the rows are sealed and indexed
    built = Built(label, gallery, rows.shape[0], time.perf_counter() - t,
                  (rss_bytes() - before) / 1e6)
    extra = ""
    if isinstance(index, AnnIndex):
        extra = (f"; nlist {index.nlist:,} (trained at {index.trained_size:,}), "
                 f"nprobe {index.nprobe}")
    print(f"{label:28s} {built.size:>9,}  built in {built.build_s:6.1f} s, RSS "
          f"+{built.rss_mb:5.0f} MB{extra}", flush=True)
    return built


def measure(galleries: list[Built], queries: np.ndarray, block: int = 25) -> list[Result]:
    """Time ``identify`` on every query in every gallery, taking turns ``block`` queries
    at a time, so that the shared machine's drifting load falls on all of them alike."""
    times: dict[str, list[float]] = {b.label: [] for b in galleries}
    answers: dict[str, list[str | None]] = {b.label: [] for b in galleries}
    for built in galleries:
        built.gallery.identify(queries[0])  # warm-up
    for start in range(0, len(queries), block):
        for built in galleries:
            for q in queries[start:start + block]:
                t = time.perf_counter()
                answers[built.label].append(built.gallery.identify(q).name)
                times[built.label].append(time.perf_counter() - t)
    results = []
    for built in galleries:
        ms = np.array(times[built.label]) * 1e3
        result = Result(built.label, built.size, float(np.percentile(ms, 50)),
                        float(np.percentile(ms, 99)), built.build_s, built.rss_mb,
                        answers[built.label])
        print(f"{built.label:28s} {built.size:>9,}  p50 {result.p50_ms:8.3f} ms  p99 "
              f"{result.p99_ms:8.3f} ms", flush=True)
        results.append(result)
    return results


def recall(result: Result, exact: Result) -> float:
    """How often ``result`` names the exact backend's person (None included)."""
    return float(np.mean([a == e for a, e in zip(result.answers, exact.answers, strict=True)]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1_000_000, help="descriptors enrolled")
    parser.add_argument("--queries", type=int, default=1_000, help="timed queries")
    parser.add_argument("--photos", type=int, default=10, help="descriptors per person")
    parser.add_argument("--dim", type=int, default=128, help="descriptor dimension")
    parser.add_argument("--within", type=float, default=0.37,
                        help="target mean distance, two photos of one person")
    parser.add_argument("--between", type=float, default=0.78,
                        help="target mean distance, photos of two people")
    parser.add_argument("--nprobe", type=int, nargs="*", default=[],
                        help="extra ann runs with nprobe fixed to each of these values")
    parser.add_argument("--milvus-size", type=int, default=10_000,
                        help="descriptors for Milvus Lite (0: skip it)")
    args = parser.parse_args()

    people = args.size // args.photos
    t = time.perf_counter()
    faces = synthetic_faces(people, args.photos, args.queries, args.dim, args.within,
                            args.between)
    within, between = measured_means(faces)
    print(f"{people:,} people x {args.photos} photos = {faces.rows.shape[0]:,} unit "
          f"{args.dim}-d descriptors, {args.queries:,} queries (made in "
          f"{time.perf_counter() - t:.1f} s); mean distance within a person {within:.3f}, "
          f"between people {between:.3f} (targets {args.within}, {args.between})", flush=True)

    size = faces.rows.shape[0]
    results: list[tuple[Result, Result]] = []
    milvus: Result | None = None
    with tempfile.TemporaryDirectory() as tmp:
        def at(file: str) -> Path:
            return Path(tmp) / file

        built = [build("exact", lambda: open_gallery(at("exact.npz"), dim=args.dim),
                       faces.rows, args.photos)]
        if importlib.util.find_spec("faiss") is None:
            print("ann: skipped, faiss-cpu is not installed (pip install 'nbutils[ann]')")
        else:
            import faiss

            faiss.omp_set_num_threads(1)
            configs: list[tuple[str, dict[str, int]]] = [("ann (defaults)", {})]
            configs += [(f"ann (nprobe {n})", {"nprobe": n}) for n in args.nprobe]
            for i, (label, options) in enumerate(configs):
                built.append(build(label, lambda o=options, i=i: open_gallery(
                    at(f"ann{i}.npz"), "ann", dim=args.dim, **o), faces.rows, args.photos))
        exact, *anns = measure(built, faces.queries)
        del built
        truth = np.mean([a == name(o) for a, o in zip(exact.answers, faces.owners, strict=True)])
        print(f"{'':28s} exact names the query's own person for {truth:.3f} of queries")
        results += [(ann, exact) for ann in anns]
        milvus_size = min(size, args.milvus_size) // args.photos * args.photos
        if milvus_size and importlib.util.find_spec("milvus_lite") is not None:
            head = faces.rows[:milvus_size]
            # Queries of people inside the subset, against an exact gallery of it.
            inside = faces.queries[faces.owners < milvus_size // args.photos]
            pair = [build("exact (milvus's subset)",
                          lambda: open_gallery(at("small.npz"), dim=args.dim), head,
                          args.photos),
                    build("milvus-lite (AUTOINDEX)", lambda: open_gallery(
                        at("faces.db"), "milvus", dim=args.dim, timeout=600.0), head,
                        args.photos)]
            try:
                small, milvus = measure(pair, inside)
            finally:
                pair[1].gallery.close()
            results.append((milvus, small))
        elif milvus_size:
            print("milvus-lite: skipped, not installed (pip install 'nbutils[milvus]')")

    for result, reference in results:
        ratio = reference.p50_ms / result.p50_ms
        speed = f"{ratio:6.1f}x faster" if ratio >= 1 else f"{1 / ratio:6.1f}x slower"
        print(f"{result.backend:28s} {result.size:>9,}  recall@1 vs exact "
              f"{recall(result, reference):.3f}, {speed} than exact (p50)")
    summary = f"face scale {size}:"
    ann = next((r for r, _ in results if r.backend == "ann (defaults)"), None)
    if ann is not None:
        summary += (f" ann {exact.p50_ms / ann.p50_ms:.0f}x faster than exact, recall@1 "
                    f"{recall(ann, exact):.3f} (its defaults);")
    if milvus is not None:
        summary += f" milvus-lite p50 {milvus.p50_ms:.1f} ms ({milvus.size:,});"
    print(f"{summary} exact p50 {exact.p50_ms:.1f} ms")


if __name__ == "__main__":
    main()
