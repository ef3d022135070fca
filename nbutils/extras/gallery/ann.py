"""The approximate backend: a faiss inverted-file index (IVF-Flat), for 10^6 descriptors and
beyond in one process. Needs ``pip install 'nbutils[ann]'`` (faiss-cpu).

How it searches: k-means splits the descriptors into ``nlist`` cells; a query is compared
with the nlist cell centres, then only with the descriptors of its ``nprobe`` nearest
cells, about nlist + nprobe N / nlist comparisons instead of N. A query's true nearest
descriptor can sit in a cell that was not probed: then the answer is the nearest person
*found* (the distances reported are still exact, recomputed for the candidates). Small
galleries (fewer than ``train_at`` descriptors) are searched exhaustively, exactly.

Both follow the gallery's size N (`cells_for`, `probes_for`):

- nlist = 4 sqrt(N) rounded to a power of two (at most N / 39, the fewest points per
  centre faiss's k-means accepts): 1,024 cells at 10^5, 4,096 at 10^6, 16,384 at 10^7;
  cells hold sqrt(N) / 4 descriptors on average;
- the lists are retrained (k-means again, every vector re-added) whenever N has grown
  enough for that nlist to double, i.e. at every fourfold growth (twofold while the
  39-point floor decides). Each time costs about what adding every vector costs (each
  is compared with the nlist centres), plus k-means on 64 points per cell; as the sizes
  grow geometrically, all the retrainings together cost little more than the last one;
- nprobe = max(16, sqrt(nlist) / 4): 16 up to 4,096 cells, 32 at 16,384. On face-like
  descriptors (`benchmarks/face_scale.py`, 10^6) recall@1 against exact search held 0.99
  at nprobe 8 with 1,024 cells, 12 with 4,096: the probes needed grow about as
  sqrt(nlist), slower than nlist, so the share of the gallery a query reads falls as it
  grows. Pass ``nprobe`` to fix it instead. Descriptors without any cluster structure
  need more: on random unit vectors (`benchmarks/face_search.py`'s worst case) the bare
  index with 4,096 cells found the nearest at 10^6 for 0.96 of queries at nprobe 16,
  0.98 at 24 and all at 32.

At 10^6 face-like descriptors (`benchmarks/face_scale.py`, docs/scaling.md): 4,096 cells
trained at 524,290 descriptors, nprobe 16, recall@1 0.994 against exact search and 145x
faster per query; building took minutes (each retraining runs k-means on 64 points per
cell and re-adds every vector).

Why faiss IVF-Flat, not an HNSW graph (usearch's, or faiss's own): measured on this
project's 2-core machine (shared, so times are rough), random unit 128-d descriptors,
queries at distance 0.4 from one enrolled photo (`benchmarks/face_search.py`, one thread):

- through this gallery at 10^5 descriptors, recall@1 against the exact backend 0.973 at
  0.47 ms per identify vs 12.1 ms exact (26x; 1,024 cells, nprobe 16; a loaded machine).
  With the earlier schedule (2 sqrt(N) cells, retrained at eightfold growth, nprobe 16):
  0.993 at 0.57 ms vs 6.2 ms (10^5, 10.8x), 0.990 at 1.4 ms vs 60 ms (10^6, 41x);
- the bare indexes on 10^5: IVF recall@1 0.99 at 0.25 ms (nlist 1024, nprobe 16); faiss
  HNSW 0.96 / 0.99 at 0.51 / 0.85 ms (ef 64 / 128); usearch HNSW 0.97 / 1.0 at
  1.4 / 2.6 ms. Building took 3 s for IVF, 106 s (faiss) and 244 s (usearch) for HNSW;
- deleting a person removes their vectors from IVF's lists, so the saved file no longer
  holds them. HNSW only marks deleted nodes: usearch still writes the vectors to the
  saved file (even with ``remove(compact=True)``), faiss's HNSW cannot remove at all;
  honouring a deletion would mean rebuilding the graph (minutes at 10^5 here);
- faiss-cpu is what Milvus Lite runs on too: the two optional backends share it.

The gallery is saved as one ``.npz`` (written atomically): names, each vector's owner and
id, and the faiss index's own serialisation as bytes. Open only files you trust: faiss
parses those bytes itself (the sizes and ids are checked afterwards).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from nbutils._internal.atomic import atomic_write
from nbutils._internal.npz import NpzError, NpzTooLarge, read_npz
from nbutils.extras.gallery.base import BackendNotInstalledError, Gallery
from nbutils.faces.database import DEFAULT_DIM, MAX_LOAD_BYTES

FORMAT_VERSION = 1
_KEYS = ("format_version", "backend", "dim", "names", "labels", "ids", "next_id",
         "trained_size", "index")
#: Below this many descriptors the search is an exact scan: fast enough, and k-means needs
#: enough points per cell (faiss warns below 39 per centroid).
DEFAULT_TRAIN_AT = 16_384
#: The fewest cells probed per query when ``nprobe`` follows the size (`probes_for`).
MIN_NPROBE = 16
_MIN_POINTS_PER_CELL = 39  # faiss's k-means warns below this many points per centre
_MAX_POINTS_PER_CELL = 64  # k-means runs on a sample of this many per centre: seconds
_MIN_LIMIT = 32  # descriptors fetched per query at least (a person has several)


def cells_for(size: int) -> int:
    """nlist for a gallery of ``size`` descriptors: the power of two nearest 4 sqrt(size)
    on a log scale (the largest p with p^2 <= 32 size: 4 sqrt(size) / sqrt(2) < p <=
    4 sqrt(size) sqrt(2)), halved while it would leave fewer than 39 descriptors per cell;
    at least 1. Integer arithmetic, so the sizes where it doubles are exact: p^2 / 32."""
    if size < 1:
        return 1
    nlist = 1 << ((32 * size).bit_length() - 1) // 2
    while nlist > 1 and nlist * _MIN_POINTS_PER_CELL > size:
        nlist //= 2
    return nlist


def probes_for(nlist: int) -> int:
    """nprobe for ``nlist`` cells: max(16, sqrt(nlist) / 4, rounded), at most nlist."""
    return min(nlist, max(MIN_NPROBE, round(math.sqrt(nlist) / 4)))


def import_faiss() -> Any:
    """The faiss module, or BackendNotInstalledError saying what to install."""
    try:
        import faiss
    except ImportError as err:
        raise BackendNotInstalledError(
            "the 'ann' gallery backend needs faiss-cpu, which is not installed: "
            "pip install 'nbutils[ann]' (or pip install faiss-cpu)") from err
    return faiss


class AnnGallery(Gallery):
    """A gallery searched by a faiss IVF-Flat index; see the module docstring.

    Args:
        path: the ``.npz`` file; read if it exists, else created by the first ``save``.
        dim: the descriptor dimension; a file of another dimension is refused.
        nprobe: cells visited per query (more: higher recall, slower; >= nlist: exact).
            None: `probes_for` the current nlist, so it follows the gallery's size.
        train_at: the size at which the exhaustive index becomes an IVF one (then
            retrained as the gallery grows, `cells_for`).
        max_bytes: the largest file accepted (None: 1 GiB, ~2 million descriptors).
    """

    backend = "ann"

    def __init__(self, path: str | os.PathLike, dim: int = DEFAULT_DIM, *,
                 nprobe: int | None = None, train_at: int = DEFAULT_TRAIN_AT,
                 max_bytes: int | None = None) -> None:
        for option, value in (("nprobe", nprobe), ("train_at", train_at)):
            if option == "nprobe" and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{option} must be a positive int, got {value!r}")
        self._faiss = import_faiss()
        path = Path(path)
        super().__init__(dim, str(path))
        self._path, self._nprobe, self._train_at = path, nprobe, train_at
        self._ids_of: dict[str, np.ndarray] = {}  # name -> (k,) int64 faiss ids
        self._owner_of: dict[int, str] = {}  # faiss id -> name
        self._next_id = 0  # ids are never reused, so a stale id cannot name someone else
        self._trained_size = 0  # N when the IVF lists were trained; 0: exhaustive index
        if path.exists() and not path.is_file():
            raise ValueError(f"the ann gallery is one .npz file, but {path} is a folder: "
                             "give a file path such as people.npz")
        if path.exists():
            self._load(max_bytes)
        else:
            self._index = self._faiss.IndexIDMap2(self._faiss.IndexFlatL2(dim))

    # ------------------------------------------------------------------ storage

    @property
    def names(self) -> list[str]:
        return sorted(self._ids_of)

    @property
    def num_descriptors(self) -> int:
        return int(self._index.ntotal)

    @property
    def nlist(self) -> int:
        """Cells of the IVF index; 0 while the search is exhaustive (not trained yet)."""
        return int(self._index.nlist) if self._trained_size else 0

    @property
    def trained_size(self) -> int:
        """The number of descriptors the IVF lists were last trained on; 0: not yet."""
        return self._trained_size

    @property
    def nprobe(self) -> int:
        """Cells probed per query; 0 while the search is exhaustive."""
        return int(self._index.nprobe) if self._trained_size else 0

    def _set_nprobe(self) -> None:
        nlist = self.nlist
        self._index.nprobe = probes_for(nlist) if self._nprobe is None else \
            min(self._nprobe, nlist)

    def __contains__(self, name: object) -> bool:
        return name in self._ids_of

    def _insert(self, name: str, rows: np.ndarray) -> None:
        ids = np.arange(self._next_id, self._next_id + rows.shape[0], dtype=np.int64)
        self._index.add_with_ids(rows, ids)
        self._next_id += rows.shape[0]
        self._ids_of[name] = ids
        self._owner_of.update(dict.fromkeys(ids.tolist(), name))
        n = self.num_descriptors
        if (n >= self._train_at and not self._trained_size) or \
                (self._trained_size and cells_for(n) > self.nlist):
            self._train()

    def _remove(self, name: str) -> int:
        ids = self._ids_of.pop(name)
        # IDMap2 and IVF (with its hash-table direct map) both erase the vectors' bytes
        # from their storage, so the next save cannot write them.
        self._index.remove_ids(ids)
        for i in ids.tolist():
            del self._owner_of[i]
        return ids.shape[0]

    def _rows_of(self, names: list[str]) -> dict[str, np.ndarray]:
        if not names:
            return {}
        ids = [self._ids_of[name] for name in names]
        rows = self._index.reconstruct_batch(np.concatenate(ids))  # one call for everyone
        return dict(zip(names, np.split(rows, np.cumsum([len(i) for i in ids[:-1]])),
                        strict=True))

    def _train(self) -> None:
        """Replace the index with an IVF-Flat one trained on every stored vector."""
        faiss = self._faiss
        ids = np.sort(np.fromiter(self._owner_of, dtype=np.int64, count=len(self._owner_of)))
        vectors = self._index.reconstruct_batch(ids)
        nlist = cells_for(ids.shape[0])
        ivf = faiss.IndexIVFFlat(faiss.IndexFlatL2(self._dim), self._dim, nlist)
        ivf.cp.max_points_per_centroid = _MAX_POINTS_PER_CELL
        ivf.train(vectors)
        ivf.set_direct_map_type(faiss.DirectMap.Hashtable)  # reconstruct and remove by id
        ivf.add_with_ids(vectors, ids)
        self._index, self._trained_size = ivf, ids.shape[0]
        self._set_nprobe()

    # ------------------------------------------------------------------- search

    def _candidates(self, query: np.ndarray, k: int) -> list[str]:
        total = self.num_descriptors
        want = min(k, len(self._ids_of))
        limit = min(total, max(4 * k, _MIN_LIMIT))
        while True:
            names = self._search_names(query, limit)
            if len(names) >= want or limit >= total:
                break
            limit = min(total, 4 * limit)  # one person's many photos filled the top hits
        if len(names) < want and self._trained_size:
            # The probed cells hold fewer than k people: probe every cell, once.
            names = self._search_names(query, limit, nprobe=self.nlist)
        return names

    def _search_names(self, query: np.ndarray, limit: int, nprobe: int | None = None) -> list[str]:
        """Distinct owners of the ``limit`` nearest vectors found, nearest first."""
        params = None
        if self._trained_size:
            params = self._faiss.SearchParametersIVF(nprobe=nprobe or self._index.nprobe)
        _, ids = self._index.search(query[np.newaxis], limit, params=params)
        owners = (self._owner_of[i] for i in ids[0].tolist() if i >= 0)  # -1: no more found
        return list(dict.fromkeys(owners))

    # -------------------------------------------------------------- persistence

    def save(self) -> str:
        """Write names, ids and the serialised index to the ``.npz``, atomically."""
        names = self.names
        ids = np.concatenate([self._ids_of[n] for n in names]) if names else \
            np.empty(0, dtype=np.int64)
        labels = np.repeat(np.arange(len(names), dtype=np.int32),
                           [self._ids_of[n].shape[0] for n in names])
        arrays = {
            "format_version": np.array(FORMAT_VERSION, dtype=np.int64),
            "backend": np.array(self.backend),
            "dim": np.array(self._dim, dtype=np.int64),
            "names": np.array(names, dtype=np.str_).reshape(len(names)),
            "labels": labels,
            "ids": ids.astype(np.int64),
            "next_id": np.array(self._next_id, dtype=np.int64),
            "trained_size": np.array(self._trained_size, dtype=np.int64),
            "index": self._faiss.serialize_index(self._index),
        }
        with atomic_write(self._path) as f:
            np.savez(f, **arrays)
        return self.location

    def _load(self, max_bytes: int | None) -> None:
        path = self._path
        limit = MAX_LOAD_BYTES if max_bytes is None else max_bytes
        try:
            arrays = read_npz(path, limit, kinds="iufU")
        except NpzTooLarge as err:
            raise ValueError(f"{path} is too large to open as a gallery: {err.what}, more "
                             f"than max_bytes = {limit:,}; pass a larger max_bytes if you "
                             "trust the file and have the memory") from err
        except NpzError as err:
            raise ValueError(f"{path} is not a readable ann gallery: {err}") from err

        def bad(what: str) -> ValueError:
            return ValueError(f"{path} is not a valid ann gallery: {what}")

        missing = [key for key in _KEYS if key not in arrays]
        if missing:
            raise bad(f"missing {', '.join(missing)} (has {', '.join(arrays)}); an exact "
                      "gallery's file opens with backend='exact'")
        scalars = {key: arrays[key] for key in
                   ("format_version", "dim", "next_id", "trained_size")}
        for key, value in scalars.items():
            if value.shape != () or value.dtype.kind not in "iu":
                raise bad(f"{key} must be an integer scalar, got {value.dtype} {value.shape}")
        if int(scalars["format_version"]) != FORMAT_VERSION:
            raise bad(f"format version {int(scalars['format_version'])}, this code reads "
                      f"{FORMAT_VERSION}")
        if str(arrays["backend"]) != self.backend:
            raise bad(f"written by the {str(arrays['backend'])!r} backend")
        if int(scalars["dim"]) != self._dim:
            raise ValueError(f"{path} holds {int(scalars['dim'])}-d descriptors, not "
                             f"dim={self._dim}: open it with dim={int(scalars['dim'])}")
        names, labels, ids = arrays["names"], arrays["labels"], arrays["ids"]
        if names.ndim != 1 or names.dtype.kind != "U" or len(set(names.tolist())) != len(names):
            raise bad("names must be a 1-D array of unique str")
        if labels.ndim != 1 or labels.dtype.kind not in "iu" or ids.shape != labels.shape \
                or ids.dtype != np.int64:
            raise bad("labels and ids must be 1-D integer arrays of the same length")
        if labels.size and (labels.min() < 0 or labels.max() >= len(names)):
            raise bad(f"labels must lie in [0, {len(names)})")
        counts = np.bincount(labels.astype(np.int64), minlength=len(names))
        if (counts == 0).any():
            raise bad("some names have no descriptor")
        next_id = int(scalars["next_id"])
        if np.unique(ids).shape != ids.shape or (ids.size and (ids.min() < 0
                                                               or ids.max() >= next_id)):
            raise bad("ids must be unique and in [0, next_id)")
        if arrays["index"].dtype != np.uint8 or arrays["index"].ndim != 1:
            raise bad("index must be the faiss index's bytes (1-D uint8)")
        try:
            index = self._faiss.deserialize_index(arrays["index"])
        except RuntimeError as err:  # faiss reports a malformed index this way
            raise bad(f"faiss cannot read its index: {err}") from err
        trained_size = int(scalars["trained_size"])
        kind = self._faiss.IndexIVFFlat if trained_size else self._faiss.IndexIDMap2
        if not isinstance(index, kind):
            raise bad(f"a {type(index).__name__} index, expected a {kind.__name__}")
        if index.d != self._dim or index.ntotal != ids.shape[0]:
            raise bad(f"the index holds {index.ntotal} vectors of dim {index.d}, the file "
                      f"lists {ids.shape[0]} of dim {self._dim}")
        self._index, self._next_id, self._trained_size = index, next_id, trained_size
        order = np.argsort(labels, kind="stable")  # ids grouped by person
        per_person = np.split(ids[order], np.cumsum(counts)[:-1]) if names.size else []
        self._ids_of = {str(n): part for n, part in zip(names.tolist(), per_person, strict=True)}
        self._owner_of = dict(zip(ids[order].tolist(),
                                  np.repeat(names, counts).tolist(), strict=True))
        try:  # every listed id must be in the index: reconstructing raises otherwise
            for start in range(0, ids.shape[0], 65_536):
                chunk = self._index.reconstruct_batch(ids[start:start + 65_536])
                if not np.isfinite(chunk).all():
                    raise bad("the index holds NaN or infinite values")
        except RuntimeError as err:
            raise bad("its ids and the index's do not match") from err
        if self._trained_size:
            self._set_nprobe()
