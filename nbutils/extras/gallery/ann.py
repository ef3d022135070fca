"""The ANN strategy: a faiss inverted-file index (IVF-Flat), for 10^6 descriptors and beyond
in one process. Needs ``pip install 'nbutils[ann]'`` (faiss-cpu).

k-means splits the N descriptors into nlist cells; a query is compared with the nlist
centres, then with the descriptors of its nprobe nearest cells only: about
nlist + nprobe N / nlist comparisons instead of N. The true nearest can sit in a cell not
probed; the distances returned are still exact (`FaceDatabase` recomputes them). Below
``train_at`` descriptors the index is exhaustive (exact). nlist = 4 sqrt(N) rounded to a
power of two, at least 39 descriptors per cell (`cells_for`), retrained as N grows;
nprobe = max(16, sqrt(nlist) / 4) (`probes_for`). Saved as one ``.npz`` (atomically):
names, each vector's owner and id, and faiss's own serialisation of the index, which
faiss parses itself: open only files you trust. Measurements, and why IVF rather than
HNSW: docs/scaling.md.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from nbutils._internal.atomic import atomic_write
from nbutils.extras.gallery.errors import BackendNotInstalledError
from nbutils.faces.database import EMBEDDING_DIM
from nbutils.faces.exact_index import read_saved

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
_MIN_FETCH = 32  # descriptors fetched per query at least (a person has several)


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


class AnnIndex:
    """A `nbutils.faces.database.SearchIndex` kept in a faiss IVF-Flat index; see the module.

    Args:
        path: the ``.npz`` file; read if it exists, else created by the first ``save``.
        dim: the descriptor dimension of a new file (an existing file's is its own).
        nprobe: cells visited per query (more: higher recall, slower; >= nlist: exact).
            None: `probes_for` the current nlist, so it follows the size.
        train_at: the size at which the exhaustive index becomes an IVF one (then
            retrained as it grows, `cells_for`).
        max_bytes: the largest file accepted (None: 1 GiB, ~2 million descriptors).
    """

    def __init__(self, path: str | os.PathLike, dim: int = EMBEDDING_DIM, *,
                 nprobe: int | None = None, train_at: int = DEFAULT_TRAIN_AT,
                 max_bytes: int | None = None) -> None:
        for option, value in (("nprobe", nprobe), ("train_at", train_at)):
            if option == "nprobe" and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{option} must be a positive int, got {value!r}")
        self._faiss = import_faiss()
        self.location: Path | str | None = Path(path)
        self.dim: int | None = dim
        self._nprobe, self._train_at = nprobe, train_at
        self._ids_of: dict[str, np.ndarray] = {}  # name -> (k,) int64 faiss ids
        self._owner_of: dict[int, str] = {}  # faiss id -> name
        self._next_id = 0  # ids are never reused, so a stale id cannot name someone else
        self._trained_size = 0  # N when the IVF lists were trained; 0: exhaustive index
        if self.location.exists():
            self._load(max_bytes)
        else:
            self._index = self._faiss.IndexIDMap2(self._faiss.IndexFlatL2(dim))

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

    # ------------------------------------------------------------------ storage

    def names(self) -> list[str]:
        return list(self._ids_of)

    def count(self) -> int:
        return int(self._index.ntotal)

    def enrolled(self, names: list[str]) -> list[str]:
        return [name for name in names if name in self._ids_of]

    def insert(self, people: Mapping[str, np.ndarray]) -> None:
        for name, rows in people.items():
            ids = np.arange(self._next_id, self._next_id + rows.shape[0], dtype=np.int64)
            self._index.add_with_ids(rows, ids)
            self._next_id += rows.shape[0]
            self._ids_of[name] = np.concatenate([self._ids_of.get(name, ids[:0]), ids])
            self._owner_of.update(dict.fromkeys(ids.tolist(), name))
            n = self.count()
            if (n >= self._train_at and not self._trained_size) or \
                    (self._trained_size and cells_for(n) > self.nlist):
                self._train()

    def delete(self, name: str) -> int:
        ids = self._ids_of.pop(name)
        # IDMap2 and IVF (with its hash-table direct map) both erase the vectors' bytes
        # from their storage, so the next save cannot write them.
        self._index.remove_ids(ids)
        for i in ids.tolist():
            del self._owner_of[i]
        return ids.shape[0]

    def rows(self, names: list[str]) -> list[np.ndarray]:
        if not names:
            return []
        ids = [self._ids_of[name] for name in names]
        rows = self._index.reconstruct_batch(np.concatenate(ids))  # one call for everyone
        return np.split(rows, np.cumsum([len(i) for i in ids[:-1]]))

    def close(self) -> None:
        return None

    def _train(self) -> None:
        """Replace the index with an IVF-Flat one trained on every stored vector."""
        faiss = self._faiss
        ids = np.sort(np.fromiter(self._owner_of, dtype=np.int64, count=len(self._owner_of)))
        vectors = self._index.reconstruct_batch(ids)
        ivf = faiss.IndexIVFFlat(faiss.IndexFlatL2(self.dim), self.dim, cells_for(ids.shape[0]))
        ivf.cp.max_points_per_centroid = _MAX_POINTS_PER_CELL
        ivf.train(vectors)
        ivf.set_direct_map_type(faiss.DirectMap.Hashtable)  # reconstruct and remove by id
        ivf.add_with_ids(vectors, ids)
        self._index, self._trained_size = ivf, ids.shape[0]
        self._set_nprobe()

    # ------------------------------------------------------------------- search

    def candidates(self, query: np.ndarray, k: int) -> list[str]:
        total = self.count()
        want = min(k, len(self._ids_of))
        fetch = min(total, max(4 * k, _MIN_FETCH))
        while True:
            names = self._search_names(query, fetch)
            if len(names) >= want or fetch >= total:
                break
            fetch = min(total, 4 * fetch)  # one person's many photos filled the top hits
        if len(names) < want and self._trained_size:
            # The probed cells hold fewer than k people: probe every cell, once.
            names = self._search_names(query, fetch, nprobe=self.nlist)
        return names

    def _search_names(self, query: np.ndarray, fetch: int, nprobe: int | None = None
                      ) -> list[str]:
        """Distinct owners of the ``fetch`` nearest vectors found, nearest first."""
        params = None
        if self._trained_size:
            params = self._faiss.SearchParametersIVF(nprobe=nprobe or self._index.nprobe)
        _, ids = self._index.search(query[np.newaxis], fetch, params=params)
        owners = (self._owner_of[i] for i in ids[0].tolist() if i >= 0)  # -1: no more found
        return list(dict.fromkeys(owners))

    # -------------------------------------------------------------- persistence

    def save(self, path: str | os.PathLike | None = None) -> Path:
        """Write names, ids and the serialised index to the ``.npz``, atomically."""
        path = Path(self.location if path is None else path)
        names = self.names()
        ids = np.concatenate([self._ids_of[n] for n in names]) if names else \
            np.empty(0, dtype=np.int64)
        labels = np.repeat(np.arange(len(names), dtype=np.int32),
                           [self._ids_of[n].shape[0] for n in names])
        arrays = {
            "format_version": np.array(FORMAT_VERSION, dtype=np.int64),
            "backend": np.array("ann"),
            "dim": np.array(self.dim, dtype=np.int64),
            "names": np.array(names, dtype=np.str_).reshape(len(names)),
            "labels": labels,
            "ids": ids.astype(np.int64),
            "next_id": np.array(self._next_id, dtype=np.int64),
            "trained_size": np.array(self._trained_size, dtype=np.int64),
            "index": self._faiss.serialize_index(self._index),
        }
        with atomic_write(path) as f:
            np.savez(f, **arrays)
        self.location = path
        return path

    def _load(self, max_bytes: int | None) -> None:
        path = Path(self.location)  # type: ignore[arg-type]
        arrays = read_saved(path, max_bytes, "ann gallery")

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
        if str(arrays["backend"]) != "ann":
            raise bad(f"written by the {str(arrays['backend'])!r} backend")
        self.dim = int(scalars["dim"])  # the store refuses it if it is not the one asked for
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
        if index.d != self.dim or index.ntotal != ids.shape[0]:
            raise bad(f"the index holds {index.ntotal} vectors of dim {index.d}, the file "
                      f"lists {ids.shape[0]} of dim {self.dim}")
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
