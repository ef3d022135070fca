"""The exact search strategy of `nbutils.faces.database.FaceDatabase`, and its file.

`ExactIndex` keeps every (d,) float32 descriptor in memory and compares a query with all
of them in one BLAS product: ||q - x||^2 = q.q - 2 q.x + x.x, the x.x cached in float64.
Its file is an ``.npz`` of plain arrays (format_version, dim, names, descriptors, labels),
written atomically and read back by the bounded reader `nbutils._internal.npz.read_npz`
(no pickle; every size and invariant checked before use).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from nbutils._internal.atomic import atomic_write
from nbutils._internal.npz import NpzError, NpzTooLarge, read_npz

#: ``load`` refuses files, and arrays in all, larger than this before inflating anything
#: (1 GiB: about 2 million 128-d float32 descriptors).
MAX_LOAD_BYTES = 1 << 30
FORMAT_VERSION = 1
_SAVED_KEYS = ("format_version", "dim", "names", "descriptors", "labels")
#: Candidates beyond k that an index proposes, and the store measures again in float64:
#: they absorb float32 rounding among near-ties.
SPARE_CANDIDATES = 4


class ExactIndex:
    """Every row in memory, compared with each query: exact; the default strategy.

    ``descriptors`` (N, d) float32 and ``labels`` (N,) int32 (row i is ``names()[labels[i]]``)
    are read-only views, in the order added; the buffer's capacity doubles, so adding N
    rows one at a time copies O(N) in all. Squared norms are cached (float64) for search.
    """

    def __init__(self, dim: int | None, location: Path | str | None = None):
        if dim is not None and (isinstance(dim, bool) or not isinstance(dim, int) or dim < 1):
            raise ValueError(f"dim must be a positive int or None, got {dim!r}")
        self.dim, self.location = dim, location
        self._names: list[str] = []
        self._index: dict[str, int] = {}
        self._n = 0
        self._desc = np.empty((0, dim or 1), dtype=np.float32)
        self._labels = np.empty(0, dtype=np.int32)
        self._sqnorms = np.empty(0, dtype=np.float64)
        self._groups: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def descriptors(self) -> np.ndarray:
        """(N, d) float32 read-only view of every stored row."""
        return _readonly(self._desc[: self._n])

    @property
    def labels(self) -> np.ndarray:
        """(N,) int32 read-only view: row i belongs to ``names()[labels[i]]``."""
        return _readonly(self._labels[: self._n])

    def names(self) -> list[str]:
        return list(self._names)

    def count(self) -> int:
        return self._n

    def enrolled(self, names: list[str]) -> list[str]:
        return [name for name in names if name in self._index]

    def insert(self, people: Mapping[str, np.ndarray]) -> None:
        for name, rows in people.items():
            self.dim = self.dim or rows.shape[1]
            label = self._index.setdefault(name, len(self._names))
            if label == len(self._names):
                self._names.append(name)
            k, n = rows.shape[0], self._n
            if n + k > self._desc.shape[0] or self._desc.shape[1] != self.dim:
                self._grow(n + k)
            self._desc[n : n + k], self._labels[n : n + k] = rows, label
            self._sqnorms[n : n + k] = np.einsum("ij,ij->i", *[rows.astype(np.float64)] * 2)
            self._n += k
        self._groups = None

    def _grow(self, need: int) -> None:
        n, capacity = self._n, max(need, 2 * self._desc.shape[0], 16)
        desc = np.empty((capacity, self.dim), dtype=np.float32)
        desc[:n] = self._desc[:n]
        self._desc = desc
        self._labels = np.resize(self._labels[:n], capacity)
        self._sqnorms = np.resize(self._sqnorms[:n], capacity)

    def delete(self, name: str) -> int:
        label = self._index[name]
        keep = self._labels[: self._n] != label
        labels = self._labels[: self._n][keep]
        labels[labels > label] -= 1
        # New arrays: views handed out earlier stay valid snapshots.
        self._desc = np.ascontiguousarray(self._desc[: self._n][keep])
        self._sqnorms, self._labels = self._sqnorms[: self._n][keep], labels
        removed, self._n = self._n - labels.shape[0], labels.shape[0]
        del self._names[label]
        self._index = {n: i for i, n in enumerate(self._names)}
        self._groups = None
        return removed

    def _grouping(self) -> tuple[np.ndarray, np.ndarray]:
        """Row indices sorted by person (stable), and person p's slice bounds in them."""
        if self._groups is None:
            labels = self._labels[: self._n]
            counts = np.bincount(labels, minlength=len(self._names))
            self._groups = (np.argsort(labels, kind="stable"),
                            np.concatenate([[0], np.cumsum(counts)]))
        return self._groups

    def rows(self, names: list[str]) -> list[np.ndarray]:
        """Each person's rows, in the order added (copies): one O(N) scan for one person
        while the rows are not grouped by person, else O(k) each."""
        labels = [self._index[name] for name in names]
        if self._groups is None and len(labels) == 1:
            return [self._desc[np.flatnonzero(self._labels[: self._n] == labels[0])]]
        order, bounds = self._grouping()
        return [self._desc[order[bounds[p] : bounds[p + 1]]] for p in labels]

    def distances(self, query: np.ndarray) -> np.ndarray:
        """(N,) float32 ||q - D_i|| = sqrt(max(||q||^2 - 2 D_i.q + ||D_i||^2, 0)) for every
        row, D q one float32 BLAS product, the rest float64. Absolute error about
        sqrt(1e-7) ||q|| near 0 (the cancellation), far below the threshold's scale."""
        return np.sqrt(self._squared_distances(query)).astype(np.float32)

    def _squared_distances(self, query: np.ndarray) -> np.ndarray:
        dots = self._desc[: self._n] @ query
        d2 = float(np.dot(query.astype(np.float64), query)) - 2.0 * dots + self._sqnorms[: self._n]
        return np.maximum(d2, 0.0)  # rounding can make a tiny distance slightly negative

    def candidates(self, query: np.ndarray, k: int) -> list[str]:
        d = self._squared_distances(query)
        if k == 1:
            return [self._names[int(self._labels[int(np.argmin(d))])]]
        order, bounds = self._grouping()
        per_person = np.minimum.reduceat(d[order], bounds[:-1])  # everyone has >= 1 row
        k = min(k + SPARE_CANDIDATES, per_person.shape[0])
        nearest = np.argpartition(per_person, k - 1)[:k]
        return [self._names[int(p)] for p in nearest[np.argsort(per_person[nearest])]]

    def close(self) -> None:
        return None

    def save(self, path: str | os.PathLike | None = None) -> Path:
        """Write one ``.npz`` (no pickle) atomically (`nbutils._internal.atomic`): a crash
        leaves the old file or the new one; parent folders are created."""
        if path is None and self.location is None:
            raise ValueError("this face database was not opened from a file: save(path)")
        path = Path(self.location if path is None else path)
        arrays = {"format_version": np.array(FORMAT_VERSION, dtype=np.int64),
                  "dim": np.array(self.dim or -1, dtype=np.int64),
                  "names": np.array(self._names, dtype=np.str_).reshape(len(self._names)),
                  "descriptors": self._desc[: self._n], "labels": self._labels[: self._n]}
        with atomic_write(path) as f:
            np.savez(f, **arrays)
        self.location = path
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, max_bytes: int | None = None) -> ExactIndex:
        """Read a file written by ``save`` (see `FaceDatabase.load`)."""
        path = Path(path)
        arrays = read_saved(path, max_bytes, "face database")
        missing = [key for key in _SAVED_KEYS if key not in arrays]
        if missing:
            raise ValueError(f"{path} is not a face database: missing {', '.join(missing)} "
                             f"(has {', '.join(arrays)})")
        names, desc, labels, dim = _checked(arrays, path)
        index = cls(dim, path)
        index._names, index._index = names, {n: i for i, n in enumerate(names)}
        index._desc, index._labels = desc, labels
        index._sqnorms = np.einsum("ij,ij->i", *[desc.astype(np.float64)] * 2)
        index._n = desc.shape[0]
        return index


def read_saved(path: Path, max_bytes: int | None, kind: str) -> dict[str, np.ndarray]:
    """The arrays of a saved ``.npz``, read by `nbutils._internal.npz.read_npz` (no pickle,
    every size checked before anything is inflated), at most ``max_bytes`` (None:
    `MAX_LOAD_BYTES` as it is when called); errors name the file and the ``kind`` of file."""
    limit = MAX_LOAD_BYTES if max_bytes is None else max_bytes
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"max_bytes must be a positive int or None, got {max_bytes!r}")
    if not path.is_file():
        raise FileNotFoundError(f"no {kind} file at {path}")
    try:
        return read_npz(path, limit, kinds="iufU")
    except NpzTooLarge as err:
        raise ValueError(f"{path} is too large to load as a {kind}: {err.what}, more than "
                         f"max_bytes = {limit:,}. If you trust the file and have the memory, "
                         "pass a larger max_bytes") from err
    except NpzError as err:
        raise ValueError(f"{path}: {err}; the file is damaged or not a {kind}: restore it "
                         "from a backup or save it again" if err.member else
                         f"{path} is not a readable {kind}: {err}") from err


def _readonly(view: np.ndarray) -> np.ndarray:
    view = view.view()
    view.flags.writeable = False
    return view


def _checked(arrays: dict[str, np.ndarray], path: Path
             ) -> tuple[list[str], np.ndarray, np.ndarray, int | None]:
    """names, descriptors, labels and dim from a saved file's arrays, every invariant checked."""

    def bad(what: str) -> ValueError:
        return ValueError(f"{path} is not a valid face database: {what}")

    version, dim = arrays["format_version"], arrays["dim"]
    names, desc, labels = arrays["names"], arrays["descriptors"], arrays["labels"]
    for key, scalar in (("format_version", version), ("dim", dim)):
        if scalar.shape != () or scalar.dtype.kind not in "iu":
            raise bad(f"{key} must be an integer scalar, got {scalar.dtype} {scalar.shape}")
    if int(version) > FORMAT_VERSION:
        raise bad(f"format version {int(version)} is newer than this code's "
                  f"{FORMAT_VERSION}; update nbutils to read it")
    if int(version) < 1:
        raise bad(f"unknown format version {int(version)}")
    if names.ndim != 1 or names.dtype.kind != "U":
        raise bad(f"names must be a 1-D unicode array, got {names.dtype} {names.shape}")
    if desc.ndim != 2 or desc.dtype != np.float32:
        raise bad(f"descriptors must be a 2-D float32 array, got {desc.dtype} {desc.shape}")
    if labels.ndim != 1 or labels.dtype.kind not in "iu" or labels.shape[0] != desc.shape[0]:
        raise bad(f"labels must be 1-D integers, one per descriptor; got {labels.dtype} "
                  f"{labels.shape} for {desc.shape[0]} descriptors")
    name_list = [str(n) for n in names]
    if int(dim) == -1 and desc.shape[0] > 0:
        raise bad("dimension unset (-1) but the file holds descriptors")
    if int(dim) != -1 and (int(dim) < 1 or desc.shape[1] != int(dim)):
        raise bad(f"descriptors have dimension {desc.shape[1]}, the file says {int(dim)}")
    if len(set(name_list)) != len(name_list) or not all(n.strip() for n in name_list):
        raise bad("names must be unique and non-empty")
    if labels.size and (labels.min() < 0 or labels.max() >= len(name_list)):
        raise bad(f"labels must lie in [0, {len(name_list)}), got "
                  f"[{labels.min()}, {labels.max()}]")
    if np.bincount(labels.astype(np.int64), minlength=len(name_list)).min(initial=1) == 0:
        raise bad("some names have no descriptor")
    if not np.isfinite(desc).all():
        raise bad("descriptors contain NaN or infinite values")
    return (name_list, np.ascontiguousarray(desc), np.ascontiguousarray(labels, np.int32),
            None if int(dim) == -1 else int(dim))
