"""Time of one 1:K face query against 100,000 enrolled descriptors, against the course's loop.

The database holds random 128-d float32 descriptors: 10,000 identities x 10 photos each.
``FaceDatabase.search`` (one BLAS matrix-vector product over every descriptor) is timed
against a baseline in the same process: the course's ``who_is_it``, a Python loop over
identities computing ``np.linalg.norm`` per identity (here over the identity's 10 rows).
Prints both median times, their ratio, and checks that both answer the same.

    .venv/bin/python benchmarks/face_search.py --people 10000 --photos 10 --queries 50
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

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
    args = parser.parse_args()

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

    fast_s, fast = median_seconds(db.search, queries)
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


if __name__ == "__main__":
    main()
